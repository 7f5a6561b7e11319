//! The `kinesis` connector: Amazon Kinesis Data Streams as source and sink.
//!
//! Source options: `stream` or `stream.arn`, `aws.region`, `aws.endpoint`, `format` (`json`,
//! `csv`, `raw`) with its options, `source.init.position` (`LATEST`, `TRIM_HORIZON`,
//! `AT_TIMESTAMP` with `source.init.timestamp`; the older `scan.stream.initpos` too),
//! `source.shard.discovery.interval`, `source.shard.get-records.max-record-count`,
//! `source.reader.empty-records-fetch-interval`, and Sluice's `scan.bounded` = `latest`.
//! Metadata: `timestamp` (approximate arrival), `shard-id`, `sequence-number`,
//! `partition-key`.
//!
//! Sink options: `stream` or `stream.arn`, `aws.*`, `format`, `sink.partitioner` (`random`,
//! `fixed`) or `PARTITIONED BY` columns, `sink.batch.max-size`, `sink.flush-buffer.size`,
//! `sink.flush-buffer.timeout`, `sink.requests.max-inflight`, `sink.fail-on-error`,
//! `sink.dead-letter.path`.
//!
//! - [`shards`]: discovery, parent-before-child assignment, positions;
//! - [`source`]: the readers and their per-shard polling tasks;
//! - [`records`]: payloads and metadata into batches; [`kpl`]: KPL aggregates;
//! - [`sink`]: batched PutRecords with per-record retries.

pub mod config;
pub mod kpl;
pub mod records;
pub mod shards;
pub mod sink;
pub mod source;

pub use sink::KinesisSink;
pub use source::KinesisSource;
