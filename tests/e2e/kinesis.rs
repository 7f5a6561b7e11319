//! The Kinesis connector against a real Kinesis API: moto in server mode, started by this
//! test binary (`tests/e2e/common/aws.rs`), with boto3 (`tests/support/kinesis_tool.py`) as the
//! independent writer and reader of the streams.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::aws::{kinesis_tool, moto, unique_stream, FaultProxy};
use crate::common::{
    read_json_rows, run_python, sluice_run, write_job, JobDir, TumbleCheck, Windows,
};
use serde_json::Value;

/// Kinesis source options every test uses: quick discovery, bounded unless told otherwise.
fn source_options(stream: &str, extra: &str) -> String {
    format!(
        "'connector' = 'kinesis', 'stream' = '{stream}', 'format' = 'json', \
         'source.shard.discovery.interval' = '500 ms', \
         'source.reader.empty-records-fetch-interval' = '50 ms'{extra}"
    )
}

/// Writes `n` lines `{"id": i, "k": "key-<i mod keys>", "n": <i div keys>}` (n counts the
/// records of each key, so per-key order can be checked) for ids `from..from+n`.
fn numbered_records(path: &Path, from: u64, n: u64, keys: u64) {
    let mut text = String::new();
    for i in from..from + n {
        text.push_str(&format!(
            "{{\"id\": {i}, \"k\": \"key-{}\", \"n\": {}}}\n",
            i % keys,
            i / keys
        ));
    }
    fs::write(path, text).expect("write records");
}

/// The values of a print sink line (`+I[...]`, after an optional `N> ` instance prefix).
fn row_text(line: &str) -> Option<&str> {
    line.find("+I[").map(|i| &line[i + 3..])
}

/// The `id`s a print sink wrote (`+I[id, ...]` lines).
fn printed_ids(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| row_text(l))
        .map(|l| {
            l.split([',', ']'])
                .next()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("not a printed row: {l}"))
        })
        .collect()
}

fn create_stream(endpoint: &str, stream: &str, shards: u32) {
    kinesis_tool(
        endpoint,
        &[
            "create",
            "--stream",
            stream,
            "--shards",
            &shards.to_string(),
        ],
    );
}

fn put(endpoint: &str, stream: &str, file: &Path, key: &str) {
    let file = file.display().to_string();
    let key_args: Vec<&str> = if key == "random" {
        vec!["--key", "random"]
    } else {
        vec!["--key-field", key]
    };
    let mut args = vec!["put", "--stream", stream, "--file", &file];
    args.extend(key_args);
    kinesis_tool(endpoint, &args);
}

/// The records of a stream, as boto3 reads them: one JSON object per record.
fn read_stream(endpoint: &str, stream: &str, dir: &Path) -> Vec<Value> {
    let out = dir.join(format!("{stream}.jsonl"));
    kinesis_tool(
        endpoint,
        &[
            "read",
            "--stream",
            stream,
            "--out",
            &out.display().to_string(),
        ],
    );
    json_lines(&out)
}

/// The JSON objects of a JSON-lines file.
fn json_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A window job over events (gen_events.py's `k`, `v`, `ts`) read from a Kinesis stream.
fn window_job(stream: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE events (
  k STRING, v DOUBLE, ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH ({}, 'source.init.position' = 'TRIM_HORIZON', 'scan.bounded' = 'latest');
CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING,
  cnt BIGINT, total DOUBLE, lo DOUBLE, hi DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'parquet');
INSERT INTO sink
SELECT window_start, window_end, k, COUNT(*), SUM(v), MIN(v), MAX(v)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, k;
",
        source_options(stream, extra)
    )
}

/// Generates `events` events, writes them to a new `shards`-shard stream with random
/// partition keys, runs the window job (through `endpoint`, moto or a proxy) and checks
/// every window against DuckDB over the same events.
fn window_job_matches_duckdb(
    events: u64,
    shards: u32,
    endpoint: Option<&str>,
    parallelism: &str,
    extra_options: &str,
) -> Value {
    let moto = &moto().endpoint;
    let stream = unique_stream("events");
    let dir = JobDir::new();
    let input = dir.path().join("events.jsonl");
    run_python(
        "gen_events.py",
        &[
            &format!("--events={events}"),
            "--keys=50",
            "--rate=500",
            "--disorder-ms=2000",
            &input.display().to_string(),
        ],
    );
    create_stream(moto, &stream, shards);
    put(moto, &stream, &input, "random");
    let job = write_job(
        dir.path(),
        &window_job(&stream, extra_options),
        &[("{output}", &dir.output())],
    );
    let metrics_path = dir.path().join("metrics.json");
    let outcome = sluice_run(&job)
        .aws(endpoint.unwrap_or(moto))
        .set("parallelism.default", parallelism)
        .metrics_json(&metrics_path)
        .output();
    outcome.assert_success();
    let metrics = outcome.metrics();
    assert_eq!(metrics.records_read, events, "{}", outcome.stderr);
    // The watermark delay (5 s) exceeds the disorder (2 s), and each shard keeps a
    // subsequence of the input order: nothing may be late.
    assert_eq!(metrics.late, 0);
    let summary = TumbleCheck {
        events: &input,
        output: &dir.output(),
        key: "k",
        ts: "ts",
        value: "v",
        size_ms: 60_000,
        windows: Windows::Tumble,
        aggregates: &[
            ("count", "cnt"),
            ("sum", "total"),
            ("min", "lo"),
            ("max", "hi"),
        ],
        lateness: None,
    }
    .run();
    assert!(summary.actual_rows > 0);
    serde_json::from_str(&fs::read_to_string(&metrics_path).unwrap()).unwrap()
}

#[test]
fn a_window_job_over_four_shards_equals_duckdb() {
    let metrics = window_job_matches_duckdb(200_000, 4, None, "2", "");
    // Every shard was read, and its counters add up.
    let shards = metrics["partitions"].as_array().unwrap();
    assert_eq!(shards.len(), 4, "{metrics}");
    let total: u64 = shards.iter().map(|s| s["records"].as_u64().unwrap()).sum();
    assert_eq!(total, 200_000);
}

#[test]
fn faults_on_every_call_do_not_change_the_result() {
    let proxy = FaultProxy::start(
        &moto().endpoint,
        &[
            "--seed",
            "11",
            "--throttle",
            "0.15",
            "--error500",
            "0.05",
            "--drop",
            "0.05",
            "--expire",
            "0.05",
        ],
    );
    let metrics = window_job_matches_duckdb(
        20_000,
        3,
        Some(&proxy.endpoint),
        "2",
        // Small responses: many calls, so many faults.
        ", 'source.shard.get-records.max-record-count' = '200'",
    );
    let retries: u64 = metrics["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["retries"].as_u64().unwrap())
        .sum();
    let throttles: u64 = metrics["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["throttles"].as_u64().unwrap())
        .sum();
    assert!(
        retries > 0 && throttles > 0,
        "no fault was retried: {metrics}"
    );
}

/// A job that prints `id` of every record of `stream`, unbounded, at parallelism 1.
fn print_job(dir: &Path, stream: &str, position: &str) -> std::path::PathBuf {
    write_job(
        dir,
        &format!(
            "CREATE TABLE r (id BIGINT, k STRING, n BIGINT)
WITH ({}{position});
CREATE TABLE out (id BIGINT, k STRING, n BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT id, k, n FROM r;",
            source_options(stream, "")
        ),
        &[],
    )
}

#[test]
fn start_positions_latest_trim_horizon_and_at_timestamp() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("positions");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 2);
    let first = dir.path().join("first.jsonl");
    numbered_records(&first, 0, 100, 7);
    put(endpoint, &stream, &first, "k");
    std::thread::sleep(Duration::from_millis(1500));
    let between: i64 = kinesis_tool(endpoint, &["now-ms"]).trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let second = dir.path().join("second.jsonl");
    numbered_records(&second, 100, 100, 7);
    put(endpoint, &stream, &second, "k");

    let bounded = |position: &str| {
        let job = print_job(
            dir.path(),
            &stream,
            &format!(", 'scan.bounded' = 'latest'{position}"),
        );
        let out = sluice_run(&job).aws(endpoint).output();
        out.assert_success();
        let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        let mut ids = printed_ids(&lines);
        ids.sort_unstable();
        ids
    };
    assert_eq!(
        bounded(", 'source.init.position' = 'TRIM_HORIZON'"),
        (0..200).collect::<Vec<_>>()
    );
    assert_eq!(
        bounded(&format!(
            ", 'source.init.position' = 'AT_TIMESTAMP', 'source.init.timestamp' = '{}'",
            between as f64 / 1000.0
        )),
        (100..200).collect::<Vec<_>>()
    );
    // The older spelling, with the default position LATEST, sees only what comes later.
    let job = print_job(dir.path(), &stream, "");
    let mut running = sluice_run(&job).aws(endpoint).spawn();
    running.wait_until(
        Duration::from_secs(60),
        "both shards at LATEST",
        |_, err| err.iter().filter(|l| l.contains("from LATEST")).count() == 2,
    );
    let third = dir.path().join("third.jsonl");
    numbered_records(&third, 200, 50, 7);
    put(endpoint, &stream, &third, "k");
    running.wait_until(Duration::from_secs(60), "50 printed rows", |out, _| {
        printed_ids(out).len() >= 50
    });
    // A shard split while the job runs: its children start at TRIM_HORIZON, not at the
    // table's LATEST, so what is written to them before they are found is read too.
    let shards: Value =
        serde_json::from_str(&kinesis_tool(endpoint, &["shards", "--stream", &stream])).unwrap();
    let first_shard = shards[0]["ShardId"].as_str().unwrap().to_string();
    kinesis_tool(
        endpoint,
        &["split", "--stream", &stream, "--shard", &first_shard],
    );
    let fourth = dir.path().join("fourth.jsonl");
    numbered_records(&fourth, 250, 50, 7);
    put(endpoint, &stream, &fourth, "k");
    running.wait_until(Duration::from_secs(60), "100 printed rows", |out, _| {
        printed_ids(out).len() >= 100
    });
    let outcome = running.interrupt();
    outcome.assert_success();
    let lines: Vec<String> = outcome.stdout.lines().map(str::to_string).collect();
    let mut ids = printed_ids(&lines);
    ids.sort_unstable();
    assert_eq!(ids, (200..300).collect::<Vec<_>>());
    assert!(
        outcome.stderr.contains("from TRIM_HORIZON"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn resharding_while_reading_loses_nothing_and_keeps_key_order() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("reshard");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 3);
    let keys = 40;
    let job = print_job(
        dir.path(),
        &stream,
        ", 'source.init.position' = 'TRIM_HORIZON'",
    );
    let mut running = sluice_run(&job).aws(endpoint).spawn();
    running.wait_until(Duration::from_secs(60), "three shards read", |_, err| {
        err.iter().filter(|l| l.contains("reading shard")).count() == 3
    });
    let shards: Value =
        serde_json::from_str(&kinesis_tool(endpoint, &["shards", "--stream", &stream])).unwrap();
    let ids: Vec<String> = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ShardId"].as_str().unwrap().to_string())
        .collect();
    let batch = |from: u64, name: &str| {
        let file = dir.path().join(name);
        numbered_records(&file, from, 2_000, keys);
        put(endpoint, &stream, &file, "k");
    };
    batch(0, "a.jsonl");
    // Split the first shard, and merge the other two, while the job reads.
    kinesis_tool(
        endpoint,
        &["split", "--stream", &stream, "--shard", &ids[0]],
    );
    batch(2_000, "b.jsonl");
    kinesis_tool(
        endpoint,
        &[
            "merge",
            "--stream",
            &stream,
            "--shards",
            &format!("{},{}", ids[1], ids[2]),
        ],
    );
    batch(4_000, "c.jsonl");
    running.wait_until(Duration::from_secs(120), "6,000 printed rows", |out, _| {
        printed_ids(out).len() >= 6_000
    });
    // Whatever else comes would be a duplicate: give it a moment to show.
    std::thread::sleep(Duration::from_secs(2));
    let outcome = running.interrupt();
    outcome.assert_success();
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for line in outcome.stdout.lines().filter_map(row_text) {
        let parts: Vec<&str> = line.trim_end_matches(']').split(", ").collect();
        let id: u64 = parts[0].parse().unwrap();
        assert!(seen.insert(id), "record {id} was delivered twice");
        per_key
            .entry(parts[1].to_string())
            .or_default()
            .push(parts[2].parse().unwrap());
    }
    assert_eq!(seen.len(), 6_000, "records lost");
    for (key, ns) in per_key {
        let expected: Vec<u64> = (0..ns.len() as u64).collect();
        assert_eq!(ns, expected, "records of {key} out of order");
    }
    // The children were read after their parents finished.
    assert!(
        outcome.stderr.contains("is closed and read to its end"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn kpl_aggregated_records_are_read_as_their_user_records() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("kpl");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 2);
    let file = dir.path().join("users.jsonl");
    numbered_records(&file, 0, 1_000, 13);
    let written = kinesis_tool(
        endpoint,
        &[
            "put-kpl",
            "--stream",
            &stream,
            "--file",
            &file.display().to_string(),
            "--key-field",
            "k",
            "--per-aggregate",
            "50",
        ],
    );
    assert!(!written.trim().is_empty());
    let job = write_job(
        dir.path(),
        &format!(
            "CREATE TABLE r (id BIGINT, k STRING, n BIGINT,
  pk STRING METADATA FROM 'partition-key' VIRTUAL,
  shard STRING METADATA FROM 'shard-id' VIRTUAL,
  seq STRING METADATA FROM 'sequence-number' VIRTUAL,
  arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL)
WITH ({}, 'source.init.position' = 'TRIM_HORIZON', 'scan.bounded' = 'latest');
CREATE TABLE out (id BIGINT, k STRING, pk STRING, shard STRING, seq STRING, arrival TIMESTAMP_LTZ(3))
WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'json');
INSERT INTO out SELECT id, k, pk, shard, seq, arrival FROM r;",
            source_options(&stream, "")
        ),
        &[("{output}", &dir.output())],
    );
    sluice_run(&job).aws(endpoint).output().assert_success();
    let rows = read_json_rows(&dir.output());
    // read_json_rows gives numbers as doubles.
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|r| r["id"].as_f64().unwrap() as u64)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..1_000).collect::<Vec<_>>());
    for row in &rows {
        // The user record's own partition key, not the aggregate's.
        assert_eq!(row["pk"], row["k"], "{row}");
        assert!(row["shard"].as_str().unwrap().starts_with("shardId-"));
        assert!(!row["seq"].as_str().unwrap().is_empty());
        assert!(row["arrival"].is_string(), "{row}");
    }
    // 20 aggregates of 50: at most 20 distinct sequence numbers.
    let seqs: BTreeSet<&str> = rows.iter().map(|r| r["seq"].as_str().unwrap()).collect();
    assert!(seqs.len() <= 20, "{} sequence numbers", seqs.len());
}

/// A job writing `records` (numbered_records) from a JSON file into `stream`.
fn sink_job(dir: &Path, stream: &str, extra: &str) -> std::path::PathBuf {
    write_job(
        dir,
        &format!(
            "CREATE TABLE src (id BIGINT, k STRING, n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
CREATE TABLE dst (id BIGINT, k STRING, n BIGINT) PARTITIONED BY (k)
WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'format' = 'json'{extra});
INSERT INTO dst SELECT id, k, n FROM src;"
        ),
        &[("{input}", &dir.join("input.jsonl"))],
    )
}

/// Reads the stream back and checks: every id exactly once, and per key (the partition
/// key) the records in the order written.
fn check_sink_output(endpoint: &str, stream: &str, dir: &Path, total: u64) {
    let records = read_stream(endpoint, stream, dir);
    let mut ids = BTreeSet::new();
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for record in &records {
        let data: Value = serde_json::from_str(record["data"].as_str().unwrap()).unwrap();
        let id = data["id"].as_u64().unwrap();
        assert!(ids.insert(id), "record {id} arrived twice");
        assert_eq!(
            record["key"], data["k"],
            "partition key is the PARTITIONED BY column"
        );
        per_key
            .entry(data["k"].as_str().unwrap().to_string())
            .or_default()
            .push(data["n"].as_u64().unwrap());
    }
    assert_eq!(ids.len() as u64, total, "records missing from the stream");
    for (key, ns) in per_key {
        let expected: Vec<u64> = (0..ns.len() as u64).collect();
        assert_eq!(ns, expected, "records of {key} out of order");
    }
}

#[test]
fn the_sink_writes_every_row_once() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("sink");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 3);
    numbered_records(&dir.path().join("input.jsonl"), 0, 3_000, 17);
    let job = sink_job(dir.path(), &stream, ", 'sink.batch.max-size' = '200'");
    let outcome = sluice_run(&job).aws(endpoint).output();
    outcome.assert_success();
    check_sink_output(endpoint, &stream, dir.path(), 3_000);
}

#[test]
fn the_sink_retries_records_kinesis_rejects() {
    let endpoint = &moto().endpoint;
    let proxy = FaultProxy::start(
        endpoint,
        &[
            "--seed",
            "5",
            "--partial",
            "0.3",
            "--throttle",
            "0.1",
            "--only",
            "PutRecords",
        ],
    );
    let stream = unique_stream("sink-faults");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 2);
    numbered_records(&dir.path().join("input.jsonl"), 0, 3_000, 17);
    let job = sink_job(
        dir.path(),
        &stream,
        ", 'sink.batch.max-size' = '100', 'sink.requests.max-inflight' = '4'",
    );
    let outcome = sluice_run(&job).aws(&proxy.endpoint).output();
    outcome.assert_success();
    // The proxy drops rejected records before moto sees them, so even here each record
    // reaches the stream exactly once, and in order per key.
    check_sink_output(endpoint, &stream, dir.path(), 3_000);
}

#[test]
fn the_sink_flushes_on_every_checkpoint_and_loses_nothing() {
    let endpoint = &moto().endpoint;
    let proxy = FaultProxy::start(
        endpoint,
        &["--seed", "9", "--partial", "0.1", "--only", "PutRecords"],
    );
    let stream = unique_stream("sink-checkpoints");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 2);
    // A source that stays alive for about 3 s, so checkpoints happen while records wait in
    // the sink's buffer; each checkpoint waits until they are in the stream.
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '1';
SET 'execution.checkpointing.interval' = '100 ms';
SET 'state.checkpoints.dir' = '{{checkpoints}}';
CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3000',
  'rows-per-second' = '1000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0',
  'fields.id.end' = '2999');
CREATE TABLE dst (id BIGINT, k STRING, n BIGINT) PARTITIONED BY (k)
WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'format' = 'json',
  'sink.flush-buffer.timeout' = '10 s');
INSERT INTO dst SELECT id, CONCAT('key-', CAST(MOD(id, 300) AS STRING)), id / 300 FROM src;"
        ),
        &[("{checkpoints}", &dir.path().join("checkpoints"))],
    );
    let metrics = dir.path().join("metrics.json");
    let outcome = sluice_run(&job)
        .aws(&proxy.endpoint)
        .metrics_json(&metrics)
        .output();
    outcome.assert_success();
    let m: Value = serde_json::from_str(&fs::read_to_string(&metrics).unwrap()).unwrap();
    // The 10 s flush timeout would hold records until the end: a checkpoint completes only
    // once the sink has sent what it held.
    assert!(
        m["checkpoints"]["completed"].as_u64().unwrap_or(0) >= 1,
        "{m}"
    );
    check_sink_output(endpoint, &stream, dir.path(), 3_000);
}

#[test]
fn a_record_over_one_mib_is_refused_or_dead_lettered() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("big");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 1);
    let big = "x".repeat(1 << 20);
    fs::write(
        dir.path().join("input.jsonl"),
        format!(
            "{{\"id\": 1, \"k\": \"a\", \"n\": 0}}\n{{\"id\": 2, \"k\": \"{big}\", \"n\": 0}}\n"
        ),
    )
    .unwrap();
    let job = sink_job(dir.path(), &stream, "");
    let outcome = sluice_run(&job).aws(endpoint).output();
    outcome.assert_failure();
    assert!(
        outcome
            .error_line()
            .contains("table 'dst': a record of 1048")
            && outcome.error_line().contains("1 MiB"),
        "{}",
        outcome.error_line()
    );
    let dead = dir.path().join("dead.jsonl");
    let job = sink_job(
        dir.path(),
        &stream,
        &format!(", 'sink.dead-letter.path' = '{}'", dead.display()),
    );
    sluice_run(&job).aws(endpoint).output().assert_success();
    let dead_rows = json_lines(&dead);
    assert_eq!(dead_rows.len(), 1);
    assert!(dead_rows[0]["reason"].as_str().unwrap().contains("1 MiB"));
    let records = read_stream(endpoint, &stream, dir.path());
    assert!(records
        .iter()
        .any(|r| r["data"].as_str().unwrap().contains("\"id\":1")));
    assert!(records
        .iter()
        .all(|r| r["data"].as_str().unwrap().len() < 1000));
}

#[test]
fn denied_access_is_a_clear_error() {
    let proxy = FaultProxy::start(&moto().endpoint, &["--deny", "--only", "ListShards"]);
    let stream = unique_stream("denied");
    create_stream(&moto().endpoint, &stream, 1);
    let dir = JobDir::new();
    let job = print_job(dir.path(), &stream, "");
    let outcome = sluice_run(&job).aws(&proxy.endpoint).output();
    outcome.assert_failure();
    let line = outcome.error_line();
    assert!(
        line.starts_with(&format!(
            "error: table 'r': access to Kinesis stream '{stream}' was denied (ListShards): \
             AccessDeniedException"
        )),
        "{line}"
    );
    // Credentials never show up in what the user sees.
    assert!(!outcome.stderr.contains("testing"), "{}", outcome.stderr);
}

#[test]
fn a_missing_stream_is_a_clear_error_not_a_hang() {
    let endpoint = &moto().endpoint;
    let dir = JobDir::new();
    let job = print_job(dir.path(), "no-such-stream", "");
    let outcome = sluice_run(&job).aws(endpoint).output();
    outcome.assert_failure();
    assert_eq!(
        outcome.error_line(),
        "error: table 'r': Kinesis stream 'no-such-stream' does not exist (ListShards failed)"
    );
    fs::write(
        dir.path().join("input.jsonl"),
        "{\"id\": 1, \"k\": \"a\", \"n\": 0}\n",
    )
    .unwrap();
    let job = sink_job(dir.path(), "no-such-stream", "");
    let outcome = sluice_run(&job).aws(endpoint).output();
    outcome.assert_failure();
    assert_eq!(
        outcome.error_line(),
        "error: table 'dst': Kinesis stream 'no-such-stream' does not exist \
         (DescribeStreamSummary failed)"
    );
}

/// The resharding tests are only as good as the server: moto 5.2.5 reshards unlike AWS, so
/// `moto_serve.py` patches it. This checks the patched server against what AWS documents
/// (closed parents, routing to open shards, null iterator and ChildShards at a parent's
/// end, no lost writes under concurrency).
#[test]
fn the_test_server_reshards_as_aws_documents() {
    let out = run_python(
        "check_moto_resharding.py",
        &["--endpoint", &moto().endpoint],
    );
    assert!(!out.contains("FAIL"), "{out}");
}

/// Each shard has its own watermark and the instance takes the minimum: a shard read ahead
/// of another does not make the other's rows late (Flink's per-instance Kinesis watermark
/// would). One instance reads two shards, each in event-time order, each in one response.
#[test]
fn a_shard_read_ahead_does_not_make_another_shard_late() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("watermarks");
    create_stream(endpoint, &stream, 2);
    let dir = JobDir::new();
    let lines: String = (0..4_000u64)
        .map(|i| format!("{{\"k\": \"key-{}\", \"ms\": {}}}\n", i % 8, i * 10))
        .collect();
    let file = dir.write("records.jsonl", &lines);
    put(endpoint, &stream, &file, "k");
    let job = write_job(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '1';
CREATE TABLE r (k STRING, ms BIGINT, t AS TO_TIMESTAMP_LTZ(ms, 3),
  WATERMARK FOR t AS t)
WITH ({}, 'source.init.position' = 'TRIM_HORIZON', 'scan.bounded' = 'latest');
CREATE TABLE out (window_start TIMESTAMP(3), n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'json');
INSERT INTO out SELECT window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;",
            source_options(&stream, "")
        ),
        &[("{output}", &dir.output())],
    );
    let outcome = sluice_run(&job)
        .aws(endpoint)
        .metrics_json(&dir.path().join("metrics.json"))
        .output();
    outcome.assert_success();
    assert_eq!(outcome.metrics().late, 0);
    let counts: Vec<f64> = read_json_rows(&dir.output())
        .iter()
        .map(|r| r["n"].as_f64().unwrap())
        .collect();
    assert_eq!(counts, vec![1000.0; 4]);
}

#[test]
fn a_file_of_a_stream_gone_quiet_is_rolled_by_its_inactivity_or_rollover_interval() {
    let endpoint = &moto().endpoint;
    let stream = unique_stream("quiet");
    let dir = JobDir::new();
    create_stream(endpoint, &stream, 1);
    let records = dir.path().join("records.jsonl");
    numbered_records(&records, 0, 20, 3);
    put(endpoint, &stream, &records, "k");
    let inactive = dir.path().join("out");
    let rolled = dir.path().join("rolled");
    // Unbounded, no checkpoints: a closed local file is visible at once. Only the engine's
    // timers can close these: no row arrives after the twenty. One sink rolls on being
    // inactive for 1 s, the other on its file being 2 s old (inactivity left at its 30 min).
    let job = write_job(
        dir.path(),
        &format!(
            "CREATE TABLE r (id BIGINT, k STRING, n BIGINT)
WITH ({});
CREATE TABLE out (id BIGINT, k STRING, n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'json',
      'sink.rolling-policy.inactivity-interval' = '1 s');
CREATE TABLE rolled (id BIGINT, k STRING, n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{{rolled}}', 'format' = 'json',
      'sink.rolling-policy.rollover-interval' = '2 s');
INSERT INTO out SELECT id, k, n FROM r;
INSERT INTO rolled SELECT id, k, n FROM r;",
            source_options(&stream, ", 'source.init.position' = 'TRIM_HORIZON'")
        ),
        &[("{output}", &inactive), ("{rolled}", &rolled)],
    );
    let mut running = sluice_run(&job).aws(endpoint).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let visible = |folder: &Path| {
        if folder.exists() {
            read_json_rows(folder)
        } else {
            Vec::new()
        }
    };
    loop {
        let (a, b) = (visible(&inactive).len(), visible(&rolled).len());
        if a == 20 && b == 20 {
            break;
        }
        assert!(
            running.is_running(),
            "the job ended before its files were rolled"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the quiet stream's files stayed open: {a} and {b} rows visible"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        running.is_running(),
        "the job still runs: the timers rolled the files"
    );
    for folder in [&inactive, &rolled] {
        let mut ids: Vec<u64> = read_json_rows(folder)
            .iter()
            .map(|r| r["id"].as_f64().expect("an id") as u64)
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..20).collect::<Vec<_>>(), "{}", folder.display());
    }
    running.interrupt().assert_success();
}
