//! Filter: keeps the rows for which a predicate (`WHERE`, `HAVING`) is true.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::operator::{set_current_watermark, Operator, StreamBatch};

/// Drops rows whose predicate is false or NULL, as SQL does.
pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    /// The input's watermark, for `CURRENT_WATERMARK`.
    watermark: i64,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Self {
            predicate,
            watermark: i64::MIN,
        }
    }
}

/// A predicate's result as a filter mask: NULL counts as false, as in SQL.
pub(crate) fn without_nulls(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() > 0 {
        arrow::compute::prep_null_mask_filter(mask)
    } else {
        mask.clone()
    }
}

impl Operator for Filter {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        set_current_watermark(self.watermark, input.row_watermarks.as_ref());
        let mask = self
            .predicate
            .evaluate(&input.batch)?
            .into_array(input.num_rows())?;
        let mask = mask
            .as_boolean_opt()
            .ok_or_else(|| Error::plan("a WHERE or HAVING condition must be a boolean"))?;
        let mask = without_nulls(mask);
        if mask.true_count() == 0 {
            return Ok(());
        }
        let batch = filter_record_batch(&input.batch, &mask)?;
        let row_watermarks = match input.row_watermarks {
            Some(w) => {
                let f = arrow::compute::filter(w.as_ref(), &mask)?;
                Some(Arc::new(Int64Array::from(f.to_data())))
            }
            None => None,
        };
        out.push(StreamBatch {
            batch,
            row_watermarks,
        });
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = watermark;
        Ok(())
    }
}
