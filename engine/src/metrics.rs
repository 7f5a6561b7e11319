//! Job metrics: what every component counts, readable while the job runs.
//!
//! Counters are plain atomics so the hot path pays one relaxed add per batch. Dropped
//! records are counted per table and reason, because "how many were dropped and why" is a
//! question users ask of every pipeline.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The record could not be decoded (JSON/CSV parse error, wrong type) and the table
    /// ignores parse errors.
    Malformed,
    /// The record's window had already fired when it arrived.
    Late,
    /// The record's event time (rowtime) was NULL.
    NullEventTime,
    /// The sink's service refused the record for good (it is invalid there).
    Rejected,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Late => "late",
            DropReason::NullEventTime => "null event time",
            DropReason::Rejected => "rejected by the sink's service",
        }
    }
}

/// Counters of one running job, shared by all its tasks.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Records read by all sources (after decoding, before any drop).
    pub records_read: AtomicU64,
    /// Bytes read by all sources.
    pub bytes_read: AtomicU64,
    /// Records written by all sinks.
    pub records_written: AtomicU64,
    dropped: Mutex<BTreeMap<(String, DropReason), u64>>,
    /// Per window-operator instance watermarks, for progress display.
    watermarks: Mutex<BTreeMap<String, i64>>,
    /// Per source partition (Kinesis shard) counters, by (table, partition name).
    partitions: Mutex<BTreeMap<(String, String), Arc<PartitionMetrics>>>,
    /// Per sink table counters of sinks that call a service (Kinesis, Feature Store).
    sinks: Mutex<BTreeMap<String, Arc<SinkMetrics>>>,
    checkpoints: Mutex<CheckpointFigures>,
    /// The newest checkpoints, oldest first (at most [`CHECKPOINT_HISTORY`]).
    history: Mutex<VecDeque<CheckpointRecord>>,
    /// What each node of the graph emitted, by the node's stable id.
    operators: Mutex<BTreeMap<String, Arc<OperatorCounters>>>,
}

/// What one node of the graph emitted, over all its instances.
#[derive(Debug, Default)]
pub struct OperatorCounters {
    pub records: AtomicU64,
    /// The Arrow bytes (in memory) of the rows it emitted.
    pub bytes: AtomicU64,
}

/// How many checkpoints [`JobMetrics::checkpoint_history`] keeps.
pub const CHECKPOINT_HISTORY: usize = 10;

/// One checkpoint of the history: completed, or abandoned with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub id: u64,
    /// When it ended, in milliseconds since the Unix epoch.
    pub ended_at_ms: i64,
    pub duration: Duration,
    pub bytes: u64,
    /// Why it was abandoned (None: it completed).
    pub failure: Option<String>,
}

/// Completed checkpoints of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointFigures {
    pub completed: u64,
    /// Id, duration (trigger to commit) and size of the newest one.
    pub last_id: u64,
    pub last_duration: Duration,
    pub last_bytes: u64,
    /// The longest duration and the largest size so far.
    pub max_duration: Duration,
    pub max_bytes: u64,
    /// Checkpoints abandoned (timed out), and why the newest one was.
    pub failed: u64,
    pub last_failure: Option<(u64, String)>,
}

/// Counters of one sink table that writes to a service, shared by its writers.
#[derive(Debug)]
pub struct SinkMetrics {
    /// Records the service accepted.
    pub records: AtomicU64,
    /// Calls retried for any reason (throttles included).
    pub retries: AtomicU64,
    /// Calls the service refused for exceeding its rate limits.
    pub throttles: AtomicU64,
    /// Records the service rejected for good (invalid), counted and not retried.
    pub failures: AtomicU64,
    /// Latency of successful calls, in microseconds.
    latency: Mutex<Histogram<u64>>,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self {
            records: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            // 1 µs to 1 hour, 3 significant digits.
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

impl SinkMetrics {
    /// Records the latency of one successful call.
    pub fn add_latency(&self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(micros);
    }

    /// Calls that took at most each of `bounds` (cumulative counts), the sum of all
    /// latencies and the number of calls: a Prometheus histogram of the latency.
    pub fn latency_buckets(&self, bounds: &[Duration]) -> (Vec<u64>, Duration, u64) {
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts = Vec::with_capacity(bounds.len());
        for bound in bounds {
            let micros = (bound.as_micros() as u64).clamp(1, 3_600_000_000);
            counts.push(h.count_between(0, micros));
        }
        let sum = h.mean() * h.len() as f64;
        (counts, Duration::from_secs_f64(sum / 1e6), h.len())
    }

    /// The latency below which a fraction `q` of the calls completed (None before any call).
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        (!h.is_empty()).then(|| Duration::from_micros(h.value_at_quantile(q)))
    }
}

/// A snapshot of one sink's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkFigures {
    pub table: String,
    pub records: u64,
    pub retries: u64,
    pub throttles: u64,
    pub failures: u64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

/// Counters of one source partition (a Kinesis shard), updated by its reader.
#[derive(Debug, Default)]
pub struct PartitionMetrics {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// How far the reader is behind the newest record of the partition, as the service
    /// last reported it (Kinesis `MillisBehindLatest`).
    pub millis_behind_latest: AtomicU64,
    /// Calls the service refused for exceeding its rate limits.
    pub throttles: AtomicU64,
    /// Calls retried for any reason (throttles included).
    pub retries: AtomicU64,
}

/// A snapshot of one partition's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFigures {
    pub table: String,
    pub partition: String,
    pub records: u64,
    pub bytes: u64,
    pub millis_behind_latest: u64,
    pub throttles: u64,
    pub retries: u64,
}

impl JobMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_read(&self, records: u64, bytes: u64) {
        self.records_read.fetch_add(records, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_written(&self, records: u64) {
        self.records_written.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts `n` records of `table` dropped for `reason`.
    pub fn add_dropped(&self, table: &str, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        let mut dropped = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        *dropped.entry((table.to_string(), reason)).or_default() += n;
    }

    /// Dropped records per (table, reason).
    pub fn dropped(&self) -> BTreeMap<(String, DropReason), u64> {
        self.dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Total dropped for one reason, over all tables.
    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped()
            .iter()
            .filter(|((_, r), _)| *r == reason)
            .map(|(_, n)| n)
            .sum()
    }

    /// Records the watermark an operator instance has reached.
    pub fn set_watermark(&self, operator: &str, watermark: i64) {
        let mut w = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(operator.to_string(), watermark);
    }

    /// The lowest watermark over all reporting operators: how far event time has advanced.
    pub fn watermark(&self) -> Option<i64> {
        let w = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        w.values().copied().min()
    }

    /// The counters of partition `partition` of source table `table`, created on first use.
    pub fn partition(&self, table: &str, partition: &str) -> Arc<PartitionMetrics> {
        let mut p = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            p.entry((table.to_string(), partition.to_string()))
                .or_default(),
        )
    }

    /// The counters of sink table `table`, created on first use.
    pub fn sink(&self, table: &str) -> Arc<SinkMetrics> {
        let mut s = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(s.entry(table.to_string()).or_default())
    }

    /// Records a completed checkpoint.
    pub fn add_checkpoint(&self, id: u64, duration: Duration, bytes: u64) {
        let mut c = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        c.completed += 1;
        c.last_id = id;
        c.last_duration = duration;
        c.last_bytes = bytes;
        c.max_duration = c.max_duration.max(duration);
        c.max_bytes = c.max_bytes.max(bytes);
        drop(c);
        self.remember(CheckpointRecord {
            id,
            ended_at_ms: now_ms(),
            duration,
            bytes,
            failure: None,
        });
    }

    fn remember(&self, record: CheckpointRecord) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == CHECKPOINT_HISTORY {
            h.pop_front();
        }
        h.push_back(record);
    }

    /// The newest checkpoints, completed and abandoned, oldest first.
    pub fn checkpoint_history(&self) -> Vec<CheckpointRecord> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.iter().cloned().collect()
    }

    /// The counters of what node `uid` emits, created on first use.
    pub fn operator(&self, uid: &str) -> Arc<OperatorCounters> {
        let mut o = self.operators.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(o.entry(uid.to_string()).or_default())
    }

    /// Records and bytes emitted so far by each node that has emitted, by stable id.
    pub fn operators(&self) -> BTreeMap<String, (u64, u64)> {
        let o = self.operators.lock().unwrap_or_else(|p| p.into_inner());
        o.iter()
            .map(|(uid, n)| {
                let records = n.records.load(Ordering::Relaxed);
                (uid.clone(), (records, n.bytes.load(Ordering::Relaxed)))
            })
            .collect()
    }

    /// Records a checkpoint that was abandoned, and why.
    pub fn add_checkpoint_failure(&self, id: u64, reason: String) {
        let mut c = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        c.failed += 1;
        c.last_failure = Some((id, reason.clone()));
        drop(c);
        self.remember(CheckpointRecord {
            id,
            ended_at_ms: now_ms(),
            duration: Duration::ZERO,
            bytes: 0,
            failure: Some(reason),
        });
    }

    /// The checkpoints completed (and abandoned) so far.
    pub fn checkpoints(&self) -> CheckpointFigures {
        self.checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every service sink's live counters, ordered by table.
    pub fn sink_metrics(&self) -> Vec<(String, Arc<SinkMetrics>)> {
        let s = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().map(|(t, m)| (t.clone(), Arc::clone(m))).collect()
    }

    /// Every service sink's counters, ordered by table.
    pub fn sinks(&self) -> Vec<SinkFigures> {
        self.sink_metrics()
            .into_iter()
            .map(|(table, m)| SinkFigures {
                table,
                records: m.records.load(Ordering::Relaxed),
                retries: m.retries.load(Ordering::Relaxed),
                throttles: m.throttles.load(Ordering::Relaxed),
                failures: m.failures.load(Ordering::Relaxed),
                p50: m.latency_quantile(0.5),
                p99: m.latency_quantile(0.99),
            })
            .collect()
    }

    /// Every partition's counters, ordered by table and partition.
    pub fn partitions(&self) -> Vec<PartitionFigures> {
        let p = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        p.iter()
            .map(|((table, partition), m)| PartitionFigures {
                table: table.clone(),
                partition: partition.clone(),
                records: m.records.load(Ordering::Relaxed),
                bytes: m.bytes.load(Ordering::Relaxed),
                millis_behind_latest: m.millis_behind_latest.load(Ordering::Relaxed),
                throttles: m.throttles.load(Ordering::Relaxed),
                retries: m.retries.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    pub fn records_written(&self) -> u64 {
        self.records_written.load(Ordering::Relaxed)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A watermark value as the engine passes it: milliseconds of the rowtime's own clock.
pub type WatermarkMs = i64;
