//! `sluice datagen tx` and `sluice datagen cards`: the example jobs' transactions, as JSON
//! lines or into a Kinesis stream.
//!
//! The tests, the example jobs, the benchmarks and the docker compose producer all take
//! their input from here, so no other tool is needed to make data. Written to a file (or
//! stdout) as fast as the disk takes it, or paced to `--per-second` records of wall time;
//! written to a Kinesis stream through the Kinesis sink (PutRecords of up to 500 records,
//! rejected records retried), so the producer retries exactly as a Sluice job does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::Args;
use sluice_connectors::datagen::{CardSpec, CardTransactions, TransactionSpec, Transactions};
use sluice_connectors::format::json::JsonLineEncoder;
use sluice_connectors::format::text::TimestampStandard;
use sluice_connectors::kinesis::KinesisSink;
use sluice_engine::connector::{Options, SinkConnector, SinkContext, SinkWriter, TableSpec};
use sluice_engine::{Error, Result};

/// Largest batch generated at once.
const MAX_BATCH: u64 = 8192;

/// How often an endless producer says how far it got.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// What every generator takes: how many records, their pace and disorder, and where they go.
#[derive(Args)]
pub struct CommonArgs {
    /// How many records; 0 writes until stopped (Ctrl-C or SIGTERM).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Records per second of event time.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Largest random delay subtracted from a record's event time, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    disorder_ms: u64,
    /// Seed of the random values: the same seed gives the same records.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Event time of the first record in epoch milliseconds, or `now`.
    #[arg(long, default_value = "1700000000000", value_parser = parse_start)]
    start_ms: StartTime,
    /// Records per second of wall time; 0 writes as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    per_second: f64,
    /// Write into this Kinesis stream (standard AWS credential chain, region and endpoint
    /// settings, such as AWS_REGION and AWS_ENDPOINT_URL) instead of a file.
    #[arg(long, value_name = "STREAM", conflicts_with = "output")]
    kinesis_stream: Option<String>,
    /// The file to write JSON lines to; `-` is stdout.
    #[arg(required_unless_present = "kinesis_stream")]
    output: Option<PathBuf>,
}

#[derive(Args)]
pub struct TxArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// How many currencies (group keys): BTC, ETH, SOL, ADA, then C000000, C000001, ...
    #[arg(long, default_value_t = 4)]
    keys: usize,
}

#[derive(Args)]
pub struct CardArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// How many cards (group keys): card-000000, card-000001, ...
    #[arg(long, default_value_t = 1000)]
    cards: u64,
}

/// A repeatable source of record batches.
trait Generator {
    fn schema(&self) -> SchemaRef;
    fn emitted(&self) -> u64;
    fn next_batch(&mut self, rows: usize) -> RecordBatch;
}

impl Generator for Transactions {
    fn schema(&self) -> SchemaRef {
        Transactions::schema()
    }
    fn emitted(&self) -> u64 {
        Transactions::emitted(self)
    }
    fn next_batch(&mut self, rows: usize) -> RecordBatch {
        Transactions::next_batch(self, rows)
    }
}

impl Generator for CardTransactions {
    fn schema(&self) -> SchemaRef {
        CardTransactions::schema()
    }
    fn emitted(&self) -> u64 {
        CardTransactions::emitted(self)
    }
    fn next_batch(&mut self, rows: usize) -> RecordBatch {
        CardTransactions::next_batch(self, rows)
    }
}

#[derive(Clone, Copy)]
enum StartTime {
    At(i64),
    Now,
}

fn parse_start(text: &str) -> std::result::Result<StartTime, String> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(StartTime::Now);
    }
    text.parse()
        .map(StartTime::At)
        .map_err(|_| format!("'{text}' is neither epoch milliseconds nor 'now'"))
}

/// Where the transactions go.
enum Output {
    Lines {
        out: Box<dyn Write>,
        encoder: JsonLineEncoder,
        buffer: Vec<u8>,
    },
    Stream(Box<dyn SinkWriter>),
}

impl Output {
    fn open(args: &CommonArgs, schema: &SchemaRef) -> Result<Self> {
        if let Some(stream) = &args.kinesis_stream {
            return kinesis_writer(stream, schema).map(Output::Stream);
        }
        let path = args.output.as_ref().ok_or_else(|| {
            Error::config("sluice datagen needs an output file or --kinesis-stream")
        })?;
        let out: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(BufWriter::new(std::io::stdout().lock()))
        } else {
            let file = File::create(path)
                .map_err(|e| Error::connector(format!("cannot create {}: {e}", path.display())))?;
            Box::new(BufWriter::with_capacity(1 << 20, file))
        };
        Ok(Output::Lines {
            out,
            encoder: JsonLineEncoder::new(schema, TimestampStandard::Sql),
            buffer: Vec::new(),
        })
    }

    /// Writes a batch; `Ok(false)` when the reader went away (a closed pipe).
    fn write(&mut self, batch: &arrow::array::RecordBatch) -> Result<bool> {
        match self {
            Output::Lines {
                out,
                encoder,
                buffer,
            } => {
                buffer.clear();
                encoder
                    .encode(batch, buffer)
                    .map_err(|e| Error::internal(format!("encoding records: {e}")))?;
                match out.write_all(buffer) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
                    Err(e) => Err(Error::connector(format!("writing records: {e}"))),
                }
            }
            Output::Stream(writer) => writer.write(batch).map(|()| true),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::Lines { mut out, .. } => match out.flush() {
                Err(e) if e.kind() != ErrorKind::BrokenPipe => {
                    Err(Error::connector(format!("writing records: {e}")))
                }
                _ => Ok(()),
            },
            Output::Stream(mut writer) => writer.finish(),
        }
    }
}

/// A Kinesis sink writer for the generator's columns, JSON records, random partition keys.
fn kinesis_writer(stream: &str, schema: &SchemaRef) -> Result<Box<dyn SinkWriter>> {
    let mut options = Options::new(
        format!("--kinesis-stream {stream}"),
        BTreeMap::from([
            ("stream".to_string(), stream.to_string()),
            ("format".to_string(), "json".to_string()),
        ]),
    );
    let spec = TableSpec {
        name: stream.to_string(),
        schema: Arc::clone(schema),
        metadata: Vec::new(),
        partition_by: Vec::new(),
        projection: None,
    };
    let sink = KinesisSink::new(spec, &mut options)?;
    options.finish()?;
    sink.create_writer(&SinkContext::standalone(0, 1))
}

/// The start time of the first record.
fn start_ms(args: &CommonArgs) -> Result<i64> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(Error::config("--rate must be more than 0"));
    }
    if !(args.per_second >= 0.0 && args.per_second.is_finite()) {
        return Err(Error::config("--per-second must be 0 or more"));
    }
    Ok(match args.start_ms {
        StartTime::At(ms) => ms,
        StartTime::Now => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    })
}

/// `sluice datagen tx`.
pub fn transactions(args: TxArgs) -> Result<()> {
    let common = &args.common;
    let mut generator = Transactions::new(TransactionSpec {
        rate: common.rate,
        disorder_ms: common.disorder_ms,
        keys: args.keys,
        seed: common.seed,
        start_ms: start_ms(common)?,
    });
    write_all(common, &mut generator, "transactions")
}

/// `sluice datagen cards`.
pub fn cards(args: CardArgs) -> Result<()> {
    let common = &args.common;
    let mut generator = CardTransactions::new(CardSpec {
        rate: common.rate,
        disorder_ms: common.disorder_ms,
        cards: args.cards,
        seed: common.seed,
        start_ms: start_ms(common)?,
    });
    write_all(common, &mut generator, "card transactions")
}

/// Writes `args.events` records of `generator` (endlessly with 0) where `args` say.
fn write_all(args: &CommonArgs, generator: &mut dyn Generator, what: &str) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let mut output = Output::open(args, &generator.schema())?;
    // With a pace, about ten batches a second keep the flow smooth.
    let batch = if args.per_second > 0.0 {
        ((args.per_second / 10.0) as u64).clamp(1, MAX_BATCH)
    } else {
        MAX_BATCH
    };
    let endless = args.events == 0;
    let started = Instant::now();
    let mut reported = started;
    while !stop.load(Ordering::SeqCst) {
        let left = if endless {
            batch
        } else {
            (args.events - generator.emitted()).min(batch)
        };
        if left == 0 {
            break;
        }
        if args.per_second > 0.0 {
            let due =
                started + Duration::from_secs_f64(generator.emitted() as f64 / args.per_second);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if !output.write(&generator.next_batch(left as usize))? {
            break;
        }
        if endless && reported.elapsed() >= REPORT_EVERY {
            reported = Instant::now();
            eprintln!(
                "sluice datagen: {} {what} written in {:.0} s",
                generator.emitted(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    output.finish()?;
    if args.kinesis_stream.is_some() {
        eprintln!(
            "sluice datagen: {} {what} written in {:.1} s",
            generator.emitted(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
