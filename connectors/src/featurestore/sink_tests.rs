//! Unit tests of `sink`.
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Field, Schema};

use super::*;

fn table(columns: Vec<Field>, options: &[(&str, &str)]) -> SinkTable {
    let mut pairs = vec![("feature-group.name", "g"), ("aws.endpoint", "local:x")];
    pairs.extend_from_slice(options);
    let mut options = Options::from_pairs("features", &pairs);
    SinkTable {
        name: "features".into(),
        config: FeatureStoreSinkConfig::take(&mut options).unwrap(),
        schema: Arc::new(Schema::new(columns)),
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn group() -> FeatureGroup {
    crate::featurestore::model::example_group()
}

#[test]
fn rows_become_feature_strings() {
    let t = table(
        vec![
            Field::new("window_end", ts(), false),
            Field::new("currency", DataType::Utf8, true),
            Field::new("tx_count", DataType::Int64, true),
            Field::new("avg_fee", DataType::Float64, true),
        ],
        &[],
    );
    let plan = Plan::new(&t, &group()).unwrap();
    let batch = RecordBatch::try_new(
        Arc::clone(&t.schema),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![1_714_564_800_123, 0])),
            Arc::new(StringArray::from(vec![Some("BTC"), None])),
            Arc::new(Int64Array::from(vec![Some(3), Some(1)])),
            Arc::new(Float64Array::from(vec![None, Some(0.1)])),
        ],
    )
    .unwrap();
    let records = plan.records(&batch).unwrap();
    let first = records[0].as_ref().unwrap();
    assert_eq!(first.id, "BTC");
    assert_eq!(
        first.values,
        vec![
            FeatureValue::new("event_time", "2024-05-01T12:00:00.123Z"),
            FeatureValue::new("currency", "BTC"),
            FeatureValue::new("tx_count", "3"),
        ]
    );
    assert_eq!(
        records[1].as_ref().unwrap_err(),
        "a row has a NULL record identifier ('currency')"
    );
    assert_eq!(epoch_seconds(1_714_564_800_123_000), "1714564800.123");
    assert_eq!(epoch_seconds(1_714_564_800_000_000), "1714564800");
    assert_eq!(0.1f64.to_string(), "0.1");
    assert_eq!((1.0f64 / 3.0).to_string(), "0.3333333333333333");
}

#[test]
fn columns_are_checked_against_the_group() {
    let err = |columns: Vec<Field>, options: &[(&str, &str)]| {
        Plan::new(&table(columns, options), &group())
            .unwrap_err()
            .message()
            .to_string()
    };
    assert_eq!(
        err(
            vec![
                Field::new("window_end", ts(), false),
                Field::new("currency", DataType::Utf8, true),
                Field::new("color", DataType::Utf8, true),
            ],
            &[]
        ),
        "table 'features': column 'color' is not a feature of feature group \
         'tx-metrics' (its features: currency, event_time, tx_count, avg_fee)"
    );
    assert_eq!(
        err(
            vec![
                Field::new("window_end", ts(), false),
                Field::new("currency", DataType::Utf8, true),
                Field::new("tx_count", DataType::Float64, true),
            ],
            &[]
        ),
        "table 'features': column 'tx_count' of type Float64 cannot become feature \
         'tx_count' of type Integral"
    );
    assert_eq!(
        err(vec![Field::new("window_end", ts(), false)], &[]),
        "table 'features': no column gives the record identifier feature 'currency' of \
         feature group 'tx-metrics': add a column of that name or set the option \
         'record-identifier'"
    );
    assert_eq!(
        err(vec![Field::new("currency", DataType::Utf8, true)], &[]),
        "table 'features': no column gives the event time (the feature 'event_time'): set \
         the option 'event-time'"
    );
    // A differently named identifier column, given by the option.
    let t = table(
        vec![
            Field::new("ts", ts(), false),
            Field::new("symbol", DataType::Utf8, true),
        ],
        &[("record-identifier", "symbol"), ("event-time", "ts")],
    );
    let plan = Plan::new(&t, &group()).unwrap();
    assert_eq!(plan.columns[1].feature, "currency");
    assert_eq!(plan.columns[0].conversion, Conversion::IsoTime);
}
