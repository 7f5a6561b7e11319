//! The `blackhole` connector: a sink that discards every row, for benchmarks.
//!
//! It has no options, so it has no `config.rs`.

use arrow::array::RecordBatch;
use sluice_engine::connector::{SinkConnector, SinkContext, SinkWriter};
use sluice_engine::Result;

/// A blackhole table.
pub struct BlackholeSink;

impl SinkConnector for BlackholeSink {
    fn describe(&self) -> String {
        "blackhole".into()
    }

    fn create_writer(&self, _ctx: &SinkContext) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(BlackholeWriter))
    }
}

struct BlackholeWriter;

impl SinkWriter for BlackholeWriter {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
