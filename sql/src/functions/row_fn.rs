//! A scalar function computed row by row from string, integer and timestamp arguments: the
//! shape of most of Flink's built-ins that DataFusion lacks. Each one is a name, its argument
//! types (coerced by DataFusion), its result type and a function of one row's values.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use chrono_tz::Tz;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// One argument's value in a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    /// Milliseconds (wall clock for TIMESTAMP, UTC for TIMESTAMP_LTZ).
    Millis(i64),
}

impl<'a> Value<'a> {
    pub fn str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn millis(&self) -> Option<i64> {
        match self {
            Value::Millis(n) => Some(*n),
            _ => None,
        }
    }
}

/// A result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Null,
    Str(String),
    Int(i64),
    Bool(bool),
    Millis(i64),
}

/// The kinds of arguments and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Str,
    Int,
    /// A 32-bit integer result (Flink's INT).
    Int32,
    Bool,
    /// TIMESTAMP(3) (without time zone).
    Timestamp,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Str => DataType::Utf8,
            Kind::Int => DataType::Int64,
            Kind::Int32 => DataType::Int32,
            Kind::Bool => DataType::Boolean,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }
}

/// `name(args...)`; `arities` lists the accepted argument lists (optional trailing
/// arguments as a shorter list).
#[derive(Debug)]
pub struct RowFn {
    name: &'static str,
    signature: Signature,
    arities: Vec<Vec<Kind>>,
    result: Kind,
    f: Func,
}

/// What computes a row's result: from the arguments alone, or also from the session time
/// zone (None: UTC).
#[derive(Debug)]
pub enum Func {
    Plain(fn(&[Value]) -> Out),
    Zoned(fn(&[Value], Option<Tz>) -> Out, Option<Tz>),
}

/// Functions are told apart by name (one function per name) and the zone they compute in.
impl PartialEq for RowFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.zone() == other.zone()
    }
}

impl Eq for RowFn {}

impl std::hash::Hash for RowFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.zone().hash(state);
    }
}

impl RowFn {
    fn zone(&self) -> Option<Tz> {
        match self.f {
            Func::Plain(_) => None,
            Func::Zoned(_, zone) => zone,
        }
    }

    pub fn new(
        name: &'static str,
        arities: &[&[Kind]],
        result: Kind,
        volatility: Volatility,
        f: Func,
    ) -> Self {
        RowFn {
            name,
            signature: Signature::user_defined(volatility),
            arities: arities.iter().map(|a| a.to_vec()).collect(),
            result,
            f,
        }
    }
}

/// The type an argument of `kind` is coerced to from `given`, if it can be.
fn coerce(kind: Kind, given: &DataType) -> Option<DataType> {
    match (kind, given) {
        (Kind::Str, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null) => {
            Some(DataType::Utf8)
        }
        (Kind::Int | Kind::Int32, t) if t.is_integer() || *t == DataType::Null => {
            Some(DataType::Int64)
        }
        (Kind::Bool, DataType::Boolean | DataType::Null) => Some(DataType::Boolean),
        (Kind::Timestamp, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) => {
            Some(given.clone())
        }
        (Kind::Timestamp, DataType::Null) => Some(Kind::Timestamp.data_type()),
        _ => None,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "STRING",
        Kind::Int | Kind::Int32 => "an integer",
        Kind::Bool => "BOOLEAN",
        Kind::Timestamp => "a TIMESTAMP",
    }
}

/// The values of argument column `array` at every row.
fn column_values(array: &ArrayRef) -> Result<Vec<Value<'_>>> {
    let n = array.len();
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::Str(a.value(i))
                    }
                })
                .collect()
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::Str(a.value(i))
                    }
                })
                .collect()
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::Str(a.value(i))
                    }
                })
                .collect()
        }
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            let ms = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            let a = ms.as_primitive::<TimestampMillisecondType>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::Millis(a.value(i))
                    }
                })
                .collect()
        }
        t if t.is_integer() => {
            let ints = cast(array, &DataType::Int64)?;
            let a = ints.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::Int(a.value(i))
                    }
                })
                .collect()
        }
        other => {
            return Err(DataFusionError::Plan(format!(
                "unexpected argument type {other}"
            )))
        }
    })
}

impl ScalarUDFImpl for RowFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let Some(kinds) = self.arities.iter().find(|a| a.len() == args.len()) else {
            let counts: Vec<String> = self.arities.iter().map(|a| a.len().to_string()).collect();
            return Err(DataFusionError::Plan(format!(
                "{} takes {} arguments, not {}",
                self.name.to_uppercase(),
                counts.join(" or "),
                args.len()
            )));
        };
        kinds
            .iter()
            .zip(args)
            .enumerate()
            .map(|(i, (k, t))| {
                coerce(*k, t).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{}: argument {} must be {}, not {}",
                        self.name.to_uppercase(),
                        i + 1,
                        kind_name(*k),
                        crate::types::flink_name(t)
                    ))
                })
            })
            .collect()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.result.data_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<_>>>()?;
        let columns = arrays
            .iter()
            .map(column_values)
            .collect::<Result<Vec<_>>>()?;
        let mut row = Vec::with_capacity(columns.len());
        let mut outs = Vec::with_capacity(n);
        for i in 0..n {
            row.clear();
            row.extend(columns.iter().map(|c| c[i].clone()));
            outs.push(match &self.f {
                Func::Plain(f) => f(&row),
                Func::Zoned(f, zone) => f(&row, *zone),
            });
        }
        let array: ArrayRef = match self.result {
            Kind::Str => {
                let mut b = StringBuilder::new();
                for o in outs {
                    match o {
                        Out::Str(s) => b.append_value(s),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Int => {
                let mut b = Int64Builder::new();
                for o in outs {
                    match o {
                        Out::Int(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Int32 => {
                let mut b = Int32Builder::new();
                for o in outs {
                    match o {
                        Out::Int(v) => b.append_value(v as i32),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                for o in outs {
                    match o {
                        Out::Bool(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Timestamp => {
                let mut b = TimestampMillisecondBuilder::new();
                for o in outs {
                    match o {
                        Out::Millis(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(array))
    }
}
