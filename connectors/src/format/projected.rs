//! A record decoder that decodes only the columns a job reads and leaves the others NULL:
//! for JSON, where a field that is not read costs little more than being stepped over, while
//! decoding it costs copying its text into a column (a transaction hash is a third of a
//! line). Flink's JSON format likewise converts only the projected fields.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use super::lines::RecordDecoder;

pub struct Projected {
    inner: Box<dyn RecordDecoder>,
    /// The full record schema, which flushed batches have.
    schema: SchemaRef,
    /// The columns of `schema` that `inner` decodes, in order.
    projection: Vec<usize>,
}

impl Projected {
    /// `inner` decodes `schema.project(projection)`.
    pub fn new(inner: Box<dyn RecordDecoder>, schema: SchemaRef, projection: Vec<usize>) -> Self {
        Self {
            inner,
            schema,
            projection,
        }
    }
}

impl RecordDecoder for Projected {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.inner.decode(buf)
    }

    fn buffered_rows(&self) -> usize {
        self.inner.buffered_rows()
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        let Some(read) = self.inner.flush()? else {
            return Ok(None);
        };
        let rows = read.num_rows();
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.schema.fields().len()];
        for (column, &i) in read.columns().iter().zip(&self.projection) {
            columns[i] = Some(Arc::clone(column));
        }
        let columns = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| c.unwrap_or_else(|| new_null_array(f.data_type(), rows)))
            .collect();
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map(Some)
    }

    fn reset(&mut self) -> Result<(), ArrowError> {
        self.inner.reset()
    }

    fn rows_to_check(&self, batch: &RecordBatch) -> Option<Vec<bool>> {
        self.inner
            .rows_to_check(&batch.project(&self.projection).ok()?)
    }

    fn check_line(&self, line: &[u8]) -> Result<(), String> {
        self.inner.check_line(line)
    }

    fn failed_record(&self) -> Option<usize> {
        self.inner.failed_record()
    }
}
