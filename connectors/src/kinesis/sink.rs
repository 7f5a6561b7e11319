//! The Kinesis sink: rows encoded one record each and sent with PutRecords.
//!
//! The writer encodes rows on the engine's thread and hands them to a flusher task on the
//! AWS runtime. The flusher packs calls of at most `sink.batch.max-size` records and
//! `sink.flush-buffer.size` bytes, sends a partial call after `sink.flush-buffer.timeout`,
//! keeps up to `sink.requests.max-inflight` calls under way, and retries: a whole call that
//! failed (throttled, 5xx, dropped connection) with backoff, forever; records a successful
//! call reports as failed by putting them back at the front of the buffer, with backoff.
//! When the partition key comes from `PARTITIONED BY` columns, the order of each key's
//! records is kept, retries included: Kinesis may reject one record of a call and accept the
//! next, so a call carries at most one record per key, and a key's next record is sent only
//! once the call with its previous one has succeeded. With the `random` and `fixed`
//! partitioners no order is promised, as in Flink, and calls are filled freely.
//!
//! Delivery is at-least-once: a call whose response was lost is sent again.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use rand::Rng;
use sluice_engine::connector::{Options, SinkConnector, SinkContext, SinkWriter, TableSpec};
use sluice_engine::metrics::{DropReason, SinkMetrics};
use sluice_engine::{Error, Result};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::{KinesisSinkConfig, Partitioner, PayloadFormat, StreamRef, MAX_RECORD_BYTES};
use super::shards::stream_error;
use crate::aws::{retry, runtime, sdk_config, CountsRetries, Failure};
use crate::bad_records::BadRecords;
use crate::format::csv::CsvLineEncoder;
use crate::format::json::JsonLineEncoder;
use crate::format::Format;
use crate::sink_bridge::{Bridge, ToTask};

/// Flink's limit on a partition key built from columns (and Kinesis's).
const MAX_KEY_CHARS: usize = 256;

/// A Kinesis table used as a sink.
pub struct KinesisSink {
    table: Arc<SinkTable>,
}

struct SinkTable {
    name: String,
    config: KinesisSinkConfig,
    schema: SchemaRef,
}

impl KinesisSink {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        let columns = spec
            .partition_by
            .iter()
            .map(|c| {
                spec.schema.index_of(c).map_err(|_| {
                    Error::config(format!(
                        "table '{}': PARTITIONED BY column '{}' is not a column",
                        spec.name, c
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let config = KinesisSinkConfig::take(options, columns)?;
        if let PayloadFormat::Raw = config.format {
            let ok = spec.schema.fields().len() == 1
                && matches!(
                    spec.schema.field(0).data_type(),
                    DataType::Utf8 | DataType::Binary
                );
            if !ok {
                return Err(Error::config(format!(
                    "table '{}': the raw format needs exactly one column, of type STRING or BYTES",
                    spec.name
                )));
            }
        }
        Ok(Self {
            table: Arc::new(SinkTable {
                name: spec.name,
                config,
                schema: spec.schema,
            }),
        })
    }
}

impl SinkConnector for KinesisSink {
    fn describe(&self) -> String {
        let c = &self.table.config;
        format!("kinesis {} {}", c.stream.name(), c.format.name())
    }

    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter>> {
        let table = Arc::clone(&self.table);
        let client = runtime().block_on(async {
            let sdk = sdk_config(&format!("table '{}'", table.name), &table.config.aws).await?;
            let client = Client::new(&sdk);
            check_stream(&client, &table).await?;
            Ok::<_, Error>(client)
        })?;
        let flusher = Flusher {
            table: Arc::clone(&table),
            client,
            metrics: ctx.metrics.sink(&table.name),
        };
        // A record over Kinesis's size limit stops the job unless it has somewhere to go.
        let oversized = BadRecords::new(
            table.name.clone(),
            DropReason::Rejected,
            true,
            Arc::clone(&ctx.metrics),
        )
        .with_dead_letter("sink.dead-letter.path", table.config.dead_letter.as_deref())?;
        Ok(Box::new(KinesisWriter {
            encoder: Encoder::new(&table.config.format, &table.schema),
            fixed_key: ctx.instance.to_string(),
            bridge: Bridge::spawn(
                format!("table '{}': the Kinesis writer", table.name),
                |rx| flusher.run(rx),
            ),
            table,
            oversized,
        }))
    }
}

/// Fails when the stream is missing, before any row is encoded.
async fn check_stream(client: &Client, table: &SinkTable) -> Result<()> {
    let stream = &table.config.stream;
    let what = format!("table '{}': DescribeStreamSummary", table.name);
    retry(&what, None, || {
        let call = client.describe_stream_summary();
        let call = match stream {
            StreamRef::Name(n) => call.stream_name(n),
            StreamRef::Arn(a) => call.stream_arn(a),
        };
        async move { call.send().await.map_err(|e| Failure::of(&e)) }
    })
    .await
    .map(|_| ())
    .map_err(|f| stream_error(&table.name, stream, "DescribeStreamSummary", &f))
}

/// Rows into payloads.
enum Encoder {
    Json(JsonLineEncoder),
    Csv(CsvLineEncoder),
    Raw,
}

impl Encoder {
    fn new(format: &PayloadFormat, schema: &SchemaRef) -> Self {
        match format {
            PayloadFormat::Text(Format::Json(o)) => {
                Encoder::Json(JsonLineEncoder::new(schema, o.timestamp_standard))
            }
            PayloadFormat::Text(Format::Csv(o)) => Encoder::Csv(CsvLineEncoder::new(o)),
            PayloadFormat::Text(Format::Parquet(_)) | PayloadFormat::Raw => Encoder::Raw,
        }
    }

    /// One payload per row.
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let lines = |out: &Vec<u8>| -> Vec<Vec<u8>> {
            out.split(|&b| b == b'\n')
                .take(batch.num_rows())
                .map(<[u8]>::to_vec)
                .collect()
        };
        match self {
            // JSON escapes line breaks inside values, so every line is one row.
            Encoder::Json(e) => {
                e.encode(batch, &mut out).map_err(encode_error)?;
                Ok(lines(&out))
            }
            // A CSV value may hold a quoted line break: encode row by row.
            Encoder::Csv(e) => (0..batch.num_rows())
                .map(|row| {
                    out.clear();
                    e.encode(&batch.slice(row, 1), &mut out)
                        .map_err(encode_error)?;
                    while out.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                        out.pop();
                    }
                    Ok(out.clone())
                })
                .collect(),
            Encoder::Raw => {
                let column = batch.column(0);
                Ok((0..batch.num_rows())
                    .map(|row| {
                        if column.is_null(row) {
                            Vec::new()
                        } else if let Some(b) = column.as_binary_opt::<i32>() {
                            b.value(row).to_vec()
                        } else {
                            column.as_string::<i32>().value(row).as_bytes().to_vec()
                        }
                    })
                    .collect())
            }
        }
    }
}

fn encode_error(e: arrow::error::ArrowError) -> Error {
    Error::internal(format!("encoding a record for Kinesis: {e}"))
}

/// A record on its way to the stream.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    data: Vec<u8>,
    /// Times Kinesis rejected it so far.
    rejections: u32,
    /// After a rejection: not sent again before this instant (backoff).
    not_before: Option<Instant>,
}

impl Entry {
    fn size(&self) -> u64 {
        (self.key.len() + self.data.len()) as u64
    }
}

/// One parallel instance of a Kinesis sink.
struct KinesisWriter {
    table: Arc<SinkTable>,
    encoder: Encoder,
    fixed_key: String,
    bridge: Bridge<Entry>,
    /// Records over 1 MiB: dead-lettered, or the job stops.
    oversized: BadRecords,
}

impl KinesisWriter {
    fn keys(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let rows = batch.num_rows();
        match &self.table.config.partitioner {
            Partitioner::Random => {
                let mut rng = rand::rng();
                Ok((0..rows)
                    .map(|_| format!("{:032x}", rng.random::<u128>()))
                    .collect())
            }
            Partitioner::Fixed => Ok(vec![self.fixed_key.clone(); rows]),
            Partitioner::Columns(columns) => {
                let options = FormatOptions::default().with_null("null");
                let formatters = columns
                    .iter()
                    .map(|&c| ArrayFormatter::try_new(batch.column(c).as_ref(), &options))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(encode_error)?;
                Ok((0..rows)
                    .map(|row| {
                        let key = formatters
                            .iter()
                            .map(|f| f.value(row).to_string())
                            .collect::<Vec<_>>()
                            .join("|");
                        let key: String = key.chars().take(MAX_KEY_CHARS).collect();
                        // Kinesis rejects an empty key.
                        if key.is_empty() {
                            "null".into()
                        } else {
                            key
                        }
                    })
                    .collect())
            }
        }
    }
}

impl SinkWriter for KinesisWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let payloads = self.encoder.encode(batch)?;
        let keys = self.keys(batch)?;
        let mut entries = Vec::with_capacity(payloads.len());
        for (data, key) in payloads.into_iter().zip(keys) {
            let entry = Entry {
                key,
                data,
                rejections: 0,
                not_before: None,
            };
            if entry.size() as usize > MAX_RECORD_BYTES {
                let what = format!("a record of {} bytes", entry.size());
                let reason = "its payload and partition key are more than Kinesis's limit of 1 MiB";
                let record = serde_json::json!({
                    "partition_key": entry.key,
                    "data": String::from_utf8_lossy(&entry.data),
                });
                self.oversized.reject(&what, reason, Some(&record))?;
                continue;
            }
            entries.push(entry);
        }
        self.bridge.send(entries)
    }

    /// A checkpoint: at-least-once, so everything written so far must be in the stream
    /// before the checkpoint completes (a restore replays only what came after it).
    fn prepare_commit(&mut self) -> Result<Vec<u8>> {
        self.oversized.flush()?;
        self.bridge.flush()?;
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<()> {
        self.oversized.flush()?;
        self.bridge.finish()
    }
}

/// What one PutRecords call came back with.
struct Outcome {
    keys: Vec<String>,
    /// The records Kinesis rejected, in order, with the first error.
    failed: Vec<Entry>,
    first_error: Option<String>,
    /// Some record was refused for the shard's write limit (a throttle, not an error).
    throttled: bool,
}

/// Sends the buffered records.
struct Flusher {
    table: Arc<SinkTable>,
    client: Client,
    metrics: Arc<SinkMetrics>,
}

impl Flusher {
    async fn run(self, mut rx: mpsc::Receiver<ToTask<Entry>>) -> Result<()> {
        let config = &self.table.config;
        let mut buffer: VecDeque<Entry> = VecDeque::new();
        let mut buffered_bytes = 0u64;
        let mut oldest: Option<Instant> = None;
        let mut inflight: JoinSet<Result<Outcome>> = JoinSet::new();
        let mut busy_keys: HashSet<String> = HashSet::new();
        let mut closed = false;
        // Checkpoints waiting for everything before them to be accepted.
        let mut flushes: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
        // Rejected records waiting in the buffer for their backoff to pass.
        let mut retrying = 0usize;
        let ordered = matches!(config.partitioner, Partitioner::Columns(_));
        loop {
            let now = Instant::now();
            // A partial call goes out after the flush timeout, at the end, or when rejected
            // records wait (they must not wait for a full call as well as their backoff).
            let due = closed
                || retrying > 0
                || !flushes.is_empty()
                || oldest.is_some_and(|t| now >= t + config.flush_timeout);
            while inflight.len() < config.max_inflight && !buffer.is_empty() {
                let full = buffer.len() >= config.batch_max_records
                    || buffered_bytes >= config.batch_max_bytes;
                if !(full || due) {
                    break;
                }
                let batch = take_batch(
                    &mut buffer,
                    &busy_keys,
                    Limits {
                        records: config.batch_max_records,
                        bytes: config.batch_max_bytes,
                        ordered,
                        now,
                    },
                );
                if batch.is_empty() {
                    break; // every buffered record waits for its key or its backoff
                }
                buffered_bytes -= batch.iter().map(Entry::size).sum::<u64>();
                retrying -= batch.iter().filter(|e| e.not_before.is_some()).count();
                if ordered {
                    busy_keys.extend(batch.iter().map(|e| e.key.clone()));
                }
                let (client, table, metrics) = (
                    self.client.clone(),
                    Arc::clone(&self.table),
                    Arc::clone(&self.metrics),
                );
                inflight.spawn(put_records(client, table, metrics, batch));
            }
            if buffer.is_empty() {
                oldest = None;
            }
            if buffer.is_empty() && inflight.is_empty() {
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
                if closed {
                    return Ok(());
                }
            }
            let next_retry = if retrying > 0 {
                buffer.iter().filter_map(|e| e.not_before).min()
            } else {
                None
            };
            let wake_at = match (next_retry, oldest) {
                (Some(r), Some(o)) => Some(r.min(o + config.flush_timeout)),
                (Some(r), None) => Some(r),
                (None, Some(o)) => Some(o + config.flush_timeout),
                (None, None) => None,
            };
            tokio::select! {
                received = rx.recv(), if !closed => match received {
                    Some(ToTask::Items(entries)) => {
                        oldest.get_or_insert_with(Instant::now);
                        buffered_bytes += entries.iter().map(Entry::size).sum::<u64>();
                        buffer.extend(entries);
                    }
                    Some(ToTask::Flush(done)) => flushes.push(done),
                    None => closed = true,
                },
                Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                    let outcome = done.map_err(|e| {
                        Error::internal(format!("a PutRecords call failed to run: {e}"))
                    })??;
                    for key in &outcome.keys {
                        busy_keys.remove(key);
                    }
                    if outcome.failed.is_empty() {
                        continue;
                    }
                    let first = outcome.first_error.unwrap_or_default();
                    if config.fail_on_error {
                        return Err(Error::connector(format!(
                            "table '{}': Kinesis rejected {} records ({first}) and \
                             'sink.fail-on-error' is true",
                            self.table.name,
                            outcome.failed.len()
                        )));
                    }
                    self.metrics.count_retry(outcome.throttled);
                    // Back at the front, in their order: they go before anything of
                    // their keys that came later.
                    buffered_bytes += outcome.failed.iter().map(Entry::size).sum::<u64>();
                    retrying += outcome.failed.len();
                    let now = Instant::now();
                    for mut entry in outcome.failed.into_iter().rev() {
                        entry.rejections += 1;
                        entry.not_before = Some(now + rejection_delay(entry.rejections));
                        buffer.push_front(entry);
                    }
                    oldest.get_or_insert(now);
                },
                _ = sleep_until_opt(wake_at) => {}
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The pause before re-sending rejected records: exponential with jitter, at most 5 s.
fn rejection_delay(rejections: u32) -> Duration {
    let ceiling = 100u64.saturating_mul(1 << rejections.min(6)).min(5_000);
    Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
}

/// What one call may carry.
#[derive(Debug, Clone, Copy)]
struct Limits {
    records: usize,
    bytes: u64,
    /// Keep each key's order: at most one record per key and call, none of a key in flight.
    ordered: bool,
    now: Instant,
}

/// Takes the next call's records from the front of the buffer, within `limits`. Records
/// still in their backoff stay; when ordered, so does every later record of their key, and of
/// a key in flight or already in this call, so records of one key never overtake each other.
fn take_batch(buffer: &mut VecDeque<Entry>, busy: &HashSet<String>, limits: Limits) -> Vec<Entry> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    let mut held: HashSet<String> = HashSet::new();
    let mut in_batch: HashSet<String> = HashSet::new();
    let mut kept = VecDeque::with_capacity(buffer.len());
    while let Some(entry) = buffer.pop_front() {
        if batch.len() >= limits.records {
            kept.push_back(entry);
            kept.extend(buffer.drain(..));
            break;
        }
        let waiting = entry.not_before.is_some_and(|t| t > limits.now);
        let blocked = limits.ordered
            && (busy.contains(&entry.key)
                || held.contains(&entry.key)
                || in_batch.contains(&entry.key));
        let fits = bytes + entry.size() <= limits.bytes;
        if waiting || blocked || !fits {
            if limits.ordered {
                held.insert(entry.key.clone());
            }
            kept.push_back(entry);
            continue;
        }
        bytes += entry.size();
        if limits.ordered {
            in_batch.insert(entry.key.clone());
        }
        batch.push(entry);
    }
    *buffer = kept;
    batch
}

/// One PutRecords call, retried as a whole until it gets a response.
async fn put_records(
    client: Client,
    table: Arc<SinkTable>,
    metrics: Arc<SinkMetrics>,
    batch: Vec<Entry>,
) -> Result<Outcome> {
    let stream = &table.config.stream;
    let request: Vec<PutRecordsRequestEntry> = batch
        .iter()
        .map(|e| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(e.data.clone()))
                .partition_key(e.key.clone())
                .build()
                .map_err(|err| Error::internal(format!("PutRecords entry: {err}")))
        })
        .collect::<Result<_>>()?;
    let what = format!("table '{}': PutRecords", table.name);
    let started = Instant::now();
    let output = retry(&what, Some(&*metrics), || {
        let call = client.put_records().set_records(Some(request.clone()));
        let call = match stream {
            StreamRef::Name(n) => call.stream_name(n),
            StreamRef::Arn(a) => call.stream_arn(a),
        };
        async move { call.send().await.map_err(|e| Failure::of(&e)) }
    })
    .await
    .map_err(|f| stream_error(&table.name, stream, "PutRecords", &f))?;
    let keys: Vec<String> = batch.iter().map(|e| e.key.clone()).collect();
    let mut failed = Vec::new();
    let mut first_error = None;
    let mut throttled = false;
    if output.failed_record_count().unwrap_or(0) > 0 {
        for (entry, result) in batch.into_iter().zip(output.records()) {
            if let Some(code) = result.error_code() {
                throttled |= crate::aws::is_throttle(code);
                first_error.get_or_insert_with(|| {
                    format!("{code}: {}", result.error_message().unwrap_or_default())
                });
                failed.push(entry);
            }
        }
    }
    metrics.add_latency(started.elapsed());
    metrics
        .records
        .fetch_add((keys.len() - failed.len()) as u64, Ordering::Relaxed);
    Ok(Outcome {
        keys,
        failed,
        first_error,
        throttled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, n: u8) -> Entry {
        Entry {
            key: key.into(),
            data: vec![n; 10],
            rejections: 0,
            not_before: None,
        }
    }

    fn ids(entries: &[Entry]) -> Vec<u8> {
        entries.iter().map(|e| e.data[0]).collect()
    }

    fn limits(records: usize, bytes: u64, ordered: bool) -> Limits {
        Limits {
            records,
            bytes,
            ordered,
            now: Instant::now(),
        }
    }

    #[test]
    fn batches_respect_limits_and_key_order() {
        let none = HashSet::new();
        let mut buffer: VecDeque<Entry> = (0..10).map(|i| entry(&format!("k{i}"), i)).collect();
        let batch = take_batch(&mut buffer, &none, limits(4, 1 << 20, true));
        assert_eq!(ids(&batch), vec![0, 1, 2, 3]);
        assert_eq!(buffer.len(), 6);
        // Bytes: each entry is 12 bytes.
        let batch = take_batch(&mut buffer, &none, limits(100, 30, true));
        assert_eq!(ids(&batch), vec![4, 5]);

        // A key in flight holds back all its records; other keys go ahead.
        let mut buffer: VecDeque<Entry> =
            vec![entry("a", 1), entry("b", 2), entry("a", 3), entry("c", 4)].into();
        let busy: HashSet<String> = ["a".to_string()].into();
        let batch = take_batch(&mut buffer, &busy, limits(10, 1 << 20, true));
        assert_eq!(ids(&batch), vec![2, 4]);
        assert_eq!(ids(&Vec::from(buffer.clone())), vec![1, 3]);

        // Ordered: one record per key and call. Unordered: any records, in order.
        let keyed = || -> VecDeque<Entry> {
            vec![entry("a", 1), entry("a", 2), entry("b", 3), entry("a", 4)].into()
        };
        let mut buffer = keyed();
        let batch = take_batch(&mut buffer, &none, limits(10, 1 << 20, true));
        assert_eq!(ids(&batch), vec![1, 3]);
        assert_eq!(ids(&Vec::from(buffer)), vec![2, 4]);
        let mut buffer = keyed();
        let batch = take_batch(&mut buffer, &none, limits(3, 1 << 20, false));
        assert_eq!(ids(&batch), vec![1, 2, 3]);
    }

    #[test]
    fn payloads_in_each_format() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{Field, Schema};

        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a,\nb"), None])),
            ],
        )
        .unwrap();
        let format = |name: &str| {
            let mut o = Options::from_pairs("t", &[("format", name)]);
            PayloadFormat::take(&mut o).unwrap()
        };
        let text = |payloads: Vec<Vec<u8>>| -> Vec<String> {
            payloads
                .into_iter()
                .map(|p| String::from_utf8(p).unwrap())
                .collect()
        };
        let json = Encoder::new(&format("json"), &schema)
            .encode(&batch)
            .unwrap();
        assert_eq!(
            text(json),
            vec![r#"{"id":1,"note":"a,\nb"}"#, r#"{"id":2,"note":null}"#]
        );
        // A CSV value with a line break stays one record.
        let csv = Encoder::new(&format("csv"), &schema)
            .encode(&batch)
            .unwrap();
        assert_eq!(text(csv), vec!["1,\"a,\nb\"", "2,"]);
        let raw_schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, true)]));
        let raw_batch = RecordBatch::try_new(
            raw_schema.clone(),
            vec![Arc::new(StringArray::from(vec![Some("x y"), None]))],
        )
        .unwrap();
        let raw = Encoder::new(&format("raw"), &raw_schema)
            .encode(&raw_batch)
            .unwrap();
        assert_eq!(text(raw), vec!["x y", ""]);
    }

    #[test]
    fn rejected_records_wait_for_their_backoff_and_hold_their_key() {
        let none = HashSet::new();
        let mut waiting = entry("a", 1);
        waiting.not_before = Some(Instant::now() + Duration::from_secs(60));
        let mut buffer: VecDeque<Entry> = vec![waiting, entry("a", 2), entry("b", 3)].into();
        let batch = take_batch(&mut buffer, &none, limits(10, 1 << 20, true));
        assert_eq!(ids(&batch), vec![3]);
        assert_eq!(ids(&Vec::from(buffer.clone())), vec![1, 2]);
        // Unordered, the key's later record may go first.
        let batch = take_batch(&mut buffer, &none, limits(10, 1 << 20, false));
        assert_eq!(ids(&batch), vec![2]);
        assert!(rejection_delay(1) <= Duration::from_millis(200));
        assert!(rejection_delay(30) <= Duration::from_secs(5));
    }
}
