//! The Kinesis source: one reader per parallel instance, one polling task per shard.
//!
//! Each shard a reader is given is polled by its own task on the AWS runtime: GetRecords at
//! most 5 times a second, a pause after an empty response, retries with backoff on
//! throttling and transient failures, a fresh iterator after the last delivered sequence
//! number when one expires. The task decodes the records and hands the batch to the reader
//! over a bounded channel, so a slow job slows the polling down. The reader returns the
//! batches from `next` and records, per shard, the last sequence number it delivered: its
//! [`Snapshot`] resumes after exactly that record.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arrow::array::RecordBatch;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use chrono::{DateTime, Utc};
use sluice_engine::connector::{
    Options, SourceConnector, SourceContext, SourceEvent, SourceReader, TableSpec,
};
use sluice_engine::metrics::{DropReason, JobMetrics, PartitionMetrics};
use sluice_engine::{Error, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{Bound, KinesisSourceConfig, StreamRef};
use super::records::{KinesisRecord, RecordLayout, RecordsDecoder};
use super::shards::{stream_error, Assignment, Coordinator, Position, Snapshot};
use crate::aws::{retry, runtime, sdk_config, Failure};
use crate::bad_records::BadRecords;

/// Kinesis allows 5 GetRecords calls a second per shard.
const MIN_CALL_GAP: Duration = Duration::from_millis(200);

/// And 2 MiB of data a second per shard: a call that returned more is paid off before the
/// next (Kinesis refuses the calls of the next 5 seconds after a 10 MiB answer).
const READ_BYTES_PER_SECOND: f64 = (2 << 20) as f64;

/// When the next GetRecords call of a shard may go out, after one at `at` that returned
/// `bytes` of data: no sooner than Kinesis's limits allow, so reading at full speed is
/// not throttled (as Flink's adaptive reads keep under them).
fn next_call_at(at: Instant, bytes: usize) -> Instant {
    at + MIN_CALL_GAP.max(Duration::from_secs_f64(
        bytes as f64 / READ_BYTES_PER_SECOND,
    ))
}

/// The records the first GetRecords call of a shard asks for (at most): few, since a
/// record may be an aggregate of many (KPL's are up to 50 KB).
const FIRST_CALL_RECORDS: i32 = 20;

/// The share of a shard's read limit the calls are sized for: the service counts a call's
/// bytes when it answers, a little after the client's clock, so calls sized at exactly the
/// limit are sometimes refused.
const READ_LIMIT_SHARE: f64 = 0.9;

/// How many records to ask the next call for, after one that returned `records` records
/// of `bytes` bytes: as many as one call's share of the shard's 2 MiB/s holds (five calls a
/// second), at most `max` (`source.shard.get-records.max-record-count`). Reading a
/// backlog at the full rate then takes small answers, not a 10 MB answer every 5 seconds
/// per shard, which with many shards would hold gigabytes at once.
fn next_limit(records: usize, bytes: usize, max: i32) -> i32 {
    if records == 0 || bytes == 0 {
        return max;
    }
    let per_call = READ_LIMIT_SHARE * READ_BYTES_PER_SECOND * MIN_CALL_GAP.as_secs_f64();
    let average = bytes as f64 / records as f64;
    ((per_call / average) as i32).clamp(1, max.max(1))
}

/// Batches in flight from a reader's shard tasks to the reader.
const CHANNEL_CAPACITY: usize = 8;

/// How long `next` waits for a batch before it says `Pending`.
const POLL: Duration = Duration::from_millis(100);

/// What a table's readers share.
struct Table {
    name: String,
    config: KinesisSourceConfig,
    layout: RecordLayout,
}

/// A Kinesis table used as a source.
pub struct KinesisSource {
    table: Arc<Table>,
    /// The coordinator of the running job, shared by its readers.
    coordinator: Mutex<Weak<Coordinator>>,
}

impl KinesisSource {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        let config = KinesisSourceConfig::take(options)?;
        let layout = RecordLayout::new(&spec, &config.format)?;
        Ok(Self {
            table: Arc::new(Table {
                name: spec.name,
                config,
                layout,
            }),
            coordinator: Mutex::new(Weak::new()),
        })
    }

    fn coordinator(&self, ctx: &SourceContext) -> Result<Arc<Coordinator>> {
        let mut slot = self.coordinator.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return Ok(c);
        }
        let table = &self.table;
        let restored = if ctx.restored.is_empty() {
            None
        } else {
            Some(Snapshot::merge(&ctx.restored, &table.name)?)
        };
        let config = &table.config;
        let coordinator = runtime().block_on(async {
            let sdk = sdk_config(&format!("table '{}'", table.name), &config.aws).await?;
            Coordinator::start(
                table.name.clone(),
                config,
                Client::new(&sdk),
                restored,
                ctx.parallelism,
            )
            .await
        })?;
        *slot = Arc::downgrade(&coordinator);
        Ok(coordinator)
    }
}

impl SourceConnector for KinesisSource {
    fn describe(&self) -> String {
        let c = &self.table.config;
        format!(
            "kinesis {} {}{}",
            c.stream.name(),
            c.format.name(),
            if c.bound == Bound::Latest {
                " bounded=latest"
            } else {
                ""
            }
        )
    }

    fn bounded(&self) -> bool {
        self.table.config.bound == Bound::Latest
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        let coordinator = self.coordinator(ctx)?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut reader = KinesisReader {
            table: Arc::clone(&self.table),
            coordinator,
            instance: ctx.instance,
            bound_at: Utc::now(),
            tx,
            rx,
            tasks: HashMap::new(),
            partitions: Vec::new(),
            positions: BTreeMap::new(),
            pending: VecDeque::new(),
            metrics: Arc::clone(&ctx.metrics),
            malformed: BadRecords::new(
                self.table.name.clone(),
                DropReason::Malformed,
                false,
                Arc::clone(&ctx.metrics),
            ),
            stop: Arc::clone(&ctx.stop),
        };
        // The first shards are known now, so the engine knows the partitions up front.
        for assignment in reader.coordinator.take_assignments(ctx.instance) {
            reader.start_shard(assignment);
        }
        reader.pending.clear();
        Ok(Box::new(reader))
    }
}

/// What a shard task tells its reader.
enum FromShard {
    Records {
        partition: usize,
        shard_id: String,
        batch: Option<RecordBatch>,
        /// The sequence number of the last record in (or dropped from) the batch.
        last_sequence: String,
        bytes: u64,
        malformed: u64,
        first_reason: Option<String>,
    },
    Finished {
        partition: usize,
        shard_id: String,
    },
    Failed(Error),
}

/// One parallel instance of a Kinesis source.
pub struct KinesisReader {
    table: Arc<Table>,
    coordinator: Arc<Coordinator>,
    instance: usize,
    /// `scan.bounded = 'latest'` reads records that arrived before this instant.
    bound_at: DateTime<Utc>,
    tx: mpsc::Sender<FromShard>,
    rx: mpsc::Receiver<FromShard>,
    tasks: HashMap<usize, JoinHandle<()>>,
    partitions: Vec<usize>,
    /// Per shard, where a restart resumes: after the last record `next` returned.
    positions: BTreeMap<String, Position>,
    pending: VecDeque<SourceEvent>,
    /// Records that do not decode (the table ignores parse errors, or they would have
    /// stopped the job in the shard's task).
    malformed: BadRecords,
    metrics: Arc<JobMetrics>,
    stop: Arc<AtomicBool>,
}

impl KinesisReader {
    fn start_shard(&mut self, assignment: Assignment) {
        let Assignment {
            partition,
            shard_id,
            start,
        } = assignment;
        self.partitions.push(partition);
        self.positions.insert(shard_id.clone(), start.clone());
        self.pending
            .push_back(SourceEvent::PartitionAdded(partition));
        let task = ShardTask {
            metrics: self.metrics.partition(&self.table.name, &shard_id),
            table: Arc::clone(&self.table),
            client: self.coordinator_client(),
            partition,
            shard_id,
            start,
            tx: self.tx.clone(),
            stop: Arc::clone(&self.stop),
            bound_at: (self.table.config.bound == Bound::Latest)
                .then(|| self.bound_at.timestamp_millis()),
        };
        self.tasks
            .insert(partition, runtime().spawn(task.run_and_report()));
    }

    fn coordinator_client(&self) -> Client {
        self.coordinator.client().clone()
    }
}

impl SourceReader for KinesisReader {
    fn partitions(&self) -> Vec<usize> {
        self.partitions.clone()
    }

    fn next(&mut self, ctx: &SourceContext) -> Result<SourceEvent> {
        loop {
            if ctx.stopping() {
                return Ok(SourceEvent::Finished);
            }
            if let Some(e) = self.coordinator.error() {
                return Err(e);
            }
            for assignment in self.coordinator.take_assignments(self.instance) {
                self.start_shard(assignment);
            }
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let message =
                runtime().block_on(async { tokio::time::timeout(POLL, self.rx.recv()).await });
            match message {
                Ok(Some(FromShard::Records {
                    partition,
                    shard_id,
                    batch,
                    last_sequence,
                    bytes,
                    malformed,
                    first_reason,
                })) => {
                    ctx.metrics.add_read(0, bytes);
                    if malformed > 0 {
                        // The decoder gives the first reason of a batch; the rest are counted.
                        let what = format!("a malformed record of shard {shard_id}");
                        let reason = first_reason.unwrap_or_else(|| "malformed".into());
                        self.malformed.reject(&what, &reason, None)?;
                        self.malformed.count(malformed - 1);
                    }
                    self.positions
                        .insert(shard_id, Position::After(last_sequence));
                    if let Some(batch) = batch {
                        return Ok(SourceEvent::Batch { partition, batch });
                    }
                }
                Ok(Some(FromShard::Finished {
                    partition,
                    shard_id,
                })) => {
                    self.tasks.remove(&partition);
                    self.positions.insert(shard_id.clone(), Position::Finished);
                    self.coordinator.finished(&shard_id);
                    return Ok(SourceEvent::PartitionFinished(partition));
                }
                Ok(Some(FromShard::Failed(e))) => return Err(e),
                // The reader holds a sender itself, so the channel never closes.
                Ok(None) => return Err(Error::internal("kinesis reader channel closed")),
                Err(_) => {
                    if self.tasks.is_empty() && self.coordinator.bounded_done() {
                        return Ok(SourceEvent::Finished);
                    }
                    return Ok(SourceEvent::Pending);
                }
            }
        }
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let snapshot = Snapshot {
            shards: self.positions.clone(),
        };
        serde_json::to_vec(&snapshot)
            .map(Some)
            .map_err(|e| Error::internal(format!("kinesis snapshot: {e}")))
    }
}

impl Drop for KinesisReader {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

/// The polling of one shard.
struct ShardTask {
    table: Arc<Table>,
    client: Client,
    partition: usize,
    shard_id: String,
    start: Position,
    tx: mpsc::Sender<FromShard>,
    stop: Arc<AtomicBool>,
    metrics: Arc<PartitionMetrics>,
    /// Bounded reads end at the first record that arrived after this (epoch ms).
    bound_at: Option<i64>,
}

impl ShardTask {
    async fn run_and_report(self) {
        let tx = self.tx.clone();
        if let Err(e) = self.run().await {
            let _ = tx.send(FromShard::Failed(e)).await;
        }
    }

    async fn run(self) -> Result<()> {
        let mut decoder = self.table.layout.decoder()?;
        let config = &self.table.config;
        let finished = FromShard::Finished {
            partition: self.partition,
            shard_id: self.shard_id.clone(),
        };
        if self.start == Position::Finished {
            let _ = self.tx.send(finished).await;
            return Ok(());
        }
        let mut last_sequence = match &self.start {
            Position::After(s) => Some(s.clone()),
            _ => None,
        };
        let Some(mut iterator) = self.iterator(&self.start).await? else {
            let _ = self.tx.send(finished).await;
            return Ok(());
        };
        // Said once the iterator exists: from here on, nothing written is missed.
        tracing::info!(
            "table '{}': reading shard {} from {}",
            self.table.name,
            self.shard_id,
            self.start.describe()
        );
        let mut next_call: Option<Instant> = None;
        // Until a first answer shows how large the records are, a modest call: a first
        // call of 10,000 records on each of many shards would hold gigabytes at once.
        let mut limit = config.max_records.min(FIRST_CALL_RECORDS);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(at) = next_call {
                tokio::time::sleep_until(at).await;
            }
            let call = retry(&self.what("GetRecords"), Some(&*self.metrics), || {
                let call = self
                    .client
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(limit);
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            })
            .await;
            let output = match call {
                Ok(o) => o,
                Err(Failure::ExpiredIterator) => {
                    next_call = Some(next_call_at(Instant::now(), 0));
                    // Resume after the last record read, or where the shard started.
                    let from = last_sequence
                        .clone()
                        .map_or(self.start.clone(), Position::After);
                    match self.iterator(&from).await? {
                        Some(i) => iterator = i,
                        None => {
                            let _ = self.tx.send(finished).await;
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(f) => return Err(self.shard_error("GetRecords", &f)),
            };
            let data_bytes: usize = output
                .records()
                .iter()
                .map(|r| r.data().as_ref().len())
                .sum();
            // From the answer, not the request: a request sent 200 ms after the last
            // answer reaches the service more than 200 ms after the last request did, however
            // long the calls take, so the shard's limits are never overrun.
            next_call = Some(next_call_at(Instant::now(), data_bytes));
            limit = next_limit(output.records().len(), data_bytes, config.max_records);
            let behind = output.millis_behind_latest();
            if let Some(ms) = behind {
                self.metrics
                    .millis_behind_latest
                    .store(ms.max(0) as u64, Ordering::Relaxed);
            }
            let mut records = Vec::with_capacity(output.records().len());
            let mut past_bound = false;
            for r in output.records() {
                let arrival_ms = r
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok());
                if let (Some(bound), Some(arrival)) = (self.bound_at, arrival_ms) {
                    if arrival > bound {
                        past_bound = true;
                        break;
                    }
                }
                records.push(KinesisRecord {
                    data: r.data().as_ref().to_vec(),
                    partition_key: r.partition_key().unwrap_or_default().to_string(),
                    sequence_number: r.sequence_number().to_string(),
                    arrival_ms,
                });
            }
            let empty = records.is_empty();
            if let Some(last) = records.last() {
                last_sequence = Some(last.sequence_number.clone());
                let message = self.decode(&mut decoder, &records)?;
                if self.tx.send(message).await.is_err() {
                    return Ok(());
                }
            }
            let caught_up = empty && behind.is_none_or(|ms| ms == 0);
            // The end of a closed shard: no next iterator (and, since 2020, its children).
            let at_end = output.next_shard_iterator().is_none()
                || (empty && !output.child_shards().is_empty());
            match output.next_shard_iterator().filter(|_| !at_end) {
                None => {
                    tracing::info!(
                        "table '{}': shard {} is closed and read to its end",
                        self.table.name,
                        self.shard_id
                    );
                    let _ = self.tx.send(finished).await;
                    return Ok(());
                }
                Some(_) if self.bound_at.is_some() && (past_bound || caught_up) => {
                    let _ = self.tx.send(finished).await;
                    return Ok(());
                }
                Some(next) => iterator = next.to_string(),
            }
            if empty {
                tokio::time::sleep(config.empty_fetch_interval).await;
            }
        }
    }

    fn decode(&self, decoder: &mut RecordsDecoder, records: &[KinesisRecord]) -> Result<FromShard> {
        let bytes: u64 = records.iter().map(|r| r.data.len() as u64).sum();
        let decoded = decoder.decode(&self.shard_id, records)?;
        let rows = decoded.batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.metrics.records.fetch_add(rows, Ordering::Relaxed);
        self.metrics.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(FromShard::Records {
            partition: self.partition,
            shard_id: self.shard_id.clone(),
            batch: decoded.batch,
            last_sequence: records
                .last()
                .map(|r| r.sequence_number.clone())
                .unwrap_or_default(),
            bytes,
            malformed: decoded.malformed,
            first_reason: decoded.first_reason,
        })
    }

    /// A shard iterator at `position`; `None` when the shard has nothing there to read.
    async fn iterator(&self, position: &Position) -> Result<Option<String>> {
        let stream = &self.table.config.stream;
        let output = retry(&self.what("GetShardIterator"), Some(&*self.metrics), || {
            let mut call = self.client.get_shard_iterator().shard_id(&self.shard_id);
            call = match stream {
                StreamRef::Name(n) => call.stream_name(n),
                StreamRef::Arn(a) => call.stream_arn(a),
            };
            call = match position {
                Position::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
                Position::TrimHorizon | Position::Finished => {
                    call.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                Position::AtTimestamp(ms) => call
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from_millis(*ms)),
                Position::After(seq) => call
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
            };
            async move { call.send().await.map_err(|e| Failure::of(&e)) }
        })
        .await
        .map_err(|f| self.shard_error("GetShardIterator", &f))?;
        Ok(output.shard_iterator().map(str::to_string))
    }

    /// A call on this shard, for messages.
    fn what(&self, call: &str) -> String {
        format!(
            "table '{}': shard {}: {call}",
            self.table.name, self.shard_id
        )
    }

    fn shard_error(&self, call: &str, failure: &Failure) -> Error {
        let e = stream_error(&self.table.name, &self.table.config.stream, call, failure);
        Error::connector(format!("{} (shard {})", e.message(), self.shard_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_keep_under_five_a_second_and_two_mib_a_second() {
        let at = Instant::now();
        assert_eq!(next_call_at(at, 0), at + MIN_CALL_GAP);
        assert_eq!(next_call_at(at, 400_000), at + MIN_CALL_GAP);
        // 10 MiB: the next 5 seconds are paid for.
        assert_eq!(next_call_at(at, 10 << 20), at + Duration::from_secs(5));
    }

    #[test]
    fn calls_ask_for_a_fifth_of_two_mib() {
        assert_eq!(next_limit(0, 0, 10_000), 10_000);
        // 1 KB records: about 377 KB a call (90 % of a fifth of 2 MiB).
        assert_eq!(next_limit(100, 100_000, 10_000), 377);
        assert_eq!(next_limit(10, 100, 10_000), 10_000);
        assert_eq!(next_limit(1, 5 << 20, 10_000), 1);
        assert_eq!(next_limit(100, 100_000, 200), 200);
    }
}
