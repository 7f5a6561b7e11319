//! The server's job registry: what was submitted, with its settings and last state, one
//! `job.json` per job under `DATA/jobs/<id>/`.
//!
//! A record is a typed, versioned structure written atomically (a temporary file renamed
//! over the old one), so a crash leaves either the old record or the new one. A record that
//! cannot be read is reported by name and skipped; it never stops the server.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_engine::{Error, Result};

/// The version of the record format this build writes and reads.
const VERSION: u32 = 1;

/// A job's state, with Flink's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted, not started yet.
    Created,
    Running,
    /// Failed, waiting to restart from its latest checkpoint.
    Restarting,
    /// Its bounded input ended and every sink committed.
    Finished,
    /// Failed, and the restart strategy gave up.
    Failed,
    /// Stopped on request (with a savepoint, or cancelled).
    Stopped,
}

impl JobState {
    /// The name the API shows (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "CREATED",
            JobState::Running => "RUNNING",
            JobState::Restarting => "RESTARTING",
            JobState::Finished => "FINISHED",
            JobState::Failed => "FAILED",
            JobState::Stopped => "STOPPED",
        }
    }

    /// Whether the job runs (or is about to): a server that starts finds such a job
    /// interrupted and resumes it.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Created | JobState::Running | JobState::Restarting
        )
    }
}

/// What the registry keeps of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    pub version: u32,
    pub id: String,
    pub name: String,
    /// The file name the job was submitted from, which plan errors are located in.
    pub file: String,
    pub sql: String,
    /// `SET` overrides given at submission, in order.
    pub set: Vec<(String, String)>,
    pub state: JobState,
    /// Milliseconds since the Unix epoch.
    pub submitted_at_ms: i64,
    /// The last error of a failed run, if any.
    pub last_error: Option<String>,
    /// Restarts after failures so far (over every run of the job).
    pub restarts: u64,
}

impl JobRecord {
    pub fn new(id: String, name: String, file: String, sql: String) -> Self {
        JobRecord {
            version: VERSION,
            id,
            name,
            file,
            sql,
            set: Vec::new(),
            state: JobState::Created,
            submitted_at_ms: chrono::Utc::now().timestamp_millis(),
            last_error: None,
            restarts: 0,
        }
    }
}

/// The registry's folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    /// The registry under `data` (created if missing).
    pub fn open(data: &Path) -> Result<Self> {
        let root = data.join("jobs");
        std::fs::create_dir_all(&root).map_err(|e| {
            Error::config(format!(
                "--data {}: cannot create the job registry {}: {e}",
                data.display(),
                root.display()
            ))
        })?;
        Ok(Registry { root })
    }

    /// The folder of job `id`: its record and, unless the job names another, checkpoints.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.job_dir(id).join("job.json")
    }

    /// Writes `record` atomically.
    pub fn save(&self, record: &JobRecord) -> Result<()> {
        let dir = self.job_dir(&record.id);
        let io = |e: std::io::Error| {
            Error::connector(format!(
                "cannot write the job record in {}: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| Error::internal(format!("cannot encode job record: {e}")))?;
        let temporary = dir.join(".job.json.tmp");
        std::fs::write(&temporary, text).map_err(io)?;
        std::fs::rename(&temporary, self.record_path(&record.id)).map_err(io)
    }

    /// Removes job `id`'s folder (its record and the checkpoints kept there).
    pub fn remove(&self, id: &str) -> Result<()> {
        std::fs::remove_dir_all(self.job_dir(id)).map_err(|e| {
            Error::connector(format!("cannot remove {}: {e}", self.job_dir(id).display()))
        })
    }

    /// Every readable record, oldest submission first; an unreadable one is logged with its
    /// path and left out.
    pub fn load_all(&self) -> Vec<JobRecord> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut records: Vec<JobRecord> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let path = e.path().join("job.json");
                match read_record(&path) {
                    Ok(r) => Some(r),
                    Err(reason) => {
                        tracing::warn!("skipping job record {}: {reason}", path.display());
                        None
                    }
                }
            })
            .collect();
        records.sort_by(|a, b| (a.submitted_at_ms, &a.id).cmp(&(b.submitted_at_ms, &b.id)));
        records
    }
}

fn read_record(path: &Path) -> std::result::Result<JobRecord, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let record: JobRecord = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if record.version != VERSION {
        return Err(format!(
            "record version {} is not {VERSION}, the one this build reads",
            record.version
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let mut a = JobRecord::new("a1".into(), "first".into(), "a.sql".into(), "SET x;".into());
        a.set.push(("parallelism.default".into(), "1".into()));
        a.state = JobState::Running;
        registry.save(&a).unwrap();
        let mut b = JobRecord::new("b2".into(), "second".into(), "b.sql".into(), "".into());
        b.submitted_at_ms = a.submitted_at_ms + 1;
        registry.save(&b).unwrap();
        // A record missing a field is damaged, never filled with a default.
        std::fs::create_dir_all(dir.path().join("jobs/c3")).unwrap();
        std::fs::write(
            dir.path().join("jobs/c3/job.json"),
            r#"{"version":1,"id":"c3"}"#,
        )
        .unwrap();
        assert_eq!(registry.load_all(), vec![a.clone(), b]);
        registry.remove("a1").unwrap();
        assert_eq!(registry.load_all().len(), 1);
        assert!(JobState::Restarting.is_active() && !JobState::Stopped.is_active());
    }
}
