//! Sink: hands batches to a connector's writer and counts what was written.

use std::sync::Arc;

use crate::connector::SinkWriter;
use crate::error::Result;
use crate::metrics::JobMetrics;
use crate::operator::{NextTimers, Operator, StateSnapshot, StreamBatch, Timer};

/// The last operator of a chain: writes into a table.
pub struct Sink {
    writer: Box<dyn SinkWriter>,
    metrics: Arc<JobMetrics>,
    /// The writer finished (committed everything): nothing is left for a checkpoint.
    finished: bool,
}

impl Sink {
    pub fn new(writer: Box<dyn SinkWriter>, metrics: Arc<JobMetrics>) -> Self {
        Self {
            writer,
            metrics,
            finished: false,
        }
    }
}

impl Operator for Sink {
    fn process_batch(&mut self, input: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        // Connector errors already name the table.
        self.writer.write(&input.batch)?;
        self.metrics.add_written(input.num_rows() as u64);
        Ok(())
    }

    fn handle_watermark(&mut self, watermark: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.writer.on_watermark(watermark)
    }

    fn next_timers(&self) -> NextTimers {
        NextTimers {
            processing: self.writer.next_timer().filter(|_| !self.finished),
            ..NextTimers::default()
        }
    }

    fn on_timer(&mut self, _timer: Timer, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.writer.on_timer()
    }

    fn restore(&mut self, parts: &[StateSnapshot]) -> Result<()> {
        let prepared: Vec<Vec<u8>> = parts.iter().map(|p| p.blob.clone()).collect();
        self.writer.restore(&prepared)
    }

    fn on_finish(&mut self, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.finished = true;
        self.writer.finish()
    }

    fn on_abort(&mut self) -> Result<()> {
        self.finished = true;
        self.writer.abort()
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<StateSnapshot>> {
        let blob = if self.finished {
            Vec::new()
        } else {
            self.writer.prepare_commit()?
        };
        Ok(Some(StateSnapshot {
            blob,
            ..Default::default()
        }))
    }
}
