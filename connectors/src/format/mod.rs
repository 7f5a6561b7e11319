//! Record formats: how rows become bytes and back.
//!
//! A format is chosen with the `format` option and configured with its own prefixed options
//! (`json.*`, `csv.*`, `parquet.*`), which any connector that carries records can share:
//! the filesystem source and sink today, a message queue tomorrow.

pub mod csv;
pub mod flat_json;
#[cfg(test)]
mod flat_json_tests;
pub mod json;
pub mod lines;
pub mod parallel;
pub mod parquet;
mod projected;
pub mod text;

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use self::csv::{CsvDecoder, CsvOptions};
use self::flat_json::FlatJsonDecoder;
use self::json::{JsonDecoder, JsonOptions};
use self::lines::RecordDecoder;
use self::parquet::ParquetOptions;

/// The `format` option with the options of that format.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json(JsonOptions),
    Csv(CsvOptions),
    Parquet(ParquetOptions),
}

impl Format {
    /// Takes the required `format` option, which must be one of `supported`, and the
    /// options of the chosen format.
    pub fn take(options: &mut Options, supported: &[&str]) -> Result<Self> {
        let name = options.take_required("format")?;
        let lower = name.to_ascii_lowercase();
        if !supported.contains(&lower.as_str()) {
            return Err(Error::config(format!(
                "table '{}': format '{}' is not supported here (supported: {})",
                options.table(),
                name,
                supported.join(", ")
            )));
        }
        Ok(match lower.as_str() {
            "json" => Format::Json(JsonOptions::take(options)?),
            "csv" => Format::Csv(CsvOptions::take(options)?),
            _ => Format::Parquet(ParquetOptions::take(options)?),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Json(_) => "json",
            Format::Csv(_) => "csv",
            Format::Parquet(_) => "parquet",
        }
    }

    /// Whether malformed records are skipped (and counted) instead of failing the job.
    pub fn ignore_parse_errors(&self) -> bool {
        match self {
            Format::Json(o) => o.ignore_parse_errors,
            Format::Csv(o) => o.ignore_parse_errors,
            Format::Parquet(_) => false,
        }
    }

    /// Fails when a column's type cannot be read in this format.
    pub fn check_readable(&self, table: &str, schema: &SchemaRef) -> Result<()> {
        if let Format::Csv(_) = self {
            if let Some(f) = schema
                .fields()
                .iter()
                .find(|f| matches!(f.data_type(), DataType::Struct(_)))
            {
                return Err(Error::config(format!(
                    "table '{table}': column '{}' is a ROW, which the csv format cannot read",
                    f.name()
                )));
            }
        }
        Ok(())
    }

    /// A decoder into batches of `schema` that decodes only the columns in `projection`
    /// (indices into `schema`; None: all) where the format can skip the others (JSON, unless
    /// a missing field is an error), leaving them NULL.
    pub fn projected_decoder(
        &self,
        schema: SchemaRef,
        projection: Option<&[usize]>,
        batch_size: usize,
    ) -> Result<Box<dyn RecordDecoder>> {
        match (self, projection) {
            (Format::Json(o), Some(p))
                if !o.fail_on_missing_field && p.len() < schema.fields().len() =>
            {
                let read = Arc::new(schema.project(p)?);
                let inner = self.record_decoder(read, batch_size)?;
                Ok(Box::new(projected::Projected::new(
                    inner,
                    schema,
                    p.to_vec(),
                )))
            }
            _ => self.record_decoder(schema, batch_size),
        }
    }

    /// A decoder of line-delimited records of this format into batches of `schema`.
    pub fn record_decoder(
        &self,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<Box<dyn RecordDecoder>> {
        let json_error = |e: arrow::error::ArrowError| {
            Error::config(format!("json decoder: {}", lines::error_reason(&e)))
        };
        match self {
            // Flat records without the missing-field check (which the fast decoder does not
            // make) take the fast decoder; it decodes every line as `JsonDecoder` would.
            Format::Json(o) if !o.fail_on_missing_field && flat_json::supports(&schema) => Ok(
                Box::new(FlatJsonDecoder::new(schema, batch_size).map_err(json_error)?),
            ),
            Format::Json(o) => Ok(Box::new(
                JsonDecoder::new(schema, batch_size, o).map_err(json_error)?,
            )),
            Format::Csv(o) => Ok(Box::new(CsvDecoder::new(schema, batch_size, o)?)),
            Format::Parquet(_) => Err(Error::config(
                "the parquet format cannot be read line by line",
            )),
        }
    }
}
