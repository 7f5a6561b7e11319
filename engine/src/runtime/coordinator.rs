//! The checkpoint coordinator: every interval it asks the sources for a barrier, collects
//! the snapshots every task reports once the barrier has passed it, writes the checkpoint,
//! and has the sinks commit what it covers.
//!
//! A checkpoint that does not complete within `execution.checkpointing.timeout` (a task
//! that never reports, a store that hangs) is abandoned: counted, reported, and the job
//! goes on with the next one. Reports that arrive for an abandoned checkpoint are ignored;
//! a write still running is left to finish or fail on its own thread (the sinks carry the
//! files of an abandoned checkpoint over to the next). A store that answers with an error
//! fails the job, whose restart strategy resumes it from its latest checkpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::checkpoint::manifest::OperatorState;
use crate::checkpoint::{self, CheckpointSettings, Part};
use crate::connector::SinkConnector;
use crate::error::{Error, Result};
use crate::metrics::JobMetrics;

/// How often the coordinator looks at its flags while it waits.
const TICK: Duration = Duration::from_millis(50);

/// What a task tells the coordinator.
#[derive(Debug)]
pub enum Report {
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

/// The tasks' side of checkpointing: the newest checkpoint asked for, and where to report.
pub struct Requests {
    requested: AtomicU64,
    reports: Sender<Report>,
}

impl Requests {
    pub fn new(last: u64, reports: Sender<Report>) -> Self {
        Self {
            requested: AtomicU64::new(last),
            reports,
        }
    }

    /// The newest checkpoint asked for; sources inject its barrier when it grows.
    pub fn requested(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    pub fn report(&self, report: Report) {
        // The coordinator may be gone (the job is ending): nothing to tell then.
        let _ = self.reports.send(report);
    }
}

/// A sink's stable id and its connector, which commits what checkpoints cover.
pub type Committer = (String, Arc<dyn SinkConnector>);

/// Makes visible what the sinks prepared for a completed checkpoint; `prepared(uid)`
/// gives each sink instance's value, in instance order.
pub fn commit_sinks(sinks: &[Committer], prepared: impl Fn(&str) -> Vec<Vec<u8>>) -> Result<()> {
    for (uid, sink) in sinks {
        let values = prepared(uid);
        if values.iter().any(|v| !v.is_empty()) {
            sink.commit(&values)?;
        }
    }
    Ok(())
}

/// The flags a coordinator shares with the job.
#[derive(Clone)]
pub struct Flags {
    /// Every task has ended.
    pub done: Arc<AtomicBool>,
    pub failed: Arc<AtomicBool>,
    /// Set to stop the job (after a savepoint).
    pub stop: Arc<AtomicBool>,
    /// Set by Ctrl-C or SIGTERM: take a checkpoint now, then stop.
    pub savepoint: Arc<AtomicBool>,
}

/// Takes the checkpoints of one run.
pub struct Coordinator {
    pub settings: CheckpointSettings,
    /// The id of the next checkpoint.
    pub next_id: u64,
    /// The job's stateful operators, recorded in every manifest.
    pub operators: Vec<OperatorState>,
    pub tasks: usize,
    pub reports: Receiver<Report>,
    pub requests: Arc<Requests>,
    pub sinks: Vec<Committer>,
    pub metrics: Arc<JobMetrics>,
    pub flags: Flags,
    /// Final snapshots of the tasks that have ended, by task.
    finished: BTreeMap<usize, Vec<Part>>,
}

/// How waiting for reports ended.
enum Wait {
    Complete(BTreeMap<usize, Vec<Part>>),
    TimedOut(Vec<usize>),
    /// The job ended or failed: no more checkpoints.
    Over,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: CheckpointSettings,
        next_id: u64,
        operators: Vec<OperatorState>,
        tasks: usize,
        reports: Receiver<Report>,
        requests: Arc<Requests>,
        sinks: Vec<Committer>,
        metrics: Arc<JobMetrics>,
        flags: Flags,
    ) -> Self {
        Self {
            settings,
            next_id,
            operators,
            tasks,
            reports,
            requests,
            sinks,
            metrics,
            flags,
            finished: BTreeMap::new(),
        }
    }

    fn over(&self) -> bool {
        self.flags.done.load(Ordering::SeqCst) || self.flags.failed.load(Ordering::SeqCst)
    }

    /// Takes a task's end into account; false when checkpoints cannot go on (a task
    /// failed, or every task has ended).
    fn task_finished(&mut self, task: usize, parts: Option<Vec<Part>>) -> bool {
        match parts {
            Some(parts) => {
                self.finished.insert(task, parts);
                self.finished.len() < self.tasks
            }
            None => false,
        }
    }

    pub fn run(mut self) -> Result<()> {
        let result = self.take_checkpoints();
        // Asked for a savepoint and it could not be taken (the input ended first, or a
        // task failed): stop all the same.
        if self.flags.savepoint.load(Ordering::SeqCst) {
            self.flags.stop.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Waits until `until` (or a savepoint request), taking in the ends of tasks; false
    /// when checkpoints are over.
    fn wait_for_next(&mut self, until: Instant) -> bool {
        while Instant::now() < until && !self.flags.savepoint.load(Ordering::SeqCst) {
            if self.over() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left.min(TICK)) {
                Ok(Report::Finished { task, parts }) => {
                    if !self.task_finished(task, parts) {
                        return false;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return false,
                // Late parts of an abandoned checkpoint.
                Ok(Report::Parts { .. }) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
        true
    }

    /// Collects the reports of checkpoint `id` until every task has reported or ended.
    /// Whether the job is over is asked only when no report is waiting: tasks report before
    /// they end, so what they said is taken in first.
    fn collect(&mut self, id: u64, deadline: Instant) -> Wait {
        let mut reported: BTreeMap<usize, Vec<Part>> = BTreeMap::new();
        let tasks = self.tasks;
        loop {
            let missing: Vec<usize> = (0..tasks)
                .filter(|t| !reported.contains_key(t) && !self.finished.contains_key(t))
                .collect();
            if missing.is_empty() {
                return Wait::Complete(reported);
            }
            if Instant::now() >= deadline {
                return Wait::TimedOut(missing);
            }
            match self.reports.recv_timeout(TICK) {
                Ok(Report::Parts {
                    task,
                    id: got,
                    parts,
                }) if got == id => {
                    reported.insert(task, parts);
                }
                // Late parts of an abandoned checkpoint.
                Ok(Report::Parts { .. }) => {}
                // A task that ends before its barrier is in the checkpoint with its final
                // state: its input is done, and downstream saw its end.
                Ok(Report::Finished { task, parts }) => {
                    if !self.task_finished(task, parts) {
                        return Wait::Over;
                    }
                }
                Err(RecvTimeoutError::Timeout) if self.over() => return Wait::Over,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Wait::Over,
            }
        }
    }

    /// Gives checkpoint `id` up: counted, reported, and the job goes on.
    fn abandon(&self, id: u64, reason: String) {
        tracing::warn!(
            "checkpoint {} abandoned ({reason}); the job goes on",
            checkpoint::checkpoint_path(&*self.settings.store, id)
        );
        self.metrics.add_checkpoint_failure(id, reason);
    }

    /// Writes checkpoint `id` on a thread of its own, waiting for it until `deadline`;
    /// `None` if the store had not finished by then. The parts come back for the commit.
    fn write(
        &self,
        id: u64,
        parts: Vec<Part>,
        deadline: Instant,
    ) -> Result<Option<(checkpoint::Written, Vec<Part>)>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let store = Arc::clone(&self.settings.store);
        let operators = self.operators.clone();
        std::thread::Builder::new()
            .name("checkpoint writer".into())
            .spawn(move || {
                let written = checkpoint::write(&*store, id, &operators, &parts);
                let _ = tx.send(written.map(|w| (w, parts)));
            })
            .map_err(|e| Error::internal(format!("cannot start a thread: {e}")))?;
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(written) => written.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::internal(
                "the checkpoint writer stopped unexpectedly",
            )),
        }
    }

    fn take_checkpoints(&mut self) -> Result<()> {
        let mut next_at = Instant::now() + self.settings.interval;
        loop {
            if !self.wait_for_next(next_at) {
                return Ok(());
            }
            let id = self.next_id;
            self.next_id += 1;
            let started = Instant::now();
            self.requests.requested.store(id, Ordering::SeqCst);
            next_at = started + self.settings.interval;
            let mut reported = match self.collect(id, started + self.settings.timeout) {
                Wait::Complete(reported) => reported,
                Wait::Over => return Ok(()),
                Wait::TimedOut(missing) => {
                    self.abandon(
                        id,
                        format!(
                            "not complete after {:?}: {} of {} tasks had not passed its barrier",
                            self.settings.timeout,
                            missing.len(),
                            self.tasks
                        ),
                    );
                    next_at = next_at.max(Instant::now() + TICK);
                    continue;
                }
            };
            // A task's barrier-time snapshot if it reported one, else its final one.
            let mut parts = Vec::new();
            for task in 0..self.tasks {
                match reported.remove(&task) {
                    Some(p) => parts.extend(p),
                    None => parts.extend(self.finished[&task].iter().cloned()),
                }
            }
            let deadline = started + self.settings.timeout;
            let Some((written, parts)) = self.write(id, parts, deadline)? else {
                self.abandon(
                    id,
                    format!(
                        "not written after {:?}: the checkpoint store did not answer",
                        self.settings.timeout
                    ),
                );
                next_at = next_at.max(Instant::now() + TICK);
                continue;
            };
            commit_sinks(&self.sinks, |uid| {
                let mut mine: Vec<&Part> = parts.iter().filter(|p| p.operator == uid).collect();
                mine.sort_by_key(|p| p.instance);
                mine.iter().map(|p| p.state.blob.clone()).collect()
            })?;
            self.metrics
                .add_checkpoint(id, started.elapsed(), written.bytes);
            checkpoint::retain(&*self.settings.store, self.settings.retained);
            if self.flags.savepoint.load(Ordering::SeqCst) {
                tracing::info!(
                    "savepoint {} taken and committed; stopping",
                    checkpoint::checkpoint_path(&*self.settings.store, id)
                );
                self.flags.stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
            next_at = next_at.max(Instant::now() + TICK);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use crossbeam_channel::unbounded;

    use super::*;
    use crate::checkpoint::{CheckpointStore, LocalStore};
    use crate::operator::StateSnapshot;

    fn operators() -> Vec<OperatorState> {
        ["a", "b"]
            .iter()
            .map(|id| OperatorState {
                id: id.to_string(),
                holds: [("what".to_string(), id.to_string())].into(),
            })
            .collect()
    }

    /// A coordinator over a local store with `tasks` tasks, running on its own thread.
    struct Harness {
        requests: Arc<Requests>,
        metrics: Arc<JobMetrics>,
        flags: Flags,
        store: Arc<LocalStore>,
        handle: Option<thread::JoinHandle<Result<()>>>,
        _dir: tempfile::TempDir,
    }

    fn part(task: usize, blob: &[u8]) -> Vec<Part> {
        vec![Part {
            operator: ["a", "b"][task].to_string(),
            instance: 0,
            state: StateSnapshot {
                blob: blob.to_vec(),
                ..Default::default()
            },
        }]
    }

    /// A local store whose writes hang while `hang` is set.
    struct HangingStore {
        inner: Arc<LocalStore>,
        hang: Arc<AtomicBool>,
    }

    impl CheckpointStore for HangingStore {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
            while self.hang.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(5));
            }
            self.inner.put(name, bytes)
        }
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
            self.inner.get(name)
        }
        fn folders(&self) -> Result<Vec<String>> {
            self.inner.folders()
        }
        fn remove_folder(&self, name: &str) -> Result<()> {
            self.inner.remove_folder(name)
        }
    }

    impl Harness {
        fn start(tasks: usize, timeout: Duration, retained: usize) -> Self {
            Self::start_over(tasks, timeout, retained, |local| local)
        }

        /// A harness whose coordinator writes through `store` made of the local store.
        fn start_over(
            tasks: usize,
            timeout: Duration,
            retained: usize,
            store: impl FnOnce(Arc<LocalStore>) -> Arc<dyn CheckpointStore>,
        ) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let local = LocalStore::new(dir.path());
            let writes_to = store(Arc::clone(&local));
            let store = local;
            let (tx, rx) = unbounded();
            let requests = Arc::new(Requests::new(0, tx));
            let metrics = Arc::new(JobMetrics::new());
            let flags = Flags {
                done: Arc::new(AtomicBool::new(false)),
                failed: Arc::new(AtomicBool::new(false)),
                stop: Arc::new(AtomicBool::new(false)),
                savepoint: Arc::new(AtomicBool::new(false)),
            };
            let settings = CheckpointSettings {
                store: writes_to,
                interval: Duration::from_millis(20),
                retained,
                timeout,
            };
            let coordinator = Coordinator::new(
                settings,
                1,
                operators(),
                tasks,
                rx,
                Arc::clone(&requests),
                Vec::new(),
                Arc::clone(&metrics),
                flags.clone(),
            );
            let handle = Some(thread::spawn(move || coordinator.run()));
            Harness {
                requests,
                metrics,
                flags,
                store,
                handle,
                _dir: dir,
            }
        }

        /// Waits until checkpoint `id` or a later one is asked for; returns which.
        fn requested(&self, id: u64) -> u64 {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let r = self.requests.requested();
                if r >= id {
                    return r;
                }
                assert!(Instant::now() < deadline, "checkpoint {id} never asked for");
                thread::sleep(Duration::from_millis(2));
            }
        }

        fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done(self) {
                assert!(Instant::now() < deadline, "{what} did not happen");
                thread::sleep(Duration::from_millis(2));
            }
        }

        fn finish(mut self) -> Result<()> {
            self.flags.done.store(true, Ordering::SeqCst);
            self.handle.take().unwrap().join().unwrap()
        }
    }

    #[test]
    fn a_task_that_never_reports_times_the_checkpoint_out_and_the_next_one_completes() {
        let h = Harness::start(2, Duration::from_millis(100), 3);
        let first = h.requested(1);
        assert_eq!(first, 1);
        // Task 0 reports, task 1 is stuck: checkpoint 1 is abandoned, counted, not written.
        h.requests.report(Report::Parts {
            task: 0,
            id: 1,
            parts: part(0, b"x"),
        });
        let second = h.requested(2);
        assert_eq!(second, 2);
        let figures = h.metrics.checkpoints();
        assert_eq!((figures.failed, figures.completed), (1, 0));
        let (id, reason) = figures.last_failure.unwrap();
        assert_eq!(id, 1);
        assert!(reason.contains("1 of 2 tasks"), "{reason}");
        // Task 1 catches up with checkpoint 1 late (ignored), then both report 2.
        h.requests.report(Report::Parts {
            task: 1,
            id: 1,
            parts: part(1, b"late"),
        });
        h.requests.report(Report::Parts {
            task: 0,
            id: 2,
            parts: part(0, b"p0"),
        });
        h.requests.report(Report::Parts {
            task: 1,
            id: 2,
            parts: part(1, b"p1"),
        });
        h.wait("checkpoint 2", |h| h.metrics.checkpoints().completed == 1);
        assert_eq!(h.metrics.checkpoints().last_id, 2);
        let restored = checkpoint::read(&*h.store, 2, &operators()).unwrap();
        assert_eq!(restored.operator("b")[0].blob, b"p1");
        assert!(checkpoint::read(&*h.store, 1, &operators()).is_err());
        h.finish().unwrap();
    }

    #[test]
    fn a_store_that_hangs_times_the_checkpoint_out_and_the_job_goes_on() {
        let hang = Arc::new(AtomicBool::new(true));
        let h = Harness::start_over(1, Duration::from_millis(100), 3, |inner| {
            Arc::new(HangingStore {
                inner,
                hang: Arc::clone(&hang),
            })
        });
        assert_eq!(h.requested(1), 1);
        h.requests.report(Report::Parts {
            task: 0,
            id: 1,
            parts: part(0, b"x"),
        });
        // The write hangs past the timeout: abandoned, and the next checkpoint is asked for.
        assert_eq!(h.requested(2), 2);
        let figures = h.metrics.checkpoints();
        assert_eq!((figures.failed, figures.completed), (1, 0));
        let (id, reason) = figures.last_failure.unwrap();
        assert_eq!(id, 1);
        assert!(reason.contains("store did not answer"), "{reason}");
        // The store answers again: checkpoint 2 completes.
        hang.store(false, Ordering::SeqCst);
        h.requests.report(Report::Parts {
            task: 0,
            id: 2,
            parts: part(0, b"y"),
        });
        h.wait("checkpoint 2", |h| h.metrics.checkpoints().completed == 1);
        assert_eq!(h.metrics.checkpoints().last_id, 2);
        h.finish().unwrap();
    }

    #[test]
    fn an_ended_task_is_in_later_checkpoints_with_its_final_state_and_old_ones_go() {
        let h = Harness::start(2, Duration::from_secs(5), 2);
        h.requests.report(Report::Finished {
            task: 1,
            parts: Some(part(1, b"final")),
        });
        for id in 1..=4 {
            assert_eq!(h.requested(id), id);
            h.requests.report(Report::Parts {
                task: 0,
                id,
                parts: part(0, &[id as u8]),
            });
            h.wait("the checkpoint", |h| h.metrics.checkpoints().last_id == id);
        }
        // Two retained: 3 and 4, each with task 1's final state.
        h.wait("retention", |h| {
            checkpoint::list(&*h.store).unwrap() == vec![4, 3]
        });
        let restored = checkpoint::read(&*h.store, 4, &operators()).unwrap();
        assert_eq!(restored.operator("a")[0].blob, [4]);
        assert_eq!(restored.operator("b")[0].blob, b"final");
        h.finish().unwrap();
    }

    #[test]
    fn a_failed_task_ends_checkpointing_and_a_savepoint_request_still_stops_the_job() {
        let h = Harness::start(2, Duration::from_secs(5), 3);
        assert_eq!(h.requested(1), 1);
        h.flags.savepoint.store(true, Ordering::SeqCst);
        h.requests.report(Report::Finished {
            task: 0,
            parts: None,
        });
        h.wait("the stop", |h| h.flags.stop.load(Ordering::SeqCst));
        assert_eq!(h.metrics.checkpoints().completed, 0);
        h.finish().unwrap();
    }
}
