//! The filesystem sink on `s3://` paths against a real S3 API: moto in server mode, started by
//! this test binary, with boto3 (`tests/support/s3_tool.py`) as the independent reader.

use std::time::Duration;

use crate::common::aws::{aws_tool, kinesis_tool, moto, s3_fetch, unique_stream};
use crate::common::{
    duckdb_query, run_python, sluice_run, write_job, JobDir, TumbleCheck, Windows,
};

/// Runs `tests/support/s3_tool.py` against moto; returns its stdout.
fn s3_tool(args: &[&str]) -> String {
    aws_tool("s3_tool.py", &moto().endpoint, args)
}

fn new_bucket() -> String {
    let bucket = unique_stream("bucket").to_lowercase();
    s3_tool(&["create-bucket", "--bucket", &bucket]);
    bucket
}

/// Downloads the objects below `prefix` into `out`, keeping their relative keys as paths.
fn fetch(bucket: &str, prefix: &str, out: &std::path::Path) {
    s3_fetch(&moto().endpoint, bucket, prefix, out);
}

/// Writes `events` keyed events (gen_events.py), `rate` per second of event time.
fn generate_events(path: &std::path::Path, events: u64, keys: u64, rate: u64) {
    run_python(
        "gen_events.py",
        &[
            &format!("--events={events}"),
            &format!("--keys={keys}"),
            &format!("--rate={rate}"),
            "--disorder-ms=2000",
            &path.display().to_string(),
        ],
    );
}

fn list(bucket: &str) -> Vec<String> {
    s3_tool(&["list", "--bucket", bucket])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_window_job_writes_partitioned_parquet_to_s3() {
    let bucket = new_bucket();
    let dir = JobDir::new();
    let events = dir.path().join("events.jsonl");
    // 20,000 events, 4 per second of event time: about 83 minutes over two hours.
    generate_events(&events, 20_000, 10, 4);
    let job = write_job(
        dir.path(),
        &format!(
            "CREATE TABLE events (k STRING, v DOUBLE, ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
CREATE TABLE metrics (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING, cnt BIGINT, total DOUBLE,
  dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = 's3://{bucket}/warehouse/metrics/', 'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'metastore', 'glue.database' = '{bucket}_db');
INSERT INTO metrics
SELECT window_start, window_end, k, COUNT(*), SUM(v),
       DATE_FORMAT(window_start, 'yyyy-MM-dd'), DATE_FORMAT(window_start, 'HH')
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, k;"
        ),
        &[("{input}", &events)],
    );
    let outcome = sluice_run(&job)
        .aws(&moto().endpoint)
        .set("table.local-time-zone", "UTC")
        .output();
    outcome.assert_success();

    let keys = list(&bucket);
    assert!(!keys.is_empty());
    for key in &keys {
        let ok = key.starts_with("warehouse/metrics/dt=2023-11-14/hr=")
            && key.contains("/part-")
            && key.ends_with(".parquet");
        assert!(ok, "unexpected object {key}");
    }
    let fetched = dir.path().join("fetched");
    fetch(&bucket, "warehouse/metrics/", &fetched);
    // Every window, key, count and sum as DuckDB computes them from the input.
    TumbleCheck {
        events: &events,
        output: &fetched,
        key: "k",
        ts: "ts",
        value: "v",
        size_ms: 60_000,
        windows: Windows::Tumble,
        aggregates: &[("count", "cnt"), ("sum", "total")],
        lateness: None,
    }
    .run();
    // Each partition folder holds exactly its hour's windows; timestamps are INT64 millis.
    let mut folders: Vec<String> = keys
        .iter()
        .map(|k| k["warehouse/metrics/".len()..k.rfind('/').unwrap()].to_string())
        .collect();
    folders.dedup();
    assert_eq!(folders, vec!["dt=2023-11-14/hr=22", "dt=2023-11-14/hr=23"]);
    for folder in &folders {
        let hour = &folder[folder.len() - 2..];
        let rows = duckdb_query(
            &[("m", &fetched.join(folder))],
            &format!(
                "SELECT count(*) AS bad FROM m WHERE strftime(window_start, '%H') <> '{hour}'"
            ),
        );
        assert_eq!(rows[0]["bad"].as_f64(), Some(0.0), "{folder}");
    }
    let schema = duckdb_query(
        &[("m", &fetched)],
        "SELECT DISTINCT name, type FROM m_schema WHERE name IN ('window_start', 'k', 'cnt') ORDER BY name",
    );
    assert_eq!(
        serde_json::to_string(&schema).unwrap(),
        r#"[{"name":"cnt","type":"INT64"},{"name":"k","type":"BYTE_ARRAY"},{"name":"window_start","type":"INT64"}]"#
    );
    // No multipart upload was left behind.
    assert_eq!(s3_tool(&["uploads", "--bucket", &bucket]).trim(), "[]");
    // The Glue table and its partitions, as boto3 reads them back.
    let database = format!("{bucket}_db");
    let glue: serde_json::Value = serde_json::from_str(&s3_tool(&[
        "glue-table",
        "--database",
        &database,
        "--table",
        "metrics",
    ]))
    .unwrap();
    let location = format!("s3://{bucket}/warehouse/metrics/");
    assert_eq!(
        glue,
        serde_json::json!({
            "columns": [["window_start", "timestamp"], ["window_end", "timestamp"],
                        ["k", "string"], ["cnt", "bigint"], ["total", "double"]],
            "partition_keys": [["dt", "string"], ["hr", "string"]],
            "location": location,
            "serde": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "table_type": "EXTERNAL_TABLE",
            "parameters": {"EXTERNAL": "TRUE", "classification": "parquet"},
            "partitions": [
                [["2023-11-14", "22"], format!("{location}dt=2023-11-14/hr=22/")],
                [["2023-11-14", "23"], format!("{location}dt=2023-11-14/hr=23/")],
            ],
        })
    );
}

#[test]
fn nothing_is_visible_before_the_commit_and_files_roll_by_size() {
    let bucket = new_bucket();
    let dir = JobDir::new();
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '1';
CREATE TABLE gen (id BIGINT, name STRING) WITH ('connector' = 'datagen',
  'rows-per-second' = '2000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
  'fields.id.end' = '100000000', 'fields.name.length' = '20');
CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'filesystem',
  'path' = 's3://{bucket}/rolling', 'format' = 'json',
  'sink.rolling-policy.file-size' = '16kb');
INSERT INTO out SELECT id, name FROM gen;"
        ),
        &[],
    );
    let running = sluice_run(&job).aws(&moto().endpoint).spawn();
    // Files roll every 16 kB (about 400 rows): several have been uploaded by now, and none
    // may be visible, since nothing was committed yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let uploads: Vec<String> =
            serde_json::from_str(&s3_tool(&["uploads", "--bucket", &bucket])).unwrap();
        assert!(list(&bucket).is_empty(), "an uncommitted file is visible");
        if uploads.len() >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no uploads within 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let outcome = running.interrupt();
    outcome.assert_success();
    let keys = list(&bucket);
    assert!(keys.len() >= 3, "{keys:?}");
    assert_eq!(s3_tool(&["uploads", "--bucket", &bucket]).trim(), "[]");
    // Every row exactly once, over files of at most the target size (JSON rolls within a
    // batch of rows, so a file ends at the first batch past 16 kB).
    let fetched = dir.path().join("fetched");
    fetch(&bucket, "rolling/", &fetched);
    let mut ids: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(&fetched).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(row["id"].as_u64().unwrap());
        }
    }
    ids.sort_unstable();
    let n = ids.len() as u64;
    // One instance counts from 1: every row once is exactly 1..=n.
    assert!(
        ids.iter().copied().eq(1..=n),
        "rows missing or repeated among {n}: first {:?}, last {:?}",
        ids.first(),
        ids.last()
    );
}

#[test]
fn a_missing_bucket_is_a_clear_error() {
    let dir = JobDir::new();
    let job = write_job(
        dir.path(),
        "CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem',
  'path' = 's3://no-such-bucket/x', 'format' = 'parquet');
INSERT INTO out SELECT id FROM gen;",
        &[],
    );
    let outcome = sluice_run(&job).aws(&moto().endpoint).output();
    outcome.assert_failure();
    assert_eq!(
        outcome.error_line(),
        "error: table 'out': S3 bucket 'no-such-bucket' does not exist (HeadBucket failed)"
    );
    // The same for checkpoints kept in a bucket that does not exist.
    let bucket = new_bucket();
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'execution.checkpointing.interval' = '1 s';
SET 'state.checkpoints.dir' = 's3://no-such-bucket/cp';
CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem',
  'path' = 's3://{bucket}/x', 'format' = 'parquet');
INSERT INTO out SELECT id FROM gen;"
        ),
        &[],
    );
    let outcome = sluice_run(&job).aws(&moto().endpoint).output();
    outcome.assert_failure();
    assert_eq!(
        outcome.error_line(),
        "error: checkpoints ('state.checkpoints.dir' = 's3://no-such-bucket/cp'): S3 bucket \
         'no-such-bucket' does not exist (HeadBucket failed)"
    );
}

/// The raw archive of pipeline 1: every record of the input, partitioned by event date and
/// hour, exactly once.
#[test]
fn the_archive_job_keeps_every_record_once() {
    let bucket = new_bucket();
    let dir = JobDir::new();
    let events = dir.path().join("events.jsonl");
    generate_events(&events, 30_000, 20, 5);
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'table.local-time-zone' = 'UTC';
CREATE TABLE events (k STRING, v DOUBLE, ts BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
CREATE TABLE raw_archive (k STRING, v DOUBLE, ts BIGINT, dt STRING, `hour` STRING)
PARTITIONED BY (dt, `hour`)
WITH ('connector' = 'filesystem', 'path' = 's3://{bucket}/archive', 'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'success-file');
INSERT INTO raw_archive
SELECT k, v, ts, DATE_FORMAT(TO_TIMESTAMP_LTZ(ts, 3), 'yyyy-MM-dd'),
       DATE_FORMAT(TO_TIMESTAMP_LTZ(ts, 3), 'HH')
FROM events;"
        ),
        &[("{input}", &events)],
    );
    sluice_run(&job)
        .aws(&moto().endpoint)
        .output()
        .assert_success();
    let fetched = dir.path().join("fetched");
    fetch(&bucket, "archive/", &fetched);
    let input = events.display();
    let rows = duckdb_query(
        &[("m", &fetched)],
        &format!(
            "SELECT (SELECT count(*) FROM m) AS n,
  (SELECT count(*) FROM (SELECT k, v, ts FROM m
     EXCEPT ALL SELECT k, v, ts FROM read_json_auto('{input}'))) AS extra,
  (SELECT count(*) FROM (SELECT k, v, ts FROM read_json_auto('{input}')
     EXCEPT ALL SELECT k, v, ts FROM m)) AS missing"
        ),
    );
    assert_eq!(
        rows,
        vec![serde_json::json!({"n": 30000, "extra": 0, "missing": 0})]
    );
    // Each record sits in the folder of its own event hour, and each folder is marked done.
    let keys = list(&bucket);
    let success: Vec<&String> = keys.iter().filter(|k| k.ends_with("/_SUCCESS")).collect();
    assert_eq!(
        success,
        vec![
            "archive/dt=2023-11-14/hour=22/_SUCCESS",
            "archive/dt=2023-11-14/hour=23/_SUCCESS"
        ]
    );
    let mut folders: Vec<&str> = keys
        .iter()
        .map(|k| &k["archive/".len()..k.rfind('/').unwrap()])
        .collect();
    folders.dedup();
    assert_eq!(
        folders,
        // 30,000 events at 5 a second from 22:13:20 UTC: 100 minutes.
        vec!["dt=2023-11-14/hour=22", "dt=2023-11-14/hour=23"]
    );
    for folder in folders {
        let hour = &folder[folder.len() - 2..];
        let bad = duckdb_query(
            &[("m", &fetched.join(folder))],
            &format!(
                "SELECT count(*) AS bad FROM m \
                 WHERE strftime(make_timestamp(ts * 1000), '%H') <> '{hour}'"
            ),
        );
        assert_eq!(bad[0]["bad"].as_f64(), Some(0.0), "{folder}");
    }
}

#[test]
fn denied_access_to_a_bucket_is_a_clear_error() {
    let bucket = new_bucket();
    let proxy = crate::common::aws::FaultProxy::start(&moto().endpoint, &["--deny-s3"]);
    let dir = JobDir::new();
    let job = write_job(
        dir.path(),
        &format!(
            "CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem',
  'path' = 's3://{bucket}/x', 'format' = 'parquet');
INSERT INTO out SELECT id FROM gen;"
        ),
        &[],
    );
    let outcome = sluice_run(&job).aws(&proxy.endpoint).output();
    outcome.assert_failure();
    let line = outcome.error_line();
    assert_eq!(
        line,
        format!(
            "error: table 'out': access to S3 bucket '{bucket}' was denied (HeadBucket): \
             AccessDenied (HTTP 403)"
        )
    );
}

#[test]
fn parquet_files_roll_by_size_within_one_row_group() {
    let bucket = new_bucket();
    let dir = JobDir::new();
    let rows = 300_000;
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '1';
CREATE TABLE gen (id BIGINT, name STRING) WITH ('connector' = 'datagen',
  'number-of-rows' = '{rows}', 'rows-per-second' = '100000000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
  'fields.name.length' = '20');
CREATE TABLE out (id BIGINT, name STRING, part INT) PARTITIONED BY (part) WITH (
  'connector' = 'filesystem', 'path' = 's3://{bucket}/rolled', 'format' = 'parquet',
  'sink.rolling-policy.file-size' = '1mb', 'parquet.block.size' = '128kb');
INSERT INTO out SELECT id, name, CAST(MOD(id, 2) AS INT) FROM gen;"
        ),
        &[],
    );
    sluice_run(&job)
        .aws(&moto().endpoint)
        .output()
        .assert_success();
    let fetched = dir.path().join("fetched");
    fetch(&bucket, "rolled/", &fetched);
    // Several files in each partition, none larger than the target by more than one row
    // group (the sink rolls once a file has reached the target).
    let limit = (1 << 20) + (128 << 10);
    for part in ["part=0", "part=1"] {
        let folder = fetched.join(part);
        let sizes: Vec<u64> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|e| e.expect("an entry").metadata().expect("metadata").len())
            .collect();
        assert!(sizes.len() >= 3, "{part}: {sizes:?}");
        assert!(sizes.iter().all(|&s| s <= limit), "{part}: {sizes:?}");
    }
    // Every row once.
    let stats = duckdb_query(
        &[("o", &fetched)],
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, min(id) AS lo, max(id) AS hi FROM o",
    );
    assert_eq!(
        stats[0],
        serde_json::json!({"n": rows, "ids": rows, "lo": 1, "hi": rows})
    );
}

/// The complete checkpoints (with a manifest) below `s3://bucket/prefix/`.
fn s3_checkpoints(bucket: &str, prefix: &str) -> Vec<String> {
    s3_tool(&["list", "--bucket", bucket, "--prefix", prefix])
        .lines()
        .filter_map(|k| k.strip_suffix("/_manifest.json"))
        .map(str::to_string)
        .collect()
}

/// With checkpoints (kept in S3 too), files are committed by each completed checkpoint;
/// SIGTERM takes a savepoint, commits it and aborts every upload no checkpoint covers; the
/// next run goes on from the savepoint (the datagen source resumes its sequence) and ends
/// with every row exactly once.
#[test]
fn a_checkpointed_s3_job_stopped_by_sigterm_leaves_no_upload_and_resumes() {
    let bucket = new_bucket();
    let dir = JobDir::new();
    let rows = 60_000;
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '300 ms';
SET 'state.checkpoints.dir' = 's3://{bucket}/checkpoints/seq';
CREATE TABLE gen (id BIGINT, name STRING) WITH ('connector' = 'datagen',
  'rows-per-second' = '10000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
  'fields.id.end' = '{rows}', 'fields.name.length' = '12');
CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'filesystem',
  'path' = 's3://{bucket}/seq', 'format' = 'parquet');
INSERT INTO out SELECT id, name FROM gen;"
        ),
        &[],
    );
    let mut running = sluice_run(&job).aws(&moto().endpoint).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while s3_checkpoints(&bucket, "checkpoints/seq/").len() < 3 {
        assert!(
            running.is_running(),
            "the job ended before three checkpoints"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no three checkpoints in S3 within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Committed files are visible while the job runs.
    assert!(
        list(&bucket)
            .iter()
            .any(|k| k.starts_with("seq/") && k.ends_with(".parquet")),
        "no file committed after three checkpoints"
    );
    let stopped = running.terminate();
    stopped.assert_success();
    assert!(
        stopped
            .stderr
            .contains(&format!("savepoint s3://{bucket}/checkpoints/seq/chk-")),
        "{}",
        stopped.stderr
    );
    assert_eq!(
        s3_tool(&["uploads", "--bucket", &bucket]).trim(),
        "[]",
        "a stopped job leaves no pending upload"
    );
    let kept = s3_checkpoints(&bucket, "checkpoints/seq/");
    assert!(
        (1..=3).contains(&kept.len()),
        "state.checkpoints.num-retained (3): {kept:?}"
    );
    let count = |fetched: &std::path::Path| {
        duckdb_query(
            &[("m", fetched)],
            "SELECT count(*) AS n, count(DISTINCT id) AS ids, min(id) AS lo, max(id) AS hi FROM m",
        )
        .remove(0)
    };
    let partial = dir.path().join("partial");
    fetch(&bucket, "seq/", &partial);
    let before = count(&partial);
    let n = before["n"].as_u64().unwrap();
    assert!(n > 0 && n < rows, "{before}");
    assert_eq!(before["ids"], before["n"], "no row twice: {before}");

    let resumed = sluice_run(&job).aws(&moto().endpoint).output();
    resumed.assert_success();
    assert!(
        resumed.stderr.contains("resuming from checkpoint"),
        "{}",
        resumed.stderr
    );
    let all = dir.path().join("all");
    fetch(&bucket, "seq/", &all);
    assert_eq!(
        count(&all),
        serde_json::json!({"n": rows, "ids": rows, "lo": 1, "hi": rows})
    );
    assert_eq!(s3_tool(&["uploads", "--bucket", &bucket]).trim(), "[]");
    // A job whose input ended removes its checkpoints.
    assert_eq!(
        s3_tool(&["list", "--bucket", &bucket, "--prefix", "checkpoints/"]).trim(),
        ""
    );
}

/// The partition-time trigger, while an unbounded Kinesis job runs with checkpoints: an
/// hour's partition gets its `_SUCCESS` file and its Glue partition once the watermark has
/// passed the hour's end plus the delay, and not before; a partition still waiting at a
/// savepoint is committed by the resumed run when the watermark gets there.
#[test]
fn partitions_are_committed_while_the_job_runs_when_the_watermark_passes_them() {
    let endpoint = &moto().endpoint;
    let bucket = new_bucket();
    let dir = JobDir::new();
    let events = dir.path().join("events.jsonl");
    // 2023-11-14 22:13:20 to 23:53:20 UTC.
    generate_events(&events, 30_000, 20, 5);
    let stream = unique_stream("hours");
    let put = |file: &std::path::Path| {
        let file = file.display().to_string();
        kinesis_tool(
            endpoint,
            &[
                "put", "--stream", &stream, "--file", &file, "--key", "random",
            ],
        );
    };
    kinesis_tool(endpoint, &["create", "--stream", &stream, "--shards", "1"]);
    put(&events);
    let checkpoints = dir.path().join("checkpoints");
    let database = format!("{bucket}_db");
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '1';
SET 'table.local-time-zone' = 'UTC';
SET 'execution.checkpointing.interval' = '300 ms';
SET 'state.checkpoints.dir' = '{{checkpoints}}';
CREATE TABLE events (k STRING, v DOUBLE, ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'format' = 'json',
  'source.init.position' = 'TRIM_HORIZON', 'source.shard.discovery.interval' = '500 ms',
  'source.reader.empty-records-fetch-interval' = '50 ms');
CREATE TABLE raw_archive (k STRING, v DOUBLE, ts BIGINT, dt STRING, `hour` STRING)
PARTITIONED BY (dt, `hour`)
WITH ('connector' = 'filesystem', 'path' = 's3://{bucket}/archive', 'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'success-file,metastore',
  'glue.database' = '{database}', 'glue.table' = 'raw_archive',
  'sink.partition-commit.trigger' = 'partition-time',
  'sink.partition-commit.delay' = '1 h',
  'partition.time-extractor.timestamp-pattern' = '$dt $hour:00:00');
INSERT INTO raw_archive
SELECT k, v, ts, DATE_FORMAT(event_ts, 'yyyy-MM-dd'), DATE_FORMAT(event_ts, 'HH')
FROM events;"
        ),
        &[("{checkpoints}", &checkpoints)],
    );
    let success = || -> Vec<String> {
        list(&bucket)
            .into_iter()
            .filter(|k| k.ends_with("/_SUCCESS"))
            .collect()
    };
    let glue_partitions = || -> Vec<String> {
        let table: serde_json::Value = serde_json::from_str(&s3_tool(&[
            "glue-table",
            "--database",
            &database,
            "--table",
            "raw_archive",
        ]))
        .unwrap();
        table["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].to_string())
            .collect()
    };
    let hour_22 = "archive/dt=2023-11-14/hour=22/_SUCCESS".to_string();
    let hour_23 = "archive/dt=2023-11-14/hour=23/_SUCCESS".to_string();

    let mut running = sluice_run(&job).aws(endpoint).spawn();
    // The watermark reaches 23:53:15: hour 22 ends at 23:00, plus one hour of delay is
    // 00:00, so hour 22 is committed and hour 23 is not.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while success() != vec![hour_22.clone()] {
        assert!(running.is_running(), "the job ended");
        assert!(
            std::time::Instant::now() < deadline,
            "hour 22 was not committed within 90 s: {:?}",
            list(&bucket)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Every record is in by now (read and checkpointed); hour 23 stays uncommitted.
    let first = crate::common::newest_complete(&checkpoints);
    crate::common::wait_for_checkpoint(&mut running, &checkpoints, first + 3);
    assert_eq!(success(), vec![hour_22.clone()]);
    assert_eq!(glue_partitions(), vec![r#"["2023-11-14","22"]"#]);
    let stopped = running.terminate();
    stopped.assert_success();
    assert_eq!(
        success(),
        vec![hour_22.clone()],
        "a savepoint commits no partition early"
    );

    // An event after midnight moves the watermark past 00:00: the resumed run commits hour
    // 23, which it knows only from the savepoint, and not yet the new hour.
    let late = dir.path().join("late.jsonl");
    std::fs::write(
        &late,
        "{\"k\": \"key-0\", \"v\": 1.0, \"ts\": 1700007000000}\n",
    )
    .unwrap();
    put(&late);
    let mut resumed = sluice_run(&job).aws(endpoint).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while success() != vec![hour_22.clone(), hour_23.clone()] {
        assert!(resumed.is_running(), "the resumed job ended");
        assert!(
            std::time::Instant::now() < deadline,
            "hour 23 was not committed within 90 s: {:?}",
            list(&bucket)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let outcome = resumed.terminate();
    outcome.assert_success();
    assert!(outcome.stderr.contains("resuming from checkpoint"));
    assert!(list(&bucket)
        .iter()
        .any(|k| k.starts_with("archive/dt=2023-11-15/hour=00/part-")));
    assert_eq!(
        success(),
        vec![hour_22, hour_23],
        "hour 00 of the next day waits for its own end"
    );
    assert_eq!(
        glue_partitions(),
        vec![r#"["2023-11-14","22"]"#, r#"["2023-11-14","23"]"#]
    );
}
