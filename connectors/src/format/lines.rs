//! Line-delimited input (newline-delimited JSON, CSV) decoded in large chunks.
//!
//! The fast path hands whole chunks of complete lines to Arrow's vectorised decoder and never
//! looks at individual lines. Only when a chunk fails (a malformed line, or a check the
//! decoder cannot make itself, such as a missing JSON field) is that chunk decoded again line
//! by line, to find the bad lines, name them by their 1-based line number in the input, and
//! skip them when parse errors are ignored. Clean input therefore pays nothing for error
//! handling.

use std::io::Read;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// Bytes read from the input at a time: large enough that a chunk holds many batches.
const READ_BLOCK: u64 = 4 << 20;

/// A push decoder of one record format, as Arrow's JSON and CSV `Decoder`s are.
pub trait RecordDecoder: Send {
    /// Decodes records from `buf`; returns how many bytes it consumed. It stops early once a
    /// full batch is buffered.
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError>;
    /// Rows buffered since the last flush, a partial one included.
    fn buffered_rows(&self) -> usize;
    /// Turns the buffered rows into a batch.
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
    /// Starts afresh: after an error the decoder's partial state is unusable.
    fn reset(&mut self) -> Result<(), ArrowError>;
    /// True when a successfully decoded chunk must still be checked line by line with
    /// [`RecordDecoder::check_line`] (JSON with `fail-on-missing-field` and NULLs in it).
    fn needs_line_check(&self, _batch: &RecordBatch) -> bool {
        false
    }
    /// Checks one line that decoded alone into `batch`; an `Err` makes the line malformed.
    fn check_line(&self, _line: &[u8], _batch: &RecordBatch) -> Result<(), String> {
        Ok(())
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// A malformed line while parse errors are not ignored.
    Malformed {
        line: u64,
        reason: String,
    },
    /// The decoder failed in a way no single line explains (a bug).
    Decoder(ArrowError),
}

/// The human part of an Arrow decoding error, without Arrow's category prefix and without
/// Arrow's own (chunk-relative) line numbers, since callers name the real line.
pub fn error_reason(error: &ArrowError) -> String {
    let message = match error {
        ArrowError::JsonError(m)
        | ArrowError::ParseError(m)
        | ArrowError::CsvError(m)
        | ArrowError::CastError(m)
        | ArrowError::InvalidArgumentError(m) => m.clone(),
        other => other.to_string(),
    };
    strip_line_reference(&message)
}

fn strip_line_reference(message: &str) -> String {
    let Some(at) = message
        .find(" at line ")
        .or_else(|| message.find(" for line "))
    else {
        return message.to_string();
    };
    let rest = &message[at..];
    let digits_start = rest
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(rest.len());
    let digits_len = rest[digits_start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    format!("{}{}", &message[..at], &rest[digits_start + digits_len..])
}

/// Reads batches of records from line-delimited input.
pub struct LineReader<R> {
    input: R,
    decoder: Box<dyn RecordDecoder>,
    schema: SchemaRef,
    batch_size: usize,
    ignore_parse_errors: bool,
    buf: Vec<u8>,
    /// First byte of the batch being decoded; bytes before it are done.
    start: usize,
    /// How far the decoder has consumed.
    cursor: usize,
    /// End of the last complete line in `buf`.
    complete: usize,
    eof: bool,
    /// Newlines before `start`: the line number of the line before it.
    lines_before_start: u64,
    bytes_read: u64,
    dropped: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(
        input: R,
        decoder: Box<dyn RecordDecoder>,
        schema: SchemaRef,
        batch_size: usize,
        ignore_parse_errors: bool,
    ) -> Self {
        Self {
            input,
            decoder,
            schema,
            batch_size: batch_size.max(1),
            ignore_parse_errors,
            buf: Vec::new(),
            start: 0,
            cursor: 0,
            complete: 0,
            eof: false,
            lines_before_start: 0,
            bytes_read: 0,
            dropped: 0,
        }
    }

    /// Bytes read from the input since the last call.
    pub fn take_bytes_read(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_read)
    }

    /// Malformed lines skipped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// The next batch of about `batch_size` rows in input order, or `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>, ReadError> {
        loop {
            if let Some(outcome) = self.decode_chunk()? {
                return Ok(outcome);
            }
            let before = self.start;
            if let Some(batch) = self.decode_line_by_line()? {
                return Ok(Some(batch));
            }
            if self.start == before {
                return Err(ReadError::Decoder(ArrowError::ComputeError(
                    "the decoder failed on input it then accepted line by line".into(),
                )));
            }
        }
    }

    /// The fast path. `Ok(None)` means the chunk must be decoded line by line.
    fn decode_chunk(&mut self) -> Result<Option<Option<RecordBatch>>, ReadError> {
        self.cursor = self.start;
        loop {
            if self.cursor == self.complete {
                if self.eof {
                    break;
                }
                self.refill()?;
                continue;
            }
            match self.decoder.decode(&self.buf[self.cursor..self.complete]) {
                Ok(0) if self.decoder.buffered_rows() < self.batch_size => return Ok(None),
                Ok(consumed) => self.cursor += consumed,
                Err(_) => return Ok(None),
            }
            if self.decoder.buffered_rows() >= self.batch_size {
                break;
            }
        }
        match self.decoder.flush() {
            Ok(None) => Ok(Some(None)),
            Ok(Some(batch)) if !self.decoder.needs_line_check(&batch) => {
                self.advance_start(self.cursor);
                Ok(Some(Some(batch)))
            }
            Ok(Some(_)) | Err(_) => Ok(None),
        }
    }

    /// The slow path: decodes each line of the chunk alone, up to a batch of good rows.
    /// Returns `None` when every line of the region was blank or malformed-and-skipped.
    fn decode_line_by_line(&mut self) -> Result<Option<RecordBatch>, ReadError> {
        self.decoder.reset().map_err(ReadError::Decoder)?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut pos = self.start;
        let mut line_number = self.lines_before_start;
        while pos < self.complete && rows < self.batch_size {
            let end = memchr::memchr(b'\n', &self.buf[pos..self.complete])
                .map_or(self.complete, |i| pos + i + 1);
            line_number += 1;
            let line = &self.buf[pos..end];
            pos = end;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match decode_line(self.decoder.as_mut(), line) {
                Ok(batch) => {
                    rows += batch.num_rows();
                    batches.push(batch);
                }
                Err(reason) => {
                    self.decoder.reset().map_err(ReadError::Decoder)?;
                    if !self.ignore_parse_errors {
                        return Err(ReadError::Malformed {
                            line: line_number,
                            reason,
                        });
                    }
                    self.dropped += 1;
                }
            }
        }
        self.advance_start(pos);
        if batches.is_empty() {
            return Ok(None);
        }
        concat_batches(&self.schema, &batches)
            .map(Some)
            .map_err(ReadError::Decoder)
    }

    fn advance_start(&mut self, to: usize) {
        self.lines_before_start +=
            memchr::memchr_iter(b'\n', &self.buf[self.start..to]).count() as u64;
        self.start = to;
        self.cursor = to;
    }

    /// Drops the bytes before `start` and reads the next block.
    fn refill(&mut self) -> Result<(), ReadError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.cursor -= self.start;
            self.complete -= self.start;
            self.start = 0;
        }
        let scanned = self.buf.len();
        let n = (&mut self.input)
            .take(READ_BLOCK)
            .read_to_end(&mut self.buf)
            .map_err(ReadError::Io)?;
        self.bytes_read += n as u64;
        if n == 0 {
            self.eof = true;
            // A last line without a newline still ends there; the newline lets every
            // decoder (CSV's in particular) see the record as complete.
            if self.buf.last().is_some_and(|&b| b != b'\n') {
                self.buf.push(b'\n');
            }
            self.complete = self.buf.len();
        } else if let Some(i) = memchr::memrchr(b'\n', &self.buf[scanned..]) {
            self.complete = scanned + i + 1;
        }
        Ok(())
    }
}

/// Decodes one line alone into a batch, or says why it is malformed.
fn decode_line(decoder: &mut dyn RecordDecoder, line: &[u8]) -> Result<RecordBatch, String> {
    let consumed = decoder.decode(line).map_err(|e| error_reason(&e))?;
    if consumed < line.len() && !line[consumed..].iter().all(u8::is_ascii_whitespace) {
        return Err("more than one record on the line".into());
    }
    match decoder.flush().map_err(|e| error_reason(&e))? {
        Some(batch) => {
            if decoder.needs_line_check(&batch) {
                decoder.check_line(line, &batch)?;
            }
            Ok(batch)
        }
        None => Err("no record on the line".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_arrow_line_numbers() {
        assert_eq!(
            strip_line_reference(
                "Error while parsing value 'x' for column 1 at line 0. Row data: '[x]'"
            ),
            "Error while parsing value 'x' for column 1. Row data: '[x]'"
        );
        assert_eq!(
            strip_line_reference("incorrect number of fields for line 3, expected 2 got 1"),
            "incorrect number of fields, expected 2 got 1"
        );
        assert_eq!(strip_line_reference("no line here"), "no line here");
    }
}
