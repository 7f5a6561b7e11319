//! Flink's clock functions in a streaming job: evaluated for every row when it is processed
//! (not once when the job is planned), as Flink does in streaming mode.
//!
//! - `NOW()`, `CURRENT_TIMESTAMP`: the current instant, TIMESTAMP_LTZ(3);
//! - `PROCTIME()`: the same, as the processing-time attribute of a table or view;
//! - `LOCALTIMESTAMP`: the wall clock in `table.local-time-zone`, TIMESTAMP(3);
//! - `CURRENT_DATE`: today's date in that zone.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Date32Array, TimestampMillisecondArray};

use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use chrono::TimeZone;
use chrono_tz::Tz;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// The field metadata key that marks a processing-time attribute (a column computed by
/// `PROCTIME()`); DataFusion carries it through projections and views.
pub const PROCTIME_KEY: &str = "sluice.proctime";

/// Whether `field` is a processing-time attribute.
pub fn is_proctime(field: &Field) -> bool {
    field.metadata().contains_key(PROCTIME_KEY)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reading {
    Instant,
    /// `PROCTIME()`: the instant, marked as the processing-time attribute.
    ProcTime,
    LocalTimestamp,
    Date,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Clock {
    name: &'static str,
    aliases: Vec<String>,
    reading: Reading,
    zone: Tz,
    signature: Signature,
}

/// The clock functions, reading wall-clock time in `zone`.
pub fn all(zone: Tz) -> Vec<ScalarUDF> {
    let clock = |name, aliases: &[&str], reading| {
        ScalarUDF::from(Clock {
            name,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            reading,
            zone,
            signature: Signature::nullary(Volatility::Volatile),
        })
    };
    vec![
        ScalarUDF::from(CurrentWatermark::new()),
        clock("now", &["current_timestamp"], Reading::Instant),
        clock("proctime", &[], Reading::ProcTime),
        clock("localtimestamp", &[], Reading::LocalTimestamp),
        clock("current_date", &["curdate"], Reading::Date),
    ]
}

impl ScalarUDFImpl for Clock {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.reading {
            Reading::Instant | Reading::ProcTime => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
            }
            Reading::LocalTimestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Reading::Date => DataType::Date32,
        })
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = Field::new(self.name, self.return_type(&[])?, false);
        Ok(Arc::new(if self.reading == Reading::ProcTime {
            field.with_metadata(HashMap::from([(
                PROCTIME_KEY.to_string(),
                "true".to_string(),
            )]))
        } else {
            field
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = chrono::Utc::now();
        let local = self.zone.from_utc_datetime(&now.naive_utc()).naive_local();
        let n = args.number_rows;
        Ok(ColumnarValue::Array(match self.reading {
            Reading::Instant | Reading::ProcTime => Arc::new(
                TimestampMillisecondArray::from(vec![now.timestamp_millis(); n])
                    .with_timezone("UTC"),
            ),
            Reading::LocalTimestamp => Arc::new(TimestampMillisecondArray::from(vec![
                local
                    .and_utc()
                    .timestamp_millis(
                    );
                n
            ])),
            Reading::Date => {
                let days = (local.date() - chrono::NaiveDate::default()).num_days() as i32;
                Arc::new(Date32Array::from(vec![days; n]))
            }
        }))
    }
}

/// `CURRENT_WATERMARK(ts)`: the watermark of the operator evaluating it, typed as `ts`
/// (TIMESTAMP(3) or TIMESTAMP_LTZ(3)); NULL before the first watermark. Rows straight from
/// a source get the watermark they were read at (the one Sluice decides their lateness
/// by), so `WHERE ts > CURRENT_WATERMARK(ts)` keeps exactly the rows a window would take.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentWatermark {
    signature: Signature,
}

impl CurrentWatermark {
    pub fn new() -> Self {
        Self {
            // Volatile: read when rows are processed, never folded while planning.
            signature: Signature::any(1, Volatility::Volatile),
        }
    }
}

impl Default for CurrentWatermark {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for CurrentWatermark {
    fn name(&self) -> &str {
        "current_watermark"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(DataType::Timestamp(_, zone)) => {
                Ok(DataType::Timestamp(TimeUnit::Millisecond, zone.clone()))
            }
            other => Err(datafusion::error::DataFusionError::Plan(format!(
                "CURRENT_WATERMARK takes the time attribute of its table (a TIMESTAMP(3) or \
                 TIMESTAMP_LTZ(3) column), not {}",
                other.map_or("nothing".to_string(), |t| t.to_string())
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (watermark, rows) = sluice_engine::operator::current_watermark();
        let zone = match args.return_field.data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let known = |w: i64| (w != i64::MIN).then_some(w);
        // Rows straight from a source know the watermark each one was read at.
        let values: Vec<Option<i64>> = match rows {
            Some(rows) if rows.len() == args.number_rows => rows
                .values()
                .iter()
                .map(|r| known((*r).max(watermark)))
                .collect(),
            _ => vec![known(watermark); args.number_rows],
        };
        Ok(ColumnarValue::Array(Arc::new(
            TimestampMillisecondArray::from(values).with_timezone_opt(zone),
        )))
    }
}
