//! Window assignment arithmetic: which windows a timestamp belongs to, and when they fire.
//!
//! Windows are half-open `[start, end)`, aligned to the Unix epoch and shifted by an
//! offset: `start(ts) = ts - ((ts - offset) mod size)` with a non-negative modulo, so
//! timestamps before 1970 work. For a `TIMESTAMP_LTZ` rowtime, windows align on the wall
//! clock of the session time zone: the assigner works on local wall-clock milliseconds and
//! converts a window's end back to UTC to decide when the watermark (UTC) reaches it.
//!
//! Every kind of window is cut into slices, the largest pieces of time that every window
//! covers whole: the window itself for TUMBLE, the greatest common divisor of size and slide
//! for HOP, the step for CUMULATE. A row belongs to exactly one slice, aggregates are kept per
//! slice, and a window is the merge of its slices, so the cost per row does not grow with
//! how many windows overlap.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

/// Which windows: the table function and its arguments other than the size and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowShape {
    Tumble,
    /// `HOP(..., slide, size)`: a window starts every `slide_ms`.
    Hop {
        slide_ms: i64,
    },
    /// `CUMULATE(..., step, size)`: windows of `step`, `2 step`, ... `size` from each start.
    Cumulate {
        step_ms: i64,
    },
}

/// Ids of what an aggregate keeps per window column value: a slice is its start; the part
/// of one window only (rows that came too late for the window's earlier siblings, which
/// have fired) is this base plus the window's end. Timestamps never come near it.
const WINDOW_PART_BASE: i64 = i64::MIN / 2;

/// Ids at or above this are slices.
pub const FIRST_SLICE_ID: i64 = i64::MIN / 4;

/// What an aggregate's state id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatePart {
    /// Rows of the slice starting here, in every window of the slice.
    Slice(i64),
    /// Rows in the window ending here only.
    Window(i64),
}

impl StatePart {
    pub fn id(self) -> i64 {
        match self {
            StatePart::Slice(start) => start,
            StatePart::Window(end) => WINDOW_PART_BASE + end,
        }
    }

    pub fn of(id: i64) -> Self {
        if id >= FIRST_SLICE_ID {
            StatePart::Slice(id)
        } else {
            StatePart::Window(id - WINDOW_PART_BASE)
        }
    }
}

/// A window assigner: TUMBLE, HOP or CUMULATE windows of `size_ms`, shifted by `offset_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSpec {
    pub size_ms: i64,
    pub offset_ms: i64,
    /// Session time zone when the rowtime is `TIMESTAMP_LTZ` and the zone is not UTC.
    pub time_zone: Option<Tz>,
    pub shape: WindowShape,
}

/// Wall-clock milliseconds in `time_zone` (UTC when none) of the rowtime `ts_ms`.
#[inline]
pub fn local_millis(time_zone: Option<Tz>, ts_ms: i64) -> i64 {
    match time_zone {
        None => ts_ms,
        Some(tz) => match tz.timestamp_millis_opt(ts_ms) {
            chrono::LocalResult::Single(dt) => {
                ts_ms + dt.offset().fix().local_minus_utc() as i64 * 1000
            }
            _ => ts_ms,
        },
    }
}

/// The rowtime value (UTC for LTZ in `time_zone`) at which wall-clock `local_ms` happens.
pub fn local_to_rowtime(time_zone: Option<Tz>, local_ms: i64) -> i64 {
    match time_zone {
        None => local_ms,
        Some(tz) => {
            let naive = chrono::DateTime::from_timestamp_millis(local_ms).map(|d| d.naive_utc());
            match naive.map(|n| tz.from_local_datetime(&n).earliest()) {
                Some(Some(dt)) => dt.timestamp_millis(),
                _ => local_ms,
            }
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

impl WindowSpec {
    /// A tumbling window of `size_ms` shifted by `offset_ms`, in UTC.
    pub fn tumble(size_ms: i64, offset_ms: i64) -> Self {
        Self {
            size_ms,
            offset_ms,
            time_zone: None,
            shape: WindowShape::Tumble,
        }
    }

    /// The table function's name and arguments, as a job writes them.
    pub fn describe(&self, duration: impl Fn(i64) -> String) -> String {
        let (name, first) = match self.shape {
            WindowShape::Tumble => ("TUMBLE", None),
            WindowShape::Hop { slide_ms } => ("HOP", Some(("slide", slide_ms))),
            WindowShape::Cumulate { step_ms } => ("CUMULATE", Some(("step", step_ms))),
        };
        let first = first.map_or(String::new(), |(n, v)| format!("{n} {}, ", duration(v)));
        format!(
            "{name}({first}size {}, offset {})",
            duration(self.size_ms),
            duration(self.offset_ms)
        )
    }

    /// The length of a slice.
    pub fn slice_ms(&self) -> i64 {
        match self.shape {
            WindowShape::Tumble => self.size_ms,
            WindowShape::Hop { slide_ms } => gcd(self.size_ms, slide_ms),
            WindowShape::Cumulate { step_ms } => step_ms,
        }
    }

    /// True when every slice is a whole window (TUMBLE).
    pub fn slices_are_windows(&self) -> bool {
        self.slice_ms() == self.size_ms && self.shape == WindowShape::Tumble
    }

    /// Start of the slice containing `local_ms` (wall-clock milliseconds).
    #[inline]
    pub fn start(&self, local_ms: i64) -> i64 {
        let slice = self.slice_ms();
        local_ms - (local_ms - self.offset_ms).rem_euclid(slice)
    }

    /// The windows `[start, end)` (wall-clock) that contain the slice starting at `slice`,
    /// by end.
    pub fn windows_of_slice(&self, slice: i64) -> Vec<(i64, i64)> {
        let g = self.slice_ms();
        match self.shape {
            WindowShape::Tumble => vec![(slice, slice + self.size_ms)],
            WindowShape::Hop { slide_ms } => {
                let last = slice - (slice - self.offset_ms).rem_euclid(slide_ms);
                let mut windows = Vec::new();
                let mut start = last;
                while start + self.size_ms >= slice + g {
                    windows.push((start, start + self.size_ms));
                    start -= slide_ms;
                }
                windows.reverse();
                windows
            }
            WindowShape::Cumulate { step_ms } => {
                let base = slice - (slice - self.offset_ms).rem_euclid(self.size_ms);
                let first = (slice - base) / step_ms + 1;
                (first..=self.size_ms / step_ms)
                    .map(|k| (base, base + k * step_ms))
                    .collect()
            }
        }
    }

    /// The end of the first window that contains the slice starting at `slice`.
    pub fn first_end_of_slice(&self, slice: i64) -> i64 {
        match self.shape {
            WindowShape::Tumble => slice + self.size_ms,
            WindowShape::Hop { slide_ms } => {
                let after = slice + self.slice_ms();
                after + (self.offset_ms + self.size_ms - after).rem_euclid(slide_ms)
            }
            WindowShape::Cumulate { step_ms } => slice + step_ms,
        }
    }

    /// The window `[start, end)` of this shape that ends at `end`.
    pub fn window_ending_at(&self, end: i64) -> (i64, i64) {
        match self.shape {
            WindowShape::Tumble | WindowShape::Hop { .. } => (end - self.size_ms, end),
            WindowShape::Cumulate { .. } => {
                let last = end - 1;
                (last - (last - self.offset_ms).rem_euclid(self.size_ms), end)
            }
        }
    }

    /// The watermark at which what a state part holds is done with.
    pub fn part_done_at(&self, part: StatePart) -> i64 {
        match part {
            StatePart::Slice(slice) => self.slice_done_at(slice),
            StatePart::Window(end) => self.fire_at_end(end),
        }
    }

    /// The windows a part's rows count in: every window of a slice, or the one window.
    pub fn windows_of_part(&self, part: StatePart) -> Vec<(i64, i64)> {
        match part {
            StatePart::Slice(slice) => self.windows_of_slice(slice),
            StatePart::Window(end) => vec![self.window_ending_at(end)],
        }
    }

    /// The end of the last window that contains the slice starting at `slice`: once that
    /// window has fired, the slice is done with.
    pub fn last_end_of_slice(&self, slice: i64) -> i64 {
        match self.shape {
            WindowShape::Tumble => slice + self.size_ms,
            WindowShape::Hop { slide_ms } => {
                slice - (slice - self.offset_ms).rem_euclid(slide_ms) + self.size_ms
            }
            WindowShape::Cumulate { .. } => {
                slice - (slice - self.offset_ms).rem_euclid(self.size_ms) + self.size_ms
            }
        }
    }

    /// The watermark at which a window ending at `end` (wall-clock) fires: its end minus
    /// one millisecond, as a rowtime.
    #[inline]
    pub fn fire_at_end(&self, end: i64) -> i64 {
        self.to_rowtime(end).saturating_sub(1)
    }

    /// Wall-clock milliseconds of a rowtime value (identity unless a time zone applies).
    #[inline]
    pub fn to_local(&self, ts_ms: i64) -> i64 {
        local_millis(self.time_zone, ts_ms)
    }

    /// The rowtime value (UTC for LTZ) at which wall-clock `local_ms` happens.
    pub fn to_rowtime(&self, local_ms: i64) -> i64 {
        local_to_rowtime(self.time_zone, local_ms)
    }

    /// The watermark at which the window starting at `start` fires, in rowtime
    /// milliseconds: its end minus one millisecond. A row is late for this window when
    /// the watermark before it is at or beyond this value.
    #[inline]
    pub fn fire_at(&self, start: i64) -> i64 {
        self.fire_at_end(start.saturating_add(self.size_ms))
    }

    /// When a row in the slice starting at `slice` is late for every window it belongs to:
    /// the watermark at which the slice's last window fires.
    #[inline]
    pub fn slice_done_at(&self, slice: i64) -> i64 {
        self.fire_at_end(self.last_end_of_slice(slice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn tumble(size_min: i64, offset_min: i64) -> WindowSpec {
        WindowSpec::tumble(size_min * MIN, offset_min * MIN)
    }

    fn windows(w: &WindowSpec, slice_min: i64) -> Vec<(i64, i64)> {
        w.windows_of_slice(slice_min * MIN)
            .into_iter()
            .map(|(s, e)| (s / MIN, e / MIN))
            .collect()
    }

    #[test]
    fn hop_and_cumulate_slices_belong_to_the_windows_of_the_semantics_vectors() {
        // HOP slide 5 min, size 10 min: slices of 5 minutes.
        let hop = WindowSpec {
            shape: WindowShape::Hop { slide_ms: 5 * MIN },
            ..tumble(10, 0)
        };
        assert_eq!(hop.slice_ms(), 5 * MIN);
        assert_eq!(hop.start(7 * MIN + 1), 5 * MIN);
        assert_eq!(windows(&hop, 5), [(0, 10), (5, 15)]);
        assert_eq!(hop.last_end_of_slice(5 * MIN), 15 * MIN);
        // A size that the slide does not divide: slices of the greatest common divisor.
        let odd = WindowSpec {
            shape: WindowShape::Hop { slide_ms: 4 * MIN },
            ..tumble(10, 0)
        };
        assert_eq!(odd.slice_ms(), 2 * MIN);
        assert_eq!(windows(&odd, 8), [(0, 10), (4, 14), (8, 18)]);
        // CUMULATE step 2 min, size 10 min: the slice 08:04-08:06 is in [0,6), [0,8), [0,10).
        let cumulate = WindowSpec {
            shape: WindowShape::Cumulate { step_ms: 2 * MIN },
            ..tumble(10, 0)
        };
        assert_eq!(windows(&cumulate, 4), [(0, 6), (0, 8), (0, 10)]);
        assert_eq!(windows(&cumulate, 18), [(10, 20)]);
        assert_eq!(cumulate.last_end_of_slice(14 * MIN), 20 * MIN);
        assert_eq!(cumulate.window_ending_at(16 * MIN), (10 * MIN, 16 * MIN));
        assert_eq!(hop.window_ending_at(15 * MIN), (5 * MIN, 15 * MIN));
        // The first window of each slice is the first one windows_of_slice gives.
        for w in [hop, odd, cumulate, tumble(10, 3)] {
            for slice in (-6..30).map(|m| w.start(m * MIN)) {
                assert_eq!(w.first_end_of_slice(slice), w.windows_of_slice(slice)[0].1);
            }
        }
        for part in [
            StatePart::Slice(-5 * MIN),
            StatePart::Window(20 * MIN),
            StatePart::Slice(0),
        ] {
            assert_eq!(StatePart::of(part.id()), part);
        }
        // Tumble: the slice is the window.
        assert_eq!(windows(&tumble(10, 0), 10), [(10, 20)]);
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
        let w = WindowSpec {
            time_zone: Some(chrono_tz::Asia::Shanghai),
            ..tumble(10, 0)
        };
        let ts = 1_618_495_260_000; // 2021-04-15 14:01:00 UTC = 22:01 in Shanghai
        let local = w.to_local(ts);
        let start = w.start(local);
        assert_eq!(start % 86_400_000, 22 * 3_600_000);
        assert_eq!(w.fire_at(start), ts - 60_000 + 10 * MIN - 1);
    }
}
