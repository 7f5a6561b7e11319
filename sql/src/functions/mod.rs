//! Flink SQL functions that DataFusion does not have under the same name and meaning.
//!
//! - `TO_TIMESTAMP_LTZ(epoch, precision)`: epoch seconds (precision 0) or milliseconds
//!   (precision 3) to a `TIMESTAMP_LTZ(3)`.
//! - `DATE_FORMAT(timestamp, 'yyyy-MM-dd HH:mm')`: formats with a Java-style pattern, in the
//!   session time zone for `TIMESTAMP_LTZ` values.
//! - `MOD(a, b)`: the remainder, as Flink's `MOD` (DataFusion only has the `%` operator).
//! - The string, JSON and time functions of [`flink`] (SPLIT_INDEX, REGEXP_EXTRACT, IS_DIGIT,
//!   HASH_CODE, LOCATE, CONCAT, JSON_VALUE, JSON_QUERY, JSON_EXISTS, TO_TIMESTAMP,
//!   UNIX_TIMESTAMP, TIMESTAMPADD, TIMESTAMPDIFF, CEIL(ts TO unit)), on [`row_fn`].
//! - The JSON construction functions of [`json_build`] (JSON_OBJECT, JSON_ARRAY, JSON_STRING)
//!   and the pieces of JSON_VALUE's RETURNING / ON EMPTY / ON ERROR clauses.
//! - The [`clock`] functions (NOW, CURRENT_TIMESTAMP, LOCALTIMESTAMP, CURRENT_DATE), per row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringBuilder, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use chrono::TimeZone;
use chrono_tz::Tz;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

pub mod clock;
mod flink;
mod java_pattern;
pub mod json_build;

pub use java_pattern::java_to_chrono;
mod row_fn;

/// All Sluice functions, for registration in a session.
pub fn all(time_zone: Tz) -> Vec<ScalarUDF> {
    let zone = (time_zone != Tz::UTC && time_zone != Tz::Etc__UTC).then_some(time_zone);
    let mut functions = vec![
        ScalarUDF::from(ToTimestampLtz::new()),
        ScalarUDF::from(DateFormat::new(time_zone)),
        ScalarUDF::from(Mod::new()),
        flink::unix_timestamp(zone),
        flink::from_unixtime(zone),
    ];
    functions.extend(flink::all());
    functions.extend(json_build::all());
    functions.extend(clock::all(time_zone));
    functions
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestampLtz {
    signature: Signature,
}

impl ToTimestampLtz {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn scalar_i64(value: &ColumnarValue, what: &str) -> Result<i64> {
    match value {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(v)) => Ok(v),
            _ => Err(DataFusionError::Plan(format!(
                "{what} must be a constant number"
            ))),
        },
        ColumnarValue::Array(_) => Err(DataFusionError::Plan(format!(
            "{what} must be a constant number"
        ))),
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !args[0].is_numeric() && args[0] != DataType::Null {
            return Err(DataFusionError::Plan(format!(
                "TO_TIMESTAMP_LTZ expects a number of seconds or milliseconds, found {}",
                crate::types::flink_name(&args[0])
            )));
        }
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some(Arc::from("UTC")),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let multiplier = match scalar_i64(&args.args[1], "TO_TIMESTAMP_LTZ precision")? {
            0 => 1000,
            3 => 1,
            p => {
                return Err(DataFusionError::Plan(format!(
                    "TO_TIMESTAMP_LTZ precision must be 0 or 3, not {p}"
                )))
            }
        };
        let values = args.args[0].to_array(args.number_rows)?;
        let values = cast(&values, &DataType::Int64)?;
        let values = values.as_primitive::<Int64Type>();
        let millis: Int64Array = if multiplier == 1 {
            values.clone()
        } else {
            values.unary(|v| v.saturating_mul(multiplier))
        };
        let result =
            TimestampMillisecondArray::new(millis.values().clone(), millis.nulls().cloned())
                .with_timezone("UTC");
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFormat {
    signature: Signature,
    time_zone: Tz,
}

impl DateFormat {
    fn new(time_zone: Tz) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            time_zone,
        }
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Timestamp(..) | DataType::Date32 | DataType::Null | DataType::Utf8 => {
                Ok(DataType::Utf8)
            }
            other => Err(DataFusionError::Plan(format!(
                "DATE_FORMAT expects a timestamp, found {}",
                crate::types::flink_name(other)
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let pattern = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))) => java_to_chrono(p),
            _ => {
                return Err(DataFusionError::Plan(
                    "DATE_FORMAT expects a constant pattern".into(),
                ))
            }
        };
        let values = args.args[0].to_array(args.number_rows)?;
        let local = matches!(values.data_type(), DataType::Timestamp(_, Some(_)));
        let target = DataType::Timestamp(TimeUnit::Millisecond, None);
        let millis: ArrayRef = cast(&values, &target)?;
        let millis = millis.as_primitive::<TimestampMillisecondType>();
        let mut builder = StringBuilder::with_capacity(millis.len(), millis.len() * pattern.len());
        for v in millis.iter() {
            match v.and_then(chrono::DateTime::from_timestamp_millis) {
                Some(utc) if local => builder.append_value(
                    self.time_zone
                        .from_utc_datetime(&utc.naive_utc())
                        .format(&pattern)
                        .to_string(),
                ),
                Some(utc) => builder.append_value(utc.naive_utc().format(&pattern).to_string()),
                None => builder.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Mod {
    signature: Signature,
}

impl Mod {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 || !args.iter().all(|t| t.is_numeric() || *t == DataType::Null) {
            return Err(DataFusionError::Plan("MOD expects two numbers".into()));
        }
        let common = if args.iter().all(|t| t.is_integer() || *t == DataType::Null) {
            DataType::Int64
        } else {
            DataType::Float64
        };
        Ok(vec![common.clone(), common])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = args.args[0].to_array(args.number_rows)?;
        let b = args.args[1].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(arrow::compute::kernels::numeric::rem(
            &a, &b,
        )?))
    }
}
