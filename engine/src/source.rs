//! From what a source reads to the rows of its table, with event time.
//!
//! A reader produces the table's physical and metadata columns; [`SourcePrep`] evaluates
//! the computed columns (`ts AS TO_TIMESTAMP_LTZ(event_time, 3)`) into the table's column
//! order and, when the table declares a `WATERMARK`, computes the per-row watermark of the
//! partition the batch came from: the largest watermark expression over the rows before
//! each row, never decreasing.

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
    /// Converts one batch of one partition; `watermark` is that partition's watermark and
    /// is advanced past the batch.
    pub fn apply(&self, batch: &RecordBatch, watermark: &mut i64) -> Result<StreamBatch> {
        let rows = batch.num_rows();
        let columns = evaluate(&self.columns, batch)?;
        let table_batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
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
        let mut current = *watermark;
        let mut before = Vec::with_capacity(rows);
        if values.null_count() == 0 {
            for &v in values.values().iter() {
                before.push(current);
                current = current.max(v);
            }
        } else {
            for v in values.iter() {
                before.push(current);
                if let Some(v) = v {
                    current = current.max(v);
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
