//! Partition commit: when a partition of a filesystem sink is declared complete.
//!
//! With checkpoints, files become visible when the checkpoint that covers them completes;
//! the partition itself is *committed* (a `_SUCCESS` file, a Glue partition) when its
//! trigger fires, as in Flink:
//!
//! - `'sink.partition-commit.trigger' = 'process-time'` (the default): when the machine's
//!   clock passes the moment the partition was first seen plus `sink.partition-commit.delay`
//!   (default 0: at the first checkpoint that has files for it);
//! - `'partition-time'`: when the watermark passes the time extracted from the partition's
//!   values plus the delay. The time comes from `partition.time-extractor.timestamp-pattern`
//!   (`$dt $hour:00:00`), by default the first partition value, read as
//!   `yyyy-MM-dd[ HH[:mm[:ss]]]` in UTC.
//!
//! Writers report, with every checkpoint, the partitions they hold files for that are not
//! committed yet and their watermark; the committer ([`Committer`]) decides on a completed
//! checkpoint. At the end of a bounded input every partition is committed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use super::partition::unescape_path_name;
use crate::option_values::parse_duration;

/// `sink.partition-commit.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    ProcessTime,
    PartitionTime,
}

/// The partition commit options of a sink table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPolicy {
    pub trigger: Trigger,
    pub delay: Duration,
    /// `partition.time-extractor.timestamp-pattern`: `$name` stands for a partition value.
    pub pattern: Option<String>,
}

impl CommitPolicy {
    pub fn take(options: &mut Options, partition_by: &[String]) -> Result<Self> {
        let table = options.table().to_string();
        let trigger = match options
            .take(&["sink.partition-commit.trigger"])
            .map(|t| t.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("process-time") => Trigger::ProcessTime,
            Some("partition-time") => Trigger::PartitionTime,
            Some(other) => {
                return Err(Error::config(format!(
                    "table '{table}': option 'sink.partition-commit.trigger' = '{other}' is \
                     invalid: expected 'process-time' or 'partition-time'"
                )))
            }
        };
        let delay = options
            .take_parsed("sink.partition-commit.delay", parse_duration)?
            .unwrap_or_default();
        let pattern = options.take(&["partition.time-extractor.timestamp-pattern"]);
        if let Some(pattern) = &pattern {
            for name in pattern_names(pattern) {
                if !partition_by.iter().any(|p| p.eq_ignore_ascii_case(&name)) {
                    return Err(Error::config(format!(
                        "table '{table}': option 'partition.time-extractor.timestamp-pattern' = \
                         '{pattern}' names '${name}', which is not a partition column"
                    )));
                }
            }
        }
        if trigger == Trigger::PartitionTime && partition_by.is_empty() {
            return Err(Error::config(format!(
                "table '{table}': 'sink.partition-commit.trigger' = 'partition-time' needs a \
                 PARTITIONED BY clause"
            )));
        }
        Ok(Self {
            trigger,
            delay,
            pattern,
        })
    }

    /// The time of partition folder `folder` (`dt=2026-11-24/hour=07`), in epoch
    /// milliseconds (UTC).
    pub fn partition_time(&self, folder: &str) -> std::result::Result<i64, String> {
        let values: Vec<(String, String)> = folder
            .split('/')
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), unescape_path_name(v)))
            .collect();
        let text = match &self.pattern {
            None => values
                .first()
                .map(|(_, v)| v.clone())
                .ok_or_else(|| "it has no partition value".to_string())?,
            Some(pattern) => {
                let mut text = pattern.clone();
                // Longest names first, so `$hour` is not taken for `$h` followed by `our`.
                let mut names = pattern_names(pattern);
                names.sort_by_key(|n| std::cmp::Reverse(n.len()));
                for name in names {
                    let value = values
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                        .map(|(_, v)| v.as_str())
                        .ok_or_else(|| format!("it has no value for '{name}'"))?;
                    text = text.replace(&format!("${name}"), value);
                }
                text
            }
        };
        parse_partition_time(&text)
            .ok_or_else(|| format!("'{text}' is not a time of the form yyyy-MM-dd[ HH[:mm[:ss]]]"))
    }
}

/// The `$name`s of a timestamp pattern.
fn pattern_names(pattern: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            names.push(rest[..end].to_string());
        }
        rest = &rest[end..];
    }
    names
}

fn parse_partition_time(text: &str) -> Option<i64> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Some((date, hour)) = text.split_once(' ') {
        let hour: u32 = hour.parse().ok()?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        return Some(date.and_hms_opt(hour, 0, 0)?.and_utc().timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// What one writer reports with a checkpoint about partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionReport {
    /// Partition folders with files of this writer that are not known to be committed.
    pub partitions: BTreeSet<String>,
    /// The writer's watermark at the checkpoint (`None`: none yet).
    pub watermark: Option<i64>,
}

/// Decides, on completed checkpoints, which partitions to commit. Shared by the writers of a
/// table, who drop the partitions it committed from their later reports.
#[derive(Default)]
pub struct Committer {
    state: Mutex<CommitterState>,
}

#[derive(Default)]
struct CommitterState {
    /// When each waiting partition was first reported (for the process-time trigger).
    first_seen: HashMap<String, Instant>,
    /// Partitions committed in this run of the job.
    committed: BTreeSet<String>,
}

impl Committer {
    /// The partitions to commit now, given every writer's report for a completed
    /// checkpoint. They count as committed once returned: the caller commits them or fails
    /// the job (and a restore commits them again).
    pub fn due(
        &self,
        policy: &CommitPolicy,
        reports: &[PartitionReport],
    ) -> std::result::Result<Vec<String>, String> {
        let now = Instant::now();
        let watermark = reports
            .iter()
            .map(|r| r.watermark.unwrap_or(i64::MIN))
            .min()
            .unwrap_or(i64::MIN);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: BTreeSet<&String> = reports.iter().flat_map(|r| &r.partitions).collect();
        let mut due = Vec::new();
        for folder in candidates {
            let ready = match policy.trigger {
                Trigger::ProcessTime => {
                    let seen = *state.first_seen.entry(folder.clone()).or_insert(now);
                    now >= seen + policy.delay
                }
                Trigger::PartitionTime => {
                    let time = policy
                        .partition_time(folder)
                        .map_err(|e| format!("cannot tell the time of partition {folder}: {e}"))?;
                    let delay = i64::try_from(policy.delay.as_millis()).unwrap_or(i64::MAX);
                    watermark > time.saturating_add(delay)
                }
            };
            if ready {
                due.push(folder.clone());
            }
        }
        for folder in &due {
            state.first_seen.remove(folder);
            state.committed.insert(folder.clone());
        }
        Ok(due)
    }

    /// Whether `folder` was committed in this run.
    pub fn committed(&self, folder: &str) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .committed
            .contains(folder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)], partition_by: &[&str]) -> Result<CommitPolicy> {
        let mut o = Options::from_pairs("t", pairs);
        let names: Vec<String> = partition_by.iter().map(|s| s.to_string()).collect();
        let policy = CommitPolicy::take(&mut o, &names)?;
        o.finish()?;
        Ok(policy)
    }

    /// Hourly partitions `dt=.../hour=..`, committed an hour after their end.
    fn hourly() -> CommitPolicy {
        policy(
            &[
                ("sink.partition-commit.trigger", "partition-time"),
                ("sink.partition-commit.delay", "1 h"),
                (
                    "partition.time-extractor.timestamp-pattern",
                    "$dt $hour:00:00",
                ),
            ],
            &["dt", "hour"],
        )
        .unwrap()
    }

    #[test]
    fn partition_times_from_values_and_patterns() {
        let default = policy(&[], &["dt"]).unwrap();
        assert_eq!(default.trigger, Trigger::ProcessTime);
        assert_eq!(
            default.partition_time("dt=2026-11-24"),
            Ok(1_795_478_400_000)
        );
        assert_eq!(
            default.partition_time("dt=2026-11-24 07%3A00%3A00/x=1"),
            Ok(1_795_478_400_000 + 7 * 3_600_000)
        );
        let hourly = hourly();
        assert_eq!(hourly.delay, Duration::from_secs(3600));
        assert_eq!(
            hourly.partition_time("dt=2026-11-24/hour=07"),
            Ok(1_795_478_400_000 + 7 * 3_600_000)
        );
        assert!(hourly
            .partition_time("dt=2026-11-24")
            .unwrap_err()
            .contains("no value for 'hour'"));
        assert!(default
            .partition_time("dt=yesterday")
            .unwrap_err()
            .contains("'yesterday' is not a time"));
    }

    #[test]
    fn bad_options_are_named() {
        let e = policy(
            &[("partition.time-extractor.timestamp-pattern", "$day")],
            &["dt"],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("'$day', which is not a partition column"),
            "{e}"
        );
        let e = policy(&[("sink.partition-commit.trigger", "sometimes")], &["dt"]).unwrap_err();
        assert!(e.to_string().contains("'sometimes' is invalid"), "{e}");
        let e = policy(&[("sink.partition-commit.trigger", "partition-time")], &[]).unwrap_err();
        assert!(e.to_string().contains("needs a PARTITIONED BY"), "{e}");
    }

    #[test]
    fn partition_time_waits_for_every_writers_watermark() {
        let policy = hourly();
        let seven = 1_795_478_400_000 + 7 * 3_600_000;
        let report = |folders: &[&str], watermark: Option<i64>| PartitionReport {
            partitions: folders.iter().map(|f| f.to_string()).collect(),
            watermark,
        };
        let committer = Committer::default();
        let commit = |reports: &[PartitionReport]| committer.due(&policy, reports).unwrap();
        let p7 = "dt=2026-11-24/hour=07";
        let p8 = "dt=2026-11-24/hour=08";
        // The hour has ended, but not the delay.
        let due = commit(&[report(&[p7], Some(seven + 3_600_000)), report(&[], None)]);
        assert!(due.is_empty());
        // One writer is past the delay, the other has no watermark yet.
        let due = commit(&[
            report(&[p7, p8], Some(seven + 7_200_000)),
            report(&[], None),
        ]);
        assert!(due.is_empty());
        let due = commit(&[
            report(&[p7, p8], Some(seven + 7_200_000)),
            report(&[p8], Some(seven + 7_200_000)),
        ]);
        assert_eq!(due, vec![p7.to_string()]);
        assert!(committer.committed(p7));
        assert!(!committer.committed(p8));
        // Past the end of hour 8 plus the delay, strictly.
        let due = commit(&[report(&[p8], Some(seven + 7_200_001))]);
        assert_eq!(due, vec![p8.to_string()]);
    }

    #[test]
    fn process_time_commits_at_once_without_delay() {
        let policy = policy(&[], &["dt"]).unwrap();
        let committer = Committer::default();
        let due = committer
            .due(
                &policy,
                &[PartitionReport {
                    partitions: ["dt=a".to_string()].into(),
                    watermark: None,
                }],
            )
            .unwrap();
        assert_eq!(due, vec!["dt=a".to_string()]);
    }
}
