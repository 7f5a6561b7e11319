//! Flink SQL column types and their Arrow representation.
//!
//! | Flink | Arrow |
//! |---|---|
//! | STRING, VARCHAR(n), CHAR(n) | Utf8 |
//! | BOOLEAN | Boolean |
//! | TINYINT, SMALLINT, INT, BIGINT | Int8, Int16, Int32, Int64 |
//! | FLOAT, DOUBLE | Float32, Float64 |
//! | DECIMAL(p, s) | Decimal128(p, s) |
//! | DATE | Date32 |
//! | TIMESTAMP(p) | Timestamp(unit of p, none): wall-clock time |
//! | TIMESTAMP_LTZ(p), TIMESTAMP(p) WITH LOCAL TIME ZONE | Timestamp(unit of p, "UTC"): an instant |
//! | BYTES, VARBINARY | Binary |
//! | ROW<name type, ...> | Struct |
//! | ARRAY<type> | List |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

/// A type error at a place in the job file.
pub type TypeError = (Location, String);

/// The Arrow time unit for a timestamp precision (Flink's default precision is 6).
fn unit_for(precision: u64) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

fn optional_params(p: &mut Parser) -> Result<Vec<u64>, TypeError> {
    let mut params = Vec::new();
    if p.consume_token(&Token::LParen) {
        loop {
            let t = p.next_token();
            match &t.token {
                Token::Number(n, _) => {
                    params.push(n.parse().map_err(|_| {
                        (t.span.start, format!("'{n}' is not a valid type parameter"))
                    })?)
                }
                other => {
                    return Err((
                        t.span.start,
                        format!("expected a number in the type, found '{other}'"),
                    ))
                }
            }
            if p.consume_token(&Token::Comma) {
                continue;
            }
            let t = p.next_token();
            if t.token != Token::RParen {
                return Err((
                    t.span.start,
                    format!("expected ')' in the type, found '{}'", t.token),
                ));
            }
            break;
        }
    }
    Ok(params)
}

fn word(p: &mut Parser) -> Option<(String, Location)> {
    let t = p.peek_token();
    match t.token {
        Token::Word(w) if w.quote_style.is_none() => {
            Some((w.value.to_ascii_uppercase(), t.span.start))
        }
        _ => None,
    }
}

fn consume_words(p: &mut Parser, words: &[&str]) -> bool {
    let index = p.index();
    for w in words {
        match word(p) {
            Some((v, _)) if v == *w => {
                p.next_token();
            }
            _ => {
                while p.index() > index {
                    p.prev_token();
                }
                return false;
            }
        }
    }
    true
}

/// Parses a Flink type at the parser's position.
pub fn parse_type(p: &mut Parser) -> Result<DataType, TypeError> {
    let t = p.next_token();
    let location = t.span.start;
    let name = match &t.token {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        other => return Err((location, format!("expected a type, found '{other}'"))),
    };
    let data_type = match name.as_str() {
        "STRING" => DataType::Utf8,
        "VARCHAR" | "CHAR" => {
            optional_params(p)?;
            DataType::Utf8
        }
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => {
            consume_words(p, &["PRECISION"]);
            DataType::Float64
        }
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let params = optional_params(p)?;
            let precision = params.first().copied().unwrap_or(10);
            let scale = params.get(1).copied().unwrap_or(0);
            if !(1..=38).contains(&precision) || scale > precision {
                return Err((
                    location,
                    format!("DECIMAL({precision}, {scale}) is not a valid decimal type"),
                ));
            }
            DataType::Decimal128(precision as u8, scale as i8)
        }
        "DATE" => DataType::Date32,
        "BYTES" | "VARBINARY" | "BINARY" => {
            optional_params(p)?;
            DataType::Binary
        }
        "TIMESTAMP" | "TIMESTAMP_LTZ" => {
            let precision = optional_params(p)?.first().copied().unwrap_or(6);
            if precision > 9 {
                return Err((
                    location,
                    format!("timestamp precision {precision} is above the maximum of 9"),
                ));
            }
            let local =
                name == "TIMESTAMP_LTZ" || consume_words(p, &["WITH", "LOCAL", "TIME", "ZONE"]);
            consume_words(p, &["WITHOUT", "TIME", "ZONE"]);
            DataType::Timestamp(unit_for(precision), local.then(|| Arc::from("UTC")))
        }
        "ROW" => {
            let close = if p.consume_token(&Token::Lt) {
                Token::Gt
            } else if p.consume_token(&Token::LParen) {
                Token::RParen
            } else {
                return Err((location, "expected '<' or '(' after ROW".into()));
            };
            let mut fields = Vec::new();
            loop {
                let t = p.next_token();
                let field_name = match &t.token {
                    Token::Word(w) => w.value.clone(),
                    other => {
                        return Err((
                            t.span.start,
                            format!("expected a field name in ROW, found '{other}'"),
                        ))
                    }
                };
                let field_type = parse_type(p)?;
                fields.push(Field::new(field_name, field_type, true));
                if p.consume_token(&Token::Comma) {
                    continue;
                }
                let t = p.next_token();
                if t.token != close {
                    return Err((
                        t.span.start,
                        format!("expected ',' or '{close}' in ROW, found '{}'", t.token),
                    ));
                }
                break;
            }
            DataType::Struct(Fields::from(fields))
        }
        "ARRAY" => {
            if !p.consume_token(&Token::Lt) {
                return Err((location, "expected '<' after ARRAY".into()));
            }
            let item = parse_type(p)?;
            let t = p.next_token();
            if t.token != Token::Gt {
                return Err((
                    t.span.start,
                    format!(
                        "expected '>' after the ARRAY item type, found '{}'",
                        t.token
                    ),
                ));
            }
            DataType::List(Arc::new(Field::new("element", item, true)))
        }
        other => return Err((location, format!("unknown type '{other}'"))),
    };
    Ok(data_type)
}

/// The Flink spelling of an Arrow type, for messages.
pub fn flink_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(unit, tz) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            if tz.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        DataType::Struct(_) => "ROW".into(),
        other => other.to_string(),
    }
}

/// Whether a query column of type `from` may be written into a sink column of type `to`
/// (Flink's implicit widening: numbers to numbers, strings to strings, times to times).
pub fn assignable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let numeric = |t: &DataType| t.is_numeric();
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    match (from, to) {
        (Null, _) => true,
        (a, b) if a == b => true,
        (a, b) if numeric(a) && numeric(b) => true,
        (a, b) if string(a) && string(b) => true,
        (Timestamp(..) | Date32, Timestamp(..) | Date32) => true,
        (Struct(_), Struct(_)) | (List(_), List(_)) => true,
        _ => false,
    }
}
