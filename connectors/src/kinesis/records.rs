//! Kinesis records into batches of the table's columns.
//!
//! Each record's payload is one document in the table's format (or, with `raw`, the value
//! of its single column). A GetRecords response is decoded in one pass: the payloads are
//! joined into one newline-delimited buffer and handed to the vectorised decoder. Only when
//! that fails, or yields a different number of rows than there were records, are the
//! records decoded one by one, so a bad record is found, named by its shard and sequence
//! number, and dropped (when the table ignores parse errors) without losing its neighbours.
//! KPL aggregates are unpacked into their user records first.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use sluice_engine::connector::TableSpec;
use sluice_engine::{Error, Result};

use super::config::PayloadFormat;
use super::kpl;
use crate::format::lines::{error_reason, RecordDecoder};

/// A record as GetRecords returned it.
#[derive(Debug, Clone)]
pub struct KinesisRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub sequence_number: String,
    /// `ApproximateArrivalTimestamp`, in epoch milliseconds.
    pub arrival_ms: Option<i64>,
}

/// The metadata a table can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metadata {
    Timestamp,
    ShardId,
    SequenceNumber,
    PartitionKey,
}

const METADATA_KEYS: &str = "timestamp, shard-id, sequence-number, partition-key";

/// How payloads become the physical columns.
enum Payload {
    Text {
        decoder: Box<dyn RecordDecoder>,
        /// JSON: newlines inside a payload are whitespace and may be blanked out.
        json: bool,
        ignore_parse_errors: bool,
    },
    Raw,
}

/// The checked plan of a table's columns, shared by its shard readers.
#[derive(Debug, Clone)]
pub struct RecordLayout {
    table: String,
    schema: SchemaRef,
    physical: SchemaRef,
    /// The physical columns the job reads (None: all); JSON leaves the others NULL.
    projection: Option<Vec<usize>>,
    metadata: Vec<Metadata>,
    format: PayloadFormat,
}

/// Rows per decoder batch: a GetRecords response has at most 10,000 records, and a KPL
/// aggregate a few hundred each.
const DECODE_BATCH: usize = 16_384;

impl RecordLayout {
    pub fn new(spec: &TableSpec, format: &PayloadFormat) -> Result<Self> {
        let fields = spec.schema.fields();
        let physical_len = fields.len() - spec.metadata.len();
        let mut metadata = Vec::new();
        for (meta, field) in spec.metadata.iter().zip(&fields[physical_len..]) {
            let (kind, ok) = match meta.key.as_str() {
                "timestamp" => (
                    Metadata::Timestamp,
                    matches!(field.data_type(), DataType::Timestamp(..)),
                ),
                "shard-id" => (Metadata::ShardId, field.data_type() == &DataType::Utf8),
                "sequence-number" => (
                    Metadata::SequenceNumber,
                    field.data_type() == &DataType::Utf8,
                ),
                "partition-key" => (Metadata::PartitionKey, field.data_type() == &DataType::Utf8),
                other => {
                    return Err(Error::config(format!(
                        "table '{}': the kinesis connector has no metadata key '{}' \
                         (available: {METADATA_KEYS})",
                        spec.name, other
                    )))
                }
            };
            if !ok {
                return Err(Error::config(format!(
                    "table '{}': metadata column '{}' must be {}",
                    spec.name,
                    meta.name,
                    if kind == Metadata::Timestamp {
                        "TIMESTAMP_LTZ(3)"
                    } else {
                        "STRING"
                    }
                )));
            }
            metadata.push(kind);
        }
        let physical = Arc::new(Schema::new(fields[..physical_len].to_vec()));
        if let PayloadFormat::Raw = format {
            let ok = physical.fields().len() == 1
                && matches!(
                    physical.field(0).data_type(),
                    DataType::Utf8 | DataType::Binary
                );
            if !ok {
                return Err(Error::config(format!(
                    "table '{}': the raw format needs exactly one physical column, of type \
                     STRING or BYTES",
                    spec.name
                )));
            }
        }
        if let PayloadFormat::Text(f) = format {
            f.check_readable(&spec.name, &physical)?;
        }
        // The physical columns the job reads (metadata ones come from the records' envelope).
        let projection = spec.projection.as_ref().map(|read| {
            read.iter()
                .copied()
                .filter(|i| *i < physical.fields().len())
                .collect()
        });
        let layout = Self {
            table: spec.name.clone(),
            schema: spec.schema.clone(),
            projection,
            physical,
            metadata,
            format: format.clone(),
        };
        // A column type the format cannot read is a plan error, found now.
        layout.decoder()?;
        Ok(layout)
    }

    /// A decoder for one shard reader.
    pub fn decoder(&self) -> Result<RecordsDecoder> {
        let payload = match &self.format {
            PayloadFormat::Raw => Payload::Raw,
            PayloadFormat::Text(f) => Payload::Text {
                decoder: f
                    .projected_decoder(
                        self.physical.clone(),
                        self.projection.as_deref(),
                        DECODE_BATCH,
                    )
                    .map_err(|e| e.context(format!("table '{}'", self.table)))?,
                json: f.name() == "json",
                ignore_parse_errors: f.ignore_parse_errors(),
            },
        };
        Ok(RecordsDecoder {
            layout: self.clone(),
            payload,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Decodes the records of one shard.
pub struct RecordsDecoder {
    layout: RecordLayout,
    payload: Payload,
}

/// A user record: a Kinesis record, or one record out of a KPL aggregate.
struct UserRecord<'a> {
    data: std::borrow::Cow<'a, [u8]>,
    partition_key: std::borrow::Cow<'a, str>,
    source: &'a KinesisRecord,
}

/// What a call to [`RecordsDecoder::decode`] produced.
#[derive(Debug)]
pub struct Decoded {
    pub batch: Option<RecordBatch>,
    /// Records dropped as malformed (corrupt aggregates, payloads that do not parse).
    pub malformed: u64,
    /// Why the first dropped record was dropped, for the log.
    pub first_reason: Option<String>,
}

impl RecordsDecoder {
    /// Decodes `records` of shard `shard`. A malformed record fails the call, naming shard
    /// and sequence number, unless the table ignores parse errors; then it is counted.
    pub fn decode(&mut self, shard: &str, records: &[KinesisRecord]) -> Result<Decoded> {
        let mut malformed = 0u64;
        let mut first_reason = None;
        let mut users: Vec<UserRecord> = Vec::with_capacity(records.len());
        for record in records {
            if !kpl::is_aggregated(&record.data) {
                users.push(UserRecord {
                    data: (&record.data[..]).into(),
                    partition_key: record.partition_key.as_str().into(),
                    source: record,
                });
                continue;
            }
            match kpl::deaggregate(&record.data) {
                Ok(inner) => users.extend(inner.into_iter().map(|u| UserRecord {
                    data: u.data.into(),
                    partition_key: u.partition_key.into(),
                    source: record,
                })),
                // A corrupt aggregate is dropped whatever the format's error setting: its
                // bytes are not a record of the table's format at all.
                Err(reason) => {
                    malformed += 1;
                    first_reason.get_or_insert_with(|| {
                        self.describe(shard, &record.sequence_number, &reason)
                    });
                }
            }
        }
        if users.is_empty() {
            return Ok(Decoded {
                batch: None,
                malformed,
                first_reason,
            });
        }
        let (columns, kept) = match &mut self.payload {
            Payload::Raw => (raw_column(&self.layout.physical, &users)?, None),
            Payload::Text { .. } => {
                let (batch, kept, bad) = self.decode_text(shard, &users)?;
                malformed += bad.len() as u64;
                if first_reason.is_none() {
                    first_reason = bad.into_iter().next();
                }
                (batch.columns().to_vec(), kept)
            }
        };
        let kept_users: Vec<&UserRecord> = match &kept {
            None => users.iter().collect(),
            Some(k) => users
                .iter()
                .zip(k)
                .filter(|(_, k)| **k)
                .map(|(u, _)| u)
                .collect(),
        };
        if kept_users.is_empty() {
            return Ok(Decoded {
                batch: None,
                malformed,
                first_reason,
            });
        }
        let mut all = columns;
        for (kind, field) in self
            .layout
            .metadata
            .iter()
            .zip(&self.layout.schema.fields()[self.layout.physical.fields().len()..])
        {
            let array: ArrayRef = match kind {
                Metadata::Timestamp => Arc::new(TimestampMillisecondArray::from_iter(
                    kept_users.iter().map(|u| u.source.arrival_ms),
                )),
                Metadata::ShardId => Arc::new(StringArray::from_iter_values(
                    kept_users.iter().map(|_| shard),
                )),
                Metadata::SequenceNumber => Arc::new(StringArray::from_iter_values(
                    kept_users.iter().map(|u| u.source.sequence_number.as_str()),
                )),
                Metadata::PartitionKey => Arc::new(StringArray::from_iter_values(
                    kept_users.iter().map(|u| u.partition_key.as_ref()),
                )),
            };
            let array = if array.data_type() == field.data_type() {
                array
            } else {
                cast(&array, field.data_type()).map_err(|e| {
                    Error::internal(format!(
                        "table '{}': metadata column '{}': {e}",
                        self.layout.table,
                        field.name()
                    ))
                })?
            };
            all.push(array);
        }
        let batch = RecordBatch::try_new(self.layout.schema.clone(), all).map_err(|e| {
            Error::internal(format!(
                "table '{}': building a batch: {e}",
                self.layout.table
            ))
        })?;
        Ok(Decoded {
            batch: Some(batch),
            malformed,
            first_reason,
        })
    }

    fn describe(&self, shard: &str, sequence: &str, reason: &str) -> String {
        format!(
            "table '{}': shard {shard} record {sequence}: {reason}",
            self.layout.table
        )
    }

    /// Decodes text payloads: all at once, or one by one when that fails. Returns the
    /// batch, which records it holds (`None`: all), and the reasons of the dropped ones.
    fn decode_text(
        &mut self,
        shard: &str,
        users: &[UserRecord],
    ) -> Result<(RecordBatch, Option<Vec<bool>>, Vec<String>)> {
        let Payload::Text {
            decoder,
            json,
            ignore_parse_errors,
        } = &mut self.payload
        else {
            unreachable!("decode_text is called for text payloads")
        };
        let mut buf = Vec::with_capacity(users.iter().map(|u| u.data.len() + 1).sum());
        for u in users {
            push_line(&mut buf, &u.data, *json);
        }
        if let Ok(Some(batch)) = decode_all(decoder.as_mut(), &buf) {
            if batch.num_rows() == users.len() && decoder.rows_to_check(&batch).is_none() {
                return Ok((batch, None, vec![]));
            }
        }
        // One by one: find the records that do not decode to exactly one good row.
        let mut batches = Vec::with_capacity(users.len());
        let mut kept = Vec::with_capacity(users.len());
        let mut reasons = Vec::new();
        for u in users {
            buf.clear();
            push_line(&mut buf, &u.data, *json);
            let result = decode_all(decoder.as_mut(), &buf).and_then(|batch| match batch {
                Some(b) if b.num_rows() == 1 => {
                    if decoder.rows_to_check(&b).is_some() {
                        decoder
                            .check_line(&buf[..buf.len() - 1])
                            .map_err(arrow::error::ArrowError::ParseError)?;
                    }
                    Ok(b)
                }
                Some(b) if b.num_rows() > 1 => Err(arrow::error::ArrowError::ParseError(format!(
                    "the payload holds {} records, not one",
                    b.num_rows()
                ))),
                _ => Err(arrow::error::ArrowError::ParseError(
                    "the payload is empty".into(),
                )),
            });
            match result {
                Ok(b) => {
                    batches.push(b);
                    kept.push(true);
                }
                Err(e) => {
                    let _ = decoder.reset();
                    let reason = format!(
                        "table '{}': shard {shard} record {}: {}",
                        self.layout.table,
                        u.source.sequence_number,
                        error_reason(&e)
                    );
                    if !*ignore_parse_errors {
                        return Err(Error::data(reason));
                    }
                    reasons.push(reason);
                    kept.push(false);
                }
            }
        }
        let batch = concat_batches(&self.layout.physical, &batches)
            .map_err(|e| Error::internal(format!("table '{}': {e}", self.layout.table)))?;
        Ok((batch, Some(kept), reasons))
    }
}

/// Appends a payload as one line. JSON's newlines are whitespace (a raw newline cannot be
/// inside a JSON string), so they are blanked; other formats lose only trailing ones.
fn push_line(buf: &mut Vec<u8>, data: &[u8], json: bool) {
    if json {
        buf.extend(
            data.iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
    } else {
        let end = data
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |i| i + 1);
        buf.extend_from_slice(&data[..end]);
    }
    buf.push(b'\n');
}

/// Feeds all of `buf` to the decoder and returns every row it made, as one batch.
fn decode_all(
    decoder: &mut dyn RecordDecoder,
    buf: &[u8],
) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
    let mut batches = Vec::new();
    let mut pos = 0;
    let outcome = (|| {
        while pos < buf.len() {
            let n = decoder.decode(&buf[pos..])?;
            pos += n;
            if n == 0 || decoder.buffered_rows() >= DECODE_BATCH {
                match decoder.flush()? {
                    Some(b) => batches.push(b),
                    None if n == 0 => break,
                    None => {}
                }
            }
        }
        if let Some(b) = decoder.flush()? {
            batches.push(b);
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        let _ = decoder.reset();
        return Err(e);
    }
    match batches.len() {
        0 => Ok(None),
        1 => Ok(batches.pop()),
        _ => concat_batches(&batches[0].schema(), &batches).map(Some),
    }
}

/// The single column of a `raw` table.
fn raw_column(physical: &SchemaRef, users: &[UserRecord]) -> Result<Vec<ArrayRef>> {
    let array: ArrayRef = match physical.field(0).data_type() {
        DataType::Binary => Arc::new(BinaryArray::from_iter_values(
            users.iter().map(|u| u.data.as_ref()),
        )),
        _ => Arc::new(StringArray::from_iter_values(
            users.iter().map(|u| String::from_utf8_lossy(&u.data)),
        )),
    };
    Ok(vec![array])
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Int64Type};
    use sluice_engine::connector::{MetadataColumn, Options};

    use super::*;
    use crate::format::Format;

    fn spec(meta: &[(&str, &str, DataType)]) -> TableSpec {
        let mut fields = vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ];
        let mut metadata = vec![];
        for (name, key, t) in meta {
            fields.push(Field::new(*name, t.clone(), true));
            metadata.push(MetadataColumn {
                name: name.to_string(),
                key: key.to_string(),
            });
        }
        TableSpec {
            name: "tx".into(),
            schema: Arc::new(Schema::new(fields)),
            metadata,
            partition_by: vec![],
            projection: None,
        }
    }

    fn json(ignore: bool) -> PayloadFormat {
        let mut values = std::collections::BTreeMap::new();
        values.insert("format".to_string(), "json".to_string());
        if ignore {
            values.insert("json.ignore-parse-errors".into(), "true".into());
        }
        PayloadFormat::Text(Format::take(&mut Options::new("tx", values), &["json"]).unwrap())
    }

    fn record(data: &str, seq: u64) -> KinesisRecord {
        KinesisRecord {
            data: data.as_bytes().to_vec(),
            partition_key: format!("k{seq}"),
            sequence_number: seq.to_string(),
            arrival_ms: Some(1_000 + seq as i64),
        }
    }

    #[test]
    fn decodes_payloads_and_metadata() {
        let ts = DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()));
        let spec = spec(&[
            ("arrival", "timestamp", ts),
            ("shard", "shard-id", DataType::Utf8),
            ("seq", "sequence-number", DataType::Utf8),
            ("pk", "partition-key", DataType::Utf8),
        ]);
        let layout = RecordLayout::new(&spec, &json(false)).unwrap();
        let mut d = layout.decoder().unwrap();
        let records = vec![
            record("{\"id\":1,\"name\":\"a\"}", 7),
            record("{\"id\":2,\n \"name\":\"b\"}\n", 8),
        ];
        let out = d.decode("shardId-000000000001", &records).unwrap();
        let batch = out.batch.unwrap();
        assert_eq!(out.malformed, 0);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>(),
            &Int64Array::from(vec![1, 2])
        );
        assert_eq!(
            batch.column(3).as_string::<i32>().value(1),
            "shardId-000000000001"
        );
        assert_eq!(batch.column(4).as_string::<i32>().value(1), "8");
        assert_eq!(batch.column(5).as_string::<i32>().value(0), "k7");
        let arrival = batch
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(arrival.value(0), 1_007);
    }

    #[test]
    fn bad_records_fail_or_are_dropped_one_by_one() {
        let records = vec![
            record("{\"id\":1,\"name\":\"a\"}", 1),
            record("{\"id\":", 2),
            record("{\"id\":3}{\"id\":4}", 3),
            record("", 4),
            record("{\"id\":5,\"name\":\"e\"}", 5),
        ];
        let layout = RecordLayout::new(&spec(&[]), &json(false)).unwrap();
        let err = layout
            .decoder()
            .unwrap()
            .decode("s1", &records)
            .unwrap_err();
        assert!(
            err.message().starts_with("table 'tx': shard s1 record 2: "),
            "{err}"
        );

        let layout = RecordLayout::new(&spec(&[]), &json(true)).unwrap();
        let out = layout.decoder().unwrap().decode("s1", &records).unwrap();
        assert_eq!(out.malformed, 3);
        let batch = out.batch.unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>(),
            &Int64Array::from(vec![1, 5])
        );
    }

    #[test]
    fn kpl_aggregates_are_unpacked_and_corrupt_ones_counted() {
        let spec = spec(&[("pk", "partition-key", DataType::Utf8)]);
        let layout = RecordLayout::new(&spec, &json(false)).unwrap();
        let packed = kpl::aggregate(&[
            kpl::UserRecord {
                partition_key: "a".into(),
                data: b"{\"id\":1}".to_vec(),
            },
            kpl::UserRecord {
                partition_key: "b".into(),
                data: b"{\"id\":2}".to_vec(),
            },
        ]);
        let mut corrupt = packed.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let records = vec![
            KinesisRecord {
                data: packed,
                partition_key: "outer".into(),
                sequence_number: "1".into(),
                arrival_ms: None,
            },
            KinesisRecord {
                data: corrupt,
                partition_key: "outer".into(),
                sequence_number: "2".into(),
                arrival_ms: None,
            },
            record("{\"id\":3}", 3),
        ];
        let out = layout.decoder().unwrap().decode("s", &records).unwrap();
        assert_eq!(out.malformed, 1);
        assert!(out.first_reason.unwrap().contains("record 2: KPL"));
        let batch = out.batch.unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>(),
            &Int64Array::from(vec![1, 2, 3])
        );
        let keys: Vec<&str> = batch
            .column(2)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(keys, vec!["a", "b", "k3"]);
    }

    #[test]
    fn raw_tables_take_the_payload() {
        let spec = TableSpec {
            name: "raw".into(),
            schema: Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, true)])),
            metadata: vec![],
            partition_by: vec![],
            projection: None,
        };
        let layout = RecordLayout::new(&spec, &PayloadFormat::Raw).unwrap();
        let out = layout
            .decoder()
            .unwrap()
            .decode("s", &[record("not json", 1)])
            .unwrap();
        assert_eq!(
            out.batch.unwrap().column(0).as_string::<i32>().value(0),
            "not json"
        );
        assert!(RecordLayout::new(&self::spec(&[]), &PayloadFormat::Raw).is_err());
    }
}
