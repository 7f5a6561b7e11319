//! The offline store's files: accepted puts as Parquet, in SageMaker's layout
//! `<S3Uri>/<account>/sagemaker/<region>/offline-store/<group>-<created>/data/
//! year=YYYY/month=MM/day=DD/hour=HH/<YYYYMMDDTHHMMSSZ>_<random>.parquet`, partitioned by
//! event time, with the features typed as the group defines them (String as string,
//! Integral as bigint, Fractional as double) followed by `write_time` and
//! `api_invocation_time` (timestamps, milliseconds, UTC) and `is_deleted`.
//!
//! The S3Uri may be `s3://bucket/prefix` (written with PutObject through the standard AWS
//! chain and `AWS_ENDPOINT_URL`), `file:///path`, or a path; a relative path is taken from
//! the store's folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::TimestampMillisecondArray;
use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, Timelike, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::model::{FeatureGroup, FeatureType, FeatureValue, ValidRecord};
use super::store::{now_micros, StoreError};
use crate::aws::glue::{CatalogTable, GlueCatalog, GlueOptions};
use crate::aws::s3::{S3Location, S3Target};
use crate::aws::{runtime, sdk_config, AwsOptions};
use crate::format::parquet::ParquetOptions;
use crate::format::Format;

/// One accepted put (or delete), queued for the offline store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfflineRow {
    pub group: String,
    pub values: Vec<FeatureValue>,
    /// Event time, microseconds since the epoch: picks the partition.
    pub event_time: i64,
    /// When the request reached the store, microseconds since the epoch.
    pub api_invocation_time: i64,
    pub is_deleted: bool,
}

impl OfflineRow {
    pub fn new(group: &str, record: &ValidRecord, invoked: i64, is_deleted: bool) -> Self {
        Self {
            group: group.to_string(),
            values: record.values.clone(),
            event_time: record.event_time,
            api_invocation_time: invoked,
            is_deleted,
        }
    }
}

/// Writes offline rows where each group's `OfflineStoreConfig` says.
pub struct OfflineWriter {
    dir: PathBuf,
    region: String,
    account: String,
    /// S3 connections by bucket, made on first use.
    buckets: Mutex<HashMap<String, Arc<S3Target>>>,
}

/// `path` with `.` and `..` resolved by their names alone (None: `..` above the root).
fn lexical(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("offline store: {e}"))
}

impl OfflineWriter {
    pub fn new(dir: &Path, region: &str, account: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            region: region.to_string(),
            account: account.to_string(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Checks an offline store `S3Uri`: `s3://`, or a folder inside the store's own folder
    /// (a relative path, `file://` or an absolute path), so that a caller of the API cannot
    /// make the server write files anywhere it may.
    pub fn check_location(&self, s3_uri: &str) -> Result<(), String> {
        if s3_uri.starts_with("s3://") || s3_uri.starts_with("s3a://") {
            return Ok(());
        }
        let root = s3_uri.strip_prefix("file://").unwrap_or(s3_uri);
        let base = std::path::absolute(&self.dir).map(|p| lexical(&p));
        let target = std::path::absolute(self.dir.join(root)).map(|p| lexical(&p));
        match (base, target) {
            (Ok(Some(base)), Ok(Some(target))) if target.starts_with(&base) => Ok(()),
            _ => Err(format!(
                "S3Uri '{s3_uri}' is outside the store's folder {}: use an s3:// location or a \
                 folder inside the store's folder",
                self.dir.display()
            )),
        }
    }

    /// `ResolvedOutputS3Uri`: where the group's data files go.
    pub fn resolved_uri(&self, group: &FeatureGroup, s3_uri: &str) -> String {
        format!(
            "{}/{}/sagemaker/{}/offline-store/{}/data",
            s3_uri.trim_end_matches('/'),
            self.account,
            self.region,
            group.offline_folder()
        )
    }

    /// Writes rows, one Parquet file per group and hour of event time.
    pub fn write(
        &self,
        rows: Vec<OfflineRow>,
        groups: &HashMap<String, Option<FeatureGroup>>,
    ) -> Result<(), StoreError> {
        let mut parts: BTreeMap<(String, String), Vec<OfflineRow>> = BTreeMap::new();
        for row in rows {
            let time = DateTime::<Utc>::from_timestamp_micros(row.event_time).unwrap_or_default();
            let folder = format!(
                "year={:04}/month={:02}/day={:02}/hour={:02}",
                time.year(),
                time.month(),
                time.day(),
                time.hour()
            );
            parts
                .entry((row.group.clone(), folder))
                .or_default()
                .push(row);
        }
        let write_time = now_micros();
        for ((name, folder), rows) in parts {
            // A group deleted since its rows were queued: its data has nowhere to go.
            let Some(Some(group)) = groups.get(&name) else {
                tracing::warn!(
                    "feature group '{name}' was deleted: {} offline rows are dropped",
                    rows.len()
                );
                continue;
            };
            let Some(base) = group
                .offline_store_config
                .as_ref()
                .and_then(|c| c.s3_storage_config.resolved_output_s3_uri.clone())
            else {
                continue;
            };
            let bytes = parquet_file(group, &rows, write_time)?;
            let stamp = DateTime::<Utc>::from_timestamp_micros(write_time)
                .unwrap_or_default()
                .format("%Y%m%dT%H%M%SZ");
            let random: String = {
                let mut rng = rand::rng();
                (0..16)
                    .map(|_| {
                        char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.random_range(0..36)])
                    })
                    .collect()
            };
            let file = format!("{folder}/{stamp}_{random}.parquet");
            self.put(&base, &file, bytes)?;
        }
        Ok(())
    }

    fn put(&self, base: &str, file: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        if base.starts_with("s3://") || base.starts_with("s3a://") {
            let mut options = sluice_engine::connector::Options::default();
            let location = S3Location::take(base, &mut options)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("{base} is not an S3 URI")))?;
            let target = self.bucket(&location)?;
            return target
                .put_object(&location.key("", file), bytes)
                .map_err(|e| internal(e.message()));
        }
        let root = base.strip_prefix("file://").unwrap_or(base);
        let path = self.dir.join(root).join(file);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| internal(format!("{}: {e}", parent.display())))?;
        // Written under a hidden name and renamed, so readers never see half a file.
        let hidden = parent.join(format!(
            ".{}.inprogress",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("part")
        ));
        std::fs::write(&hidden, bytes)
            .map_err(|e| internal(format!("{}: {e}", hidden.display())))?;
        std::fs::rename(&hidden, &path).map_err(|e| internal(format!("{}: {e}", path.display())))
    }

    /// Registers the group's offline store as a Glue table (Parquet SerDe, the offline
    /// columns in Athena's types, the data folder as location) when its config names a
    /// `DataCatalogConfig` and its S3Uri is on S3. Calls the AWS runtime: not for async code.
    pub fn register_in_glue(&self, group: &FeatureGroup) -> Result<(), StoreError> {
        let Some(config) = &group.offline_store_config else {
            return Ok(());
        };
        let (Some(catalog), Some(location)) = (
            &config.data_catalog_config,
            &config.s3_storage_config.resolved_output_s3_uri,
        ) else {
            return Ok(());
        };
        if config.disable_glue_table_creation == Some(true) || !location.starts_with("s3://") {
            return Ok(());
        }
        let aws = AwsOptions {
            region: Some(self.region.clone()),
            endpoint: None,
        };
        let sdk = runtime()
            .block_on(sdk_config(
                &format!("feature group '{}'", group.feature_group_name),
                &aws,
            ))
            .map_err(|e| internal(e.message()))?;
        let columns = offline_schema(group)
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let options = GlueOptions {
            database: catalog.database.clone(),
            table: catalog.table_name.clone(),
            projection: false,
        };
        let format = Format::Parquet(ParquetOptions::default());
        let table = CatalogTable {
            sluice_table: &group.feature_group_name,
            location: format!("{}/", location.trim_end_matches('/')),
            format: &format,
            columns,
            partition_keys: vec![],
        };
        GlueCatalog::connect(&sdk, &options, table)
            .map(|_| ())
            .map_err(|e| internal(e.message()))
    }

    fn bucket(&self, location: &S3Location) -> Result<Arc<S3Target>, StoreError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = buckets.get(&location.bucket) {
            return Ok(Arc::clone(t));
        }
        let what = "the local feature store's offline store";
        let aws = AwsOptions {
            region: Some(self.region.clone()),
            endpoint: None,
        };
        let sdk = runtime()
            .block_on(sdk_config(what, &aws))
            .map_err(|e| internal(e.message()))?;
        let target = S3Target::connect(what, location, &sdk).map_err(|e| internal(e.message()))?;
        buckets.insert(location.bucket.clone(), Arc::clone(&target));
        Ok(target)
    }
}

/// The Arrow schema of a group's offline files.
pub fn offline_schema(group: &FeatureGroup) -> Schema {
    let mut fields: Vec<Field> = group
        .feature_definitions
        .iter()
        .map(|f| {
            let data_type = match (f.feature_type, &f.collection_type) {
                (_, Some(_)) | (FeatureType::String, None) => DataType::Utf8,
                (FeatureType::Integral, None) => DataType::Int64,
                (FeatureType::Fractional, None) => DataType::Float64,
            };
            Field::new(f.feature_name.to_lowercase(), data_type, true)
        })
        .collect();
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    fields.push(Field::new("write_time", timestamp.clone(), false));
    fields.push(Field::new("api_invocation_time", timestamp, false));
    fields.push(Field::new("is_deleted", DataType::Boolean, false));
    Schema::new(fields)
}

fn parquet_file(
    group: &FeatureGroup,
    rows: &[OfflineRow],
    write_time: i64,
) -> Result<Vec<u8>, StoreError> {
    let schema = Arc::new(offline_schema(group));
    let mut columns: Vec<ArrayRef> = Vec::new();
    for def in &group.feature_definitions {
        let text = |row: &OfflineRow| -> Option<String> {
            let v = row
                .values
                .iter()
                .find(|v| v.feature_name == def.feature_name)?;
            match (&v.value_as_string, &v.value_as_string_list) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(list)) => serde_json::to_string(list).ok(),
                (None, None) => None,
            }
        };
        let column: ArrayRef = match (def.feature_type, &def.collection_type) {
            (_, Some(_)) | (FeatureType::String, None) => {
                Arc::new(rows.iter().map(text).collect::<StringArray>())
            }
            (FeatureType::Integral, None) => Arc::new(
                rows.iter()
                    .map(|r| text(r).and_then(|s| s.parse::<i64>().ok()))
                    .collect::<Int64Array>(),
            ),
            (FeatureType::Fractional, None) => Arc::new(
                rows.iter()
                    .map(|r| text(r).and_then(|s| s.parse::<f64>().ok()))
                    .collect::<Float64Array>(),
            ),
        };
        columns.push(column);
    }
    let millis = |micros: i64| micros.div_euclid(1000);
    columns.push(Arc::new(
        TimestampMillisecondArray::from(vec![millis(write_time); rows.len()]).with_timezone("UTC"),
    ));
    columns.push(Arc::new(
        TimestampMillisecondArray::from(
            rows.iter()
                .map(|r| millis(r.api_invocation_time))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC"),
    ));
    columns.push(Arc::new(
        rows.iter()
            .map(|r| Some(r.is_deleted))
            .collect::<BooleanArray>(),
    ));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(internal)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(internal)?;
    writer.write(&batch).map_err(internal)?;
    writer.close().map_err(internal)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_locations_stay_inside_the_store_folder_or_on_s3() {
        let w = OfflineWriter::new(Path::new("/data/fs"), "us-east-1", "123456789012");
        for ok in [
            "offline",
            "file://offline/x",
            "/data/fs/offline",
            "a/../b",
            "s3://b/p",
        ] {
            assert_eq!(w.check_location(ok), Ok(()), "{ok}");
        }
        for bad in [
            "../../somewhere",
            "/tmp/x",
            "file:///etc",
            "offline/../../..",
            "/data/fsx",
        ] {
            let e = w.check_location(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("/data/fs"), "{e}");
        }
    }
}
