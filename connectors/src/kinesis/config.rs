//! The options of Kinesis tables, typed (Flink's names; see SEMANTICS.md).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use crate::aws::AwsOptions;
use crate::format::Format;
use crate::option_values::{parse_duration, parse_memory_size, parse_number};

/// Which stream a table reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    Name(String),
    Arn(String),
}

impl StreamRef {
    fn take(options: &mut Options) -> Result<Self> {
        match (options.take(&["stream"]), options.take(&["stream.arn"])) {
            (Some(name), None) => Ok(StreamRef::Name(name)),
            (None, Some(arn)) => Ok(StreamRef::Arn(arn)),
            (Some(_), Some(_)) => Err(Error::config(format!(
                "table '{}': set either 'stream' or 'stream.arn', not both",
                options.table()
            ))),
            (None, None) => Err(Error::config(format!(
                "table '{}' needs the option 'stream' (or 'stream.arn')",
                options.table()
            ))),
        }
    }

    /// The stream's name, for messages (the last part of an ARN).
    pub fn name(&self) -> &str {
        match self {
            StreamRef::Name(n) => n,
            StreamRef::Arn(a) => a.rsplit('/').next().unwrap_or(a),
        }
    }
}

/// How records are encoded in a Kinesis payload.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadFormat {
    /// A `json` or `csv` document per record.
    Text(Format),
    /// The payload is the single column's value (STRING or BYTES).
    Raw,
}

impl PayloadFormat {
    pub(crate) fn take(options: &mut Options) -> Result<Self> {
        if options
            .peek("format")
            .is_some_and(|f| f.eq_ignore_ascii_case("raw"))
        {
            options.take(&["format"]);
            return Ok(PayloadFormat::Raw);
        }
        Ok(PayloadFormat::Text(Format::take(
            options,
            &["json", "csv"],
        )?))
    }

    pub fn name(&self) -> &'static str {
        match self {
            PayloadFormat::Text(f) => f.name(),
            PayloadFormat::Raw => "raw",
        }
    }
}

/// Where a shard starts on a fresh start (`source.init.position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    Latest,
    TrimHorizon,
    AtTimestamp(DateTime<Utc>),
}

/// `scan.bounded`: where a bounded read ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Read forever.
    Unbounded,
    /// `latest`: read every record that arrived before the job started, then finish.
    Latest,
}

/// Options of a Kinesis source table.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSourceConfig {
    pub stream: StreamRef,
    pub aws: AwsOptions,
    pub format: PayloadFormat,
    pub initial_position: InitialPosition,
    /// `source.shard.discovery.interval` (10 s).
    pub discovery_interval: Duration,
    /// `source.shard.get-records.max-record-count` (10,000, Kinesis's maximum).
    pub max_records: i32,
    /// `source.reader.empty-records-fetch-interval` (250 ms): the pause after an empty
    /// GetRecords response.
    pub empty_fetch_interval: Duration,
    pub bound: Bound,
}

impl KinesisSourceConfig {
    pub fn take(options: &mut Options) -> Result<Self> {
        let table = options.table().to_string();
        let stream = StreamRef::take(options)?;
        let aws = AwsOptions::take(options)?;
        let format = PayloadFormat::take(options)?;
        let position = options.take(&["source.init.position", "scan.stream.initpos"]);
        let timestamp = options.take(&["source.init.timestamp", "scan.stream.initpos-timestamp"]);
        let initial_position = match position.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("LATEST") => InitialPosition::Latest,
            Some("TRIM_HORIZON") => InitialPosition::TrimHorizon,
            Some("AT_TIMESTAMP") => {
                let text = timestamp.as_deref().ok_or_else(|| {
                    Error::config(format!(
                        "table '{table}': 'source.init.position' = 'AT_TIMESTAMP' needs the \
                         option 'source.init.timestamp'"
                    ))
                })?;
                InitialPosition::AtTimestamp(parse_timestamp(text).map_err(|e| {
                    Error::config(format!(
                        "table '{table}': option 'source.init.timestamp' = '{text}' is invalid: {e}"
                    ))
                })?)
            }
            Some(_) => {
                return Err(Error::config(format!(
                    "table '{table}': option 'source.init.position' = '{}' is invalid: \
                     expected LATEST, TRIM_HORIZON or AT_TIMESTAMP",
                    position.unwrap_or_default()
                )))
            }
        };
        if timestamp.is_some() && !matches!(initial_position, InitialPosition::AtTimestamp(_)) {
            return Err(Error::config(format!(
                "table '{table}': option 'source.init.timestamp' is set, but \
                 'source.init.position' is not 'AT_TIMESTAMP'"
            )));
        }
        // A format for AT_TIMESTAMP other than the ones parse_timestamp knows is not needed.
        options.take(&["source.init.timestamp.format"]);
        if let Some(kind) = options.take(&["source.reader.type"]) {
            if !kind.eq_ignore_ascii_case("POLLING") {
                return Err(Error::config(format!(
                    "table '{table}': option 'source.reader.type' = '{kind}' is not supported \
                     yet: Sluice reads shards by polling (POLLING)"
                )));
            }
        }
        if options.take(&["source.efo.consumer.name"]).is_some() {
            return Err(Error::config(format!(
                "table '{table}': option 'source.efo.consumer.name' is not supported: \
                 enhanced fan-out is not implemented yet"
            )));
        }
        let discovery_interval = options
            .take_parsed("source.shard.discovery.interval", parse_duration)?
            .unwrap_or(Duration::from_secs(10));
        let max_records = options
            .take_parsed("source.shard.get-records.max-record-count", |v| {
                let n: i32 = parse_number(v)?;
                if (1..=10_000).contains(&n) {
                    Ok(n)
                } else {
                    Err("expected 1 to 10000 (Kinesis returns at most 10000 records a call)".into())
                }
            })?
            .unwrap_or(10_000);
        let empty_fetch_interval = options
            .take_parsed("source.reader.empty-records-fetch-interval", parse_duration)?
            .unwrap_or(Duration::from_millis(250));
        let bound = options
            .take_parsed("scan.bounded", |v| match v.to_ascii_lowercase().as_str() {
                "latest" => Ok(Bound::Latest),
                "false" | "none" => Ok(Bound::Unbounded),
                _ => Err("expected 'latest'".to_string()),
            })?
            .unwrap_or(Bound::Unbounded);
        Ok(Self {
            stream,
            aws,
            format,
            initial_position,
            discovery_interval,
            max_records,
            empty_fetch_interval,
            bound,
        })
    }
}

/// `source.init.timestamp`: ISO-8601 (`2026-11-23T10:00:00Z`, `2026-11-23 10:00:00.000`,
/// read as UTC without a zone) or seconds since the epoch (`1763892000.5`), as Flink takes.
pub fn parse_timestamp(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        let millis = (seconds * 1000.0).round() as i64;
        return DateTime::from_timestamp_millis(millis).ok_or_else(|| "out of range".into());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(t.and_utc());
        }
    }
    Err("expected seconds since the epoch or an ISO-8601 time such as 2026-11-23T10:00:00Z".into())
}

/// How the sink picks a record's partition key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioner {
    /// A random key per record: even spread over shards.
    Random,
    /// One key per sink instance (its index), as Flink's `fixed`.
    Fixed,
    /// The `PARTITIONED BY` columns' values joined with `|` (at most 256 characters).
    Columns(Vec<usize>),
}

/// Kinesis limits of PutRecords (MISSION.md).
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: u64 = 5 << 20;
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Options of a Kinesis sink table.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSinkConfig {
    pub stream: StreamRef,
    pub aws: AwsOptions,
    pub format: PayloadFormat,
    pub partitioner: Partitioner,
    /// `sink.batch.max-size` (500): records per PutRecords call.
    pub batch_max_records: usize,
    /// `sink.flush-buffer.size` (5 MiB): bytes per PutRecords call.
    pub batch_max_bytes: u64,
    /// `sink.flush-buffer.timeout` (5 s): a partial batch is sent after this long.
    pub flush_timeout: Duration,
    /// `sink.requests.max-inflight` (50): PutRecords calls under way at once.
    pub max_inflight: usize,
    /// `sink.fail-on-error` (false): stop the job on the first record Kinesis rejects,
    /// instead of retrying it.
    pub fail_on_error: bool,
    /// `sink.dead-letter.path`: a file that receives records too large to send, instead
    /// of failing the job.
    pub dead_letter: Option<PathBuf>,
}

impl KinesisSinkConfig {
    pub fn take(options: &mut Options, partition_columns: Vec<usize>) -> Result<Self> {
        let table = options.table().to_string();
        let stream = StreamRef::take(options)?;
        let aws = AwsOptions::take(options)?;
        let format = PayloadFormat::take(options)?;
        let partitioner = match options.take(&["sink.partitioner"]) {
            None if !partition_columns.is_empty() => Partitioner::Columns(partition_columns),
            None => Partitioner::Random,
            Some(p) if !partition_columns.is_empty() => {
                return Err(Error::config(format!(
                    "table '{table}': option 'sink.partitioner' = '{p}' cannot be combined \
                     with PARTITIONED BY, which already picks the partition key"
                )))
            }
            Some(p) => match p.to_ascii_lowercase().as_str() {
                "random" => Partitioner::Random,
                "fixed" => Partitioner::Fixed,
                _ => {
                    return Err(Error::config(format!(
                        "table '{table}': option 'sink.partitioner' = '{p}' is invalid: \
                         expected 'random' or 'fixed'"
                    )))
                }
            },
        };
        options
            .take(&["sink.partitioner-field-delimiter"])
            .map_or(Ok(()), |d| {
                if d == "|" {
                    Ok(())
                } else {
                    Err(Error::config(format!(
                    "table '{table}': option 'sink.partitioner-field-delimiter' = '{d}' is not \
                     supported: Sluice joins key columns with '|'"
                )))
                }
            })?;
        let batch_max_records = options
            .take_parsed("sink.batch.max-size", |v| {
                let n: usize = parse_number(v)?;
                if (1..=MAX_BATCH_RECORDS).contains(&n) {
                    Ok(n)
                } else {
                    Err("expected 1 to 500 (Kinesis takes at most 500 records a call)".into())
                }
            })?
            .unwrap_or(MAX_BATCH_RECORDS);
        let batch_max_bytes = options
            .take_parsed("sink.flush-buffer.size", |v| {
                let n = parse_memory_size(v)?;
                if (1..=MAX_BATCH_BYTES).contains(&n) {
                    Ok(n)
                } else {
                    Err("expected at most 5 mb (Kinesis takes at most 5 MiB a call)".into())
                }
            })?
            .unwrap_or(MAX_BATCH_BYTES);
        let flush_timeout = options
            .take_parsed("sink.flush-buffer.timeout", parse_duration)?
            .unwrap_or(Duration::from_secs(5));
        let max_inflight = options
            .take_parsed("sink.requests.max-inflight", |v| {
                let n: usize = parse_number(v)?;
                if n >= 1 {
                    Ok(n)
                } else {
                    Err("expected at least 1".into())
                }
            })?
            .unwrap_or(50);
        let fail_on_error = options.take_bool("sink.fail-on-error")?.unwrap_or(false);
        let dead_letter = options.take(&["sink.dead-letter.path"]).map(PathBuf::from);
        // Flink's buffering options that have no meaning here.
        options.take(&["sink.max-buffered-requests"]);
        Ok(Self {
            stream,
            aws,
            format,
            partitioner,
            batch_max_records,
            batch_max_bytes,
            flush_timeout,
            max_inflight,
            fail_on_error,
            dead_letter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs("tx", pairs)
    }

    #[test]
    fn source_defaults_and_old_spellings() {
        let mut o = options(&[("stream", "tx"), ("format", "json")]);
        let c = KinesisSourceConfig::take(&mut o).unwrap();
        o.finish().unwrap();
        assert_eq!(c.initial_position, InitialPosition::Latest);
        assert_eq!(c.discovery_interval, Duration::from_secs(10));
        assert_eq!(c.max_records, 10_000);
        assert_eq!(c.empty_fetch_interval, Duration::from_millis(250));
        assert_eq!(c.bound, Bound::Unbounded);

        let mut o = options(&[
            ("stream", "tx"),
            ("format", "raw"),
            ("scan.stream.initpos", "TRIM_HORIZON"),
        ]);
        let c = KinesisSourceConfig::take(&mut o).unwrap();
        assert_eq!(c.initial_position, InitialPosition::TrimHorizon);
        assert_eq!(c.format, PayloadFormat::Raw);
    }

    #[test]
    fn at_timestamp_needs_a_timestamp() {
        let mut o = options(&[
            ("stream", "tx"),
            ("format", "json"),
            ("source.init.position", "AT_TIMESTAMP"),
        ]);
        let e = KinesisSourceConfig::take(&mut o).unwrap_err();
        assert!(e
            .message()
            .contains("needs the option 'source.init.timestamp'"));
        let mut o = options(&[
            ("stream", "tx"),
            ("format", "json"),
            ("source.init.position", "AT_TIMESTAMP"),
            ("source.init.timestamp", "2026-11-23T10:00:00Z"),
        ]);
        let c = KinesisSourceConfig::take(&mut o).unwrap();
        assert_eq!(
            c.initial_position,
            InitialPosition::AtTimestamp(parse_timestamp("1795428000").unwrap())
        );
    }

    #[test]
    fn sink_options() {
        let mut o = options(&[
            ("stream", "out"),
            ("format", "json"),
            ("sink.batch.max-size", "100"),
            ("sink.flush-buffer.size", "1mb"),
            ("sink.partitioner", "fixed"),
        ]);
        let c = KinesisSinkConfig::take(&mut o, vec![]).unwrap();
        o.finish().unwrap();
        assert_eq!(c.batch_max_records, 100);
        assert_eq!(c.batch_max_bytes, 1 << 20);
        assert_eq!(c.partitioner, Partitioner::Fixed);
        let mut o = options(&[
            ("stream", "out"),
            ("format", "json"),
            ("sink.batch.max-size", "501"),
        ]);
        let e = KinesisSinkConfig::take(&mut o, vec![]).unwrap_err();
        assert!(e
            .message()
            .contains("'sink.batch.max-size' = '501' is invalid"));
        let mut o = options(&[("stream", "out"), ("format", "json")]);
        let c = KinesisSinkConfig::take(&mut o, vec![1]).unwrap();
        assert_eq!(c.partitioner, Partitioner::Columns(vec![1]));
    }
}
