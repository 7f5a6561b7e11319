//! `sluice server`: one long-running process that runs many jobs (Flink's session mode).
//!
//! Jobs are submitted over a JSON REST API ([`api`]), kept in a registry on disk
//! ([`registry`]) and each run by its own supervisor ([`supervisor`]). On start the server
//! resumes every job that was running when it last stopped (or crashed), from the job's
//! latest complete checkpoint; on SIGTERM or Ctrl-C it stops every job with a savepoint.

mod api;
mod details;
pub mod registry;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sluice_engine::metrics::JobMetrics;
use sluice_engine::{Error, Result};
use sluice_sql::{plan_job_with_defaults, SourceFile};

use registry::{JobRecord, Registry};
use supervisor::{server_defaults, JobHandle, Start};

/// What `sluice server` is started with.
pub struct ServerArgs {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub jobs_dir: Option<PathBuf>,
    pub auth_token: Option<String>,
}

/// The jobs of the server and where they are kept.
pub struct Server {
    registry: Registry,
    jobs: Mutex<Vec<Arc<JobHandle>>>,
    token: Option<String>,
}

/// What a submission carries.
pub struct Submission {
    pub sql: String,
    pub name: Option<String>,
    /// The file name plan errors are located in.
    pub file: Option<String>,
    pub set: Vec<(String, String)>,
}

/// Why a request about a job could not be done.
#[derive(Debug)]
pub enum JobError {
    NotFound(String),
    /// The job is not in a state that allows it (the sentence says which).
    Conflict(String),
    /// The job file does not plan (the sentence is the planner's, with file:line:column).
    Invalid(Error),
    Internal(Error),
}

impl Server {
    fn new(registry: Registry, token: Option<String>) -> Self {
        Server {
            registry,
            jobs: Mutex::new(Vec::new()),
            token,
        }
    }

    fn jobs(&self) -> Vec<Arc<JobHandle>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn find(&self, id: &str) -> std::result::Result<Arc<JobHandle>, JobError> {
        self.jobs()
            .into_iter()
            .find(|j| j.record().id == id)
            .ok_or_else(|| JobError::NotFound(format!("there is no job '{id}'")))
    }

    /// Plans the job to check it, registers it and starts it.
    pub fn submit(&self, s: Submission) -> std::result::Result<JobRecord, JobError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let file = s.file.unwrap_or_else(|| "job.sql".into());
        let name = s.name.unwrap_or_else(|| {
            Path::new(&file)
                .file_stem()
                .map_or("job".into(), |n| n.to_string_lossy().into_owned())
        });
        let source = SourceFile {
            path: file.clone(),
            text: s.sql.clone(),
        };
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            plan_job_with_defaults(
                &source,
                &server_defaults(&self.registry.job_dir(&id)),
                &s.set,
                Arc::new(JobMetrics::new()),
            )
            .map(|_| ())
        }));
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == sluice_engine::error::ErrorKind::Internal => {
                return Err(JobError::Internal(e))
            }
            Ok(Err(e)) => return Err(JobError::Invalid(e)),
            Err(_) => {
                return Err(JobError::Internal(Error::internal(
                    "planning the job panicked",
                )))
            }
        }
        let mut record = JobRecord::new(id, name, file, s.sql);
        record.set = s.set;
        self.registry.save(&record).map_err(JobError::Internal)?;
        let job = JobHandle::new(record);
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&job));
        job.start(self.registry.clone(), Start::Fresh)
            .map_err(JobError::Internal)?;
        tracing::info!("job {} ({}) submitted", job.record().id, job.record().name);
        Ok(job.record())
    }

    /// Stops a running job.
    pub fn stop(
        &self,
        id: &str,
        mode: supervisor::StopMode,
    ) -> std::result::Result<JobRecord, JobError> {
        let job = self.find(id)?;
        if !job.is_supervised() {
            return Err(JobError::Conflict(format!(
                "job '{id}' is not running (it is {})",
                job.record().state.as_str()
            )));
        }
        job.request_stop(mode);
        Ok(job.record())
    }

    /// Resumes a stopped or failed job from its latest checkpoint.
    pub fn resume(&self, id: &str) -> std::result::Result<JobRecord, JobError> {
        let job = self.find(id)?;
        let record = job.record();
        if job.is_supervised() || record.state.is_active() {
            return Err(JobError::Conflict(format!("job '{id}' is already running")));
        }
        if record.state == registry::JobState::Finished {
            return Err(JobError::Conflict(format!(
                "job '{id}' is finished: its input ended; submit it again to run it again"
            )));
        }
        if job.attempt().is_some_and(|a| !a.checkpointing) {
            return Err(JobError::Conflict(format!(
                "job '{id}' has no checkpoints to resume from (checkpointing is off: set \
                 'execution.checkpointing.interval'); submit it again to start over"
            )));
        }
        job.start(self.registry.clone(), Start::Latest)
            .map_err(JobError::Internal)?;
        Ok(job.record())
    }

    /// Forgets a job that does not run, with its folder in the registry.
    pub fn delete(&self, id: &str) -> std::result::Result<(), JobError> {
        let job = self.find(id)?;
        if job.is_supervised() || job.record().state.is_active() {
            return Err(JobError::Conflict(format!(
                "job '{id}' is running: stop it first"
            )));
        }
        self.registry.remove(id).map_err(JobError::Internal)?;
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|j| j.record().id != id);
        Ok(())
    }

    /// Loads the registry and resumes the jobs that were running.
    fn recover(&self) {
        for record in self.registry.load_all() {
            let active = record.state.is_active();
            let job = JobHandle::new(record);
            self.jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arc::clone(&job));
            if active {
                let r = job.record();
                tracing::info!("job {} ({}): resuming after a restart", r.id, r.name);
                if let Err(e) = job.start(self.registry.clone(), Start::Latest) {
                    tracing::error!("job {}: cannot resume: {e}", r.id);
                }
            }
        }
    }

    /// Submits every `*.sql` file of `dir` that the registry does not hold yet (the same
    /// file with the same text), in name order. A file that does not plan is reported and
    /// skipped.
    fn submit_folder(&self, dir: &Path) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::config(format!("--jobs-dir {}: cannot read it: {e}", dir.display()))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let shown = path.display().to_string();
            let sql = std::fs::read_to_string(&path)
                .map_err(|e| Error::config(format!("cannot read job file {shown}: {e}")))?;
            let known = self
                .jobs()
                .iter()
                .any(|j| j.record().file == shown && j.record().sql == sql);
            if known {
                continue;
            }
            match self.submit(Submission {
                sql,
                name: None,
                file: Some(shown.clone()),
                set: Vec::new(),
            }) {
                Ok(r) => eprintln!("sluice server: submitted {shown} as job {}", r.id),
                Err(JobError::Invalid(e)) | Err(JobError::Internal(e)) => {
                    eprintln!("sluice server: not submitted: {e}")
                }
                Err(e) => eprintln!("sluice server: not submitted: {shown}: {e:?}"),
            }
        }
        Ok(())
    }

    /// Stops every job with a savepoint, keeping their registry state for the next start.
    fn shut_down(&self) {
        let jobs = self.jobs();
        for job in &jobs {
            job.shut_down();
        }
        for job in &jobs {
            job.join();
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(args: ServerArgs) -> Result<()> {
    let registry = Registry::open(&args.data)?;
    let server = Arc::new(Server::new(registry, args.auth_token));
    server.recover();
    if let Some(dir) = &args.jobs_dir {
        server.submit_folder(dir)?;
    }
    let data = args.data.display().to_string();
    let result = sluice_connectors::http::serve(
        api::router(Arc::clone(&server)),
        args.listen,
        "the Sluice server",
        |bound| {
            println!("sluice server: listening on http://{bound} (data in {data})");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        },
        sluice_connectors::http::shutdown_signal(),
    );
    eprintln!("sluice server: stopping every job with a savepoint");
    server.shut_down();
    eprintln!("sluice server: stopped");
    result
}
