//! Flink's string, JSON and time built-ins that DataFusion lacks or gives other meanings,
//! with Flink's NULL and error behaviour (an argument that cannot be used gives NULL, not a
//! failed job).

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use datafusion::logical_expr::{ScalarUDF, Volatility};
use serde_json::Value as Json;

use super::java_to_chrono;
use super::row_fn::{Func, Kind, Out, RowFn, Value};

use Kind::{Bool, Int, Int32, Str, Timestamp};

/// The functions of this module.
pub fn all() -> Vec<ScalarUDF> {
    let immutable = Volatility::Immutable;
    let f = |name, arities: &[&[Kind]], result, func| {
        ScalarUDF::from(RowFn::new(
            name,
            arities,
            result,
            immutable,
            Func::Plain(func),
        ))
    };
    vec![
        f("split_index", &[&[Str, Str, Int]], Str, split_index),
        f(
            "regexp_extract",
            &[&[Str, Str], &[Str, Str, Int]],
            Str,
            regexp_extract,
        ),
        f("is_digit", &[&[Str]], Bool, is_digit),
        f("hash_code", &[&[Str]], Int32, hash_code),
        f("locate", &[&[Str, Str], &[Str, Str, Int]], Int, locate),
        f("concat", CONCAT_ARITIES, Str, concat),
        f("json_value", &[&[Str, Str]], Str, json_value),
        f("sluice_json_status", &[&[Str, Str]], Str, json_status),
        f("json_query", &[&[Str, Str]], Str, json_query),
        f("json_exists", &[&[Str, Str]], Bool, json_exists),
        f(
            "to_timestamp",
            &[&[Str], &[Str, Str]],
            Timestamp,
            to_timestamp,
        ),
        f(
            "timestampadd",
            &[&[Str, Int, Timestamp]],
            Timestamp,
            timestamp_add,
        ),
        f(
            "timestampdiff",
            &[&[Str, Timestamp, Timestamp]],
            Int32,
            timestamp_diff,
        ),
        f("sluice_ceil_to", &[&[Str, Timestamp]], Timestamp, ceil_to),
        f("md5", &[&[Str]], Str, md5),
        f("sha256", &[&[Str]], Str, sha256),
        f("sha1", &[&[Str]], Str, sha1),
        f("sha224", &[&[Str]], Str, sha224),
        f("sha384", &[&[Str]], Str, sha384),
        f("sha512", &[&[Str]], Str, sha512),
        f("sha2", &[&[Str, Int]], Str, sha2),
        f("to_base64", &[&[Str]], Str, to_base64),
        f("from_base64", &[&[Str]], Str, from_base64),
    ]
}

/// `FROM_UNIXTIME(seconds[, format])`: the instant as a string in the session time zone
/// (None: UTC), in a Java pattern (default `yyyy-MM-dd HH:mm:ss`), as Flink returns it.
pub fn from_unixtime(time_zone: Option<Tz>) -> ScalarUDF {
    ScalarUDF::from(RowFn::new(
        "from_unixtime",
        &[&[Int], &[Int, Str]],
        Str,
        Volatility::Immutable,
        Func::Zoned(from_unixtime_in, time_zone),
    ))
}

fn from_unixtime_in(a: &[Value], zone: Option<Tz>) -> Out {
    let format = if a.len() > 1 {
        a[1].str()
    } else {
        Some(DEFAULT_FORMAT)
    };
    let (Some(seconds), Some(format)) = (a[0].int(), format) else {
        return Out::Null;
    };
    let Some(utc) = chrono::DateTime::from_timestamp(seconds, 0) else {
        return Out::Null;
    };
    let format = java_to_chrono(format);
    text(match zone {
        None => utc.naive_utc().format(&format).to_string(),
        Some(tz) => utc.with_timezone(&tz).format(&format).to_string(),
    })
}

/// `UNIX_TIMESTAMP(string[, format])`, in the session time zone (None: UTC).
pub fn unix_timestamp(time_zone: Option<Tz>) -> ScalarUDF {
    ScalarUDF::from(RowFn::new(
        "unix_timestamp",
        &[&[Str], &[Str, Str]],
        Int,
        Volatility::Immutable,
        Func::Zoned(unix_timestamp_in, time_zone),
    ))
}

const CONCAT_ARITIES: &[&[Kind]] = &[
    &[Str],
    &[Str, Str],
    &[Str, Str, Str],
    &[Str, Str, Str, Str],
    &[Str, Str, Str, Str, Str],
    &[Str, Str, Str, Str, Str, Str],
    &[Str, Str, Str, Str, Str, Str, Str],
    &[Str, Str, Str, Str, Str, Str, Str, Str],
];

fn text(s: impl Into<String>) -> Out {
    Out::Str(s.into())
}

/// `SPLIT_INDEX(s, delimiter, i)`: the i-th (from 0) part; NULL when out of range.
fn split_index(a: &[Value]) -> Out {
    match (a[0].str(), a[1].str(), a[2].int()) {
        (Some(s), Some(d), Some(i)) if i >= 0 && !d.is_empty() => {
            s.split(d).nth(i as usize).map_or(Out::Null, text)
        }
        _ => Out::Null,
    }
}

/// `REGEXP_EXTRACT(s, regex[, group])`: group `group` (default 0, the whole match) of the
/// first match; NULL without a match, for a bad pattern or a group that does not exist.
fn regexp_extract(a: &[Value]) -> Out {
    let group = if a.len() > 2 { a[2].int() } else { Some(0) };
    let (Some(s), Some(pattern), Some(group)) = (a[0].str(), a[1].str(), group) else {
        return Out::Null;
    };
    let Ok(re) = regex::Regex::new(pattern) else {
        return Out::Null;
    };
    usize::try_from(group)
        .ok()
        .and_then(|g| re.captures(s)?.get(g).map(|m| text(m.as_str())))
        .unwrap_or(Out::Null)
}

/// `IS_DIGIT(s)`: every character a digit; false for NULL and the empty string.
fn is_digit(a: &[Value]) -> Out {
    Out::Bool(
        a[0].str()
            .is_some_and(|s| !s.is_empty() && s.chars().all(char::is_numeric)),
    )
}

/// `HASH_CODE(s)`: Java's `String.hashCode()` (over UTF-16 code units).
fn hash_code(a: &[Value]) -> Out {
    match a[0].str() {
        None => Out::Null,
        Some(s) => Out::Int(
            s.encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32)) as i64,
        ),
    }
}

/// `LOCATE(needle, s[, from])`: the 1-based position of `needle` in `s` at or after `from`,
/// 0 when absent.
fn locate(a: &[Value]) -> Out {
    let from = if a.len() > 2 { a[2].int() } else { Some(1) };
    let (Some(needle), Some(s), Some(from)) = (a[0].str(), a[1].str(), from) else {
        return Out::Null;
    };
    if from < 1 {
        return Out::Int(0);
    }
    let chars: Vec<char> = s.chars().collect();
    let start = (from - 1) as usize;
    if start > chars.len() {
        return Out::Int(0);
    }
    let rest: String = chars[start..].iter().collect();
    Out::Int(
        rest.find(needle)
            .map_or(0, |byte| rest[..byte].chars().count() + start + 1) as i64,
    )
}

/// `CONCAT(a, b, ...)`: NULL if any argument is NULL, as in Flink.
fn concat(a: &[Value]) -> Out {
    let mut out = String::new();
    for v in a {
        match v.str() {
            Some(s) => out.push_str(s),
            None => return Out::Null,
        }
    }
    Out::Str(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `MD5(s)`: the digest of the UTF-8 bytes, in lowercase hexadecimal.
fn md5(a: &[Value]) -> Out {
    use md5::Digest;
    a[0].str()
        .map_or(Out::Null, |s| text(hex(&md5::Md5::digest(s.as_bytes()))))
}

/// `SHA256(s)`: as `MD5`, with SHA-256.
fn sha256(a: &[Value]) -> Out {
    use sha2::Digest;
    a[0].str().map_or(Out::Null, |s| {
        text(hex(&sha2::Sha256::digest(s.as_bytes())))
    })
}

/// The lowercase hexadecimal digest of `s`'s UTF-8 bytes with hash `D`.
fn digest<D: sha2::Digest>(s: &str) -> Out {
    text(hex(&D::digest(s.as_bytes())))
}

/// `SHA1(s)`, `SHA224`, `SHA384`, `SHA512`: as `SHA256`.
fn sha1(a: &[Value]) -> Out {
    a[0].str().map_or(Out::Null, digest::<sha1::Sha1>)
}

fn sha224(a: &[Value]) -> Out {
    a[0].str().map_or(Out::Null, digest::<sha2::Sha224>)
}

fn sha384(a: &[Value]) -> Out {
    a[0].str().map_or(Out::Null, digest::<sha2::Sha384>)
}

fn sha512(a: &[Value]) -> Out {
    a[0].str().map_or(Out::Null, digest::<sha2::Sha512>)
}

/// `SHA2(s, bits)`: SHA-224, 256, 384 or 512; NULL for another length.
fn sha2(a: &[Value]) -> Out {
    let Some(s) = a[0].str() else {
        return Out::Null;
    };
    match a[1].int() {
        Some(224) => digest::<sha2::Sha224>(s),
        Some(256) => digest::<sha2::Sha256>(s),
        Some(384) => digest::<sha2::Sha384>(s),
        Some(512) => digest::<sha2::Sha512>(s),
        _ => Out::Null,
    }
}

/// `TO_BASE64(s)`: standard base64 of the UTF-8 bytes.
fn to_base64(a: &[Value]) -> Out {
    use base64::Engine;
    a[0].str().map_or(Out::Null, |s| {
        text(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
    })
}

/// `FROM_BASE64(s)`: the decoded text; NULL when it is not base64 of UTF-8 text.
fn from_base64(a: &[Value]) -> Out {
    use base64::Engine;
    a[0].str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .map_or(Out::Null, text)
}

/// One step of a JSON path.
enum Step {
    Key(String),
    Index(usize),
}

/// Parses the lax JSON paths Flink's JSON functions take: `$`, `.key`, `['key']`, `[n]`.
fn parse_path(path: &str) -> Option<(Mode, Vec<Step>)> {
    let path = path.trim();
    let (mode, path) = match path.strip_prefix("strict ") {
        Some(p) => (Mode::Strict, p),
        None => (Mode::Lax, path.strip_prefix("lax ").unwrap_or(path)),
    };
    let mut rest = path.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if rest.starts_with(".[") {
            // `$.["a.b"]`, as Flink's documentation writes a quoted key.
            rest = &rest[1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return None;
            }
            steps.push(Step::Key(key.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inside = r[..end].trim();
            let quoted = inside
                .strip_prefix('\'')
                .and_then(|x| x.strip_suffix('\''))
                .or_else(|| inside.strip_prefix('"').and_then(|x| x.strip_suffix('"')));
            match quoted {
                Some(key) => steps.push(Step::Key(key.to_string())),
                None => steps.push(Step::Index(inside.parse().ok()?)),
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some((mode, steps))
}

/// A path's mode: in lax mode (the default) a step that finds nothing makes the result
/// empty; in strict mode it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lax,
    Strict,
}

/// The value at `path` in the JSON text `doc`: Err for bad JSON or a bad path, Ok(None)
/// where the path finds nothing.
fn lookup(doc: &str, path: &str) -> Result<Option<Json>, ()> {
    let (mode, steps) = parse_path(path).ok_or(())?;
    let mut value: Json = serde_json::from_str(doc).map_err(|_| ())?;
    for step in steps {
        let next = match (step, value) {
            (Step::Key(k), Json::Object(mut m)) => m.remove(&k),
            (Step::Index(i), Json::Array(mut a)) if i < a.len() => Some(a.swap_remove(i)),
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None if mode == Mode::Strict => return Err(()),
            None => return Ok(None),
        }
    }
    Ok(Some(value))
}

/// `JSON_VALUE(doc, path)`: the scalar at the path as a string; NULL when it is missing, not
/// a scalar, or the JSON or path is invalid (Flink's NULL ON EMPTY / NULL ON ERROR).
fn json_value(a: &[Value]) -> Out {
    let (Some(doc), Some(path)) = (a[0].str(), a[1].str()) else {
        return Out::Null;
    };
    match lookup(doc, path) {
        Ok(Some(Json::String(s))) => text(s),
        Ok(Some(Json::Bool(b))) => text(b.to_string()),
        Ok(Some(Json::Number(n))) => text(n.to_string()),
        _ => Out::Null,
    }
}

/// What `JSON_VALUE(doc, path)` meets, for its ON EMPTY and ON ERROR clauses: `empty` when
/// the path finds nothing or JSON null, `error` for invalid JSON or path or a value that is
/// not a scalar, `ok` otherwise; NULL for NULL input.
fn json_status(a: &[Value]) -> Out {
    let (Some(doc), Some(path)) = (a[0].str(), a[1].str()) else {
        return Out::Null;
    };
    text(match lookup(doc, path) {
        Ok(None | Some(Json::Null)) => "empty",
        Ok(Some(Json::Object(_) | Json::Array(_))) | Err(()) => "error",
        Ok(Some(_)) => "ok",
    })
}

/// `JSON_QUERY(doc, path)`: the object or array at the path as JSON text; NULL for a scalar,
/// a missing value or invalid input (WITHOUT WRAPPER, NULL ON EMPTY, NULL ON ERROR).
fn json_query(a: &[Value]) -> Out {
    let (Some(doc), Some(path)) = (a[0].str(), a[1].str()) else {
        return Out::Null;
    };
    match lookup(doc, path) {
        Ok(Some(v @ (Json::Object(_) | Json::Array(_)))) => text(v.to_string()),
        _ => Out::Null,
    }
}

/// `JSON_EXISTS(doc, path)`: whether the path finds a value; false on error (FALSE ON ERROR),
/// NULL for NULL input.
fn json_exists(a: &[Value]) -> Out {
    let (Some(doc), Some(path)) = (a[0].str(), a[1].str()) else {
        return Out::Null;
    };
    Out::Bool(matches!(lookup(doc, path), Ok(Some(_))))
}

/// Parses a date-time in a Java pattern (a date alone is midnight).
fn parse_local(s: &str, pattern: &str) -> Option<NaiveDateTime> {
    let format = java_to_chrono(pattern);
    NaiveDateTime::parse_from_str(s.trim(), &format)
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s.trim(), &format)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

const DEFAULT_FORMAT: &str = "yyyy-MM-dd HH:mm:ss";

/// `TO_TIMESTAMP(s[, format])`: a TIMESTAMP(3) from `s` in `format` (default
/// `yyyy-MM-dd HH:mm:ss`); NULL when it does not parse.
fn to_timestamp(a: &[Value]) -> Out {
    let format = if a.len() > 1 {
        a[1].str()
    } else {
        Some(DEFAULT_FORMAT)
    };
    match (a[0].str(), format) {
        (Some(s), Some(f)) => {
            parse_local(s, f).map_or(Out::Null, |t| Out::Millis(t.and_utc().timestamp_millis()))
        }
        _ => Out::Null,
    }
}

fn unix_timestamp_in(a: &[Value], zone: Option<Tz>) -> Out {
    let format = if a.len() > 1 {
        a[1].str()
    } else {
        Some(DEFAULT_FORMAT)
    };
    let (Some(s), Some(f)) = (a[0].str(), format) else {
        return Out::Null;
    };
    let Some(local) = parse_local(s, f) else {
        return Out::Null;
    };
    let seconds = match zone {
        None => local.and_utc().timestamp(),
        Some(tz) => match tz.from_local_datetime(&local).earliest() {
            Some(t) => t.timestamp(),
            None => return Out::Null,
        },
    };
    Out::Int(seconds)
}

/// Milliseconds of one unit of `TIMESTAMPADD`/`TIMESTAMPDIFF`, or the months of one.
enum Unit {
    Millis(i64),
    Months(i64),
}

fn unit(name: &str) -> Option<Unit> {
    Some(match name.to_ascii_uppercase().as_str() {
        "SECOND" => Unit::Millis(1_000),
        "MINUTE" => Unit::Millis(60_000),
        "HOUR" => Unit::Millis(3_600_000),
        "DAY" => Unit::Millis(86_400_000),
        "WEEK" => Unit::Millis(7 * 86_400_000),
        "MONTH" => Unit::Months(1),
        "QUARTER" => Unit::Months(3),
        "YEAR" => Unit::Months(12),
        _ => return None,
    })
}

fn add_months(ms: i64, months: i64) -> Option<i64> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?.naive_utc();
    let shifted = if months >= 0 {
        t.checked_add_months(chrono::Months::new(months as u32))?
    } else {
        t.checked_sub_months(chrono::Months::new(months.unsigned_abs() as u32))?
    };
    Some(shifted.and_utc().timestamp_millis())
}

/// `TIMESTAMPADD(unit, n, ts)`.
fn timestamp_add(a: &[Value]) -> Out {
    let (Some(u), Some(n), Some(ts)) = (a[0].str().and_then(unit), a[1].int(), a[2].millis())
    else {
        return Out::Null;
    };
    let shifted = match u {
        Unit::Millis(ms) => n.checked_mul(ms).and_then(|d| ts.checked_add(d)),
        Unit::Months(m) => n.checked_mul(m).and_then(|m| add_months(ts, m)),
    };
    shifted.map_or(Out::Null, Out::Millis)
}

fn months_between(from: i64, to: i64) -> Option<i64> {
    use chrono::Datelike;
    let (a, b) = (
        chrono::DateTime::from_timestamp_millis(from)?.naive_utc(),
        chrono::DateTime::from_timestamp_millis(to)?.naive_utc(),
    );
    let mut months = (b.year() as i64 - a.year() as i64) * 12 + b.month() as i64 - a.month() as i64;
    // A partial month does not count (as in Flink).
    if months > 0 && add_months(from, months)? > to {
        months -= 1;
    } else if months < 0 && add_months(from, months)? < to {
        months += 1;
    }
    Some(months)
}

/// `TIMESTAMPDIFF(unit, from, to)`: whole units from `from` to `to`.
fn timestamp_diff(a: &[Value]) -> Out {
    let (Some(u), Some(from), Some(to)) = (a[0].str().and_then(unit), a[1].millis(), a[2].millis())
    else {
        return Out::Null;
    };
    match u {
        Unit::Millis(ms) => Out::Int((to - from) / ms),
        Unit::Months(m) => months_between(from, to).map_or(Out::Null, |n| Out::Int(n / m)),
    }
}

/// `CEIL(ts TO unit)`: the smallest unit boundary at or after `ts`.
fn ceil_to(a: &[Value]) -> Out {
    let (Some(name), Some(ts)) = (a[0].str(), a[1].millis()) else {
        return Out::Null;
    };
    let Some(t) = chrono::DateTime::from_timestamp_millis(ts).map(|t| t.naive_utc()) else {
        return Out::Null;
    };
    use chrono::{Datelike, Timelike};
    let floor = match name.to_ascii_uppercase().as_str() {
        "SECOND" => t.with_nanosecond(0),
        "MINUTE" => t.with_nanosecond(0).and_then(|t| t.with_second(0)),
        "HOUR" => t.date().and_hms_opt(t.hour(), 0, 0),
        "DAY" => t.date().and_hms_opt(0, 0, 0),
        "MONTH" => t.date().with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0)),
        "YEAR" => t
            .date()
            .with_day(1)
            .and_then(|d| d.with_month(1))
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        _ => None,
    };
    let Some(floor) = floor else {
        return Out::Null;
    };
    let floor_ms = floor.and_utc().timestamp_millis();
    if floor_ms == ts {
        return Out::Millis(ts);
    }
    let step = match name.to_ascii_uppercase().as_str() {
        "SECOND" => Some(floor_ms + 1_000),
        "MINUTE" => Some(floor_ms + 60_000),
        "HOUR" => Some(floor_ms + 3_600_000),
        "DAY" => Some(floor_ms + 86_400_000),
        "MONTH" => add_months(floor_ms, 1),
        _ => add_months(floor_ms, 12),
    };
    step.map_or(Out::Null, Out::Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value<'_> {
        Value::Str(v)
    }

    #[test]
    fn strings_follow_flink() {
        assert_eq!(split_index(&[s("a,b,c"), s(","), Value::Int(1)]), text("b"));
        assert_eq!(split_index(&[s("a,b,c"), s(","), Value::Int(3)]), Out::Null);
        assert_eq!(
            split_index(&[Value::Null, s(","), Value::Int(0)]),
            Out::Null
        );
        assert_eq!(
            regexp_extract(&[s("foothebar"), s("foo(.*?)(bar)"), Value::Int(2)]),
            text("bar")
        );
        assert_eq!(
            regexp_extract(&[s("foothebar"), s("foo(.*?)bar")]),
            text("foothebar")
        );
        assert_eq!(regexp_extract(&[s("x"), s("y")]), Out::Null);
        assert_eq!(regexp_extract(&[s("x"), s("(")]), Out::Null);
        assert_eq!(is_digit(&[s("123")]), Out::Bool(true));
        assert_eq!(is_digit(&[s("12a")]), Out::Bool(false));
        assert_eq!(is_digit(&[s("")]), Out::Bool(false));
        assert_eq!(is_digit(&[Value::Null]), Out::Bool(false));
        // Java: "hello".hashCode() == 99162322, "".hashCode() == 0.
        assert_eq!(hash_code(&[s("hello")]), Out::Int(99162322));
        assert_eq!(hash_code(&[s("")]), Out::Int(0));
        assert_eq!(hash_code(&[Value::Null]), Out::Null);
        assert_eq!(locate(&[s("b"), s("abcb")]), Out::Int(2));
        assert_eq!(locate(&[s("b"), s("abcb"), Value::Int(3)]), Out::Int(4));
        assert_eq!(locate(&[s("z"), s("abcb")]), Out::Int(0));
        assert_eq!(concat(&[s("a"), s("b")]), text("ab"));
        assert_eq!(concat(&[s("a"), Value::Null]), Out::Null);
        assert_eq!(md5(&[s("")]), text("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(
            sha256(&[s("abc")]),
            text("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(to_base64(&[s("hello")]), text("aGVsbG8="));
        assert_eq!(from_base64(&[s("aGVsbG8=")]), text("hello"));
        assert_eq!(from_base64(&[s("!!")]), Out::Null);
        assert_eq!(md5(&[Value::Null]), Out::Null);
    }

    #[test]
    fn json_functions() {
        let doc = r#"{"a": {"b": 7, "s": "x"}, "c": [1, {"d": true}], "k y": null}"#;
        assert_eq!(json_value(&[s(doc), s("$.a.b")]), text("7"));
        assert_eq!(json_value(&[s(doc), s("$.a.s")]), text("x"));
        assert_eq!(json_value(&[s(doc), s("$.c[1].d")]), text("true"));
        assert_eq!(json_value(&[s(doc), s("$.a")]), Out::Null);
        assert_eq!(json_value(&[s(doc), s("$.nope")]), Out::Null);
        assert_eq!(json_value(&[s("{bad"), s("$.a")]), Out::Null);
        assert_eq!(json_query(&[s(doc), s("$.c")]), text(r#"[1,{"d":true}]"#));
        assert_eq!(json_query(&[s(doc), s("$.a.b")]), Out::Null);
        assert_eq!(json_exists(&[s(doc), s("$['k y']")]), Out::Bool(true));
        assert_eq!(json_exists(&[s(doc), s("$.x")]), Out::Bool(false));
        assert_eq!(json_exists(&[s("{bad"), s("$.x")]), Out::Bool(false));
        assert_eq!(json_exists(&[Value::Null, s("$.x")]), Out::Null);
    }

    #[test]
    fn times() {
        let ts = |t: &str| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        assert_eq!(
            to_timestamp(&[s("2020-04-15 08:05:07")]),
            Out::Millis(ts("2020-04-15 08:05:07"))
        );
        assert_eq!(
            to_timestamp(&[s("15/04/2020"), s("dd/MM/yyyy")]),
            Out::Millis(ts("2020-04-15 00:00:00"))
        );
        assert_eq!(to_timestamp(&[s("nope")]), Out::Null);
        assert_eq!(
            unix_timestamp_in(&[s("1970-01-01 00:01:00")], None),
            Out::Int(60)
        );
        assert_eq!(
            unix_timestamp_in(&[s("1970-01-01 08:01:00")], Some(chrono_tz::Asia::Shanghai)),
            Out::Int(60)
        );
        let t = ts("2020-01-31 10:00:00");
        assert_eq!(
            timestamp_add(&[s("MONTH"), Value::Int(1), Value::Millis(t)]),
            Out::Millis(ts("2020-02-29 10:00:00"))
        );
        assert_eq!(
            timestamp_add(&[s("minute"), Value::Int(-5), Value::Millis(t)]),
            Out::Millis(ts("2020-01-31 09:55:00"))
        );
        assert_eq!(
            timestamp_diff(&[
                s("HOUR"),
                Value::Millis(t),
                Value::Millis(ts("2020-02-01 09:59:59"))
            ]),
            Out::Int(23)
        );
        assert_eq!(
            timestamp_diff(&[
                s("MONTH"),
                Value::Millis(t),
                Value::Millis(ts("2020-03-30 10:00:00"))
            ]),
            Out::Int(1)
        );
        assert_eq!(
            timestamp_diff(&[
                s("YEAR"),
                Value::Millis(t),
                Value::Millis(ts("2019-01-31 10:00:00"))
            ]),
            Out::Int(-1)
        );
        assert_eq!(
            ceil_to(&[s("HOUR"), Value::Millis(ts("2020-04-15 08:05:07"))]),
            Out::Millis(ts("2020-04-15 09:00:00"))
        );
        assert_eq!(
            ceil_to(&[s("DAY"), Value::Millis(ts("2020-04-15 00:00:00"))]),
            Out::Millis(ts("2020-04-15 00:00:00"))
        );
    }
}
