//! The operators of the engine, one per file.

mod aggregate;
mod filter;
mod project;
mod sink;
mod window_assign;

pub use aggregate::{AggregateOutput, FinalAggregate, PartialAggregate, WindowAggregateSpec};
pub use filter::Filter;
pub use project::Project;
pub use sink::Sink;
pub use window_assign::WindowAssign;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use std::sync::Arc;

use crate::error::Result;

/// Evaluates physical expressions over a batch into arrays of its length.
pub(crate) fn evaluate(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect()
}
