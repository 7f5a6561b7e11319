//! The print sink: every row written to standard output (or error) as Flink prints it,
//! `+I[v1, v2, ...]`, with timestamps as `yyyy-MM-dd HH:mm:ss.SSS` for readability.

use std::io::Write;

use arrow::array::RecordBatch;
use sluice_engine::connector::{Options, SinkConnector, SinkContext, SinkWriter, TableSpec};
use sluice_engine::{Error, Result};

use super::config::PrintConfig;
use crate::format::text::{write_delimited_rows, TextStyle};

/// A print table.
pub struct PrintSink {
    table: String,
    config: PrintConfig,
}

impl PrintSink {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        Ok(Self {
            table: spec.name,
            config: PrintConfig::take(options)?,
        })
    }
}

impl SinkConnector for PrintSink {
    fn describe(&self) -> String {
        let target = if self.config.standard_error {
            "stderr"
        } else {
            "stdout"
        };
        match &self.config.identifier {
            Some(id) => format!("print({target}) print-identifier={id}"),
            None => format!("print({target})"),
        }
    }

    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter>> {
        let (instance, parallelism) = (ctx.instance, ctx.parallelism);
        let mut prefix = self.config.prefix(instance, parallelism).into_bytes();
        prefix.extend_from_slice(b"+I[");
        Ok(Box::new(PrintWriter {
            table: self.table.clone(),
            standard_error: self.config.standard_error,
            prefix,
            buffer: Vec::new(),
        }))
    }
}

struct PrintWriter {
    table: String,
    standard_error: bool,
    /// `N> +I[`: everything before the first value.
    prefix: Vec<u8>,
    buffer: Vec<u8>,
}

static PRINT_STYLE: TextStyle = TextStyle::Print;

impl PrintWriter {
    /// The text of `batch`, one line per row.
    fn render(&mut self, batch: &RecordBatch) -> Result<&[u8]> {
        self.buffer.clear();
        write_delimited_rows(
            batch.columns(),
            &PRINT_STYLE,
            &self.prefix,
            b", ",
            b"]",
            &mut self.buffer,
        )
        .map_err(|e| Error::internal(format!("table '{}': {e}", self.table)))?;
        Ok(&self.buffer)
    }
}

impl SinkWriter for PrintWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let table = self.table.clone();
        let standard_error = self.standard_error;
        let text = self.render(batch)?;
        // One lock and one write per batch, so parallel instances do not interleave rows.
        let written = if standard_error {
            std::io::stderr().lock().write_all(text)
        } else {
            std::io::stdout().lock().write_all(text)
        };
        written.map_err(|e| Error::connector(format!("table '{table}': cannot print: {e}")))
    }

    fn finish(&mut self) -> Result<()> {
        let flushed = if self.standard_error {
            std::io::stderr().flush()
        } else {
            std::io::stdout().flush()
        };
        flushed.map_err(|e| Error::connector(format!("table '{}': cannot print: {e}", self.table)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Float64Array, Int32Array, StringArray, StructArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};

    use super::*;

    #[test]
    fn renders_rows_like_flink() {
        let inner = Fields::from(vec![Field::new("a", DataType::Int32, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("r", DataType::Struct(inner.clone()), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a, b"), None])),
                Arc::new(Float64Array::from(vec![Some(2.0), Some(0.25)])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_586_938_200_000), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(StructArray::new(
                    inner,
                    vec![Arc::new(Int32Array::from(vec![1, 2]))],
                    None,
                )),
            ],
        )
        .unwrap();
        let values = [("print-identifier", "out")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut options = Options::new("p", values);
        let spec = TableSpec {
            name: "p".into(),
            schema: batch.schema(),
            metadata: vec![],
            partition_by: vec![],
            projection: None,
        };
        let sink = PrintSink::new(spec, &mut options).unwrap();
        assert_eq!(sink.describe(), "print(stdout) print-identifier=out");
        let mut writer = PrintWriter {
            table: "p".into(),
            standard_error: false,
            prefix: b"out:2> +I[".to_vec(),
            buffer: Vec::new(),
        };
        let text = String::from_utf8(writer.render(&batch).unwrap().to_vec()).unwrap();
        assert_eq!(
            text,
            "out:2> +I[a, b, 2.0, 2020-04-15 08:10:00.000, +I[1]]\nout:2> +I[null, 0.25, null, +I[2]]\n"
        );
    }
}
