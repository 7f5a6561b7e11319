//! Differential tests: a million out-of-order events through a 1-minute TUMBLE aggregate,
//! checked window by window against DuckDB's batch GROUP BY over the same input
//! (`tests/support/compare.py`), at parallelism 1 and 4.

use std::path::Path;

use crate::common::{assert_no_hidden_files, run_python, JobDir, Lateness, TumbleCheck, Windows};

const EVENTS: u64 = 1_000_000;
/// Distinct group keys; at 1,000 events per second of event time each key gets about 60
/// events per 1-minute window, over about 17 windows.
const KEYS: u64 = 1_000;

/// Count, sum, average, minimum and maximum of `v` per minute and key, into Parquet.
fn job(watermark_delay_s: u64) -> String {
    windowed_job(
        watermark_delay_s,
        "TUMBLE(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE)",
    )
}

/// The aggregates of [`job`] per window of `window` (a window table function call) and key.
fn windowed_job(watermark_delay_s: u64, window: &str) -> String {
    format!(
        "CREATE TABLE events (
  k STRING,
  v DOUBLE,
  ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '{watermark_delay_s}' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING,
  cnt BIGINT, total DOUBLE, mean DOUBLE, lo DOUBLE, hi DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'parquet');
INSERT INTO sink
SELECT window_start, window_end, k, COUNT(*), SUM(v), AVG(v), MIN(v), MAX(v)
FROM TABLE({window})
GROUP BY window_start, window_end, k;
"
    )
}

/// Writes the events with `tests/support/gen_events.py` into `path` (a file, or a folder of
/// `files` files), 1,000 a second of event time.
fn generate(path: &Path, disorder_ms: u64, files: u64) {
    generate_at(path, disorder_ms, files, 1_000);
}

fn generate_at(path: &Path, disorder_ms: u64, files: u64, rate: u64) {
    let args = [
        format!("--events={EVENTS}"),
        format!("--keys={KEYS}"),
        format!("--rate={rate}"),
        format!("--disorder-ms={disorder_ms}"),
        format!("--files={files}"),
        path.display().to_string(),
    ];
    run_python(
        "gen_events.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// Runs the job over `events` at `parallelism`, compares its windows with the batch result
/// and returns how many rows Sluice dropped as late and how many the rule predicts. With
/// `emit_interval_ms`, the job sets `pipeline.auto-watermark-interval` to it; without, it
/// runs with the default (200 ms).
fn run_and_compare(
    events: &Path,
    watermark_delay_s: u64,
    parallelism: &str,
    late_possible: bool,
    emit_interval_ms: Option<u64>,
) -> (u64, u64) {
    let dir = JobDir::new();
    let interval = emit_interval_ms.map(|ms| format!("{ms} ms"));
    let mut sets = vec![("parallelism.default", parallelism)];
    if let Some(interval) = &interval {
        sets.push(("pipeline.auto-watermark-interval", interval));
    }
    let outcome = dir.run(&job(watermark_delay_s), events, &sets);
    outcome.assert_success();
    let output = dir.output();
    assert_no_hidden_files(&output);
    let summary = TumbleCheck {
        events,
        output: &output,
        key: "k",
        ts: "ts",
        value: "v",
        size_ms: 60_000,
        windows: Windows::Tumble,
        aggregates: &[
            ("count", "cnt"),
            ("sum", "total"),
            ("avg", "mean"),
            ("min", "lo"),
            ("max", "hi"),
        ],
        lateness: late_possible.then_some(Lateness {
            delay_ms: watermark_delay_s * 1000,
            emit_interval_ms: emit_interval_ms.unwrap_or(200),
        }),
    }
    .run();
    let metrics = outcome.metrics();
    assert_eq!(
        metrics.records_read, EVENTS,
        "records_read at parallelism {parallelism}"
    );
    assert_eq!(
        metrics.records_written, summary.actual_rows,
        "records_written at parallelism {parallelism}"
    );
    assert_eq!(metrics.malformed + metrics.null_event_time, 0);
    (metrics.late, summary.expected_late)
}

#[test]
fn out_of_order_events_within_the_watermark_delay_match_duckdb() {
    // Four files (four source partitions), each at most 2 s out of order; a 3 s delay
    // leaves no row late.
    let input = JobDir::new();
    let events = input.path().join("events");
    generate(&events, 2_000, 4);
    for parallelism in ["1", "4"] {
        let (late, expected_late) = run_and_compare(&events, 3, parallelism, false, None);
        assert_eq!(expected_late, 0);
        assert_eq!(late, 0, "no row may be late at parallelism {parallelism}");
    }
}

#[test]
fn rows_later_than_the_watermark_are_dropped_exactly_as_flink_s_rule_says() {
    // One file (one partition), up to 3 s out of order, a 1 s delay: thousands of rows
    // arrive after their window fired. The watermark is emitted as Flink emits it, once it
    // is more than 200 ms past the last one (its default); with the interval at 0 it is
    // emitted after every record, and somewhat more rows are late.
    let input = JobDir::new();
    let events = input.path().join("events.json");
    generate(&events, 3_000, 1);
    let mut expected = Vec::new();
    for (interval, parallelism) in [(None, "1"), (None, "4"), (Some(0), "1"), (Some(0), "4")] {
        let (late, expected_late) = run_and_compare(&events, 1, parallelism, true, interval);
        assert!(
            expected_late > 1_000,
            "the input should have many late rows: {expected_late}"
        );
        assert_eq!(
            late, expected_late,
            "late rows at parallelism {parallelism}, interval {interval:?}"
        );
        expected.push(expected_late);
    }
    assert!(
        expected[0] < expected[2],
        "the two rules must differ on this input: {expected:?}"
    );
}

/// Runs `window_sql` over `events` at `parallelism` and checks every window against DuckDB
/// (late rows decided per record, a 1 s watermark delay); returns the late rows Sluice
/// dropped and the number DuckDB's side predicts.
fn run_window_kind(
    events: &Path,
    window_sql: &str,
    size_ms: u64,
    windows: Windows,
    parallelism: &str,
) -> (u64, u64) {
    let dir = JobDir::new();
    let outcome = dir.run(
        &windowed_job(1, window_sql),
        events,
        &[("parallelism.default", parallelism)],
    );
    outcome.assert_success();
    let output = dir.output();
    let summary = TumbleCheck {
        events,
        output: &output,
        key: "k",
        ts: "ts",
        value: "v",
        size_ms,
        windows,
        aggregates: &[
            ("count", "cnt"),
            ("sum", "total"),
            ("avg", "mean"),
            ("min", "lo"),
            ("max", "hi"),
        ],
        lateness: Some(Lateness {
            delay_ms: 1_000,
            emit_interval_ms: 200,
        }),
    }
    .run();
    let metrics = outcome.metrics();
    assert_eq!(metrics.records_read, EVENTS);
    assert_eq!(metrics.records_written, summary.actual_rows);
    (metrics.late, summary.expected_late)
}

#[test]
fn hop_and_cumulate_over_a_million_out_of_order_events_match_duckdb() {
    // One partition, up to 3 s out of order, a 1 s delay: thousands of rows come after the
    // first of their windows fired and count in the later ones only (a row late for all is
    // dropped; with windows this long none is). 200 events a second of event
    // time make about 83 minutes: HOP 10 min / 1 min fires about 90 windows per key,
    // CUMULATE 1 h / 10 min twelve.
    let input = JobDir::new();
    let events = input.path().join("events.json");
    generate_at(&events, 3_000, 1, 200);
    const MINUTE: u64 = 60_000;
    let kinds = [
        (
            "HOP(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE)",
            10 * MINUTE,
            Windows::Hop { slide_ms: MINUTE },
        ),
        (
            "CUMULATE(TABLE events, DESCRIPTOR(event_ts), INTERVAL '10' MINUTE, INTERVAL '1' HOUR)",
            60 * MINUTE,
            Windows::Cumulate {
                step_ms: 10 * MINUTE,
            },
        ),
    ];
    for (window_sql, size_ms, windows) in kinds {
        for parallelism in ["1", "4"] {
            let (late, expected_late) =
                run_window_kind(&events, window_sql, size_ms, windows, parallelism);
            assert_eq!(
                late, expected_late,
                "late rows of {window_sql} at parallelism {parallelism}"
            );
        }
    }
}
