//! SESSION windows: the vectors of Flink's documentation over the Bid table (partitioned by
//! supplier, unpartitioned, the legacy `GROUP BY SESSION(...)`), lateness (a row whose own
//! window has passed still joins an open session it touches), the errors of the call, and a
//! million out-of-order events checked session by session against an independent
//! computation (`tests/support/compare_session.py`) at parallelism 1 and 4.

use crate::common::{
    assert_rows, at, bid_job, bid_job_with, compare_five_aggregates, run_json_job, run_python,
    window_sum, JobDir, BID_ROWS, SUM_SINK,
};
use serde_json::json;

const SUPPLIER_SINK: &str =
    "window_start TIMESTAMP(3), window_end TIMESTAMP(3), supplier STRING, total DOUBLE";

fn supplier_sum(start: &str, end: &str, supplier: &str, total: f64) -> serde_json::Value {
    json!({"window_start": at(start), "window_end": at(end), "supplier": supplier, "total": total})
}

#[test]
fn session_2_minutes_partitioned_by_supplier_follows_the_vector_at_any_parallelism() {
    let job = bid_job(
        SUPPLIER_SINK,
        "INSERT INTO sink
SELECT window_start, window_end, supplier, SUM(price)
FROM TABLE(SESSION(TABLE bid PARTITION BY supplier, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES))
GROUP BY window_start, window_end, supplier;",
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(BID_ROWS, &job, &[("parallelism.default", parallelism)]);
        assert_rows(
            &run.rows,
            json!([
                supplier_sum("08:05", "08:09", "s1", 6.0),
                supplier_sum("08:09", "08:13", "s2", 8.0),
                supplier_sum("08:13", "08:15", "s1", 1.0),
                supplier_sum("08:17", "08:19", "s2", 6.0),
            ]),
        );
        assert_eq!(run.metrics.dropped(), 0);
    }
}

#[test]
fn unpartitioned_sessions_merge_rows_exactly_a_gap_apart() {
    // 08:07 + 2 min touches 08:09: one session from 08:05 to 08:15.
    let job = bid_job(
        SUM_SINK,
        "INSERT INTO sink
SELECT window_start, window_end, SUM(price)
FROM SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES)
GROUP BY window_start, window_end;",
    );
    let run = run_json_job(BID_ROWS, &job, &[]);
    assert_rows(
        &run.rows,
        json!([
            window_sum("08:05", "08:15", 15.0),
            window_sum("08:17", "08:19", 6.0)
        ]),
    );
}

#[test]
fn legacy_group_by_session_gives_the_same_rows_with_start_end_and_rowtime() {
    let job = bid_job(
        "s TIMESTAMP(3), e TIMESTAMP(3), r TIMESTAMP(3), supplier STRING, total DOUBLE, n BIGINT",
        "INSERT INTO sink
SELECT SESSION_START(bidtime, INTERVAL '2' MINUTE), SESSION_END(bidtime, INTERVAL '2' MINUTE),
  SESSION_ROWTIME(bidtime, INTERVAL '2' MINUTE), supplier, SUM(price), COUNT(*)
FROM bid
GROUP BY SESSION(bidtime, INTERVAL '2' MINUTE), supplier;",
    );
    let run = run_json_job(BID_ROWS, &job, &[("parallelism.default", "2")]);
    let row = |s: &str, e: &str, r: &str, supplier: &str, total: f64, n: u64| {
        json!({"s": at(s), "e": at(e), "r": format!("2020-04-15 {r}.999"),
               "supplier": supplier, "total": total, "n": n})
    };
    assert_rows(
        &run.rows,
        json!([
            row("08:05", "08:09", "08:08:59", "s1", 6.0, 2),
            row("08:09", "08:13", "08:12:59", "s2", 8.0, 2),
            row("08:13", "08:15", "08:14:59", "s1", 1.0, 1),
            row("08:17", "08:19", "08:18:59", "s2", 6.0, 1),
        ]),
    );
}

#[test]
fn a_row_past_the_watermark_is_late_unless_it_touches_an_open_session() {
    // Watermark = bidtime, emitted after every record. After 08:10 the session
    // [08:05, 08:07) has fired; 08:07's own window [08:07, 08:09) has passed and touches no
    // open session: late. 08:08's window [08:08, 08:10) has passed too, but touches the open
    // [08:10, 08:12): it joins it, as in Flink, where the merged window is not late.
    let input = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:10:00", "price": 2.00, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": 5.00, "item": "D", "supplier": "s1"}
{"bidtime": "2020-04-15 08:08:00", "price": 3.00, "item": "B", "supplier": "s1"}
"#;
    let job = bid_job_with(
        Some("bidtime"),
        "DOUBLE",
        SUM_SINK,
        "INSERT INTO sink
SELECT window_start, window_end, SUM(price)
FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES))
GROUP BY window_start, window_end;",
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(
            input,
            &job,
            &[
                ("pipeline.auto-watermark-interval", "0"),
                ("parallelism.default", parallelism),
            ],
        );
        assert_rows(
            &run.rows,
            json!([
                window_sum("08:05", "08:07", 4.0),
                window_sum("08:08", "08:12", 5.0)
            ]),
        );
        assert_eq!(run.metrics.late, 1);
    }
}

#[test]
fn session_calls_that_cannot_run_are_refused_at_their_place() {
    let refused = |statements: &str, expected: &str| {
        let dir = JobDir::new();
        let input = dir.write("input.json", BID_ROWS);
        let outcome = dir.run(&bid_job(SUPPLIER_SINK, statements), &input, &[]);
        outcome.assert_failure();
        assert!(
            outcome.stderr.contains(expected),
            "expected {expected:?} in:\n{}",
            outcome.stderr
        );
        // The job file's name, a line and a column.
        assert!(outcome.stderr.contains("job.sql:"), "{}", outcome.stderr);
    };
    refused(
        "INSERT INTO sink
SELECT window_start, window_end, item, SUM(price)
FROM TABLE(SESSION(TABLE bid PARTITION BY supplier, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES))
GROUP BY window_start, window_end, item;",
        "partitioned by 'supplier'",
    );
    refused(
        "INSERT INTO sink
SELECT window_start, window_end, supplier, price
FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES));",
        "can only be aggregated",
    );
    refused(
        "INSERT INTO sink
SELECT window_start, window_end, supplier, SUM(price)
FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES, INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, supplier;",
        "no offset",
    );
    refused(
        "INSERT INTO sink
SELECT window_start, window_end, supplier, SUM(price)
FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '0' MINUTES))
GROUP BY window_start, window_end, supplier;",
        "gap must be positive",
    );
}

#[test]
fn sessions_over_a_million_out_of_order_events_match_an_independent_computation() {
    // One file (one partition), 1,000 keys at 1,000 events a second of event time (about
    // one per key and second), up to 3 s out of order against a 1 s delay, a 1.5 s gap:
    // sessions of a few rows, and tens of thousands of rows whose window had passed with
    // no open session to join (late).
    let input = JobDir::new();
    let events = input.path().join("events.json");
    run_python(
        "gen_events.py",
        &[
            "--events=1000000",
            "--keys=1000",
            "--rate=1000",
            "--disorder-ms=3000",
            &events.display().to_string(),
        ],
    );
    let job = "CREATE TABLE events (
  k STRING, v DOUBLE, ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING,
  cnt BIGINT, total DOUBLE, mean DOUBLE, lo DOUBLE, hi DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'parquet');
INSERT INTO sink
SELECT window_start, window_end, k, COUNT(*), SUM(v), AVG(v), MIN(v), MAX(v)
FROM TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(event_ts), INTERVAL '1.5' SECOND))
GROUP BY window_start, window_end, k;
";
    for parallelism in ["1", "4"] {
        let dir = JobDir::new();
        let outcome = dir.run(job, &events, &[("parallelism.default", parallelism)]);
        outcome.assert_success();
        let summary = compare_five_aggregates(
            "compare_session.py",
            &events,
            &dir.output(),
            &["--gap-ms", "1500"],
        );
        let metrics = outcome.metrics();
        let expected_late = summary["expected_late"].as_u64().expect("expected_late");
        assert!(expected_late > 10_000, "too few late rows: {summary}");
        assert_eq!(metrics.late, expected_late, "at parallelism {parallelism}");
        assert_eq!(
            Some(metrics.records_written),
            summary["actual_rows"].as_u64()
        );
        assert!(
            summary["actual_rows"].as_u64() < Some(500_000),
            "sessions should hold several rows: {summary}"
        );
    }
}
