//! A filesystem table as the bounded side of a lookup join (`JOIN t FOR SYSTEM_TIME AS OF
//! s.proc_time`): every file under `path` (a local folder or file, or `s3://bucket/prefix`),
//! in `json`, `csv` or `parquet`, read whole.
//!
//! The table's version is the list of its files with their sizes and modification times
//! (ETags on S3): the join reads the table again when it changes. Options, with Flink's
//! names for a lookup source kept whole in memory:
//!
//! - `lookup.cache`: `FULL` (the default, and the only kind a file table has);
//! - `lookup.full-cache.reload-strategy`: `PERIODIC`;
//! - `lookup.full-cache.periodic-reload.interval` (also the older `lookup.join.cache.ttl`),
//!   default 60 min: how often the files are checked for changes;
//! - `lookup.full-cache.periodic-reload.schedule-mode`: `FIXED_DELAY` or `FIXED_RATE`
//!   (the same here: a check takes a listing);
//! - `lookup.max-retries` (3): further attempts when reading fails.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_engine::connector::{LookupConnector, Options, TableSpec};
use sluice_engine::{Error, Result};

use crate::aws::s3::{S3Location, S3Target};
use crate::aws::{runtime, sdk_config};
use crate::format::lines::{error_reason, LineReader, ReadError};
use crate::format::Format;
use crate::option_values::parse_duration;

use super::source::list_files;

/// Rows per decoded batch.
const BATCH_SIZE: usize = 8192;

/// How a lookup join keeps a table fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupOptions {
    pub reload_interval: Duration,
    pub max_retries: u32,
}

impl LookupOptions {
    fn take(options: &mut Options) -> Result<Self> {
        let table = options.table().to_string();
        let one_of = |key: &str, value: Option<String>, allowed: &[&str], why: &str| match value {
            Some(v) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&v)) => Err(Error::config(
                format!("table '{table}': option '{key}' = '{v}' is not supported: {why}"),
            )
            .for_option(key)),
            _ => Ok(()),
        };
        one_of(
            "lookup.cache",
            options.take(&["lookup.cache"]),
            &["FULL"],
            "a filesystem table is looked up in memory, whole (FULL)",
        )?;
        one_of(
            "lookup.full-cache.reload-strategy",
            options.take(&["lookup.full-cache.reload-strategy"]),
            &["PERIODIC"],
            "a filesystem table is checked for changes periodically (PERIODIC)",
        )?;
        one_of(
            "lookup.full-cache.periodic-reload.schedule-mode",
            options.take(&["lookup.full-cache.periodic-reload.schedule-mode"]),
            &["FIXED_DELAY", "FIXED_RATE"],
            "the modes are FIXED_DELAY and FIXED_RATE",
        )?;
        let mut interval = options.take_parsed("lookup.join.cache.ttl", parse_duration)?;
        if let Some(i) =
            options.take_parsed("lookup.full-cache.periodic-reload.interval", parse_duration)?
        {
            interval = Some(i);
        }
        let reload_interval = interval.unwrap_or(Duration::from_secs(3600));
        if reload_interval.is_zero() {
            return Err(Error::config(format!(
                "table '{table}': option 'lookup.full-cache.periodic-reload.interval' must be \
                 above zero"
            ))
            .for_option("lookup.full-cache.periodic-reload.interval"));
        }
        let max_retries = options
            .take_parsed("lookup.max-retries", |v| {
                v.parse::<u32>()
                    .map_err(|_| "not a whole number".to_string())
            })?
            .unwrap_or(3);
        Ok(Self {
            reload_interval,
            max_retries,
        })
    }
}

/// Where the table's files are.
enum Place {
    Local(PathBuf),
    S3 {
        location: S3Location,
        /// Connected on first use, so planning a job never calls AWS.
        target: OnceLock<Arc<S3Target>>,
    },
}

/// A filesystem table read whole for lookups.
pub struct FileLookup {
    table: String,
    path: String,
    place: Place,
    format: Format,
    schema: SchemaRef,
}

impl FileLookup {
    /// The table's lookup connector and how the join keeps it fresh.
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<(Self, LookupOptions)> {
        if !spec.metadata.is_empty() || !spec.partition_by.is_empty() {
            return Err(Error::config(format!(
                "table '{}': a table looked up FOR SYSTEM_TIME AS OF can have neither METADATA \
                 columns nor PARTITIONED BY",
                spec.name
            )));
        }
        let path = options.take_required("path")?;
        let place = match S3Location::take(&path, options)? {
            Some(location) => Place::S3 {
                location,
                target: OnceLock::new(),
            },
            None => Place::Local(PathBuf::from(&path)),
        };
        let format = Format::take(options, &["json", "csv", "parquet"])?;
        format.check_readable(&spec.name, &spec.schema)?;
        let lookup = LookupOptions::take(options)?;
        Ok((
            Self {
                table: spec.name,
                path,
                place,
                format,
                schema: spec.schema,
            },
            lookup,
        ))
    }

    fn s3(&self, location: &S3Location, target: &OnceLock<Arc<S3Target>>) -> Result<Arc<S3Target>> {
        if let Some(t) = target.get() {
            return Ok(Arc::clone(t));
        }
        let subject = format!("table '{}'", self.table);
        let sdk = runtime().block_on(sdk_config(&subject, &location.aws))?;
        let connected = S3Target::connect(&subject, location, &sdk)?;
        Ok(Arc::clone(target.get_or_init(|| connected)))
    }

    /// The table's files: (name for messages, what identifies its version).
    fn files(&self) -> Result<Vec<(String, String)>> {
        match &self.place {
            Place::Local(root) => {
                let files = list_files(root).map_err(|e| {
                    Error::connector(format!("table '{}': path '{}' {e}", self.table, self.path))
                })?;
                files
                    .into_iter()
                    .map(|f| {
                        let m = std::fs::metadata(&f).map_err(|e| {
                            Error::connector(format!(
                                "table '{}': cannot read {}: {e}",
                                self.table,
                                f.display()
                            ))
                        })?;
                        let modified = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        Ok((f.display().to_string(), format!("{} {modified}", m.len())))
                    })
                    .collect()
            }
            Place::S3 { location, target } => {
                let target = self.s3(location, target)?;
                let mut objects: Vec<(String, String)> = target
                    .list_objects(&location.folder())?
                    .into_iter()
                    .filter(|o| {
                        let name = o.key.rsplit('/').next().unwrap_or(&o.key);
                        !name.is_empty() && !name.starts_with(['.', '_'])
                    })
                    .map(|o| (o.key, format!("{} {}", o.size, o.etag)))
                    .collect();
                objects.sort();
                Ok(objects)
            }
        }
    }

    fn read_file(&self, name: &str) -> Result<Vec<u8>> {
        match &self.place {
            Place::Local(_) => std::fs::read(name).map_err(|e| {
                Error::connector(format!("table '{}': cannot read {name}: {e}", self.table))
            }),
            Place::S3 { location, target } => {
                let target = self.s3(location, target)?;
                target.get_object(name)?.ok_or_else(|| {
                    Error::connector(format!(
                        "table '{}': s3://{}/{name} disappeared while the table was read",
                        self.table, location.bucket
                    ))
                })
            }
        }
    }

    fn decode(&self, name: &str, bytes: Vec<u8>, out: &mut Vec<RecordBatch>) -> Result<()> {
        let error =
            |reason: String| Error::data(format!("table '{}': {name}: {reason}", self.table));
        if let Format::Parquet(_) = self.format {
            return self.decode_parquet(bytes, out).map_err(error);
        }
        let decoder = self
            .format
            .record_decoder(Arc::clone(&self.schema), BATCH_SIZE)?;
        let mut reader = LineReader::new(
            Cursor::new(bytes),
            decoder,
            Arc::clone(&self.schema),
            BATCH_SIZE,
            self.format.ignore_parse_errors(),
        );
        loop {
            match reader.next_batch() {
                Ok(Some(batch)) => out.push(batch),
                Ok(None) => break,
                Err(ReadError::Malformed { line, reason }) => {
                    return Err(error(format!("line {line}: {reason}")))
                }
                Err(ReadError::Io(e)) => return Err(error(e.to_string())),
                Err(ReadError::Decoder(e)) => return Err(error(error_reason(&e))),
            }
        }
        let dropped = reader.take_dropped();
        if dropped > 0 {
            tracing::warn!(
                "table '{}': {name}: {dropped} malformed lines skipped",
                self.table
            );
        }
        Ok(())
    }

    /// The table's columns from a Parquet file, found by name (in any case, as Athena
    /// writes them lowercased) and cast to the declared types.
    fn decode_parquet(
        &self,
        bytes: Vec<u8>,
        out: &mut Vec<RecordBatch>,
    ) -> std::result::Result<(), String> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .map_err(|e| e.to_string())?;
        let file_schema = Arc::clone(builder.schema());
        let mut columns = Vec::new();
        for field in self.schema.fields() {
            let found = file_schema
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(field.name()))
                .ok_or_else(|| format!("the file has no column '{}'", field.name()))?;
            columns.push(found);
        }
        let reader = builder
            .with_batch_size(BATCH_SIZE)
            .build()
            .map_err(|e| e.to_string())?;
        for batch in reader {
            let batch = batch.map_err(|e| e.to_string())?;
            let arrays = columns
                .iter()
                .zip(self.schema.fields())
                .map(|(&i, f)| {
                    cast(batch.column(i), f.data_type()).map_err(|e| {
                        format!(
                            "column '{}' cannot be read as {}: {e}",
                            f.name(),
                            f.data_type()
                        )
                    })
                })
                .collect::<std::result::Result<Vec<_>, String>>()?;
            out.push(
                RecordBatch::try_new(Arc::clone(&self.schema), arrays)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(())
    }
}

impl LookupConnector for FileLookup {
    fn describe(&self) -> String {
        format!("filesystem({}) path={}", self.format.name(), self.path)
    }

    fn version(&self) -> Result<String> {
        Ok(self
            .files()?
            .iter()
            .map(|(name, version)| format!("{name} {version}\n"))
            .collect())
    }

    fn load(&self) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for (name, _) in self.files()? {
            let bytes = self.read_file(&name)?;
            self.decode(&name, bytes, &mut batches)?;
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn spec() -> TableSpec {
        TableSpec {
            name: "rates".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("code", DataType::Utf8, true),
                Field::new("rate", DataType::Int64, true),
            ])),
            metadata: vec![],
            partition_by: vec![],
            projection: None,
        }
    }

    fn lookup(pairs: &[(&str, &str)]) -> Result<(FileLookup, LookupOptions)> {
        let values: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut options = Options::new("rates", values);
        let made = FileLookup::new(spec(), &mut options)?;
        options.finish()?;
        Ok(made)
    }

    #[test]
    fn reads_every_file_and_sees_a_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "EUR,108\nGBP,127\n").unwrap();
        std::fs::write(dir.path().join("_hidden.csv"), "XXX,1\n").unwrap();
        let path = dir.path().display().to_string();
        let (table, options) = lookup(&[("path", &path), ("format", "csv")]).unwrap();
        assert_eq!(options.reload_interval, Duration::from_secs(3600));
        assert_eq!(options.max_retries, 3);
        let rows: Vec<i64> = table
            .load()
            .unwrap()
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(rows, vec![108, 127]);
        let before = table.version().unwrap();
        assert_eq!(before, table.version().unwrap());
        std::fs::write(dir.path().join("b.csv"), "USD,100\n").unwrap();
        assert_ne!(before, table.version().unwrap());
    }

    #[test]
    fn options_have_flinks_names_and_refuse_other_caches() {
        let (_, options) = lookup(&[
            ("path", "/nowhere"),
            ("format", "json"),
            ("lookup.cache", "full"),
            ("lookup.full-cache.periodic-reload.interval", "5 s"),
            ("lookup.max-retries", "0"),
        ])
        .unwrap();
        assert_eq!(
            options,
            LookupOptions {
                reload_interval: Duration::from_secs(5),
                max_retries: 0
            }
        );
        let err = lookup(&[
            ("path", "/nowhere"),
            ("format", "json"),
            ("lookup.cache", "PARTIAL"),
        ])
        .err()
        .unwrap();
        assert_eq!(
            err.message(),
            "table 'rates': option 'lookup.cache' = 'PARTIAL' is not supported: a filesystem \
             table is looked up in memory, whole (FULL)"
        );
        assert_eq!(err.option(), Some("lookup.cache"));
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rates.csv");
        std::fs::write(&file, "EUR,108\nGBP,many\n").unwrap();
        let path = file.display().to_string();
        let (table, _) = lookup(&[("path", &path), ("format", "csv")]).unwrap();
        let err = table.load().unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("table 'rates': {path}: line 2: ")),
            "{}",
            err.message()
        );
    }
}
