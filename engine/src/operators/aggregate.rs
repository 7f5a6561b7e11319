//! Windowed aggregation, split in two phases as DataFusion's aggregates are.
//!
//! [`PartialAggregate`] runs chained after the window assigner, in the source task: for
//! each batch it groups rows by (window, key) and turns them into intermediate states with
//! DataFusion's vectorised `GroupsAccumulator`s. The states are hash-partitioned by key to
//! [`FinalAggregate`] instances, which merge them per window and key, and emit each window
//! exactly once when the watermark passes its end. Window state is intermediate aggregate
//! state, never raw rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{new_group_values, GroupValues};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::{evaluate, predicate};
use crate::error::{Error, Result};
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StreamBatch};
use crate::state::{self, KeyedState, StateTable};
use crate::window::{StatePart, WindowSpec, FIRST_SLICE_ID};

/// One output column of a windowed aggregate, in the order the SQL plan expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOutput {
    WindowStart,
    WindowEnd,
    WindowTime,
    /// The i-th non-window grouping key.
    Key(usize),
    /// The i-th aggregate function.
    Aggregate(usize),
}

/// Everything both phases need to know about one windowed `GROUP BY`.
pub struct WindowAggregateSpec {
    pub window: WindowSpec,
    /// Evaluates, on the partial phase's input, to a window column (start, end or time).
    pub window_column: Arc<dyn PhysicalExpr>,
    /// What to subtract from `window_column` to get the window start (0 for start).
    pub window_column_minus_start: i64,
    /// Non-window grouping keys, evaluated on the partial phase's input.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Fields of the keys (name, type, nullability).
    pub key_fields: Vec<Field>,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// Each aggregate's `FILTER (WHERE ...)` predicate over the partial phase's input, if
    /// any: rows for which it is not true do not count in that aggregate.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The order of the final output columns.
    pub output: Vec<AggregateOutput>,
    /// Schema of the final output.
    pub output_schema: SchemaRef,
    /// Table the rows came from, for drop counts.
    pub table: String,
}

impl WindowAggregateSpec {
    /// Schema of the intermediate states: window start, keys, then every state column.
    pub fn partial_schema(&self) -> Result<SchemaRef> {
        let mut fields = vec![Field::new("__window_start", DataType::Int64, false)];
        fields.extend(self.key_fields.iter().cloned());
        fields.extend(super::aggregate_state_fields(&self.aggregates)?);
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Column indices of the keys in the partial schema, which the exchange hashes.
    pub fn partial_key_columns(&self) -> Vec<usize> {
        (1..=self.keys.len()).collect()
    }

    fn new_accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.aggregates
            .iter()
            .map(|agg| {
                if agg.groups_accumulator_supported() {
                    Ok(agg.create_groups_accumulator()?)
                } else {
                    // Aggregates without a vectorised form (COUNT(DISTINCT)) run one
                    // accumulator per group behind DataFusion's adapter.
                    let agg = Arc::clone(agg);
                    let adapter = GroupsAccumulatorAdapter::new(move || agg.create_accumulator());
                    Ok(Box::new(adapter) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect()
    }

    fn new_group_values(&self, with_window: bool) -> Result<Option<Box<dyn GroupValues>>> {
        let mut fields = Vec::new();
        if with_window {
            fields.push(Field::new("__window_start", DataType::Int64, false));
        }
        fields.extend(self.key_fields.iter().cloned());
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(new_group_values(
            Arc::new(Schema::new(fields)),
            &GroupOrdering::None,
        )?))
    }
}

/// `columns` cast to the types of `schema`'s fields where they differ (accumulator states
/// come out in their own types).
fn cast_to_schema(columns: Vec<ArrayRef>, schema: &Schema) -> Result<Vec<ArrayRef>> {
    columns
        .into_iter()
        .zip(schema.fields())
        .map(|(a, f)| {
            if a.data_type() == f.data_type() {
                Ok(a)
            } else {
                Ok(cast(&a, f.data_type())?)
            }
        })
        .collect()
}

/// Interns `columns` into group ids; without grouping columns every row is group 0.
fn intern(
    group_values: &mut Option<Box<dyn GroupValues>>,
    columns: &[ArrayRef],
    rows: usize,
    groups: &mut Vec<usize>,
) -> Result<usize> {
    match group_values {
        Some(gv) => {
            gv.intern(columns, groups)?;
            Ok(gv.len())
        }
        None => {
            groups.clear();
            groups.resize(rows, 0);
            Ok(1)
        }
    }
}

/// The first phase: rows to intermediate states per (window, key), batch by batch.
pub struct PartialAggregate {
    spec: Arc<WindowAggregateSpec>,
    schema: SchemaRef,
    group_values: Option<Box<dyn GroupValues>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: Vec<usize>,
}

impl PartialAggregate {
    pub fn new(spec: Arc<WindowAggregateSpec>) -> Result<Self> {
        Ok(Self {
            schema: spec.partial_schema()?,
            group_values: spec.new_group_values(true)?,
            accumulators: spec.new_accumulators()?,
            groups: Vec::new(),
            spec,
        })
    }
}

impl Operator for PartialAggregate {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let batch = &input.batch;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let window = self.spec.window_column.evaluate(batch)?.into_array(rows)?;
        let window = cast(&window, &DataType::Int64)?;
        let minus = self.spec.window_column_minus_start;
        let starts: ArrayRef = if minus == 0 {
            window
        } else {
            Arc::new(arrow::compute::kernels::numeric::sub(
                &window,
                &Int64Array::new_scalar(minus),
            )?)
        };
        let mut columns = vec![starts];
        columns.extend(evaluate(&self.spec.keys, batch)?);
        let total = intern(&mut self.group_values, &columns, rows, &mut self.groups)?;
        for ((agg, filter), acc) in self
            .spec
            .aggregates
            .iter()
            .zip(&self.spec.filters)
            .zip(self.accumulators.iter_mut())
        {
            let values = evaluate(&agg.expressions(), batch)?;
            let filter = filter.as_ref().map(|f| predicate(f, batch)).transpose()?;
            acc.update_batch(&values, &self.groups, filter.as_ref(), total)?;
        }
        let mut output = match &mut self.group_values {
            Some(gv) => {
                let keys = gv.emit(EmitTo::All)?;
                // Emitting everything leaves the hash table behind; the next batch must
                // start from an empty one (DataFusion's partial aggregation does the same).
                gv.clear_shrink(rows);
                keys
            }
            None => Vec::new(),
        };
        if output.is_empty() {
            // No grouping at all cannot happen: the window start is always a group column.
            return Err(Error::internal(
                "windowed aggregate without a window column",
            ));
        }
        for acc in self.accumulators.iter_mut() {
            output.extend(acc.state(EmitTo::All)?);
        }
        let output = cast_to_schema(output, &self.schema)?;
        out.push(StreamBatch::new(RecordBatch::try_new(
            Arc::clone(&self.schema),
            output,
        )?));
        Ok(())
    }
}

/// Merged partial aggregates of one window: intern keys, merge states, evaluate.
struct Merged {
    group_values: Option<Box<dyn GroupValues>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl Merged {
    fn new(spec: &WindowAggregateSpec) -> Result<Self> {
        Ok(Self {
            group_values: spec.new_group_values(false)?,
            accumulators: spec.new_accumulators()?,
        })
    }

    /// Merges rows in the partial schema (window start, keys, states) of one window.
    fn merge(
        &mut self,
        spec: &WindowAggregateSpec,
        batch: &RecordBatch,
        groups: &mut Vec<usize>,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let keys = spec.keys.len();
        let total = intern(
            &mut self.group_values,
            &batch.columns()[1..=keys],
            rows,
            groups,
        )?;
        let mut next = 1 + keys;
        for (agg, acc) in spec.aggregates.iter().zip(self.accumulators.iter_mut()) {
            let width = agg.state_fields()?.len();
            acc.merge_batch(&batch.columns()[next..next + width], groups, total)?;
            next += width;
        }
        Ok(())
    }

    /// Takes the merged states out as rows of the partial schema (none if empty).
    fn drain(mut self, start: i64, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let mut columns = match &mut self.group_values {
            Some(gv) => gv.emit(EmitTo::All)?,
            None => Vec::new(),
        };
        for acc in self.accumulators.iter_mut() {
            columns.extend(acc.state(EmitTo::All)?);
        }
        let rows = columns.first().map_or(0, |c| c.len());
        if rows == 0 {
            return Ok(None);
        }
        let mut all: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![start; rows]))];
        all.extend(columns);
        let all = cast_to_schema(all, schema)?;
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), all)?))
    }
}

/// The state of one open window. What the last checkpoint stored stays as that
/// checkpoint's rows (`stored`) and is merged back only when the window changes or fires,
/// so a window untouched between two checkpoints costs the second one nothing.
#[derive(Default)]
struct OpenWindow {
    stored: Option<RecordBatch>,
    /// Partials merged since the last snapshot.
    live: Option<Merged>,
}

/// The second phase: merges intermediate states per slice and key, and emits each window
/// once, when the watermark reaches its end − 1 ms, as the merge of its slices (a TUMBLE
/// window is one slice; HOP and CUMULATE windows are several, each slice in several
/// windows). Its open slices are keyed state: the engine snapshots them at barriers and
/// splits them by key on a restore.
pub struct FinalAggregate {
    spec: Arc<WindowAggregateSpec>,
    schema: SchemaRef,
    /// Open slices by start.
    windows: BTreeMap<i64, OpenWindow>,
    /// Windows to fire, `(end, start)`, derived from the open slices.
    pending: std::collections::BTreeSet<(i64, i64)>,
    watermark: i64,
    groups: Vec<usize>,
    metrics: Arc<JobMetrics>,
}

impl FinalAggregate {
    pub fn new(spec: Arc<WindowAggregateSpec>, metrics: Arc<JobMetrics>) -> Result<Self> {
        Ok(Self {
            schema: spec.partial_schema()?,
            spec,
            windows: BTreeMap::new(),
            pending: Default::default(),
            watermark: i64::MIN,
            groups: Vec::new(),
            metrics,
        })
    }

    /// Merges rows of the partial schema into the live state of the slice or window part
    /// `start` (a [`StatePart`] id).
    fn merge_into(&mut self, start: i64, batch: &RecordBatch) -> Result<()> {
        if !self.windows.contains_key(&start) {
            // A new part: the windows it counts in that have not fired yet are to fire.
            let w = &self.spec.window;
            for (window_start, end) in w.windows_of_part(StatePart::of(start)) {
                if w.fire_at_end(end) > self.watermark {
                    self.pending.insert((end, window_start));
                }
            }
        }
        let window = self.windows.entry(start).or_default();
        if window.live.is_none() {
            window.live = Some(Merged::new(&self.spec)?);
        }
        let live = window.live.as_mut().expect("just set");
        live.merge(&self.spec, batch, &mut self.groups)
    }

    fn merge(&mut self, start: i64, batch: &RecordBatch) -> Result<()> {
        if self.spec.window.part_done_at(StatePart::of(start)) <= self.watermark {
            // Partials are filtered for lateness before the exchange, and the exchange keeps
            // each input's order, so this only guards against a broken invariant.
            self.metrics
                .add_dropped(&self.spec.table, DropReason::Late, batch.num_rows() as u64);
            return Ok(());
        }
        self.merge_into(start, batch)
    }

    /// Splits rows of the partial schema by window start and hands each part to `f`.
    fn by_window(
        &mut self,
        batch: &RecordBatch,
        mut f: impl FnMut(&mut Self, i64, &RecordBatch) -> Result<()>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let starts = batch.column(0).as_primitive::<Int64Type>();
        let first = starts.value(0);
        if starts.values().iter().all(|s| *s == first) {
            return f(self, first, batch);
        }
        let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, s) in starts.values().iter().enumerate() {
            by_window.entry(*s).or_default().push(i as u32);
        }
        for (start, rows) in by_window {
            let part = take_record_batch(batch, &UInt32Array::from(rows))?;
            f(self, start, &part)?;
        }
        Ok(())
    }

    /// The rows of slice `start` as partial states, for a window to merge: what arrived since
    /// the last snapshot is folded into what it stored, which the slice keeps.
    fn seal(&mut self, start: i64) -> Result<Option<RecordBatch>> {
        let Some(window) = self.windows.remove(&start) else {
            return Ok(None);
        };
        let stored = if window.live.is_none() {
            window.stored
        } else {
            match self.merged(window)? {
                Some(merged) => merged.drain(start, &self.schema)?,
                None => None,
            }
        };
        self.windows.insert(
            start,
            OpenWindow {
                stored: stored.clone(),
                live: None,
            },
        );
        Ok(stored)
    }

    /// The merged state of window `[start, end)`.
    fn window_state(&mut self, start: i64, end: i64) -> Result<Option<Merged>> {
        let w = self.spec.window;
        if w.slices_are_windows() {
            // One slice, in this window only: its state is the window's, taken whole.
            return match self.windows.remove(&start) {
                Some(slice) => self.merged(slice),
                None => Ok(None),
            };
        }
        let mut parts: Vec<i64> = self.windows.range(start..end).map(|(s, _)| *s).collect();
        // The rows that count in this window only, if any, go with it.
        let own = StatePart::Window(end).id();
        if self.windows.contains_key(&own) {
            parts.push(own);
        }
        let mut merged: Option<Merged> = None;
        for slice in parts {
            if let Some(rows) = self.seal(slice)? {
                if merged.is_none() {
                    merged = Some(Merged::new(&self.spec)?);
                }
                if let Some(m) = merged.as_mut() {
                    m.merge(&self.spec, &rows, &mut self.groups)?;
                }
            }
        }
        Ok(merged)
    }

    /// The window's whole state in one place: what the last snapshot stored merged into
    /// what arrived since.
    fn merged(&mut self, window: OpenWindow) -> Result<Option<Merged>> {
        let Some(stored) = window.stored else {
            return Ok(window.live);
        };
        let mut live = match window.live {
            Some(live) => live,
            None => Merged::new(&self.spec)?,
        };
        live.merge(&self.spec, &stored, &mut self.groups)?;
        Ok(Some(live))
    }

    fn emit(&self, (start, end): (i64, i64), mut window: Merged) -> Result<Option<RecordBatch>> {
        let keys = match &mut window.group_values {
            Some(gv) => gv.emit(EmitTo::All)?,
            None => Vec::new(),
        };
        let aggregates = window
            .accumulators
            .iter_mut()
            .map(|acc| acc.evaluate(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let rows = aggregates
            .first()
            .map(|a| a.len())
            .or_else(|| keys.first().map(|k| k.len()))
            .unwrap_or(0);
        if rows == 0 {
            return Ok(None);
        }
        let w = &self.spec.window;
        let constant = |value: i64, field: &Field| -> ArrayRef {
            let tz = match field.data_type() {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            Arc::new(TimestampMillisecondArray::from(vec![value; rows]).with_timezone_opt(tz))
        };
        let schema = &self.spec.output_schema;
        let columns = self
            .spec
            .output
            .iter()
            .zip(schema.fields())
            .map(|(o, field)| {
                let array = match *o {
                    AggregateOutput::WindowStart => constant(start, field),
                    AggregateOutput::WindowEnd => constant(end, field),
                    AggregateOutput::WindowTime => constant(w.fire_at_end(end), field),
                    AggregateOutput::Key(i) => Arc::clone(&keys[i]),
                    AggregateOutput::Aggregate(i) => Arc::clone(&aggregates[i]),
                };
                if array.data_type() == field.data_type() {
                    Ok(array)
                } else {
                    Ok(cast(&array, field.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }
}

impl Operator for FinalAggregate {
    fn process_batch(&mut self, input: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.by_window(&input.batch, |op, start, part| op.merge(start, part))
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<crate::operator::StateSnapshot>> {
        Ok(Some(crate::operator::StateSnapshot::watermark(
            self.watermark,
        )))
    }

    fn restore(&mut self, parts: &[crate::operator::StateSnapshot]) -> Result<()> {
        if let Some(w) = crate::operator::StateSnapshot::restored_watermark(parts) {
            self.watermark = w;
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        Some(self)
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        let w = self.spec.window;
        while let Some(&(end, start)) = self.pending.first() {
            if w.fire_at_end(end) > watermark {
                break;
            }
            self.pending.pop_first();
            if let Some(merged) = self.window_state(start, end)? {
                if let Some(batch) = self.emit((start, end), merged)? {
                    out.push(StreamBatch::new(batch));
                }
            }
        }
        // Parts whose last window has fired are done with: window parts by their window's
        // end, then slices by their last window's.
        let done: Vec<i64> = self
            .windows
            .range(..FIRST_SLICE_ID)
            .map(|(id, _)| *id)
            .take_while(|id| w.part_done_at(StatePart::of(*id)) <= watermark)
            .chain(
                self.windows
                    .range(FIRST_SLICE_ID..)
                    .map(|(id, _)| *id)
                    .take_while(|id| w.slice_done_at(*id) <= watermark),
            )
            .collect();
        for id in done {
            self.windows.remove(&id);
        }
        Ok(())
    }
}

impl KeyedState for FinalAggregate {
    fn tables(&self) -> Vec<StateTable> {
        vec![state::table(
            "windows",
            &self.schema,
            self.spec.partial_key_columns(),
        )]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let mut batches = Vec::with_capacity(self.windows.len());
        for start in self.windows.keys().copied().collect::<Vec<_>>() {
            let window = self.windows.remove(&start).unwrap_or_default();
            // Unchanged since the last snapshot: its stored rows serve again as they are.
            let stored = if window.live.is_none() {
                window.stored
            } else {
                match self.merged(window)? {
                    Some(merged) => merged.drain(start, &self.schema)?,
                    None => None,
                }
            };
            if let Some(rows) = &stored {
                batches.push(rows.clone());
                self.windows
                    .insert(start, OpenWindow { stored, live: None });
            }
        }
        Ok(vec![batches])
    }

    fn restore(&mut self, _table: usize, rows: &RecordBatch) -> Result<()> {
        // Open windows at the checkpoint: no lateness check.
        self.by_window(rows, |op, start, part| op.merge_into(start, part))
    }
}
