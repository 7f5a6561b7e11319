//! Window assignment: the `TUMBLE(...)` table function.
//!
//! Appends `window_start`, `window_end` and `window_time` to every row, and drops (and
//! counts) rows that cannot be windowed: a NULL rowtime, or a row whose window had already
//! fired for the rows before it in its source partition (late).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, TimestampMillisecondArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StreamBatch};
use crate::window::TumbleWindow;

/// Adds window columns; decides lateness per record.
pub struct WindowAssign {
    window: TumbleWindow,
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
        window: TumbleWindow,
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

impl Operator for WindowAssign {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let n = input.num_rows();
        let ts = rowtime_millis(input.batch.column(self.rowtime))?;
        let row_wm = input.row_watermarks.as_deref();
        let mut starts = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut keep = Vec::with_capacity(n);
        let (mut late, mut null_time) = (0u64, 0u64);
        let values = ts.values();
        for i in 0..n {
            if ts.is_null(i) {
                null_time += 1;
                keep.push(false);
                starts.push(0);
                ends.push(0);
                times.push(0);
                continue;
            }
            let start = self.window.start(self.window.to_local(values[i]));
            let fire_at = self.window.fire_at(start);
            let watermark = row_wm.map_or(self.watermark, |w| w.value(i));
            let on_time = watermark < fire_at;
            late += u64::from(!on_time);
            keep.push(on_time);
            starts.push(start);
            ends.push(start + self.window.size_ms);
            times.push(fire_at);
        }
        self.metrics
            .add_dropped(&self.table, DropReason::Late, late);
        self.metrics
            .add_dropped(&self.table, DropReason::NullEventTime, null_time);
        if late + null_time == n as u64 {
            return Ok(());
        }
        let fields = self.schema.fields();
        let k = fields.len();
        let typed = |values: Vec<i64>, field: usize| -> ArrayRef {
            let tz = match fields[field].data_type() {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz))
        };
        let mut columns = input.batch.columns().to_vec();
        columns.push(typed(starts, k - 3));
        columns.push(typed(ends, k - 2));
        columns.push(typed(times, k - 1));
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let batch = if late + null_time > 0 {
            filter_record_batch(&batch, &BooleanArray::from(keep))?
        } else {
            batch
        };
        out.push(StreamBatch::new(batch));
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }
}
