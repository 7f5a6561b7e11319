//! Session merging, lateness and restore, on batches as `SessionTag` leaves them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::col;

use super::*;
use crate::state::KeyedState;

const GAP: i64 = 2;

/// A keyless SUM(v) over sessions of 2 ms.
fn operator() -> SessionAggregate {
    let input = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)]));
    let sum = AggregateExprBuilder::new(sum_udaf(), vec![col("v", &input).expect("v")])
        .schema(Arc::clone(&input))
        .alias("total")
        .build()
        .expect("SUM(v)");
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let spec = SessionSpec {
        gap_ms: GAP,
        time_zone: None,
        keys: vec![],
        key_fields: vec![],
        aggregates: vec![Arc::new(sum)],
        filters: vec![None],
        output: vec![
            AggregateOutput::WindowStart,
            AggregateOutput::WindowEnd,
            AggregateOutput::Aggregate(0),
        ],
        output_schema: Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("total", DataType::Float64, true),
        ])),
        table: "t".into(),
    };
    SessionAggregate::new(Arc::new(spec), Arc::new(JobMetrics::default())).expect("operator")
}

/// Rows (time, value, watermark before it) with the trailing session columns.
fn rows(rows: &[(i64, f64, i64)]) -> StreamBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Float64, true),
        Field::new(TRAILING_COLUMNS[0], DataType::Int64, false),
        Field::new(TRAILING_COLUMNS[1], DataType::Int64, false),
    ]));
    let column = |f: fn(&(i64, f64, i64)) -> i64| Int64Array::from_iter_values(rows.iter().map(f));
    StreamBatch::new(
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(column(|r| r.0)),
                Arc::new(column(|r| r.2)),
            ],
        )
        .expect("a batch"),
    )
}

/// (start, end, total) of every session in `out`.
fn sessions(out: &[StreamBatch]) -> Vec<(i64, i64, f64)> {
    let mut found = Vec::new();
    for b in out {
        let start = b
            .batch
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let end = b
            .batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let total = b.batch.column(2).as_primitive::<Float64Type>();
        for i in 0..b.batch.num_rows() {
            found.push((start.value(i), end.value(i), total.value(i)));
        }
    }
    found.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    found
}

#[test]
fn windows_that_touch_merge_and_a_bridging_row_joins_two_sessions() {
    let mut op = operator();
    let mut out = Vec::new();
    // [10, 12) and [13, 15) are apart; 11 bridges them ([11, 13) touches both).
    op.process_batch(rows(&[(10, 1.0, 0), (13, 2.0, 0), (11, 4.0, 0)]), &mut out)
        .expect("rows");
    // [20, 22) and [22, 24) touch.
    op.process_batch(rows(&[(20, 8.0, 0), (22, 16.0, 0)]), &mut out)
        .expect("rows");
    assert!(out.is_empty(), "nothing fires before the watermark");
    op.handle_watermark(14, &mut out).expect("watermark");
    assert_eq!(sessions(&out), [(10, 15, 7.0)], "[10, 15) fires at 14");
    out.clear();
    op.handle_watermark(i64::MAX, &mut out).expect("watermark");
    assert_eq!(sessions(&out), [(20, 24, 24.0)]);
}

#[test]
fn a_row_is_late_only_without_an_open_session_to_join() {
    let mut op = operator();
    let mut out = Vec::new();
    // The watermark before 30 is 29 from its partition: [30, 32) is open. 27's window
    // [27, 29) ends by then and touches nothing: late. 28's [28, 30) touches [30, 32).
    op.process_batch(
        rows(&[(30, 1.0, 29), (27, 2.0, 29), (28, 4.0, 29)]),
        &mut out,
    )
    .expect("rows");
    op.handle_watermark(i64::MAX, &mut out).expect("watermark");
    assert_eq!(sessions(&out), [(28, 32, 5.0)]);
}

#[test]
fn open_sessions_survive_a_snapshot_and_restore() {
    let mut op = operator();
    let mut out = Vec::new();
    op.process_batch(rows(&[(10, 1.0, 0), (11, 2.0, 0), (40, 4.0, 0)]), &mut out)
        .expect("rows");
    let tables = KeyedState::snapshot(&mut op).expect("snapshot");
    let mut restored = operator();
    for batch in &tables[0] {
        KeyedState::restore(&mut restored, 0, batch).expect("restore");
    }
    // A row that merges with the restored [10, 13).
    restored
        .process_batch(rows(&[(13, 8.0, 0)]), &mut out)
        .expect("rows");
    restored
        .handle_watermark(i64::MAX, &mut out)
        .expect("watermark");
    assert_eq!(sessions(&out), [(10, 15, 11.0), (40, 42, 4.0)]);
    assert_eq!(tables[0][0].num_rows(), 2);
    assert!(tables[0][0].column(0).null_count() == 0);
}
