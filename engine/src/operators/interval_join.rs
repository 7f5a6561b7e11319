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

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::interleave;
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

/// One kept row: where it is in its side's [`Store`], its time and whether it has matched.
struct Kept {
    at: RowRef,
    time: i64,
    matched: bool,
}

/// A row of a stored batch.
#[derive(Clone, Copy)]
struct RowRef {
    batch: u32,
    row: u32,
}

/// The input batches a side's kept rows are in, each held until its last kept row is
/// forgotten: a kept row costs its share of its batch plus a few bytes, not a batch of its
/// own.
#[derive(Default)]
struct Store {
    batches: HashMap<u32, (RecordBatch, usize)>,
    next: u32,
}

impl Store {
    fn add(&mut self, batch: RecordBatch) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.batches.insert(id, (batch, 0));
        id
    }

    fn hold(&mut self, at: RowRef) {
        if let Some((_, live)) = self.batches.get_mut(&at.batch) {
            *live += 1;
        }
    }

    fn release(&mut self, at: RowRef) {
        if let Some((_, live)) = self.batches.get_mut(&at.batch) {
            *live -= 1;
            if *live == 0 {
                self.batches.remove(&at.batch);
            }
        }
    }

    /// Forgets a batch none of whose rows was kept.
    fn drop_if_unused(&mut self, id: u32) {
        if self.batches.get(&id).is_some_and(|(_, live)| *live == 0) {
            self.batches.remove(&id);
        }
    }

    /// The columns of `rows` (None: a row of NULLs), in order.
    fn gather(&self, schema: &SchemaRef, rows: &[Option<RowRef>]) -> Result<Vec<ArrayRef>> {
        let mut sources: Vec<&RecordBatch> = Vec::new();
        let mut index: HashMap<u32, usize> = HashMap::new();
        let null_row: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), 1))
            .collect();
        let picks: Vec<(usize, usize)> = rows
            .iter()
            .map(|r| match r {
                None => (0, 0),
                Some(at) => {
                    let source = *index.entry(at.batch).or_insert_with(|| {
                        sources.push(&self.batches[&at.batch].0);
                        sources.len()
                    });
                    (source, at.row as usize)
                }
            })
            .collect();
        (0..schema.fields().len())
            .map(|c| {
                let mut arrays: Vec<&dyn Array> = vec![null_row[c].as_ref()];
                arrays.extend(sources.iter().map(|b| b.column(c).as_ref()));
                Ok(interleave(&arrays, &picks)?)
            })
            .collect()
    }
}

/// A joined pair: a left row and a right row, either missing on an outer join's unmatched
/// side.
type Pair = (Option<RowRef>, Option<RowRef>);

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
    /// Per side: the batches the kept rows are in.
    stores: [Store; 2],
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
            stores: [Store::default(), Store::default()],
            watermark: i64::MIN,
        })
    }

    /// Joins and keeps the rows of `batch` on `side`; `drop_late`: rows past their expiry
    /// are dropped (on a restore they are only kept). Returns the id `batch` is stored
    /// under: the pairs refer to it, and it goes once they are output if no row was kept.
    fn take_rows(
        &mut self,
        side: usize,
        batch: &RecordBatch,
        drop_late: bool,
        matched: Option<&BooleanArray>,
        out: &mut Vec<Pair>,
    ) -> Result<u32> {
        let (keys, time) = if side == 0 {
            (&self.spec.left_keys, self.spec.left_time)
        } else {
            (&self.spec.right_keys, self.spec.right_time)
        };
        let times = rowtime_millis(batch.column(time))?.clone();
        let key_columns: Vec<ArrayRef> =
            keys.iter().map(|k| Arc::clone(batch.column(*k))).collect();
        let rows = self.converter.convert_columns(&key_columns)?;
        let id = self.stores[side].add(batch.clone());
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
            let at = RowRef {
                batch: id,
                row: i as u32,
            };
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
                                (Some(at), Some(kept.at))
                            } else {
                                (Some(kept.at), Some(at))
                            });
                        }
                    }
                }
            }
            self.stores[side].hold(at);
            self.sides[side]
                .entry(rows.row(i).owned())
                .or_default()
                .push(Kept {
                    at,
                    time: t,
                    matched: was_matched,
                });
        }
        self.metrics
            .add_dropped(&self.spec.table, DropReason::Late, late);
        Ok(id)
    }

    /// The output rows of `pairs` (a missing side as NULLs).
    fn output(&self, pairs: &[Pair]) -> Result<Option<RecordBatch>> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let spec = &self.spec;
        let left: Vec<Option<RowRef>> = pairs.iter().map(|p| p.0).collect();
        let right: Vec<Option<RowRef>> = pairs.iter().map(|p| p.1).collect();
        let mut columns = self.stores[0].gather(&spec.left_schema, &left)?;
        columns.extend(self.stores[1].gather(&spec.right_schema, &right)?);
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
        let id = self.take_rows(side, batch, true, None, &mut pairs)?;
        if let Some(b) = self.output(&pairs)? {
            out.push(StreamBatch::new(b));
        }
        self.stores[side].drop_if_unused(id);
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
        let mut expired = [Vec::new(), Vec::new()];
        for (side, keep_unmatched) in keep_unmatched.into_iter().enumerate() {
            let wm = self.watermark;
            let spec = Arc::clone(&self.spec);
            let gone = &mut expired[side];
            self.sides[side].retain(|_, rows| {
                rows.retain(|kept| {
                    if expiry(&spec, side, kept.time) > wm {
                        return true;
                    }
                    if keep_unmatched && !kept.matched {
                        pairs.push(if side == 0 {
                            (Some(kept.at), None)
                        } else {
                            (None, Some(kept.at))
                        });
                    }
                    gone.push(kept.at);
                    false
                });
                !rows.is_empty()
            });
        }
        if let Some(b) = self.output(&pairs)? {
            out.push(StreamBatch::new(b));
        }
        for (side, gone) in expired.into_iter().enumerate() {
            for at in gone {
                self.stores[side].release(at);
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
            let rows: Vec<Option<RowRef>> = kept.iter().map(|k| Some(k.at)).collect();
            let mut columns = self.stores[side].gather(schema, &rows)?;
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
        let id = self.take_rows(side, &batch, false, Some(&matched), &mut ignored)?;
        self.stores[side].drop_if_unused(id);
        Ok(())
    }
}
