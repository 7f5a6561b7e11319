//! Parsers for option values written in Flink's notation.
//!
//! Flink jobs spell sizes as `128MB` or `1 kb` and durations as `30 min` or `500 ms`; these
//! functions accept the same spellings so existing job files run unchanged. Each returns a
//! `String` error, which [`Options::take_parsed`](sluice_engine::connector::Options::take_parsed)
//! turns into a message naming the table and the option.

use std::time::Duration;

/// Splits `"128 MB"` into `(128, "mb")`: the leading number and the lowercased unit.
fn split_number_unit(text: &str) -> Result<(u64, String), String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("expected a number followed by an optional unit".into());
    }
    let number = text[..digits]
        .parse::<u64>()
        .map_err(|e| format!("bad number: {e}"))?;
    Ok((number, text[digits..].trim().to_ascii_lowercase()))
}

/// A memory size in bytes: `1024`, `128MB`, `1 kb`, `5mb`, `2 gb` (units are powers of 1024,
/// as in Flink's `MemorySize`).
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number_unit(text)?;
    let factor: u64 = match unit.as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' (use b, kb, mb, gb or tb)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| "size is too large".to_string())
}

/// A duration: `500 ms`, `10 s`, `30 min`, `1 h`, `2 d`; a bare number is milliseconds (as
/// in Flink's `TimeUtils.parseDuration`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number_unit(text)?;
    let duration = match unit.as_str() {
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => Duration::from_nanos(number),
        "us" | "µs" | "micro" | "micros" | "microsecond" | "microseconds" => {
            Duration::from_micros(number)
        }
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => {
            Duration::from_millis(number)
        }
        "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(number),
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(number * 60),
        "h" | "hour" | "hours" => Duration::from_secs(number * 3600),
        "d" | "day" | "days" => Duration::from_secs(number * 86_400),
        other => {
            return Err(format!(
                "unknown time unit '{other}' (use ms, s, min, h or d)"
            ));
        }
    };
    Ok(duration)
}

/// A single-byte character such as a CSV delimiter; `\t` is accepted for a tab.
pub fn parse_char(text: &str) -> Result<u8, String> {
    match text {
        "\\t" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() => Ok(text.as_bytes()[0]),
        _ => Err("expected a single ASCII character".into()),
    }
}

/// A number from 0 to 1, such as a null rate.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number from 0 to 1")?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("expected a number from 0 to 1".into())
    }
}

/// Parses with `FromStr`, for `take_parsed`.
pub fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.trim().parse::<T>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_in_flink_spellings() {
        assert_eq!(parse_memory_size("128MB"), Ok(128 << 20));
        assert_eq!(parse_memory_size("1 kb"), Ok(1024));
        assert_eq!(parse_memory_size("5mb"), Ok(5 << 20));
        assert_eq!(parse_memory_size("4096"), Ok(4096));
        assert_eq!(parse_memory_size(" 2 GB "), Ok(2 << 30));
        assert!(parse_memory_size("MB").is_err());
        assert!(parse_memory_size("12 parsecs").is_err());
    }

    #[test]
    fn durations_in_flink_spellings() {
        assert_eq!(parse_duration("30 min"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1 h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500 ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn chars_and_fractions() {
        assert_eq!(parse_char(";"), Ok(b';'));
        assert_eq!(parse_char("\\t"), Ok(b'\t'));
        assert!(parse_char(",,").is_err());
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert!(parse_fraction("1.5").is_err());
    }
}
