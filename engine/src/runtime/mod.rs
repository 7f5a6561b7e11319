//! Runs a [`Graph`]: one thread per task instance, bounded channels between tasks.
//!
//! A task is a chain of operators ([`chain`]) rooted at a source ([`source_task`]) or at
//! the receiving end of an exchange ([`receiver`], [`exchange`]). Watermarks flow with the
//! data: a task's watermark is the minimum over its active inputs ([`watermarks`]). A
//! bounded channel makes a slow sink slow its sources down, so memory stays bounded; that
//! holds during checkpoints too, since barrier alignment leaves what it holds back in the
//! channels ([`alignment`]). The [`coordinator`] takes the checkpoints.

mod alignment;
mod chain;
mod coordinator;
mod exchange;
mod receiver;
mod source_task;
mod watermarks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::unbounded;

use crate::checkpoint::{self, CheckpointSettings, Part, Restored};
use crate::connector::SourceContext;
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeKind};
use crate::metrics::JobMetrics;

use chain::{Chain, Fanout};
use coordinator::{commit_sinks, Coordinator, Flags, Report, Requests};
pub use exchange::{key_hashes, owner};
use exchange::Exchanges;
use receiver::ReceiverTask;
use source_task::{restored_watermarks, SourceTask};

/// Shared run state: metrics, and the flags that stop every task.
#[derive(Clone)]
pub struct JobControl {
    pub metrics: Arc<JobMetrics>,
    /// Set by Ctrl-C: sources end without firing open windows; sinks flush and close.
    pub stop: Arc<AtomicBool>,
    /// Set when any task fails: every task ends as soon as it notices.
    failed: Arc<AtomicBool>,
    /// Checkpointing, when it is on.
    checkpoints: Option<Arc<Requests>>,
    /// Set by Ctrl-C or SIGTERM when checkpoints are on: take a checkpoint now, then stop
    /// (a savepoint).
    pub savepoint: Arc<AtomicBool>,
}

impl JobControl {
    pub fn new(metrics: Arc<JobMetrics>, stop: Arc<AtomicBool>) -> Self {
        Self {
            metrics,
            stop,
            failed: Arc::new(AtomicBool::new(false)),
            checkpoints: None,
            savepoint: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stopped (not ended) with checkpoints on: output after the last checkpoint is dropped.
    fn aborted(&self) -> bool {
        self.checkpoints.is_some() && self.stop.load(Ordering::SeqCst)
    }

    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn checkpointing(&self) -> bool {
        self.checkpoints.is_some()
    }

    /// The newest checkpoint asked for (0: none, or checkpoints are off).
    fn requested_checkpoint(&self) -> u64 {
        self.checkpoints.as_ref().map_or(0, |c| c.requested())
    }

    /// A task passed the barrier of checkpoint `id` with these snapshots.
    fn report_parts(&self, task: usize, id: u64, parts: Vec<Part>) {
        if let Some(c) = &self.checkpoints {
            c.report(Report::Parts { task, id, parts });
        }
    }

    /// A task ended (`None`: it failed or was stopped).
    fn report_finished(&self, task: usize, parts: Option<Vec<Part>>) {
        if let Some(c) = &self.checkpoints {
            c.report(Report::Finished { task, parts });
        }
    }

    /// A task failed: every other task stops.
    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How a run takes and resumes from checkpoints.
pub struct CheckpointRun {
    pub settings: CheckpointSettings,
    /// The checkpoint to resume from (None: a fresh start).
    pub restored: Option<Restored>,
}

/// Runs the graph to completion; returns the first error of any task.
pub fn run(graph: &Graph, control: &JobControl) -> Result<()> {
    run_with_checkpoints(graph, control, None)
}

/// One task to start: its name and what its thread runs (given its task index).
type Task = (String, Box<dyn FnOnce(usize) -> Result<()> + Send>);

/// The tasks of every instance of every node that starts a task.
fn build_tasks(
    graph: &Graph,
    control: &JobControl,
    restored: Option<&Restored>,
) -> Result<Vec<Task>> {
    let mut exchanges = Exchanges::new(graph);
    let mut tasks: Vec<Task> = Vec::new();
    for (id, node) in graph.nodes.iter().enumerate() {
        if !graph.starts_task(id) {
            continue;
        }
        for instance in 0..node.parallelism {
            let mut fanout = Fanout::build(graph, id, instance, &exchanges)?;
            if let Some(restored) = restored {
                fanout.restore(restored)?;
            }
            let name = format!("{}#{}", node.name, instance);
            let control = control.clone();
            let run: Box<dyn FnOnce(usize) -> Result<()> + Send> = match &node.kind {
                NodeKind::Source {
                    table,
                    connector,
                    prep,
                    idle_timeout,
                } => {
                    let mut ctx = SourceContext::new(
                        Arc::clone(&control.metrics),
                        Arc::clone(&control.stop),
                        instance,
                        node.parallelism,
                    );
                    let mut watermarks = Default::default();
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
                    Box::new(move |task| source.run(task, reader, ctx, &control))
                }
                NodeKind::Operator { factory } => {
                    let mut chain = Chain {
                        node: id,
                        operator: factory.create(instance, node.parallelism)?,
                        next: fanout,
                    };
                    if let Some(restored) = restored {
                        chain.operator.restore(restored.node(id))?;
                    }
                    let receiver = ReceiverTask {
                        name: name.clone(),
                        instance,
                        inputs: exchanges.take_inputs(id, instance)?,
                        chain,
                    };
                    Box::new(move |task| receiver.run(task, &control))
                }
            };
            tasks.push((name, run));
        }
    }
    // The channels' senders live in the tasks now; dropping ours lets a receiver see an
    // upstream task vanish.
    drop(exchanges);
    Ok(tasks)
}

/// Runs the graph, taking a checkpoint every interval when `checkpoints` is given, and
/// resuming from its restored checkpoint if it has one.
pub fn run_with_checkpoints(
    graph: &Graph,
    control: &JobControl,
    checkpoints: Option<CheckpointRun>,
) -> Result<()> {
    let mut control = control.clone();
    let mut coordination = None;
    if let Some(run) = &checkpoints {
        let (tx, rx) = unbounded();
        // New checkpoints are numbered after every one in the folder (also with --fresh).
        let newest = checkpoint::list(&*run.settings.store)?.first().copied();
        let last = run
            .restored
            .as_ref()
            .map_or(0, |r| r.id)
            .max(newest.unwrap_or(0));
        let requests = Arc::new(Requests::new(last, tx));
        control.checkpoints = Some(Arc::clone(&requests));
        if let Some(restored) = &run.restored {
            // The checkpoint may have completed without its commit (a crash in between):
            // commit it again; commits are idempotent.
            commit_sinks(&graph.sinks, |node| {
                restored.node(node).iter().map(|s| s.blob.clone()).collect()
            })?;
        }
        coordination = Some((rx, requests, run.settings.clone(), last + 1));
    }
    let restored = checkpoints.as_ref().and_then(|c| c.restored.as_ref());
    let tasks = build_tasks(graph, &control, restored)?;
    let task_count = tasks.len();
    let mut handles: Vec<(String, JoinHandle<Result<()>>)> = Vec::new();
    for (task, (name, run)) in tasks.into_iter().enumerate() {
        let c = control.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let result = run(task);
                if result.is_err() {
                    c.fail();
                    c.report_finished(task, None);
                }
                result
            })
            .map_err(|e| Error::internal(format!("cannot start a task thread: {e}")))?;
        handles.push((name, handle));
    }
    let done = Arc::new(AtomicBool::new(false));
    let coordinator = match coordination {
        None => None,
        Some((reports, requests, settings, first)) => {
            let job = Coordinator::new(
                settings,
                first,
                graph.shape(),
                task_count,
                reports,
                requests,
                graph.sinks.clone(),
                Arc::clone(&control.metrics),
                Flags {
                    done: Arc::clone(&done),
                    failed: Arc::clone(&control.failed),
                    stop: Arc::clone(&control.stop),
                    savepoint: Arc::clone(&control.savepoint),
                },
            );
            let c = control.clone();
            Some(
                std::thread::Builder::new()
                    .name("checkpoint coordinator".into())
                    .spawn(move || {
                        let result = job.run();
                        if result.is_err() {
                            c.fail();
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
        .position(|e| !e.is_downstream_stopped())
        .unwrap_or(0);
    errors.into_iter().nth(cause).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
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
