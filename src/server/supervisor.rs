//! Supervision of one job in the server: a thread that plans and runs the job, restarts it
//! from its latest checkpoint as its restart strategy says, and stops it on request.
//!
//! Each job has its own thread, metrics and stop flags, so a job that fails (or panics) ends
//! only itself. Every state change is written to the registry before it is visible to the
//! API, so a server that is killed resumes what was running.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_engine::error::ErrorKind;
use sluice_engine::metrics::JobMetrics;
use sluice_engine::runtime::{run_with_checkpoints, JobControl};
use sluice_engine::{Error, Result};
use sluice_sql::restart::RestartStrategy;
use sluice_sql::{job_settings, plan_job_with_defaults, SourceFile};

use super::registry::{JobRecord, JobState, Registry};
use crate::job::{checkpoint_run, graph_view, NodeView, Resume};

/// How a stop ends a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// A last checkpoint (savepoint) that the sinks commit, then stop; without checkpoints,
    /// the sinks flush and close.
    Savepoint,
    /// Stop at once; output after the last checkpoint is not committed.
    Cancel,
}

/// Where a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the beginning of the input (a new submission).
    Fresh,
    /// From the newest complete checkpoint, if there is one.
    Latest,
}

/// The run in progress (or the last one): what the API shows of it.
#[derive(Clone)]
pub struct Attempt {
    pub metrics: Arc<JobMetrics>,
    pub graph: Vec<NodeView>,
    pub started: Instant,
    pub checkpointing: bool,
    control: Option<JobControl>,
}

/// A job the server knows, running or not.
pub struct JobHandle {
    record: Mutex<JobRecord>,
    attempt: Mutex<Option<Attempt>>,
    stop: Mutex<Option<StopMode>>,
    wake: Condvar,
    /// Set when the server shuts down: the run stops with a savepoint but the registry keeps
    /// the job's state, so the next start resumes it.
    shutdown: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JobHandle {
    pub fn new(record: JobRecord) -> Arc<Self> {
        Arc::new(JobHandle {
            record: Mutex::new(record),
            attempt: Mutex::new(None),
            stop: Mutex::new(None),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    pub fn record(&self) -> JobRecord {
        lock(&self.record).clone()
    }

    pub fn attempt(&self) -> Option<Attempt> {
        lock(&self.attempt).clone()
    }

    /// Whether a supervisor thread is running the job (or waiting to restart it).
    pub fn is_supervised(&self) -> bool {
        lock(&self.thread)
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Starts the supervisor thread; the caller checked the job is not supervised.
    pub fn start(self: &Arc<Self>, registry: Registry, start: Start) -> Result<()> {
        *lock(&self.stop) = None;
        self.shutdown.store(false, Ordering::SeqCst);
        self.update(&registry, |r| {
            r.state = JobState::Created;
            r.last_error = None;
        });
        let job = Arc::clone(self);
        let id = self.record().id;
        let thread = std::thread::Builder::new()
            .name(format!("job {id}"))
            .spawn(move || job.supervise(&registry, start))
            .map_err(|e| Error::internal(format!("cannot start a job thread: {e}")))?;
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    /// Asks the job to stop; returns at once (the state changes when it has stopped).
    pub fn request_stop(&self, mode: StopMode) {
        *lock(&self.stop) = Some(mode);
        self.wake.notify_all();
        if let Some(attempt) = lock(&self.attempt).as_ref() {
            apply_stop(attempt, mode);
        }
    }

    /// Stops the job with a savepoint for a server shutdown, keeping its registry state.
    pub fn shut_down(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.request_stop(StopMode::Savepoint);
    }

    /// Waits for the supervisor thread to end.
    pub fn join(&self) {
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    fn update(&self, registry: &Registry, change: impl FnOnce(&mut JobRecord)) {
        let mut record = lock(&self.record);
        change(&mut record);
        if let Err(e) = registry.save(&record) {
            tracing::error!("job {}: {e}", record.id);
        }
    }

    fn stop_requested(&self) -> Option<StopMode> {
        *lock(&self.stop)
    }

    /// Sleeps for `delay` unless a stop is requested first; true when the delay passed.
    fn wait_unless_stopped(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut stop = lock(&self.stop);
        while stop.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stop = self
                .wake
                .wait_timeout(stop, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        false
    }

    fn supervise(self: Arc<Self>, registry: &Registry, mut start: Start) {
        let mut attempt: u32 = 0;
        loop {
            let began = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_once(registry, start)))
                .unwrap_or_else(|_| Err(Error::internal("the job's supervisor panicked")));
            if self.shutdown.load(Ordering::SeqCst) {
                // The server stops: the registry keeps the job's state for the next start.
                return;
            }
            let (error, strategy) = match outcome {
                Ok(Ended::Finished) => {
                    self.update(registry, |r| r.state = JobState::Finished);
                    return;
                }
                Ok(Ended::Stopped) => {
                    self.update(registry, |r| r.state = JobState::Stopped);
                    return;
                }
                Ok(Ended::Failed(error, strategy)) => (error, strategy),
                Err(error) => (error, RestartStrategy::None),
            };
            let message = error.to_string();
            tracing::warn!("job {}: failed: {message}", self.record().id);
            if self.stop_requested().is_some() {
                self.update(registry, |r| {
                    r.state = JobState::Stopped;
                    r.last_error = Some(message);
                });
                return;
            }
            let ran_for = began.elapsed();
            attempt = if strategy.resets_after(ran_for) {
                1
            } else {
                attempt + 1
            };
            let jitter = (rand_unit() * 2.0) - 1.0;
            let Some(delay) = strategy.delay(attempt, ran_for, jitter) else {
                self.update(registry, |r| {
                    r.state = JobState::Failed;
                    r.last_error = Some(message);
                });
                return;
            };
            self.update(registry, |r| {
                r.state = JobState::Restarting;
                r.last_error = Some(message);
                r.restarts += 1;
            });
            if !self.wait_unless_stopped(delay) {
                self.update(registry, |r| r.state = JobState::Stopped);
                return;
            }
            start = Start::Latest;
        }
    }

    /// Plans and runs the job once. `Err`: it could not be started.
    fn run_once(&self, registry: &Registry, start: Start) -> Result<Ended> {
        let record = self.record();
        let metrics = Arc::new(JobMetrics::new());
        let file = SourceFile {
            path: record.file.clone(),
            text: record.sql.clone(),
        };
        let defaults = server_defaults(&registry.job_dir(&record.id));
        let plan = match plan_job_with_defaults(&file, &defaults, &record.set, Arc::clone(&metrics))
        {
            Ok(plan) => plan,
            Err(error) => {
                let strategy = unplanned_strategy(&error, &file, &defaults, &record.set);
                return Ok(Ended::Failed(error, strategy));
            }
        };
        let strategy = plan.settings.restart.clone();
        let checkpoints = checkpoint_run(
            plan.checkpoints.clone(),
            &plan.graph.operator_states(),
            Resume {
                from_checkpoint: None,
                fresh: start == Start::Fresh,
            },
        );
        let checkpoints = match checkpoints {
            Ok(c) => c,
            Err(e) => return Ok(Ended::Failed(e, strategy)),
        };
        let control = JobControl::new(Arc::clone(&metrics), Arc::new(AtomicBool::new(false)));
        let attempt = Attempt {
            metrics,
            graph: graph_view(&plan.graph),
            started: Instant::now(),
            checkpointing: checkpoints.is_some(),
            control: Some(control.clone()),
        };
        *lock(&self.attempt) = Some(attempt.clone());
        self.update(registry, |r| r.state = JobState::Running);
        // A stop asked for while the job was being planned applies now.
        if let Some(mode) = self.stop_requested() {
            apply_stop(&attempt, mode);
        }
        let result = run_with_checkpoints(&plan.graph, &control, checkpoints);
        if let Some(a) = lock(&self.attempt).as_mut() {
            a.control = None;
        }
        Ok(match result {
            Err(e) => Ended::Failed(e, strategy),
            Ok(()) if self.stop_requested().is_some() => Ended::Stopped,
            Ok(()) => Ended::Finished,
        })
    }
}

/// The restart strategy of a job that could not be planned because of `error`. A
/// connector's error (an input gone, a service unreachable) may pass, as a failure while
/// running may: the job's own strategy, read from its settings. Any other (the server
/// planned the same file when it accepted the job, so a plan error now is a changed Sluice
/// or a bug): none, as when the settings themselves cannot be read.
fn unplanned_strategy(
    error: &Error,
    file: &SourceFile,
    defaults: &[(String, String)],
    set: &[(String, String)],
) -> RestartStrategy {
    if error.kind() != ErrorKind::Connector {
        return RestartStrategy::None;
    }
    job_settings(file, defaults, set).map_or(RestartStrategy::None, |settings| settings.restart)
}

/// How one run ended.
enum Ended {
    Finished,
    Stopped,
    Failed(Error, RestartStrategy),
}

fn apply_stop(attempt: &Attempt, mode: StopMode) {
    let Some(control) = &attempt.control else {
        return;
    };
    match mode {
        StopMode::Savepoint if attempt.checkpointing => {
            control.savepoint.store(true, Ordering::SeqCst)
        }
        _ => control.stop.store(true, Ordering::SeqCst),
    }
}

/// The settings the server gives every job unless the job sets them: its checkpoints go
/// to its own folder of the registry.
pub fn server_defaults(job_dir: &std::path::Path) -> Vec<(String, String)> {
    let checkpoints: PathBuf = job_dir.join("checkpoints");
    vec![(
        "state.checkpoints.dir".to_string(),
        checkpoints.display().to_string(),
    )]
}

/// A number in [0, 1) for restart jitter (no need for a random generator's quality).
fn rand_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}
