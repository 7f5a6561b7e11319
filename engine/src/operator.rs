//! The operator contract: small structs with lifecycle hooks, chained inside a task.
//!
//! An operator receives [`StreamBatch`]es and watermarks and pushes what it produces into
//! `out`; the task passes `out` on to the next operator of the chain, or to an exchange.
//! Every hook but `process_batch` has a default that does nothing, so a stateless operator
//! is a single function.

use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// A batch flowing through a chain, with the per-row watermark when it is known.
///
/// `row_watermarks[i]` is the watermark that the rows before row `i` of the same source
/// partition had carried the stream to. It lets the window operator decide lateness per
/// record, independent of batch sizes (see SEMANTICS.md, "Lateness is decided per record").
/// Sources set it; operators that keep rows one-to-one keep it aligned; the window
/// assigner consumes it.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub batch: RecordBatch,
    pub row_watermarks: Option<Arc<Int64Array>>,
}

impl StreamBatch {
    pub fn new(batch: RecordBatch) -> Self {
        Self {
            batch,
            row_watermarks: None,
        }
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// One step of a dataflow: a map, a filter, a window, a sink.
pub trait Operator: Send {
    /// Handles one batch; pushes output batches into `out`.
    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()>;

    /// The input's watermark advanced to `watermark` (milliseconds, never decreasing).
    /// Output pushed here is delivered before the watermark is passed on.
    fn handle_watermark(&mut self, _watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }

    /// The input ended. Bounded inputs send the maximal watermark first, so windows have
    /// fired already; a stopped job ends without it.
    fn on_finish(&mut self, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
}

/// Creates the operator of one parallel instance (`instance` of `parallelism`).
pub trait OperatorFactory: Send + Sync {
    fn create(&self, instance: usize, parallelism: usize) -> Result<Box<dyn Operator>>;
}

impl<F> OperatorFactory for F
where
    F: Fn(usize, usize) -> Result<Box<dyn Operator>> + Send + Sync,
{
    fn create(&self, instance: usize, parallelism: usize) -> Result<Box<dyn Operator>> {
        self(instance, parallelism)
    }
}
