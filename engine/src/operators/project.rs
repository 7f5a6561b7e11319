//! Projection: computes the output columns of a `SELECT` list, row for row.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::evaluate;
use crate::error::Result;
use crate::operator::{set_current_watermark, Operator, StreamBatch};

/// Evaluates one expression per output column. Rows stay aligned, so per-row watermarks
/// pass through unchanged.
pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    /// The input's watermark, for `CURRENT_WATERMARK`.
    watermark: i64,
}

impl Project {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Self {
            exprs,
            schema,
            watermark: i64::MIN,
        }
    }
}

impl Operator for Project {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        set_current_watermark(self.watermark, input.row_watermarks.as_ref());
        let columns = evaluate(&self.exprs, &input.batch)?;
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(input.num_rows())),
        )?;
        out.push(StreamBatch {
            batch,
            row_watermarks: input.row_watermarks,
        });
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = watermark;
        Ok(())
    }
}
