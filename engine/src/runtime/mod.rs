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

use std::panic::{catch_unwind, AssertUnwindSafe};
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
use exchange::Exchanges;
pub use exchange::{key_hashes, owner};
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
            let mut fanout = Fanout::build(graph, id, instance, &exchanges, &control.metrics)?;
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
                        let parts = restored.operator(&node.uid);
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
                        uid: node.uid.clone(),
                        instance,
                        table: table.clone(),
                        prep: Arc::clone(prep),
                        idle_timeout: *idle_timeout,
                        bounded: connector.bounded(),
                        fanout,
                        name: name.clone(),
                        restored_watermarks: watermarks,
                    };
                    Box::new(move |task| source.run(task, reader, ctx, &control))
                }
                NodeKind::Operator { factory } => {
                    let mut chain = Chain {
                        uid: node.uid.clone(),
                        instance,
                        parallelism: node.parallelism,
                        operator: factory.create(instance, node.parallelism)?,
                        next: fanout,
                    };
                    if let Some(restored) = restored {
                        chain.restore_own(restored)?;
                    }
                    let first_inputs = if node.second_input.is_some() {
                        exchanges.first_inputs(id)
                    } else {
                        usize::MAX
                    };
                    let receiver = ReceiverTask {
                        name: name.clone(),
                        instance,
                        first_inputs,
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
            commit_sinks(&graph.committers(), |uid| {
                restored
                    .operator(uid)
                    .iter()
                    .map(|s| s.blob.clone())
                    .collect()
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
            .spawn({
                let name = name.clone();
                move || {
                    // A panic is this task's failure: the job stops as for an error, and the
                    // coordinator hears of it, instead of waiting for the other tasks to notice.
                    let result = catch_unwind(AssertUnwindSafe(|| run(task)))
                        .unwrap_or_else(|_| Err(Error::internal(format!("task {name} panicked"))));
                    if result.is_err() {
                        c.fail();
                        c.report_finished(task, None);
                    }
                    result
                }
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
                graph.operator_states(),
                task_count,
                reports,
                requests,
                graph.committers(),
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
                tracing::warn!("the job ended, but its checkpoints stay: {e}");
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
mod tests;
