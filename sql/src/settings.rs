//! `SET 'key' = 'value'` settings of a job, typed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono_tz::Tz;
use sluice_connectors::checkpoint_store;
use sluice_connectors::option_values::parse_duration;
use sluice_engine::checkpoint::CheckpointSettings;

use crate::restart::{is_restart_key, RestartStrategy};

/// The settings Sluice understands; others are reported as ignored.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `parallelism.default`: instances of every keyed operator and source.
    pub parallelism: usize,
    /// `table.local-time-zone`: where TIMESTAMP_LTZ windows align.
    pub time_zone: Tz,
    /// `table.exec.source.idle-timeout`: when a quiet partition stops holding the watermark.
    pub idle_timeout: Option<Duration>,
    /// `pipeline.auto-watermark-interval` (200 ms, as in Flink): how far the largest
    /// watermark seen must be past the last emitted one to be emitted (0: every record).
    pub watermark_interval: Duration,
    /// `execution.checkpointing.interval`: checkpoints are taken this often (none when unset).
    pub checkpoint_interval: Option<Duration>,
    /// `state.checkpoints.dir`: where checkpoints go (a folder, `file:///...` or
    /// `s3://bucket/prefix`).
    pub checkpoint_dir: Option<String>,
    /// `state.checkpoints.num-retained` (3).
    pub checkpoints_retained: usize,
    /// `execution.checkpointing.timeout` (10 min, as in Flink).
    pub checkpoint_timeout: Duration,
    /// `table.exec.state.ttl`: how long a key's state of a deduplication is kept after it
    /// was last written (None, or 0: for the job's life).
    pub state_ttl: Option<Duration>,
    /// `restart-strategy.*`: what a supervisor (`sluice server`) does when the job fails.
    pub restart: RestartStrategy,
    /// `table.optimizer.reuse-sub-plan-enabled` (true, as in Flink): a part of a plan that
    /// several INSERTs share (a view they all read) runs once, its output fanned out.
    pub reuse_sub_plans: bool,
    /// Keys that were set but that Sluice does not use.
    pub ignored: Vec<String>,
}

/// Keys accepted for Flink compatibility that change nothing here.
const ACCEPTED: &[&str] = &[
    "pipeline.name",
    "execution.runtime-mode",
    "sql-client.execution.result-mode",
];

impl Settings {
    /// Builds settings from `SET` values; returns the key and reason of a bad value.
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut settings = Settings {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            time_zone: Tz::UTC,
            idle_timeout: None,
            watermark_interval: Duration::from_millis(200),
            checkpoint_interval: None,
            checkpoint_dir: None,
            checkpoints_retained: 3,
            checkpoint_timeout: Duration::from_secs(600),
            state_ttl: None,
            restart: RestartStrategy::None,
            reuse_sub_plans: true,
            ignored: Vec::new(),
        };
        for (key, value) in values {
            let bad = |reason: String| (key.clone(), reason);
            match key.as_str() {
                "parallelism.default" => {
                    settings.parallelism = match value.trim().parse::<usize>() {
                        Ok(n) if n >= 1 => n,
                        _ => return Err(bad(format!("'{value}' is not a positive whole number"))),
                    }
                }
                "table.local-time-zone" => {
                    settings.time_zone = value.parse::<Tz>().map_err(|_| {
                        bad(format!(
                            "'{value}' is not a time zone name like 'UTC' or 'Asia/Shanghai'"
                        ))
                    })?
                }
                "pipeline.auto-watermark-interval" => {
                    settings.watermark_interval = parse_duration(value).map_err(bad)?;
                }
                "table.optimizer.reuse-sub-plan-enabled" => {
                    settings.reuse_sub_plans = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(format!("'{value}' is neither true nor false"))),
                    };
                }
                "table.exec.state.ttl" => {
                    let d = parse_duration(value).map_err(bad)?;
                    settings.state_ttl = (!d.is_zero()).then_some(d);
                }
                "table.exec.source.idle-timeout" => {
                    let d = parse_duration(value).map_err(bad)?;
                    settings.idle_timeout = (!d.is_zero()).then_some(d);
                }
                "execution.checkpointing.interval" => {
                    let d = parse_duration(value).map_err(bad)?;
                    settings.checkpoint_interval = (!d.is_zero()).then_some(d);
                }
                "execution.checkpointing.timeout" => {
                    let d = parse_duration(value).map_err(bad)?;
                    if d.is_zero() {
                        return Err(bad(
                            "a checkpoint needs some time: expected more than 0".into()
                        ));
                    }
                    settings.checkpoint_timeout = d;
                }
                "state.checkpoints.dir" | "execution.checkpointing.dir" => {
                    let dir = value.trim();
                    if dir.is_empty() {
                        return Err(bad("a folder or s3:// location is needed".into()));
                    }
                    settings.checkpoint_dir = Some(dir.to_string());
                }
                "state.checkpoints.num-retained" | "execution.checkpointing.num-retained" => {
                    settings.checkpoints_retained = match value.trim().parse::<usize>() {
                        Ok(n) if n >= 1 => n,
                        _ => return Err(bad(format!("'{value}' is not a positive whole number"))),
                    }
                }
                k if ACCEPTED.contains(&k) || is_restart_key(k) => {}
                _ => settings.ignored.push(key.clone()),
            }
        }
        settings.restart =
            RestartStrategy::from_settings(values, settings.checkpoint_interval.is_some())?;
        Ok(settings)
    }

    /// The checkpoint settings, when checkpoints are on; an interval without a folder is an
    /// error naming both keys.
    pub fn checkpoints(&self) -> Result<Option<CheckpointSettings>, String> {
        match (&self.checkpoint_interval, &self.checkpoint_dir) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(
                "'execution.checkpointing.interval' needs 'state.checkpoints.dir' (a folder)"
                    .into(),
            ),
            (Some(interval), Some(dir)) => Ok(Some(CheckpointSettings {
                store: checkpoint_store::open(dir).map_err(|e| e.message().to_string())?,
                interval: *interval,
                retained: self.checkpoints_retained,
                timeout: self.checkpoint_timeout,
            })),
        }
    }

    /// The zone windows on TIMESTAMP_LTZ align in, unless it is UTC (the fast path).
    pub fn window_zone(&self) -> Option<Tz> {
        (self.time_zone != Tz::UTC && self.time_zone != Tz::Etc__UTC).then_some(self.time_zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, (String, String)> {
        Settings::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_checkpoint_timeout_is_flink_s_ten_minutes_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().display().to_string();
        let on = [
            ("execution.checkpointing.interval", "10 s"),
            ("state.checkpoints.dir", dir.as_str()),
        ];
        let default = settings(&on).unwrap().checkpoints().unwrap().unwrap();
        assert_eq!(default.timeout, Duration::from_secs(600));
        let mut set = on.to_vec();
        set.push(("execution.checkpointing.timeout", "30 s"));
        let short = settings(&set).unwrap().checkpoints().unwrap().unwrap();
        assert_eq!(short.timeout, Duration::from_secs(30));
        let (key, reason) = settings(&[("execution.checkpointing.timeout", "0 s")]).unwrap_err();
        assert_eq!(key, "execution.checkpointing.timeout");
        assert!(reason.contains("more than 0"), "{reason}");
    }
}
