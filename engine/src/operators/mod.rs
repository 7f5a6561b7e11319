//! The operators of the engine, one per file.

mod aggregate;
mod dedup;
mod filter;
mod interval_join;
mod keys;
mod lookup_join;
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
pub use lookup_join::{LookupJoin, LookupJoinSpec, LookupTable, LookupTableSpec};
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

/// The rows of `batch` by the rowtime their window fires at (its `window_end` column `end`,
/// wall clock in `time_zone`, minus 1 ms), and how many are late: a NULL end, or with
/// `drop_late`, a window the watermark has passed. Window Top-N and window joins file their
/// rows this way.
pub(crate) fn rows_by_window_fire(
    batch: &RecordBatch,
    end: usize,
    time_zone: Option<chrono_tz::Tz>,
    watermark: Option<i64>,
) -> Result<(Vec<(i64, RecordBatch)>, u64)> {
    use arrow::array::{Array, UInt32Array};
    let ends = window_assign::rowtime_millis(batch.column(end))?;
    let mut by_fire: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    let mut late = 0u64;
    for i in 0..batch.num_rows() {
        if ends.is_null(i) {
            late += 1;
            continue;
        }
        let fire = crate::window::local_to_rowtime(time_zone, ends.value(i)).saturating_sub(1);
        if watermark.is_some_and(|w| fire <= w) {
            late += 1;
            continue;
        }
        by_fire.entry(fire).or_default().push(i as u32);
    }
    let mut parts = Vec::with_capacity(by_fire.len());
    for (fire, rows) in by_fire {
        let part = if rows.len() == batch.num_rows() {
            batch.clone()
        } else {
            arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))?
        };
        parts.push((fire, part));
    }
    Ok((parts, late))
}
