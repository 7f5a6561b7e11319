//! Flink's clock functions in a streaming job: evaluated for every row when it is processed
//! (not once when the job is planned), as Flink does in streaming mode.
//!
//! - `NOW()`, `CURRENT_TIMESTAMP`: the current instant, TIMESTAMP_LTZ(3);
//! - `LOCALTIMESTAMP`: the wall clock in `table.local-time-zone`, TIMESTAMP(3);
//! - `CURRENT_DATE`: today's date in that zone.

use std::sync::Arc;

use arrow::array::{Date32Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::TimeZone;
use chrono_tz::Tz;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reading {
    Instant,
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
        clock("now", &["current_timestamp"], Reading::Instant),
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
            Reading::Instant => DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
            Reading::LocalTimestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Reading::Date => DataType::Date32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = chrono::Utc::now();
        let local = self.zone.from_utc_datetime(&now.naive_utc()).naive_local();
        let n = args.number_rows;
        Ok(ColumnarValue::Array(match self.reading {
            Reading::Instant => Arc::new(
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
