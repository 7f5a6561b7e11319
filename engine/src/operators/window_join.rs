//! Window join: two windowed streams joined on `window_start`, `window_end` and keys
//! (INNER, LEFT, RIGHT or FULL), emitted once per window when the watermark passes its end,
//! as Flink's window join does.
//!
//! Both sides' rows wait in keyed state per window; when the window fires, its rows are
//! joined by a hash of the keys (a NULL key matches nothing), unmatched rows of an outer
//! side are emitted with NULLs for the other side, and the window's rows are forgotten. A row
//! of a window that has already fired is late: dropped and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use chrono_tz::Tz;

use crate::error::Result;
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StateSnapshot, StreamBatch};
use crate::operators::rows_by_window_fire;
use crate::state::{self, KeyedState, StateTable};

/// Which rows without a match are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// What a window join computes.
#[derive(Debug)]
pub struct WindowJoinSpec {
    pub kind: JoinKind,
    /// Key columns of each side, pairwise equal (window_start and window_end among them).
    pub left_keys: Vec<usize>,
    pub right_keys: Vec<usize>,
    /// Each side's `window_end` column (wall-clock milliseconds).
    pub left_end: usize,
    pub right_end: usize,
    pub time_zone: Option<Tz>,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    /// The left columns, then the right ones.
    pub output_schema: SchemaRef,
    /// For drop counts.
    pub table: String,
}

/// The rows of one window, per side.
#[derive(Default)]
struct Window {
    sides: [Vec<RecordBatch>; 2],
}

pub struct WindowJoin {
    spec: Arc<WindowJoinSpec>,
    metrics: Arc<JobMetrics>,
    windows: BTreeMap<i64, Window>,
    watermark: i64,
}

impl WindowJoin {
    pub fn new(spec: Arc<WindowJoinSpec>, metrics: Arc<JobMetrics>) -> Self {
        WindowJoin {
            spec,
            metrics,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
        }
    }

    fn buffer(&mut self, side: usize, batch: &RecordBatch, drop_late: bool) -> Result<()> {
        let end = if side == 0 {
            self.spec.left_end
        } else {
            self.spec.right_end
        };
        let (parts, late) = rows_by_window_fire(
            batch,
            end,
            self.spec.time_zone,
            drop_late.then_some(self.watermark),
        )?;
        self.metrics
            .add_dropped(&self.spec.table, DropReason::Late, late);
        for (fire, part) in parts {
            self.windows.entry(fire).or_default().sides[side].push(part);
        }
        Ok(())
    }

    /// The joined rows of one window.
    fn join(&self, window: Window) -> Result<Option<RecordBatch>> {
        let spec = &self.spec;
        let [left, right] = window.sides;
        let left = concat_batches(&spec.left_schema, &left)?;
        let right = concat_batches(&spec.right_schema, &right)?;
        let key_columns = |b: &RecordBatch, keys: &[usize]| -> Vec<ArrayRef> {
            keys.iter().map(|k| Arc::clone(b.column(*k))).collect()
        };
        let (lk, rk) = (
            key_columns(&left, &spec.left_keys),
            key_columns(&right, &spec.right_keys),
        );
        let converter = RowConverter::new(
            lk.iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect(),
        )?;
        let has_null = |cols: &[ArrayRef], i: usize| cols.iter().any(|c| c.is_null(i));
        let right_rows = converter.convert_columns(&rk)?;
        let mut by_key: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for i in 0..right.num_rows() {
            if !has_null(&rk, i) {
                by_key
                    .entry(right_rows.row(i).data())
                    .or_default()
                    .push(i as u32);
            }
        }
        let left_rows = converter.convert_columns(&lk)?;
        let mut left_take: Vec<Option<u32>> = Vec::new();
        let mut right_take: Vec<Option<u32>> = Vec::new();
        let mut right_matched = vec![false; right.num_rows()];
        let keep_left = matches!(spec.kind, JoinKind::Left | JoinKind::Full);
        let keep_right = matches!(spec.kind, JoinKind::Right | JoinKind::Full);
        for i in 0..left.num_rows() {
            let matches = (!has_null(&lk, i))
                .then(|| by_key.get(left_rows.row(i).data()))
                .flatten();
            match matches {
                Some(rows) => {
                    for r in rows {
                        left_take.push(Some(i as u32));
                        right_take.push(Some(*r));
                        right_matched[*r as usize] = true;
                    }
                }
                None if keep_left => {
                    left_take.push(Some(i as u32));
                    right_take.push(None);
                }
                None => {}
            }
        }
        if keep_right {
            for (r, matched) in right_matched.iter().enumerate() {
                if !matched {
                    left_take.push(None);
                    right_take.push(Some(r as u32));
                }
            }
        }
        if left_take.is_empty() {
            return Ok(None);
        }
        let (li, ri) = (UInt32Array::from(left_take), UInt32Array::from(right_take));
        let mut columns = Vec::with_capacity(spec.output_schema.fields().len());
        for c in left.columns() {
            columns.push(take(c, &li, None)?);
        }
        for c in right.columns() {
            columns.push(take(c, &ri, None)?);
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&spec.output_schema),
            columns,
        )?))
    }
}

impl Operator for WindowJoin {
    fn process_batch(&mut self, input: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.buffer(0, &input.batch, true)
    }

    fn process_side(
        &mut self,
        side: usize,
        input: StreamBatch,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        self.buffer(side.min(1), &input.batch, true)
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let later = match self.watermark.checked_add(1) {
            Some(next) => self.windows.split_off(&next),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.windows, later);
        for (_, window) in due {
            if let Some(batch) = self.join(window)? {
                out.push(StreamBatch::new(batch));
            }
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<StateSnapshot>> {
        Ok(Some(StateSnapshot::watermark(self.watermark)))
    }

    fn restore(&mut self, parts: &[StateSnapshot]) -> Result<()> {
        if let Some(w) = StateSnapshot::restored_watermark(parts) {
            self.watermark = w;
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        Some(self)
    }
}

impl KeyedState for WindowJoin {
    fn tables(&self) -> Vec<StateTable> {
        vec![
            state::table("left", &self.spec.left_schema, self.spec.left_keys.clone()),
            state::table(
                "right",
                &self.spec.right_schema,
                self.spec.right_keys.clone(),
            ),
        ]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let side = |s: usize| -> Vec<RecordBatch> {
            self.windows
                .values()
                .flat_map(|w| w.sides[s].iter().cloned())
                .collect()
        };
        Ok(vec![side(0), side(1)])
    }

    fn restore(&mut self, table: usize, rows: &RecordBatch) -> Result<()> {
        self.buffer(table.min(1), rows, false)
    }
}
