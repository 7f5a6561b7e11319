//! Kinesis's read limits of one shard, enforced as the service enforces them.
//!
//! A shard serves at most five GetRecords calls per second and 2 MiB of data per second; a
//! call may return up to 10 MiB, after which the calls of the next five seconds are refused
//! (`ProvisionedThroughputExceededException`). The data limit is kept as the time at which
//! the shard has paid off what it has served at 2 MiB/s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const CALLS_PER_SECOND: usize = 5;
pub const READ_BYTES_PER_SECOND: u64 = 2 << 20;
pub const MAX_BYTES_PER_CALL: usize = 10 << 20;
pub const MAX_RECORDS_PER_CALL: usize = 10_000;

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More than five calls within a second.
    Calls,
    /// The shard has served more than 2 MiB per second.
    Bytes,
}

#[derive(Default)]
pub struct Pacing {
    calls: VecDeque<Instant>,
    paid_until: Option<Instant>,
    /// The shortest time between two accepted calls.
    pub min_gap: Option<Duration>,
}

impl Pacing {
    /// Admits a call at `now`, or says why Kinesis would refuse it.
    pub fn admit(&mut self, now: Instant) -> Result<(), Refusal> {
        while self
            .calls
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.calls.pop_front();
        }
        if self.calls.len() >= CALLS_PER_SECOND {
            return Err(Refusal::Calls);
        }
        if self.paid_until.is_some_and(|t| t > now) {
            return Err(Refusal::Bytes);
        }
        if let Some(&last) = self.calls.back() {
            let gap = now.duration_since(last);
            self.min_gap = Some(self.min_gap.map_or(gap, |g| g.min(gap)));
        }
        self.calls.push_back(now);
        Ok(())
    }

    /// Charges `bytes` served at `now` against the shard's 2 MiB/s.
    pub fn charge(&mut self, now: Instant, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / READ_BYTES_PER_SECOND as f64);
        let from = self.paid_until.filter(|&t| t > now).unwrap_or(now);
        self.paid_until = Some(from + cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_calls_a_second() {
        let mut p = Pacing::default();
        let t = Instant::now();
        for i in 0..5 {
            assert_eq!(p.admit(t + Duration::from_millis(i * 10)), Ok(()));
        }
        assert_eq!(p.admit(t + Duration::from_millis(900)), Err(Refusal::Calls));
        assert_eq!(p.admit(t + Duration::from_millis(1000)), Ok(()));
        assert_eq!(p.min_gap, Some(Duration::from_millis(10)));
    }

    #[test]
    fn ten_mib_blocks_the_next_five_seconds() {
        let mut p = Pacing::default();
        let t = Instant::now();
        p.admit(t).unwrap();
        p.charge(t, MAX_BYTES_PER_CALL);
        assert_eq!(
            p.admit(t + Duration::from_millis(4900)),
            Err(Refusal::Bytes)
        );
        assert_eq!(p.admit(t + Duration::from_millis(5001)), Ok(()));
        // 400 KB every 200 ms is 2 MB/s: never refused.
        let mut p = Pacing::default();
        for i in 0..50 {
            let now = t + Duration::from_millis(200 * i);
            assert_eq!(p.admit(now), Ok(()), "call {i}");
            p.charge(now, 400_000);
        }
    }
}
