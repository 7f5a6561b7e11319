//! Line-delimited input decoded on several threads and delivered in input order.
//!
//! Decoding JSON is most of a file source's work, and one file is one source partition
//! (its rows must come in file order, since lateness is decided per partition). So the file
//! is cut into chunks of whole lines by a reading thread, the chunks are decoded by a few
//! worker threads, each with its own [`LineReader`], and the batches are handed out in the
//! order of the chunks. At most a few chunks are in flight, so memory stays bounded, and
//! their buffers go back to the reading thread to be filled again rather than freed (a
//! buffer of megabytes allocated afresh per chunk costs its page faults every time). Line
//! numbers in errors stay those of the file: each chunk knows how many lines precede it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use crossbeam_channel::{bounded, Receiver, Sender};

use super::lines::{LineReader, ReadError, RecordDecoder};

/// What a worker made of one chunk.
struct Decoded {
    result: Result<Vec<RecordBatch>, ReadError>,
    bytes: u64,
    dropped: u64,
}

/// A chunk of whole lines to decode, and where to send the result.
struct Job {
    data: Vec<u8>,
    lines_before: u64,
    reply: Sender<Decoded>,
}

/// How a [`ParallelLineReader`] decodes.
#[derive(Clone)]
pub struct ParallelOptions {
    pub schema: SchemaRef,
    pub batch_size: usize,
    pub ignore_parse_errors: bool,
    /// Bytes per chunk (whole lines are added to reach a line end).
    pub chunk_bytes: usize,
    /// What the input is, for the warning said for a skipped line.
    pub label: Option<Arc<str>>,
}

/// Reads batches of records from line-delimited input, decoding on `decoders.len()`
/// threads.
pub struct ParallelLineReader {
    /// One receiver per chunk, in input order.
    chunks: Receiver<Receiver<Decoded>>,
    ready: VecDeque<RecordBatch>,
    bytes_read: u64,
    dropped: u64,
    threads: Vec<JoinHandle<()>>,
}

impl ParallelLineReader {
    pub fn new<R: Read + Send + 'static>(
        input: R,
        decoders: Vec<Box<dyn RecordDecoder>>,
        options: ParallelOptions,
    ) -> Self {
        let workers = decoders.len().max(1);
        let (order_tx, chunks) = bounded::<Receiver<Decoded>>(workers + 1);
        let (job_tx, job_rx) = bounded::<Job>(workers);
        // Every buffer in flight can come back: the one being filled, the queued jobs, the
        // ones being decoded.
        let (pool_tx, pool_rx) = bounded::<Vec<u8>>(2 * workers + 1);
        let mut threads = Vec::new();
        let chunk_bytes = options.chunk_bytes.max(1);
        threads.push(std::thread::spawn(move || {
            split(input, chunk_bytes, &order_tx, &job_tx, &pool_rx)
        }));
        let options = Arc::new(options);
        for decoder in decoders {
            let (jobs, options, pool) = (job_rx.clone(), Arc::clone(&options), pool_tx.clone());
            threads.push(std::thread::spawn(move || {
                decode(decoder, &jobs, &options, &pool)
            }));
        }
        Self {
            chunks,
            ready: VecDeque::new(),
            bytes_read: 0,
            dropped: 0,
            threads,
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

    /// The next batch in input order, or `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>, ReadError> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            let Ok(chunk) = self.chunks.recv() else {
                // The reading thread is done and every chunk was delivered.
                return Ok(None);
            };
            let decoded = chunk.recv().map_err(|_| {
                ReadError::Io(std::io::Error::other(
                    "a decoding thread stopped unexpectedly",
                ))
            })?;
            self.bytes_read += decoded.bytes;
            self.dropped += decoded.dropped;
            self.ready.extend(decoded.result?);
        }
    }
}

impl Drop for ParallelLineReader {
    fn drop(&mut self) {
        // Closing the chunk queue stops the reading thread, which stops the workers.
        let (_, closed) = bounded(0);
        self.chunks = closed;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The reading thread: cuts the input into chunks of whole lines.
fn split<R: Read>(
    input: R,
    chunk_bytes: usize,
    order: &Sender<Receiver<Decoded>>,
    jobs: &Sender<Job>,
    pool: &Receiver<Vec<u8>>,
) {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let mut lines_before = 0u64;
    loop {
        let mut data = pool.try_recv().unwrap_or_default();
        data.reserve(chunk_bytes + 4096);
        let read = (&mut input)
            .take(chunk_bytes as u64)
            .read_to_end(&mut data)
            .and_then(|_| {
                if data.last().is_some_and(|&b| b != b'\n') {
                    input.read_until(b'\n', &mut data)?;
                }
                Ok(())
            });
        let (reply, result) = bounded(1);
        if order.send(result).is_err() {
            return;
        }
        if let Err(e) = read {
            let _ = reply.send(Decoded {
                result: Err(ReadError::Io(e)),
                bytes: 0,
                dropped: 0,
            });
            return;
        }
        if data.is_empty() {
            // The end: an empty chunk decodes to nothing and closes the order queue.
            let _ = reply.send(Decoded {
                result: Ok(Vec::new()),
                bytes: 0,
                dropped: 0,
            });
            return;
        }
        let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
        if jobs
            .send(Job {
                data,
                lines_before,
                reply,
            })
            .is_err()
        {
            return;
        }
        lines_before += lines;
    }
}

/// A worker: decodes chunks with its own decoder until the jobs run out, and hands each
/// chunk's buffer back to the reading thread.
fn decode(
    mut decoder: Box<dyn RecordDecoder>,
    jobs: &Receiver<Job>,
    options: &ParallelOptions,
    pool: &Sender<Vec<u8>>,
) {
    for job in jobs {
        let mut reader = LineReader::over_bytes(
            job.data,
            decoder,
            Arc::clone(&options.schema),
            options.batch_size,
            options.ignore_parse_errors,
        )
        .after_lines(job.lines_before)
        .labelled(options.label.clone());
        let mut batches = Vec::new();
        let result = loop {
            match reader.next_batch() {
                Ok(Some(batch)) => batches.push(batch),
                Ok(None) => break Ok(batches),
                Err(e) => break Err(e),
            }
        };
        let (bytes, dropped) = (reader.take_bytes_read(), reader.take_dropped());
        let failed = result.is_err();
        let _ = job.reply.send(Decoded {
            result,
            bytes,
            dropped,
        });
        let (back, buffer) = reader.into_parts();
        let _ = pool.try_send(buffer);
        match back {
            Ok(d) if !failed => decoder = d,
            // After a failure the job ends; nothing more is decoded.
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::format::json::{JsonDecoder, JsonOptions};

    fn reader(text: String, ignore: bool, chunk_bytes: usize) -> ParallelLineReader {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let options = JsonOptions {
            ignore_parse_errors: ignore,
            ..JsonOptions::default()
        };
        let decoders = (0..3)
            .map(|_| {
                Box::new(JsonDecoder::new(Arc::clone(&schema), 7, &options).unwrap())
                    as Box<dyn RecordDecoder>
            })
            .collect();
        let options = ParallelOptions {
            schema,
            batch_size: 7,
            ignore_parse_errors: ignore,
            chunk_bytes,
            label: None,
        };
        ParallelLineReader::new(Cursor::new(text.into_bytes()), decoders, options)
    }

    fn numbers(reader: &mut ParallelLineReader) -> Result<Vec<i64>, ReadError> {
        let mut out = Vec::new();
        while let Some(batch) = reader.next_batch()? {
            out.extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
        }
        Ok(out)
    }

    #[test]
    fn many_small_chunks_come_back_in_input_order() {
        let text: String = (0..1000).map(|n| format!("{{\"n\": {n}}}\n")).collect();
        let mut r = reader(text.clone(), false, 50);
        assert_eq!(numbers(&mut r).unwrap(), (0..1000).collect::<Vec<_>>());
        assert_eq!(r.take_bytes_read(), text.len() as u64);
    }

    #[test]
    fn a_malformed_line_is_named_by_its_line_in_the_whole_input() {
        let mut text: String = (0..300).map(|n| format!("{{\"n\": {n}}}\n")).collect();
        text.push_str("{\"n\": oops}\n");
        text.push_str("{\"n\": 1}\n");
        match numbers(&mut reader(text.clone(), false, 64)) {
            Err(ReadError::Malformed { line, .. }) => assert_eq!(line, 301),
            other => panic!(
                "expected a malformed line, got {:?}",
                other.map(|v| v.len())
            ),
        }
        let mut r = reader(text, true, 64);
        assert_eq!(numbers(&mut r).unwrap().len(), 301);
        assert_eq!(r.take_dropped(), 1);
    }

    #[test]
    fn a_last_line_without_newline_and_an_empty_input() {
        assert_eq!(
            numbers(&mut reader("{\"n\": 1}\n{\"n\": 2}".into(), false, 4)).unwrap(),
            vec![1, 2]
        );
        assert!(numbers(&mut reader(String::new(), false, 4))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn dropping_the_reader_early_stops_its_threads() {
        let text: String = (0..10_000).map(|n| format!("{{\"n\": {n}}}\n")).collect();
        let mut r = reader(text, false, 100);
        assert!(r.next_batch().unwrap().is_some());
        drop(r); // must return: the threads notice and end
    }
}
