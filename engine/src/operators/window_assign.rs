//! Window assignment: the `TUMBLE`, `HOP` and `CUMULATE` table functions, for an aggregate.
//!
//! Appends `window_start`, `window_end` and `window_time` to every row: its window for
//! TUMBLE, its slice for HOP and CUMULATE (the aggregate merges slices into windows, see
//! [`crate::window`]). Drops (and counts) rows that cannot be windowed: a NULL rowtime, or a
//! row every window of which had already fired for the rows before it in its source
//! partition (late). A HOP or CUMULATE row late for some of its windows only is kept: the
//! windows still open count it, as in Flink.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StreamBatch};
use crate::window::{StatePart, WindowSpec};

/// Adds window columns; decides lateness per record.
pub struct WindowAssign {
    window: WindowSpec,
    /// Index of the rowtime column in the input.
    rowtime: usize,
    /// Output schema: the input's columns, then window_start, window_end, window_time.
    schema: SchemaRef,
    /// The table whose rows these are, for drop counts.
    table: String,
    metrics: Arc<JobMetrics>,
    /// Watermark of the input, for rows that carry no per-row watermark (rows emitted by an
    /// upstream window: they are on time by construction until this watermark passes).
    watermark: i64,
}

impl WindowAssign {
    pub fn new(
        window: WindowSpec,
        rowtime: usize,
        schema: SchemaRef,
        table: impl Into<String>,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        Self {
            window,
            rowtime,
            schema,
            table: table.into(),
            metrics,
            watermark: i64::MIN,
        }
    }
}

/// Milliseconds of a rowtime column (TIMESTAMP(3) or TIMESTAMP_LTZ(3)).
pub(crate) fn rowtime_millis(column: &ArrayRef) -> Result<&TimestampMillisecondArray> {
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Ok(column.as_primitive::<arrow::datatypes::TimestampMillisecondType>())
        }
        other => Err(Error::plan(format!(
            "a rowtime column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), found {other}"
        ))),
    }
}

/// A millisecond timestamp column of the type of `field` (its time zone, if any).
pub(crate) fn timestamps(values: Vec<i64>, field: &Field) -> ArrayRef {
    let tz = match field.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz))
}

/// The three window columns of the rows of a batch.
struct WindowColumns {
    starts: Vec<i64>,
    ends: Vec<i64>,
    times: Vec<i64>,
}

impl WindowColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, start: i64, end: i64, time: i64) {
        self.starts.push(start);
        self.ends.push(end);
        self.times.push(time);
    }
}

/// One slice and when it fires, as the assigner remembers it between rows.
#[derive(Clone, Copy)]
struct Slice {
    start: i64,
    /// `start + slice`: the first wall-clock millisecond after it.
    end: i64,
    /// When the first window containing it fires (rowtime).
    first_fire: i64,
    /// When a window ending with the slice fires (rowtime).
    fire: i64,
}

impl WindowAssign {
    /// `columns` with the window columns appended, in the output schema.
    fn with_columns(
        &self,
        mut columns: Vec<ArrayRef>,
        window: WindowColumns,
    ) -> Result<RecordBatch> {
        let fields = self.schema.fields();
        let k = fields.len();
        columns.push(timestamps(window.starts, &fields[k - 3]));
        columns.push(timestamps(window.ends, &fields[k - 2]));
        columns.push(timestamps(window.times, &fields[k - 1]));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

impl Operator for WindowAssign {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let n = input.num_rows();
        let ts = rowtime_millis(input.batch.column(self.rowtime))?;
        let row_wm = input.row_watermarks.as_deref();
        let mut rows = WindowColumns::with_capacity(n);
        let mut keep = Vec::with_capacity(n);
        // Rows late for some of their windows only (HOP, CUMULATE): one row per window
        // still open, in that window's part.
        let mut partly_late: Vec<u32> = Vec::new();
        let mut parts = WindowColumns::with_capacity(0);
        let (mut late, mut null_time) = (0u64, 0u64);
        let values = ts.values();
        let w = self.window;
        let slice = w.slice_ms();
        // Rows come mostly in time order: the slice of the previous row, with the times its
        // first window and the slice itself fire at, serves the next rows in that slice
        // without a division or a time zone lookup each.
        let mut last = Slice {
            start: i64::MAX,
            end: i64::MIN,
            first_fire: 0,
            fire: 0,
        };
        for i in 0..n {
            if ts.is_null(i) {
                null_time += 1;
                keep.push(false);
                rows.push(0, 0, 0);
                continue;
            }
            let local = w.to_local(values[i]);
            if local < last.start || local >= last.end {
                let start = w.start(local);
                last = Slice {
                    start,
                    end: start + slice,
                    first_fire: w.fire_at_end(w.first_end_of_slice(start)),
                    fire: w.fire_at_end(start + slice),
                };
            }
            let start = last.start;
            let watermark = row_wm.map_or(self.watermark, |w| w.value(i));
            if watermark < last.first_fire {
                keep.push(true);
                rows.push(start, last.end, last.fire);
                continue;
            }
            keep.push(false);
            rows.push(0, 0, 0);
            if watermark >= w.slice_done_at(start) {
                late += 1;
                continue;
            }
            for (_, end) in w.windows_of_slice(start) {
                if w.fire_at_end(end) > watermark {
                    let id = StatePart::Window(end).id();
                    partly_late.push(i as u32);
                    parts.push(id, id + slice, w.fire_at_end(end));
                }
            }
        }
        self.metrics
            .add_dropped(&self.table, DropReason::Late, late);
        self.metrics
            .add_dropped(&self.table, DropReason::NullEventTime, null_time);
        let dropped = n - keep.iter().filter(|k| **k).count();
        if dropped < n {
            let batch = self.with_columns(input.batch.columns().to_vec(), rows)?;
            let batch = if dropped > 0 {
                filter_record_batch(&batch, &BooleanArray::from(keep))?
            } else {
                batch
            };
            out.push(StreamBatch::new(batch));
        }
        if !partly_late.is_empty() {
            let picked = take_record_batch(&input.batch, &UInt32Array::from(partly_late))?;
            out.push(StreamBatch::new(
                self.with_columns(picked.columns().to_vec(), parts)?,
            ));
        }
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }
}
