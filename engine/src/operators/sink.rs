//! Sink: hands batches to a connector's writer and counts what was written.

use std::sync::Arc;

use crate::connector::SinkWriter;
use crate::error::Result;
use crate::metrics::JobMetrics;
use crate::operator::{Operator, StateSnapshot, StreamBatch};

/// The last operator of a chain: writes into a table.
pub struct Sink {
    writer: Box<dyn SinkWriter>,
    metrics: Arc<JobMetrics>,
}

impl Sink {
    pub fn new(writer: Box<dyn SinkWriter>, metrics: Arc<JobMetrics>) -> Self {
        Self { writer, metrics }
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

    fn on_finish(&mut self, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.writer.finish()
    }

    fn on_abort(&mut self) -> Result<()> {
        self.writer.abort()
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<StateSnapshot>> {
        Ok(Some(StateSnapshot {
            blob: self.writer.prepare_commit()?,
            ..Default::default()
        }))
    }
}
