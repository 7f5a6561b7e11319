//! OVER aggregations over event time: `agg(x) OVER (PARTITION BY k ORDER BY rowtime
//! RANGE BETWEEN INTERVAL 'n' ... PRECEDING AND CURRENT ROW)`, `ROWS BETWEEN n PRECEDING AND
//! CURRENT ROW`, or `UNBOUNDED PRECEDING`, as Flink runs them.
//!
//! [`DropLateRows`] runs in the source task and drops (and counts) a row whose time the
//! watermark of its source partition had already passed, record by record. Rows then go by
//! key to [`OverAggregate`], which buffers each key's rows until the watermark passes their
//! time and emits them in rowtime order, each with the aggregates over its frame: the rows
//! of the key within the range before it (rows with the same time see each other, for
//! RANGE), the `n` rows before it (ROWS), or all rows before it. Per key it keeps only the
//! rows still waiting and the rows still inside the frame, with the aggregates' running
//! state (rows leave the frame by retraction), so state is freed as the watermark advances.
//! Both are keyed state: buffers and frames are checkpointed and split by key on a restore.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt8Array};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt8Type};
use arrow::row::OwnedRow;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

use super::evaluate;
use super::keys::KeyCodec;
use super::window_assign::rowtime_millis;
use crate::error::{Error, Result};
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StateSnapshot, StreamBatch};
use crate::state::{self, KeyedState, StateTable};

/// Drops rows that are late for an OVER aggregation (and rows without a rowtime), deciding
/// per record from the watermark its source partition had emitted before it.
pub struct DropLateRows {
    rowtime: usize,
    table: String,
    metrics: Arc<JobMetrics>,
    /// For rows that carry no per-row watermark: the input's watermark.
    watermark: i64,
}

impl DropLateRows {
    pub fn new(rowtime: usize, table: impl Into<String>, metrics: Arc<JobMetrics>) -> Self {
        Self {
            rowtime,
            table: table.into(),
            metrics,
            watermark: i64::MIN,
        }
    }
}

impl Operator for DropLateRows {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let ts = rowtime_millis(input.batch.column(self.rowtime))?;
        let row_wm = input.row_watermarks.as_deref();
        let (mut late, mut null_time) = (0u64, 0u64);
        let keep: BooleanArray = (0..ts.len())
            .map(|i| {
                if ts.is_null(i) {
                    null_time += 1;
                    return Some(false);
                }
                let watermark = row_wm.map_or(self.watermark, |w| w.value(i));
                let on_time = ts.value(i) > watermark;
                late += u64::from(!on_time);
                Some(on_time)
            })
            .collect();
        self.metrics
            .add_dropped(&self.table, DropReason::Late, late);
        self.metrics
            .add_dropped(&self.table, DropReason::NullEventTime, null_time);
        if late + null_time == 0 {
            out.push(StreamBatch::new(input.batch));
        } else if late + null_time < ts.len() as u64 {
            out.push(StreamBatch::new(filter_record_batch(&input.batch, &keep)?));
        }
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }
}

/// Which rows before a row its aggregates cover (always up to the current row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `RANGE BETWEEN INTERVAL ... PRECEDING`: rows at most this many milliseconds older,
    /// rows of the same time included.
    Range(i64),
    /// `ROWS BETWEEN n PRECEDING`: the `n` rows before it.
    Rows(usize),
    /// `RANGE BETWEEN UNBOUNDED PRECEDING`: every row before it, rows of the same time
    /// included.
    UnboundedRange,
    /// `ROWS BETWEEN UNBOUNDED PRECEDING`: every row before it.
    UnboundedRows,
}

impl Frame {
    /// Rows of the same time get the same aggregates.
    fn peers_together(self) -> bool {
        matches!(self, Frame::Range(_) | Frame::UnboundedRange)
    }

    /// The frame never lets a row go: no rows to keep, no retraction.
    fn unbounded(self) -> bool {
        matches!(self, Frame::UnboundedRange | Frame::UnboundedRows)
    }
}

/// Everything an OVER aggregation needs to know.
pub struct OverSpec {
    /// `PARTITION BY` expressions over the input, and their fields.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub key_fields: Vec<Field>,
    /// The rowtime column of the input (`ORDER BY`).
    pub rowtime: usize,
    pub frame: Frame,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The input's columns, then one per aggregate.
    pub output_schema: SchemaRef,
    pub input_schema: SchemaRef,
}

impl OverSpec {
    /// The state table of rows: key columns, whether the row still waits (0) or is in the
    /// frame (1), its arrival number, then the input's columns.
    fn rows_schema(&self) -> SchemaRef {
        let mut fields = self.key_fields.clone();
        fields.push(Field::new("__over_kind", DataType::UInt8, false));
        fields.push(Field::new("__over_seq", DataType::Int64, false));
        fields.extend(
            self.input_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone()),
        );
        Arc::new(Schema::new(fields))
    }

    /// The state table of unbounded frames' running aggregates: key columns, then each
    /// aggregate's state columns.
    fn totals_schema(&self) -> Result<SchemaRef> {
        let mut fields = self.key_fields.clone();
        fields.extend(super::aggregate_state_fields(&self.aggregates)?);
        Ok(Arc::new(Schema::new(fields)))
    }

    fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        self.aggregates
            .iter()
            .map(|agg| {
                if self.frame.unbounded() {
                    Ok(agg.create_accumulator()?)
                } else {
                    Ok(agg.create_sliding_accumulator()?)
                }
            })
            .collect()
    }
}

/// A buffered row: one-row slices of the input and of the aggregates' arguments.
struct Row {
    ts: i64,
    seq: i64,
    row: RecordBatch,
    args: Vec<Vec<ArrayRef>>,
}

/// One key's rows and running aggregates.
struct KeyState {
    /// Rows the watermark has not passed yet, by (time, arrival).
    pending: BTreeMap<(i64, i64), Row>,
    /// Emitted rows still in the frame, oldest first (bounded frames only).
    frame: VecDeque<Row>,
    accumulators: Vec<Box<dyn Accumulator>>,
}

/// The keyed operator of an OVER aggregation.
pub struct OverAggregate {
    spec: Arc<OverSpec>,
    codec: KeyCodec,
    keys: HashMap<OwnedRow, KeyState>,
    /// The times at which a key has rows waiting.
    timers: BTreeSet<(i64, OwnedRow)>,
    watermark: i64,
    seq: i64,
    rows_schema: SchemaRef,
    totals_schema: SchemaRef,
}

impl OverAggregate {
    pub fn new(spec: Arc<OverSpec>) -> Result<Self> {
        Ok(Self {
            rows_schema: spec.rows_schema(),
            totals_schema: spec.totals_schema()?,
            codec: KeyCodec::new(&spec.key_fields)?,
            keys: HashMap::new(),
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            seq: 0,
            spec,
        })
    }

    fn key_state(&mut self, key: &OwnedRow) -> Result<&mut KeyState> {
        if !self.keys.contains_key(key) {
            let accumulators = self.spec.accumulators()?;
            self.keys.insert(
                key.clone(),
                KeyState {
                    pending: BTreeMap::new(),
                    frame: VecDeque::new(),
                    accumulators,
                },
            );
        }
        self.keys
            .get_mut(key)
            .ok_or_else(|| Error::internal("an OVER key vanished"))
    }

    /// Buffers the rows of `batch` (input columns) under their keys.
    fn buffer(&mut self, batch: &RecordBatch, seqs: Option<&Int64Array>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = self.codec.rows(&evaluate(&self.spec.keys, batch)?, rows)?;
        let ts = rowtime_millis(batch.column(self.spec.rowtime))?.clone();
        let args: Vec<Vec<ArrayRef>> = self
            .spec
            .aggregates
            .iter()
            .map(|agg| evaluate(&agg.expressions(), batch))
            .collect::<Result<_>>()?;
        for i in 0..rows {
            let key = keys.row(i).owned();
            let seq = match seqs {
                Some(s) => s.value(i),
                None => {
                    self.seq += 1;
                    self.seq
                }
            };
            let row = Row {
                ts: ts.value(i),
                seq,
                row: batch.slice(i, 1),
                args: args
                    .iter()
                    .map(|a| a.iter().map(|c| c.slice(i, 1)).collect())
                    .collect(),
            };
            self.timers.insert((row.ts, key.clone()));
            self.key_state(&key)?.pending.insert((row.ts, seq), row);
        }
        Ok(())
    }

    /// Emits `key`'s rows of time `ts` with their aggregates.
    fn fire(&mut self, ts: i64, key: &OwnedRow, out: &mut Emitted) -> Result<()> {
        let frame = self.spec.frame;
        // A frame's clean-up timer may come after its key was freed by an earlier one.
        let Some(state) = self.keys.get_mut(key) else {
            return Ok(());
        };
        let due: Vec<(i64, i64)> = state
            .pending
            .range((ts, i64::MIN)..=(ts, i64::MAX))
            .map(|(k, _)| *k)
            .collect();
        let rows: Vec<Row> = due.iter().filter_map(|k| state.pending.remove(k)).collect();
        let add = |state: &mut KeyState, row: &Row| -> Result<()> {
            for (acc, args) in state.accumulators.iter_mut().zip(&row.args) {
                acc.update_batch(args)?;
            }
            Ok(())
        };
        let retract = |state: &mut KeyState, row: &Row| -> Result<()> {
            for (acc, args) in state.accumulators.iter_mut().zip(&row.args) {
                acc.retract_batch(args)?;
            }
            Ok(())
        };
        // Emitted rows move into the frame (bounded frames) or are dropped (unbounded): the
        // output keeps only their columns, which share the buffers.
        if frame.peers_together() {
            if let Frame::Range(preceding) = frame {
                // Rows older than the range leave before the current ones are counted.
                while state
                    .frame
                    .front()
                    .is_some_and(|r| r.ts < ts.saturating_sub(preceding))
                {
                    let gone = state.frame.pop_front().expect("a front row");
                    retract(state, &gone)?;
                }
            }
            for row in &rows {
                add(state, row)?;
            }
            let values = evaluate_all(&mut state.accumulators)?;
            for row in &rows {
                out.push(row.row.clone(), values.clone());
            }
            if let Frame::Range(preceding) = frame {
                if !rows.is_empty() {
                    // Once the watermark is past the range of these rows, they leave the
                    // frame even if the key sees no more rows, and an idle key is freed.
                    self.timers
                        .insert((ts.saturating_add(preceding).saturating_add(1), key.clone()));
                }
                state.frame.extend(rows);
            }
        } else {
            for row in rows {
                if let Frame::Rows(preceding) = frame {
                    // The frame keeps the `preceding` rows before this one.
                    while state.frame.len() > preceding {
                        let gone = state.frame.pop_front().expect("a front row");
                        retract(state, &gone)?;
                    }
                    add(state, &row)?;
                    out.push(row.row.clone(), evaluate_all(&mut state.accumulators)?);
                    state.frame.push_back(row);
                } else {
                    add(state, &row)?;
                    out.push(row.row, evaluate_all(&mut state.accumulators)?);
                }
            }
        }
        // A key with nothing left waiting or in its frame is forgotten (an unbounded frame
        // keeps its running totals).
        if state.pending.is_empty() && state.frame.is_empty() && !frame.unbounded() {
            self.keys.remove(key);
        }
        Ok(())
    }
}

fn evaluate_all(accumulators: &mut [Box<dyn Accumulator>]) -> Result<Vec<ScalarValue>> {
    accumulators.iter_mut().map(|a| Ok(a.evaluate()?)).collect()
}

/// Rows emitted at one watermark, with their aggregates.
struct Emitted {
    rows: Vec<RecordBatch>,
    values: Vec<Vec<ScalarValue>>,
}

impl Emitted {
    fn push(&mut self, row: RecordBatch, values: Vec<ScalarValue>) {
        self.rows.push(row);
        self.values.push(values);
    }

    fn batch(self, spec: &OverSpec) -> Result<Option<RecordBatch>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let input = concat_batches(&spec.input_schema, &self.rows)?;
        let mut columns = input.columns().to_vec();
        let inputs = spec.input_schema.fields().len();
        for (i, field) in spec.output_schema.fields().iter().skip(inputs).enumerate() {
            let values = self.values.iter().map(|v| v[i].clone());
            let array = ScalarValue::iter_to_array(values)?;
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                arrow::compute::cast(&array, field.data_type())?
            });
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&spec.output_schema),
            columns,
        )?))
    }
}

impl Operator for OverAggregate {
    fn process_batch(&mut self, input: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.buffer(&input.batch, None)
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let mut emitted = Emitted {
            rows: Vec::new(),
            values: Vec::new(),
        };
        while let Some((ts, _)) = self.timers.first() {
            if *ts > self.watermark {
                break;
            }
            let (ts, key) = self.timers.pop_first().expect("a first timer");
            self.fire(ts, &key, &mut emitted)?;
        }
        if let Some(batch) = emitted.batch(&self.spec)? {
            out.push(StreamBatch::new(batch));
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<StateSnapshot>> {
        Ok(Some(StateSnapshot {
            watermark: Some(self.watermark),
            blob: self.seq.to_le_bytes().to_vec(),
            ..Default::default()
        }))
    }

    fn restore(&mut self, parts: &[StateSnapshot]) -> Result<()> {
        if let Some(w) = StateSnapshot::restored_watermark(parts) {
            self.watermark = w;
        }
        // Arrival numbers go on after every instance's.
        for part in parts {
            if let Ok(bytes) = <[u8; 8]>::try_from(part.blob.as_slice()) {
                self.seq = self.seq.max(i64::from_le_bytes(bytes));
            }
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        Some(self)
    }
}

impl KeyedState for OverAggregate {
    fn tables(&self) -> Vec<StateTable> {
        let keys: Vec<usize> = (0..self.spec.key_fields.len()).collect();
        vec![
            state::table("rows", &self.rows_schema, keys.clone()),
            state::table("totals", &self.totals_schema, keys),
        ]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let mut rows = Vec::new();
        let mut totals = Vec::new();
        let stored: Vec<(OwnedRow, Vec<ArrayRef>)> = self
            .keys
            .keys()
            .map(|k| Ok((k.clone(), self.codec.columns([k])?)))
            .collect::<Result<_>>()?;
        for (key, key_columns) in stored {
            let state = self.keys.get_mut(&key).expect("a listed key");
            let waiting = state.pending.values().map(|r| (0u8, r));
            let framed = state.frame.iter().map(|r| (1u8, r));
            for (kind, row) in waiting.chain(framed) {
                let mut columns = key_columns.clone();
                columns.push(Arc::new(UInt8Array::from(vec![kind])));
                columns.push(Arc::new(Int64Array::from(vec![row.seq])));
                columns.extend(row.row.columns().iter().cloned());
                rows.push(RecordBatch::try_new(
                    Arc::clone(&self.rows_schema),
                    columns,
                )?);
            }
            if self.spec.frame.unbounded() {
                let mut columns = key_columns;
                for acc in state.accumulators.iter_mut() {
                    for value in acc.state()? {
                        columns.push(value.to_array()?);
                    }
                }
                totals.push(RecordBatch::try_new(
                    Arc::clone(&self.totals_schema),
                    columns,
                )?);
            }
        }
        // One batch per table keeps the checkpoint files small.
        let rows = if rows.is_empty() {
            Vec::new()
        } else {
            vec![concat_batches(&self.rows_schema, &rows)?]
        };
        let totals = if totals.is_empty() {
            Vec::new()
        } else {
            vec![concat_batches(&self.totals_schema, &totals)?]
        };
        Ok(vec![rows, totals])
    }

    fn restore(&mut self, table: usize, rows: &RecordBatch) -> Result<()> {
        let keys = self.spec.key_fields.len();
        if table == 1 {
            let converted = self.codec.rows(&rows.columns()[..keys], rows.num_rows())?;
            let spec = Arc::clone(&self.spec);
            for i in 0..rows.num_rows() {
                let key = converted.row(i).owned();
                let mut next = keys;
                let state = self.key_state(&key)?;
                for (acc, agg) in state.accumulators.iter_mut().zip(spec.aggregates.iter()) {
                    let width = agg.state_fields()?.len();
                    let columns: Vec<ArrayRef> = rows.columns()[next..next + width]
                        .iter()
                        .map(|c| c.slice(i, 1))
                        .collect();
                    acc.merge_batch(&columns)?;
                    next += width;
                }
            }
            return Ok(());
        }
        let kinds = rows.column(keys).as_primitive::<UInt8Type>().clone();
        let seqs = rows.column(keys + 1).as_primitive::<Int64Type>().clone();
        let input = RecordBatch::try_new(
            Arc::clone(&self.spec.input_schema),
            rows.columns()[keys + 2..].to_vec(),
        )?;
        for kind in [0u8, 1u8] {
            let mask: BooleanArray = kinds.iter().map(|k| Some(k == Some(kind))).collect();
            let part = filter_record_batch(&input, &mask)?;
            let part_seqs = arrow::compute::filter(&seqs, &mask)?;
            let part_seqs = part_seqs.as_primitive::<Int64Type>();
            if kind == 0 {
                self.buffer(&part, Some(part_seqs))?;
            } else {
                // Rows in the frame: back into the running aggregates, oldest first.
                self.restore_frame(&part, part_seqs)?;
            }
        }
        Ok(())
    }
}

impl OverAggregate {
    fn restore_frame(&mut self, rows: &RecordBatch, seqs: &Int64Array) -> Result<()> {
        // Buffer them as waiting rows, then move them into the frames in order.
        self.buffer(rows, Some(seqs))?;
        let seq_set: BTreeSet<i64> = seqs.values().iter().copied().collect();
        let keys: Vec<OwnedRow> = self.keys.keys().cloned().collect();
        for key in keys {
            let state = self.keys.get_mut(&key).expect("a key just listed");
            let restored: Vec<(i64, i64)> = state
                .pending
                .keys()
                .filter(|(_, s)| seq_set.contains(s))
                .copied()
                .collect();
            for k in restored {
                let row = state.pending.remove(&k).expect("a restored row");
                self.timers.remove(&(row.ts, key.clone()));
                for (acc, args) in state.accumulators.iter_mut().zip(&row.args) {
                    acc.update_batch(args)?;
                }
                state.frame.push_back(row);
            }
            // Rows of other times that still wait keep their timers; a RANGE frame gets
            // the timer that empties it.
            for (ts, _) in state.pending.keys() {
                self.timers.insert((*ts, key.clone()));
            }
            if let (Frame::Range(preceding), Some(last)) = (self.spec.frame, state.frame.back()) {
                self.timers.insert((
                    last.ts.saturating_add(preceding).saturating_add(1),
                    key.clone(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "over_tests.rs"]
mod tests;
