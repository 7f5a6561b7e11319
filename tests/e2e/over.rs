//! OVER aggregations over event time: exact rows over the Bid table (RANGE with rows of the
//! same time, ROWS, UNBOUNDED, a named window, a late row), and a million out-of-order
//! events checked row by row against DuckDB's window functions (`tests/support/compare_over.py`)
//! at parallelism 1 and 4, with the late rows counted as Flink's rule decides them.

use std::path::Path;

use crate::common::{
    assert_rows, at, bid_job, compare_five_aggregates, data_files, json_lines, run_json_job,
    run_python, JobDir, BID_ROWS,
};
use serde_json::json;

/// The Bid table with one more row at 08:09 (the same time as D: the two are peers) and, at
/// the end, a row from 08:12 that arrives after the watermark passed 08:16:59: late.
fn bids() -> String {
    let tie = r#"{"bidtime": "2020-04-15 08:09:00", "price": 3.00, "item": "G", "supplier": "s1"}"#;
    let late =
        r#"{"bidtime": "2020-04-15 08:12:00", "price": 100.00, "item": "L", "supplier": "s1"}"#;
    let mut lines: Vec<&str> = BID_ROWS.lines().collect();
    lines.insert(3, tie);
    lines.push(late);
    lines.join("\n") + "\n"
}

fn row(time: &str, item: &str, values: serde_json::Value) -> serde_json::Value {
    let mut row = json!({"bidtime": at(time), "item": item});
    row.as_object_mut()
        .expect("an object")
        .extend(values.as_object().expect("an object").clone());
    row
}

#[test]
fn range_4_minutes_sees_rows_of_the_same_time_and_emits_in_rowtime_order() {
    let job = bid_job(
        "bidtime TIMESTAMP(3), item STRING, total DOUBLE, n BIGINT",
        "INSERT INTO sink
SELECT bidtime, item,
  SUM(price) OVER (ORDER BY bidtime RANGE BETWEEN INTERVAL '4' MINUTE PRECEDING AND CURRENT ROW),
  COUNT(*) OVER (ORDER BY bidtime RANGE BETWEEN INTERVAL '4' MINUTE PRECEDING AND CURRENT ROW)
FROM bid;",
    );
    // The Bid table alone (docs/semantics.md's example): no ties, nothing late.
    let run = run_json_job(BID_ROWS, &job, &[]);
    assert_rows(
        &run.rows,
        json!([
            row("08:05", "C", json!({"total": 4.0, "n": 1})),
            row("08:07", "A", json!({"total": 6.0, "n": 2})),
            row("08:09", "D", json!({"total": 11.0, "n": 3})),
            row("08:11", "B", json!({"total": 10.0, "n": 3})),
            row("08:13", "E", json!({"total": 9.0, "n": 3})),
            row("08:17", "F", json!({"total": 7.0, "n": 2})),
        ]),
    );
    assert_eq!(run.metrics.dropped(), 0);
    for parallelism in ["1", "4"] {
        let run = run_json_job(&bids(), &job, &[("parallelism.default", parallelism)]);
        // Rows from t - 4 min to t, both included; D and G (08:09) see each other.
        assert_rows(
            &run.rows,
            json!([
                row("08:05", "C", json!({"total": 4.0, "n": 1})),
                row("08:07", "A", json!({"total": 6.0, "n": 2})),
                row("08:09", "D", json!({"total": 14.0, "n": 4})),
                row("08:09", "G", json!({"total": 14.0, "n": 4})),
                row("08:11", "B", json!({"total": 13.0, "n": 4})),
                row("08:13", "E", json!({"total": 12.0, "n": 4})),
                row("08:17", "F", json!({"total": 7.0, "n": 2})),
            ]),
        );
        assert_eq!(run.metrics.late, 1, "the 08:12 row is late");
        assert_eq!(run.metrics.records_written, 7);
        // Without PARTITION BY one instance emits every row, in rowtime order.
        for file in data_files(&run.output, "json") {
            let times: Vec<String> = json_lines(&run.output.join(&file))
                .iter()
                .map(|r| r["bidtime"].as_str().expect("a time").to_string())
                .collect();
            let mut sorted = times.clone();
            sorted.sort();
            assert_eq!(times, sorted, "{file:?} is not in rowtime order");
        }
    }
}

#[test]
fn rows_1_preceding_per_supplier_counts_rows_not_time() {
    let job = bid_job(
        "bidtime TIMESTAMP(3), item STRING, total DOUBLE, n BIGINT",
        "INSERT INTO sink
SELECT bidtime, item, SUM(price) OVER w, COUNT(*) OVER w
FROM bid
WINDOW w AS (PARTITION BY supplier ORDER BY bidtime ROWS BETWEEN 1 PRECEDING AND CURRENT ROW);",
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(&bids(), &job, &[("parallelism.default", parallelism)]);
        assert_rows(
            &run.rows,
            json!([
                row("08:05", "C", json!({"total": 4.0, "n": 1})),
                row("08:07", "A", json!({"total": 6.0, "n": 2})),
                row("08:09", "G", json!({"total": 5.0, "n": 2})),
                row("08:13", "E", json!({"total": 4.0, "n": 2})),
                row("08:09", "D", json!({"total": 5.0, "n": 1})),
                row("08:11", "B", json!({"total": 8.0, "n": 2})),
                row("08:17", "F", json!({"total": 9.0, "n": 2})),
            ]),
        );
        assert_eq!(run.metrics.late, 1);
    }
}

#[test]
fn unbounded_preceding_per_supplier_keeps_running_totals() {
    let job = bid_job(
        "bidtime TIMESTAMP(3), item STRING, n BIGINT, hi DOUBLE, lo DOUBLE, mean DOUBLE",
        "INSERT INTO sink
SELECT bidtime, item, COUNT(*) OVER w, MAX(price) OVER w, MIN(price) OVER w, AVG(price) OVER w
FROM bid
WINDOW w AS (PARTITION BY supplier ORDER BY bidtime
             RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);",
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(&bids(), &job, &[("parallelism.default", parallelism)]);
        let r = |t, item, n, hi, lo, mean| {
            row(t, item, json!({"n": n, "hi": hi, "lo": lo, "mean": mean}))
        };
        assert_rows(
            &run.rows,
            json!([
                r("08:05", "C", 1, 4.0, 4.0, 4.0),
                r("08:07", "A", 2, 4.0, 2.0, 3.0),
                r("08:09", "G", 3, 4.0, 2.0, 3.0),
                r("08:13", "E", 4, 4.0, 1.0, 2.5),
                r("08:09", "D", 1, 5.0, 5.0, 5.0),
                r("08:11", "B", 2, 5.0, 3.0, 4.0),
                r("08:17", "F", 3, 6.0, 3.0, 14.0 / 3.0),
            ]),
        );
    }
}

#[test]
fn over_windows_that_differ_or_order_by_another_column_are_refused() {
    let two_windows = bid_job(
        "bidtime TIMESTAMP(3), a DOUBLE, b DOUBLE",
        "INSERT INTO sink
SELECT bidtime,
  SUM(price) OVER (ORDER BY bidtime ROWS BETWEEN 1 PRECEDING AND CURRENT ROW),
  SUM(price) OVER (ORDER BY bidtime ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
FROM bid;",
    );
    let dir = JobDir::new();
    let input = dir.write("input.json", BID_ROWS);
    let outcome = dir.run(&two_windows, &input, &[]);
    outcome.assert_failure();
    assert_eq!(outcome.status.code(), Some(3), "a plan error");
    assert!(outcome.stderr.contains("same window"), "{}", outcome.stderr);
    let by_price = bid_job(
        "bidtime TIMESTAMP(3), a DOUBLE",
        "INSERT INTO sink
SELECT bidtime, SUM(price) OVER (ORDER BY price ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
FROM bid;",
    );
    let dir = JobDir::new();
    let input = dir.write("input.json", BID_ROWS);
    let outcome = dir.run(&by_price, &input, &[]);
    outcome.assert_failure();
    assert_eq!(outcome.status.code(), Some(3), "a plan error");
    assert!(outcome.stderr.contains("ORDER BY"), "{}", outcome.stderr);
}

const EVENTS: u64 = 1_000_000;

/// Count, sum, average, minimum and maximum of `v` over `frame` per key, one output row per
/// input row, into Parquet.
fn differential_job(frame: &str) -> String {
    format!(
        "CREATE TABLE events (
  k STRING, v DOUBLE, ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
CREATE TABLE sink (
  k STRING, ts BIGINT, v DOUBLE, cnt BIGINT, total DOUBLE, mean DOUBLE, lo DOUBLE, hi DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'parquet');
INSERT INTO sink
SELECT k, ts, v, COUNT(*) OVER w, SUM(v) OVER w, AVG(v) OVER w, MIN(v) OVER w, MAX(v) OVER w
FROM events
WINDOW w AS (PARTITION BY k ORDER BY event_ts {frame});
"
    )
}

/// Runs the job of `frame` over `events` at `parallelism` and checks it with compare_over.py
/// (`frame_args` say the same frame to it); returns Sluice's late rows and the expected ones.
fn run_over(events: &Path, frame: &str, frame_args: &[&str], parallelism: &str) -> (u64, u64) {
    let dir = JobDir::new();
    let outcome = dir.run(
        &differential_job(frame),
        events,
        &[("parallelism.default", parallelism)],
    );
    outcome.assert_success();
    let summary = compare_five_aggregates("compare_over.py", events, &dir.output(), frame_args);
    let metrics = outcome.metrics();
    assert_eq!(metrics.records_read, EVENTS);
    assert_eq!(
        Some(metrics.records_written),
        summary["actual_rows"].as_u64()
    );
    let expected_late = summary["expected_late"].as_u64().expect("expected_late");
    (metrics.late, expected_late)
}

#[test]
fn range_and_rows_frames_over_a_million_out_of_order_events_match_duckdb() {
    // One file (one partition, so arrival order is line order for ROWS ties), 1,000 keys
    // at 1,000 events a second of event time, each up to 1.5 s out of order against a 1 s
    // watermark delay: about a quarter of the rows are late.
    let input = JobDir::new();
    let events = input.path().join("events.json");
    run_python(
        "gen_events.py",
        &[
            &format!("--events={EVENTS}"),
            "--keys=1000",
            "--rate=1000",
            "--disorder-ms=1500",
            &events.display().to_string(),
        ],
    );
    let frames: [(&str, &[&str]); 2] = [
        (
            "RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW",
            &["--range-ms", "600000"],
        ),
        (
            "ROWS BETWEEN 100 PRECEDING AND CURRENT ROW",
            &["--rows", "100"],
        ),
    ];
    for (frame, frame_args) in frames {
        for parallelism in ["1", "4"] {
            let (late, expected_late) = run_over(&events, frame, frame_args, parallelism);
            assert!(expected_late > 10_000, "too few late rows: {expected_late}");
            assert_eq!(
                late, expected_late,
                "late rows of {frame} at parallelism {parallelism}"
            );
        }
    }
}
