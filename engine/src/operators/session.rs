//! SESSION windows for an aggregate: `SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)`
//! grouped by `window_start, window_end [, keys]`, and the legacy `GROUP BY SESSION(ts, gap)`.
//!
//! Each row opens the window `[ts, ts + gap)`; windows of the same key that overlap or touch
//! merge, so rows exactly `gap` apart share a session, as in Flink. A session fires once,
//! when the watermark reaches its end - 1 ms, and is forgotten; a row that comes after that
//! starts a new session. A row is late when its own window has no open session of its key to
//! merge with and the watermark before it (per record, from its source partition) has already
//! passed that window's end - 1 ms: it is dropped and counted.
//!
//! [`SessionTag`] runs in the source task: it drops rows without a rowtime, adds the row's
//! own window columns (what the generated window table declares), then two trailing columns
//! that every operator up to the aggregate carries along ([`TRAILING_COLUMNS`]): the
//! rowtime in milliseconds and the per-record watermark, since rows travel to
//! [`SessionAggregate`] through an exchange that carries only columns, and the query may
//! select neither. [`SessionAggregate`] keeps per key its open sessions, each with the
//! running states of its aggregates, as keyed state.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::row::OwnedRow;
use chrono_tz::Tz;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

use super::evaluate;
use super::keys::KeyCodec;
use super::window_assign::{rowtime_millis, timestamps};
use super::AggregateOutput;
use crate::error::{Error, Result};
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StateSnapshot, StreamBatch};
use crate::state::{self, KeyedState, StateTable};
use crate::window::local_millis;

/// The columns [`SessionTag`] appends after the window table's and [`SessionAggregate`]
/// reads last: the rowtime in epoch milliseconds, and the watermark the row's source
/// partition had emitted before it.
pub const TRAILING_COLUMNS: [&str; 2] = ["__session_rowtime", "__row_watermark"];

/// Drops rows without a rowtime and appends `window_start`, `window_end`, `window_time`
/// (the row's own window), then the [`TRAILING_COLUMNS`].
pub struct SessionTag {
    gap_ms: i64,
    rowtime: usize,
    time_zone: Option<Tz>,
    /// The input's columns, the three window columns, then the [`TRAILING_COLUMNS`].
    schema: SchemaRef,
    table: String,
    metrics: Arc<JobMetrics>,
    /// For rows that carry no per-row watermark: the input's watermark.
    watermark: i64,
}

impl SessionTag {
    /// `window_schema` is the generated window table's: the input's columns, then
    /// `window_start`, `window_end` and `window_time`.
    pub fn new(
        gap_ms: i64,
        rowtime: usize,
        time_zone: Option<Tz>,
        window_schema: &SchemaRef,
        table: impl Into<String>,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        let mut fields: Vec<Field> = window_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for name in TRAILING_COLUMNS {
            fields.push(Field::new(name, DataType::Int64, false));
        }
        Self {
            gap_ms,
            rowtime,
            time_zone,
            schema: Arc::new(Schema::new(fields)),
            table: table.into(),
            metrics,
            watermark: i64::MIN,
        }
    }
}

impl Operator for SessionTag {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let ts = rowtime_millis(input.batch.column(self.rowtime))?;
        let keep: BooleanArray = (0..ts.len()).map(|i| Some(ts.is_valid(i))).collect();
        let null_time = ts.null_count() as u64;
        self.metrics
            .add_dropped(&self.table, DropReason::NullEventTime, null_time);
        let watermarks: Vec<i64> = match input.row_watermarks.as_deref() {
            Some(w) => w.values().to_vec(),
            None => vec![self.watermark; ts.len()],
        };
        let batch = if null_time > 0 {
            let watermarks = Int64Array::from(watermarks);
            let batch = filter_record_batch(&input.batch, &keep)?;
            let watermarks = arrow::compute::filter(&watermarks, &keep)?;
            (
                batch,
                watermarks.as_primitive::<Int64Type>().values().to_vec(),
            )
        } else {
            (input.batch, watermarks)
        };
        let (batch, watermarks) = batch;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let ts = rowtime_millis(batch.column(self.rowtime))?;
        let fields = self.schema.fields();
        let k = fields.len() - 1;
        let gap = self.gap_ms;
        let local = |t: i64| local_millis(self.time_zone, t);
        let mut columns = batch.columns().to_vec();
        columns.push(timestamps(
            ts.values().iter().map(|&t| local(t)).collect(),
            &fields[k - 4],
        ));
        columns.push(timestamps(
            ts.values().iter().map(|&t| local(t + gap)).collect(),
            &fields[k - 3],
        ));
        columns.push(timestamps(
            ts.values().iter().map(|&t| t + gap - 1).collect(),
            &fields[k - 2],
        ));
        columns.push(Arc::new(Int64Array::from(ts.values().to_vec())));
        columns.push(Arc::new(Int64Array::from(watermarks)));
        out.push(StreamBatch::new(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?));
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }
}

/// Everything a session window aggregate needs to know.
pub struct SessionSpec {
    pub gap_ms: i64,
    /// Session time zone of a `TIMESTAMP_LTZ` rowtime: `window_start` and `window_end` are
    /// its wall clock. (Rows arrive with their rowtime in [`TRAILING_COLUMNS`].)
    pub time_zone: Option<Tz>,
    /// Grouping keys other than the window: columns of the input, and their fields.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub key_fields: Vec<Field>,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// Each aggregate's `FILTER (WHERE ...)` predicate, if any: a row for which it is not
    /// true still opens or extends its session but does not count in that aggregate.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The order of the output columns.
    pub output: Vec<AggregateOutput>,
    pub output_schema: SchemaRef,
    pub table: String,
}

impl SessionSpec {
    /// The state table: key columns, session start and end, each aggregate's state columns.
    pub fn state_schema(&self) -> Result<SchemaRef> {
        let mut fields = self.key_fields.clone();
        fields.push(Field::new("__session_start", DataType::Int64, false));
        fields.push(Field::new("__session_end", DataType::Int64, false));
        fields.extend(super::aggregate_state_fields(&self.aggregates)?);
        Ok(Arc::new(Schema::new(fields)))
    }

    fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        self.aggregates
            .iter()
            .map(|a| Ok(a.create_accumulator()?))
            .collect()
    }
}

/// One open session of a key.
struct Session {
    start: i64,
    end: i64,
    accumulators: Vec<Box<dyn Accumulator>>,
}

impl Session {
    /// Adds `other`'s rows to this session's aggregates and widens it to cover both.
    fn absorb(&mut self, mut other: Session) -> Result<()> {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        for (mine, theirs) in self.accumulators.iter_mut().zip(&mut other.accumulators) {
            let states = theirs
                .state()?
                .iter()
                .map(|s| Ok(s.to_array()?))
                .collect::<Result<Vec<_>>>()?;
            mine.merge_batch(&states)?;
        }
        Ok(())
    }
}

/// Fired sessions, gathered into one output batch.
struct Fired {
    keys: Vec<OwnedRow>,
    windows: Vec<(i64, i64)>,
    values: Vec<Vec<ScalarValue>>,
}

/// The keyed operator of a SESSION window aggregate.
pub struct SessionAggregate {
    spec: Arc<SessionSpec>,
    codec: KeyCodec,
    /// Open sessions per key, by start; they never overlap or touch.
    sessions: HashMap<OwnedRow, Vec<Session>>,
    /// (end, key) of every open session: when the watermark reaches end - 1, it fires.
    timers: BTreeSet<(i64, OwnedRow)>,
    watermark: i64,
    state_schema: SchemaRef,
    metrics: Arc<JobMetrics>,
}

impl SessionAggregate {
    pub fn new(spec: Arc<SessionSpec>, metrics: Arc<JobMetrics>) -> Result<Self> {
        Ok(Self {
            codec: KeyCodec::new(&spec.key_fields)?,
            sessions: HashMap::new(),
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            state_schema: spec.state_schema()?,
            metrics,
            spec,
        })
    }

    /// Moves `key`'s sessions that end by `watermark` + 1 ms into `fired`.
    fn close(&mut self, key: &OwnedRow, watermark: i64, fired: &mut Fired) -> Result<()> {
        let Some(open) = self.sessions.get_mut(key) else {
            return Ok(());
        };
        let (done, kept): (Vec<Session>, Vec<Session>) = std::mem::take(open)
            .into_iter()
            .partition(|s| s.end - 1 <= watermark);
        *open = kept;
        if open.is_empty() {
            self.sessions.remove(key);
        }
        for mut session in done {
            self.timers.remove(&(session.end, key.clone()));
            fired.keys.push(key.clone());
            fired.windows.push((session.start, session.end));
            fired.values.push(
                session
                    .accumulators
                    .iter_mut()
                    .map(|a| Ok(a.evaluate()?))
                    .collect::<Result<_>>()?,
            );
        }
        Ok(())
    }

    /// Adds one row (its key, time and aggregate arguments: none for an aggregate whose
    /// FILTER excludes it) to its key's sessions, unless it is late; returns whether it was
    /// taken.
    fn add(
        &mut self,
        key: &OwnedRow,
        ts: i64,
        watermark: i64,
        args: &[Option<Vec<ArrayRef>>],
    ) -> Result<bool> {
        let (start, end) = (ts, ts.saturating_add(self.spec.gap_ms));
        let open = self.sessions.entry(key.clone()).or_default();
        // Sessions that overlap or touch [start, end).
        let (touching, rest): (Vec<Session>, Vec<Session>) = std::mem::take(open)
            .into_iter()
            .partition(|s| s.start <= end && s.end >= start);
        *open = rest;
        if touching.is_empty() && end - 1 <= watermark {
            if open.is_empty() {
                self.sessions.remove(key);
            }
            return Ok(false);
        }
        let mut session = Session {
            start,
            end,
            accumulators: self.spec.accumulators()?,
        };
        for other in touching {
            self.timers.remove(&(other.end, key.clone()));
            session.absorb(other)?;
        }
        for (acc, args) in session.accumulators.iter_mut().zip(args) {
            // An aggregate whose FILTER excludes the row gets no arguments for it.
            if let Some(args) = args {
                acc.update_batch(args)?;
            }
        }
        self.timers.insert((session.end, key.clone()));
        let open = self.sessions.entry(key.clone()).or_default();
        let at = open.partition_point(|s| s.start < session.start);
        open.insert(at, session);
        Ok(true)
    }

    fn output(&self, fired: Fired) -> Result<Option<RecordBatch>> {
        if fired.windows.is_empty() {
            return Ok(None);
        }
        let keys = self.codec.columns(&fired.keys)?;
        let local = |t: i64| local_millis(self.spec.time_zone, t);
        let fields = self.spec.output_schema.fields();
        let mut columns = Vec::with_capacity(fields.len());
        for (role, field) in self.spec.output.iter().zip(fields.iter()) {
            let column: ArrayRef = match role {
                AggregateOutput::WindowStart => {
                    timestamps(fired.windows.iter().map(|w| local(w.0)).collect(), field)
                }
                AggregateOutput::WindowEnd => {
                    timestamps(fired.windows.iter().map(|w| local(w.1)).collect(), field)
                }
                AggregateOutput::WindowTime => {
                    timestamps(fired.windows.iter().map(|w| w.1 - 1).collect(), field)
                }
                AggregateOutput::Key(i) => Arc::clone(&keys[*i]),
                AggregateOutput::Aggregate(i) => {
                    ScalarValue::iter_to_array(fired.values.iter().map(|v| v[*i].clone()))?
                }
            };
            columns.push(if column.data_type() == field.data_type() {
                column
            } else {
                arrow::compute::cast(&column, field.data_type())?
            });
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.spec.output_schema),
            columns,
        )?))
    }

    fn fired() -> Fired {
        Fired {
            keys: Vec::new(),
            windows: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl Operator for SessionAggregate {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let batch = &input.batch;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = self.codec.rows(&evaluate(&self.spec.keys, batch)?, rows)?;
        let trailing = |i: usize| -> Result<Int64Array> {
            let column = batch
                .columns()
                .len()
                .checked_sub(2 - i)
                .map(|c| batch.column(c));
            match column {
                Some(c) if c.data_type() == &DataType::Int64 => {
                    Ok(c.as_primitive::<Int64Type>().clone())
                }
                _ => Err(Error::internal(format!(
                    "a SESSION window aggregate's input lacks its {} column",
                    TRAILING_COLUMNS[i]
                ))),
            }
        };
        let ts = trailing(0)?;
        let row_wm = trailing(1)?;
        let args: Vec<Vec<ArrayRef>> = self
            .spec
            .aggregates
            .iter()
            .map(|agg| evaluate(&agg.expressions(), batch))
            .collect::<Result<_>>()?;
        let filters: Vec<Option<BooleanArray>> = self
            .spec
            .filters
            .iter()
            .map(|f| f.as_ref().map(|f| super::predicate(f, batch)).transpose())
            .collect::<Result<_>>()?;
        let mut fired = Self::fired();
        let mut late = 0u64;
        for i in 0..rows {
            let key = keys.row(i).owned();
            let watermark = row_wm.value(i).max(self.watermark);
            self.close(&key, watermark, &mut fired)?;
            let row_args: Vec<Option<Vec<ArrayRef>>> = args
                .iter()
                .zip(&filters)
                .map(|(a, filter)| {
                    let counts = filter.as_ref().is_none_or(|f| f.is_valid(i) && f.value(i));
                    counts.then(|| a.iter().map(|c| c.slice(i, 1)).collect())
                })
                .collect();
            if !self.add(&key, ts.value(i), watermark, &row_args)? {
                late += 1;
            }
        }
        self.metrics
            .add_dropped(&self.spec.table, DropReason::Late, late);
        if let Some(batch) = self.output(fired)? {
            out.push(StreamBatch::new(batch));
        }
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let mut fired = Self::fired();
        while let Some((end, _)) = self.timers.first() {
            if end - 1 > self.watermark {
                break;
            }
            let (_, key) = self.timers.pop_first().expect("a first timer");
            self.close(&key, self.watermark, &mut fired)?;
        }
        if let Some(batch) = self.output(fired)? {
            out.push(StreamBatch::new(batch));
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

impl KeyedState for SessionAggregate {
    fn tables(&self) -> Vec<StateTable> {
        let keys: Vec<usize> = (0..self.spec.key_fields.len()).collect();
        vec![state::table("sessions", &self.state_schema, keys)]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let mut batches = Vec::new();
        for (key, open) in self.sessions.iter_mut() {
            let key_columns = self.codec.columns([key])?;
            for session in open.iter_mut() {
                let mut columns = key_columns.clone();
                columns.push(Arc::new(Int64Array::from(vec![session.start])));
                columns.push(Arc::new(Int64Array::from(vec![session.end])));
                for acc in session.accumulators.iter_mut() {
                    for value in acc.state()? {
                        columns.push(value.to_array()?);
                    }
                }
                batches.push(RecordBatch::try_new(
                    Arc::clone(&self.state_schema),
                    columns,
                )?);
            }
        }
        if batches.is_empty() {
            return Ok(vec![Vec::new()]);
        }
        Ok(vec![vec![concat_batches(&self.state_schema, &batches)?]])
    }

    fn restore(&mut self, _table: usize, rows: &RecordBatch) -> Result<()> {
        let n = self.spec.key_fields.len();
        let keys = self.codec.rows(&rows.columns()[..n], rows.num_rows())?;
        let starts = rows.column(n).as_primitive::<Int64Type>().clone();
        let ends = rows.column(n + 1).as_primitive::<Int64Type>().clone();
        for i in 0..rows.num_rows() {
            let key = keys.row(i).owned();
            let mut session = Session {
                start: starts.value(i),
                end: ends.value(i),
                accumulators: self.spec.accumulators()?,
            };
            let mut next = n + 2;
            for (acc, agg) in session.accumulators.iter_mut().zip(&self.spec.aggregates) {
                let width = agg.state_fields()?.len();
                let states: Vec<ArrayRef> = rows.columns()[next..next + width]
                    .iter()
                    .map(|c| c.slice(i, 1))
                    .collect();
                acc.merge_batch(&states)?;
                next += width;
            }
            self.timers.insert((session.end, key.clone()));
            let open = self.sessions.entry(key).or_default();
            let at = open.partition_point(|s| s.start < session.start);
            open.insert(at, session);
        }
        if self
            .sessions
            .values()
            .any(|open| open.windows(2).any(|w| w[0].end >= w[1].start))
        {
            return Err(Error::internal(
                "a restored SESSION window state holds overlapping sessions of one key",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
