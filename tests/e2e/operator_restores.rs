//! Kill-and-resume of each stateful operator: HOP and CUMULATE windows, OVER aggregations,
//! window Top-N, deduplication, window and interval joins, SESSION windows. Each job is
//! killed with SIGKILL after a checkpoint at parallelism 2, again at 4, then run to the end
//! at 1; its output equals an uninterrupted run's, row for row.

use std::path::Path;

use serde_json::json;

use crate::checkpoints::{
    assert_same_output, kill_at_2_and_4_then_finish_at_1, reference, tx_job, windowed_job,
};
use crate::common::{duckdb_query, sluice_run, JobDir};

#[test]
fn hop_and_cumulate_windows_resume_at_another_parallelism() {
    let reference = reference();
    for window in [
        "HOP(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE)",
        "CUMULATE(TABLE tx, DESCRIPTOR(ts), INTERVAL '10' MINUTE, INTERVAL '1' HOUR)",
    ] {
        let dir = JobDir::new();
        let expected = dir.path().join("expected");
        let plain = windowed_job(
            dir.path(),
            "plain.sql",
            &reference.input,
            &expected,
            None,
            window,
        );
        sluice_run(&plain).output().assert_success();
        let actual = dir.path().join("actual");
        let checkpoints = dir.path().join("checkpoints");
        let job = windowed_job(
            dir.path(),
            "checkpointed.sql",
            &reference.input,
            &actual,
            Some(&checkpoints),
            window,
        );
        kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
        assert_same_output(&expected, &actual);
    }
}

#[test]
fn an_over_aggregation_resumes_at_another_parallelism() {
    // Per currency, over the 10 minutes before each transaction: the rows still waiting for
    // the watermark and the rows in each key's frame are keyed state, split by key on each
    // restore; every on-time transaction is emitted once, with the aggregates of an
    // uninterrupted run.
    let reference = reference();
    let dir = JobDir::new();
    let over_job = |name: &str, output: &Path, checkpoints: Option<&Path>| {
        let insert = format!(
            "CREATE TABLE recent (
               tx_hash STRING, currency STRING, n BIGINT, total_fee DOUBLE, max_fee DOUBLE
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO recent
             SELECT tx_hash, currency, COUNT(*) OVER w, SUM(fee) OVER w, MAX(fee) OVER w
             FROM tx
             WINDOW w AS (PARTITION BY currency ORDER BY ts
                          RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW);",
            output.display()
        );
        tx_job(dir.path(), name, &reference.input, checkpoints, &insert)
    };
    let expected = dir.path().join("expected");
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    sluice_run(&over_job("over-plain.sql", &expected, None))
        .output()
        .assert_success();
    let job = over_job("over-checkpointed.sql", &actual, Some(&checkpoints));
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    let stats = duckdb_query(
        &[("e", &expected), ("a", &actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT count(*) - count(DISTINCT tx_hash) FROM a) AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a USING (tx_hash)
             WHERE e.n IS DISTINCT FROM a.n OR e.max_fee IS DISTINCT FROM a.max_fee
                OR e.currency IS DISTINCT FROM a.currency
                OR NOT coalesce(abs(e.total_fee - a.total_fee) <= 1e-9 * abs(e.total_fee), false))
             AS different",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
    assert!(s["expected_rows"].as_u64() > Some(1_000_000), "{s}");
}

#[test]
fn a_window_top_n_resumes_at_another_parallelism() {
    // The two largest transactions per minute and currency, on the window table: the rows
    // waiting for their window to fire are keyed state, split by key on each restore.
    let reference = reference();
    let dir = JobDir::new();
    let top_job = |name: &str, output: &Path, checkpoints: Option<&Path>| {
        let insert = format!(
            "CREATE TABLE largest (
               window_start TIMESTAMP(3), currency STRING, tx_hash STRING, amount DOUBLE,
               rownum BIGINT
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO largest
             SELECT window_start, currency, tx_hash, amount, rownum FROM (
               SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, currency
                                            ORDER BY amount DESC) AS rownum
               FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
             ) WHERE rownum <= 2;",
            output.display()
        );
        tx_job(dir.path(), name, &reference.input, checkpoints, &insert)
    };
    let expected = dir.path().join("expected");
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    sluice_run(&top_job("top-plain.sql", &expected, None))
        .output()
        .assert_success();
    let job = top_job("top-checkpointed.sql", &actual, Some(&checkpoints));
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    let stats = duckdb_query(
        &[("e", &expected), ("a", &actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT count(*) - count(DISTINCT (window_start, currency, rownum)) FROM a)
             AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a USING (window_start, currency, rownum)
             WHERE e.tx_hash IS DISTINCT FROM a.tx_hash OR e.amount IS DISTINCT FROM a.amount)
             AS different",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
    assert!(s["expected_rows"].as_u64() > Some(100), "{s}");
}

#[test]
fn a_deduplication_resumes_at_another_parallelism() {
    // The first transaction of every block: pending rows and emitted keys are keyed state,
    // split by key on each restore; every block is written once, with its earliest row.
    let reference = reference();
    let dir = JobDir::new();
    let dedup_job = |name: &str, output: &Path, checkpoints: Option<&Path>| {
        let insert = format!(
            "CREATE TABLE firsts (block BIGINT, tx_hash STRING, event_time BIGINT)
               WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO firsts SELECT block, tx_hash, event_time FROM (
               SELECT *, ROW_NUMBER() OVER (PARTITION BY block ORDER BY ts ASC) AS rownum
               FROM tx) WHERE rownum = 1;",
            output.display()
        );
        tx_job(dir.path(), name, &reference.input, checkpoints, &insert)
    };
    let expected = dir.path().join("expected");
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    sluice_run(&dedup_job("dedup-plain.sql", &expected, None))
        .output()
        .assert_success();
    let job = dedup_job("dedup-checkpointed.sql", &actual, Some(&checkpoints));
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    let stats = duckdb_query(
        &[("e", &expected), ("a", &actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT count(*) - count(DISTINCT block) FROM a) AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a USING (block)
             WHERE e.event_time IS DISTINCT FROM a.event_time) AS different",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
    assert!(s["expected_rows"].as_u64() > Some(100), "{s}");
}

#[test]
fn a_window_join_resumes_at_another_parallelism() {
    // Per minute, each currency's count FULL JOINed with the next currency's total fee (a
    // self-join of two window aggregates on a shifted key): both sides' rows waiting for
    // their window are keyed state, split by key on each restore.
    let reference = reference();
    let dir = JobDir::new();
    let join_job = |name: &str, output: &Path, checkpoints: Option<&Path>| {
        let insert = format!(
            "CREATE TABLE joined (ws TIMESTAMP(3), ca STRING, cb STRING, n BIGINT, fees DOUBLE)
               WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO joined SELECT COALESCE(x.window_start, y.window_start), x.currency,
               y.currency, x.n, y.fees
             FROM (SELECT window_start, window_end, currency, COUNT(*) AS n
                   FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                   GROUP BY window_start, window_end, currency) x
             FULL JOIN (SELECT window_start, window_end, currency, SUM(fee) AS fees
                   FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                   WHERE currency <> 'BTC'
                   GROUP BY window_start, window_end, currency) y
             ON x.currency = y.currency AND x.window_start = y.window_start
                AND x.window_end = y.window_end;",
            output.display()
        );
        tx_job(dir.path(), name, &reference.input, checkpoints, &insert)
    };
    let expected = dir.path().join("expected");
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    sluice_run(&join_job("join-plain.sql", &expected, None))
        .output()
        .assert_success();
    let job = join_job("join-checkpointed.sql", &actual, Some(&checkpoints));
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    let stats = duckdb_query(
        &[("e", &expected), ("a", &actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT count(*) - count(DISTINCT (ws, ca, cb)) FROM a) AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a ON e.ws = a.ws
               AND e.ca IS NOT DISTINCT FROM a.ca AND e.cb IS NOT DISTINCT FROM a.cb
             WHERE e.ws IS NULL OR a.ws IS NULL OR e.n IS DISTINCT FROM a.n
                OR NOT coalesce(abs(e.fees - a.fees) <= 1e-9 * abs(e.fees), e.fees IS NULL AND a.fees IS NULL))
             AS different,
           (SELECT count(*) FROM e WHERE cb IS NULL) AS btc_rows",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
    assert!(s["btc_rows"].as_u64() > Some(0), "{s}");
}

#[test]
fn an_interval_join_resumes_at_another_parallelism() {
    // Every tenth block's transactions joined with themselves within a second (a self-join
    // on the hash, the two sides filtered separately): both sides' kept rows are keyed
    // state, split by key on each restore; each transaction is written once.
    let reference = reference();
    let dir = JobDir::new();
    let join_job = |name: &str, output: &Path, checkpoints: Option<&Path>| {
        let insert = format!(
            "CREATE TABLE pairs (tx_hash STRING, a_fee DOUBLE, b_fee DOUBLE)
               WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO pairs SELECT a.tx_hash, a.fee, b.fee
             FROM (SELECT * FROM tx WHERE MOD(block, 10) = 0) a
             JOIN (SELECT * FROM tx WHERE MOD(block, 10) = 0) b
             ON a.tx_hash = b.tx_hash
                AND a.ts BETWEEN b.ts - INTERVAL '1' SECOND AND b.ts + INTERVAL '1' SECOND;",
            output.display()
        );
        tx_job(dir.path(), name, &reference.input, checkpoints, &insert)
    };
    let expected = dir.path().join("expected");
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    sluice_run(&join_job("ij-plain.sql", &expected, None))
        .output()
        .assert_success();
    let job = join_job("ij-checkpointed.sql", &actual, Some(&checkpoints));
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    let stats = duckdb_query(
        &[("e", &expected), ("a", &actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT count(*) - count(DISTINCT tx_hash) FROM a) AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a USING (tx_hash)
             WHERE e.a_fee IS DISTINCT FROM a.a_fee OR a.a_fee IS DISTINCT FROM a.b_fee)
             AS different",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
    assert!(s["expected_rows"].as_u64() > Some(50_000), "{s}");
}

#[test]
fn session_windows_resume_at_another_parallelism() {
    // One file: with a single source partition the sessions do not depend on how rows of
    // several partitions interleave. Open sessions are keyed state, split by key on each
    // restore.
    let reference = reference();
    let input = reference
        .input
        .parent()
        .expect("a folder")
        .join("all.jsonl");
    let window = "SESSION(TABLE tx PARTITION BY currency, DESCRIPTOR(ts), INTERVAL '10' SECOND)";
    let dir = JobDir::new();
    let expected = dir.path().join("expected");
    let plain = windowed_job(dir.path(), "plain.sql", &input, &expected, None, window);
    sluice_run(&plain).output().assert_success();
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    let job = windowed_job(
        dir.path(),
        "checkpointed.sql",
        &input,
        &actual,
        Some(&checkpoints),
        window,
    );
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    assert_same_output(&expected, &actual);
}
