//! The operator contract: small structs with lifecycle hooks, chained inside a task.
//!
//! An operator receives [`StreamBatch`]es and watermarks and pushes what it produces into
//! `out`; the task passes `out` on to the next operator of the chain, or to an exchange.
//! Every hook but `process_batch` has a default that does nothing, so a stateless operator
//! is a single function.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::state::KeyedState;

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

/// What an operator instance keeps at a checkpoint barrier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateSnapshot {
    /// The watermark the operator had reached, when that matters for its restore.
    pub watermark: Option<i64>,
    /// Arrow state by table name (a window operator's partial aggregates, a source's
    /// partition watermarks), each stored as an Arrow IPC file.
    pub tables: Vec<(String, Vec<RecordBatch>)>,
    /// A small opaque value (a source reader's position, a sink's pending files).
    pub blob: Vec<u8>,
}

impl StateSnapshot {
    /// The snapshot of a keyed operator whose only state besides its keyed state is the
    /// watermark it had reached.
    pub fn watermark(watermark: i64) -> Self {
        Self {
            watermark: Some(watermark),
            ..Default::default()
        }
    }

    /// The watermark to resume at from the snapshots of a node's instances: at a barrier
    /// every instance has seen the same watermarks, so the largest any kept will do.
    pub fn restored_watermark(parts: &[StateSnapshot]) -> Option<i64> {
        parts.iter().filter_map(|p| p.watermark).max()
    }

    /// The batches of table `name` (none if it has no such table).
    pub fn table<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RecordBatch> {
        self.tables
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, b)| b)
    }
}

/// A moment at which an operator wants to be called back, whether rows arrive or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Once the watermark reaches this time (milliseconds): a window or a row buffer
    /// whose time has come.
    EventTime(i64),
    /// Once wall-clock time reaches this instant: a file to roll after an interval.
    ProcessingTime(Instant),
}

/// The earliest timer of each kind an operator has set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextTimers {
    pub event: Option<i64>,
    pub processing: Option<Instant>,
}

thread_local! {
    static CURRENT_WATERMARK: std::cell::RefCell<(i64, Option<Arc<Int64Array>>)> =
        const { std::cell::RefCell::new((i64::MIN, None)) };
}

/// The watermark of the operator evaluating expressions on this thread (`i64::MIN`: none
/// yet) and the per-row watermarks of the batch it evaluates, when known: for
/// `CURRENT_WATERMARK(ts)`. Projections and filters set them before they evaluate.
pub fn current_watermark() -> (i64, Option<Arc<Int64Array>>) {
    CURRENT_WATERMARK.with(|w| w.borrow().clone())
}

/// Sets what [`current_watermark`] returns on this thread.
pub fn set_current_watermark(watermark: i64, rows: Option<&Arc<Int64Array>>) {
    CURRENT_WATERMARK.with(|w| *w.borrow_mut() = (watermark, rows.cloned()));
}

/// One step of a dataflow: a map, a filter, a window, a sink.
pub trait Operator: Send {
    /// Handles one batch; pushes output batches into `out`.
    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()>;

    /// Handles one batch of input `side` (0: the node's input, 1: its second input, as a
    /// join's right side has); operators with one input take it as any batch.
    fn process_side(
        &mut self,
        _side: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        self.process_batch(batch, out)
    }

    /// The input's watermark advanced to `watermark` (milliseconds, never decreasing).
    /// Output pushed here is delivered before the watermark is passed on.
    fn handle_watermark(&mut self, _watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }

    /// The watermark passed on after the input's reached `watermark` (and this operator
    /// handled it). An operator whose output rows can be older than its input's watermark
    /// (an interval join's pairs) holds it back, so those rows are not late downstream. The
    /// end of time (`i64::MAX`) must pass unchanged.
    fn output_watermark(&self, watermark: i64) -> i64 {
        watermark
    }

    /// The input ended. Bounded inputs send the maximal watermark first, so windows have
    /// fired already; a stopped job ends without it.
    fn on_finish(&mut self, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }

    /// The job was stopped with checkpoints on: the input ends without its final
    /// watermark, and nothing after the last checkpoint may be kept (a restore replays it).
    fn on_abort(&mut self) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed: everything before it is processed. Returns the state to
    /// keep (None: the operator has none). Output pushed into `out` goes before the barrier.
    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<StateSnapshot>> {
        Ok(None)
    }

    /// Before the first batch of a restored job: the snapshots of this node's instances in
    /// the checkpoint, all of them (the job may run at another parallelism now). Keyed
    /// state comes separately, split by key ([`Operator::keyed_state`]).
    fn restore(&mut self, _parts: &[StateSnapshot]) -> Result<()> {
        Ok(())
    }

    /// The operator's keyed state, which the engine snapshots at every barrier and
    /// restores split by key ([`crate::state`]); None for an operator without any.
    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        None
    }

    /// The earliest timers the operator has set ([`crate::state::timers::TimerQueue`]
    /// keeps per-key ones). The engine asks whenever the watermark advances (event time)
    /// and at least every 100 ms (processing time), also while no row arrives.
    fn next_timers(&self) -> NextTimers {
        NextTimers::default()
    }

    /// A timer is due: the watermark reached an event-time timer (called before
    /// [`Operator::handle_watermark`] for that watermark, earliest first), or the clock a
    /// processing-time one. The operator clears what it handled.
    fn on_timer(&mut self, _timer: Timer, _out: &mut Vec<StreamBatch>) -> Result<()> {
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
