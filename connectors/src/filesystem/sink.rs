//! The filesystem sink: rows written to part files in Hive partition folders.
//!
//! Each parallel instance keeps one open [`PartFile`] per partition folder it has rows for.
//! A file is closed when it reaches the rolling size, when it has been open for the rollover
//! interval or idle for the inactivity interval (a timer of the engine's, so a file of a
//! stream that went quiet is closed too), and at the end of the input. A closed local file is visible at once; a closed S3 file (an upload)
//! stays pending until the end of the input, when every pending upload is completed.
//!
//! With checkpoints (exactly once), every file is closed at a checkpoint barrier and stays
//! hidden (a local file under its in-progress name, an S3 upload uncompleted); the
//! checkpoint keeps the pending files ([`PendingFile`]) and, when it completes, the sink
//! commits them, then commits the partitions whose trigger fired (see [`super::commit`]).
//! A restore commits the restored checkpoint again; commits are idempotent.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Schema};
use sluice_engine::connector::{Options, SinkConnector, SinkContext, SinkWriter, TableSpec};
use sluice_engine::{Error, Result};

use super::commit::{CommitPolicy, Committer, PartitionReport};
use super::config::{FileSinkConfig, RollingPolicy};
use super::part_file::{Closed, FileEncoding, LocalPending, PartFile, Storage};
use super::partition::PartitionPath;
use crate::aws::glue::{CatalogTable, GlueCatalog};
use crate::aws::s3::{PendingUpload, S3Pending, S3Target};
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
    /// Files a completed checkpoint committed that their writer has not yet been told of.
    /// A writer hands every file it prepared to each checkpoint until it finds the file
    /// here: a checkpoint that is abandoned (timed out) leaves its files to the next one,
    /// as Flink's committer carries the committables of a failed checkpoint over.
    committed_files: Mutex<HashSet<PendingFile>>,
}

/// A closed file that a checkpoint keeps until it is committed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
                Error::config(format!(
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
                committed_files: Mutex::default(),
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
            table
                .committed_files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(prepared.files);
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

    /// When the next open file is due to roll by time.
    fn next_roll(&self) -> Option<Instant> {
        let RollingPolicy {
            rollover_interval,
            inactivity_interval,
            ..
        } = self.table.config.rolling;
        // An interval too long to add to an instant never comes.
        self.open
            .values()
            .flat_map(|f| {
                [
                    f.opened_at.checked_add(rollover_interval),
                    f.last_write.checked_add(inactivity_interval),
                ]
            })
            .flatten()
            .min()
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
    fn next_timer(&self) -> Option<Instant> {
        self.next_roll()
    }

    fn on_timer(&mut self) -> Result<()> {
        self.roll_by_time()
    }

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
        // Files of earlier checkpoints not known to be committed go again (committing is
        // idempotent), so none is lost with a checkpoint that never completes.
        {
            let mut committed = self
                .table
                .committed_files
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.prepared.retain(|file| !committed.remove(file));
        }
        self.prepared
            .extend(self.local_pending.drain(..).map(PendingFile::Local));
        self.prepared.extend(
            self.pending
                .drain(..)
                .map(|upload| PendingFile::S3(upload.hand_over())),
        );
        let files = self.prepared.clone();
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
        serde_json::to_vec(&prepared)
            .map_err(|e| Error::internal(format!("table '{}': {e}", self.table.name)))
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
#[path = "sink_tests.rs"]
mod tests;
