//! Window assignment arithmetic: which window a timestamp belongs to, and when it fires.
//!
//! Windows are half-open `[start, end)`, aligned to the Unix epoch and shifted by an
//! offset: `start(ts) = ts - ((ts - offset) mod size)` with a non-negative modulo, so
//! timestamps before 1970 work. For a `TIMESTAMP_LTZ` rowtime, windows align on the wall
//! clock of the session time zone: the assigner works on local wall-clock milliseconds and
//! converts a window's end back to UTC to decide when the watermark (UTC) reaches it.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

/// A tumbling window assigner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TumbleWindow {
    pub size_ms: i64,
    pub offset_ms: i64,
    /// Session time zone when the rowtime is `TIMESTAMP_LTZ` and the zone is not UTC.
    pub time_zone: Option<Tz>,
}

impl TumbleWindow {
    /// Start of the window containing `local_ms` (wall-clock milliseconds).
    #[inline]
    pub fn start(&self, local_ms: i64) -> i64 {
        local_ms - (local_ms - self.offset_ms).rem_euclid(self.size_ms)
    }

    /// Wall-clock milliseconds of a rowtime value (identity unless a time zone applies).
    #[inline]
    pub fn to_local(&self, ts_ms: i64) -> i64 {
        match self.time_zone {
            None => ts_ms,
            Some(tz) => match tz.timestamp_millis_opt(ts_ms) {
                chrono::LocalResult::Single(dt) => {
                    ts_ms + dt.offset().fix().local_minus_utc() as i64 * 1000
                }
                _ => ts_ms,
            },
        }
    }

    /// The rowtime value (UTC for LTZ) at which wall-clock `local_ms` happens.
    pub fn to_rowtime(&self, local_ms: i64) -> i64 {
        match self.time_zone {
            None => local_ms,
            Some(tz) => {
                let naive =
                    chrono::DateTime::from_timestamp_millis(local_ms).map(|d| d.naive_utc());
                match naive.map(|n| tz.from_local_datetime(&n).earliest()) {
                    Some(Some(dt)) => dt.timestamp_millis(),
                    _ => local_ms,
                }
            }
        }
    }

    /// The watermark at which the window starting at `start` fires, in rowtime
    /// milliseconds: its end minus one millisecond. A row is late for this window when
    /// the watermark before it is at or beyond this value.
    #[inline]
    pub fn fire_at(&self, start: i64) -> i64 {
        self.to_rowtime(start.saturating_add(self.size_ms))
            .saturating_sub(1)
    }

    /// `window_time` of the window starting at `start`: its last millisecond, as a rowtime.
    pub fn window_time(&self, start: i64) -> i64 {
        self.fire_at(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn tumble(size_min: i64, offset_min: i64) -> TumbleWindow {
        TumbleWindow {
            size_ms: size_min * MIN,
            offset_ms: offset_min * MIN,
            time_zone: None,
        }
    }

    #[test]
    fn offsets_follow_the_semantics_vectors() {
        // 2021-06-30 00:00:04 UTC
        let ts: i64 = 1_625_011_204_000;
        let day = ts - ts.rem_euclid(86_400_000);
        let at = |h: i64, m: i64| day + h * 3_600_000 + m * MIN;
        for off in [-16, -6, 4] {
            assert_eq!(tumble(10, off).start(ts), at(-1, 54));
        }
        for off in [-4, 6, 16] {
            assert_eq!(tumble(10, off).start(ts), at(-1, 56));
        }
        assert_eq!(tumble(10, 0).start(ts), at(0, 0));
    }

    #[test]
    fn before_1970_rounds_down() {
        assert_eq!(tumble(10, 0).start(-1), -10 * MIN);
        assert_eq!(tumble(10, 0).start(-10 * MIN), -10 * MIN);
    }

    #[test]
    fn shanghai_aligns_on_local_clock() {
        let w = TumbleWindow {
            size_ms: 10 * MIN,
            offset_ms: 0,
            time_zone: Some(chrono_tz::Asia::Shanghai),
        };
        let ts = 1_618_495_260_000; // 2021-04-15 14:01:00 UTC = 22:01 in Shanghai
        let local = w.to_local(ts);
        let start = w.start(local);
        assert_eq!(start % 86_400_000, 22 * 3_600_000);
        assert_eq!(w.fire_at(start), ts - 60_000 + 10 * MIN - 1);
    }
}
