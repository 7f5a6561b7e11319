//! Feature Store's data model, in the JSON shapes of the AWS API: feature groups, records,
//! event times and TTLs, and the rules a record must follow to be accepted.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The type of a feature, as Feature Store names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureType {
    Integral,
    Fractional,
    String,
}

impl FeatureType {
    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Integral => "Integral",
            FeatureType::Fractional => "Fractional",
            FeatureType::String => "String",
        }
    }
}

/// One feature of a group (`FeatureDefinitions[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FeatureDefinition {
    pub feature_name: String,
    pub feature_type: FeatureType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_type: Option<String>,
}

/// `TtlDuration`: how long after its event time a record stays in the online store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlDuration {
    pub unit: TtlUnit,
    pub value: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl TtlDuration {
    pub fn micros(&self) -> i64 {
        let seconds = match self.unit {
            TtlUnit::Seconds => 1,
            TtlUnit::Minutes => 60,
            TtlUnit::Hours => 3_600,
            TtlUnit::Days => 86_400,
            TtlUnit::Weeks => 604_800,
        };
        self.value.saturating_mul(seconds).saturating_mul(1_000_000)
    }

    /// A duration in the largest unit that holds it exactly (whole seconds at least).
    pub fn from_duration(d: std::time::Duration) -> Result<Self, String> {
        let seconds = d.as_secs() as i64;
        if seconds == 0 || d.subsec_nanos() != 0 {
            return Err("a TTL is a positive whole number of seconds".into());
        }
        let (unit, size) = [
            (TtlUnit::Weeks, 604_800),
            (TtlUnit::Days, 86_400),
            (TtlUnit::Hours, 3_600),
            (TtlUnit::Minutes, 60),
            (TtlUnit::Seconds, 1),
        ]
        .into_iter()
        .find(|(_, size)| seconds % size == 0)
        .unwrap_or((TtlUnit::Seconds, 1));
        Ok(Self {
            unit,
            value: seconds / size,
        })
    }
}

/// `OnlineStoreConfig` (the parts the local store uses; the rest is kept as given).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnlineStoreConfig {
    #[serde(default)]
    pub enable_online_store: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_duration: Option<TtlDuration>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `OfflineStoreConfig.S3StorageConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3StorageConfig {
    #[serde(rename = "S3Uri")]
    pub s3_uri: String,
    #[serde(
        rename = "ResolvedOutputS3Uri",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resolved_output_s3_uri: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `OfflineStoreConfig.DataCatalogConfig`: the Glue table of the offline store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCatalogConfig {
    pub table_name: String,
    #[serde(default)]
    pub catalog: String,
    pub database: String,
}

/// `OfflineStoreConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OfflineStoreConfig {
    #[serde(rename = "S3StorageConfig")]
    pub s3_storage_config: S3StorageConfig,
    /// Where the offline store is registered in Glue; the local store registers it only
    /// when this is given (and the S3Uri is `s3://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_catalog_config: Option<DataCatalogConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_glue_table_creation: Option<bool>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A feature group as `CreateFeatureGroup` defines it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FeatureGroup {
    pub feature_group_name: String,
    pub record_identifier_feature_name: String,
    pub event_time_feature_name: String,
    pub feature_definitions: Vec<FeatureDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_store_config: Option<OnlineStoreConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_store_config: Option<OfflineStoreConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set by the store: creation time, epoch seconds.
    #[serde(default)]
    pub creation_time: f64,
}

impl FeatureGroup {
    pub fn feature(&self, name: &str) -> Option<&FeatureDefinition> {
        self.feature_definitions
            .iter()
            .find(|f| f.feature_name == name)
    }

    /// Whether puts reach the online store at all (AWS: `EnableOnlineStore`).
    pub fn online_enabled(&self) -> bool {
        self.online_store_config
            .as_ref()
            .is_some_and(|c| c.enable_online_store)
    }

    pub fn offline_enabled(&self) -> bool {
        self.offline_store_config.is_some()
    }

    /// The folder name of the group's offline data: `<name>-<creation epoch seconds>`.
    pub fn offline_folder(&self) -> String {
        format!(
            "{}-{}",
            self.feature_group_name,
            self.creation_time.floor() as i64
        )
    }

    /// Checks a definition as `CreateFeatureGroup` does.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.feature_group_name;
        let valid_name = |n: &str, max: usize| {
            !n.is_empty()
                && n.len() <= max
                && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid_name(name, 64) {
            return Err(format!(
                "FeatureGroupName '{name}' must be 1 to 64 letters, digits, '-' or '_', \
                 starting with a letter or digit"
            ));
        }
        if self.feature_definitions.is_empty() {
            return Err("FeatureDefinitions must not be empty".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.feature_definitions {
            if !valid_name(&f.feature_name, 64) {
                return Err(format!("FeatureName '{}' is not valid", f.feature_name));
            }
            if !seen.insert(f.feature_name.to_ascii_lowercase()) {
                return Err(format!(
                    "FeatureName '{}' is defined more than once",
                    f.feature_name
                ));
            }
            let reserved = ["is_deleted", "write_time", "api_invocation_time"];
            if reserved.contains(&f.feature_name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "FeatureName '{}' is reserved for the offline store",
                    f.feature_name
                ));
            }
        }
        match self.feature(&self.record_identifier_feature_name) {
            None => {
                return Err(format!(
                    "RecordIdentifierFeatureName '{}' is not in FeatureDefinitions",
                    self.record_identifier_feature_name
                ))
            }
            Some(f) if f.feature_type == FeatureType::Fractional => {
                return Err(format!(
                    "the record identifier feature '{}' must be of type String or Integral",
                    f.feature_name
                ))
            }
            Some(_) => {}
        }
        match self.feature(&self.event_time_feature_name) {
            None => Err(format!(
                "EventTimeFeatureName '{}' is not in FeatureDefinitions",
                self.event_time_feature_name
            )),
            Some(f) if f.feature_type == FeatureType::Integral => Err(format!(
                "the event time feature '{}' must be of type String or Fractional",
                f.feature_name
            )),
            Some(_) => {
                if !self.online_enabled() && !self.offline_enabled() {
                    Err("at least one of OnlineStoreConfig and OfflineStoreConfig is needed".into())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// One value of a record (`Record[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FeatureValue {
    pub feature_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_as_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_as_string_list: Option<Vec<String>>,
}

impl FeatureValue {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            feature_name: name.into(),
            value_as_string: Some(value.into()),
            value_as_string_list: None,
        }
    }
}

/// A record that passed validation: its identifier and event time picked out.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRecord {
    pub identifier: String,
    /// Event time in microseconds since the epoch.
    pub event_time: i64,
    pub values: Vec<FeatureValue>,
}

/// Checks a record against its group as `PutRecord` does: every feature defined, values of
/// the feature's type, identifier and event time present.
pub fn validate_record(
    group: &FeatureGroup,
    record: &[FeatureValue],
) -> Result<ValidRecord, String> {
    if record.is_empty() {
        return Err("the record has no features".into());
    }
    let mut seen = std::collections::HashSet::new();
    for value in record {
        let name = &value.feature_name;
        let Some(def) = group.feature(name) else {
            return Err(format!(
                "feature '{name}' is not defined in feature group '{}'",
                group.feature_group_name
            ));
        };
        if !seen.insert(name.as_str()) {
            return Err(format!("feature '{name}' appears more than once"));
        }
        match (&value.value_as_string, &value.value_as_string_list) {
            (Some(v), None) => check_value(def, v)?,
            (None, Some(list)) if def.collection_type.is_some() => {
                for v in list {
                    check_value(def, v)?;
                }
            }
            (None, Some(_)) => {
                return Err(format!(
                    "feature '{name}' is not a collection, so it takes ValueAsString"
                ))
            }
            _ => {
                return Err(format!(
                    "feature '{name}' needs exactly one of ValueAsString and ValueAsStringList"
                ))
            }
        }
    }
    let scalar = |name: &str| {
        record
            .iter()
            .find(|v| v.feature_name == name)
            .and_then(|v| v.value_as_string.clone())
    };
    let identifier = scalar(&group.record_identifier_feature_name).ok_or_else(|| {
        format!(
            "the record identifier feature '{}' is missing",
            group.record_identifier_feature_name
        )
    })?;
    let event_time_text = scalar(&group.event_time_feature_name).ok_or_else(|| {
        format!(
            "the event time feature '{}' is missing",
            group.event_time_feature_name
        )
    })?;
    let event_time = parse_event_time(&event_time_text).ok_or_else(|| {
        format!(
            "event time '{event_time_text}' of feature '{}' is neither ISO-8601 UTC \
             (yyyy-MM-ddTHH:mm:ssZ, optionally with .SSS) nor epoch seconds",
            group.event_time_feature_name
        )
    })?;
    Ok(ValidRecord {
        identifier,
        event_time,
        values: record.to_vec(),
    })
}

fn check_value(def: &FeatureDefinition, value: &str) -> Result<(), String> {
    let ok = match def.feature_type {
        FeatureType::String => true,
        FeatureType::Integral => value.parse::<i64>().is_ok(),
        FeatureType::Fractional => value.parse::<f64>().is_ok_and(f64::is_finite),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "value '{value}' of feature '{}' is not of type {}",
            def.feature_name,
            def.feature_type.name()
        ))
    }
}

/// Parses an event time as Feature Store accepts it: ISO-8601 UTC (`yyyy-MM-ddTHH:mm:ssZ`,
/// with up to 9 fraction digits) or fractional epoch seconds. Microseconds since the epoch.
pub fn parse_event_time(text: &str) -> Option<i64> {
    if let Some(stripped) = text.strip_suffix('Z') {
        let t = NaiveDateTime::parse_from_str(stripped, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        return Some(t.and_utc().timestamp_micros());
    }
    // Epoch seconds, parsed as a decimal so no float rounding moves the time.
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let mut micros = 0i64;
    for (i, b) in fraction.bytes().take(6).enumerate() {
        micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
    }
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    seconds.checked_mul(1_000_000)?.checked_add(sign * micros)
}

/// An instant as ISO-8601 UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub fn iso_millis(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| micros.to_string())
}

/// A group of the shape the tests use: identifier `currency`, event time `event_time`,
/// features `tx_count` (Integral) and `avg_fee` (Fractional), online store only.
#[cfg(test)]
pub(crate) fn example_group() -> FeatureGroup {
    let def = |name: &str, feature_type| FeatureDefinition {
        feature_name: name.into(),
        feature_type,
        collection_type: None,
    };
    FeatureGroup {
        feature_group_name: "tx-metrics".into(),
        record_identifier_feature_name: "currency".into(),
        event_time_feature_name: "event_time".into(),
        feature_definitions: vec![
            def("currency", FeatureType::String),
            def("event_time", FeatureType::String),
            def("tx_count", FeatureType::Integral),
            def("avg_fee", FeatureType::Fractional),
        ],
        online_store_config: Some(OnlineStoreConfig {
            enable_online_store: true,
            ..Default::default()
        }),
        offline_store_config: None,
        role_arn: None,
        description: None,
        creation_time: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> FeatureGroup {
        example_group()
    }

    #[test]
    fn event_times_in_both_forms() {
        assert_eq!(
            parse_event_time("2024-05-01T12:00:00Z"),
            Some(1_714_564_800_000_000)
        );
        assert_eq!(
            parse_event_time("2024-05-01T12:00:00.123Z"),
            Some(1_714_564_800_123_000)
        );
        assert_eq!(
            parse_event_time("1714564800.123"),
            Some(1_714_564_800_123_000)
        );
        assert_eq!(parse_event_time("1714564800"), Some(1_714_564_800_000_000));
        assert_eq!(parse_event_time("2024-05-01 12:00:00"), None);
        assert_eq!(parse_event_time("yesterday"), None);
        assert_eq!(
            iso_millis(1_714_564_800_123_000),
            "2024-05-01T12:00:00.123Z"
        );
    }

    #[test]
    fn records_are_checked_against_the_group() {
        let g = group();
        g.validate().unwrap();
        let ok = validate_record(
            &g,
            &[
                FeatureValue::new("currency", "BTC"),
                FeatureValue::new("event_time", "2024-05-01T12:00:00Z"),
                FeatureValue::new("tx_count", "3"),
            ],
        )
        .unwrap();
        assert_eq!(ok.identifier, "BTC");
        let err = |record: &[FeatureValue]| validate_record(&g, record).unwrap_err();
        assert_eq!(
            err(&[FeatureValue::new("color", "red")]),
            "feature 'color' is not defined in feature group 'tx-metrics'"
        );
        assert_eq!(
            err(&[
                FeatureValue::new("currency", "BTC"),
                FeatureValue::new("event_time", "2024-05-01T12:00:00Z"),
                FeatureValue::new("tx_count", "3.5"),
            ]),
            "value '3.5' of feature 'tx_count' is not of type Integral"
        );
        assert_eq!(
            err(&[FeatureValue::new("event_time", "2024-05-01T12:00:00Z")]),
            "the record identifier feature 'currency' is missing"
        );
        let mut bad = g.clone();
        bad.event_time_feature_name = "tx_count".into();
        assert!(bad.validate().unwrap_err().contains("String or Fractional"));
    }

    #[test]
    fn ttl_in_the_largest_exact_unit() {
        let days = |n: u64| std::time::Duration::from_secs(n * 86_400);
        let ttl = TtlDuration::from_duration(days(7)).unwrap();
        assert_eq!(
            ttl,
            TtlDuration {
                unit: TtlUnit::Weeks,
                value: 1
            }
        );
        assert_eq!(ttl.micros(), 7 * 86_400 * 1_000_000);
        assert_eq!(
            TtlDuration::from_duration(days(3)).unwrap(),
            TtlDuration {
                unit: TtlUnit::Days,
                value: 3
            }
        );
        assert_eq!(
            TtlDuration::from_duration(std::time::Duration::from_secs(90)).unwrap(),
            TtlDuration {
                unit: TtlUnit::Seconds,
                value: 90
            }
        );
        assert!(TtlDuration::from_duration(std::time::Duration::from_millis(1500)).is_err());
    }
}
