//! Restart strategies: what a supervisor does when a job fails, with Flink's option names.
//!
//! `restart-strategy.type` is `none`, `fixed-delay` or `exponential-delay` (Flink's aliases
//! `off`, `disable`, `fixeddelay`, `exponentialdelay` too). As in Flink, a job that sets no
//! type restarts with `exponential-delay` when checkpointing is on and not at all when it is
//! off.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_connectors::option_values::parse_duration;

/// What to do when a job fails.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// Fail the job at its first failure.
    None,
    /// Restart at most `attempts` times, waiting `delay` before each.
    FixedDelay { attempts: u32, delay: Duration },
    /// Restart waiting `initial_backoff`, multiplied by `multiplier` after each failure up
    /// to `max_backoff`; the backoff starts over after `reset_threshold` without a failure.
    ExponentialDelay {
        initial_backoff: Duration,
        max_backoff: Duration,
        multiplier: f64,
        reset_threshold: Duration,
        jitter: f64,
        /// Restarts allowed before the backoff is reset (`u32::MAX`: no limit).
        attempts: u32,
    },
}

/// The keys of this module, all under `restart-strategy.`.
pub fn is_restart_key(key: &str) -> bool {
    key.starts_with("restart-strategy.")
}

impl RestartStrategy {
    /// The strategy the `restart-strategy.*` settings of `values` give; `checkpointing` picks
    /// Flink's default. Returns the key and reason of a bad value.
    pub fn from_settings(
        values: &BTreeMap<String, String>,
        checkpointing: bool,
    ) -> Result<Self, (String, String)> {
        fn get<'a>(
            values: &'a BTreeMap<String, String>,
            key: &'a str,
        ) -> Option<(&'a str, &'a str)> {
            values.get(key).map(|v| (key, v.trim()))
        }
        let duration = |key: &str, default: Duration| -> Result<Duration, (String, String)> {
            get(values, key).map_or(Ok(default), |(k, v)| {
                parse_duration(v).map_err(|e| (k.to_string(), e))
            })
        };
        let count = |key: &str, default: u32| -> Result<u32, (String, String)> {
            get(values, key).map_or(Ok(default), |(k, v)| {
                v.parse::<u32>()
                    .map_err(|_| (k.to_string(), format!("'{v}' is not a whole number")))
            })
        };
        let fraction = |key: &str, default: f64, min: f64| -> Result<f64, (String, String)> {
            get(values, key).map_or(Ok(default), |(k, v)| match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= min => Ok(x),
                _ => Err((
                    k.to_string(),
                    format!("'{v}' is not a number of at least {min}"),
                )),
            })
        };
        let kind = match get(values, "restart-strategy.type") {
            Some((_, v)) => v.to_ascii_lowercase(),
            None if checkpointing => "exponential-delay".into(),
            None => "none".into(),
        };
        let strategy = match kind.as_str() {
            "none" | "off" | "disable" => RestartStrategy::None,
            "fixed-delay" | "fixeddelay" => RestartStrategy::FixedDelay {
                attempts: count("restart-strategy.fixed-delay.attempts", 1)?,
                delay: duration("restart-strategy.fixed-delay.delay", Duration::from_secs(1))?,
            },
            "exponential-delay" | "exponentialdelay" => {
                let key = "restart-strategy.exponential-delay.";
                RestartStrategy::ExponentialDelay {
                    initial_backoff: duration(
                        &format!("{key}initial-backoff"),
                        Duration::from_secs(1),
                    )?,
                    max_backoff: duration(&format!("{key}max-backoff"), Duration::from_secs(60))?,
                    multiplier: fraction(&format!("{key}backoff-multiplier"), 1.5, 1.0)?,
                    reset_threshold: duration(
                        &format!("{key}reset-backoff-threshold"),
                        Duration::from_secs(3600),
                    )?,
                    jitter: fraction(&format!("{key}jitter-factor"), 0.1, 0.0)?.min(1.0),
                    attempts: count(&format!("{key}attempts-before-reset-backoff"), u32::MAX)?,
                }
            }
            other => {
                return Err((
                    "restart-strategy.type".into(),
                    format!("'{other}' is not one of none, fixed-delay, exponential-delay"),
                ))
            }
        };
        Ok(strategy)
    }

    /// How long to wait before restart number `attempt` (1 for the first), given how long
    /// the job ran since it last started; None: do not restart. `jitter_draw` in [-1, 1]
    /// spreads exponential delays (0 gives the plain backoff).
    pub fn delay(&self, attempt: u32, ran_for: Duration, jitter_draw: f64) -> Option<Duration> {
        match self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (attempt <= *attempts).then_some(*delay)
            }
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts,
            } => {
                // A job that ran longer than the threshold starts over at the first backoff.
                let attempt = if ran_for >= *reset_threshold {
                    1
                } else {
                    attempt
                };
                if attempt > *attempts {
                    return None;
                }
                let base = initial_backoff.as_secs_f64()
                    * multiplier.powi(attempt.saturating_sub(1).min(1000) as i32);
                let base = base.min(max_backoff.as_secs_f64());
                let spread = base * jitter * jitter_draw.clamp(-1.0, 1.0);
                Some(Duration::from_secs_f64((base + spread).max(0.0)))
            }
        }
    }

    /// Whether the backoff starts over after a run of `ran_for` (exponential only).
    pub fn resets_after(&self, ran_for: Duration) -> bool {
        matches!(self, RestartStrategy::ExponentialDelay { reset_threshold, .. }
            if ran_for >= *reset_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(pairs: &[(&str, &str)], checkpointing: bool) -> RestartStrategy {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RestartStrategy::from_settings(&values, checkpointing).unwrap()
    }

    #[test]
    fn flink_defaults_depend_on_checkpointing() {
        assert_eq!(strategy(&[], false), RestartStrategy::None);
        let s = strategy(&[], true);
        assert_eq!(
            s.delay(1, Duration::ZERO, 0.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            s.delay(3, Duration::ZERO, 0.0),
            Some(Duration::from_secs_f64(2.25))
        );
        // Capped at one minute, and back to the first backoff after an hour of running.
        assert_eq!(
            s.delay(40, Duration::ZERO, 0.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.delay(40, Duration::from_secs(3600), 0.0),
            Some(Duration::from_secs(1))
        );
        assert!(s.resets_after(Duration::from_secs(3600)));
    }

    #[test]
    fn fixed_delay_counts_attempts() {
        let s = strategy(
            &[
                ("restart-strategy.type", "fixed-delay"),
                ("restart-strategy.fixed-delay.attempts", "2"),
                ("restart-strategy.fixed-delay.delay", "200 ms"),
            ],
            false,
        );
        assert_eq!(
            s.delay(1, Duration::ZERO, 0.5),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            s.delay(2, Duration::ZERO, 0.0),
            Some(Duration::from_millis(200))
        );
        assert_eq!(s.delay(3, Duration::ZERO, 0.0), None);
        assert_eq!(
            strategy(&[("restart-strategy.type", "none")], true).delay(1, Duration::ZERO, 0.0),
            None
        );
    }

    #[test]
    fn jitter_spreads_and_bad_values_name_their_key() {
        let s = strategy(
            &[
                ("restart-strategy.type", "exponential-delay"),
                ("restart-strategy.exponential-delay.jitter-factor", "0.5"),
            ],
            false,
        );
        assert_eq!(
            s.delay(1, Duration::ZERO, -1.0),
            Some(Duration::from_millis(500))
        );
        let values = [("restart-strategy.type".to_string(), "sometimes".to_string())]
            .into_iter()
            .collect();
        let (key, reason) = RestartStrategy::from_settings(&values, false).unwrap_err();
        assert_eq!(key, "restart-strategy.type");
        assert!(reason.contains("'sometimes'"), "{reason}");
        let values = [(
            "restart-strategy.fixed-delay.attempts".to_string(),
            "many".to_string(),
        )]
        .into_iter()
        .chain([("restart-strategy.type".into(), "fixed-delay".into())])
        .collect();
        let (key, _) = RestartStrategy::from_settings(&values, false).unwrap_err();
        assert_eq!(key, "restart-strategy.fixed-delay.attempts");
    }
}
