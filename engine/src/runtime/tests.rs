//! Unit tests of `mod`.
use std::sync::Mutex;

use arrow::array::TimestampMillisecondArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::physical_expr::expressions::Column;

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use super::exchange::CHANNEL_CAPACITY;
use super::*;
use crate::connector::{SourceConnector, SourceEvent, SourceReader};
use crate::graph::{Edge, Node};
use crate::operator::{Operator, StreamBatch};
use crate::source::{SourcePrep, WatermarkSpec};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Millisecond, None),
        true,
    )]))
}

fn batch(ts: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(TimestampMillisecondArray::from(ts.to_vec()))],
    )
    .unwrap()
}

/// A reader that plays a script of events, then waits (Pending) until `release` says
/// so or the job stops, then finishes.
struct ScriptedReader {
    partitions: Vec<usize>,
    script: Vec<SourceEvent>,
    release: Arc<AtomicBool>,
    deadline: Instant,
    pace: bool,
}

impl SourceReader for ScriptedReader {
    fn partitions(&self) -> Vec<usize> {
        self.partitions.clone()
    }
    fn next(&mut self, _ctx: &SourceContext) -> Result<SourceEvent> {
        if !self.script.is_empty() {
            // Paced, so that a partition that is left out goes idle in between.
            if self.pace {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Ok(self.script.remove(0));
        }
        if self.release.load(Ordering::SeqCst) || Instant::now() > self.deadline {
            return Ok(SourceEvent::Finished);
        }
        std::thread::sleep(Duration::from_millis(5));
        Ok(SourceEvent::Pending)
    }
}

type Scripts = Vec<(Vec<usize>, Vec<(usize, Vec<i64>)>)>;

struct ScriptedSource {
    scripts: Mutex<Scripts>,
    release: Arc<AtomicBool>,
}

impl SourceConnector for ScriptedSource {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn bounded(&self) -> bool {
        true
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        let (partitions, events) = self.scripts.lock().unwrap()[ctx.instance].clone();
        let script = events
            .into_iter()
            .map(|(partition, ts)| SourceEvent::Batch {
                partition,
                batch: batch(&ts),
            })
            .collect();
        Ok(Box::new(ScriptedReader {
            partitions,
            script,
            release: Arc::clone(&self.release),
            deadline: Instant::now() + Duration::from_secs(1),
            pace: true,
        }))
    }
}

/// Records the watermarks it sees; releases the source once `release_at` is reached.
struct Recorder {
    seen: Arc<Mutex<Vec<i64>>>,
    release: Arc<AtomicBool>,
    release_at: i64,
}

impl Operator for Recorder {
    fn process_batch(&mut self, _batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.seen.lock().unwrap().push(watermark);
        if watermark >= self.release_at && watermark != i64::MAX {
            self.release.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Runs scripted source instances into a recorder; returns the watermarks it saw.
fn watermarks(
    scripts: Scripts,
    idle_timeout: Option<Duration>,
    edge: Edge,
    release_at: i64,
) -> Vec<i64> {
    let release = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let parallelism = scripts.len();
    let watermark = WatermarkSpec {
        rowtime: 0,
        expr: Arc::new(Column::new("ts", 0)),
        fixed_delay_ms: None,
        emit_interval_ms: 0,
    };
    let mut graph = Graph::new();
    let source = graph.add(source_node(
        Arc::new(ScriptedSource {
            scripts: Mutex::new(scripts),
            release: Arc::clone(&release),
        }),
        parallelism,
        Some(watermark),
        idle_timeout,
    ));
    let (s, r) = (Arc::clone(&seen), Arc::clone(&release));
    let recorder_parallelism = if edge == Edge::Forward {
        parallelism
    } else {
        1
    };
    graph.add(Node {
        name: "recorder".into(),
        uid: "recorder".into(),
        state: Default::default(),
        parallelism: recorder_parallelism,
        kind: NodeKind::Operator {
            factory: Arc::new(move |_: usize, _: usize| {
                Ok(Box::new(Recorder {
                    seen: Arc::clone(&s),
                    release: Arc::clone(&r),
                    release_at,
                }) as Box<dyn Operator>)
            }),
        },
        input: Some((source, edge)),
        second_input: None,
    });
    let control = JobControl::new(
        Arc::new(JobMetrics::new()),
        Arc::new(AtomicBool::new(false)),
    );
    run(&graph, &control).unwrap();
    let seen = seen.lock().unwrap().clone();
    seen
}

#[test]
fn a_source_watermark_is_the_minimum_over_its_partitions() {
    let script = vec![(
        vec![0, 1],
        vec![
            (0, vec![100, 300]),
            (1, vec![50]),
            (1, vec![200]),
            (0, vec![400]),
        ],
    )];
    // Partition 1 holds the watermark back until its own rows pass.
    assert_eq!(
        watermarks(script, None, Edge::Single, 0),
        vec![50, 200, i64::MAX]
    );
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    let batches: Vec<(usize, Vec<i64>)> = (1..=10).map(|i| (0, vec![i * 100])).collect();
    let script = || vec![(vec![0, 1], batches.clone())];
    // Without a timeout the silent partition 1 holds everything until the end.
    assert_eq!(
        watermarks(script(), None, Edge::Forward, 1000),
        vec![i64::MAX]
    );
    // With one, the watermark follows partition 0 while the source still runs.
    let seen = watermarks(
        script(),
        Some(Duration::from_millis(50)),
        Edge::Forward,
        1000,
    );
    assert!(seen.len() > 2 && seen.contains(&1000), "{seen:?}");
    assert_eq!(seen.last(), Some(&i64::MAX));
}

#[test]
fn an_operator_watermark_is_the_minimum_over_its_inputs() {
    let scripts = vec![
        (vec![0], vec![(0, vec![100]), (0, vec![500])]),
        (vec![1], vec![(1, vec![300])]),
    ];
    // Instance 1 stays at 300 (its reader waits) until the recorder has seen 300.
    let seen = watermarks(scripts, None, Edge::Hash(vec![0]), 300);
    // Once both finish, 500 may show (instance 1 ended first) or not: either is right.
    assert_eq!(seen[..2], [100, 300]);
    assert!(
        seen[2..] == [i64::MAX] || seen[2..] == [500, i64::MAX],
        "{seen:?}"
    );
}

#[test]
fn an_instance_without_partitions_is_idle_from_the_start() {
    let scripts = vec![(vec![0], vec![(0, vec![100, 250])]), (vec![], vec![])];
    let seen = watermarks(scripts, None, Edge::Hash(vec![0]), 250);
    assert_eq!(seen.first(), Some(&250));
}

/// A source node named "source" reading table `t` through `connector`, its rows' time in
/// column `ts`, with `watermark` and `idle_timeout`.
fn source_node(
    connector: Arc<dyn SourceConnector>,
    parallelism: usize,
    watermark: Option<WatermarkSpec>,
    idle_timeout: Option<Duration>,
) -> Node {
    Node {
        name: "source".into(),
        uid: "source".into(),
        state: Default::default(),
        parallelism,
        kind: NodeKind::Source {
            table: "t".into(),
            connector,
            prep: Arc::new(SourcePrep {
                columns: vec![Arc::new(Column::new("ts", 0))],
                schema: schema(),
                watermark,
            }),
            idle_timeout,
        },
        input: None,
        second_input: None,
    }
}

/// [`source_node`] without a watermark or idleness.
fn ts_source(connector: Arc<dyn SourceConnector>, parallelism: usize) -> Node {
    source_node(connector, parallelism, None, None)
}

/// Sleeps on every batch and records how far the source had read ahead.
struct SlowSink {
    metrics: Arc<JobMetrics>,
    processed: u64,
    ahead: Arc<Mutex<u64>>,
}

impl Operator for SlowSink {
    fn process_batch(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        std::thread::sleep(Duration::from_millis(2));
        self.processed += batch.num_rows() as u64;
        let read = self.metrics.records_read();
        let mut ahead = self.ahead.lock().unwrap();
        *ahead = (*ahead).max(read - self.processed);
        Ok(())
    }
}

#[test]
fn a_slow_consumer_holds_the_source_back() {
    let batches: Vec<(usize, Vec<i64>)> = (0..200).map(|i| (0, vec![i; 10])).collect();
    let mut graph = Graph::new();
    let release = Arc::new(AtomicBool::new(true));
    let source = graph.add(ts_source(Arc::new(FastSource { batches, release }), 1));
    let metrics = Arc::new(JobMetrics::new());
    let ahead = Arc::new(Mutex::new(0));
    let (m, a) = (Arc::clone(&metrics), Arc::clone(&ahead));
    graph.add(Node {
        name: "slow".into(),
        uid: "slow".into(),
        state: Default::default(),
        parallelism: 1,
        kind: NodeKind::Operator {
            factory: Arc::new(move |_: usize, _: usize| {
                Ok(Box::new(SlowSink {
                    metrics: Arc::clone(&m),
                    processed: 0,
                    ahead: Arc::clone(&a),
                }) as Box<dyn Operator>)
            }),
        },
        input: Some((source, Edge::Single)),
        second_input: None,
    });
    run(
        &graph,
        &JobControl::new(Arc::clone(&metrics), Arc::new(AtomicBool::new(false))),
    )
    .unwrap();
    assert_eq!(metrics.records_read(), 2000);
    // The channel holds CHANNEL_CAPACITY batches; one more is in the sender's hand.
    let bound = (CHANNEL_CAPACITY as u64 + 2) * 10;
    let ahead = *ahead.lock().unwrap();
    assert!(
        ahead <= bound,
        "the source read {ahead} rows ahead of a slow consumer (bound {bound})"
    );
}

/// Produces all its batches as fast as it can.
struct FastSource {
    batches: Vec<(usize, Vec<i64>)>,
    release: Arc<AtomicBool>,
}

impl SourceConnector for FastSource {
    fn describe(&self) -> String {
        "fast".into()
    }
    fn bounded(&self) -> bool {
        true
    }
    fn create_reader(&self, _ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        let script = self
            .batches
            .iter()
            .map(|(p, ts)| SourceEvent::Batch {
                partition: *p,
                batch: batch(ts),
            })
            .collect();
        Ok(Box::new(ScriptedReader {
            partitions: vec![0],
            script,
            release: Arc::clone(&self.release),
            deadline: Instant::now(),
            pace: false,
        }))
    }
}

/// Instance 0 reads batches of ten rows as fast as it can; instance 1 reads nothing and
/// takes 300 ms per call, so its barrier comes late. Both end once released.
struct AlignmentSource {
    release: Arc<AtomicBool>,
}

struct AlignmentReader {
    instance: usize,
    calls: u64,
    release: Arc<AtomicBool>,
}

impl SourceConnector for AlignmentSource {
    fn describe(&self) -> String {
        "alignment".into()
    }
    fn bounded(&self) -> bool {
        true
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(AlignmentReader {
            instance: ctx.instance,
            calls: 0,
            release: Arc::clone(&self.release),
        }))
    }
}

impl SourceReader for AlignmentReader {
    fn partitions(&self) -> Vec<usize> {
        vec![self.instance]
    }
    fn next(&mut self, _ctx: &SourceContext) -> Result<SourceEvent> {
        self.calls += 1;
        if self.release.load(Ordering::SeqCst) {
            return Ok(SourceEvent::Finished);
        }
        if self.instance == 1 {
            if self.calls > 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
            return Ok(SourceEvent::Pending);
        }
        Ok(SourceEvent::Batch {
            partition: 0,
            batch: batch(&[self.calls as i64; 10]),
        })
    }
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.calls.to_le_bytes().to_vec()))
    }
}

/// Counts rows; at its first snapshot (the barrier aligned) notes how many rows the
/// sources had read beyond what it processed, and releases them.
struct AlignmentProbe {
    metrics: Arc<JobMetrics>,
    processed: u64,
    ahead: Arc<Mutex<Option<u64>>>,
    release: Arc<AtomicBool>,
}

impl Operator for AlignmentProbe {
    fn process_batch(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.processed += batch.num_rows() as u64;
        Ok(())
    }
    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<crate::operator::StateSnapshot>> {
        let mut ahead = self.ahead.lock().unwrap();
        if ahead.is_none() {
            *ahead = Some(self.metrics.records_read() - self.processed);
            self.release.store(true, Ordering::SeqCst);
        }
        Ok(None)
    }
}

#[test]
fn an_input_past_its_barrier_is_held_back_by_its_channel_not_queued() {
    let release = Arc::new(AtomicBool::new(false));
    let ahead = Arc::new(Mutex::new(None));
    let metrics = Arc::new(JobMetrics::new());
    let mut graph = Graph::new();
    let source = graph.add(Node {
        state: [("connector".to_string(), "alignment".to_string())].into(),
        ..ts_source(
            Arc::new(AlignmentSource {
                release: Arc::clone(&release),
            }),
            2,
        )
    });
    let (m, a, r) = (
        Arc::clone(&metrics),
        Arc::clone(&ahead),
        Arc::clone(&release),
    );
    graph.add(Node {
        name: "probe".into(),
        uid: "probe".into(),
        state: Default::default(),
        parallelism: 1,
        kind: NodeKind::Operator {
            factory: Arc::new(move |_: usize, _: usize| {
                Ok(Box::new(AlignmentProbe {
                    metrics: Arc::clone(&m),
                    processed: 0,
                    ahead: Arc::clone(&a),
                    release: Arc::clone(&r),
                }) as Box<dyn Operator>)
            }),
        },
        input: Some((source, Edge::Single)),
        second_input: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = CheckpointSettings {
        store: crate::checkpoint::LocalStore::new(dir.path()),
        interval: Duration::from_millis(50),
        retained: 1,
        timeout: Duration::from_secs(30),
    };
    let control = JobControl::new(Arc::clone(&metrics), Arc::new(AtomicBool::new(false)));
    run_with_checkpoints(
        &graph,
        &control,
        Some(CheckpointRun {
            settings,
            restored: None,
        }),
    )
    .unwrap();
    let ahead = ahead.lock().unwrap().expect("a checkpoint aligned");
    // The channel holds CHANNEL_CAPACITY batches; one more is in the sender's hand and
    // one was read but not sent yet.
    let bound = (CHANNEL_CAPACITY as u64 + 2) * 10;
    assert!(
        ahead <= bound,
        "instance 0 ran {ahead} rows past its barrier while instance 1's was late (bound {bound})"
    );
    assert!(metrics.checkpoints().completed >= 1);
}

/// Sets an event-time timer at 150 and a processing-time one already due; records calls.
struct TimerProbe {
    event: Option<i64>,
    processing: Option<Instant>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Operator for TimerProbe {
    fn process_batch(&mut self, _batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("watermark {watermark}"));
        Ok(())
    }
    fn next_timers(&self) -> crate::operator::NextTimers {
        crate::operator::NextTimers {
            event: self.event,
            processing: self.processing,
        }
    }
    fn on_timer(
        &mut self,
        timer: crate::operator::Timer,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        let text = match timer {
            crate::operator::Timer::EventTime(t) => {
                self.event = None;
                format!("event timer {t}")
            }
            crate::operator::Timer::ProcessingTime(_) => {
                self.processing = None;
                "processing timer".to_string()
            }
        };
        self.calls.lock().unwrap().push(text);
        Ok(())
    }
}

#[test]
fn timers_fire_when_the_watermark_or_the_clock_reaches_them() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut chain = super::chain::Chain {
        uid: "probe".into(),
        instance: 0,
        parallelism: 1,
        operator: Box::new(TimerProbe {
            event: Some(150),
            processing: Some(Instant::now() + Duration::from_millis(30)),
            calls: Arc::clone(&calls),
        }),
        next: Default::default(),
    };
    chain.push_watermark(100).unwrap();
    chain.poll_timers(Instant::now()).unwrap();
    chain.push_watermark(200).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    chain.poll_timers(Instant::now()).unwrap();
    chain.poll_timers(Instant::now()).unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "watermark 100",
            "event timer 150",
            "watermark 200",
            "processing timer"
        ]
    );
}

/// An operator whose event timer never clears is stopped with an error naming it.
struct StuckTimer;

impl Operator for StuckTimer {
    fn process_batch(&mut self, _batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    fn next_timers(&self) -> crate::operator::NextTimers {
        crate::operator::NextTimers {
            event: Some(0),
            processing: None,
        }
    }
}

#[test]
fn a_timer_that_never_clears_is_an_error_naming_the_operator() {
    let mut chain = super::chain::Chain {
        uid: "INSERT INTO t/stuck 1".into(),
        instance: 0,
        parallelism: 1,
        operator: Box::new(StuckTimer),
        next: Default::default(),
    };
    let err = chain.push_watermark(10).unwrap_err();
    assert!(err.message().contains("INSERT INTO t/stuck 1"), "{err}");
}

/// An operator that panics on its first batch.
struct Panics;

impl Operator for Panics {
    fn process_batch(&mut self, _batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        panic!("an operator bug");
    }
}

#[test]
fn a_panicking_task_fails_the_job_with_an_error_naming_it() {
    let batches: Vec<(usize, Vec<i64>)> = (0..100_000).map(|i| (0, vec![i; 10])).collect();
    let mut graph = Graph::new();
    let source = graph.add(ts_source(
        Arc::new(FastSource {
            batches,
            release: Arc::new(AtomicBool::new(true)),
        }),
        1,
    ));
    graph.add(Node {
        name: "buggy".into(),
        uid: "buggy".into(),
        state: Default::default(),
        parallelism: 1,
        kind: NodeKind::Operator {
            factory: Arc::new(|_: usize, _: usize| Ok(Box::new(Panics) as Box<dyn Operator>)),
        },
        input: Some((source, Edge::Single)),
        second_input: None,
    });
    let metrics = Arc::new(JobMetrics::new());
    let control = JobControl::new(Arc::clone(&metrics), Arc::new(AtomicBool::new(false)));
    let err = run(&graph, &control).unwrap_err();
    assert!(err.message().contains("panicked"), "{err}");
    assert!(err.message().contains("buggy"), "{err}");
    // The panic stopped the job at once: every task was told, and the source did not read
    // its whole input.
    assert!(control.stop.load(Ordering::SeqCst));
    assert!(metrics.records_read() < 1_000_000);
}
