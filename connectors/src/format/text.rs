//! Arrow values rendered as text, the way Flink writes them.
//!
//! JSON and CSV files, the `print` sink and Hive partition folder names all turn values into
//! text; they differ only in quoting, in how NULL and nested rows look, and in how much of a
//! timestamp they show. One [`ValueText`] per column picks the rendering routine once per
//! batch so the per-row work is a call and a buffer append.

use std::io::Write as _;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Datelike, NaiveDate, Timelike};

/// `json.timestamp-format.standard`: how timestamps are written in JSON (and CSV) text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimestampStandard {
    /// `2020-12-30 12:13:14.123` (Flink's default).
    #[default]
    Sql,
    /// `2020-12-30T12:13:14.123`.
    Iso8601,
}

impl TimestampStandard {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().as_str() {
            "SQL" => Ok(Self::Sql),
            "ISO-8601" => Ok(Self::Iso8601),
            _ => Err("expected 'SQL' or 'ISO-8601'".into()),
        }
    }
}

/// Where the text goes; decides quoting, NULL, nesting and timestamp detail.
#[derive(Debug, Clone)]
pub enum TextStyle {
    /// JSON values: strings quoted and escaped, NULL as `null`, rows as objects, and
    /// `TIMESTAMP_LTZ` values in UTC with a `Z` suffix (Flink's JSON format does the same).
    Json { timestamps: TimestampStandard },
    /// CSV fields: quoted only when they contain the delimiter, the quote or a line break;
    /// NULL as `null_literal`; rows as their JSON text.
    Csv {
        timestamps: TimestampStandard,
        delimiter: u8,
        quote: u8,
        null_literal: String,
    },
    /// Flink's `print` sink: bare values, NULL as `null`, rows as `+I[...]`.
    Print,
    /// Hive partition values: bare values, timestamps to the second. The caller escapes
    /// the result and handles NULL (`__DEFAULT_PARTITION__`).
    Partition,
}

impl TextStyle {
    fn timestamps(&self) -> TimestampStandard {
        match self {
            TextStyle::Json { timestamps } | TextStyle::Csv { timestamps, .. } => *timestamps,
            TextStyle::Print | TextStyle::Partition => TimestampStandard::Sql,
        }
    }

    /// The style of the members of a nested row: CSV writes rows as JSON objects.
    fn nested(&self) -> &TextStyle {
        static JSON_SQL: TextStyle = TextStyle::Json {
            timestamps: TimestampStandard::Sql,
        };
        static JSON_ISO: TextStyle = TextStyle::Json {
            timestamps: TimestampStandard::Iso8601,
        };
        match self {
            TextStyle::Csv {
                timestamps: TimestampStandard::Sql,
                ..
            } => &JSON_SQL,
            TextStyle::Csv {
                timestamps: TimestampStandard::Iso8601,
                ..
            } => &JSON_ISO,
            other => other,
        }
    }

    /// Whether dates and timestamps, being text, need quotes (JSON strings).
    fn quotes_text(&self) -> bool {
        matches!(self, TextStyle::Json { .. })
    }

    fn null_text(&self) -> &[u8] {
        match self {
            TextStyle::Json { .. } | TextStyle::Print => b"null",
            TextStyle::Csv { null_literal, .. } => null_literal.as_bytes(),
            TextStyle::Partition => b"",
        }
    }
}

type WriteFn<'a> = Box<dyn Fn(usize, &mut Vec<u8>) + 'a>;

/// Renders the values of one column in one [`TextStyle`].
pub struct ValueText<'a> {
    nulls: Option<NullBuffer>,
    null_text: &'a [u8],
    write: WriteFn<'a>,
}

impl<'a> ValueText<'a> {
    /// Prepares the rendering of `array` (any type; types without a dedicated routine fall
    /// back to Arrow's display form, rendered as a string).
    pub fn new(array: &'a dyn Array, style: &'a TextStyle) -> Result<Self, ArrowError> {
        Ok(Self {
            nulls: array.logical_nulls(),
            null_text: style.null_text(),
            write: value_writer(array, style)?,
        })
    }

    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    /// Appends the text of `row` (the style's NULL text when the value is NULL).
    pub fn write(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(self.null_text);
        } else {
            (self.write)(row, out);
        }
    }
}

/// Appends a `Display` value. Writing into a `Vec<u8>` cannot fail, so the result is moot.
fn push_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    let _ = write!(out, "{value}");
}

/// Writes a string in the style's quoting.
fn push_str(out: &mut Vec<u8>, s: &str, style: &TextStyle) {
    match style {
        TextStyle::Json { .. } => push_json_string(out, s),
        TextStyle::Csv {
            delimiter, quote, ..
        } => push_csv_field(out, s.as_bytes(), *delimiter, *quote),
        TextStyle::Print | TextStyle::Partition => out.extend_from_slice(s.as_bytes()),
    }
}

/// A JSON string literal with the escapes JSON requires.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                push_display(out, format_args!("\\u{b:04x}"));
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A CSV field, quoted (with doubled quotes) only when it has to be.
fn push_csv_field(out: &mut Vec<u8>, field: &[u8], delimiter: u8, quote: u8) {
    let needs_quotes = field
        .iter()
        .any(|&b| b == delimiter || b == quote || b == b'\n' || b == b'\r');
    if !needs_quotes {
        out.extend_from_slice(field);
        return;
    }
    out.push(quote);
    for &b in field {
        if b == quote {
            out.push(quote);
        }
        out.push(b);
    }
    out.push(quote);
}

fn value_writer<'a>(array: &'a dyn Array, style: &'a TextStyle) -> Result<WriteFn<'a>, ArrowError> {
    // Every downcast below (`as_primitive`, `as_string`, ...) is guarded by the match on
    // the array's own data type, so it cannot fail.
    let write: WriteFn<'a> = match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            Box::new(move |row, out| push_str(out, a.value(row), style))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            Box::new(move |row, out| push_str(out, a.value(row), style))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            Box::new(move |row, out| push_str(out, a.value(row), style))
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            Box::new(move |row, out| {
                out.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
            })
        }
        DataType::Int8 => integer_writer::<Int8Type>(array),
        DataType::Int16 => integer_writer::<Int16Type>(array),
        DataType::Int32 => integer_writer::<Int32Type>(array),
        DataType::Int64 => integer_writer::<Int64Type>(array),
        DataType::UInt8 => integer_writer::<UInt8Type>(array),
        DataType::UInt16 => integer_writer::<UInt16Type>(array),
        DataType::UInt32 => integer_writer::<UInt32Type>(array),
        DataType::UInt64 => integer_writer::<UInt64Type>(array),
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            Box::new(move |row, out| push_float(out, a.value(row), style))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            Box::new(move |row, out| push_float(out, a.value(row), style))
        }
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive::<Decimal128Type>();
            let scale = *scale;
            Box::new(move |row, out| push_decimal(out, a.value(row), scale))
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            let quoted = style.quotes_text();
            Box::new(move |row, out| push_quoted(out, quoted, |out| push_date(out, a.value(row))))
        }
        DataType::Timestamp(unit, tz) => timestamp_writer(array, *unit, tz.is_some(), style),
        DataType::Struct(fields) => {
            let columns = array.as_struct().columns();
            let children = columns
                .iter()
                .map(|c| ValueText::new(c.as_ref(), style.nested()))
                .collect::<Result<Vec<_>, _>>()?;
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            struct_writer(children, names, style)
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            Box::new(move |row, out| {
                let text = formatter.value(row).to_string();
                push_str(out, &text, style)
            })
        }
    };
    Ok(write)
}

fn integer_writer<'a, T>(array: &'a dyn Array) -> WriteFn<'a>
where
    T: arrow::datatypes::ArrowPrimitiveType,
    T::Native: std::fmt::Display,
{
    let a = array.as_primitive::<T>();
    Box::new(move |row, out| push_display(out, a.value(row)))
}

/// Floats in their shortest round-trip form (`1.0`, `0.1`, `1e20`). JSON has no NaN or
/// infinity, so there they become the strings Flink's JSON writer produces.
fn push_float<F: Into<f64> + std::fmt::Debug + Copy>(
    out: &mut Vec<u8>,
    value: F,
    style: &TextStyle,
) {
    // `Debug` of a float is its shortest round-trip form and keeps `.0` on whole numbers.
    let wide: f64 = value.into();
    if wide.is_finite() {
        push_display(out, format_args!("{value:?}"));
        return;
    }
    let name = if wide.is_nan() {
        "NaN"
    } else if wide > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    match style {
        TextStyle::Json { .. } => push_json_string(out, name),
        _ => out.extend_from_slice(name.as_bytes()),
    }
}

/// Runs `write`, inside double quotes when `quoted`.
fn push_quoted(out: &mut Vec<u8>, quoted: bool, write: impl FnOnce(&mut Vec<u8>)) {
    if quoted {
        out.push(b'"');
    }
    write(out);
    if quoted {
        out.push(b'"');
    }
}

/// A decimal with exactly `scale` fraction digits: 1100 at scale 2 is `11.00`.
fn push_decimal(out: &mut Vec<u8>, unscaled: i128, scale: i8) {
    if scale <= 0 {
        push_display(out, unscaled);
        out.extend(std::iter::repeat_n(b'0', scale.unsigned_abs() as usize));
        return;
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    if unscaled < 0 {
        out.push(b'-');
    }
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

fn push_date(out: &mut Vec<u8>, days: i32) {
    match NaiveDate::from_num_days_from_ce_opt(days.saturating_add(EPOCH_DAYS_FROM_CE)) {
        Some(d) => push_display(
            out,
            format_args!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        ),
        None => push_display(out, days),
    }
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn timestamp_writer<'a>(
    array: &'a dyn Array,
    unit: TimeUnit,
    utc: bool,
    style: &'a TextStyle,
) -> WriteFn<'a> {
    let values: &'a [i64] = match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
    };
    let layout = TimestampLayout::new(unit, utc, style);
    let quoted = style.quotes_text();
    Box::new(move |row, out| push_quoted(out, quoted, |out| layout.write(values[row], out)))
}

/// How one timestamp column is laid out as text.
struct TimestampLayout {
    per_second: i64,
    fraction_digits: usize,
    separator: u8,
    zone_suffix: bool,
}

impl TimestampLayout {
    fn new(unit: TimeUnit, utc: bool, style: &TextStyle) -> Self {
        let (per_second, digits) = match unit {
            TimeUnit::Second => (1, 3),
            TimeUnit::Millisecond => (1_000, 3),
            TimeUnit::Microsecond => (1_000_000, 6),
            TimeUnit::Nanosecond => (1_000_000_000, 9),
        };
        let text_format = matches!(style, TextStyle::Json { .. } | TextStyle::Csv { .. });
        Self {
            per_second,
            fraction_digits: if matches!(style, TextStyle::Partition) {
                0
            } else {
                digits
            },
            separator: if style.timestamps() == TimestampStandard::Iso8601 {
                b'T'
            } else {
                b' '
            },
            zone_suffix: utc && text_format,
        }
    }

    fn write(&self, value: i64, out: &mut Vec<u8>) {
        let seconds = value.div_euclid(self.per_second);
        let sub = value.rem_euclid(self.per_second);
        let Some(t) = DateTime::from_timestamp(seconds, 0) else {
            // Outside chrono's range (±262,000 years): show the raw number rather than fail.
            return push_display(out, value);
        };
        push_display(
            out,
            format_args!(
                "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
                t.year(),
                t.month(),
                t.day(),
                self.separator as char,
                t.hour(),
                t.minute(),
                t.second()
            ),
        );
        if self.fraction_digits > 0 {
            // Scale the sub-second part to the shown number of digits (seconds show .000).
            let scaled = sub * 10_i64.pow(self.fraction_digits as u32) / self.per_second;
            push_display(
                out,
                format_args!(".{:0width$}", scaled, width = self.fraction_digits),
            );
        }
        if self.zone_suffix {
            out.push(b'Z');
        }
    }
}

fn struct_writer<'a>(
    children: Vec<ValueText<'a>>,
    names: Vec<&'a str>,
    style: &'a TextStyle,
) -> WriteFn<'a> {
    match style {
        TextStyle::Json { .. } => {
            let keys: Vec<Vec<u8>> = names.iter().map(|n| json_key(n)).collect();
            Box::new(move |row, out| write_json_object(&children, &keys, row, out))
        }
        TextStyle::Csv {
            delimiter, quote, ..
        } => {
            // CSV has no nesting: a row travels as its JSON text in one field (its members
            // were prepared in JSON style, see `TextStyle::nested`).
            let keys: Vec<Vec<u8>> = names.iter().map(|n| json_key(n)).collect();
            let (delimiter, quote) = (*delimiter, *quote);
            Box::new(move |row, out| {
                let mut text = Vec::new();
                write_json_object(&children, &keys, row, &mut text);
                push_csv_field(out, &text, delimiter, quote);
            })
        }
        TextStyle::Print | TextStyle::Partition => Box::new(move |row, out| {
            out.extend_from_slice(b"+I[");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                child.write(row, out);
            }
            out.push(b']');
        }),
    }
}

/// `"name":` — the escaped key prefix of a JSON member, computed once per column.
pub fn json_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 3);
    push_json_string(&mut key, name);
    key.push(b':');
    key
}

/// Writes `{"a":1,"b":"x"}` for one row from prepared member values and keys.
pub fn write_json_object(
    values: &[ValueText<'_>],
    keys: &[Vec<u8>],
    row: usize,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    for (i, (value, key)) in values.iter().zip(keys).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        value.write(row, out);
    }
    out.push(b'}');
}

/// Renders every row of `columns` as `prefix v1<sep>v2...suffix\n`: the shared loop of the
/// CSV writer and the print sink.
pub fn write_delimited_rows(
    columns: &[ArrayRef],
    style: &TextStyle,
    prefix: &[u8],
    separator: &[u8],
    suffix: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ArrowError> {
    let values = columns
        .iter()
        .map(|c| ValueText::new(c.as_ref(), style))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = columns.first().map_or(0, |c| c.len());
    for row in 0..rows {
        out.extend_from_slice(prefix);
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(separator);
            }
            value.write(row, out);
        }
        out.extend_from_slice(suffix);
        out.push(b'\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Decimal128Array, Float32Array, TimestampMicrosecondArray};

    use super::*;

    fn render(array: &dyn Array, style: &TextStyle) -> Vec<String> {
        let text = ValueText::new(array, style).unwrap();
        (0..array.len())
            .map(|row| {
                let mut out = Vec::new();
                text.write(row, &mut out);
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    const JSON: TextStyle = TextStyle::Json {
        timestamps: TimestampStandard::Sql,
    };

    #[test]
    fn dates_and_timestamps() {
        let dates = Date32Array::from(vec![Some(18626), Some(-1), None]);
        assert_eq!(
            render(&dates, &JSON),
            ["\"2020-12-30\"", "\"1969-12-31\"", "null"]
        );
        assert_eq!(
            render(&dates, &TextStyle::Print),
            ["2020-12-30", "1969-12-31", "null"]
        );

        let micros = TimestampMicrosecondArray::from(vec![1_609_330_394_000_001, -1]);
        let iso = TextStyle::Json {
            timestamps: TimestampStandard::Iso8601,
        };
        assert_eq!(
            render(&micros, &iso),
            [
                "\"2020-12-30T12:13:14.000001\"",
                "\"1969-12-31T23:59:59.999999\""
            ]
        );
        assert_eq!(
            render(&micros, &TextStyle::Partition),
            ["2020-12-30 12:13:14", "1969-12-31 23:59:59"]
        );
    }

    #[test]
    fn numbers() {
        let decimals = Decimal128Array::from(vec![5, -5, 123_456, 0])
            .with_precision_and_scale(9, 2)
            .unwrap();
        assert_eq!(
            render(&decimals, &JSON),
            ["0.05", "-0.05", "1234.56", "0.00"]
        );
        let whole = Decimal128Array::from(vec![42])
            .with_precision_and_scale(9, 0)
            .unwrap();
        assert_eq!(render(&whole, &JSON), ["42"]);
        let floats = Float32Array::from(vec![1.1, 3.0, f32::INFINITY]);
        assert_eq!(render(&floats, &JSON), ["1.1", "3.0", "\"Infinity\""]);
        assert_eq!(
            render(&floats, &TextStyle::Print),
            ["1.1", "3.0", "Infinity"]
        );
    }

    #[test]
    fn json_string_escapes() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"b\\c\u{1}\té");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\u0001\\té\""
        );
    }
}
