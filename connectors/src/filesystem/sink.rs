//! The filesystem sink: rows written to part files in Hive partition folders.
//!
//! Each parallel instance keeps one open [`PartFile`] per partition folder it has rows for.
//! A file is closed when it reaches the rolling size, when it has been open for the rollover
//! interval or idle for the inactivity interval (both checked when rows arrive), and at the
//! end of the input. A closed local file is visible at once; a closed S3 file (an upload)
//! stays pending until the end of the input, when every pending upload is completed.
//!
//! With checkpoints (exactly once), every file is closed at a checkpoint barrier and stays
//! hidden (a local file under its in-progress name, an S3 upload uncompleted); the
//! checkpoint keeps the pending files ([`PendingFile`]) and, when it completes, the sink
//! commits them, then commits the partitions whose trigger fired (see [`super::commit`]).
//! A restore commits the restored checkpoint again; commits are idempotent.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Schema};
use sluice_engine::connector::{Options, SinkConnector, SinkContext, SinkWriter, TableSpec};
use sluice_engine::{Error, Result};

use super::commit::{CommitPolicy, Committer, PartitionReport};
use super::config::{FileSinkConfig, RollingPolicy};
use super::glue::{CatalogTable, GlueCatalog};
use super::part_file::{Closed, FileEncoding, LocalPending, PartFile, Storage};
use super::partition::PartitionPath;
use super::s3::{PendingUpload, S3Pending, S3Target};
use crate::aws::{runtime, sdk_config};
use crate::format::csv::CsvLineEncoder;
use crate::format::json::JsonLineEncoder;
use crate::format::parquet::parquet_schema;
use crate::format::Format;

/// What all writers of one table share.
struct Table {
    name: String,
    config: FileSinkConfig,
    encoding: FileEncoding,
    /// Indices of the `PARTITIONED BY` columns in the incoming rows, in folder order.
    partition_columns: Vec<usize>,
    partition_names: Vec<String>,
    /// Indices of the columns written into the files (all the others).
    data_columns: Vec<usize>,
    /// Names files uniquely for this run of the job (`part-<uuid>-<instance>-<n>`).
    run_id: String,
    /// Where files go; S3 is connected when the first writer starts.
    storage: Mutex<Option<Storage>>,
    /// Data columns and partition keys with their types, for the Glue catalog.
    columns: Vec<(String, DataType)>,
    partition_fields: Vec<(String, DataType)>,
    /// The Glue catalog entry, with `'sink.partition-commit.policy.kind' = 'metastore'`.
    catalog: Mutex<Option<Arc<GlueCatalog>>>,
    /// Writers that have finished, and the partition folders they wrote: the last one to
    /// finish writes the `_SUCCESS` files, once every writer's files are committed.
    finished: Mutex<(usize, BTreeSet<String>)>,
    /// When partitions are committed during a checkpointed run.
    policy: CommitPolicy,
    committer: Committer,
}

/// A closed file that a checkpoint keeps until it is committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PendingFile {
    /// A local file under its hidden name.
    Local(LocalPending),
    /// An S3 multipart upload, not completed.
    S3(S3Pending),
}

/// What a writer hands to a checkpoint.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Prepared {
    /// The run of the job that wrote the files (part of their names).
    #[serde(default)]
    run: String,
    files: Vec<PendingFile>,
    #[serde(flatten)]
    report: PartitionReport,
}

impl Prepared {
    fn decode(table: &str, blob: &[u8]) -> Result<Self> {
        serde_json::from_slice(blob).map_err(|e| {
            Error::connector(format!(
                "table '{table}': the checkpoint's pending files are damaged: {e}"
            ))
        })
    }
}

impl Table {
    fn storage(&self) -> Result<Storage> {
        let mut slot = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(storage) = &*slot {
            return Ok(storage.clone());
        }
        let storage = match &self.config.s3 {
            None => Storage::Local(self.config.path.clone()),
            Some(location) => {
                let sdk = runtime()
                    .block_on(sdk_config(&format!("table '{}'", self.name), &location.aws))?;
                if let Some(glue) = &self.config.glue {
                    let catalog = GlueCatalog::connect(
                        &sdk,
                        glue,
                        CatalogTable {
                            sluice_table: &self.name,
                            location: location.url(),
                            format: &self.config.format,
                            columns: self.columns.clone(),
                            partition_keys: self.partition_fields.clone(),
                        },
                    )?;
                    *self.catalog.lock().unwrap_or_else(|p| p.into_inner()) = Some(catalog);
                }
                Storage::S3(S3Target::connect(
                    &format!("table '{}'", self.name),
                    location,
                    &sdk,
                )?)
            }
        };
        *slot = Some(storage.clone());
        Ok(storage)
    }

    /// Makes a pending file visible (idempotent).
    fn commit_file(&self, file: &PendingFile) -> Result<()> {
        match (file, self.storage()?) {
            (PendingFile::Local(file), _) => file
                .commit()
                .map_err(|e| e.context(format!("table '{}'", self.name))),
            (PendingFile::S3(upload), Storage::S3(target)) => target.complete(upload),
            (PendingFile::S3(upload), Storage::Local(_)) => Err(Error::connector(format!(
                "table '{}': the checkpoint holds an S3 upload ({}) but the table's path is \
                 local now",
                self.name, upload.key
            ))),
        }
    }

    /// Commits partitions: registers them in Glue and writes their `_SUCCESS` files, as
    /// the table's policy asks.
    fn commit_partitions(&self, folders: &BTreeSet<String>) -> Result<()> {
        if let Some(catalog) = self.catalog() {
            catalog.add_partitions(folders)?;
        }
        self.mark_success(folders)
    }

    /// Writes `_SUCCESS` into each partition folder, with the `success-file` policy.
    fn mark_success(&self, folders: &BTreeSet<String>) -> Result<()> {
        if !self.config.success_file {
            return Ok(());
        }
        let storage = self.storage()?;
        for folder in folders.iter().filter(|f| !f.is_empty()) {
            match &storage {
                Storage::Local(root) => {
                    let path = root.join(folder).join("_SUCCESS");
                    std::fs::write(&path, b"").map_err(|e| {
                        Error::connector(format!(
                            "table '{}': cannot write {}: {e}",
                            self.name,
                            path.display()
                        ))
                    })?;
                }
                Storage::S3(target) => {
                    target.put_object(&target.location.key(folder, "_SUCCESS"), Vec::new())?
                }
            }
        }
        Ok(())
    }

    fn catalog(&self) -> Option<Arc<GlueCatalog>> {
        self.catalog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A filesystem table used as a sink.
pub struct FileSink {
    table: Arc<Table>,
}

impl FileSink {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        let config = FileSinkConfig::take(options)?;
        let policy = CommitPolicy::take(options, &spec.partition_by)?;
        let schema = &spec.schema;
        let mut partition_columns = Vec::new();
        for name in &spec.partition_by {
            let index = schema.index_of(name).map_err(|_| {
                Error::plan(format!(
                    "table '{}': partition column '{}' is not a column",
                    spec.name, name
                ))
            })?;
            partition_columns.push(index);
        }
        let data_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !partition_columns.contains(i))
            .collect();
        let data_schema = Arc::new(Schema::new(
            data_columns
                .iter()
                .map(|&i| schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        let encoding = match &config.format {
            Format::Parquet(options) => FileEncoding::Parquet {
                schema: parquet_schema(&spec.name, &data_schema)?,
                properties: Arc::new(options.writer_properties()),
            },
            Format::Json(options) => FileEncoding::Json(JsonLineEncoder::new(
                &data_schema,
                options.timestamp_standard,
            )),
            Format::Csv(options) => FileEncoding::Csv(CsvLineEncoder::new(options)),
        };
        Ok(Self {
            table: Arc::new(Table {
                name: spec.name,
                config,
                encoding,
                partition_columns,
                partition_names: spec.partition_by.clone(),
                data_columns,
                run_id: uuid::Uuid::new_v4().to_string(),
                storage: Mutex::new(None),
                columns: data_schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect(),
                partition_fields: spec
                    .partition_by
                    .iter()
                    .filter_map(|name| {
                        let field = schema.field_with_name(name).ok()?;
                        Some((name.clone(), field.data_type().clone()))
                    })
                    .collect(),
                catalog: Mutex::new(None),
                finished: Mutex::new((0, BTreeSet::new())),
                policy,
                committer: Committer::default(),
            }),
        })
    }
}

impl SinkConnector for FileSink {
    fn describe(&self) -> String {
        let table = &self.table;
        let mut text = format!(
            "filesystem({}) path={}",
            table.config.format.name(),
            table.config.path.display()
        );
        if !table.partition_names.is_empty() {
            text.push_str(&format!(
                " partitioned by ({})",
                table.partition_names.join(", ")
            ));
        }
        text
    }

    fn commit(&self, prepared: &[Vec<u8>]) -> Result<()> {
        let table = &self.table;
        let mut reports = Vec::new();
        for blob in prepared.iter().filter(|b| !b.is_empty()) {
            let prepared = Prepared::decode(&table.name, blob)?;
            for file in &prepared.files {
                table.commit_file(file)?;
            }
            reports.push(prepared.report);
        }
        let due = table
            .committer
            .due(&table.policy, &reports)
            .map_err(|e| Error::connector(format!("table '{}': {e}", table.name)))?;
        table.commit_partitions(&due.into_iter().collect())
    }

    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter>> {
        let (instance, parallelism) = (ctx.instance, ctx.parallelism);
        Ok(Box::new(FileWriter {
            storage: self.table.storage()?,
            exactly_once: ctx.exactly_once,
            local_pending: Vec::new(),
            prepared: Vec::new(),
            unreported: BTreeSet::new(),
            reported: BTreeSet::new(),
            watermark: None,
            parallelism,
            pending: Vec::new(),
            folders: BTreeSet::new(),
            table: self.table.clone(),
            instance,
            next_part: 0,
            open: HashMap::new(),
            path_buffer: String::new(),
            scratch: Vec::new(),
        }))
    }
}

/// One parallel instance of the sink.
struct FileWriter {
    table: Arc<Table>,
    storage: Storage,
    /// Checkpoints are on: closed local files stay hidden until a checkpoint commits them.
    exactly_once: bool,
    /// Closed local files no checkpoint covers yet.
    local_pending: Vec<LocalPending>,
    /// Closed files handed to a checkpoint, kept so the end of the input commits them if
    /// that checkpoint never completes (commits are idempotent).
    prepared: Vec<PendingFile>,
    /// Partition folders of files closed since the last checkpoint.
    unreported: BTreeSet<String>,
    /// Partition folders reported to checkpoints and not known to be committed.
    reported: BTreeSet<String>,
    /// The input's watermark.
    watermark: Option<i64>,
    /// Closed S3 files waiting for the commit (dropped uncommitted: aborted).
    pending: Vec<PendingUpload>,
    /// Partition folders this writer wrote to, for the catalog.
    folders: BTreeSet<String>,
    parallelism: usize,
    instance: usize,
    /// Number of the next part file of this instance.
    next_part: usize,
    /// Open part files by partition folder (`""` when the table is not partitioned).
    open: HashMap<String, PartFile>,
    path_buffer: String,
    scratch: Vec<u8>,
}

impl FileWriter {
    fn error(&self, e: Error) -> Error {
        e.context(format!("table '{}'", self.table.name))
    }

    /// Appends `rows` (data columns only) to the open file of `folder`, rolling it when full.
    fn write_to(&mut self, folder: &str, rows: &RecordBatch) -> Result<()> {
        let table = self.table.clone();
        if !self.open.contains_key(folder) {
            let name = format!(
                "part-{}-{}-{}.{}",
                table.run_id,
                self.instance,
                self.next_part,
                table.encoding.extension()
            );
            self.next_part += 1;
            if !folder.is_empty() {
                self.folders.insert(folder.to_string());
            }
            let file = PartFile::create(&self.storage, folder, &name, &table.encoding)
                .map_err(|e| self.error(e))?;
            self.open.insert(folder.to_string(), file);
        }
        let Some(file) = self.open.get_mut(folder) else {
            return Err(Error::internal("part file vanished after being opened"));
        };
        file.write(rows, &table.encoding)
            .map_err(|e| e.context(format!("table '{}'", table.name)))?;
        if file.size() >= table.config.rolling.file_size {
            self.close(folder)?;
        }
        Ok(())
    }

    fn close(&mut self, folder: &str) -> Result<()> {
        self.close_as(folder, !self.exactly_once)
    }

    fn close_as(&mut self, folder: &str, publish: bool) -> Result<()> {
        let Some(file) = self.open.remove(folder) else {
            return Ok(());
        };
        if !folder.is_empty() {
            self.unreported.insert(folder.to_string());
        }
        match file.close_as(publish).map_err(|e| self.error(e))? {
            Closed::Visible => Ok(()),
            Closed::Pending(upload) => {
                self.pending.push(upload);
                Ok(())
            }
            Closed::LocalPending(file) => {
                self.local_pending.push(file);
                Ok(())
            }
        }
    }

    fn close_all(&mut self, publish: bool) -> Result<()> {
        let mut folders: Vec<String> = self.open.keys().cloned().collect();
        folders.sort();
        for folder in folders {
            self.close_as(&folder, publish)?;
        }
        Ok(())
    }

    /// Closes the files that have been open or idle for too long.
    fn roll_by_time(&mut self) -> Result<()> {
        let now = Instant::now();
        let RollingPolicy {
            rollover_interval,
            inactivity_interval,
            ..
        } = self.table.config.rolling;
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| {
                now.duration_since(f.opened_at) >= rollover_interval
                    || now.duration_since(f.last_write) >= inactivity_interval
            })
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in due {
            self.close(&folder)?;
        }
        Ok(())
    }
}

impl SinkWriter for FileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.roll_by_time()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let table = self.table.clone();
        let data = batch
            .project(&table.data_columns)
            .map_err(|e| Error::internal(format!("table '{}': {e}", table.name)))?;
        if table.partition_columns.is_empty() {
            return self.write_to("", &data);
        }

        // Group the rows by folder, keeping the folders in order of first appearance.
        let keys: Vec<ArrayRef> = table
            .partition_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let paths = PartitionPath::new(&table.partition_names, &keys)
            .map_err(|e| Error::internal(format!("table '{}': {e}", table.name)))?;
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            self.path_buffer.clear();
            paths.write(row, &mut self.path_buffer, &mut self.scratch);
            let group = match index.get(self.path_buffer.as_str()) {
                Some(&g) => g,
                None => {
                    index.insert(self.path_buffer.clone(), groups.len());
                    groups.push((self.path_buffer.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            // Batches are far smaller than 4 billion rows.
            groups[group].1.push(row as u32);
        }
        drop(paths);
        if let [(folder, _)] = groups.as_slice() {
            return self.write_to(folder, &data);
        }
        for (folder, rows) in groups {
            let rows = take_record_batch(&data, &UInt32Array::from(rows))
                .map_err(|e| Error::internal(format!("table '{}': {e}", table.name)))?;
            self.write_to(&folder, &rows)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.close_all(true)?;
        for file in std::mem::take(&mut self.prepared) {
            self.table.commit_file(&file)?;
        }
        for file in self.local_pending.drain(..) {
            file.commit()
                .map_err(|e| e.context(format!("table '{}'", self.table.name)))?;
        }
        for upload in std::mem::take(&mut self.pending) {
            upload.commit()?;
        }
        if let Some(catalog) = self.table.catalog() {
            catalog.add_partitions(&self.folders)?;
        }
        if self.table.config.success_file {
            self.write_success_files()?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<()> {
        self.watermark = Some(watermark);
        Ok(())
    }

    fn restore(&mut self, prepared: &[Vec<u8>]) -> Result<()> {
        // The first writer carries on reporting the partitions the checkpoint had not
        // committed, so a later checkpoint commits them.
        if self.instance != 0 {
            return Ok(());
        }
        let mut runs = BTreeSet::new();
        for blob in prepared.iter().filter(|b| !b.is_empty()) {
            let prepared = Prepared::decode(&self.table.name, blob)?;
            self.folders
                .extend(prepared.report.partitions.iter().cloned());
            self.reported.extend(prepared.report.partitions);
            runs.insert(prepared.run);
        }
        self.abort_leftover_uploads(&runs)
    }

    fn prepare_commit(&mut self) -> Result<Vec<u8>> {
        self.prepare()
    }

    fn abort(&mut self) -> Result<()> {
        // Open files are deleted when dropped; closed files no checkpoint covers are
        // deleted; files handed to a checkpoint stay for its commit.
        self.open.clear();
        for file in self.local_pending.drain(..) {
            file.discard();
        }
        self.pending.clear();
        Ok(())
    }
}

impl FileWriter {
    /// A checkpoint barrier: every open file is closed (files roll on checkpoints) and the
    /// closed local files are what the checkpoint's commit renames.
    fn prepare(&mut self) -> Result<Vec<u8>> {
        if !self.exactly_once {
            return Ok(Vec::new());
        }
        self.close_all(false)?;
        let mut files: Vec<PendingFile> = self
            .local_pending
            .drain(..)
            .map(PendingFile::Local)
            .collect();
        files.extend(
            self.pending
                .drain(..)
                .map(|upload| PendingFile::S3(upload.hand_over())),
        );
        // Partitions committed since the last report are dropped, unless new files came.
        let committer = &self.table.committer;
        self.reported.retain(|folder| !committer.committed(folder));
        self.reported.append(&mut self.unreported);
        let prepared = Prepared {
            run: self.table.run_id.clone(),
            files,
            report: PartitionReport {
                partitions: self.reported.clone(),
                watermark: self.watermark,
            },
        };
        let blob = serde_json::to_vec(&prepared)
            .map_err(|e| Error::internal(format!("table '{}': {e}", self.table.name)))?;
        self.prepared.extend(prepared.files);
        Ok(blob)
    }

    /// Aborts the unfinished uploads of the runs that wrote the restored checkpoint: the
    /// checkpoint's own uploads were completed before the writers started, so what is left
    /// are the files those runs had open when they were killed, whose rows this run writes
    /// again. Uploads of other runs or jobs are left alone.
    fn abort_leftover_uploads(&self, runs: &BTreeSet<String>) -> Result<()> {
        let Storage::S3(target) = &self.storage else {
            return Ok(());
        };
        let runs: Vec<String> = runs
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| format!("part-{r}-"))
            .collect();
        if runs.is_empty() {
            return Ok(());
        }
        for (key, upload_id) in target.uploads(&target.location.folder())? {
            let name = key.rsplit('/').next().unwrap_or(&key);
            if runs.iter().any(|r| name.starts_with(r.as_str())) {
                target.abort_upload(&key, &upload_id)?;
            }
        }
        Ok(())
    }

    /// Marks every partition written by any writer with `_SUCCESS`, once the last writer
    /// has committed its files.
    fn write_success_files(&mut self) -> Result<()> {
        let folders = {
            let mut finished = self
                .table
                .finished
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            finished.0 += 1;
            finished.1.extend(std::mem::take(&mut self.folders));
            if finished.0 < self.parallelism {
                return Ok(());
            }
            // Partition commit is for partitioned tables, as in Flink.
            std::mem::take(&mut finished.1)
        };
        self.table.mark_success(&folders)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::path::Path;

    use arrow::array::{
        Decimal128Array, Float64Array, StringArray, TimestampMicrosecondArray,
        TimestampMillisecondArray,
    };
    use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{Compression, LogicalType};
    use parquet::file::reader::{FileReader as _, SerializedFileReader};

    use super::*;

    fn sink(dir: &Path, format: &str, partition_by: &[&str], extra: &[(&str, &str)]) -> FileSink {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        values.insert("path".into(), dir.display().to_string());
        values.insert("format".into(), format.into());
        for (k, v) in extra {
            values.insert(k.to_string(), v.to_string());
        }
        let mut options = Options::new("out", values);
        let spec = TableSpec {
            name: "out".into(),
            schema: schema(),
            metadata: vec![],
            partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
        };
        let sink = FileSink::new(spec, &mut options).unwrap();
        options.finish().unwrap();
        sink
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("Region", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(
                "ltz",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("x", DataType::Float64, true),
        ]))
    }

    fn batch(regions: Vec<Option<&str>>) -> RecordBatch {
        let n = regions.len();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(regions)),
                Arc::new(
                    Decimal128Array::from((0..n as i128).map(|i| 1100 + i).collect::<Vec<_>>())
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    1_609_330_394_123_456;
                    n
                ])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![1_609_330_394_123; n])
                        .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from(vec![0.5; n])),
            ],
        )
        .unwrap()
    }

    /// Every file below `dir`, relative, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn success_files_once_the_last_writer_has_committed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let sink = sink(
            &out,
            "json",
            &["Region"],
            &[("sink.partition-commit.policy.kind", "success-file")],
        );
        let mut first = sink.create_writer(&SinkContext::standalone(0, 2)).unwrap();
        let mut second = sink.create_writer(&SinkContext::standalone(1, 2)).unwrap();
        first.write(&batch(vec![Some("eu")])).unwrap();
        second.write(&batch(vec![Some("us")])).unwrap();
        first.finish().unwrap();
        assert!(
            !files(&out).iter().any(|f| f.ends_with("_SUCCESS")),
            "no _SUCCESS while another writer has uncommitted files"
        );
        second.finish().unwrap();
        let success: Vec<String> = files(&out)
            .into_iter()
            .filter(|f| f.ends_with("_SUCCESS"))
            .collect();
        assert_eq!(success, vec!["Region=eu/_SUCCESS", "Region=us/_SUCCESS"]);
    }

    #[test]
    fn partition_folders_and_commit_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let sink = sink(&out, "json", &["Region"], &[]);
        assert_eq!(
            sink.describe(),
            format!(
                "filesystem(json) path={} partitioned by (Region)",
                out.display()
            )
        );
        let mut writer = sink.create_writer(&SinkContext::standalone(1, 2)).unwrap();
        writer
            .write(&batch(vec![
                Some("eu/west"),
                None,
                Some("us"),
                Some("eu/west"),
            ]))
            .unwrap();

        let before = files(&out);
        assert_eq!(before.len(), 3);
        assert!(
            before.iter().all(|f| Path::new(f)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".part-")
                && f.ends_with(".json.inprogress")),
            "nothing visible before finish: {before:?}"
        );

        writer.finish().unwrap();
        let after = files(&out);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(after.iter().all(|f| !f.contains("inprogress")));
        let eu: Vec<&String> = after
            .iter()
            .filter(|f| f.starts_with("Region=eu%2Fwest/part-"))
            .collect();
        assert_eq!(eu.len(), 1);
        assert!(
            eu[0].contains("-1-") && eu[0].ends_with(".json"),
            "instance 1 in the name: {}",
            eu[0]
        );
        assert!(after
            .iter()
            .any(|f| f.starts_with("Region=__DEFAULT_PARTITION__/part-")));
        let text = std::fs::read_to_string(out.join(eu[0])).unwrap();
        assert_eq!(
            text,
            "{\"amount\":11.00,\"ts\":\"2020-12-30 12:13:14.123456\",\"ltz\":\"2020-12-30 12:13:14.123Z\",\"x\":0.5}\n\
             {\"amount\":11.03,\"ts\":\"2020-12-30 12:13:14.123456\",\"ltz\":\"2020-12-30 12:13:14.123Z\",\"x\":0.5}\n",
            "partition columns are not repeated inside the files"
        );
    }

    #[test]
    fn parquet_files_have_lowercase_names_millis_and_zstd() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path(), "parquet", &[], &[]);
        let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
        writer.write(&batch(vec![Some("eu"), None])).unwrap();
        writer.finish().unwrap();
        let names = files(dir.path());
        assert_eq!(names.len(), 1);
        assert!(
            names[0].starts_with("part-") && names[0].ends_with("-0-0.parquet"),
            "{names:?}"
        );
        let path = dir.path().join(&names[0]);

        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        let columns = meta.file_metadata().schema_descr().columns().to_vec();
        let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
        assert_eq!(names, vec!["region", "amount", "ts", "ltz", "x"]);
        for (i, utc) in [(2, false), (3, true)] {
            let Some(LogicalType::Timestamp(t)) = columns[i].logical_type_ref() else {
                panic!("column {i} is not a timestamp")
            };
            assert_eq!(t.is_adjusted_to_u_t_c, utc);
            assert_eq!(t.unit, parquet::basic::TimeUnit::MILLIS);
        }
        let Some(LogicalType::Decimal(d)) = columns[1].logical_type_ref() else {
            panic!("decimal expected")
        };
        assert_eq!((d.precision, d.scale), (10, 2));
        let row_group = meta.row_group(0);
        assert!(matches!(
            row_group.column(0).compression(),
            Compression::ZSTD(_)
        ));
        assert!(row_group.column(1).statistics().is_some());

        let batches: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap();
        let ts = batches[0]
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 1_609_330_394_123);
    }

    #[test]
    fn rolls_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(
            dir.path(),
            "csv",
            &[],
            &[("sink.rolling-policy.file-size", "1 kb")],
        );
        let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
        for _ in 0..10 {
            writer
                .write(&batch(vec![Some("region-with-a-long-name"); 10]))
                .unwrap();
        }
        let rolled = files(dir.path());
        assert!(
            rolled.iter().filter(|f| f.ends_with(".csv")).count() >= 4,
            "{rolled:?}"
        );
        writer.finish().unwrap();
        let all = files(dir.path());
        assert!(
            all.iter()
                .all(|f| f.starts_with("part-") && f.ends_with(".csv")),
            "{all:?}"
        );
        let lines: usize = all
            .iter()
            .map(|f| {
                std::fs::read_to_string(dir.path().join(f))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(lines, 100);
        let first = std::fs::read_to_string(dir.path().join(&all[0])).unwrap();
        assert_eq!(
            first.lines().next().unwrap(),
            "region-with-a-long-name,11.00,2020-12-30 12:13:14.123456,2020-12-30 12:13:14.123Z,0.5"
        );
    }

    #[test]
    fn unfinished_files_are_removed_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path(), "parquet", &["Region"], &[]);
        let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
        writer.write(&batch(vec![Some("a"), Some("b")])).unwrap();
        assert_eq!(files(dir.path()).len(), 2);
        drop(writer);
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn rolls_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(
            dir.path(),
            "json",
            &[],
            &[("sink.rolling-policy.rollover-interval", "0 ms")],
        );
        let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
        writer.write(&batch(vec![Some("a")])).unwrap();
        writer.write(&batch(vec![Some("b")])).unwrap();
        let visible: Vec<String> = files(dir.path())
            .into_iter()
            .filter(|f| f.starts_with("part-"))
            .collect();
        assert_eq!(
            visible.len(),
            1,
            "the first file rolled when the second batch came"
        );
        writer.finish().unwrap();
        assert_eq!(files(dir.path()).len(), 2);
    }
}
