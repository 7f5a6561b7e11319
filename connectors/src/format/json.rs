//! The `json` format: one JSON object per line, as Flink's `json` format reads and writes it.
//!
//! Decoding uses Arrow's JSON decoder (through [`LineReader`](super::lines)); flat records
//! (no `ROW`s) without `json.fail-on-missing-field` take
//! [`FlatJsonDecoder`](super::flat_json::FlatJsonDecoder) instead, which gives the same rows
//! faster.
//! Unknown fields are ignored, field names match column names exactly, nested objects fill
//! `ROW` columns, numbers and booleans are accepted for `STRING` columns (as their text, like
//! Flink), and timestamp columns take either standard's strings, with or without a zone, or
//! epoch numbers in the column's unit. Encoding writes values as [`text`](super::text) renders
//! them in JSON style.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::reader::{Decoder, ReaderBuilder};
use serde_json::{Map, Value};
use sluice_engine::connector::Options;
use sluice_engine::Result;

use super::lines::RecordDecoder;
use super::text::{json_key, write_json_object, TextStyle, TimestampStandard, ValueText};

/// The `json.*` options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonOptions {
    /// `json.fail-on-missing-field` (false): an absent field is an error instead of NULL.
    /// An explicit `null` is never an error, as in Flink.
    pub fail_on_missing_field: bool,
    /// `json.ignore-parse-errors` (false): skip malformed lines (counted as dropped).
    pub ignore_parse_errors: bool,
    /// `json.timestamp-format.standard` (`SQL`): how timestamps are written. Reading accepts
    /// both standards regardless.
    pub timestamp_standard: TimestampStandard,
}

impl JsonOptions {
    pub fn take(options: &mut Options) -> Result<Self> {
        Ok(Self {
            fail_on_missing_field: options
                .take_bool("json.fail-on-missing-field")?
                .unwrap_or(false),
            ignore_parse_errors: options
                .take_bool("json.ignore-parse-errors")?
                .unwrap_or(false),
            timestamp_standard: options
                .take_parsed("json.timestamp-format.standard", TimestampStandard::parse)?
                .unwrap_or_default(),
        })
    }
}

/// Decodes newline-delimited JSON into batches of `schema`.
pub struct JsonDecoder {
    schema: SchemaRef,
    batch_size: usize,
    fail_on_missing_field: bool,
    decoder: Decoder,
}

impl JsonDecoder {
    pub fn new(
        schema: SchemaRef,
        batch_size: usize,
        options: &JsonOptions,
    ) -> Result<Self, ArrowError> {
        Ok(Self {
            decoder: build_decoder(&schema, batch_size)?,
            schema,
            batch_size,
            fail_on_missing_field: options.fail_on_missing_field,
        })
    }
}

/// Arrow's decoder of JSON lines into batches of `schema`, as this format reads them.
pub(super) fn build_decoder(schema: &SchemaRef, batch_size: usize) -> Result<Decoder, ArrowError> {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(batch_size)
        // Flink reads a JSON number or boolean into a STRING column as its text.
        .with_coerce_primitive(true)
        .build_decoder()
}

impl RecordDecoder for JsonDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.decoder.decode(buf)
    }

    fn buffered_rows(&self) -> usize {
        self.decoder.len()
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.decoder.flush()
    }

    fn reset(&mut self) -> Result<(), ArrowError> {
        self.decoder = build_decoder(&self.schema, self.batch_size)?;
        Ok(())
    }

    /// Arrow decodes an absent field and `null` alike; only rows with NULLs can hide a
    /// missing field, so clean batches skip the check.
    fn rows_to_check(&self, batch: &RecordBatch) -> Option<Vec<bool>> {
        if !self.fail_on_missing_field || !batch.columns().iter().any(|c| has_nulls(c.as_ref())) {
            return None;
        }
        let mut rows = vec![false; batch.num_rows()];
        for column in batch.columns() {
            mark_nulls(column.as_ref(), &mut rows);
        }
        Some(rows)
    }

    /// Arrow counts the record it is in the middle of, so a syntax error is in the last.
    fn failed_record(&self) -> Option<usize> {
        Some(self.decoder.len())
    }

    fn check_line(&self, line: &[u8]) -> Result<(), String> {
        let value: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        match &value {
            Value::Object(object) => check_present(object, self.schema.fields(), ""),
            _ => Err("expected a JSON object".into()),
        }
    }
}

fn has_nulls(array: &dyn Array) -> bool {
    array.null_count() > 0
        || matches!(array.data_type(), DataType::Struct(_))
            && array
                .as_struct()
                .columns()
                .iter()
                .any(|c| has_nulls(c.as_ref()))
}

/// Marks the rows where `array`, or a field nested in it, is NULL.
fn mark_nulls(array: &dyn Array, rows: &mut [bool]) {
    if let Some(nulls) = array.logical_nulls() {
        for row in nulls
            .iter()
            .enumerate()
            .filter(|(_, valid)| !valid)
            .map(|(row, _)| row)
        {
            rows[row] = true;
        }
    }
    if let DataType::Struct(_) = array.data_type() {
        for child in array.as_struct().columns() {
            mark_nulls(child.as_ref(), rows);
        }
    }
}

/// Fails on the first field of `fields` absent from `object`, looking inside nested rows.
fn check_present(object: &Map<String, Value>, fields: &Fields, path: &str) -> Result<(), String> {
    for field in fields {
        let name = format!("{path}{}", field.name());
        match (object.get(field.name()), field.data_type()) {
            (None, _) => return Err(format!("field '{name}' is missing")),
            (Some(Value::Object(inner)), DataType::Struct(children)) => {
                check_present(inner, children, &format!("{name}."))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes batches as JSON lines: `{"col":value,...}` per row, keys as the column names.
pub struct JsonLineEncoder {
    style: TextStyle,
    keys: Vec<Vec<u8>>,
}

impl JsonLineEncoder {
    pub fn new(schema: &SchemaRef, timestamps: TimestampStandard) -> Self {
        Self {
            style: TextStyle::Json { timestamps },
            keys: schema.fields().iter().map(|f| json_key(f.name())).collect(),
        }
    }

    /// Appends one line per row of `batch` to `out`.
    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        let values = batch
            .columns()
            .iter()
            .map(|c| ValueText::new(c.as_ref(), &self.style))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            write_json_object(&values, &self.keys, row, out);
            out.push(b'\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Decimal128Array, Float64Array, Int64Array, StringArray, StructArray,
        TimestampMillisecondArray,
    };
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    #[test]
    fn encodes_values_like_flink() {
        let inner = Fields::from(vec![Field::new("k", DataType::Utf8, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(
                "ltz",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("r", DataType::Struct(inner.clone()), true),
        ]));
        let r = StructArray::new(
            inner,
            vec![Arc::new(StringArray::from(vec![Some("v"), None]))],
            None,
        );
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a\"b\n"), None])),
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(Float64Array::from(vec![Some(1.0), Some(f64::NAN)])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1100), Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_609_330_394_123),
                    None,
                ])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_609_330_394_000), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(r),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        JsonLineEncoder::new(&schema, TimestampStandard::Sql)
            .encode(&batch, &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"name\":\"a\\\"b\\n\",\"n\":7,\"x\":1.0,\"price\":11.00,\
             \"ts\":\"2020-12-30 12:13:14.123\",\"ltz\":\"2020-12-30 12:13:14.000Z\",\"r\":{\"k\":\"v\"}}\n\
             {\"name\":null,\"n\":null,\"x\":\"NaN\",\"price\":-0.05,\"ts\":null,\"ltz\":null,\"r\":{\"k\":null}}\n"
        );

        let mut iso = Vec::new();
        JsonLineEncoder::new(&schema, TimestampStandard::Iso8601)
            .encode(&batch.slice(0, 1), &mut iso)
            .unwrap();
        assert!(String::from_utf8(iso)
            .unwrap()
            .contains("\"ts\":\"2020-12-30T12:13:14.123\""));
    }

    #[test]
    fn missing_field_check_looks_into_rows() {
        let inner = Fields::from(vec![Field::new("b", DataType::Int64, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("r", DataType::Struct(inner), true),
        ]));
        let options = JsonOptions {
            fail_on_missing_field: true,
            ..Default::default()
        };
        let decoder = JsonDecoder::new(schema, 16, &options).unwrap();
        assert_eq!(decoder.check_line(br#"{"a":null,"r":{"b":null}}"#), Ok(()));
        assert_eq!(decoder.check_line(br#"{"a":1,"r":null}"#), Ok(()));
        assert_eq!(
            decoder.check_line(br#"{"a":1,"r":{}}"#),
            Err("field 'r.b' is missing".to_string())
        );
        assert_eq!(
            decoder.check_line(br#"{"r":{}}"#),
            Err("field 'a' is missing".to_string())
        );
    }
}
