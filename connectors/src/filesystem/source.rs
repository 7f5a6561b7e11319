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

use super::config::FileSourceConfig;
use super::partition::values_from_path;
use crate::format::lines::{error_reason, ReadError};
use crate::format::parallel::{ParallelLineReader, ParallelOptions};

/// Rows per batch.
const BATCH_SIZE: usize = 8192;

/// Bytes of a file decoded as one unit by one decoding thread.
const CHUNK_BYTES: usize = 4 << 20;

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
        Ok(Self {
            table: Arc::new(Table {
                name: spec.name,
                config,
                schema: spec.schema,
                record_schema,
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
                return Err(Error::plan(format!(
                    "table '{}': the filesystem connector has no metadata key '{}' \
                     (available: file.path, file.name)",
                    spec.name, other
                )))
            }
        };
        if field.data_type() != &DataType::Utf8 {
            return Err(Error::plan(format!(
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
fn list_files(root: &Path) -> std::result::Result<Vec<PathBuf>, String> {
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
                table
                    .config
                    .format
                    .record_decoder(table.record_schema.clone(), BATCH_SIZE)
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
            ctx.metrics.add_dropped(
                &self.table.name,
                DropReason::Malformed,
                file.lines.take_dropped(),
            );
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
mod tests {
    use std::sync::atomic::AtomicBool;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        Field, Fields, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType,
    };
    use sluice_engine::connector::MetadataColumn;
    use sluice_engine::metrics::JobMetrics;

    use super::*;

    fn spec(fields: Vec<Field>, metadata: Vec<(&str, &str)>) -> TableSpec {
        TableSpec {
            name: "tx".into(),
            schema: Arc::new(Schema::new(fields)),
            metadata: metadata
                .into_iter()
                .map(|(name, key)| MetadataColumn {
                    name: name.into(),
                    key: key.into(),
                })
                .collect(),
            partition_by: vec![],
        }
    }

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs("tx", pairs)
    }

    fn context(instance: usize, parallelism: usize) -> SourceContext {
        SourceContext::new(
            Arc::new(JobMetrics::new()),
            Arc::new(AtomicBool::new(false)),
            instance,
            parallelism,
        )
    }

    /// Reads everything one instance produces: its batches and the events in order.
    fn read_all(
        source: &FileSource,
        ctx: &SourceContext,
    ) -> Result<(Vec<RecordBatch>, Vec<String>)> {
        let mut reader = source.create_reader(ctx)?;
        let mut batches = Vec::new();
        let mut events = Vec::new();
        loop {
            match reader.next(ctx)? {
                SourceEvent::Batch { partition, batch } => {
                    events.push(format!("batch {partition} {}", batch.num_rows()));
                    batches.push(batch);
                }
                SourceEvent::PartitionFinished(p) => events.push(format!("finished {p}")),
                SourceEvent::PartitionAdded(p) => events.push(format!("added {p}")),
                SourceEvent::Pending => events.push("pending".into()),
                SourceEvent::Finished => return Ok((batches, events)),
            }
        }
    }

    fn tx_fields() -> Vec<Field> {
        vec![
            Field::new("tx_hash", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("event_time", DataType::Int64, true),
        ]
    }

    fn json_source(path: &Path, extra: &[(&str, &str)], fields: Vec<Field>) -> Result<FileSource> {
        let path = path.display().to_string();
        let mut pairs = vec![("path", path.as_str()), ("format", "json")];
        pairs.extend_from_slice(extra);
        let mut o = options(&pairs);
        let source = FileSource::new(spec(fields, vec![]), &mut o)?;
        o.finish()?;
        Ok(source)
    }

    #[test]
    fn decodes_json_lines_with_blank_lines_and_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.json");
        std::fs::write(
            &file,
            "{\"tx_hash\":\"a\",\"amount\":1.5,\"event_time\":10,\"extra\":[1,2]}\n\n   \n\
             {\"tx_hash\":\"b\",\"amount\":2,\"event_time\":20}\r\n\
             {\"amount\":3.0,\"event_time\":30,\"Tx_Hash\":\"c\"}",
        )
        .unwrap();
        let source = json_source(&file, &[], tx_fields()).unwrap();
        let ctx = context(0, 1);
        let (batches, events) = read_all(&source, &ctx).unwrap();
        assert_eq!(events, vec!["batch 0 3", "finished 0"]);
        let b = &batches[0];
        assert_eq!(b.schema(), source.table.schema);
        let hashes = b.column(0).as_string::<i32>();
        assert_eq!(hashes.value(0), "a");
        assert_eq!(hashes.value(1), "b");
        // Field names are case-sensitive: `Tx_Hash` is not `tx_hash`.
        assert!(hashes.is_null(2));
        assert_eq!(
            b.column(1).as_primitive::<Float64Type>().values(),
            &[1.5, 2.0, 3.0]
        );
        assert_eq!(
            b.column(2).as_primitive::<Int64Type>().values(),
            &[10, 20, 30]
        );
        assert!(
            ctx.metrics
                .bytes_read
                .load(std::sync::atomic::Ordering::Relaxed)
                > 100
        );
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.json");
        let mut text = String::new();
        for i in 0..15 {
            text.push_str(&format!(
                "{{\"tx_hash\":\"h{i}\",\"amount\":{i},\"event_time\":{i}}}\n"
            ));
        }
        text.push('\n'); // line 16 is blank and still counts
        text.push_str("{\"tx_hash\":\"bad\",\"amount\":\n"); // line 17
        text.push_str("{\"tx_hash\":\"z\",\"amount\":1,\"event_time\":1}\n");
        std::fs::write(&file, text).unwrap();
        let source = json_source(&file, &[], tx_fields()).unwrap();
        let err = read_all(&source, &context(0, 1)).unwrap_err();
        assert_eq!(err.kind(), sluice_engine::error::ErrorKind::Data);
        let prefix = format!("table 'tx': file {} line 17: ", file.display());
        assert!(err.message().starts_with(&prefix), "{err}");

        // A wrong type is found the same way.
        std::fs::write(&file, "{\"amount\":1}\n{\"amount\":\"lots\"}\n").unwrap();
        let err = read_all(
            &json_source(&file, &[], tx_fields()).unwrap(),
            &context(0, 1),
        )
        .unwrap_err();
        assert!(err.message().contains("line 2: "), "{err}");
    }

    #[test]
    fn ignored_parse_errors_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.json");
        let mut text = String::new();
        for i in 0..20_000 {
            if i % 5000 == 7 {
                text.push_str("not json at all\n");
            }
            text.push_str(&format!(
                "{{\"tx_hash\":\"h{i}\",\"amount\":{i},\"event_time\":{i}}}\n"
            ));
        }
        text.push_str("{\"event_time\": \"not a number\"}\n");
        std::fs::write(&file, text).unwrap();
        let source =
            json_source(&file, &[("json.ignore-parse-errors", "true")], tx_fields()).unwrap();
        let ctx = context(0, 1);
        let (batches, _) = read_all(&source, &ctx).unwrap();
        let times: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(
            times,
            (0..20_000).collect::<Vec<_>>(),
            "rows kept, in file order"
        );
        assert_eq!(ctx.metrics.dropped_total(DropReason::Malformed), 5);
        assert!(batches.iter().all(|b| b.num_rows() <= BATCH_SIZE));
    }

    /// A file of good lines (event_time = row number) with bad lines of every kind mixed
    /// in; returns the text, the good event times and the line numbers of the bad lines.
    fn dirty_file(rows: i64) -> (String, Vec<i64>, Vec<u64>) {
        let bad_kinds = [
            "garbage",
            "{\"tx_hash\":\"cut\",\"amount\":",
            "{\"amount\":1}}",
            "{\"amount\":\"not a number\"}",
            "{\"event_time\":1.5e400}",
            "[1,2,3]",
        ];
        let (mut text, mut good, mut bad) = (String::new(), Vec::new(), Vec::new());
        let mut line = 0;
        for i in 0..rows {
            if i % 997 == 3 {
                line += 1;
                bad.push(line);
                text.push_str(bad_kinds[(i as usize / 997) % bad_kinds.len()]);
                text.push('\n');
            }
            if i % 1500 == 0 {
                line += 1;
                text.push_str("   \n");
            }
            line += 1;
            good.push(i);
            text.push_str(&format!(
                "{{\"tx_hash\":\"h{i}\",\"amount\":null,\"event_time\":{i}}}\n"
            ));
        }
        (text, good, bad)
    }

    fn event_times(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn every_kind_of_bad_line_is_found_among_many() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.json");
        let (text, good, bad) = dirty_file(30_000);
        std::fs::write(&file, text).unwrap();

        let source =
            json_source(&file, &[("json.ignore-parse-errors", "true")], tx_fields()).unwrap();
        let ctx = context(0, 1);
        let (batches, _) = read_all(&source, &ctx).unwrap();
        assert_eq!(event_times(&batches), good);
        assert_eq!(
            ctx.metrics.dropped_total(DropReason::Malformed),
            bad.len() as u64
        );

        // Without ignoring, the first bad line is named.
        let err = read_all(
            &json_source(&file, &[], tx_fields()).unwrap(),
            &context(0, 1),
        )
        .unwrap_err();
        assert!(
            err.message().contains(&format!(" line {}: ", bad[0])),
            "{err}"
        );
    }

    #[test]
    fn missing_fields_are_found_among_explicit_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.json");
        let mut text = String::new();
        let mut expected = Vec::new();
        for i in 0..20_000 {
            if i % 3001 == 5 {
                text.push_str(&format!("{{\"tx_hash\":null,\"event_time\":{i}}}\n"));
            } else {
                expected.push(i);
                text.push_str(&format!(
                    "{{\"tx_hash\":null,\"amount\":null,\"event_time\":{i}}}\n"
                ));
            }
        }
        std::fs::write(&file, text).unwrap();
        let options = [
            ("json.fail-on-missing-field", "true"),
            ("json.ignore-parse-errors", "true"),
        ];
        let source = json_source(&file, &options, tx_fields()).unwrap();
        let ctx = context(0, 1);
        let (batches, _) = read_all(&source, &ctx).unwrap();
        assert_eq!(event_times(&batches), expected);
        assert_eq!(ctx.metrics.dropped_total(DropReason::Malformed), 7);

        let strict = json_source(&file, &options[..1], tx_fields()).unwrap();
        let err = read_all(&strict, &context(0, 1)).unwrap_err();
        assert!(
            err.message()
                .ends_with(" line 6: field 'amount' is missing"),
            "{err}"
        );
    }

    #[test]
    fn missing_fields_are_null_or_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.json");
        std::fs::write(&file, "{\"tx_hash\":\"a\",\"amount\":null,\"event_time\":1}\n{\"tx_hash\":\"b\",\"amount\":2}\n")
            .unwrap();
        let (batches, _) = read_all(
            &json_source(&file, &[], tx_fields()).unwrap(),
            &context(0, 1),
        )
        .unwrap();
        assert!(batches[0].column(2).is_null(1));

        let strict = json_source(
            &file,
            &[("json.fail-on-missing-field", "true")],
            tx_fields(),
        )
        .unwrap();
        let err = read_all(&strict, &context(0, 1)).unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "table 'tx': file {} line 2: field 'event_time' is missing",
                file.display()
            )
        );
    }

    #[test]
    fn nested_rows_and_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("e.json");
        std::fs::write(
            &file,
            "{\"user\":{\"id\":7,\"name\":\"ann\"},\"ts\":\"2020-12-30 12:13:14.123\",\"ltz\":\"2020-12-30T12:13:14.123Z\"}\n\
             {\"user\":null,\"ts\":\"2020-12-30T12:13:14.123\",\"ltz\":1609330394123}\n",
        )
        .unwrap();
        let user = Fields::from(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let fields = vec![
            Field::new("user", DataType::Struct(user), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(
                "ltz",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ];
        let (batches, _) =
            read_all(&json_source(&file, &[], fields).unwrap(), &context(0, 1)).unwrap();
        let b = &batches[0];
        let user = b.column(0).as_struct();
        assert_eq!(user.column(0).as_primitive::<Int64Type>().value(0), 7);
        assert_eq!(user.column(1).as_string::<i32>().value(0), "ann");
        assert!(user.is_null(1));
        let ts = b.column(1).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.values(), &[1_609_330_394_123, 1_609_330_394_123]);
        let ltz = b.column(2).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ltz.values(), &[1_609_330_394_123, 1_609_330_394_123]);
    }

    #[test]
    fn csv_with_options_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tx.csv");
        std::fs::write(&file, "a;1.5;10\n'b;c';;20\n\nd;NULL;30\nbad;x;1\n").unwrap();
        let path = file.display().to_string();
        let base = [
            ("path", path.as_str()),
            ("format", "csv"),
            ("csv.field-delimiter", ";"),
            ("csv.quote-character", "'"),
            ("csv.null-literal", "NULL"),
        ];
        let mut o = options(&base);
        let source = FileSource::new(spec(tx_fields(), vec![]), &mut o).unwrap();
        o.finish().unwrap();
        let err = read_all(&source, &context(0, 1)).unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("table 'tx': file {path} line 5: ")),
            "{err}"
        );

        let mut with_ignore = base.to_vec();
        with_ignore.push(("csv.ignore-parse-errors", "true"));
        let mut o = options(&with_ignore);
        let source = FileSource::new(spec(tx_fields(), vec![]), &mut o).unwrap();
        let ctx = context(0, 1);
        let (batches, _) = read_all(&source, &ctx).unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        assert_eq!(b.column(0).as_string::<i32>().value(1), "b;c");
        assert!(b.column(1).is_null(1));
        assert!(b.column(1).is_null(2));
        assert_eq!(ctx.metrics.dropped_total(DropReason::Malformed), 1);
    }

    #[test]
    fn folders_files_instances_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::create_dir_all(root.join("_temp")).unwrap();
        for (name, n) in [
            ("a.json", 1),
            ("b/c/d.json", 2),
            ("b/e.json", 3),
            ("z.json", 4),
        ] {
            std::fs::write(root.join(name), format!("{{\"amount\":{n}}}\n")).unwrap();
        }
        std::fs::write(root.join(".hidden.json"), "{\"amount\":99}\n").unwrap();
        std::fs::write(root.join("_SUCCESS"), "").unwrap();
        std::fs::write(root.join("_temp/x.json"), "{\"amount\":99}\n").unwrap();

        let mut fields = tx_fields();
        fields.push(Field::new("path", DataType::Utf8, true));
        fields.push(Field::new("name", DataType::Utf8, true));
        let root_text = root.display().to_string();
        let mut o = options(&[("path", root_text.as_str()), ("format", "json")]);
        let source = FileSource::new(
            spec(
                fields.clone(),
                vec![("path", "file.path"), ("name", "file.name")],
            ),
            &mut o,
        )
        .unwrap();
        assert_eq!(
            source.describe(),
            format!("filesystem(json) path={root_text}")
        );

        let (batches, events) = read_all(&source, &context(0, 2)).unwrap();
        assert_eq!(
            events,
            vec!["batch 0 1", "finished 0", "batch 2 1", "finished 2"]
        );
        assert_eq!(
            batches[0].column(1).as_primitive::<Float64Type>().value(0),
            1.0
        );
        assert_eq!(
            batches[1].column(1).as_primitive::<Float64Type>().value(0),
            3.0
        );
        assert_eq!(
            batches[1].column(3).as_string::<i32>().value(0),
            root.join("b/e.json").display().to_string()
        );
        assert_eq!(batches[1].column(4).as_string::<i32>().value(0), "e.json");
        let (_, events) = read_all(&source, &context(1, 2)).unwrap();
        assert_eq!(
            events,
            vec!["batch 1 1", "finished 1", "batch 3 1", "finished 3"]
        );
        let (_, events) = read_all(&source, &context(5, 6)).unwrap();
        assert!(
            events.is_empty(),
            "an instance without files finishes at once"
        );

        let mut o = options(&[("path", root_text.as_str()), ("format", "json")]);
        let err = FileSource::new(
            spec(fields, vec![("path", "file.path"), ("name", "file.size")]),
            &mut o,
        )
        .err()
        .unwrap();
        assert!(
            err.message().contains("table 'tx'") && err.message().contains("'file.size'"),
            "{err}"
        );
    }

    #[test]
    fn partition_columns_come_from_folders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dt=2020-12-30/n=__DEFAULT_PARTITION__")).unwrap();
        std::fs::write(
            dir.path()
                .join("dt=2020-12-30/n=__DEFAULT_PARTITION__/p.json"),
            "{\"amount\":1}\n",
        )
        .unwrap();
        let fields = vec![
            Field::new("amount", DataType::Float64, true),
            Field::new("dt", DataType::Date32, true),
            Field::new("n", DataType::Int32, true),
        ];
        let mut table = spec(fields, vec![]);
        table.partition_by = vec!["dt".into(), "n".into()];
        let root = dir.path().display().to_string();
        let mut o = options(&[("path", root.as_str()), ("format", "json")]);
        let source = FileSource::new(table, &mut o).unwrap();
        let (batches, _) = read_all(&source, &context(0, 1)).unwrap();
        let b = &batches[0];
        assert_eq!(
            b.column(1)
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(0),
            18626
        );
        assert!(b.column(2).is_null(0));
    }

    #[test]
    fn missing_path_is_a_connector_error() {
        let err = json_source(Path::new("/no/such/place"), &[], tx_fields())
            .err()
            .unwrap();
        assert_eq!(err.kind(), sluice_engine::error::ErrorKind::Connector);
        assert_eq!(
            err.message(),
            "table 'tx': path '/no/such/place' does not exist"
        );
    }
}
