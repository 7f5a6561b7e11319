//! What happens to a record a connector cannot use: one policy for sources and sinks.
//!
//! A malformed record in a source, or a record a sink's service refuses for good, either
//! stops the job (one sentence naming the table, the record and the reason) or is dropped:
//! counted in the job's metrics with its reason, said on stderr (a few times per interval,
//! then counted), and, with a dead-letter file, written there as one JSON line with the
//! reason, so nothing is lost silently.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_engine::metrics::{DropReason, JobMetrics};
use sluice_engine::{Error, Result};

/// The policy of one table for records of one kind of failure.
pub struct BadRecords {
    table: String,
    reason: DropReason,
    /// Stop the job instead of dropping.
    fail: bool,
    /// What the table's option to keep such records is called, for the message that stops
    /// the job (`sink.dead-letter.path`), if it has one.
    keep_option: Option<&'static str>,
    /// Why the job stops rather than dropping (`'sink.fail-on-error' is true`).
    fail_because: Option<&'static str>,
    dead_letter: Option<Mutex<File>>,
    metrics: Arc<JobMetrics>,
}

impl BadRecords {
    pub fn new(
        table: impl Into<String>,
        reason: DropReason,
        fail: bool,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        Self {
            table: table.into(),
            reason,
            fail,
            keep_option: None,
            fail_because: None,
            dead_letter: None,
            metrics,
        }
    }

    /// Keeps dropped records in the JSON-lines file at `path` (appended to), which the
    /// table's option `option` names; without a file, the message that stops the job
    /// points at that option.
    pub fn with_dead_letter(mut self, option: &'static str, path: Option<&Path>) -> Result<Self> {
        self.keep_option = Some(option);
        if let Some(path) = path {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    Error::config(format!(
                        "table '{}': option '{option}' = '{}': {e}",
                        self.table,
                        path.display()
                    ))
                    .for_option(option)
                })?;
            self.dead_letter = Some(Mutex::new(file));
        }
        Ok(self)
    }

    /// Says why the job stops on such a record, in its message.
    pub fn failing_because(mut self, why: &'static str) -> Self {
        self.fail_because = Some(why);
        self
    }

    /// Says whether the table drops such records (rather than stopping the job).
    pub fn drops(&self) -> bool {
        !self.fail
    }

    /// Counts `n` records dropped for this reason, without a message per record (a decoder
    /// that counts what it skipped says the first reason itself).
    pub fn count(&self, n: u64) {
        if n > 0 {
            self.metrics.add_dropped(&self.table, self.reason, n);
        }
    }

    /// A record that cannot be used: `what` names it (a record id, a file and line),
    /// `reason` says why, `record` is its content for the dead-letter file. Stops the job
    /// if the table says so; otherwise counted, said and kept.
    pub fn reject(
        &self,
        what: &str,
        reason: &str,
        record: Option<&serde_json::Value>,
    ) -> Result<()> {
        let dead_letter = self.dead_letter.as_ref().filter(|_| record.is_some());
        if self.fail && dead_letter.is_none() {
            let hint = match (self.fail_because, self.keep_option) {
                (Some(why), _) => format!(" ({why})"),
                (None, Some(option)) => format!("; set '{option}' to keep such records instead"),
                (None, None) => String::new(),
            };
            return Err(Error::data(format!(
                "table '{}': {what}: {reason}{hint}",
                self.table
            )));
        }
        self.metrics.add_dropped(&self.table, self.reason, 1);
        if let (Some(file), Some(record)) = (dead_letter, record) {
            let line = serde_json::json!({"table": self.table, "what": what, "reason": reason, "record": record});
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            writeln!(file, "{line}").map_err(|e| {
                Error::connector(format!(
                    "table '{}': writing the dead-letter file: {e}",
                    self.table
                ))
            })?;
            return Ok(());
        }
        sluice_engine::warn_limited!(
            "table '{}': {what}: {reason} (dropped: {})",
            self.table,
            self.reason.as_str()
        );
        Ok(())
    }

    /// Makes the dead-letter file durable (at a checkpoint and at the end).
    pub fn flush(&self) -> Result<()> {
        if let Some(file) = &self.dead_letter {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.flush().and_then(|()| file.sync_data()).map_err(|e| {
                Error::connector(format!(
                    "table '{}': writing the dead-letter file: {e}",
                    self.table
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_records_are_counted_kept_or_stop_the_job() {
        let metrics = Arc::new(JobMetrics::new());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let keep = BadRecords::new("out", DropReason::Rejected, true, Arc::clone(&metrics))
            .with_dead_letter("sink.dead-letter.path", Some(&path))
            .unwrap();
        let record = serde_json::json!({"id": 7});
        keep.reject("record 7", "too large", Some(&record)).unwrap();
        keep.flush().unwrap();
        let kept = std::fs::read_to_string(&path).unwrap();
        assert!(
            kept.contains("\"reason\":\"too large\"") && kept.contains("\"id\":7"),
            "{kept}"
        );
        assert_eq!(metrics.dropped_total(DropReason::Rejected), 1);

        let stop = BadRecords::new("out", DropReason::Rejected, true, Arc::clone(&metrics))
            .with_dead_letter("sink.dead-letter.path", None)
            .unwrap();
        let err = stop
            .reject("record 8", "too large", Some(&record))
            .unwrap_err();
        assert_eq!(
            err.message(),
            "table 'out': record 8: too large; set 'sink.dead-letter.path' to keep such records instead"
        );

        let count = BadRecords::new("in", DropReason::Malformed, false, Arc::clone(&metrics));
        count.reject("line 3", "not JSON", None).unwrap();
        count.count(4);
        assert_eq!(metrics.dropped_total(DropReason::Malformed), 5);
    }
}
