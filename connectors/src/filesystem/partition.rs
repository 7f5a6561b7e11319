//! Hive-style partition folders: `col=value/` per `PARTITIONED BY` column.
//!
//! Values are written as Flink writes them (timestamps as `yyyy-MM-dd HH:mm:ss`, others in
//! their string form), a NULL or blank value becomes `__DEFAULT_PARTITION__`, and characters
//! that are unsafe in paths are percent-escaped exactly as Hive's `escapePathName` does (plus
//! `< > |`, which Windows forbids), so the folders are what Hive, Glue and Athena expect.
//! The source reads the values back from the folder names.

use std::path::Path;

use arrow::array::{Array, ArrayRef};
use arrow::error::ArrowError;

use crate::format::text::{TextStyle, ValueText};

/// The folder of rows whose partition value is NULL or blank.
pub const DEFAULT_PARTITION: &str = "__DEFAULT_PARTITION__";

fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '"' | '#'
            | '%'
            | '\''
            | '*'
            | '/'
            | ':'
            | '='
            | '?'
            | '\\'
            | '\u{7f}'
            | '{'
            | '['
            | ']'
            | '^'
            | '<'
            | '>'
            | '|'
    ) || c.is_ascii_control()
}

/// Appends `text` with unsafe characters as `%XX` (uppercase hex).
pub fn escape_path_name(text: &str, out: &mut String) {
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// Undoes [`escape_path_name`]; a `%` not followed by two hex digits stays as it is.
pub fn unescape_path_name(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Renders the partition folder (`a=1/b=x`) of any row of a batch.
pub struct PartitionPath<'a> {
    /// `name=` per column, escaped.
    prefixes: Vec<String>,
    values: Vec<ValueText<'a>>,
}

static PARTITION_STYLE: TextStyle = TextStyle::Partition;

impl<'a> PartitionPath<'a> {
    pub fn new(names: &[String], columns: &'a [ArrayRef]) -> Result<Self, ArrowError> {
        let prefixes = names
            .iter()
            .map(|name| {
                let mut prefix = String::new();
                escape_path_name(name, &mut prefix);
                prefix.push('=');
                prefix
            })
            .collect();
        let values = columns
            .iter()
            .map(|c| ValueText::new(c.as_ref() as &dyn Array, &PARTITION_STYLE))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { prefixes, values })
    }

    /// Appends the folder of `row` to `out`; `scratch` is reused between calls.
    pub fn write(&self, row: usize, out: &mut String, scratch: &mut Vec<u8>) {
        for (i, (prefix, value)) in self.prefixes.iter().zip(&self.values).enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(prefix);
            scratch.clear();
            if !value.is_null(row) {
                value.write(row, scratch);
            }
            let text = String::from_utf8_lossy(scratch);
            if text.trim().is_empty() {
                out.push_str(DEFAULT_PARTITION);
            } else {
                escape_path_name(&text, out);
            }
        }
    }
}

/// The `col=value` pairs in the folders of `file` below `root`, unescaped; a
/// `__DEFAULT_PARTITION__` value is `None`.
pub fn values_from_path(root: &Path, file: &Path) -> Vec<(String, Option<String>)> {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let Some(folders) = relative.parent() else {
        return Vec::new();
    };
    folders
        .components()
        .filter_map(|c| {
            let text = c.as_os_str().to_str()?;
            let (name, value) = text.split_once('=')?;
            let value = (value != DEFAULT_PARTITION).then(|| unescape_path_name(value));
            Some((unescape_path_name(name), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, StringArray, TimestampMillisecondArray};

    use super::*;

    #[test]
    fn escapes_like_hive() {
        let mut out = String::new();
        escape_path_name("a/b\\c=d:e*f?g\"h<i>j|k%l#\u{1}m n", &mut out);
        assert_eq!(
            out,
            "a%2Fb%5Cc%3Dd%3Ae%2Af%3Fg%22h%3Ci%3Ej%7Ck%25l%23%01m n"
        );
        assert_eq!(
            unescape_path_name(&out),
            "a/b\\c=d:e*f?g\"h<i>j|k%l#\u{1}m n"
        );
        assert_eq!(unescape_path_name("100%"), "100%");
    }

    #[test]
    fn folders_with_nulls_timestamps_and_escapes() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("eu/west"), None, Some(" ")])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_609_330_394_123),
                Some(0),
                None,
            ])),
            Arc::new(Int32Array::from(vec![Some(7), Some(-1), Some(0)])),
        ];
        let names = vec!["region".to_string(), "ts".to_string(), "n".to_string()];
        let paths = PartitionPath::new(&names, &columns).unwrap();
        let render = |row| {
            let mut out = String::new();
            paths.write(row, &mut out, &mut Vec::new());
            out
        };
        assert_eq!(render(0), "region=eu%2Fwest/ts=2020-12-30 12%3A13%3A14/n=7");
        assert_eq!(
            render(1),
            "region=__DEFAULT_PARTITION__/ts=1970-01-01 00%3A00%3A00/n=-1"
        );
        assert_eq!(
            render(2),
            "region=__DEFAULT_PARTITION__/ts=__DEFAULT_PARTITION__/n=0"
        );
    }

    #[test]
    fn reads_values_back_from_folders() {
        let values = values_from_path(
            Path::new("/data"),
            Path::new("/data/region=eu%2Fwest/dt=__DEFAULT_PARTITION__/part-0.json"),
        );
        assert_eq!(
            values,
            vec![
                ("region".to_string(), Some("eu/west".to_string())),
                ("dt".to_string(), None)
            ]
        );
    }
}
