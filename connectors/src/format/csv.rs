//! The `csv` format: one record per line, no header, columns in table order.
//!
//! Decoding uses Arrow's CSV decoder (through [`LineReader`](super::lines)). An empty field
//! is NULL, and so is a field equal to `csv.null-literal`. Encoding quotes a field only when
//! it contains the delimiter, the quote character or a line break, and writes values as the
//! JSON format does (nested rows as their JSON text).

use arrow::array::RecordBatch;
use arrow::csv::reader::{Decoder, ReaderBuilder};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use regex::Regex;
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use super::lines::RecordDecoder;
use super::text::{write_delimited_rows, TextStyle, TimestampStandard};
use crate::option_values::parse_char;

/// The `csv.*` options.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// `csv.field-delimiter` (`,`).
    pub delimiter: u8,
    /// `csv.quote-character` (`"`).
    pub quote: u8,
    /// `csv.ignore-parse-errors` (false): skip malformed lines (counted as dropped).
    pub ignore_parse_errors: bool,
    /// `csv.null-literal` (none): a field with this text is NULL (empty fields are NULL
    /// too); written for NULL values (empty when unset).
    pub null_literal: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            ignore_parse_errors: false,
            null_literal: None,
        }
    }
}

impl CsvOptions {
    pub fn take(options: &mut Options) -> Result<Self> {
        let defaults = Self::default();
        Ok(Self {
            delimiter: options
                .take_parsed("csv.field-delimiter", parse_char)?
                .unwrap_or(defaults.delimiter),
            quote: options
                .take_parsed("csv.quote-character", parse_char)?
                .unwrap_or(defaults.quote),
            ignore_parse_errors: options
                .take_bool("csv.ignore-parse-errors")?
                .unwrap_or(false),
            null_literal: options.take(&["csv.null-literal"]),
        })
    }

    /// The text style of written fields. CSV has no timestamp option of its own in Flink;
    /// it writes the SQL standard.
    pub fn text_style(&self) -> TextStyle {
        TextStyle::Csv {
            timestamps: TimestampStandard::Sql,
            delimiter: self.delimiter,
            quote: self.quote,
            null_literal: self.null_literal.clone().unwrap_or_default(),
        }
    }

    /// Which fields read as NULL: empty ones, and the null literal when one is set.
    fn null_regex(&self) -> Result<Option<Regex>> {
        let Some(literal) = &self.null_literal else {
            return Ok(None);
        };
        Regex::new(&format!("^(?:{})?$", regex::escape(literal)))
            .map(Some)
            .map_err(|e| Error::internal(format!("csv null literal pattern: {e}")))
    }
}

/// Decodes CSV lines into batches of `schema`.
pub struct CsvDecoder {
    schema: SchemaRef,
    batch_size: usize,
    options: CsvOptions,
    null_regex: Option<Regex>,
    decoder: Decoder,
}

impl CsvDecoder {
    pub fn new(schema: SchemaRef, batch_size: usize, options: &CsvOptions) -> Result<Self> {
        let null_regex = options.null_regex()?;
        let decoder = build_decoder(&schema, batch_size, options, &null_regex);
        Ok(Self {
            schema,
            batch_size,
            options: options.clone(),
            null_regex,
            decoder,
        })
    }
}

fn build_decoder(
    schema: &SchemaRef,
    batch_size: usize,
    options: &CsvOptions,
    null_regex: &Option<Regex>,
) -> Decoder {
    let builder = ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(options.delimiter)
        .with_quote(options.quote)
        .with_batch_size(batch_size);
    match null_regex {
        Some(regex) => builder.with_null_regex(regex.clone()),
        None => builder,
    }
    .build_decoder()
}

impl RecordDecoder for CsvDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.decoder.decode(buf)
    }

    fn buffered_rows(&self) -> usize {
        // Arrow's CSV decoder reports room left rather than rows held.
        self.batch_size - self.decoder.capacity()
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.decoder.flush()
    }

    fn reset(&mut self) -> Result<(), ArrowError> {
        self.decoder = build_decoder(
            &self.schema,
            self.batch_size,
            &self.options,
            &self.null_regex,
        );
        Ok(())
    }
}

/// Writes batches as CSV lines (no header).
pub struct CsvLineEncoder {
    style: TextStyle,
    delimiter: [u8; 1],
}

impl CsvLineEncoder {
    pub fn new(options: &CsvOptions) -> Self {
        Self {
            style: options.text_style(),
            delimiter: [options.delimiter],
        }
    }

    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        write_delimited_rows(batch.columns(), &self.style, b"", &self.delimiter, b"", out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn encodes_with_quoting_only_when_needed() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("i", DataType::Int32, true),
            Field::new("d", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("plain"),
                    Some("a,b"),
                    Some("say \"hi\""),
                    None,
                ])),
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)])),
                Arc::new(Float64Array::from(vec![
                    Some(0.1),
                    Some(2.0),
                    None,
                    Some(1e20),
                ])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        CsvLineEncoder::new(&CsvOptions::default())
            .encode(&batch, &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,1,0.1\n\"a,b\",,2.0\n\"say \"\"hi\"\"\",3,\n,4,1e20\n"
        );

        let options = CsvOptions {
            delimiter: b';',
            null_literal: Some("\\N".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        CsvLineEncoder::new(&options)
            .encode(&batch, &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain;1;0.1\na,b;\\N;2.0\n\"say \"\"hi\"\"\";3;\\N\n\\N;4;1e20\n"
        );
    }
}
