//! `sluice server`: jobs submitted over the REST API and the CLI, stopped and resumed with
//! exactly-once output, isolated from each other, restarted by their restart strategy, and
//! resumed after the server is killed; plan errors, auth and malformed requests; `/metrics`
//! read by Prometheus' own parser.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::server::{request, Server};
use crate::common::*;

/// Rows of the counting job: one every 10 ms of event time, key `seq % 4`, so each
/// 10-second window holds 250 rows of each of the 4 keys.
const ROWS: u64 = 20_000;

/// A job counting rows per 10-second window and key, from `datagen` at `rate` rows per
/// second, into JSON files under `out`, checkpointing every 500 ms.
fn counting_job(out: &Path, rate: u64) -> String {
    format!(
        "SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '500 ms';
CREATE TABLE g (seq BIGINT,
  k AS CAST(seq % 4 AS INT),
  ts AS TO_TIMESTAMP_LTZ(1700000000000 + seq * 10, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'number-of-rows' = '{ROWS}', 'rows-per-second' = '{rate}',
  'fields.seq.kind' = 'sequence', 'fields.seq.start' = '0', 'fields.seq.end' = '{}');
CREATE TABLE o (ws TIMESTAMP(3), k INT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT window_start, k, COUNT(*)
FROM TABLE(TUMBLE(TABLE g, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, k;
",
        ROWS - 1,
        out.display()
    )
}

/// The counting job's output is complete and has every (window, key) exactly once.
fn assert_counted_once(out: &Path) {
    let rows = read_json_rows(out);
    let mut seen: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for r in &rows {
        let key = (r["ws"].to_string(), r["k"].as_f64().expect("k") as i64);
        assert!(
            seen.insert(key.clone(), r["n"].as_f64().expect("n") as i64)
                .is_none(),
            "({key:?}) written twice"
        );
    }
    assert_eq!(seen.len() as u64, ROWS / 1000 * 4, "{rows:?}");
    assert!(seen.values().all(|n| *n == 250), "{seen:?}");
}

/// A request that must be refused: method, path, body, content type, expected status.
type BadRequest<'a> = (&'a str, String, Option<String>, Option<&'a str>, u16);

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn submitted_jobs_stop_with_a_savepoint_and_resume_exactly_once() {
    let dir = JobDir::new();
    let server = Server::start(&dir.path().join("data"), &[]);
    let job = dir.write("count.sql", &counting_job(&dir.output(), 2_000));
    let cli = |args: &[&str]| {
        let outcome = sluice()
            .args(args)
            .args(&["--server", &server.endpoint, "--json"])
            .output();
        outcome.assert_success();
        serde_json::from_str::<Value>(&outcome.stdout).expect("JSON from the CLI")
    };
    let submitted = cli(&[
        "submit",
        job.to_str().unwrap(),
        "--name",
        "counting",
        "--set",
        "restart-strategy.type=none",
    ]);
    let id = submitted["id"].as_str().expect("an id").to_string();
    assert_eq!(submitted["name"], "counting");
    // The server's address may come from SLUICE_SERVER instead of --server.
    let listed = sluice()
        .args(&["list", "--json"])
        .env("SLUICE_SERVER", &server.endpoint)
        .output();
    listed.assert_success();
    let listed: Value = serde_json::from_str(&listed.stdout).expect("JSON from the CLI");
    assert_eq!(listed["jobs"][0]["id"], id.as_str());
    // Stop once some checkpoints are in and output has been committed.
    server.wait_job(&id, MINUTE, "a committed checkpoint", |j| {
        j["run"]["checkpoints"]["completed"].as_u64() >= Some(2)
            && j["run"]["records_written"].as_u64() >= Some(4)
    });
    let status = cli(&["status", &id]);
    assert_eq!(status["state"], "RUNNING");
    assert_eq!(
        status["set"],
        serde_json::json!([{"key": "restart-strategy.type", "value": "none"}])
    );
    let run = &status["run"];
    let graph = run["graph"].as_array().expect("a graph");
    assert!(graph.iter().any(|n| n["parallelism"] == 2), "{graph:?}");
    // The watermark trails the event time the source has reached (1 s bound).
    let watermark = run["watermark"].as_str().expect("a watermark");
    assert!(watermark.starts_with("2023-11-14T22:"), "{watermark}");
    assert!(run["event_time_lag_ms"].as_i64() > Some(0), "{run:#}");
    // Per-partition figures are for sources with partitions (files, shards), not datagen.
    assert!(run["sources"].is_array(), "{run:#}");
    let recent = run["checkpoints"]["recent"]
        .as_array()
        .expect("checkpoints");
    let last = recent.last().expect("a checkpoint");
    assert_eq!(last["completed"], true, "{last}");
    assert!(last["size_bytes"].as_u64() > Some(0), "{last}");
    assert!(last["duration_ms"].as_f64() > Some(0.0), "{last}");
    assert_eq!(run["dropped"], serde_json::json!([]));
    cli(&["stop", &id]);
    let stopped = server.wait_state(&id, "STOPPED", MINUTE);
    let read_before = stopped["run"]["records_read"].as_u64().unwrap();
    assert!(
        read_before < ROWS,
        "the job ended before the stop: {stopped:#}"
    );
    // A stopped job cannot be stopped again; it can be resumed.
    let again = server.call("POST", &format!("/v1/jobs/{id}/stop"), None);
    assert_eq!(again.status, 409, "{}", again.text);
    cli(&["resume", &id]);
    // Cancelled (no savepoint) after another checkpoint, and resumed from it: output after
    // that checkpoint is written again, but committed once.
    server.wait_job(&id, MINUTE, "a checkpoint after the resume", |j| {
        j["state"] == "RUNNING" && j["run"]["checkpoints"]["completed"].as_u64() >= Some(1)
    });
    cli(&["stop", &id, "--no-savepoint"]);
    let cancelled = server.wait_state(&id, "STOPPED", MINUTE);
    assert!(
        cancelled["run"]["records_read"].as_u64() < Some(ROWS),
        "the job ended before the cancel: {cancelled:#}"
    );
    cli(&["resume", &id]);
    let finished = server.wait_state(&id, "FINISHED", 2 * MINUTE);
    assert!(finished["last_error"].is_null(), "{finished:#}");
    assert_counted_once(&dir.output());
    // A finished job is deleted with its folder.
    let deleted = server.call("DELETE", &format!("/v1/jobs/{id}"), None);
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        server.call("GET", &format!("/v1/jobs/{id}"), None).status,
        404
    );
    assert!(!dir.path().join("data/jobs").join(&id).exists());
}

/// A JSON source over `input` that counts rows per key, for the failure tests.
fn keyed_count_job(input: &Path, out: &Path, set: &str) -> String {
    format!(
        "{set}
SET 'parallelism.default' = '1';
CREATE TABLE e (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT k, v * 10 FROM e;
",
        input.display(),
        out.display()
    )
}

#[test]
fn a_failing_job_leaves_the_others_alone_and_a_transient_failure_is_restarted() {
    let dir = JobDir::new();
    // A debug build's failpoints: the source of table `boom` panics once after 8,000 rows,
    // and that of table `doom` after its first row.
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[(
            "SLUICE_FAILPOINTS",
            "panic-once:boom:8000,panic-once:doom:1",
        )],
    );
    let good_out = dir.path().join("good");
    let good = server.submit("good.sql", &counting_job(&good_out, 4_000), &[]);
    // Panics for good (a bug), with no restarts.
    let doomed_in = dir.write("doomed/e.json", "{\"k\": \"a\", \"v\": 1}\n");
    let doomed = server.submit(
        "doomed.sql",
        &keyed_count_job(&doomed_in, &dir.path().join("doomed_out"), "")
            .replace("TABLE e ", "TABLE doom ")
            .replace("FROM e;", "FROM doom;"),
        &[("restart-strategy.type", "none")],
    );
    // Panics once, midway, after some checkpoints: restarted from the latest one after an
    // exponential delay, it writes every window exactly once.
    let crashy_out = dir.path().join("crashy");
    let crashy = server.submit(
        "crashy.sql",
        &counting_job(&crashy_out, 4_000).replace("TABLE g", "TABLE boom"),
        &[
            ("restart-strategy.type", "exponential-delay"),
            (
                "restart-strategy.exponential-delay.initial-backoff",
                "200 ms",
            ),
        ],
    );
    // Fails for good: a malformed record, and no restarts.
    let broken = dir.write("broken/e.json", "{\"k\": \"a\", \"v\": 1}\n{not json\n");
    let bad = server.submit(
        "bad.sql",
        &keyed_count_job(&broken, &dir.path().join("bad"), ""),
        &[("restart-strategy.type", "none")],
    );
    // Fails until its input is repaired, restarted every 200 ms meanwhile.
    let flaky_in = dir.write("flaky/e.json", "{\"k\": \"a\", \"v\": 1}\n{not json\n");
    let flaky_out = dir.path().join("flaky_out");
    let flaky = server.submit(
        "flaky.sql",
        &keyed_count_job(&flaky_in, &flaky_out, ""),
        &[
            ("restart-strategy.type", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "1000"),
            ("restart-strategy.fixed-delay.delay", "200 ms"),
        ],
    );
    let failed = server.wait_state(&bad, "FAILED", MINUTE);
    let error = failed["last_error"].as_str().expect("the error");
    assert!(
        error.contains("e.json"),
        "the error names the file: {error}"
    );
    assert_eq!(failed["restarts"], 0);
    server.wait_job(&flaky, MINUTE, "two restarts", |j| {
        j["restarts"].as_u64() >= Some(2)
    });
    // With its input gone the job cannot even be planned: that is retried the same way.
    std::fs::remove_file(&flaky_in).unwrap();
    let missing = server.wait_job(&flaky, MINUTE, "a restart that cannot plan", |j| {
        j["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist"))
    });
    let restarts = missing["restarts"].as_u64().expect("restarts");
    server.wait_job(&flaky, MINUTE, "two more restarts", |j| {
        assert_ne!(j["state"], "FAILED", "{j:#}");
        j["restarts"].as_u64() >= Some(restarts + 2)
    });
    let repaired = dir.path().join("flaky/e.json.tmp");
    std::fs::write(
        &repaired,
        "{\"k\": \"a\", \"v\": 1}\n{\"k\": \"b\", \"v\": 2}\n",
    )
    .unwrap();
    std::fs::rename(&repaired, &flaky_in).unwrap();
    let done = server.wait_state(&flaky, "FINISHED", MINUTE);
    assert!(done["restarts"].as_u64() >= Some(2), "{done:#}");
    assert_rows(
        &read_json_rows(&flaky_out),
        serde_json::json!([{"k": "a", "v": 10}, {"k": "b", "v": 20}]),
    );
    let failed = server.wait_state(&doomed, "FAILED", MINUTE);
    let error = failed["last_error"].as_str().expect("the error");
    assert!(error.contains("panicked"), "{error}");
    assert_eq!(failed["restarts"], 0);
    let recovered = server.wait_state(&crashy, "FINISHED", 2 * MINUTE);
    assert_eq!(recovered["restarts"], 1, "{recovered:#}");
    // The restarted run read only what the latest checkpoint had not covered.
    let reread = recovered["run"]["records_read"]
        .as_u64()
        .expect("records read");
    assert!(
        reread < ROWS,
        "the restart began from scratch: {recovered:#}"
    );
    assert_counted_once(&crashy_out);
    server.wait_state(&good, "FINISHED", 2 * MINUTE);
    assert_counted_once(&good_out);
}

#[test]
fn the_server_resumes_its_jobs_after_sigterm_and_after_sigkill() {
    let dir = JobDir::new();
    let data = dir.path().join("data");
    // The job comes from a jobs folder, submitted at the first start only.
    dir.write("jobs/count.sql", &counting_job(&dir.output(), 1_000));
    let jobs = dir.path().join("jobs");
    let args = ["--jobs-dir", jobs.to_str().unwrap()];
    let only_job = |server: &Server| {
        let listed = server.call("GET", "/v1/jobs", None);
        let jobs = listed.body["jobs"].as_array().expect("a job list").clone();
        assert_eq!(jobs.len(), 1, "one job per file: {jobs:?}");
        jobs[0]["id"].as_str().expect("an id").to_string()
    };
    let server = Server::start(&data, &args);
    let id = only_job(&server);
    server.wait_job(&id, MINUTE, "a checkpoint", |j| {
        j["run"]["checkpoints"]["completed"].as_u64() >= Some(2)
    });
    // SIGTERM: every job stops with a savepoint, and the next start resumes it.
    let outcome = server.running.terminate();
    outcome.assert_success();
    assert!(outcome.stderr.contains("savepoint"), "{}", outcome.stderr);
    let server = Server::start(&data, &args);
    assert_eq!(only_job(&server), id);
    let resumed = server.wait_job(&id, MINUTE, "a checkpoint after the restart", |j| {
        j["state"] == "RUNNING" && j["run"]["checkpoints"]["completed"].as_u64() >= Some(2)
    });
    assert!(resumed["run"]["records_read"].as_u64() < Some(ROWS));
    // SIGKILL: no chance to stop; the next start resumes from the latest checkpoint.
    server.running.kill();
    let server = Server::start(&data, &args);
    assert_eq!(only_job(&server), id);
    server.wait_state(&id, "FINISHED", 2 * MINUTE);
    assert_counted_once(&dir.output());
}

#[test]
fn plan_errors_bad_requests_and_auth_get_a_sentence_and_leave_running_jobs_alone() {
    let dir = JobDir::new();
    let token = "t0ken-for-tests";
    // AWS credentials in the server's environment (the standard chain) must show nowhere.
    let secret = "s3cr3t-AWS-key-for-tests";
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &["--auth-token", token],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDFORTESTS"),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    let running = server.submit("count.sql", &counting_job(&dir.output(), 4_000), &[]);

    // A plan error: 400 with the same file:line:column text the CLI prints.
    let bad_sql = counting_job(&dir.path().join("x"), 10).replace("COUNT(*)", "COUNT(nope)");
    let file = dir.write("bad.sql", &bad_sql);
    let cli = sluice_run(&file)
        .set(
            "state.checkpoints.dir",
            dir.path().join("cp").to_str().unwrap(),
        )
        .output();
    cli.assert_failure();
    let body = serde_json::json!({"sql": bad_sql, "file": file.display().to_string()});
    let a = server.call("POST", "/v1/jobs", Some(&body.to_string()));
    assert_eq!(a.status, 400, "{}", a.text);
    let message = a.body["error"].as_str().expect("an error sentence");
    assert_eq!(format!("error: {message}"), cli.error_line());
    assert!(
        message.starts_with(&format!("{}:", file.display())),
        "{message}"
    );

    // Auth: no token or a wrong one is 401; the CLI sends SLUICE_AUTH_TOKEN.
    let url = format!("{}/v1/jobs", server.endpoint);
    for auth in [None, Some("Bearer wrong"), Some(token)] {
        let a = request("GET", &url, None, auth, None);
        assert_eq!(a.status, 401, "{auth:?}: {}", a.text);
        assert!(a.body["error"].as_str().unwrap().contains("Bearer"));
    }
    let a = request(
        "GET",
        &format!("{}/metrics", server.endpoint),
        None,
        None,
        None,
    );
    assert_eq!(a.status, 401);
    let listed = sluice()
        .args(&["list", "--server", &server.endpoint])
        .env("SLUICE_AUTH_TOKEN", token)
        .output();
    listed.assert_success();
    assert!(listed.stdout.contains(&running), "{}", listed.stdout);
    let refused = sluice()
        .args(&["list", "--server", &server.endpoint])
        .output();
    refused.assert_failure();
    assert!(
        refused.error_line().contains("Bearer"),
        "{}",
        refused.stderr
    );

    // Malformed requests: each a 4xx with a sentence.
    let cases: Vec<BadRequest> = vec![
        (
            "POST",
            "/v1/jobs".into(),
            Some("{\"sql\": ".into()),
            Some("application/json"),
            400,
        ),
        (
            "POST",
            "/v1/jobs".into(),
            Some("{\"sql\": \"x\", \"colour\": 1}".into()),
            Some("application/json"),
            400,
        ),
        (
            "POST",
            "/v1/jobs".into(),
            Some("{\"sql\": \"  \"}".into()),
            Some("application/json"),
            400,
        ),
        (
            "POST",
            "/v1/jobs".into(),
            Some("sql=x".into()),
            Some("application/x-www-form-urlencoded"),
            415,
        ),
        ("GET", "/v1/jobs/0123456789abcdef".into(), None, None, 404),
        (
            "POST",
            "/v1/jobs/0123456789abcdef/resume".into(),
            None,
            None,
            404,
        ),
        (
            "POST",
            format!("/v1/jobs/{running}/stop"),
            Some("{\"savepoint\": \"maybe\"}".into()),
            Some("application/json"),
            400,
        ),
        (
            "POST",
            format!("/v1/jobs/{running}/resume"),
            None,
            None,
            409,
        ),
        ("DELETE", format!("/v1/jobs/{running}"), None, None, 409),
        ("GET", "/v2/nothing".into(), None, None, 404),
    ];
    for (method, path, body, content_type, status) in cases {
        let a = request(
            method,
            &format!("{}{path}", server.endpoint),
            body.as_deref(),
            Some(&format!("Bearer {token}")),
            content_type,
        );
        assert_eq!(a.status, status, "{method} {path}: {}", a.text);
        let sentence = a.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", a.text));
        assert!(sentence.len() > 10, "{sentence}");
    }
    // An oversized body is refused from its Content-Length, before it is read.
    let answer = oversized_post(&server.endpoint, token);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than the limit"), "{answer}");

    // The page and the API description are served; neither holds a credential.
    let page = request("GET", &format!("{}/", server.endpoint), None, None, None);
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<svg id=\"graph\""));
    let spec = server.call("GET", "/v1/openapi.json", None);
    assert_eq!(spec.body["openapi"], "3.0.3", "{}", spec.text);
    let mut served = vec![page.text, spec.text];
    for path in [
        format!("/v1/jobs/{running}"),
        "/v1/jobs".into(),
        "/metrics".into(),
    ] {
        served.push(server.call("GET", &path, None).text);
    }
    for text in &served {
        for credential in [token, secret, "AKIDFORTESTS"] {
            assert!(!text.contains(credential), "{credential} served: {text}");
        }
    }

    // The running job was not disturbed.
    let done = server.wait_state(&running, "FINISHED", 2 * MINUTE);
    assert!(done["last_error"].is_null(), "{done:#}");
    assert_counted_once(&dir.output());
    // Nor does the server print them.
    let outcome = server.running.terminate();
    for credential in [token, secret, "AKIDFORTESTS"] {
        assert!(!outcome.stderr.contains(credential), "{}", outcome.stderr);
        assert!(!outcome.stdout.contains(credential), "{}", outcome.stdout);
    }
}

/// Sends a POST /v1/jobs with a 2 MiB body (from another thread: the server answers before
/// it has read it all, and a client that only writes would see a broken pipe), and returns
/// the server's raw answer.
fn oversized_post(endpoint: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"sql\": \"",
        2 << 20
    );
    let mut writer = stream.try_clone().expect("clone the connection");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&vec![b'x'; 2 << 20]);
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The samples of a metrics text as parsed by the `prometheus-client` PyPI package's
/// OpenMetrics parser: (name, labels, value).
fn parse_metrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let dir = temp_dir();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let out = run_python("prometheus_parse.py", &[file.to_str().unwrap()]);
    serde_json::from_str::<Vec<(String, BTreeMap<String, String>, f64)>>(&out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn sample(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?} in {samples:?}");
    found[0]
}

#[test]
fn metrics_of_a_finished_job_match_its_input() {
    let dir = JobDir::new();
    let server = Server::start(&dir.path().join("data"), &[]);
    let id = server.submit("count.sql", &counting_job(&dir.output(), 50_000), &[]);
    // Three good lines and two malformed ones, skipped and counted.
    let input = dir.write(
        "lines/e.json",
        "{\"k\": \"a\", \"v\": 1}\n{oops\n{\"k\": \"b\", \"v\": 2}\n[1\n{\"k\": \"a\", \"v\": 3}\n",
    );
    let skipping = keyed_count_job(&input, &dir.path().join("lines_out"), "").replace(
        "'format' = 'json');\nCREATE TABLE o",
        "'format' = 'json', 'json.ignore-parse-errors' = 'true');\nCREATE TABLE o",
    );
    assert!(skipping.contains("ignore-parse-errors"), "{skipping}");
    let lines = server.submit("lines.sql", &skipping, &[]);
    server.wait_state(&lines, "FINISHED", MINUTE);
    server.wait_state(&id, "FINISHED", 2 * MINUTE);
    let text = server.call("GET", "/metrics", None).text;
    let samples = parse_metrics(&text);
    let job = [("job_id", id.as_str())];
    assert_eq!(
        sample(&samples, "sluice_job_records_read_total", &job),
        ROWS as f64
    );
    assert_eq!(
        sample(&samples, "sluice_job_records_written_total", &job),
        80.0
    );
    assert_eq!(sample(&samples, "sluice_job_restarts_total", &job), 0.0);
    let dropped = [
        ("job_id", lines.as_str()),
        ("table", "e"),
        ("reason", "malformed"),
    ];
    assert_eq!(
        sample(&samples, "sluice_records_dropped_total", &dropped),
        2.0
    );
    assert_eq!(
        server.job(&lines)["run"]["dropped"],
        serde_json::json!([{"table": "e", "reason": "malformed", "records": 2}])
    );
    let lines_read = [("job_id", lines.as_str())];
    assert_eq!(
        sample(&samples, "sluice_job_records_read_total", &lines_read),
        3.0
    );
    let state = [("job_id", id.as_str()), ("state", "FINISHED")];
    assert_eq!(sample(&samples, "sluice_job_state", &state), 1.0);
    let details = server.job(&id);
    assert_eq!(
        Some(sample(&samples, "sluice_checkpoints_total", &job) as u64),
        details["run"]["checkpoints"]["completed"].as_u64()
    );
    // The source emits every row; the sink receives one row per window and key.
    for node in details["run"]["graph"].as_array().unwrap() {
        let op = [
            ("job_id", id.as_str()),
            ("operator", node["id"].as_str().unwrap()),
        ];
        let out = sample(&samples, "sluice_operator_records_out_total", &op);
        assert_eq!(Some(out as u64), node["records_out"].as_u64());
        let name = node["name"].as_str().unwrap();
        if name.starts_with("source") {
            assert_eq!(out, ROWS as f64, "{name}");
        }
        if name.starts_with("sink") {
            let input = sample(&samples, "sluice_operator_records_in_total", &op);
            assert_eq!(input, 80.0, "{name}");
            // 80 rows of a timestamp, an int and a bigint: at least 20 bytes each.
            let bytes = sample(&samples, "sluice_operator_in_bytes_total", &op);
            assert!(bytes >= 80.0 * 20.0, "{name}: {bytes}");
        }
    }

    // `sluice run --metrics-listen` serves the same metrics while a job runs.
    let job = dir.write("run.sql", &counting_job(&dir.path().join("run_out"), 2_000));
    let mut run = sluice_run(&job)
        .set(
            "state.checkpoints.dir",
            dir.path().join("cp").to_str().unwrap(),
        )
        .args(&["--metrics-listen", "127.0.0.1:0"])
        .spawn();
    run.wait_until(MINUTE, "the metrics address", |_, err| {
        err.iter().any(|l| l.contains("/metrics"))
    });
    let url = run
        .stderr
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.ends_with("/metrics")))
        .expect("the metrics URL")
        .to_string();
    let mut read = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        samples = parse_metrics(&request("GET", &url, None, None, None).text);
        read.push(sample(
            &samples,
            "sluice_job_records_read_total",
            &[("job_id", "run")],
        ));
    }
    assert!(
        read[0] > 0.0 && read[1] > read[0],
        "the counter moves: {read:?}"
    );
    // Three seconds in, with checkpoints every 500 ms: checkpoints are done and measured,
    // and the watermark is in the generated event time (from 1,700,000,000 s), behind the
    // wall clock.
    let job = [("job_id", "run")];
    assert!(sample(&samples, "sluice_checkpoints_total", &job) >= 1.0);
    assert_eq!(
        sample(&samples, "sluice_checkpoint_failures_total", &job),
        0.0
    );
    assert!(sample(&samples, "sluice_checkpoint_last_duration_seconds", &job) > 0.0);
    assert!(sample(&samples, "sluice_checkpoint_last_size_bytes", &job) > 0.0);
    let watermark = sample(&samples, "sluice_watermark_seconds", &job);
    assert!(
        (1_700_000_000.0..1_700_000_200.0).contains(&watermark),
        "{watermark}"
    );
    assert!(sample(&samples, "sluice_event_time_lag_seconds", &job) > 0.0);
    run.interrupt();
}

#[test]
fn the_web_page_submits_watches_stops_resumes_and_cancels_a_job_in_chromium() {
    let chromium = std::process::Command::new("bash")
        .arg(support("chromium.sh"))
        .output()
        .expect("run chromium.sh");
    assert!(
        chromium.status.success(),
        "{}",
        String::from_utf8_lossy(&chromium.stderr)
    );
    let chromium = String::from_utf8_lossy(&chromium.stdout).trim().to_string();
    let dir = JobDir::new();
    let server = Server::start(&dir.path().join("data"), &[]);
    let job = dir.write("page_job.sql", &counting_job(&dir.output(), 1_000));
    let shot = dir.path().join("graph.png");
    let seen: Value = serde_json::from_str(&run_python(
        "page_check.py",
        &[
            &chromium,
            &server.endpoint,
            job.to_str().unwrap(),
            shot.to_str().unwrap(),
        ],
    ))
    .expect("JSON from page_check.py");
    assert!(
        seen["title"].as_str().unwrap().starts_with("from-the-page"),
        "{seen}"
    );
    let read = seen["read"].as_array().unwrap();
    assert!(
        read[1].as_u64() > read[0].as_u64(),
        "the counter moves: {seen}"
    );
    // The job's graph has 8 operators; each is a box in the picture.
    let jobs = server.call("GET", "/v1/jobs", None).body;
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_string();
    let details = server.wait_state(&id, "STOPPED", MINUTE);
    let nodes = details["run"]["graph"].as_array().unwrap().len();
    assert_eq!(seen["nodes"].as_u64(), Some(nodes as u64), "{seen}");
    assert!(
        seen["screenshot"][1].as_u64() > Some(nodes as u64 * 54),
        "{seen}"
    );
    // Each box's border is about 700 pixels long, partly anti-aliased.
    assert!(
        seen["border_pixels"].as_u64() > Some(nodes as u64 * 100),
        "{seen}"
    );
    assert_eq!(details["name"], "from-the-page");
    // The page showed the watermark (in the generated event time) and checkpoints, and its
    // buttons stopped, resumed and cancelled the job.
    assert!(
        seen["watermark"].as_str().unwrap().contains("2023-11-14"),
        "{seen}"
    );
    assert!(seen["checkpoints"].as_u64() >= Some(1), "{seen}");
    assert_eq!(
        seen["states"],
        serde_json::json!(["STOPPED", "RUNNING", "STOPPED"])
    );
}
