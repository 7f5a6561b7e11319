//! Interval join: `a JOIN b ON a.k = b.k AND a.ts BETWEEN b.ts - INTERVAL x AND b.ts +
//! INTERVAL y` on the two sides' rowtimes, INNER, LEFT, RIGHT or FULL, as Flink runs it.
//!
//! Each side keeps its rows per key. A row arriving on one side is joined at once with the
//! other side's rows of its key whose time is in range, and kept for later rows of the other
//! side until the watermark shows that no such row can come (`a.ts + x` for a left row,
//! `b.ts + y` for a right one); then it is forgotten, and on an outer side a row that never
//! matched is emitted with NULLs for the other side. A row that arrives after that point is late:
//! dropped and counted. Output is insert-only.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};

use super::window_join::JoinKind;
use crate::error::Result;
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StateSnapshot, StreamBatch};
use crate::operators::window_assign::rowtime_millis;
use crate::state::{self, KeyedState, StateTable};

/// What an interval join computes.
#[derive(Debug)]
pub struct IntervalJoinSpec {
    pub kind: JoinKind,
    pub left_keys: Vec<usize>,
    pub right_keys: Vec<usize>,
    pub left_time: usize,
    pub right_time: usize,
    /// `left.ts - right.ts` lies in `[lower, upper]` (milliseconds).
    pub lower: i64,
    pub upper: i64,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    /// The left columns, then the right ones.
    pub output_schema: SchemaRef,
    pub table: String,
}

/// One kept row: its batch (one row), time and whether it has matched.
struct Kept {
    row: RecordBatch,
    time: i64,
    matched: bool,
}

/// The watermark after which a row of `side` at `time` can match no future row of the
/// other side (whose rows come after the watermark): a left row needs `b.ts <= a.ts -
/// lower`, a right row `a.ts <= b.ts + upper`.
fn expiry(spec: &IntervalJoinSpec, side: usize, time: i64) -> i64 {
    if side == 0 {
        time.saturating_sub(spec.lower)
    } else {
        time.saturating_add(spec.upper)
    }
}

pub struct IntervalJoin {
    spec: Arc<IntervalJoinSpec>,
    metrics: Arc<JobMetrics>,
    converter: RowConverter,
    /// Per side, per key: the kept rows.
    sides: [HashMap<OwnedRow, Vec<Kept>>; 2],
    watermark: i64,
    /// State table schemas: a side's columns and `__matched`.
    state_schemas: [SchemaRef; 2],
}

fn with_matched(schema: &SchemaRef) -> SchemaRef {
    let mut fields = schema.fields().to_vec();
    fields.push(Arc::new(Field::new("__matched", DataType::Boolean, false)));
    Arc::new(Schema::new(fields))
}

impl IntervalJoin {
    pub fn new(spec: Arc<IntervalJoinSpec>, metrics: Arc<JobMetrics>) -> Result<Self> {
        let converter = RowConverter::new(
            spec.left_keys
                .iter()
                .map(|k| SortField::new(spec.left_schema.field(*k).data_type().clone()))
                .collect(),
        )?;
        Ok(IntervalJoin {
            state_schemas: [
                with_matched(&spec.left_schema),
                with_matched(&spec.right_schema),
            ],
            spec,
            metrics,
            converter,
            sides: [HashMap::new(), HashMap::new()],
            watermark: i64::MIN,
        })
    }

    /// Joins and keeps the rows of `batch` on `side`; `drop_late`: rows past their expiry
    /// are dropped (on a restore they are only kept).
    fn take_rows(
        &mut self,
        side: usize,
        batch: &RecordBatch,
        drop_late: bool,
        matched: Option<&BooleanArray>,
        out: &mut Vec<(Option<RecordBatch>, Option<RecordBatch>)>,
    ) -> Result<()> {
        let (keys, time) = if side == 0 {
            (&self.spec.left_keys, self.spec.left_time)
        } else {
            (&self.spec.right_keys, self.spec.right_time)
        };
        let times = rowtime_millis(batch.column(time))?.clone();
        let key_columns: Vec<ArrayRef> =
            keys.iter().map(|k| Arc::clone(batch.column(*k))).collect();
        let rows = self.converter.convert_columns(&key_columns)?;
        let mut late = 0u64;
        for i in 0..batch.num_rows() {
            if times.is_null(i) {
                late += 1;
                continue;
            }
            let t = times.value(i);
            if drop_late && expiry(&self.spec, side, t) <= self.watermark {
                late += 1;
                continue;
            }
            let row = batch.slice(i, 1);
            let null_key = key_columns.iter().any(|c| c.is_null(i));
            let mut was_matched = matched.is_some_and(|m| m.value(i));
            if drop_late && !null_key {
                let key = rows.row(i).owned();
                let other = 1 - side;
                if let Some(candidates) = self.sides[other].get_mut(&key) {
                    for kept in candidates.iter_mut() {
                        let (lt, rt) = if side == 0 {
                            (t, kept.time)
                        } else {
                            (kept.time, t)
                        };
                        let d = lt - rt;
                        if self.spec.lower <= d && d <= self.spec.upper {
                            kept.matched = true;
                            was_matched = true;
                            out.push(if side == 0 {
                                (Some(row.clone()), Some(kept.row.clone()))
                            } else {
                                (Some(kept.row.clone()), Some(row.clone()))
                            });
                        }
                    }
                }
            }
            self.sides[side]
                .entry(rows.row(i).owned())
                .or_default()
                .push(Kept {
                    row,
                    time: t,
                    matched: was_matched,
                });
        }
        self.metrics
            .add_dropped(&self.spec.table, DropReason::Late, late);
        Ok(())
    }

    /// The output rows of `pairs` (a missing side as NULLs).
    fn output(
        &self,
        pairs: Vec<(Option<RecordBatch>, Option<RecordBatch>)>,
    ) -> Result<Option<RecordBatch>> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let spec = &self.spec;
        let side_columns = |schema: &SchemaRef,
                            rows: Vec<Option<&RecordBatch>>|
         -> Result<Vec<ArrayRef>> {
            let present: Vec<RecordBatch> = rows.iter().flatten().map(|b| (*b).clone()).collect();
            let all = concat_batches(schema, &present)?;
            let mut next = 0u32;
            let indices: UInt32Array = rows
                .iter()
                .map(|r| {
                    r.map(|_| {
                        next += 1;
                        next - 1
                    })
                })
                .collect();
            all.columns()
                .iter()
                .map(|c| Ok(take(c, &indices, None)?))
                .collect()
        };
        let mut columns = side_columns(
            &spec.left_schema,
            pairs.iter().map(|p| p.0.as_ref()).collect(),
        )?;
        columns.extend(side_columns(
            &spec.right_schema,
            pairs.iter().map(|p| p.1.as_ref()).collect(),
        )?);
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&spec.output_schema),
            columns,
        )?))
    }

    fn process(
        &mut self,
        side: usize,
        batch: &RecordBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        let mut pairs = Vec::new();
        self.take_rows(side, batch, true, None, &mut pairs)?;
        if let Some(b) = self.output(pairs)? {
            out.push(StreamBatch::new(b));
        }
        Ok(())
    }
}

impl Operator for IntervalJoin {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.process(0, &input.batch, out)
    }

    fn process_side(
        &mut self,
        side: usize,
        input: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        self.process(side.min(1), &input.batch, out)
    }

    /// Held back by the width of the interval, so that the rows emitted after it are not late
    /// on the left side's time: a pair found after watermark `w` has `a.ts > w + lower -
    /// upper` (its right row was on time), and a left row left unmatched is emitted at a
    /// later watermark with `a.ts > w + lower`.
    fn output_watermark(&self, watermark: i64) -> i64 {
        if watermark == i64::MAX {
            return watermark;
        }
        watermark.saturating_sub(self.spec.upper.saturating_sub(self.spec.lower))
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let keep_unmatched = [
            matches!(self.spec.kind, JoinKind::Left | JoinKind::Full),
            matches!(self.spec.kind, JoinKind::Right | JoinKind::Full),
        ];
        let mut pairs = Vec::new();
        for (side, keep_unmatched) in keep_unmatched.into_iter().enumerate() {
            let wm = self.watermark;
            let spec = Arc::clone(&self.spec);
            self.sides[side].retain(|_, rows| {
                rows.retain(|kept| {
                    if expiry(&spec, side, kept.time) > wm {
                        return true;
                    }
                    if keep_unmatched && !kept.matched {
                        pairs.push(if side == 0 {
                            (Some(kept.row.clone()), None)
                        } else {
                            (None, Some(kept.row.clone()))
                        });
                    }
                    false
                });
                !rows.is_empty()
            });
        }
        if let Some(b) = self.output(pairs)? {
            out.push(StreamBatch::new(b));
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

impl KeyedState for IntervalJoin {
    fn tables(&self) -> Vec<StateTable> {
        vec![
            state::table("left", &self.state_schemas[0], self.spec.left_keys.clone()),
            state::table(
                "right",
                &self.state_schemas[1],
                self.spec.right_keys.clone(),
            ),
        ]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let mut tables = Vec::new();
        for side in 0..2 {
            let kept: Vec<&Kept> = self.sides[side].values().flatten().collect();
            if kept.is_empty() {
                tables.push(Vec::new());
                continue;
            }
            // One batch per side: many one-row batches would cost far more to store.
            let schema = if side == 0 {
                &self.spec.left_schema
            } else {
                &self.spec.right_schema
            };
            let rows: Vec<RecordBatch> = kept.iter().map(|k| k.row.clone()).collect();
            let all = concat_batches(schema, &rows)?;
            let mut columns = all.columns().to_vec();
            columns.push(Arc::new(BooleanArray::from(
                kept.iter().map(|k| k.matched).collect::<Vec<_>>(),
            )));
            tables.push(vec![RecordBatch::try_new(
                Arc::clone(&self.state_schemas[side]),
                columns,
            )?]);
        }
        Ok(tables)
    }

    fn restore(&mut self, table: usize, rows: &RecordBatch) -> Result<()> {
        let side = table.min(1);
        let n = rows.num_columns() - 1;
        let matched = rows
            .column(n)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .unwrap_or_else(|| BooleanArray::from(vec![false; rows.num_rows()]));
        let schema = if side == 0 {
            &self.spec.left_schema
        } else {
            &self.spec.right_schema
        };
        let batch = RecordBatch::try_new(Arc::clone(schema), rows.columns()[..n].to_vec())?;
        let mut ignored = Vec::new();
        self.take_rows(side, &batch, false, Some(&matched), &mut ignored)
    }
}
