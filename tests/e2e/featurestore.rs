//! The Feature Store sink and the local feature store (`sluice featurestore serve`).
//!
//! The store is checked with boto3 (`tests/support/featurestore_tool.py`), a client no one
//! here wrote; the sink's output is compared with DuckDB over the job's input.

use std::path::{Path, PathBuf};

use crate::common::aws::{aws_env, aws_tool, moto, s3_fetch, unique_stream, FaultProxy};
use crate::common::featurestore::{
    assert_latest, create_group, create_group_with, dump, tool, Server,
};
use crate::common::{duckdb_query, gen_tx, list_files, sluice_run, temp_dir};
use serde_json::{json, Value};

/// Transactions of `sluice datagen tx`, as JSON lines.
fn generate(dir: &Path, events: u64) -> PathBuf {
    let path = dir.join("tx.jsonl");
    gen_tx(&path, events, &[]);
    path
}

/// Per currency, the latest one-minute window of the input, as DuckDB computes it.
fn latest_windows(events: &Path) -> Vec<Value> {
    duckdb_query(
        &[],
        &format!(
            "WITH w AS (
                 SELECT currency, (event_time // 60000) * 60000 + 60000 AS window_end_ms,
                        count(*) AS tx_count, sum(fee) AS total_fee, avg(fee) AS avg_fee
                 FROM read_json_auto('{}') GROUP BY ALL)
             SELECT * FROM w
             QUALIFY row_number() OVER (PARTITION BY currency ORDER BY window_end_ms DESC) = 1
             ORDER BY currency",
            events.display()
        ),
    )
}

fn window_count(events: &Path) -> u64 {
    let rows = duckdb_query(
        &[],
        &format!(
            "SELECT count(DISTINCT (currency, event_time // 60000)) AS n FROM read_json_auto('{}')",
            events.display()
        ),
    );
    rows[0]["n"].as_u64().expect("a count")
}

fn window_job(dir: &Path, events: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let job = dir.join("features.sql");
    std::fs::write(
        &job,
        format!(
            "CREATE TABLE tx (
               tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING,
               event_time BIGINT,
               ts AS TO_TIMESTAMP_LTZ(event_time, 3),
               WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             CREATE TABLE features (
               currency STRING, window_end TIMESTAMP(3), tx_count BIGINT,
               total_fee DOUBLE, avg_fee DOUBLE
             ) WITH (
               'connector' = 'sagemaker-featurestore',
               'feature-group.name' = 'tx-metrics',
               'aws.endpoint' = '{endpoint}',
               'aws.region' = 'us-east-1'{extra}
             );
             INSERT INTO features
             SELECT currency, window_end, COUNT(*), SUM(fee), AVG(fee)
             FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
             GROUP BY window_start, window_end, currency;",
            events.display()
        ),
    )
    .expect("write the job");
    job
}

fn currencies(expected: &[Value]) -> Vec<String> {
    expected
        .iter()
        .map(|e| e["currency"].as_str().expect("currency").to_string())
        .collect()
}

#[test]
fn boto3_speaks_to_the_served_store() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("store"));
    let out = tool(&server.endpoint, &["check-api"]);
    assert_eq!(out.trim(), "ok");
    server.running.terminate().assert_success();
}

#[test]
fn a_token_guards_the_store_and_offline_stores_stay_in_its_folder() {
    let dir = temp_dir();
    let token = "store-t0ken";
    let server = Server::start_with_env(
        &dir.path().join("store"),
        &[("SLUICE_FEATURESTORE_AUTH_TOKEN", token.to_string())],
    );
    let out = tool(&server.endpoint, &["check-guard", "--token", token]);
    assert_eq!(out.trim(), "guarded");
    assert!(!dir.path().join("somewhere").exists());
    server.running.terminate().assert_success();
}

#[test]
fn acknowledged_puts_survive_a_killed_server() {
    let dir = temp_dir();
    let data = dir.path().join("store");
    let server = Server::start(&data);
    create_group(&server.endpoint, "g");
    for i in 0..20 {
        tool(
            &server.endpoint,
            &[
                "put",
                "--name",
                "g",
                "--record",
                &format!("currency=C{i},window_end=2024-05-01T12:00:00Z,tx_count={i}"),
            ],
        );
    }
    // SIGKILL right after the last acknowledgement: nothing may be lost.
    server.running.kill();
    let server = Server::start(&data);
    let ids: Vec<String> = (0..20).map(|i| format!("C{i}")).collect();
    let store = dump(&server.endpoint, "g", &ids);
    assert_eq!(store.len(), 20, "{store:?}");
    assert_eq!(store["C7"]["tx_count"], "7");
    server.running.terminate().assert_success();
    // The offline store got every put, as Parquet in SageMaker's layout.
    let files: Vec<PathBuf> = list_files(&data.join("offline"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        let path = file.display().to_string();
        assert!(
            path.starts_with("000000000000/sagemaker/us-east-1/offline-store/g-")
                && path.contains("/data/year=2024/month=05/day=01/hour=12/")
                && path.ends_with(".parquet"),
            "{path}"
        );
    }
    let offline = duckdb_query(
        &[("o", &data.join("offline"))],
        "SELECT count(*) AS n, count(*) FILTER (WHERE is_deleted) AS deleted FROM o",
    );
    assert_eq!(offline[0]["n"], json!(20), "{offline:?}");
    assert_eq!(offline[0]["deleted"], json!(0), "{offline:?}");
}

#[test]
fn a_window_job_writes_the_latest_window_per_key_and_replays_harmlessly() {
    let dir = temp_dir();
    let data = dir.path().join("store");
    let events = generate(dir.path(), 20_000);
    let expected = latest_windows(&events);
    let windows = window_count(&events);
    let server = Server::start(&data);
    create_group(&server.endpoint, "tx-metrics");
    let job = window_job(dir.path(), &events, &server.endpoint, "");

    let metrics_path = dir.path().join("metrics.json");
    let run = sluice_run(&job)
        .aws(&server.endpoint)
        .metrics_json(&metrics_path)
        .output();
    run.assert_success();
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics_path).expect("metrics")).unwrap();
    assert_eq!(metrics["dropped"]["late"], json!(0));
    let sink = &metrics["sinks"][0];
    assert_eq!(sink["table"], json!("features"), "{metrics}");
    assert_eq!(sink["records"], json!(windows), "{metrics}");
    assert_eq!(sink["failures"], json!(0), "{metrics}");
    assert!(sink["latency_p99_ms"].as_f64().is_some(), "{metrics}");
    let ids = currencies(&expected);
    let first = dump(&server.endpoint, "tx-metrics", &ids);
    assert_latest(&first, &expected);

    // At-least-once replay: the same output again leaves the online store as it was.
    sluice_run(&job)
        .aws(&server.endpoint)
        .output()
        .assert_success();
    assert_eq!(dump(&server.endpoint, "tx-metrics", &ids), first);

    // The offline store has every window twice, as Feature Store itself would.
    server.running.terminate().assert_success();
    let offline = duckdb_query(
        &[("o", &data.join("offline"))],
        "SELECT count(*) AS n, count(DISTINCT (currency, window_end)) AS distinct_windows,
                count(*) FILTER (WHERE is_deleted OR write_time IS NULL
                                 OR api_invocation_time IS NULL) AS odd
         FROM o",
    );
    assert_eq!(
        offline[0],
        json!({"n": 2 * windows, "distinct_windows": windows, "odd": 0})
    );
}

#[test]
fn throttled_and_failing_puts_are_retried_until_every_record_arrives() {
    let dir = temp_dir();
    let events = generate(dir.path(), 5_000);
    let expected = latest_windows(&events);
    let windows = window_count(&events);
    let server = Server::start(&dir.path().join("store"));
    create_group(&server.endpoint, "tx-metrics");
    let proxy = FaultProxy::start(
        &server.endpoint,
        &[
            "--throttle",
            "0.2",
            "--error500",
            "0.1",
            "--drop",
            "0.05",
            "--only",
            "PutRecord",
            "--no-serialize",
            "--seed",
            "7",
        ],
    );
    let job = window_job(dir.path(), &events, &proxy.endpoint, "");
    let metrics_path = dir.path().join("metrics.json");
    sluice_run(&job)
        .aws(&proxy.endpoint)
        .metrics_json(&metrics_path)
        .output()
        .assert_success();
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics_path).expect("metrics")).unwrap();
    let sink = &metrics["sinks"][0];
    assert_eq!(sink["records"], json!(windows), "{metrics}");
    assert!(sink["throttles"].as_u64().unwrap_or(0) > 0, "{metrics}");
    assert!(
        sink["retries"].as_u64().unwrap_or(0) > sink["throttles"].as_u64().unwrap_or(0),
        "{metrics}"
    );
    let store = dump(&server.endpoint, "tx-metrics", &currencies(&expected));
    assert_latest(&store, &expected);
}

#[test]
fn the_sink_checks_the_table_against_the_feature_group() {
    let dir = temp_dir();
    let events = generate(dir.path(), 100);
    let server = Server::start(&dir.path().join("store"));
    create_group_with(
        &server.endpoint,
        "tx-metrics",
        ("currency", "window_end"),
        "currency:String,window_end:String,tx_count:Integral",
        &[],
    );
    let job = window_job(dir.path(), &events, &server.endpoint, "");
    let run = sluice_run(&job).aws(&server.endpoint).output();
    run.assert_failure();
    assert_eq!(
        run.error_line(),
        "error: table 'features': column 'total_fee' is not a feature of feature group \
         'tx-metrics' (its features: currency, window_end, tx_count)"
    );

    let missing = window_job(dir.path(), &events, &server.endpoint, "")
        .to_string_lossy()
        .to_string();
    let text = std::fs::read_to_string(&missing)
        .unwrap()
        .replace("'tx-metrics'", "'nope'");
    std::fs::write(&missing, text).unwrap();
    let run = sluice_run(Path::new(&missing))
        .aws(&server.endpoint)
        .output();
    run.assert_failure();
    assert_eq!(
        run.error_line(),
        "error: table 'features': feature group 'nope' does not exist (DescribeFeatureGroup)"
    );
}

#[test]
fn records_the_store_rejects_are_counted_or_stop_the_job() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("store"));
    create_group_with(
        &server.endpoint,
        "ratios",
        ("id", "ts"),
        "id:String,ts:String,ratio:Fractional",
        &[],
    );
    let input = dir.path().join("in.jsonl");
    let lines: String = (0..30)
        .map(|i| format!("{{\"id\":\"k{i}\",\"a\":{i},\"b\":{}}}\n", i % 3))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let job = |fail: &str| {
        let path = dir.path().join(format!("ratios{fail}.sql"));
        std::fs::write(
            &path,
            format!(
                "CREATE TABLE src (id STRING, a DOUBLE, b DOUBLE)
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
                 CREATE TABLE ratios (id STRING, ts TIMESTAMP(3), ratio DOUBLE) WITH (
                   'connector' = 'sagemaker-featurestore', 'feature-group.name' = 'ratios',
                   'aws.endpoint' = '{}', 'aws.region' = 'us-east-1',
                   'sink.fail-on-error' = '{fail}');
                 INSERT INTO ratios
                 SELECT id, TIMESTAMP '2024-05-01 12:00:00', a / b FROM src;",
                input.display(),
                server.endpoint
            ),
        )
        .unwrap();
        path
    };
    // a / 0 is infinite, which Feature Store refuses: 10 of the 30 rows.
    let metrics_path = dir.path().join("metrics.json");
    let run = sluice_run(&job("false"))
        .aws(&server.endpoint)
        .metrics_json(&metrics_path)
        .output();
    run.assert_success();
    // Said on stderr (a few times, not once per record).
    assert!(
        run.stderr.contains("Feature Store rejected record 'k")
            && run.stderr.contains("ValidationError"),
        "{}",
        run.stderr
    );
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics_path).unwrap()).unwrap();
    assert_eq!(metrics["dropped"]["rejected"], json!(10), "{metrics}");
    assert_eq!(metrics["sinks"][0]["records"], json!(20), "{metrics}");
    assert_eq!(metrics["sinks"][0]["failures"], json!(10), "{metrics}");
    let ids: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let store = dump(&server.endpoint, "ratios", &ids);
    assert_eq!(store.len(), 20);
    assert_eq!(store["k4"]["ratio"], "4");
    assert_eq!(store["k5"]["ratio"], "2.5");
    assert_eq!(store["k4"]["ts"], "2024-05-01T12:00:00.000Z");

    let run = sluice_run(&job("true")).aws(&server.endpoint).output();
    run.assert_failure();
    assert!(
        run.error_line()
            .contains("Feature Store rejected record 'k")
            && run.error_line().contains("('sink.fail-on-error' is true)"),
        "{}",
        run.error_line()
    );
}

#[test]
fn the_offline_store_goes_to_s3_and_is_registered_in_glue_when_asked() {
    let endpoint = &moto().endpoint;
    let bucket = unique_stream("offline").to_lowercase();
    aws_tool(
        "s3_tool.py",
        endpoint,
        &["create-bucket", "--bucket", &bucket],
    );
    let dir = temp_dir();
    let server = Server::start_with_env(&dir.path().join("store"), &aws_env(endpoint));
    let uri = format!("s3://{bucket}/features");
    create_group_with(
        &server.endpoint,
        "cards",
        ("currency", "window_end"),
        "currency:String,window_end:String,tx_count:Integral",
        &["--offline-uri", &uri, "--glue", "featurestore.cards"],
    );
    for (i, hour) in ["10", "10", "11"].iter().enumerate() {
        tool(
            &server.endpoint,
            &[
                "put",
                "--name",
                "cards",
                "--record",
                &format!("currency=C{i},window_end=2024-05-01T{hour}:30:00Z,tx_count={i}"),
            ],
        );
    }
    // SIGTERM writes what is queued.
    server.running.terminate().assert_success();
    let keys = aws_tool("s3_tool.py", endpoint, &["list", "--bucket", &bucket]);
    // Files per hour of event time (the periodic flush may split an hour over files).
    let prefix = "features/000000000000/sagemaker/us-east-1/offline-store/cards-";
    let mut hours = std::collections::BTreeSet::new();
    for key in keys.lines() {
        let hour = key
            .split_once("/data/year=2024/month=05/day=01/hour=")
            .map(|(_, rest)| &rest[..2]);
        assert!(
            key.starts_with(prefix) && hour.is_some() && key.ends_with(".parquet"),
            "{key}"
        );
        hours.insert(hour.unwrap_or_default().to_string());
    }
    assert_eq!(hours, ["10", "11"].map(String::from).into());
    let fetched = dir.path().join("fetched");
    s3_fetch(endpoint, &bucket, "features/", &fetched);
    let rows = duckdb_query(
        &[("o", &fetched)],
        "SELECT currency, tx_count, is_deleted FROM o ORDER BY currency",
    );
    assert_eq!(
        rows,
        vec![
            json!({"currency": "C0", "tx_count": 0, "is_deleted": false}),
            json!({"currency": "C1", "tx_count": 1, "is_deleted": false}),
            json!({"currency": "C2", "tx_count": 2, "is_deleted": false}),
        ]
    );
    let glue: Value = serde_json::from_str(&aws_tool(
        "s3_tool.py",
        endpoint,
        &[
            "glue-table",
            "--database",
            "featurestore",
            "--table",
            "cards",
        ],
    ))
    .expect("JSON");
    let columns: Vec<(String, String)> = glue["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c[0].as_str().unwrap().into(), c[1].as_str().unwrap().into()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("currency", "string"),
        ("window_end", "string"),
        ("tx_count", "bigint"),
        ("write_time", "timestamp"),
        ("api_invocation_time", "timestamp"),
        ("is_deleted", "boolean"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(columns, expected);
    assert_eq!(glue["partition_keys"], json!([]));
    assert!(
        glue["serde"].as_str().unwrap_or("").contains("Parquet"),
        "{glue}"
    );
    let location = glue["location"].as_str().expect("location");
    assert!(
        location.starts_with(&format!("s3://{bucket}/{prefix}")) && location.ends_with("/data/"),
        "{location}"
    );
}
