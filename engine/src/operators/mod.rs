//! The operators of the engine, one per file.

mod aggregate;
mod dedup;
mod filter;
mod interval_join;
mod keys;
mod over;
mod project;
mod session;
mod sink;
mod top_n;
mod window_assign;
mod window_join;

pub use aggregate::{AggregateOutput, FinalAggregate, PartialAggregate, WindowAggregateSpec};
pub use dedup::{DedupSpec, Deduplicate};
pub use filter::Filter;
pub use interval_join::{IntervalJoin, IntervalJoinSpec};
pub use over::{DropLateRows, Frame, OverAggregate, OverSpec};
pub use project::Project;
pub use session::{SessionAggregate, SessionSpec, SessionTag, TRAILING_COLUMNS};
pub use sink::Sink;
pub use top_n::{SortOptions, TopNSpec, WindowTopN};
pub use window_assign::WindowAssign;
pub use window_join::{JoinKind, WindowJoin, WindowJoinSpec};

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use std::sync::Arc;

use crate::error::Result;

/// Evaluates physical expressions over a batch into arrays of its length.
/// The state columns of `aggregates`, `__state_<aggregate>_<column>`, all nullable: how
/// partial aggregates are kept in state tables and exchanged.
pub(crate) fn aggregate_state_fields(
    aggregates: &[Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>],
) -> Result<Vec<arrow::datatypes::Field>> {
    let mut fields = Vec::new();
    for (i, agg) in aggregates.iter().enumerate() {
        for (j, f) in agg.state_fields()?.iter().enumerate() {
            fields.push(arrow::datatypes::Field::new(
                format!("__state_{i}_{j}"),
                f.data_type().clone(),
                true,
            ));
        }
    }
    Ok(fields)
}

/// A `FILTER (WHERE ...)` predicate evaluated over `batch`: true where the row counts.
pub(crate) fn predicate(
    filter: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<arrow::array::BooleanArray> {
    let values = filter.evaluate(batch)?.into_array(batch.num_rows())?;
    match values.as_any().downcast_ref::<arrow::array::BooleanArray>() {
        Some(b) => Ok(b.clone()),
        None => Err(crate::error::Error::internal(format!(
            "a FILTER predicate gave {} values, not booleans",
            values.data_type()
        ))),
    }
}

pub(crate) fn evaluate(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect()
}
