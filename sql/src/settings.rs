//! `SET 'key' = 'value'` settings of a job, typed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono_tz::Tz;
use sluice_connectors::option_values::parse_duration;

/// The settings Sluice understands; others are reported as ignored.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `parallelism.default`: instances of every keyed operator and source.
    pub parallelism: usize,
    /// `table.local-time-zone`: where TIMESTAMP_LTZ windows align.
    pub time_zone: Tz,
    /// `table.exec.source.idle-timeout`: when a quiet partition stops holding the watermark.
    pub idle_timeout: Option<Duration>,
    /// Keys that were set but that Sluice does not use.
    pub ignored: Vec<String>,
}

/// Keys accepted for Flink compatibility that change nothing here.
const ACCEPTED: &[&str] = &[
    "pipeline.auto-watermark-interval",
    "pipeline.name",
    "execution.runtime-mode",
    "sql-client.execution.result-mode",
    "table.exec.state.ttl",
];

impl Settings {
    /// Builds settings from `SET` values; returns the key and reason of a bad value.
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut settings = Settings {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            time_zone: Tz::UTC,
            idle_timeout: None,
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
                "table.exec.source.idle-timeout" => {
                    let d = parse_duration(value).map_err(bad)?;
                    settings.idle_timeout = (!d.is_zero()).then_some(d);
                }
                k if ACCEPTED.contains(&k) => {}
                _ => settings.ignored.push(key.clone()),
            }
        }
        Ok(settings)
    }

    /// The zone windows on TIMESTAMP_LTZ align in, unless it is UTC (the fast path).
    pub fn window_zone(&self) -> Option<Tz> {
        (self.time_zone != Tz::UTC && self.time_zone != Tz::Etc__UTC).then_some(self.time_zone)
    }
}
