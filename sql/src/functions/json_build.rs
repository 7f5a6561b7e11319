//! Flink's JSON construction functions, as `json_syntax` rewrites their calls:
//!
//! - `sluice_json_object(mode, k1, v1, ...)`: `JSON_OBJECT`, keys in the order written;
//! - `sluice_json_array(mode, v1, ...)`: `JSON_ARRAY`;
//! - `JSON_STRING(v)`: a value as JSON text (NULL for NULL);
//! - `sluice_fail(message)`: fails the job with `message` when evaluated for any row (the
//!   `ERROR ON EMPTY` / `ERROR ON ERROR` of `JSON_VALUE`).
//!
//! `mode` is `'NULL'` (a NULL value is written as JSON null) or `'ABSENT'` (left out). A
//! string is written as a JSON string, except the result of another JSON construction call,
//! which is inserted as JSON (its field carries [`JSON_KEY`]), as in Flink.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use serde_json::Value as Json;

/// The field metadata key that marks a string as JSON text made by a construction call.
pub const JSON_KEY: &str = "sluice.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Build {
    Object,
    Array,
    /// `JSON_STRING(v)`.
    String,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuild {
    name: &'static str,
    build: Build,
    signature: Signature,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Fail {
    signature: Signature,
}

/// The functions of this module.
pub fn all() -> Vec<ScalarUDF> {
    let build = |name, build, signature| {
        ScalarUDF::from(JsonBuild {
            name,
            build,
            signature,
        })
    };
    vec![
        build(
            "sluice_json_object",
            Build::Object,
            Signature::variadic_any(Volatility::Immutable),
        ),
        build(
            "sluice_json_array",
            Build::Array,
            Signature::variadic_any(Volatility::Immutable),
        ),
        build(
            "json_string",
            Build::String,
            Signature::any(1, Volatility::Immutable),
        ),
        // Volatile: never evaluated while the job is planned (constant folding).
        ScalarUDF::from(Fail {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }),
    ]
}

/// The first value of the first argument, a string literal (a mode, a message).
fn first_string(arrays: &[ArrayRef]) -> Option<String> {
    arrays
        .first()
        .filter(|a| a.data_type() == &DataType::Utf8 && !a.is_empty() && a.is_valid(0))
        .map(|a| a.as_string::<i32>().value(0).to_string())
}

/// One value of `array` at `row` as JSON; `raw`: the array holds JSON text.
fn to_json(array: &ArrayRef, row: usize, raw: bool) -> Result<Json> {
    if array.is_null(row) {
        return Ok(Json::Null);
    }
    Ok(match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().value(row),
                DataType::LargeUtf8 => array.as_string::<i64>().value(row),
                _ => array.as_string_view().value(row),
            };
            if raw {
                serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_string()))
            } else {
                Json::String(text.to_string())
            }
        }
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Null => Json::Null,
        t if t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            let text = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?
                .value(row)
                .to_string();
            serde_json::from_str::<serde_json::Number>(&text)
                .map(Json::Number)
                .unwrap_or(Json::Null)
        }
        _ => Json::String(
            ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?
                .value(row)
                .to_string(),
        ),
    })
}

impl ScalarUDFImpl for JsonBuild {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = Field::new(self.name, DataType::Utf8, self.build == Build::String);
        Ok(Arc::new(if self.build == Build::String {
            field
        } else {
            field.with_metadata(HashMap::from([(JSON_KEY.to_string(), "true".to_string())]))
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let raw: Vec<bool> = args
            .arg_fields
            .iter()
            .map(|f| f.metadata().contains_key(JSON_KEY))
            .collect();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (absent, values) = match self.build {
            Build::String => (false, &arrays[..]),
            _ => {
                let mode = first_string(&arrays)
                    .ok_or_else(|| DataFusionError::Plan(format!("{}: no mode", self.name)))?;
                (mode == "ABSENT", &arrays[1..])
            }
        };
        let raw = if self.build == Build::String {
            &raw[..]
        } else {
            &raw[1..]
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        let mut text = String::new();
        for row in 0..rows {
            text.clear();
            match self.build {
                Build::String => {
                    let v = to_json(&values[0], row, raw[0])?;
                    if v.is_null() {
                        out.append_null();
                        continue;
                    }
                    text.push_str(&v.to_string());
                }
                Build::Array => {
                    text.push('[');
                    let mut first = true;
                    for (a, r) in values.iter().zip(raw) {
                        let v = to_json(a, row, *r)?;
                        if v.is_null() && absent {
                            continue;
                        }
                        if !first {
                            text.push(',');
                        }
                        first = false;
                        let _ = write!(text, "{v}");
                    }
                    text.push(']');
                }
                Build::Object => {
                    if values.len() % 2 != 0 {
                        return Err(DataFusionError::Plan(
                            "JSON_OBJECT takes key and value pairs".into(),
                        ));
                    }
                    text.push('{');
                    let mut first = true;
                    for pair in 0..values.len() / 2 {
                        let key = match to_json(&values[2 * pair], row, false)? {
                            Json::String(k) => k,
                            Json::Null => {
                                return Err(DataFusionError::Execution(
                                    "JSON_OBJECT: a key is NULL".into(),
                                ))
                            }
                            other => other.to_string(),
                        };
                        let v = to_json(&values[2 * pair + 1], row, raw[2 * pair + 1])?;
                        if v.is_null() && absent {
                            continue;
                        }
                        if !first {
                            text.push(',');
                        }
                        first = false;
                        let _ = write!(text, "{}:{v}", Json::String(key));
                    }
                    text.push('}');
                }
            }
            out.append_value(&text);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for Fail {
    fn name(&self) -> &str {
        "sluice_fail"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.number_rows == 0 {
            return Ok(ColumnarValue::Array(Arc::new(
                StringBuilder::new().finish(),
            )));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let message = first_string(&arrays).unwrap_or_default();
        Err(DataFusionError::Execution(message))
    }
}
