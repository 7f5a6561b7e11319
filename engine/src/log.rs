//! Logging: Sluice's libraries say what happens through `tracing` (levels, `RUST_LOG`);
//! the `sluice` command decides how it is shown.
//!
//! A message that may repeat for every record or call (a malformed record, a throttled
//! request) goes through [`RateLimit`] (the [`warn_limited`](crate::warn_limited) macro):
//! a few per interval are shown, and the next one shown says how many were held back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many messages of one call site are shown per interval.
const BURST: u32 = 5;
const INTERVAL: Duration = Duration::from_secs(10);

/// The rate limit of one call site.
pub struct RateLimit {
    /// Start of the current interval, messages shown in it, and messages held back.
    state: Mutex<Option<(Instant, u32, u64)>>,
}

impl RateLimit {
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }

    /// Whether a message may be shown now; if so, how many were held back before it.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (start, shown, held) = state.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= INTERVAL {
            *start = now;
            *shown = 0;
        }
        if *shown < BURST {
            *shown += 1;
            Some(std::mem::take(held))
        } else {
            *held += 1;
            None
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// `tracing::warn!` for a message that may repeat per record or call: at most a few per
/// interval from this call site, and the next one shown counts those held back.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log::RateLimit = $crate::log::RateLimit::new();
        if let Some(held) = LIMIT.admit() {
            if held > 0 {
                ::tracing::warn!(
                    "{} ({held} more like this were not shown)",
                    format_args!($($arg)+)
                );
            } else {
                ::tracing::warn!($($arg)+);
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_shown_then_held_back_and_counted() {
        let limit = RateLimit::new();
        let t0 = Instant::now();
        let shown: Vec<Option<u64>> = (0..8).map(|_| limit.admit_at(t0)).collect();
        assert_eq!(&shown[..5], &[Some(0); 5]);
        assert_eq!(&shown[5..], &[None; 3]);
        // The next interval shows again, saying how many were held back.
        assert_eq!(limit.admit_at(t0 + INTERVAL), Some(3));
        assert_eq!(limit.admit_at(t0 + INTERVAL), Some(0));
    }
}
