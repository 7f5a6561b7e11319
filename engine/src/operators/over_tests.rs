//! OVER frames on small inputs: RANGE with peers, ROWS, and an idle key's frame freed once
//! the watermark has passed its range.

use std::sync::Arc;

use arrow::array::TimestampMillisecondArray;
use arrow::array::{AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::col;

use super::*;
use crate::state::KeyedState;

/// SUM(v) OVER (PARTITION BY k ORDER BY ts <frame>).
fn operator(frame: Frame) -> OverAggregate {
    let input = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("v", DataType::Float64, true),
    ]));
    let sum = AggregateExprBuilder::new(sum_udaf(), vec![col("v", &input).expect("v")])
        .schema(Arc::clone(&input))
        .alias("total")
        .build()
        .expect("SUM(v)");
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("total", DataType::Float64, true));
    OverAggregate::new(Arc::new(OverSpec {
        keys: vec![col("k", &input).expect("k")],
        key_fields: vec![Field::new("k", DataType::Utf8, true)],
        rowtime: 1,
        frame,
        aggregates: vec![Arc::new(sum)],
        output_schema: Arc::new(Schema::new(fields)),
        input_schema: input,
    }))
    .expect("operator")
}

fn rows(rows: &[(&str, i64, f64)]) -> StreamBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("v", DataType::Float64, true),
    ]));
    StreamBatch::new(
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("a batch"),
    )
}

/// (key, time, total) of the emitted rows, in emission order.
fn emitted(out: &[StreamBatch]) -> Vec<(String, i64, f64)> {
    let mut found = Vec::new();
    for b in out {
        let k = b.batch.column(0).as_string::<i32>();
        let ts = b
            .batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let total = b.batch.column(3).as_primitive::<Float64Type>();
        for i in 0..b.batch.num_rows() {
            found.push((k.value(i).to_string(), ts.value(i), total.value(i)));
        }
    }
    found
}

fn row(k: &str, ts: i64, total: f64) -> (String, i64, f64) {
    (k.to_string(), ts, total)
}

#[test]
fn range_counts_peers_together_and_drops_rows_older_than_the_range() {
    let mut op = operator(Frame::Range(10));
    let mut out = Vec::new();
    // Out of order within the batch; 5 and 5 are peers; 16 - 10 = 6 leaves 5 out.
    op.process_batch(
        rows(&[("a", 5, 1.0), ("a", 16, 4.0), ("a", 5, 2.0), ("a", 15, 8.0)]),
        &mut out,
    )
    .expect("rows");
    op.handle_watermark(100, &mut out).expect("watermark");
    assert_eq!(
        emitted(&out),
        [
            row("a", 5, 3.0),
            row("a", 5, 3.0),
            row("a", 15, 11.0),
            row("a", 16, 12.0)
        ]
    );
}

#[test]
fn rows_frames_count_rows_in_arrival_order_for_equal_times() {
    let mut op = operator(Frame::Rows(1));
    let mut out = Vec::new();
    op.process_batch(
        rows(&[("a", 5, 1.0), ("b", 5, 100.0), ("a", 5, 2.0), ("a", 7, 4.0)]),
        &mut out,
    )
    .expect("rows");
    op.handle_watermark(100, &mut out).expect("watermark");
    let mut got = emitted(&out);
    got.sort_by(|x, y| x.partial_cmp(y).expect("numbers"));
    assert_eq!(
        got,
        [
            row("a", 5, 1.0),
            row("a", 5, 3.0),
            row("a", 7, 6.0),
            row("b", 5, 100.0)
        ]
    );
}

#[test]
fn an_idle_key_s_frame_is_freed_once_the_watermark_passes_its_range() {
    let mut op = operator(Frame::Range(10));
    let mut out = Vec::new();
    op.process_batch(rows(&[("a", 5, 1.0), ("b", 30, 2.0)]), &mut out)
        .expect("rows");
    op.handle_watermark(30, &mut out).expect("watermark");
    // Key a's row (time 5) is out of any future row's range once the watermark is at 16.
    let tables = KeyedState::snapshot(&mut op).expect("snapshot");
    let stored: usize = tables[0].iter().map(|b| b.num_rows()).sum();
    assert_eq!(stored, 1, "only b's row is still in a frame");
    op.handle_watermark(41, &mut out).expect("watermark");
    let tables = KeyedState::snapshot(&mut op).expect("snapshot");
    assert!(tables[0].iter().all(|b| b.num_rows() == 0), "{tables:?}");
    assert_eq!(emitted(&out), [row("a", 5, 1.0), row("b", 30, 2.0)]);
}
