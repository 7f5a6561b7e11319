//! The docker compose stack of the repository root, end to end: `up` with the binary of
//! this build (docker/prebuilt.Dockerfile), the reference pipeline running on moto, its
//! output checked against DuckDB over exactly the records the producer wrote, the job
//! killed twice and recovered, then `down -v`.
//!
//! Docker is set up by `tests/support/docker_ready.sh` (installed from Debian's packages
//! and started when missing, which needs root); when that is impossible the test fails with
//! the script's sentence saying what is missing.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::aws::{aws_tool, kinesis_tool, s3_fetch};
use crate::common::featurestore::{assert_latest, dump, latest_in_parquet};
use crate::common::{duckdb_query, sluice, support, temp_dir, TumbleCheck, Windows, REPO};
use serde_json::Value;

/// Records per second of wall time of the producer, and per second of event time: event time
/// runs ten times faster than the clock, so a one-minute window closes every 6 s.
const PRODUCER_RATE: &str = "400";
const PRODUCER_EVENT_RATE: &str = "40";

/// How long the stack may take to show what a step waits for.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// A compose project of this test run; `down -v` when dropped, so nothing stays behind.
struct Stack {
    compose: Vec<String>,
    env: Vec<(String, String)>,
    endpoint: String,
    featurestore: String,
    /// The `sluice-server` service.
    server: String,
}

impl Stack {
    /// Builds the images with this build's binary and starts every service.
    fn up() -> Self {
        let ready = Command::new("bash")
            .arg(support("docker_ready.sh"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/support/docker_ready.sh");
        let stdout = String::from_utf8_lossy(&ready.stdout);
        assert!(
            ready.status.success(),
            "Docker cannot be set up for the compose test (docker_ready.sh's reason is above)"
        );
        let compose: Vec<String> = stdout
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        assert!(
            !compose.is_empty(),
            "docker_ready.sh named no compose command"
        );

        // The binary goes where .dockerignore lets it into the build context.
        let binary = Path::new(REPO).join("target/docker/sluice");
        fs::create_dir_all(binary.parent().expect("target/docker")).expect("create target/docker");
        fs::copy(env!("CARGO_BIN_EXE_sluice"), &binary).expect("copy sluice into target/docker");

        let (aws_port, featurestore_port, server_port) = (free_port(), free_port(), free_port());
        let project = format!("sluicetest{}", std::process::id());
        let env: Vec<(String, String)> = [
            ("COMPOSE_PROJECT_NAME", project.as_str()),
            ("SLUICE_DOCKERFILE", "docker/prebuilt.Dockerfile"),
            ("SLUICE_BINARY", "target/docker/sluice"),
            ("SLUICE_IMAGE", "sluice-test:local"),
            ("AWS_PORT", &aws_port.to_string()),
            ("FEATURESTORE_PORT", &featurestore_port.to_string()),
            ("SERVER_PORT", &server_port.to_string()),
            ("SLUICE_BUCKET", "compose-test"),
            ("PRODUCER_RATE", PRODUCER_RATE),
            ("PRODUCER_EVENT_RATE", PRODUCER_EVENT_RATE),
            ("CHECKPOINT_INTERVAL", "2 s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let stack = Stack {
            compose,
            env,
            endpoint: format!("http://127.0.0.1:{aws_port}"),
            featurestore: format!("http://127.0.0.1:{featurestore_port}"),
            server: format!("http://127.0.0.1:{server_port}"),
        };
        stack.run(&["up", "-d", "--build"]);
        stack
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.compose[0]);
        command
            .args(&self.compose[1..])
            .args(args)
            .current_dir(REPO)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs a compose command; panics with its output and the services' logs if it fails.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.compose));
        if !out.status.success() {
            panic!(
                "{} {} failed ({}):\n{}{}\n--- logs ---\n{}",
                self.compose.join(" "),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn logs(&self) -> String {
        self.command(&["logs", "--no-color", "--tail", "60"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The container of `service`.
    fn container(&self, service: &str) -> String {
        let id = self.run(&["ps", "-q", service]).trim().to_string();
        assert!(!id.is_empty(), "no container for service {service}");
        id
    }

    fn inspect(&self, service: &str, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.container(service)])
    }

    /// Waits until `service` runs a process other than `old_pid`.
    fn wait_running(&self, service: &str, old_pid: &str) {
        wait_for(&format!("{service} to run again"), || {
            let state = self.inspect(service, "{{.State.Status}} {{.State.Pid}}");
            state.starts_with("running") && !state.ends_with(&format!(" {old_pid}"))
        });
    }

    /// The committed Parquet output, fetched from the bucket into a fresh folder.
    fn output(&self, into: &Path) -> PathBuf {
        let folder = into.join(format!("s3-{}", unique()));
        fs::create_dir_all(&folder).expect("create the fetch folder");
        s3_fetch(&self.endpoint, "compose-test", "tx_metrics/", &folder);
        folder
    }

    /// The number of windows (distinct window starts) committed so far.
    fn windows(&self, into: &Path) -> u64 {
        let folder = self.output(into);
        if crate::common::data_files(&folder, "parquet").is_empty() {
            return 0;
        }
        let rows = duckdb_query(
            &[("m", &folder)],
            "SELECT count(DISTINCT window_start) AS n FROM m",
        );
        rows[0]["n"].as_u64().expect("a count")
    }

    fn wait_for_windows(&self, into: &Path, at_least: u64) -> u64 {
        let mut seen = 0;
        wait_for(&format!("{at_least} committed windows"), || {
            seen = self.windows(into);
            seen >= at_least
        });
        seen
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- compose logs ---\n{}", self.logs());
        }
        let _ = self
            .command(&["down", "-v", "--remove-orphans", "--timeout", "5"])
            .output();
    }
}

fn docker(args: &[&str]) -> String {
    let out: Output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "no {what} within {STEP_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_secs(2));
    }
}

/// Every record of the `tx` stream, as the JSON lines the producer wrote, into `path`.
fn read_stream(endpoint: &str, dir: &Path) -> PathBuf {
    let dump = dir.join("stream.jsonl");
    kinesis_tool(
        endpoint,
        &[
            "read",
            "--stream",
            "tx",
            "--out",
            &dump.display().to_string(),
        ],
    );
    let events = dir.join("events.jsonl");
    let lines: String = fs::read_to_string(&dump)
        .expect("read the stream dump")
        .lines()
        .map(|l| {
            let record: Value = serde_json::from_str(l).expect("a JSON line");
            format!("{}\n", record["data"].as_str().expect("UTF-8 data"))
        })
        .collect();
    fs::write(&events, lines).expect("write the events");
    events
}

/// The events whose time is before `end_ms`: the input of the windows that have closed.
fn events_before(events: &Path, end_ms: i64, into: &Path) -> u64 {
    let text = fs::read_to_string(events).expect("read the events");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let row: Value = serde_json::from_str(l).expect("a transaction");
            row["event_time"].as_i64().expect("event_time") < end_ms
        })
        .collect();
    fs::write(into, kept.join("\n") + "\n").expect("write the closed windows' events");
    kept.len() as u64
}

/// The `sluice-server` service: the job of `jobs/server/` runs, and a job submitted with
/// `sluice submit` (datagen, 8 rows per key in 3 keys, to JSON on S3) finishes with the
/// expected rows.
fn server_runs_submitted_jobs(stack: &Stack, dir: &Path) {
    let list = || -> Value {
        let out = sluice()
            .args(&["list", "--json", "--server", &stack.server])
            .output();
        out.assert_success();
        serde_json::from_str(&out.stdout).expect("JSON from sluice list")
    };
    wait_for("the server's jobs/server job to run", || {
        list()["jobs"].as_array().is_some_and(|jobs| {
            jobs.iter()
                .any(|j| j["name"] == "tx_largest" && j["state"] == "RUNNING")
        })
    });
    let job = dir.join("server_job.sql");
    fs::write(
        &job,
        "CREATE TABLE g (seq BIGINT, k AS CAST(seq % 3 AS INT)) WITH ('connector' = 'datagen',
           'number-of-rows' = '24', 'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1',
           'fields.seq.end' = '24');
         CREATE TABLE o (k INT, total BIGINT) WITH ('connector' = 'filesystem',
           'path' = 's3://compose-test/server-test/', 'format' = 'json');
         INSERT INTO o SELECT k, seq * 10 FROM g WHERE seq <= 6;",
    )
    .expect("write the job");
    let submitted = sluice()
        .args(&[
            "submit",
            job.to_str().unwrap(),
            "--json",
            "--server",
            &stack.server,
        ])
        .output();
    submitted.assert_success();
    let id = serde_json::from_str::<Value>(&submitted.stdout).expect("JSON")["id"]
        .as_str()
        .expect("a job id")
        .to_string();
    wait_for("the submitted job to finish", || {
        list()["jobs"].as_array().is_some_and(|jobs| {
            jobs.iter()
                .any(|j| j["id"] == id.as_str() && j["state"] == "FINISHED")
        })
    });
    let folder = dir.join(format!("server-{}", unique()));
    fs::create_dir_all(&folder).expect("create the fetch folder");
    s3_fetch(&stack.endpoint, "compose-test", "server-test/", &folder);
    let mut rows: Vec<(i64, i64)> = crate::common::read_json_rows(&folder)
        .iter()
        .map(|r| {
            (
                r["k"].as_f64().unwrap() as i64,
                r["total"].as_f64().unwrap() as i64,
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, [(0, 30), (0, 60), (1, 10), (1, 40), (2, 20), (2, 50)]);
}

#[test]
fn compose_runs_the_pipeline_and_recovers_exactly_once_after_kills() {
    let dir = temp_dir();
    let stack = Stack::up();

    // 1. The job commits windows.
    let before = stack.wait_for_windows(dir.path(), 3);

    // 2. `docker kill` (SIGKILL), then the service is started again, as a user would.
    let pid = stack.inspect("sluice", "{{.State.Pid}}");
    docker(&["kill", &stack.container("sluice")]);
    stack.run(&["start", "sluice"]);
    stack.wait_running("sluice", &pid);
    let after_first = stack.wait_for_windows(dir.path(), before + 3);

    // 3. A crash (the process killed from outside): the restart policy brings it back.
    let pid = stack.inspect("sluice", "{{.State.Pid}}");
    let killed = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -KILL {pid} failed");
    stack.wait_running("sluice", &pid);
    assert_eq!(
        stack.inspect("sluice", "{{.RestartCount}}"),
        "1",
        "the restart policy restarted the job once"
    );
    stack.wait_for_windows(dir.path(), after_first + 3);

    // 4. The server runs the job of jobs/server/ it submitted at start, and runs a job
    //    submitted through its API to the end, its output on S3 exactly as expected.
    server_runs_submitted_jobs(&stack, dir.path());

    // 5. The producer stops; once the output no longer changes, every closed window is in.
    stack.run(&["stop", "producer"]);
    let mut last = (0, String::new());
    wait_for("the output to settle", || {
        let output = stack.output(dir.path());
        let rows = duckdb_query(
            &[("m", &output)],
            "SELECT count(*) AS n, max(window_end)::VARCHAR AS last FROM m",
        );
        let now = (
            rows[0]["n"].as_u64().expect("a count"),
            rows[0]["last"].as_str().unwrap_or_default().to_string(),
        );
        let settled = now == last;
        last = now;
        settled
    });
    let output = stack.output(dir.path());

    // 6. Exactly the records the producer wrote, each once in its window: DuckDB over the
    //    stream's records in the closed windows gives every row, none twice, none missing.
    let events = read_stream(&stack.endpoint, dir.path());
    let end_ms = duckdb_query(
        &[("m", &output)],
        "SELECT epoch_ms(max(window_end)) AS end_ms, count(DISTINCT window_start) AS windows,
                (epoch_ms(max(window_start)) - epoch_ms(min(window_start))) // 60000 + 1 AS span
         FROM m",
    );
    let (windows, span) = (&end_ms[0]["windows"], &end_ms[0]["span"]);
    assert_eq!(
        windows, span,
        "a window is missing between the first and the last"
    );
    let closed = dir.path().join("closed.jsonl");
    let end_ms = end_ms[0]["end_ms"].as_i64().expect("the last window end");
    assert!(events_before(&events, end_ms, &closed) > 0);
    let summary = TumbleCheck {
        events: &closed,
        output: &output,
        key: "currency",
        ts: "event_time",
        value: "fee",
        size_ms: 60_000,
        windows: Windows::Tumble,
        aggregates: &[
            ("count", "tx_count"),
            ("sum", "total_fee"),
            ("avg", "avg_fee"),
        ],
        lateness: None,
    }
    .run();
    assert!(summary.actual_rows >= 4 * (after_first + 3), "{summary:?}");

    // 7. The feature store holds each currency's latest window.
    let latest = latest_in_parquet(&output);
    let ids: Vec<String> = latest
        .iter()
        .map(|r| r["currency"].as_str().expect("currency").to_string())
        .collect();
    assert_eq!(ids, ["ADA", "BTC", "ETH", "SOL"]);
    assert_latest(&dump(&stack.featurestore, "tx-metrics", &ids), &latest);

    // 8. The table is in Glue, with its partitions.
    let glue: Value = serde_json::from_str(&aws_tool(
        "s3_tool.py",
        &stack.endpoint,
        &[
            "glue-table",
            "--database",
            "sluice",
            "--table",
            "tx_metrics",
        ],
    ))
    .expect("glue-table prints JSON");
    let partitions: BTreeSet<String> = glue["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p[0].to_string())
        .collect();
    assert!(!partitions.is_empty(), "no partitions in Glue: {glue}");

    // 9. `down -v` leaves no container and no volume of the project.
    let project = stack.env[0].1.clone();
    drop(stack);
    let left = docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(left.is_empty(), "containers left behind: {left}");
    let volumes = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(volumes.is_empty(), "volumes left behind: {volumes}");
}
