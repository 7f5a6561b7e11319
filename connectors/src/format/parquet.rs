//! The `parquet` format (write only): the options and the shape of the files.
//!
//! Files are read by Athena, Spark and Glue, which expect lowercase column names and
//! millisecond timestamps, so every column name is lowercased (nested ones too) and every
//! timestamp is written as INT64 `TIMESTAMP(MILLIS)`: a `TIMESTAMP_LTZ` column stays
//! UTC-adjusted, a `TIMESTAMP` column stays local (naive). Decimals become Parquet decimals
//! and statistics are written for every column.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use crate::option_values::parse_memory_size;

/// The `parquet.*` options.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetOptions {
    /// `parquet.compression` (`zstd`; also `snappy`, `uncompressed`).
    pub compression: Compression,
    /// `parquet.block.size` (128 MB): the row group size in bytes (estimated while writing).
    pub block_size: u64,
    /// `parquet.page.size` (1 MB): the data page size in bytes.
    pub page_size: u64,
    /// `parquet.enable.dictionary` (true).
    pub dictionary: bool,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            compression: Compression::ZSTD(ZstdLevel::default()),
            block_size: 128 << 20,
            page_size: 1 << 20,
            dictionary: true,
        }
    }
}

impl ParquetOptions {
    pub fn take(options: &mut Options) -> Result<Self> {
        let defaults = Self::default();
        Ok(Self {
            compression: options
                .take_parsed("parquet.compression", parse_compression)?
                .unwrap_or(defaults.compression),
            block_size: options
                .take_parsed("parquet.block.size", parse_positive_size)?
                .unwrap_or(defaults.block_size),
            page_size: options
                .take_parsed("parquet.page.size", parse_positive_size)?
                .unwrap_or(defaults.page_size),
            dictionary: options
                .take_bool("parquet.enable.dictionary")?
                .unwrap_or(defaults.dictionary),
        })
    }

    pub fn writer_properties(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(self.compression)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_bytes(Some(usize::try_from(self.block_size).unwrap_or(usize::MAX)))
            .set_data_page_size_limit(usize::try_from(self.page_size).unwrap_or(usize::MAX))
            .set_dictionary_enabled(self.dictionary)
            .build()
    }
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    match text.to_ascii_lowercase().as_str() {
        "zstd" => Ok(Compression::ZSTD(ZstdLevel::default())),
        "snappy" => Ok(Compression::SNAPPY),
        "uncompressed" | "none" => Ok(Compression::UNCOMPRESSED),
        _ => Err("expected 'zstd', 'snappy' or 'uncompressed'".into()),
    }
}

fn parse_positive_size(text: &str) -> Result<u64, String> {
    match parse_memory_size(text)? {
        0 => Err("must be more than 0 bytes".into()),
        n => Ok(n),
    }
}

/// The schema of the Parquet files for rows of `schema`; fails when two columns differ
/// only in case.
pub fn parquet_schema(table: &str, schema: &Schema) -> Result<SchemaRef> {
    let mut seen = HashSet::new();
    for field in schema.fields() {
        if !seen.insert(field.name().to_lowercase()) {
            return Err(Error::config(format!(
                "table '{table}': column '{}' clashes with another column once lowercased for Parquet",
                field.name()
            )));
        }
    }
    Ok(Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| parquet_field(f))
            .collect::<Vec<_>>(),
    )))
}

fn parquet_field(field: &Field) -> Field {
    Field::new(
        field.name().to_lowercase(),
        parquet_type(field.data_type()),
        field.is_nullable(),
    )
}

fn parquet_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| parquet_field(f)).collect::<Fields>())
        }
        other => other.clone(),
    }
}

/// Converts a batch to the file schema made by [`parquet_schema`].
pub fn to_parquet_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| conform(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

fn conform(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    match (array.data_type(), target) {
        (source, target) if source == target => Ok(array.clone()),
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let source = array.as_struct();
            let children = source
                .columns()
                .iter()
                .zip(fields)
                .map(|(child, field)| conform(child, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                source.nulls().cloned(),
            )?))
        }
        _ => cast(array, target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_uses_millis() {
        let schema = Schema::new(vec![
            Field::new("Amount", DataType::Float64, true),
            Field::new(
                "TS",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "Nested",
                DataType::Struct(Fields::from(vec![Field::new(
                    "Inner",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    true,
                )])),
                true,
            ),
        ]);
        let file = parquet_schema("t", &schema).unwrap();
        assert_eq!(file.field(0).name(), "amount");
        assert_eq!(
            file.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let DataType::Struct(inner) = file.field(2).data_type() else {
            panic!("struct expected")
        };
        assert_eq!(inner[0].name(), "inner");
        assert_eq!(
            inner[0].data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );

        let clash = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("A", DataType::Int32, true),
        ]);
        assert!(parquet_schema("t", &clash)
            .unwrap_err()
            .message()
            .contains("clashes"));
    }

    #[test]
    fn compression_names() {
        assert_eq!(parse_compression("SNAPPY"), Ok(Compression::SNAPPY));
        assert_eq!(
            parse_compression("uncompressed"),
            Ok(Compression::UNCOMPRESSED)
        );
        assert!(parse_compression("lzo").is_err());
    }
}
