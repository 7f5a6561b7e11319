//! Runs a [`Graph`]: one thread per task instance, bounded channels between tasks.
//!
//! A task is a chain of operators rooted at a source or at a channel receiver. Watermarks
//! flow with the data: a source's watermark is the minimum over its active partitions; a
//! receiver's is the minimum over its non-idle inputs. A bounded channel makes a slow sink
//! slow its sources down, so memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use datafusion::common::hash_utils::{create_hashes, RandomState};

use crate::checkpoint::{self, CheckpointSettings, Part, Restored};
use crate::connector::{SinkConnector, SourceContext, SourceEvent};
use crate::error::{Error, Result};
use crate::graph::{Edge, Graph, NodeId, NodeKind};
use crate::metrics::JobMetrics;
use crate::operator::{Operator, StateSnapshot, StreamBatch};
use crate::source::SourcePrep;

/// How many messages a channel between two tasks holds before the sender waits.
const CHANNEL_CAPACITY: usize = 16;

const DOWNSTREAM_STOPPED: &str = "a downstream task stopped";

/// A message between tasks; `from` is the sending instance.
enum Message {
    Batch(RecordBatch),
    Watermark(i64),
    Idle,
    /// Checkpoint barrier: everything before it belongs to checkpoint `n`.
    Barrier(u64),
    End,
}

/// The hashes by which rows are sent to the instances of a hash exchange (`hash % n`).
pub fn key_hashes(columns: &[ArrayRef], rows: usize) -> Result<Vec<u64>> {
    let mut hashes = vec![0; rows];
    create_hashes(columns, &RandomState::with_seed(0x51u64), &mut hashes)?;
    Ok(hashes)
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
        let arrays: Vec<_> = columns
            .iter()
            .map(|c| Arc::clone(batch.column(*c)))
            .collect();
        self.hashes = key_hashes(&arrays, batch.num_rows())?;
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
    node: NodeId,
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

    /// The input ended; `aborted`: the job was stopped with checkpoints on.
    fn finish(&mut self, aborted: bool) -> Result<()> {
        for chain in &mut self.chained {
            chain.finish(aborted)?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::End))
    }

    /// A barrier reached this point: the chained operators snapshot, in order, and the
    /// barrier goes on through every exchange.
    fn push_barrier(&mut self, id: u64, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        for chain in &mut self.chained {
            chain.push_barrier(id, instance, parts)?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::Barrier(id)))
    }

    fn restore(&mut self, restored: &Restored) -> Result<()> {
        self.chained
            .iter_mut()
            .try_for_each(|c| c.restore(restored))
    }

    /// The chained operators' snapshots at the end of the input (no barrier to send).
    fn final_snapshots(&mut self, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        self.chained
            .iter_mut()
            .try_for_each(|c| c.final_snapshots(instance, parts))
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

    fn finish(&mut self, aborted: bool) -> Result<()> {
        if aborted {
            self.operator.on_abort()?;
        } else {
            let mut out = Vec::new();
            self.operator.on_finish(&mut out)?;
            self.next.push_batches(out)?;
        }
        self.next.finish(aborted)
    }

    fn push_barrier(&mut self, id: u64, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        let mut out = Vec::new();
        if let Some(state) = self.operator.snapshot(id, &mut out)? {
            parts.push(Part {
                node: self.node,
                instance,
                state,
            });
        }
        self.next.push_batches(out)?;
        self.next.push_barrier(id, instance, parts)
    }

    fn restore(&mut self, restored: &Restored) -> Result<()> {
        self.operator.restore(restored.node(self.node))?;
        self.next.restore(restored)
    }

    fn final_snapshots(&mut self, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        if let Some(state) = self.operator.snapshot(0, &mut Vec::new())? {
            parts.push(Part {
                node: self.node,
                instance,
                state,
            });
        }
        self.next.final_snapshots(instance, parts)
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
    /// Checkpointing, when it is on.
    checkpoints: Option<Arc<Checkpoints>>,
    /// Set by Ctrl-C or SIGTERM when checkpoints are on: take a checkpoint now, then stop
    /// (a savepoint).
    pub savepoint: Arc<AtomicBool>,
}

impl JobControl {
    /// Stopped (not ended) with checkpoints on: output after the last checkpoint is dropped.
    fn aborted(&self) -> bool {
        self.checkpoints.is_some() && self.stop.load(Ordering::SeqCst)
    }

    pub fn new(metrics: Arc<JobMetrics>, stop: Arc<AtomicBool>) -> Self {
        Self {
            metrics,
            stop,
            failed: Arc::new(AtomicBool::new(false)),
            checkpoints: None,
            savepoint: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What a task tells the checkpoint coordinator.
enum Report {
    /// Task `task` passed barrier `id`; these are the snapshots of its operators.
    Parts {
        task: usize,
        id: u64,
        parts: Vec<Part>,
    },
    /// The task ended. After a normal end, its final snapshots (positions at the end of its
    /// input, empty windows), which later checkpoints include in its place; `None` after a
    /// failure or a stop: no checkpoint can complete any more.
    Finished {
        task: usize,
        parts: Option<Vec<Part>>,
    },
}

/// The tasks' side of checkpointing.
struct Checkpoints {
    /// The newest checkpoint the coordinator asked for; sources inject its barrier.
    requested: AtomicU64,
    reports: Sender<Report>,
}

impl Checkpoints {
    fn report(&self, task: usize, id: u64, parts: Vec<Part>) {
        let _ = self.reports.send(Report::Parts { task, id, parts });
    }

    fn finished(&self, task: usize, parts: Option<Vec<Part>>) {
        let _ = self.reports.send(Report::Finished { task, parts });
    }
}

/// How a run takes and resumes from checkpoints.
pub struct CheckpointRun {
    pub settings: CheckpointSettings,
    /// The checkpoint to resume from (None: a fresh start).
    pub restored: Option<Restored>,
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
                    node: consumer,
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
    run_with_checkpoints(graph, control, None)
}

/// Runs the graph, taking a checkpoint every interval when `checkpoints` is given, and
/// resuming from its restored checkpoint if it has one.
pub fn run_with_checkpoints(
    graph: &Graph,
    control: &JobControl,
    checkpoints: Option<CheckpointRun>,
) -> Result<()> {
    let mut control = control.clone();
    let mut coordinator = None;
    if let Some(run) = &checkpoints {
        let (tx, rx) = unbounded();
        // New checkpoints are numbered after every one in the folder (also with --fresh).
        let newest = checkpoint::list(&*run.settings.store)?.first().copied();
        let last = run
            .restored
            .as_ref()
            .map_or(0, |r| r.id)
            .max(newest.unwrap_or(0));
        let shared = Arc::new(Checkpoints {
            requested: AtomicU64::new(last),
            reports: tx,
        });
        control.checkpoints = Some(Arc::clone(&shared));
        if let Some(restored) = &run.restored {
            // The checkpoint may have completed without its commit (a crash in between):
            // commit it again; commits are idempotent.
            commit_sinks(&graph.sinks, |node| {
                restored.node(node).iter().map(|s| s.blob.clone()).collect()
            })?;
        }
        coordinator = Some((rx, shared, run.settings.clone(), last + 1));
    }
    let restored = checkpoints.as_ref().and_then(|c| c.restored.as_ref());
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
            let mut fanout = build_fanout(graph, id, instance, &inboxes)?;
            if let Some(restored) = restored {
                fanout.restore(restored)?;
            }
            let name = format!("{}#{}", node.name, instance);
            let task_control = control.clone();
            let task: Box<dyn FnOnce(usize) -> Result<()> + Send> = match (&node.kind, &node.input)
            {
                (
                    NodeKind::Source {
                        table,
                        connector,
                        prep,
                        idle_timeout,
                    },
                    _,
                ) => {
                    let mut ctx = SourceContext::new(
                        Arc::clone(&task_control.metrics),
                        Arc::clone(&task_control.stop),
                        instance,
                        node.parallelism,
                    );
                    let mut watermarks = HashMap::new();
                    if let Some(restored) = restored {
                        let parts = restored.node(id);
                        if !parts.is_empty() && parts.iter().all(|p| p.blob.is_empty()) {
                            return Err(Error::plan(format!(
                                "table '{table}': its source ({}) cannot resume from a \
                                 checkpoint; run with --fresh to start over",
                                connector.describe()
                            )));
                        }
                        ctx.restored = Arc::new(parts.iter().map(|p| p.blob.clone()).collect());
                        watermarks = restored_watermarks(parts);
                    }
                    let reader = connector.create_reader(&ctx)?;
                    let source = SourceTask {
                        node: id,
                        instance,
                        prep: Arc::clone(prep),
                        idle_timeout: *idle_timeout,
                        fanout,
                        name: name.clone(),
                        restored_watermarks: watermarks,
                    };
                    Box::new(move |task| source.run(task, reader, ctx, &task_control))
                }
                (NodeKind::Operator { factory }, Some((from, _))) => {
                    let receiver = inboxes
                        .get_mut(&id)
                        .and_then(|(_, r)| r[instance].take())
                        .ok_or_else(|| Error::internal("missing channel"))?;
                    let mut chain = Chain {
                        node: id,
                        operator: factory.create(instance, node.parallelism)?,
                        next: fanout,
                    };
                    if let Some(restored) = restored {
                        chain.operator.restore(restored.node(id))?;
                    }
                    let inputs = graph.nodes[*from].parallelism;
                    let name = name.clone();
                    Box::new(move |task| {
                        run_receiver(name, task, instance, receiver, inputs, chain, &task_control)
                    })
                }
                (NodeKind::Operator { .. }, None) => {
                    return Err(Error::internal("an operator without input"));
                }
            };
            let c = control.clone();
            let task_index = handles.len();
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let result = task(task_index);
                    if result.is_err() {
                        c.failed.store(true, Ordering::SeqCst);
                        c.stop.store(true, Ordering::SeqCst);
                        if let Some(cp) = &c.checkpoints {
                            cp.finished(task_index, None);
                        }
                    }
                    result
                })
                .map_err(|e| Error::internal(format!("cannot start a task thread: {e}")))?;
            handles.push((name, handle));
        }
    }
    // The receivers' senders live in the tasks now; drop ours so disconnects are seen.
    drop(inboxes);
    let done = Arc::new(AtomicBool::new(false));
    let coordinator = match coordinator {
        None => None,
        Some((reports, shared, settings, first)) => {
            let job = Coordinator {
                settings,
                next_id: first,
                shape: graph.shape(),
                tasks: handles.len(),
                reports,
                shared,
                sinks: graph.sinks.clone(),
                metrics: Arc::clone(&control.metrics),
                done: Arc::clone(&done),
                failed: Arc::clone(&control.failed),
                stop: Arc::clone(&control.stop),
                savepoint: Arc::clone(&control.savepoint),
                finished: Default::default(),
            };
            let c = control.clone();
            Some(
                std::thread::Builder::new()
                    .name("checkpoint coordinator".into())
                    .spawn(move || {
                        let result = job.run();
                        if result.is_err() {
                            c.failed.store(true, Ordering::SeqCst);
                            c.stop.store(true, Ordering::SeqCst);
                        }
                        result
                    })
                    .map_err(|e| Error::internal(format!("cannot start a thread: {e}")))?,
            )
        }
    };
    let mut errors: Vec<Error> = handles
        .into_iter()
        .filter_map(|(name, handle)| {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err(Error::internal(format!("task {name} panicked"))));
            result.err()
        })
        .collect();
    done.store(true, Ordering::SeqCst);
    if let Some(handle) = coordinator {
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(Error::internal("the checkpoint coordinator panicked")));
        errors.extend(result.err());
    }
    if let Some(run) = &checkpoints {
        if errors.is_empty() && !control.stop.load(Ordering::SeqCst) {
            // The input ended and every sink committed: the checkpoints have served (as in
            // Flink, a finished job's are removed), and a new run starts over.
            if let Err(e) = checkpoint::remove_all(&*run.settings.store) {
                eprintln!("sluice: the job ended, but its checkpoints stay: {e}");
            }
        }
    }
    // A task that failed because another one did reports a secondary error; the cause is
    // the error that is not one of those.
    let cause = errors
        .iter()
        .position(|e| e.message() != DOWNSTREAM_STOPPED)
        .unwrap_or(0);
    errors.into_iter().nth(cause).map_or(Ok(()), Err)
}

/// Makes visible what the sinks prepared for a completed checkpoint; `prepared(node)`
/// gives each sink instance's value, in instance order.
fn commit_sinks(
    sinks: &[(NodeId, Arc<dyn SinkConnector>)],
    prepared: impl Fn(NodeId) -> Vec<Vec<u8>>,
) -> Result<()> {
    for (node, sink) in sinks {
        let values = prepared(*node);
        if values.iter().any(|v| !v.is_empty()) {
            sink.commit(&values)?;
        }
    }
    Ok(())
}

/// Takes checkpoints: asks the sources for a barrier every interval, collects every task's
/// snapshots, writes them, then has the sinks commit.
struct Coordinator {
    settings: CheckpointSettings,
    next_id: u64,
    shape: Vec<String>,
    tasks: usize,
    reports: Receiver<Report>,
    shared: Arc<Checkpoints>,
    sinks: Vec<(NodeId, Arc<dyn SinkConnector>)>,
    metrics: Arc<JobMetrics>,
    done: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    /// Final snapshots of the tasks that have ended, by task.
    finished: std::collections::BTreeMap<usize, Vec<Part>>,
    stop: Arc<AtomicBool>,
    savepoint: Arc<AtomicBool>,
}

impl Coordinator {
    fn stopped(&self) -> bool {
        self.done.load(Ordering::SeqCst) || self.failed.load(Ordering::SeqCst)
    }

    /// Takes a task's end into account; false when checkpoints cannot go on.
    fn task_finished(&mut self, task: usize, parts: Option<Vec<Part>>) -> bool {
        match parts {
            Some(parts) => {
                self.finished.insert(task, parts);
                self.finished.len() < self.tasks
            }
            None => false,
        }
    }

    fn run(mut self) -> Result<()> {
        let result = self.take_checkpoints();
        // Asked for a savepoint and it could not be taken (the input ended first, or a
        // task failed): stop all the same.
        if self.savepoint.load(Ordering::SeqCst) {
            self.stop.store(true, Ordering::SeqCst);
        }
        result
    }

    fn take_checkpoints(&mut self) -> Result<()> {
        let tick = Duration::from_millis(50);
        let mut next_at = Instant::now() + self.settings.interval;
        loop {
            while Instant::now() < next_at && !self.savepoint.load(Ordering::SeqCst) {
                if self.stopped() {
                    return Ok(());
                }
                let left = next_at.saturating_duration_since(Instant::now());
                match self.reports.recv_timeout(left.min(tick)) {
                    Ok(Report::Finished { task, parts }) => {
                        if !self.task_finished(task, parts) {
                            return Ok(());
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    Ok(Report::Parts { .. }) | Err(RecvTimeoutError::Timeout) => {}
                }
            }
            let id = self.next_id;
            let started = Instant::now();
            self.shared.requested.store(id, Ordering::SeqCst);
            let mut reported: std::collections::BTreeMap<usize, Vec<Part>> = Default::default();
            let tasks = self.tasks;
            let complete =
                |reported: &std::collections::BTreeMap<usize, Vec<Part>>,
                 finished: &std::collections::BTreeMap<usize, Vec<Part>>| {
                    (0..tasks).all(|t| reported.contains_key(&t) || finished.contains_key(&t))
                };
            while !complete(&reported, &self.finished) {
                if self.stopped() {
                    return Ok(());
                }
                match self.reports.recv_timeout(tick) {
                    Ok(Report::Parts {
                        task,
                        id: got,
                        parts,
                    }) if got == id => {
                        reported.insert(task, parts);
                    }
                    Ok(Report::Parts { .. }) | Err(RecvTimeoutError::Timeout) => {}
                    // A task that ends before its barrier is in the checkpoint with its
                    // final state: its input is done, and downstream saw its end.
                    Ok(Report::Finished { task, parts }) => {
                        if !self.task_finished(task, parts) {
                            return Ok(());
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
            // A task's barrier-time snapshot if it reported one, else its final one.
            let mut parts = Vec::new();
            for task in 0..self.tasks {
                match reported.remove(&task) {
                    Some(p) => parts.extend(p),
                    None => parts.extend(self.finished[&task].iter().cloned()),
                }
            }
            let written = checkpoint::write(&*self.settings.store, id, &self.shape, &parts)?;
            commit_sinks(&self.sinks, |node| {
                let mut mine: Vec<&Part> = parts.iter().filter(|p| p.node == node).collect();
                mine.sort_by_key(|p| p.instance);
                mine.iter().map(|p| p.state.blob.clone()).collect()
            })?;
            self.metrics
                .add_checkpoint(id, started.elapsed(), written.bytes);
            checkpoint::retain(&*self.settings.store, self.settings.retained);
            if self.savepoint.load(Ordering::SeqCst) {
                eprintln!(
                    "sluice: savepoint {} taken and committed; stopping",
                    checkpoint::checkpoint_path(&*self.settings.store, id)
                );
                self.stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
            self.next_id += 1;
            next_at = (started + self.settings.interval).max(Instant::now() + tick);
        }
    }
}

/// Partition watermarks of a source from its checkpoint parts (all instances').
fn restored_watermarks(parts: &[StateSnapshot]) -> HashMap<usize, i64> {
    let mut out = HashMap::new();
    for batch in parts.iter().flat_map(|p| &p.batches) {
        if batch.num_columns() < 2 {
            continue;
        }
        let (Some(ids), Some(marks)) = (
            batch.column(0).as_primitive_opt::<UInt64Type>(),
            batch.column(1).as_primitive_opt::<Int64Type>(),
        ) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            out.insert(ids.value(i) as usize, marks.value(i));
        }
    }
    out
}

/// A source's partition watermarks as a checkpoint keeps them.
fn watermark_batch(partitions: &HashMap<usize, PartitionState>) -> Result<RecordBatch> {
    let mut ids: Vec<usize> = partitions.keys().copied().collect();
    ids.sort_unstable();
    let schema = Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt64, false),
        Field::new("watermark", DataType::Int64, false),
        Field::new("finished", DataType::Boolean, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from(
                ids.iter().map(|&p| p as u64).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                ids.iter()
                    .map(|p| partitions[p].watermark)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                ids.iter()
                    .map(|p| partitions[p].finished)
                    .collect::<Vec<_>>(),
            )),
        ],
    )?)
}

struct PartitionState {
    watermark: i64,
    finished: bool,
    idle: bool,
    last_data: Instant,
}

struct SourceTask {
    node: NodeId,
    instance: usize,
    name: String,
    prep: Arc<SourcePrep>,
    idle_timeout: Option<Duration>,
    fanout: Fanout,
    /// Partition watermarks of the checkpoint the job resumes from.
    restored_watermarks: HashMap<usize, i64>,
}

impl SourceTask {
    fn run(
        mut self,
        task: usize,
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
                        watermark: self
                            .restored_watermarks
                            .get(&p)
                            .copied()
                            .unwrap_or(i64::MIN),
                        finished: false,
                        idle: false,
                        last_data: now,
                    },
                )
            })
            .collect();
        let mut emitted = i64::MIN;
        let mut idle = false;
        let mut last_barrier = control
            .checkpoints
            .as_ref()
            .map_or(0, |c| c.requested.load(Ordering::SeqCst));
        if partitions.is_empty() {
            // An instance that owns no partition must not hold the watermark back.
            self.fanout.push_idle()?;
            idle = true;
        }
        loop {
            if control.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(cp) = &control.checkpoints {
                let id = cp.requested.load(Ordering::SeqCst);
                if id > last_barrier {
                    last_barrier = id;
                    // The reader's position after the last event it returned, the
                    // partitions' watermarks, then the barrier through the chain.
                    let state = StateSnapshot {
                        watermark: Some(emitted),
                        batches: vec![watermark_batch(&partitions)?],
                        blob: reader.snapshot()?.unwrap_or_default(),
                    };
                    let mut parts = vec![Part {
                        node: self.node,
                        instance: self.instance,
                        state,
                    }];
                    self.fanout.push_barrier(id, self.instance, &mut parts)?;
                    cp.report(task, id, parts);
                }
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
                    let restored = self.restored_watermarks.get(&p).copied();
                    partitions.entry(p).or_insert(PartitionState {
                        watermark: restored.unwrap_or(emitted),
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
        let aborted = control.aborted();
        self.fanout.finish(aborted)?;
        if let (Some(cp), false) = (&control.checkpoints, aborted) {
            let mut parts = vec![Part {
                node: self.node,
                instance: self.instance,
                state: StateSnapshot {
                    watermark: Some(emitted),
                    batches: vec![watermark_batch(&partitions)?],
                    blob: reader.snapshot()?.unwrap_or_default(),
                },
            }];
            self.fanout.final_snapshots(self.instance, &mut parts)?;
            cp.finished(task, Some(parts));
        }
        Ok(())
    }
}

struct InputState {
    watermark: i64,
    idle: bool,
    ended: bool,
}

fn run_receiver(
    name: String,
    task: usize,
    instance: usize,
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
    // Barrier alignment: the checkpoint being aligned, which inputs have delivered its
    // barrier, and what those inputs sent after it (held back until every input's barrier
    // is in, then replayed in order).
    let mut aligning: Option<u64> = None;
    let mut arrived = vec![false; inputs];
    let mut held: Vec<VecDeque<Message>> = (0..inputs).map(|_| VecDeque::new()).collect();
    let mut replay: VecDeque<Envelope> = VecDeque::new();
    while states.iter().any(|s| !s.ended) || !replay.is_empty() {
        let envelope = match replay.pop_front() {
            Some(e) => e,
            None => match receiver.recv_timeout(Duration::from_millis(100)) {
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
            },
        };
        let from = envelope.from;
        if aligning.is_some() && arrived[from] {
            held[from].push_back(envelope.message);
            continue;
        }
        let state = &mut states[from];
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
            Message::Barrier(id) => {
                if aligning.is_none_or(|a| a < id) {
                    aligning = Some(id);
                }
                arrived[from] = true;
            }
            Message::End => state.ended = true,
        }
        // Aligned once every input that has not ended has delivered the barrier.
        if let Some(id) = aligning {
            let complete = states.iter().zip(&arrived).all(|(s, &a)| a || s.ended);
            if complete {
                let mut parts = Vec::new();
                chain.push_barrier(id, instance, &mut parts)?;
                if let Some(cp) = &control.checkpoints {
                    cp.report(task, id, parts);
                }
                aligning = None;
                arrived.iter_mut().for_each(|a| *a = false);
                // What came after the barrier goes first, before anything newer.
                let mut later = VecDeque::new();
                for (input, queue) in held.iter_mut().enumerate() {
                    later.extend(queue.drain(..).map(|message| Envelope {
                        from: input,
                        message,
                    }));
                }
                later.extend(replay.drain(..));
                replay = later;
            }
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
    let aborted = control.aborted();
    chain.finish(aborted)?;
    if let (Some(cp), false) = (&control.checkpoints, aborted) {
        let mut parts = Vec::new();
        chain.final_snapshots(instance, &mut parts)?;
        cp.finished(task, Some(parts));
    }
    Ok(())
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
