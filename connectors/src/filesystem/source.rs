//! The filesystem source: local files read as partitions.
//!
//! Every file is one partition, numbered by its place in the sorted list of files, and the
//! files are dealt round-robin over the parallel instances. A reader goes through its files
//! one after the other, emitting each file's rows in file order and a `PartitionFinished`
//! after each file. Columns come from the records, from the `col=value` folders of a
//! partitioned table, or from the `file.path` / `file.name` metadata.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use sluice_engine::connector::{
    Options, SourceConnector, SourceContext, SourceEvent, SourceReader, TableSpec,
};
use sluice_engine::metrics::DropReason;
use sluice_engine::{Error, Result};

use crate::bad_records::BadRecords;

use super::config::FileSourceConfig;
use super::partition::values_from_path;
use crate::format::lines::{error_reason, ReadError};
use crate::format::parallel::{ParallelLineReader, ParallelOptions};

/// Rows per batch.
const BATCH_SIZE: usize = 8192;

/// Bytes of a file decoded as one unit by one decoding thread. With the chunk buffers
/// reused, 1 MiB decodes within a few percent of 4 MiB and keeps about 18 MB less in
/// flight (benches/README.md, "Throughput round 2, continued").
const CHUNK_BYTES: usize = 1 << 20;

/// Where an output column's values come from.
#[derive(Debug, Clone)]
enum ColumnSource {
    /// Column `i` of the decoded records.
    Record(usize),
    /// A `PARTITIONED BY` column, parsed from the file's folders.
    Partition(String),
    /// `METADATA FROM 'file.path'`.
    FilePath,
    /// `METADATA FROM 'file.name'`.
    FileName,
}

/// What all readers of one table share.
struct Table {
    name: String,
    config: FileSourceConfig,
    /// The table's source schema: what readers emit.
    schema: SchemaRef,
    /// The columns read from the records.
    record_schema: SchemaRef,
    /// The columns of `record_schema` the job reads (None: all); the others stay NULL.
    record_projection: Option<Vec<usize>>,
    columns: Vec<ColumnSource>,
    /// Every file of the table, sorted; a file's index is its partition id.
    files: Vec<PathBuf>,
}

/// A filesystem table used as a source.
pub struct FileSource {
    table: Arc<Table>,
}

impl FileSource {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        let config = FileSourceConfig::take(options)?;
        let (record_schema, columns) = plan_columns(&spec)?;
        config.format.check_readable(&spec.name, &record_schema)?;
        // Build one decoder now so an unsupported column type is a plan error.
        config
            .format
            .record_decoder(record_schema.clone(), BATCH_SIZE)
            .map_err(|e| e.context(format!("table '{}'", spec.name)))?;
        let files = list_files(&config.path).map_err(|e| {
            Error::connector(format!(
                "table '{}': path '{}' {}",
                spec.name,
                config.path.display(),
                e
            ))
        })?;
        // The job's columns that come from the records, as indices of `record_schema`.
        let record_projection = spec.projection.as_ref().map(|read| {
            columns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    ColumnSource::Record(r) if read.contains(&i) => Some(*r),
                    _ => None,
                })
                .collect()
        });
        Ok(Self {
            table: Arc::new(Table {
                name: spec.name,
                config,
                schema: spec.schema,
                record_schema,
                record_projection,
                columns,
                files,
            }),
        })
    }
}

/// Splits the table's columns into those read from records and those the source fills in.
fn plan_columns(spec: &TableSpec) -> Result<(SchemaRef, Vec<ColumnSource>)> {
    let fields = spec.schema.fields();
    let physical = fields
        .len()
        .checked_sub(spec.metadata.len())
        .ok_or_else(|| {
            Error::internal(format!(
                "table '{}': more metadata columns than columns",
                spec.name
            ))
        })?;
    let mut record_fields = Vec::new();
    let mut columns = Vec::with_capacity(fields.len());
    for field in &fields[..physical] {
        if spec.partition_by.contains(field.name()) {
            columns.push(ColumnSource::Partition(field.name().clone()));
        } else {
            columns.push(ColumnSource::Record(record_fields.len()));
            record_fields.push(field.clone());
        }
    }
    for (meta, field) in spec.metadata.iter().zip(&fields[physical..]) {
        let source = match meta.key.as_str() {
            "file.path" => ColumnSource::FilePath,
            "file.name" => ColumnSource::FileName,
            other => {
                return Err(Error::config(format!(
                    "table '{}': the filesystem connector has no metadata key '{}' \
                     (available: file.path, file.name)",
                    spec.name, other
                )))
            }
        };
        if field.data_type() != &DataType::Utf8 {
            return Err(Error::config(format!(
                "table '{}': metadata column '{}' must be STRING",
                spec.name, meta.name
            )));
        }
        columns.push(source);
    }
    Ok((Arc::new(Schema::new(record_fields)), columns))
}

/// The regular files at `root`: the file itself, or everything below the folder except names
/// starting with `.` or `_` (hidden, in-progress and marker files), sorted by path.
pub(super) fn list_files(root: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let metadata = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read: {e}"),
    })?;
    if metadata.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| format!("cannot be listed: {}: {e}", folder.display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| format!("cannot be listed: {}: {e}", folder.display()))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(['.', '_']) {
                continue;
            }
            let path = entry.path();
            // `metadata` follows symbolic links, so linked files and folders are read too.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => folders.push(path),
                Ok(m) if m.is_file() => files.push(path),
                _ => {}
            }
        }
    }
    files.sort();
    Ok(files)
}

impl SourceConnector for FileSource {
    fn describe(&self) -> String {
        format!(
            "filesystem({}) path={}",
            self.table.config.format.name(),
            self.table.config.path.display()
        )
    }

    fn bounded(&self) -> bool {
        true
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        let parallelism = ctx.parallelism.max(1);
        let restored = Position::merge(&self.table.name, &ctx.restored)?;
        // Files read to their end before the checkpoint are not read again.
        let partitions: Vec<usize> = (0..self.table.files.len())
            .filter(|p| p % parallelism == ctx.instance && !restored.finished.contains(p))
            .collect();
        let skip = partitions
            .iter()
            .filter_map(|p| restored.rows.get(p).map(|n| (*p, *n)))
            .collect();
        // The files this instance owns that were finished stay finished in its positions
        // (rows read again are counted as they are skipped).
        let position = Position {
            rows: Default::default(),
            finished: restored
                .finished
                .iter()
                .copied()
                .filter(|p| p % parallelism == ctx.instance)
                .collect(),
        };
        Ok(Box::new(FileReader {
            table: self.table.clone(),
            partitions,
            next: 0,
            current: None,
            position,
            skip,
            malformed: BadRecords::new(
                self.table.name.clone(),
                DropReason::Malformed,
                false,
                Arc::clone(&ctx.metrics),
            ),
        }))
    }
}

/// Where readers are: rows delivered per file being read, and the files read to the end.
/// Files are read in order and decoded deterministically, so a row count is an exact
/// position.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    rows: std::collections::BTreeMap<usize, u64>,
    finished: std::collections::BTreeSet<usize>,
}

impl Position {
    /// Every instance's position from a checkpoint, merged (each file had one reader).
    fn merge(table: &str, restored: &[Vec<u8>]) -> Result<Self> {
        let mut all = Position::default();
        for blob in restored.iter().filter(|b| !b.is_empty()) {
            let p: Position = serde_json::from_slice(blob).map_err(|e| {
                Error::connector(format!(
                    "table '{table}': the checkpoint's file positions are damaged: {e}"
                ))
            })?;
            all.finished.extend(p.finished);
            for (file, rows) in p.rows {
                let entry = all.rows.entry(file).or_default();
                *entry = (*entry).max(rows);
            }
        }
        for file in &all.finished {
            all.rows.remove(file);
        }
        Ok(all)
    }
}

/// One parallel instance: reads its files one after the other.
struct FileReader {
    table: Arc<Table>,
    partitions: Vec<usize>,
    /// Index into `partitions` of the next file to open.
    next: usize,
    current: Option<OpenFile>,
    /// What this reader has delivered so far (its checkpoint position).
    position: Position,
    /// Rows of a file delivered before the checkpoint this run resumes from: skipped.
    skip: std::collections::HashMap<usize, u64>,
    /// Lines that do not decode, in a table that ignores parse errors: counted.
    malformed: BadRecords,
}

/// A file being read.
struct OpenFile {
    partition: usize,
    path: String,
    name: String,
    lines: ParallelLineReader,
    /// Values of the partition columns, by name, from the file's folders.
    partition_values: Vec<(String, Option<String>)>,
}

impl FileReader {
    fn open(&self, partition: usize) -> Result<OpenFile> {
        let table = &self.table;
        let path = &table.files[partition];
        let file = File::open(path).map_err(|e| {
            Error::connector(format!(
                "table '{}': cannot open file {}: {e}",
                table.name,
                path.display()
            ))
        })?;
        // One decoder per core: decoding is the work, and the file's rows must stay in order.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decoders = (0..threads)
            .map(|_| {
                table.config.format.projected_decoder(
                    table.record_schema.clone(),
                    table.record_projection.as_deref(),
                    BATCH_SIZE,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OpenFile {
            partition,
            path: path.display().to_string(),
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            lines: ParallelLineReader::new(
                file,
                decoders,
                ParallelOptions {
                    schema: table.record_schema.clone(),
                    batch_size: BATCH_SIZE,
                    ignore_parse_errors: table.config.format.ignore_parse_errors(),
                    chunk_bytes: CHUNK_BYTES,
                    label: Some(format!("table '{}': file {}", table.name, path.display()).into()),
                },
            ),
            partition_values: values_from_path(&table.config.path, path),
        })
    }

    /// The table's row for the decoded `records` of `file`.
    fn complete(&self, file: &OpenFile, records: RecordBatch) -> Result<RecordBatch> {
        let rows = records.num_rows();
        let repeated = |text: Option<&str>| -> ArrayRef {
            Arc::new(StringArray::from_iter(std::iter::repeat_n(text, rows)))
        };
        let mut columns = Vec::with_capacity(self.table.columns.len());
        for (source, field) in self.table.columns.iter().zip(self.table.schema.fields()) {
            let column = match source {
                ColumnSource::Record(i) => records.column(*i).clone(),
                ColumnSource::FilePath => repeated(Some(&file.path)),
                ColumnSource::FileName => repeated(Some(&file.name)),
                ColumnSource::Partition(name) => {
                    let value = file
                        .partition_values
                        .iter()
                        .find(|(n, _)| n == name)
                        .and_then(|(_, v)| v.as_deref());
                    cast(&repeated(value), field.data_type()).map_err(|e| {
                        Error::data(format!(
                            "table '{}': file {}: partition value of '{}' is not a {}: {}",
                            self.table.name,
                            file.path,
                            name,
                            field.data_type(),
                            error_reason(&e)
                        ))
                    })?
                }
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.table.schema.clone(), columns)
            .map_err(|e| Error::internal(format!("table '{}': {e}", self.table.name)))
    }

    fn read_error(&self, file: &OpenFile, error: ReadError) -> Error {
        let table = &self.table.name;
        match error {
            ReadError::Io(e) => {
                Error::connector(format!("table '{table}': file {}: {e}", file.path))
            }
            ReadError::Malformed { line, reason } => Error::data(format!(
                "table '{table}': file {} line {line}: {reason}",
                file.path
            )),
            ReadError::Decoder(e) => {
                Error::internal(format!("table '{table}': file {}: {e}", file.path))
            }
        }
    }
}

impl SourceReader for FileReader {
    fn partitions(&self) -> Vec<usize> {
        self.partitions.clone()
    }

    fn next(&mut self, ctx: &SourceContext) -> Result<SourceEvent> {
        loop {
            if ctx.stopping() {
                return Ok(SourceEvent::Finished);
            }
            let mut file = match self.current.take() {
                Some(file) => file,
                None => match self.partitions.get(self.next) {
                    None => return Ok(SourceEvent::Finished),
                    Some(&partition) => {
                        self.next += 1;
                        self.open(partition)?
                    }
                },
            };
            let result = file.lines.next_batch();
            ctx.metrics.add_read(0, file.lines.take_bytes_read());
            self.malformed.count(file.lines.take_dropped());
            match result {
                Ok(Some(mut records)) if records.num_rows() > 0 => {
                    let partition = file.partition;
                    if let Some(skip) = self.skip.get_mut(&partition) {
                        let rows = records.num_rows() as u64;
                        if rows <= *skip {
                            *skip -= rows;
                            *self.position.rows.entry(partition).or_default() += rows;
                            self.current = Some(file);
                            continue;
                        }
                        records = records.slice(*skip as usize, (rows - *skip) as usize);
                        *self.position.rows.entry(partition).or_default() += *skip;
                        self.skip.remove(&partition);
                    }
                    let batch = self.complete(&file, records)?;
                    *self.position.rows.entry(partition).or_default() += batch.num_rows() as u64;
                    self.current = Some(file);
                    return Ok(SourceEvent::Batch { partition, batch });
                }
                Ok(Some(_)) => self.current = Some(file),
                Ok(None) => {
                    self.position.rows.remove(&file.partition);
                    self.position.finished.insert(file.partition);
                    return Ok(SourceEvent::PartitionFinished(file.partition));
                }
                Err(e) => return Err(self.read_error(&file, e)),
            }
        }
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        serde_json::to_vec(&self.position)
            .map(Some)
            .map_err(|e| Error::internal(format!("table '{}': {e}", self.table.name)))
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
