//! Java date-time patterns (`yyyy-MM-dd HH:mm:ss`, as Flink's `DATE_FORMAT`,
//! `TO_TIMESTAMP`, `UNIX_TIMESTAMP` and `FROM_UNIXTIME` take them) as chrono format strings.
//!
//! Every pattern letter of Java's `SimpleDateFormat` that chrono can express is translated:
//! a single letter is a number without padding (`d` → `5`, `dd` → `05`), three or more `M`
//! or `E` letters a name (`MMM` → `Apr`, `MMMM` → `April`). Quoted text (`'T'`, `''` for a
//! quote) is copied. Letters chrono has no equivalent for (`k`, `K`, `W`, `F`) are copied
//! as they are.

/// Translates a Java pattern into a chrono format string.
pub fn java_to_chrono(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let number = |padded: &str, unpadded: &str| {
            if run == 1 {
                unpadded.to_string()
            } else {
                padded.to_string()
            }
        };
        let spec = match c {
            'y' | 'u' if c == 'y' || run > 1 => {
                if run == 2 {
                    "%y".into()
                } else {
                    "%Y".into()
                }
            }
            // A single `u`: the day number of the week, Monday = 1.
            'u' => "%u".into(),
            'Y' if run == 2 => "%g".into(),
            'Y' => "%G".into(),
            'M' | 'L' if run >= 4 => "%B".into(),
            'M' | 'L' if run == 3 => "%b".into(),
            'M' | 'L' => number("%m", "%-m"),
            'd' => number("%d", "%-d"),
            'D' => number("%j", "%-j"),
            'E' if run >= 4 => "%A".into(),
            'E' => "%a".into(),
            'a' => "%p".into(),
            'H' => number("%H", "%-H"),
            'h' => number("%I", "%-I"),
            'm' => number("%M", "%-M"),
            's' => number("%S", "%-S"),
            // Fractions of a second: chrono writes 3, 6 or 9 digits.
            'S' if run <= 3 => "%3f".into(),
            'S' if run <= 6 => "%6f".into(),
            'S' => "%9f".into(),
            'w' => number("%V", "%-V"),
            'z' => "%Z".into(),
            'Z' => "%z".into(),
            'X' if run >= 3 => "%:z".into(),
            'X' => "%z".into(),
            'G' => "AD".into(),
            '\'' if run >= 2 && run % 2 == 0 => "'".repeat(run / 2),
            '\'' => {
                // Quoted text, up to the next lone quote; `''` inside is a quote.
                let mut text = String::new();
                let mut j = i + 1;
                while j < chars.len() {
                    if chars[j] == '\'' {
                        if chars.get(j + 1) == Some(&'\'') {
                            text.push('\'');
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    text.push(chars[j]);
                    j += 1;
                }
                out.push_str(&text.replace('%', "%%"));
                i = j + 1;
                continue;
            }
            '%' => "%%".repeat(run),
            other => other.to_string().repeat(run),
        };
        out.push_str(&spec);
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::java_to_chrono;

    fn format(pattern: &str) -> String {
        let t = NaiveDateTime::parse_from_str("2020-04-05 08:05:07.123", "%Y-%m-%d %H:%M:%S%.3f")
            .unwrap();
        t.format(&java_to_chrono(pattern)).to_string()
    }

    #[test]
    fn java_patterns_format_as_java_does() {
        assert_eq!(java_to_chrono("yyyy-MM-dd"), "%Y-%m-%d");
        assert_eq!(format("yyyy-MM-dd HH:mm:ss.SSS"), "2020-04-05 08:05:07.123");
        assert_eq!(format("yy/M/d H:m:s"), "20/4/5 8:5:7");
        assert_eq!(format("EEE, d MMM yyyy"), "Sun, 5 Apr 2020");
        assert_eq!(format("EEEE d MMMM"), "Sunday 5 April");
        assert_eq!(format("hh:mm a"), "08:05 AM");
        assert_eq!(format("D DDD u"), "96 096 7");
        assert_eq!(format("yyyy-MM-dd'T'HH:mm"), "2020-04-05T08:05");
        assert_eq!(format("HH'h''s' '100%'"), "08h's 100%");
        assert_eq!(format("G yyyy"), "AD 2020");
        assert_eq!(format("SSSSSS"), "123000");
    }

    #[test]
    fn unpadded_numbers_parse() {
        let t = NaiveDateTime::parse_from_str("2020-4-5 8:5:7", &java_to_chrono("yyyy-M-d H:m:s"))
            .unwrap();
        assert_eq!(t.to_string(), "2020-04-05 08:05:07");
    }
}
