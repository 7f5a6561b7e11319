//! The contract between the engine and connectors.
//!
//! A table's `WITH (...)` options are turned by a connector into a [`SourceConnector`] or a
//! [`SinkConnector`]; the engine then asks it for one reader or writer per parallel instance.
//! Readers are pull-based and synchronous: the engine runs each on its own task thread and
//! calls [`SourceReader::next`] in a loop. A connector that talks to a network service keeps
//! its own async runtime handle inside.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::metrics::JobMetrics;

/// A `METADATA FROM 'key'` column of a table: a value the connector supplies per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumn {
    /// Column name in the table.
    pub name: String,
    /// The connector's metadata key (`'timestamp'`, `'shard-id'`, ...).
    pub key: String,
}

/// What a connector is told about the table it serves.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name as written in the job file, for messages.
    pub name: String,
    /// The columns a source must produce, in this order: the physical columns (read from
    /// the data) followed by the metadata columns. For a sink: the columns it receives.
    pub schema: SchemaRef,
    /// Metadata columns (sources only); their fields are the tail of `schema`.
    pub metadata: Vec<MetadataColumn>,
    /// `PARTITIONED BY` columns, in order.
    pub partition_by: Vec<String>,
    /// Sources: the columns of `schema` (by index) the job reads; None: all of them. A
    /// source may leave the other columns NULL rather than decode them.
    pub projection: Option<Vec<usize>>,
}

/// The `WITH (...)` options of a table. Connectors take the options they understand;
/// whatever is left when they are done is an error naming the option and the table.
#[derive(Debug, Clone, Default)]
pub struct Options {
    table: String,
    values: BTreeMap<String, String>,
}

impl Options {
    pub fn new(table: impl Into<String>, values: BTreeMap<String, String>) -> Self {
        Self {
            table: table.into(),
            values,
        }
    }

    /// Options from `(key, value)` pairs, as a job file's `WITH (...)` lists them.
    pub fn from_pairs(table: impl Into<String>, pairs: &[(&str, &str)]) -> Self {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::new(table, values)
    }

    /// The table these options belong to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Looks at an option without taking it.
    pub fn peek(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Takes an option (the first of the given spellings that is present).
    pub fn take(&mut self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.values.remove(*k))
    }

    /// Takes a required option.
    pub fn take_required(&mut self, key: &str) -> Result<String> {
        self.take(&[key]).ok_or_else(|| {
            Error::config(format!("table '{}' needs the option '{}'", self.table, key))
        })
    }

    /// Takes an option and parses it with `parse`, naming option and table on failure.
    pub fn take_parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.values.remove(key) {
            None => Ok(None),
            Some(v) => parse(&v).map(Some).map_err(|e| {
                Error::config(format!(
                    "table '{}': option '{}' = '{}' is invalid: {}",
                    self.table, key, v, e
                ))
                .for_option(key)
            }),
        }
    }

    /// Takes a boolean option (`true`/`false`).
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.take_parsed(key, |v| match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected 'true' or 'false'".into()),
        })
    }

    /// Takes every option whose key starts with `prefix`, removing the prefix.
    pub fn take_prefixed(&mut self, prefix: &str) -> BTreeMap<String, String> {
        let keys: Vec<String> = self
            .values
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let v = self.values.remove(&k)?;
                Some((k[prefix.len()..].to_string(), v))
            })
            .collect()
    }

    /// Fails if any option was not taken: an option nothing consumes is a mistake.
    pub fn finish(self) -> Result<()> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(k) => Err(Error::config(format!(
                "table '{}': option '{}' is not understood by its connector",
                self.table, k
            ))
            .for_option(k.clone())),
        }
    }
}

/// What a reader's `next` returns.
#[derive(Debug)]
pub enum SourceEvent {
    /// Records from one partition (file, shard). The batch has the table's source schema.
    /// Rows of one partition are delivered in the partition's order.
    Batch {
        partition: usize,
        batch: RecordBatch,
    },
    /// The reader took on a partition it did not have before (a shard that was discovered
    /// while the job runs, such as the child of a split). Its watermark starts where the
    /// reader's watermark is, so it holds nothing back that was already released.
    PartitionAdded(usize),
    /// The partition has no more records, ever.
    PartitionFinished(usize),
    /// Nothing is available right now (unbounded sources); call again soon.
    Pending,
    /// This reader is done: every partition it owns is finished.
    Finished,
}

/// Shared state a reader can consult: metrics, and whether the job is stopping.
#[derive(Clone)]
pub struct SourceContext {
    pub metrics: Arc<JobMetrics>,
    pub stop: Arc<AtomicBool>,
    /// Index of this parallel instance and the number of instances.
    pub instance: usize,
    pub parallelism: usize,
    /// The positions of every instance of this source from the checkpoint the job resumes
    /// from, as their readers returned them from [`SourceReader::snapshot`]; empty on a
    /// fresh start. Each reader picks out the partitions it owns now, so a restore works
    /// at any parallelism.
    pub restored: Arc<Vec<Vec<u8>>>,
}

impl SourceContext {
    /// The context of a fresh start (nothing restored).
    pub fn new(
        metrics: Arc<JobMetrics>,
        stop: Arc<AtomicBool>,
        instance: usize,
        parallelism: usize,
    ) -> Self {
        Self {
            metrics,
            stop,
            instance,
            parallelism,
            restored: Arc::new(Vec::new()),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A bounded table that a stream looks rows up in (`JOIN t FOR SYSTEM_TIME AS OF
/// s.proc_time`): read whole, and read again when its contents change.
pub trait LookupConnector: Send + Sync {
    /// What the table reads, for `explain` and messages.
    fn describe(&self) -> String;
    /// A token that changes whenever the table's contents may have changed (for files:
    /// their names, sizes and modification times). Cheap next to [`LookupConnector::load`].
    fn version(&self) -> Result<String>;
    /// Every row of the table, in its source schema (the physical columns).
    fn load(&self) -> Result<Vec<RecordBatch>>;
}

/// A configured source table.
pub trait SourceConnector: Send + Sync {
    /// One line for `explain`, without secrets (`filesystem json /data/tx.jsonl`).
    fn describe(&self) -> String;
    /// True when the source ends by itself (files, `number-of-rows`).
    fn bounded(&self) -> bool;
    /// Creates the reader of parallel instance `ctx.instance` of `ctx.parallelism`.
    /// Partitions are spread over instances; an instance may get none (it finishes at once
    /// if bounded, and is idle if not).
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>>;
}

/// One parallel instance of a source.
pub trait SourceReader: Send {
    /// Partition ids this reader owns (known up front; used for per-partition watermarks).
    fn partitions(&self) -> Vec<usize>;
    /// The next event. Blocks at most briefly (say 100 ms) when nothing is available, and
    /// then returns `Pending`.
    fn next(&mut self, ctx: &SourceContext) -> Result<SourceEvent>;
    /// The reader's position: enough to resume after the last record `next` returned, and
    /// not one record earlier or later. `None` for sources that cannot resume.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// What a sink writer is told when it is created.
#[derive(Clone)]
pub struct SinkContext {
    pub metrics: Arc<JobMetrics>,
    /// Index of this parallel instance and the number of instances.
    pub instance: usize,
    pub parallelism: usize,
    /// Checkpoints are on: what the writer closes stays pending until the checkpoint that
    /// covers it completes ([`SinkWriter::prepare_commit`], [`SinkConnector::commit`]).
    pub exactly_once: bool,
}

impl SinkContext {
    pub fn new(metrics: Arc<JobMetrics>, instance: usize, parallelism: usize) -> Self {
        Self {
            metrics,
            instance,
            parallelism,
            exactly_once: false,
        }
    }

    /// A context with metrics of its own, for a writer used outside a job (tests, tools).
    pub fn standalone(instance: usize, parallelism: usize) -> Self {
        Self::new(Arc::new(JobMetrics::new()), instance, parallelism)
    }
}

/// A configured sink table.
pub trait SinkConnector: Send + Sync {
    /// One line for `explain`, without secrets.
    fn describe(&self) -> String;
    /// Creates the writer of parallel instance `ctx.instance` of `ctx.parallelism`.
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter>>;
    /// A checkpoint is complete: makes visible what its writers prepared
    /// ([`SinkWriter::prepare_commit`]), one value per writer. Must be idempotent: after a
    /// crash the same checkpoint is committed again on restore.
    fn commit(&self, _prepared: &[Vec<u8>]) -> Result<()> {
        Ok(())
    }
}

/// One parallel instance of a sink. Receives batches with the sink table's schema.
pub trait SinkWriter: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// The input ended: flush, close and commit everything (files become visible now).
    fn finish(&mut self) -> Result<()>;
    /// A checkpoint barrier: flush what was written so far and describe what the
    /// checkpoint's completion must commit ([`SinkConnector::commit`]). Sinks that deliver
    /// at least once flush and return nothing.
    fn prepare_commit(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    /// The job stopped with checkpoints on: keep nothing that no checkpoint covers (a
    /// restore writes it again). At-least-once sinks just finish.
    fn abort(&mut self) -> Result<()> {
        self.finish()
    }
    /// The input's watermark advanced (milliseconds); sinks that commit partitions by
    /// event time use it.
    fn on_watermark(&mut self, _watermark: i64) -> Result<()> {
        Ok(())
    }
    /// Before the first row of a restored job: what every writer of this sink prepared for
    /// the checkpoint restored from (the job may run at another parallelism now).
    fn restore(&mut self, _prepared: &[Vec<u8>]) -> Result<()> {
        Ok(())
    }

    /// When the writer next wants [`SinkWriter::on_timer`] called, rows or not (a file to
    /// roll after its rollover or inactivity interval).
    fn next_timer(&self) -> Option<Instant> {
        None
    }

    /// The time [`SinkWriter::next_timer`] asked for has come.
    fn on_timer(&mut self) -> Result<()> {
        Ok(())
    }
}
