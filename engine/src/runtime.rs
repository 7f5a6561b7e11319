//! Runs a [`Graph`]: one thread per task instance, bounded channels between tasks.
//!
//! A task is a chain of operators rooted at a source or at a channel receiver. Watermarks
//! flow with the data: a source's watermark is the minimum over its active partitions; a
//! receiver's is the minimum over its non-idle inputs. A bounded channel makes a slow sink
//! slow its sources down, so memory stays bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use datafusion::common::hash_utils::{create_hashes, RandomState};

use crate::connector::{SourceContext, SourceEvent};
use crate::error::{Error, Result};
use crate::graph::{Edge, Graph, NodeId, NodeKind};
use crate::metrics::JobMetrics;
use crate::operator::{Operator, StreamBatch};
use crate::source::SourcePrep;

/// How many messages a channel between two tasks holds before the sender waits.
const CHANNEL_CAPACITY: usize = 16;

const DOWNSTREAM_STOPPED: &str = "a downstream task stopped";

/// A message between tasks; `from` is the sending instance.
enum Message {
    Batch(RecordBatch),
    Watermark(i64),
    Idle,
    End,
}

struct Envelope {
    from: usize,
    message: Message,
}

/// The sending side of an exchange, held by one upstream instance.
struct ExchangeOut {
    from: usize,
    edge: Edge,
    senders: Vec<Sender<Envelope>>,
    hashes: Vec<u64>,
}

impl ExchangeOut {
    fn send(&self, to: usize, message: Message) -> Result<()> {
        self.senders[to]
            .send(Envelope {
                from: self.from,
                message,
            })
            .map_err(|_| Error::internal(DOWNSTREAM_STOPPED))
    }

    fn broadcast(&self, message: impl Fn() -> Message) -> Result<()> {
        (0..self.senders.len()).try_for_each(|to| self.send(to, message()))
    }

    fn send_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = self.senders.len();
        let columns = match &self.edge {
            Edge::Hash(columns) if n > 1 => columns,
            _ => return self.send(0, Message::Batch(batch.clone())),
        };
        let rows = batch.num_rows();
        self.hashes.clear();
        self.hashes.resize(rows, 0);
        let arrays: Vec<_> = columns
            .iter()
            .map(|c| Arc::clone(batch.column(*c)))
            .collect();
        create_hashes(&arrays, &RandomState::with_seed(0x51u64), &mut self.hashes)?;
        let mut targets: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (row, h) in self.hashes.iter().enumerate() {
            targets[(*h % n as u64) as usize].push(row as u32);
        }
        for (to, rows) in targets.into_iter().enumerate() {
            if !rows.is_empty() {
                let part = take_record_batch(batch, &UInt32Array::from(rows))?;
                self.send(to, Message::Batch(part))?;
            }
        }
        Ok(())
    }
}

/// Where the output of a node goes: chained operators and exchanges.
#[derive(Default)]
struct Fanout {
    chained: Vec<Chain>,
    exchanges: Vec<ExchangeOut>,
}

struct Chain {
    operator: Box<dyn Operator>,
    next: Fanout,
}

impl Fanout {
    fn push_batches(&mut self, batches: Vec<StreamBatch>) -> Result<()> {
        for batch in batches {
            for exchange in &mut self.exchanges {
                exchange.send_batch(&batch.batch)?;
            }
            match self.chained.len() {
                0 => {}
                1 => self.chained[0].push_batch(batch)?,
                _ => self
                    .chained
                    .iter_mut()
                    .try_for_each(|c| c.push_batch(batch.clone()))?,
            }
        }
        Ok(())
    }

    fn push_watermark(&mut self, watermark: i64) -> Result<()> {
        for chain in &mut self.chained {
            chain.push_watermark(watermark)?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::Watermark(watermark)))
    }

    fn push_idle(&mut self) -> Result<()> {
        for chain in &mut self.chained {
            chain.next.push_idle()?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::Idle))
    }

    fn finish(&mut self) -> Result<()> {
        for chain in &mut self.chained {
            chain.finish()?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::End))
    }
}

impl Chain {
    fn push_batch(&mut self, batch: StreamBatch) -> Result<()> {
        let mut out = Vec::new();
        self.operator.process_batch(batch, &mut out)?;
        self.next.push_batches(out)
    }

    fn push_watermark(&mut self, watermark: i64) -> Result<()> {
        let mut out = Vec::new();
        self.operator.handle_watermark(watermark, &mut out)?;
        self.next.push_batches(out)?;
        self.next.push_watermark(watermark)
    }

    fn finish(&mut self) -> Result<()> {
        let mut out = Vec::new();
        self.operator.on_finish(&mut out)?;
        self.next.push_batches(out)?;
        self.next.finish()
    }
}

/// Shared run state: metrics, and the flags that stop every task.
#[derive(Clone)]
pub struct JobControl {
    pub metrics: Arc<JobMetrics>,
    /// Set by Ctrl-C: sources end without firing open windows; sinks flush and close.
    pub stop: Arc<AtomicBool>,
    /// Set when any task fails: every task ends as soon as it notices.
    failed: Arc<AtomicBool>,
}

impl JobControl {
    pub fn new(metrics: Arc<JobMetrics>, stop: Arc<AtomicBool>) -> Self {
        Self {
            metrics,
            stop,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Channels into the instances of every node that starts a task fed by an exchange.
type Inboxes = HashMap<NodeId, (Vec<Sender<Envelope>>, Vec<Option<Receiver<Envelope>>>)>;

/// Builds the chain rooted at `id` for one instance: the operators chained after it and the
/// exchanges it feeds.
fn build_fanout(graph: &Graph, id: NodeId, instance: usize, inboxes: &Inboxes) -> Result<Fanout> {
    let mut fanout = Fanout::default();
    for (consumer, edge) in graph.consumers(id) {
        let node = &graph.nodes[consumer];
        match edge {
            Edge::Forward => {
                let NodeKind::Operator { factory } = &node.kind else {
                    return Err(Error::internal("a source cannot consume another node"));
                };
                fanout.chained.push(Chain {
                    operator: factory.create(instance, node.parallelism)?,
                    next: build_fanout(graph, consumer, instance, inboxes)?,
                });
            }
            Edge::Hash(_) | Edge::Single => {
                let (senders, _) = inboxes
                    .get(&consumer)
                    .ok_or_else(|| Error::internal("exchange without channels"))?;
                fanout.exchanges.push(ExchangeOut {
                    from: instance,
                    edge: edge.clone(),
                    senders: senders.clone(),
                    hashes: Vec::new(),
                });
            }
        }
    }
    Ok(fanout)
}

/// Runs the graph to completion; returns the first error of any task.
pub fn run(graph: &Graph, control: &JobControl) -> Result<()> {
    let mut inboxes: Inboxes = HashMap::new();
    for (id, node) in graph.nodes.iter().enumerate() {
        if let Some((_, Edge::Hash(_) | Edge::Single)) = &node.input {
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..node.parallelism)
                .map(|_| bounded(CHANNEL_CAPACITY))
                .map(|(s, r)| (s, Some(r)))
                .unzip();
            inboxes.insert(id, (senders, receivers));
        }
    }
    let mut handles: Vec<(String, JoinHandle<Result<()>>)> = Vec::new();
    for (id, node) in graph.nodes.iter().enumerate() {
        if !graph.starts_task(id) {
            continue;
        }
        for instance in 0..node.parallelism {
            let fanout = build_fanout(graph, id, instance, &inboxes)?;
            let name = format!("{}#{}", node.name, instance);
            let task_control = control.clone();
            let task: Box<dyn FnOnce() -> Result<()> + Send> = match (&node.kind, &node.input) {
                (
                    NodeKind::Source {
                        connector,
                        prep,
                        idle_timeout,
                        ..
                    },
                    _,
                ) => {
                    let ctx = SourceContext::new(
                        Arc::clone(&task_control.metrics),
                        Arc::clone(&task_control.stop),
                        instance,
                        node.parallelism,
                    );
                    let reader = connector.create_reader(&ctx)?;
                    let source = SourceTask {
                        prep: Arc::clone(prep),
                        idle_timeout: *idle_timeout,
                        fanout,
                        name: name.clone(),
                    };
                    Box::new(move || source.run(reader, ctx, &task_control))
                }
                (NodeKind::Operator { factory }, Some((from, _))) => {
                    let receiver = inboxes
                        .get_mut(&id)
                        .and_then(|(_, r)| r[instance].take())
                        .ok_or_else(|| Error::internal("missing channel"))?;
                    let chain = Chain {
                        operator: factory.create(instance, node.parallelism)?,
                        next: fanout,
                    };
                    let inputs = graph.nodes[*from].parallelism;
                    let name = name.clone();
                    Box::new(move || run_receiver(name, receiver, inputs, chain, &task_control))
                }
                (NodeKind::Operator { .. }, None) => {
                    return Err(Error::internal("an operator without input"));
                }
            };
            let c = control.clone();
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let result = task();
                    if result.is_err() {
                        c.failed.store(true, Ordering::SeqCst);
                        c.stop.store(true, Ordering::SeqCst);
                    }
                    result
                })
                .map_err(|e| Error::internal(format!("cannot start a task thread: {e}")))?;
            handles.push((name, handle));
        }
    }
    // The receivers' senders live in the tasks now; drop ours so disconnects are seen.
    drop(inboxes);
    let errors: Vec<Error> = handles
        .into_iter()
        .filter_map(|(name, handle)| {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err(Error::internal(format!("task {name} panicked"))));
            result.err()
        })
        .collect();
    // A task that failed because another one did reports a secondary error; the cause is
    // the error that is not one of those.
    let cause = errors
        .iter()
        .position(|e| e.message() != DOWNSTREAM_STOPPED)
        .unwrap_or(0);
    errors.into_iter().nth(cause).map_or(Ok(()), Err)
}

struct PartitionState {
    watermark: i64,
    finished: bool,
    idle: bool,
    last_data: Instant,
}

struct SourceTask {
    name: String,
    prep: Arc<SourcePrep>,
    idle_timeout: Option<Duration>,
    fanout: Fanout,
}

impl SourceTask {
    fn run(
        mut self,
        mut reader: Box<dyn crate::connector::SourceReader>,
        ctx: SourceContext,
        control: &JobControl,
    ) -> Result<()> {
        let now = Instant::now();
        let mut partitions: HashMap<usize, PartitionState> = reader
            .partitions()
            .into_iter()
            .map(|p| {
                (
                    p,
                    PartitionState {
                        watermark: i64::MIN,
                        finished: false,
                        idle: false,
                        last_data: now,
                    },
                )
            })
            .collect();
        let mut emitted = i64::MIN;
        let mut idle = false;
        if partitions.is_empty() {
            // An instance that owns no partition must not hold the watermark back.
            self.fanout.push_idle()?;
            idle = true;
        }
        loop {
            if control.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Connector errors name their table already.
            match reader.next(&ctx)? {
                SourceEvent::Batch { partition, batch } => {
                    control.metrics.add_read(batch.num_rows() as u64, 0);
                    let state = partitions
                        .get_mut(&partition)
                        .ok_or_else(|| Error::internal(format!("unknown partition {partition}")))?;
                    let rows = self.prep.apply(&batch, &mut state.watermark)?;
                    state.last_data = Instant::now();
                    state.idle = false;
                    idle = false;
                    self.fanout.push_batches(vec![rows])?;
                }
                SourceEvent::PartitionAdded(p) => {
                    partitions.entry(p).or_insert(PartitionState {
                        watermark: emitted,
                        finished: false,
                        idle: false,
                        last_data: Instant::now(),
                    });
                }
                SourceEvent::PartitionFinished(p) => {
                    if let Some(state) = partitions.get_mut(&p) {
                        state.finished = true;
                    }
                }
                SourceEvent::Pending => {}
                SourceEvent::Finished => break,
            }
            // Checked after every event: a busy partition must not keep a silent one from
            // being marked idle.
            if let Some(timeout) = self.idle_timeout {
                let now = Instant::now();
                for state in partitions.values_mut() {
                    state.idle |= now.duration_since(state.last_data) >= timeout;
                }
            }
            let active = partitions.values().filter(|p| !p.finished && !p.idle);
            match active.map(|p| p.watermark).min() {
                Some(watermark) if watermark > emitted => {
                    emitted = watermark;
                    control.metrics.set_watermark(&self.name, watermark);
                    self.fanout.push_watermark(watermark)?;
                }
                // Every partition is idle or finished (a reader whose shards all closed while
                // their children went to other instances): hold nothing back.
                None if !idle => {
                    idle = true;
                    self.fanout.push_idle()?;
                }
                _ => {}
            }
        }
        if !ctx.stopping() {
            // The end of a bounded input: every remaining window fires.
            control.metrics.set_watermark(&self.name, i64::MAX);
            self.fanout.push_watermark(i64::MAX)?;
        }
        self.fanout.finish()
    }
}

struct InputState {
    watermark: i64,
    idle: bool,
    ended: bool,
}

fn run_receiver(
    name: String,
    receiver: Receiver<Envelope>,
    inputs: usize,
    mut chain: Chain,
    control: &JobControl,
) -> Result<()> {
    let mut states: Vec<InputState> = (0..inputs)
        .map(|_| InputState {
            watermark: i64::MIN,
            idle: false,
            ended: false,
        })
        .collect();
    let mut emitted = i64::MIN;
    let mut idle = false;
    while states.iter().any(|s| !s.ended) {
        let envelope = match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => {
                if control.failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                if control.failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                return Err(Error::internal("an upstream task vanished"));
            }
        };
        let state = &mut states[envelope.from];
        match envelope.message {
            Message::Batch(batch) => {
                state.idle = false;
                chain.push_batch(StreamBatch::new(batch))?;
            }
            Message::Watermark(w) => {
                state.idle = false;
                state.watermark = state.watermark.max(w);
            }
            Message::Idle => state.idle = true,
            Message::End => state.ended = true,
        }
        let live = states.iter().filter(|s| !s.ended);
        match live.clone().filter(|s| !s.idle).map(|s| s.watermark).min() {
            Some(w) if w > emitted => {
                emitted = w;
                idle = false;
                control.metrics.set_watermark(&name, w);
                chain.push_watermark(w)?;
            }
            None if !idle && live.count() > 0 => {
                idle = true;
                chain.next.push_idle()?;
            }
            None => {
                // Every input ended: the last watermarks decide (MAX after a bounded end).
                let w = states.iter().map(|s| s.watermark).min().unwrap_or(i64::MIN);
                if states.iter().all(|s| s.ended) && w > emitted {
                    emitted = w;
                    control.metrics.set_watermark(&name, w);
                    chain.push_watermark(w)?;
                }
            }
            _ => {}
        }
    }
    chain.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::connector::{SourceConnector, SourceReader};
    use crate::graph::Node;
    use crate::source::WatermarkSpec;

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
        fn process_batch(
            &mut self,
            _batch: StreamBatch,
            _out: &mut Vec<StreamBatch>,
        ) -> Result<()> {
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
        let prep = SourcePrep {
            columns: vec![Arc::new(Column::new("ts", 0))],
            schema: schema(),
            watermark: Some(WatermarkSpec {
                rowtime: 0,
                expr: Arc::new(Column::new("ts", 0)),
                fixed_delay_ms: None,
            }),
        };
        let mut graph = Graph::new();
        let source = graph.add(Node {
            name: "source".into(),
            parallelism,
            kind: NodeKind::Source {
                table: "t".into(),
                connector: Arc::new(ScriptedSource {
                    scripts: Mutex::new(scripts),
                    release: Arc::clone(&release),
                }),
                prep: Arc::new(prep),
                idle_timeout,
            },
            input: None,
        });
        let (s, r) = (Arc::clone(&seen), Arc::clone(&release));
        let recorder_parallelism = if edge == Edge::Forward {
            parallelism
        } else {
            1
        };
        graph.add(Node {
            name: "recorder".into(),
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
        let prep = SourcePrep {
            columns: vec![Arc::new(Column::new("ts", 0))],
            schema: schema(),
            watermark: None,
        };
        let release = Arc::new(AtomicBool::new(true));
        let source = graph.add(Node {
            name: "source".into(),
            parallelism: 1,
            kind: NodeKind::Source {
                table: "t".into(),
                connector: Arc::new(FastSource { batches, release }),
                prep: Arc::new(prep),
                idle_timeout: None,
            },
            input: None,
        });
        let metrics = Arc::new(JobMetrics::new());
        let ahead = Arc::new(Mutex::new(0));
        let (m, a) = (Arc::clone(&metrics), Arc::clone(&ahead));
        graph.add(Node {
            name: "slow".into(),
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
}
