//! Line-delimited input (newline-delimited JSON, CSV) decoded in large chunks.
//!
//! The fast path hands whole chunks of complete lines to Arrow's vectorised decoder and never
//! looks at individual lines. Only when a chunk fails (a malformed line, or a check the
//! decoder cannot make itself, such as a missing JSON field) is that chunk taken apart to find
//! the bad lines, name them by their 1-based line number in the input, and skip them when
//! parse errors are ignored. Clean input therefore pays nothing for error handling, and a
//! chunk with a few bad lines still decodes mostly in bulk:
//!
//! - when the decoder says which record broke (JSON syntax errors), that record's line is
//!   checked alone; the lines before it are decoded in bulk and decoding resumes after it;
//! - otherwise (a value of the wrong type, found only when a batch is built) the chunk is
//!   split into parts, and failing parts again, until the bad lines stand alone;
//! - rows that must be checked one by one (missing JSON fields) are decoded line by line.

use std::io::Read;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// Bytes read from the input at a time: large enough that a chunk holds many batches.
const READ_BLOCK: u64 = 4 << 20;

/// How many parts a failing region is split into. Many parts isolate a few bad lines in
/// few rounds (about 2.5 decodes of the region for 8 bad lines in 8192, against 6 when
/// halving); each part costs a few microseconds of overhead.
const SPLIT_PARTS: usize = 16;

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
    /// The rows of a decoded batch that must still be checked with
    /// [`RecordDecoder::check_line`], or `None` when no row needs it. (JSON with
    /// `fail-on-missing-field`: the rows with NULLs, which may hide a missing field.)
    fn rows_to_check(&self, _batch: &RecordBatch) -> Option<Vec<bool>> {
        None
    }
    /// Checks the line of a row picked by `rows_to_check`; an `Err` makes it malformed.
    fn check_line(&self, _line: &[u8]) -> Result<(), String> {
        Ok(())
    }
    /// After `decode` failed: the record it failed in, counted from 1 since the last flush
    /// or reset, when the decoder knows it.
    fn failed_record(&self) -> Option<usize> {
        None
    }
}

/// How the fast path went.
enum Chunk {
    Batch(RecordBatch),
    /// The input is exhausted.
    End,
    /// The chunk must be taken apart.
    Failed,
}

/// How a bulk attempt at a region of lines went.
enum Attempt {
    /// Every line decoded; the batches were appended.
    Decoded,
    /// Decoding failed in this record (counted from 1 in the region).
    FailedInRecord(usize),
    /// Decoding failed somewhere.
    Failed,
    /// The rows decoded, but some must be checked line by line.
    NeedsLineCheck,
}

/// One line of the buffer.
struct Line {
    start: usize,
    end: usize,
    /// 1-based line number in the input.
    number: u64,
    /// Only whitespace: skipped, never a record.
    blank: bool,
}

/// The lines of `buf[pos..to]`, where `pos` follows line `number`.
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
    to: usize,
    number: u64,
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.pos >= self.to {
            return None;
        }
        let start = self.pos;
        let end =
            memchr::memchr(b'\n', &self.buf[start..self.to]).map_or(self.to, |i| start + i + 1);
        self.pos = end;
        self.number += 1;
        let blank = self.buf[start..end].iter().all(u8::is_ascii_whitespace);
        Some(Line {
            start,
            end,
            number: self.number,
            blank,
        })
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
    /// The decoder failed and holds partial state; it is rebuilt before its next use
    /// (only then, since rebuilding costs allocations).
    decoder_dirty: bool,
    /// Newlines before `buf[counted_to]` (the input's before the buffer included). Lines
    /// are counted only when a line number is needed, for a malformed line: not on the
    /// fast path.
    counted_lines: u64,
    counted_to: usize,
    bytes_read: u64,
    dropped: u64,
    /// What the input is (`table 'tx': file a.json`), for the message of a skipped line.
    label: Option<std::sync::Arc<str>>,
}

impl LineReader<std::io::Empty> {
    /// A reader of `data`, held in memory whole: its bytes become the reader's buffer, so
    /// they are not copied again.
    pub fn over_bytes(
        data: Vec<u8>,
        decoder: Box<dyn RecordDecoder>,
        schema: SchemaRef,
        batch_size: usize,
        ignore_parse_errors: bool,
    ) -> Self {
        let mut reader = Self::new(
            std::io::empty(),
            decoder,
            schema,
            batch_size,
            ignore_parse_errors,
        );
        reader.bytes_read = data.len() as u64;
        reader.buf = data;
        reader
    }
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
            decoder_dirty: false,
            counted_lines: 0,
            counted_to: 0,
            bytes_read: 0,
            dropped: 0,
            label: None,
        }
    }

    /// Names the input in the warning said for a skipped line.
    pub fn labelled(mut self, label: Option<std::sync::Arc<str>>) -> Self {
        self.label = label;
        self
    }

    /// Numbers lines as if `lines` lines came before the input (a chunk of a larger file).
    pub fn after_lines(mut self, lines: u64) -> Self {
        self.counted_lines = lines;
        self
    }

    /// Gives the decoder back, clean, for the next input.
    pub fn into_decoder(mut self) -> Result<Box<dyn RecordDecoder>, ArrowError> {
        self.decoder_dirty = true;
        self.clean_decoder()?;
        Ok(self.decoder)
    }

    /// Gives the decoder back, clean, and the buffer (emptied), for the next input.
    pub fn into_parts(mut self) -> (Result<Box<dyn RecordDecoder>, ArrowError>, Vec<u8>) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        (self.into_decoder(), buf)
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
            match self.decode_chunk()? {
                Chunk::Batch(batch) => return Ok(Some(batch)),
                Chunk::End => return Ok(None),
                Chunk::Failed => {}
            }
            // The fast path failed somewhere in the next batch of lines: take them apart.
            let end = memchr::memchr_iter(b'\n', &self.buf[self.start..self.complete])
                .nth(self.batch_size - 1)
                .map_or(self.complete, |i| self.start + i + 1);
            if end == self.start {
                return Err(ReadError::Decoder(ArrowError::ComputeError(
                    "the decoder failed on no input".into(),
                )));
            }
            let mut batches = Vec::new();
            let line = self.lines_before_start();
            self.decode_region(self.start, end, line, &mut batches)?;
            self.clean_decoder().map_err(ReadError::Decoder)?;
            self.advance_start(end);
            if !batches.is_empty() {
                return concat_batches(&self.schema, &batches)
                    .map(Some)
                    .map_err(ReadError::Decoder);
            }
        }
    }

    /// The fast path: decodes the next batch of lines in bulk.
    fn decode_chunk(&mut self) -> Result<Chunk, ReadError> {
        let outcome = self.try_chunk();
        if let Ok(Chunk::Failed) = outcome {
            self.decoder_dirty = true;
        }
        outcome
    }

    fn try_chunk(&mut self) -> Result<Chunk, ReadError> {
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
                Ok(0) if self.decoder.buffered_rows() < self.batch_size => {
                    return Ok(Chunk::Failed)
                }
                Ok(consumed) => self.cursor += consumed,
                Err(_) => return Ok(Chunk::Failed),
            }
            if self.decoder.buffered_rows() >= self.batch_size {
                break;
            }
        }
        match self.decoder.flush() {
            Ok(None) => Ok(Chunk::End),
            Ok(Some(batch)) if self.decoder.rows_to_check(&batch).is_none() => {
                self.advance_start(self.cursor);
                Ok(Chunk::Batch(batch))
            }
            Ok(Some(_)) | Err(_) => Ok(Chunk::Failed),
        }
    }

    /// Decodes the complete lines `buf[from..to]`, after `line` lines of input, into `out`,
    /// finding and handling the malformed ones.
    fn decode_region(
        &mut self,
        mut from: usize,
        to: usize,
        mut line: u64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), ReadError> {
        while from < to {
            match self.attempt(from, to, out, true)? {
                Attempt::Decoded => return Ok(()),
                Attempt::NeedsLineCheck => return self.decode_checked(from, to, line, out),
                Attempt::Failed => return self.split(from, to, line, out),
                Attempt::FailedInRecord(record) => {
                    let Some(bad) = self.record_line(from, to, line, record) else {
                        return self.split(from, to, line, out);
                    };
                    // Trust the decoder's count only if that line really fails alone.
                    let Err(reason) = self.decode_alone(&bad) else {
                        return self.split(from, to, line, out);
                    };
                    self.decode_region(from, bad.start, line, out)?;
                    self.malformed(bad.number, reason)?;
                    from = bad.end;
                    line = bad.number;
                }
            }
        }
        Ok(())
    }

    /// Decodes `buf[from..to]` in bulk; appends the batches only if all of it decoded (and,
    /// when `checked`, no row needs a line check).
    fn attempt(
        &mut self,
        from: usize,
        to: usize,
        out: &mut Vec<RecordBatch>,
        checked: bool,
    ) -> Result<Attempt, ReadError> {
        self.clean_decoder().map_err(ReadError::Decoder)?;
        let attempt = self.try_attempt(from, to, out, checked);
        if !matches!(attempt, Ok(Attempt::Decoded)) {
            self.decoder_dirty = true;
        }
        attempt
    }

    fn try_attempt(
        &mut self,
        from: usize,
        to: usize,
        out: &mut Vec<RecordBatch>,
        checked: bool,
    ) -> Result<Attempt, ReadError> {
        let mut batches = Vec::new();
        let mut flushed_rows = 0;
        let mut pos = from;
        loop {
            if pos < to {
                match self.decoder.decode(&self.buf[pos..to]) {
                    Ok(consumed) => pos += consumed,
                    Err(_) => {
                        return Ok(match self.decoder.failed_record() {
                            Some(record) => Attempt::FailedInRecord(flushed_rows + record),
                            None => Attempt::Failed,
                        })
                    }
                }
            }
            let full = self.decoder.buffered_rows() >= self.batch_size;
            if !full && pos < to {
                // The decoder stopped without a reason.
                return Ok(Attempt::Failed);
            }
            match self.decoder.flush() {
                Ok(Some(batch)) if checked && self.decoder.rows_to_check(&batch).is_some() => {
                    return Ok(Attempt::NeedsLineCheck)
                }
                Ok(Some(batch)) => {
                    flushed_rows += batch.num_rows();
                    batches.push(batch);
                }
                Ok(None) => {}
                Err(_) => return Ok(Attempt::Failed),
            }
            if pos >= to {
                out.append(&mut batches);
                return Ok(Attempt::Decoded);
            }
        }
    }

    /// Splits `buf[from..to]` at line breaks into up to [`SPLIT_PARTS`] parts and decodes
    /// each; a single line is decoded alone.
    fn split(
        &mut self,
        from: usize,
        to: usize,
        line: u64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), ReadError> {
        // Each part runs for at least `step` bytes, to the end of the line it reaches.
        let step = ((to - from) / SPLIT_PARTS).max(1);
        let mut ends = Vec::with_capacity(SPLIT_PARTS + 1);
        let mut pos = from;
        while pos < to {
            let last = (pos + step).min(to) - 1;
            let end = memchr::memchr(b'\n', &self.buf[last..to]).map_or(to, |i| last + i + 1);
            ends.push(end);
            pos = end;
        }
        if ends.len() == 1 {
            let Some(single) = self.lines(from, to, line).next().filter(|l| !l.blank) else {
                return Ok(());
            };
            match self.decode_alone(&single) {
                Ok(batch) => out.push(batch),
                Err(reason) => self.malformed(single.number, reason)?,
            }
            return Ok(());
        }
        let (mut start, mut line) = (from, line);
        for end in ends {
            self.decode_region(start, end, line, out)?;
            line += memchr::memchr_iter(b'\n', &self.buf[start..end]).count() as u64;
            start = end;
        }
        Ok(())
    }

    /// Decodes `buf[from..to]` in bulk, then checks alone only the lines of the rows that
    /// need it, dropping the rows whose lines fail.
    fn decode_checked(
        &mut self,
        from: usize,
        to: usize,
        line: u64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), ReadError> {
        let lines: Vec<Line> = self.lines(from, to, line).filter(|l| !l.blank).collect();
        let mut batches = Vec::new();
        let decoded = self.attempt(from, to, &mut batches, false)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if !matches!(decoded, Attempt::Decoded) || rows != lines.len() {
            // Not one record per line: rows cannot be matched with lines in bulk.
            return self.decode_lines(from, to, line, out);
        }
        let mut lines = lines.into_iter();
        for batch in batches {
            let suspects = self.decoder.rows_to_check(&batch);
            let mut keep = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let Some(line) = lines.next() else {
                    return Err(ReadError::Decoder(ArrowError::ComputeError(
                        "more rows than lines".into(),
                    )));
                };
                let suspect = suspects.as_ref().is_some_and(|s| s[row]);
                let good = match suspect {
                    false => Ok(()),
                    true => self.decoder.check_line(&self.buf[line.start..line.end]),
                };
                if let Err(reason) = &good {
                    self.malformed(line.number, reason.clone())?;
                }
                keep.push(good.is_ok());
            }
            if keep.iter().all(|k| *k) {
                out.push(batch);
            } else {
                let keep = BooleanArray::from(keep);
                out.push(filter_record_batch(&batch, &keep).map_err(ReadError::Decoder)?);
            }
        }
        Ok(())
    }

    /// Decodes every line of `buf[from..to]` alone.
    fn decode_lines(
        &mut self,
        from: usize,
        to: usize,
        line: u64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), ReadError> {
        let lines: Vec<Line> = self.lines(from, to, line).filter(|l| !l.blank).collect();
        for line in lines {
            match self.decode_alone(&line) {
                Ok(batch) => out.push(batch),
                Err(reason) => self.malformed(line.number, reason)?,
            }
        }
        Ok(())
    }

    /// The line holding the `record`-th record of `buf[from..to]`, assuming one record per
    /// non-blank line.
    fn record_line(&self, from: usize, to: usize, line: u64, record: usize) -> Option<Line> {
        self.lines(from, to, line)
            .filter(|l| !l.blank)
            .nth(record.checked_sub(1)?)
    }

    fn lines(&self, from: usize, to: usize, line: u64) -> Lines<'_> {
        Lines {
            buf: &self.buf,
            pos: from,
            to,
            number: line,
        }
    }

    fn decode_alone(&mut self, line: &Line) -> Result<RecordBatch, String> {
        self.clean_decoder().map_err(|e| error_reason(&e))?;
        let decoded = decode_line(self.decoder.as_mut(), &self.buf[line.start..line.end]);
        self.decoder_dirty = decoded.is_err();
        decoded
    }

    fn clean_decoder(&mut self) -> Result<(), ArrowError> {
        if self.decoder_dirty {
            self.decoder.reset()?;
            self.decoder_dirty = false;
        }
        Ok(())
    }

    /// Skips and counts a malformed line, or fails on it when errors are not ignored.
    fn malformed(&mut self, line: u64, reason: String) -> Result<(), ReadError> {
        if !self.ignore_parse_errors {
            return Err(ReadError::Malformed { line, reason });
        }
        self.dropped += 1;
        let label = self.label.as_deref().unwrap_or("input");
        sluice_engine::warn_limited!("{label}:{line}: {reason} (dropped: malformed)");
        Ok(())
    }

    fn advance_start(&mut self, to: usize) {
        self.start = to;
        self.cursor = to;
    }

    /// Newlines before `start`: the line number of the line before it.
    fn lines_before_start(&mut self) -> u64 {
        self.counted_lines +=
            memchr::memchr_iter(b'\n', &self.buf[self.counted_to..self.start]).count() as u64;
        self.counted_to = self.start;
        self.counted_lines
    }

    /// Drops the bytes before `start` and reads the next block.
    fn refill(&mut self) -> Result<(), ReadError> {
        if self.start > 0 {
            self.lines_before_start();
            self.counted_to = 0;
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
            if decoder.rows_to_check(&batch).is_some() {
                decoder.check_line(line)?;
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
