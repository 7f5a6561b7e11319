//! From what a source reads to the rows of its table, with event time.
//!
//! A reader produces the table's physical and metadata columns; [`SourcePrep`] evaluates
//! the computed columns (`ts AS TO_TIMESTAMP_LTZ(event_time, 3)`) into the table's column
//! order and, when the table declares a `WATERMARK`, computes the per-row watermark of the
//! partition the batch came from, as Flink emits it: the largest watermark expression seen
//! so far is emitted only once it exceeds the last emitted watermark by more than
//! `pipeline.auto-watermark-interval` (200 ms; 0 emits after every record). A row's
//! watermark is the one emitted before it, so lateness is decided per record and does not
//! depend on batch sizes. (Flink also emits on a wall-clock timer of the same period; that
//! part depends on timing, and Sluice leaves it out.)

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::operator::StreamBatch;
use crate::operators::evaluate;

/// The `WATERMARK FOR col AS expr` of a table.
pub struct WatermarkSpec {
    /// Index of the rowtime column in the table schema.
    pub rowtime: usize,
    /// The watermark expression, over the table schema; yields a timestamp.
    pub expr: Arc<dyn PhysicalExpr>,
    /// Set when the expression is `rowtime - <fixed interval>`: the watermark is then
    /// computed as an integer subtraction on the rowtime's milliseconds, instead of
    /// Arrow's calendar-aware interval arithmetic (which goes through time zones per row).
    pub fixed_delay_ms: Option<i64>,
    /// `pipeline.auto-watermark-interval` in milliseconds: how far the largest watermark
    /// seen must be past the last emitted one to be emitted.
    pub emit_interval_ms: i64,
}

/// The watermark state of one source partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionWatermark {
    /// The watermark emitted last: what rows are late against, and what flows downstream.
    pub emitted: i64,
    /// The largest watermark expression seen.
    pub seen: i64,
}

impl PartitionWatermark {
    /// A partition starting at `emitted` (a restored one: the largest value seen since is
    /// lost, which changes nothing, since it was within the interval of `emitted`).
    pub fn at(emitted: i64) -> Self {
        Self {
            emitted,
            seen: emitted,
        }
    }

    /// Takes in one row's watermark expression; emits the largest seen when it is more
    /// than `interval` past the last emitted one.
    #[inline]
    fn observe(&mut self, value: i64, interval: i64) {
        if value > self.seen {
            self.seen = value;
            if (self.seen as i128) - (self.emitted as i128) > interval as i128 {
                self.emitted = self.seen;
            }
        }
    }
}

/// Turns source batches into table rows with per-row watermarks.
pub struct SourcePrep {
    /// One expression per table column, over the source schema.
    pub columns: Vec<Arc<dyn PhysicalExpr>>,
    /// The table schema (physical, computed and metadata columns in declaration order).
    pub schema: SchemaRef,
    pub watermark: Option<WatermarkSpec>,
}

impl SourcePrep {
    /// The table's columns (computed ones evaluated) of a batch in the source schema.
    pub fn table_columns(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = evaluate(&self.columns, batch)?;
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }

    /// Converts one batch of one partition; `watermark` is that partition's watermark state
    /// and is advanced past the batch.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        watermark: &mut PartitionWatermark,
    ) -> Result<StreamBatch> {
        let rows = batch.num_rows();
        let table_batch = self.table_columns(batch)?;
        let Some(spec) = &self.watermark else {
            return Ok(StreamBatch::new(table_batch));
        };
        let values = match spec.fixed_delay_ms {
            Some(delay) => {
                let rowtime = cast(table_batch.column(spec.rowtime), &DataType::Int64)?;
                let rowtime = rowtime.as_primitive::<Int64Type>();
                Arc::new(rowtime.unary::<_, Int64Type>(|t| t.saturating_sub(delay))) as _
            }
            None => {
                let values = spec.expr.evaluate(&table_batch)?.into_array(rows)?;
                cast(&values, &DataType::Int64)?
            }
        };
        let values = values.as_primitive::<Int64Type>();
        let interval = spec.emit_interval_ms;
        let mut current = *watermark;
        let mut before = Vec::with_capacity(rows);
        if values.null_count() == 0 {
            for &v in values.values().iter() {
                before.push(current.emitted);
                current.observe(v, interval);
            }
        } else {
            for v in values.iter() {
                before.push(current.emitted);
                if let Some(v) = v {
                    current.observe(v, interval);
                }
            }
        }
        *watermark = current;
        Ok(StreamBatch {
            batch: table_batch,
            row_watermarks: Some(Arc::new(Int64Array::from(before))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted_before(values: &[i64], interval: i64) -> Vec<i64> {
        let mut w = PartitionWatermark::at(i64::MIN);
        values
            .iter()
            .map(|v| {
                let before = w.emitted;
                w.observe(*v, interval);
                before
            })
            .collect()
    }

    #[test]
    fn a_watermark_is_emitted_once_it_is_past_the_last_by_more_than_the_interval() {
        let m = i64::MIN;
        // Every record: the running maximum.
        assert_eq!(
            emitted_before(&[1000, 1100, 1050, 1400, 1401], 0),
            [m, 1000, 1100, 1100, 1400]
        );
        // 200 ms: 1100 and 1150 are not enough past 1000, 1250 is; 1400 is not past 1250
        // by more than 200, 1451 is.
        assert_eq!(
            emitted_before(&[1000, 1100, 1150, 1250, 1400, 1451, 0], 200),
            [m, 1000, 1000, 1000, 1250, 1250, 1451]
        );
    }
}
