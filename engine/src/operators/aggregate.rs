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

use super::evaluate;
use crate::error::{Error, Result};
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StreamBatch};
use crate::window::TumbleWindow;

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
    pub window: TumbleWindow,
    /// Evaluates, on the partial phase's input, to a window column (start, end or time).
    pub window_column: Arc<dyn PhysicalExpr>,
    /// What to subtract from `window_column` to get the window start (0 for start).
    pub window_column_minus_start: i64,
    /// Non-window grouping keys, evaluated on the partial phase's input.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Fields of the keys (name, type, nullability).
    pub key_fields: Vec<Field>,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
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
        for (i, agg) in self.aggregates.iter().enumerate() {
            for (j, f) in agg.state_fields()?.iter().enumerate() {
                fields.push(Field::new(
                    format!("__state_{i}_{j}"),
                    f.data_type().clone(),
                    true,
                ));
            }
        }
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
        for (agg, acc) in self
            .spec
            .aggregates
            .iter()
            .zip(self.accumulators.iter_mut())
        {
            let values = evaluate(&agg.expressions(), batch)?;
            acc.update_batch(&values, &self.groups, None, total)?;
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

/// The merged state of one open window.
struct OpenWindow {
    group_values: Option<Box<dyn GroupValues>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

/// The second phase: merges intermediate states per window and key and emits each window
/// once, when the watermark reaches its end − 1 ms.
pub struct FinalAggregate {
    spec: Arc<WindowAggregateSpec>,
    windows: BTreeMap<i64, OpenWindow>,
    watermark: i64,
    groups: Vec<usize>,
    metrics: Arc<JobMetrics>,
    /// This instance and the number of instances: a restore keeps the keys the exchange
    /// sends here.
    instance: usize,
    parallelism: usize,
}

impl FinalAggregate {
    pub fn new(
        spec: Arc<WindowAggregateSpec>,
        metrics: Arc<JobMetrics>,
        instance: usize,
        parallelism: usize,
    ) -> Self {
        Self {
            spec,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            groups: Vec::new(),
            metrics,
            instance,
            parallelism,
        }
    }

    /// The open windows as intermediate states, in the partial phase's schema (window
    /// start, keys, state columns): what a checkpoint keeps.
    fn partial_states(&mut self) -> Result<Vec<RecordBatch>> {
        let schema = self.spec.partial_schema()?;
        let windows = std::mem::take(&mut self.windows);
        let mut batches = Vec::with_capacity(windows.len());
        for (start, mut window) in windows {
            let mut columns = match &mut window.group_values {
                Some(gv) => gv.emit(EmitTo::All)?,
                None => Vec::new(),
            };
            for acc in window.accumulators.iter_mut() {
                columns.extend(acc.state(EmitTo::All)?);
            }
            let rows = columns.first().map_or(0, |c| c.len());
            if rows == 0 {
                continue;
            }
            let mut all: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![start; rows]))];
            all.extend(columns);
            let all = cast_to_schema(all, &schema)?;
            batches.push(RecordBatch::try_new(Arc::clone(&schema), all)?);
        }
        Ok(batches)
    }

    /// Merges restored intermediate states (no lateness check: they were open windows).
    fn merge_states(&mut self, batch: &RecordBatch) -> Result<()> {
        let watermark = std::mem::replace(&mut self.watermark, i64::MIN);
        let result = self.process_batch(StreamBatch::new(batch.clone()), &mut Vec::new());
        self.watermark = watermark;
        result
    }

    /// The rows of `batch` whose keys the exchange sends to this instance.
    fn owned_rows(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.parallelism <= 1 {
            return Ok(batch.clone());
        }
        let keys: Vec<ArrayRef> = self
            .spec
            .partial_key_columns()
            .iter()
            .map(|&c| Arc::clone(batch.column(c)))
            .collect();
        let hashes = crate::runtime::key_hashes(&keys, batch.num_rows())?;
        let rows: Vec<u32> = hashes
            .iter()
            .enumerate()
            .filter(|(_, h)| (**h % self.parallelism as u64) as usize == self.instance)
            .map(|(i, _)| i as u32)
            .collect();
        Ok(take_record_batch(batch, &UInt32Array::from(rows))?)
    }

    fn merge(&mut self, start: i64, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if self.spec.window.fire_at(start) <= self.watermark {
            // Partials are filtered for lateness before the exchange, and the exchange keeps
            // each input's order, so this only guards against a broken invariant.
            self.metrics
                .add_dropped(&self.spec.table, DropReason::Late, rows as u64);
            return Ok(());
        }
        let spec = &self.spec;
        let window = match self.windows.entry(start) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(OpenWindow {
                group_values: spec.new_group_values(false)?,
                accumulators: spec.new_accumulators()?,
            }),
        };
        let keys = spec.keys.len();
        let key_columns = &batch.columns()[1..=keys];
        let total = intern(
            &mut window.group_values,
            key_columns,
            rows,
            &mut self.groups,
        )?;
        let mut next = 1 + keys;
        for (agg, acc) in spec.aggregates.iter().zip(window.accumulators.iter_mut()) {
            let width = agg.state_fields()?.len();
            acc.merge_batch(&batch.columns()[next..next + width], &self.groups, total)?;
            next += width;
        }
        Ok(())
    }

    fn emit(&self, start: i64, mut window: OpenWindow) -> Result<Option<RecordBatch>> {
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
                    AggregateOutput::WindowEnd => constant(start + w.size_ms, field),
                    AggregateOutput::WindowTime => constant(w.window_time(start), field),
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
        let batch = input.batch;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let starts = batch.column(0).as_primitive::<Int64Type>();
        let first = starts.value(0);
        if starts.values().iter().all(|s| *s == first) {
            return self.merge(first, &batch);
        }
        // A batch spanning several windows: split it by window start.
        let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, s) in starts.values().iter().enumerate() {
            by_window.entry(*s).or_default().push(i as u32);
        }
        for (start, rows) in by_window {
            let part = take_record_batch(&batch, &UInt32Array::from(rows))?;
            self.merge(start, &part)?;
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<crate::operator::StateSnapshot>> {
        // Taking the states out empties the windows: merge them back at once.
        let batches = self.partial_states()?;
        for batch in &batches {
            self.merge_states(batch)?;
        }
        Ok(Some(crate::operator::StateSnapshot {
            watermark: Some(self.watermark),
            batches,
            blob: Vec::new(),
        }))
    }

    fn restore(&mut self, parts: &[crate::operator::StateSnapshot]) -> Result<()> {
        // At a barrier every instance has seen the same watermarks: any part's will do.
        if let Some(w) = parts.iter().filter_map(|p| p.watermark).max() {
            self.watermark = w;
        }
        for part in parts {
            for batch in &part.batches {
                let mine = self.owned_rows(batch)?;
                if mine.num_rows() > 0 {
                    self.merge_states(&mine)?;
                }
            }
        }
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if self.spec.window.fire_at(start) > watermark {
                break;
            }
            let window = entry.remove();
            if let Some(batch) = self.emit(start, window)? {
                out.push(StreamBatch::new(batch));
            }
        }
        Ok(())
    }
}
