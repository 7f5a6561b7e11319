//! The options of datagen tables, typed and checked against the columns.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema};
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use crate::option_values::{parse_duration, parse_fraction, parse_number};

/// Options of a datagen table.
#[derive(Debug, Clone, PartialEq)]
pub struct DatagenConfig {
    /// `rows-per-second` (10000): the rate of the whole table, shared by its instances.
    pub rows_per_second: f64,
    /// `number-of-rows` (unbounded): the total number of rows, shared by the instances.
    pub number_of_rows: Option<u64>,
    /// `seed` (Sluice extension; random when absent): makes the random values repeatable.
    /// Each parallel instance derives its own generator from it.
    pub seed: Option<u64>,
    /// One per column, in column order.
    pub fields: Vec<FieldConfig>,
}

/// How the values of one column are made (`fields.<col>.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConfig {
    pub kind: FieldKind,
    /// `fields.<col>.null-rate` (0): the share of NULL values.
    pub null_rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// `kind` = `random` (default).
    Random(RandomOptions),
    /// `kind` = `sequence`: `start` to `end` inclusive, then the source ends.
    Sequence { start: i64, end: i64 },
}

/// Options of a random column; each applies to some types only.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomOptions {
    /// `min` / `max` (the type's range): bounds of random numbers, as written.
    pub min: Option<String>,
    pub max: Option<String>,
    /// `length` (100): length of random strings.
    pub length: usize,
    /// `var-len` (false): random strings get a random length from 1 to `length`.
    pub var_len: bool,
    /// `max-past` (0): random timestamps and dates lie between now minus this and now.
    pub max_past: Duration,
}

impl Default for RandomOptions {
    fn default() -> Self {
        Self {
            min: None,
            max: None,
            length: 100,
            var_len: false,
            max_past: Duration::ZERO,
        }
    }
}

/// The per-field option names, for messages.
const FIELD_KEYS: &str = "kind, min, max, length, var-len, start, end, null-rate, max-past";

impl DatagenConfig {
    pub fn take(table: &str, schema: &Schema, options: &mut Options) -> Result<Self> {
        let rows_per_second = options
            .take_parsed("rows-per-second", |v| match parse_number::<f64>(v)? {
                r if r > 0.0 && r.is_finite() => Ok(r),
                _ => Err("must be more than 0".to_string()),
            })?
            .unwrap_or(10_000.0);
        let number_of_rows = options.take_parsed("number-of-rows", parse_number::<u64>)?;
        let seed = options.take_parsed("seed", parse_number::<u64>)?;

        // fields.<col>.<key>: a column name may contain dots, the key never does.
        let mut per_column: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (rest, value) in options.take_prefixed("fields.") {
            let Some((column, key)) = rest.rsplit_once('.') else {
                return Err(Error::config(format!(
                    "table '{table}': option 'fields.{rest}' must be 'fields.<column>.<{FIELD_KEYS}>'"
                )));
            };
            if schema.field_with_name(column).is_err() {
                return Err(Error::config(format!(
                    "table '{table}': option 'fields.{rest}' names column '{column}', which the table does not have"
                )));
            }
            per_column
                .entry(column.to_string())
                .or_default()
                .insert(key.to_string(), value);
        }
        let fields = schema
            .fields()
            .iter()
            .map(|field| {
                let given = per_column.remove(field.name()).unwrap_or_default();
                FieldConfig::parse(table, field, given)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            rows_per_second,
            number_of_rows,
            seed,
            fields,
        })
    }

    /// True when the table ends by itself: a row count, or a sequence that runs out.
    pub fn bounded(&self) -> bool {
        self.number_of_rows.is_some()
            || self
                .fields
                .iter()
                .any(|f| matches!(f.kind, FieldKind::Sequence { .. }))
    }
}

impl FieldConfig {
    fn parse(table: &str, field: &Field, given: BTreeMap<String, String>) -> Result<Self> {
        let name = field.name();
        let data_type = field.data_type();
        let option = FieldOptions {
            table,
            column: name,
            given: &given,
        };
        let sequence = match option
            .get("kind", |k| Ok(k.to_ascii_lowercase()))?
            .as_deref()
        {
            None | Some("random") => false,
            Some("sequence") => true,
            Some(other) => {
                return Err(option.invalid("kind", other, "expected 'random' or 'sequence'"))
            }
        };
        if sequence && !(is_numeric(data_type) || *data_type == DataType::Utf8) {
            return Err(Error::config(format!(
                "table '{table}': column '{name}' of type {data_type} cannot be a sequence"
            )));
        }
        // Which options make sense depends on the kind and on the column's type.
        for key in given.keys() {
            let applies = match key.as_str() {
                "kind" | "null-rate" => true,
                "start" | "end" => sequence,
                "min" | "max" => !sequence && is_numeric(data_type),
                "length" | "var-len" => !sequence && is_text(data_type),
                "max-past" => !sequence && is_temporal(data_type),
                _ => {
                    return Err(Error::config(format!(
                        "table '{table}': option 'fields.{name}.{key}' is not understood (known: {FIELD_KEYS})"
                    )))
                }
            };
            if !applies {
                let kind = if sequence { "sequence" } else { "random" };
                return Err(Error::config(format!(
                    "table '{table}': option 'fields.{name}.{key}' does not apply to the {kind} column '{name}' of type {data_type}"
                )));
            }
        }
        let null_rate = option.get("null-rate", parse_fraction)?.unwrap_or(0.0);
        let kind = if sequence {
            let (start, end) = (option.required_i64("start")?, option.required_i64("end")?);
            if start > end {
                return Err(Error::config(format!(
                    "table '{table}': sequence column '{name}' starts after it ends ({start} > {end})"
                )));
            }
            FieldKind::Sequence { start, end }
        } else {
            let defaults = RandomOptions::default();
            FieldKind::Random(RandomOptions {
                min: given.get("min").cloned(),
                max: given.get("max").cloned(),
                length: option
                    .get("length", parse_number)?
                    .unwrap_or(defaults.length),
                var_len: option
                    .get("var-len", parse_bool)?
                    .unwrap_or(defaults.var_len),
                max_past: option
                    .get("max-past", parse_duration)?
                    .unwrap_or(defaults.max_past),
            })
        };
        Ok(Self { kind, null_rate })
    }
}

/// The `fields.<column>.*` options of one column, for parsing with good messages.
struct FieldOptions<'a> {
    table: &'a str,
    column: &'a str,
    given: &'a BTreeMap<String, String>,
}

impl FieldOptions<'_> {
    fn invalid(&self, key: &str, value: &str, why: &str) -> Error {
        Error::config(format!(
            "table '{}': option 'fields.{}.{key}' = '{value}' is invalid: {why}",
            self.table, self.column
        ))
    }

    fn get<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>> {
        match self.given.get(key) {
            None => Ok(None),
            Some(value) => parse(value)
                .map(Some)
                .map_err(|e| self.invalid(key, value, &e)),
        }
    }

    fn required_i64(&self, key: &str) -> Result<i64> {
        self.get(key, parse_number::<i64>)?.ok_or_else(|| {
            Error::config(format!(
                "table '{}': sequence column '{}' needs the option 'fields.{}.{key}'",
                self.table, self.column, self.column
            ))
        })
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected 'true' or 'false'".into()),
    }
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_integer()
        || data_type.is_floating()
        || matches!(data_type, DataType::Decimal128(..))
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_temporal(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(..) | DataType::Date32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(pairs: &[(&str, &str)]) -> Result<DatagenConfig> {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                true,
            ),
        ]);
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut options = Options::new("gen", values);
        let config = DatagenConfig::take("gen", &schema, &mut options)?;
        options.finish()?;
        Ok(config)
    }

    #[test]
    fn defaults_and_field_options() {
        let config = take(&[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "100"),
            ("fields.name.length", "5"),
            ("fields.name.null-rate", "0.5"),
            ("fields.ts.max-past", "10 s"),
        ])
        .unwrap();
        assert_eq!(config.rows_per_second, 10_000.0);
        assert_eq!(config.number_of_rows, None);
        assert!(config.bounded());
        assert_eq!(
            config.fields[0].kind,
            FieldKind::Sequence { start: 1, end: 100 }
        );
        assert_eq!(config.fields[1].null_rate, 0.5);
        let FieldKind::Random(ts) = &config.fields[2].kind else {
            panic!("random expected")
        };
        assert_eq!(ts.max_past, Duration::from_secs(10));
        assert!(!take(&[]).unwrap().bounded());
        assert!(take(&[("number-of-rows", "5")]).unwrap().bounded());
    }

    #[test]
    fn option_errors() {
        let message = |pairs: &[(&str, &str)]| take(pairs).unwrap_err().message().to_string();
        assert_eq!(
            message(&[("fields.nope.kind", "random")]),
            "table 'gen': option 'fields.nope.kind' names column 'nope', which the table does not have"
        );
        assert!(
            message(&[("fields.id.kind", "sequence"), ("fields.id.start", "1")])
                .contains("needs the option 'fields.id.end'")
        );
        assert!(message(&[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "9"),
            ("fields.id.end", "1")
        ])
        .contains("starts after it ends"));
        assert!(
            message(&[("fields.id.kind", "zigzag")]).contains("expected 'random' or 'sequence'")
        );
        assert!(message(&[("fields.id.colour", "red")])
            .contains("'fields.id.colour' is not understood"));
        assert!(message(&[("fields.name.min", "1")]).contains("does not apply"));
        assert!(message(&[("fields.ts.kind", "sequence")]).contains("cannot be a sequence"));
        assert!(message(&[("rows-per-second", "0")]).contains("'rows-per-second' = '0' is invalid"));
        assert!(message(&[("fields.name.null-rate", "2")]).contains("is invalid"));
        assert!(message(&[("rows-per-sec", "1")]).contains("'rows-per-sec' is not understood"));
    }
}
