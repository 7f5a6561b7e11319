//! Ctrl-C on an unbounded job: the job stops, sinks flush and close, the exit code is 0 and
//! every written row is in a visible (renamed) file.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_stops_an_unbounded_job_and_commits_its_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '2000',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000000000');
             CREATE TABLE o (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             INSERT INTO o SELECT id FROM g;",
            out.display()
        ),
    )
    .expect("write job");
    let metrics = dir.path().join("metrics.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&job)
        .arg("--metrics-json")
        .arg(&metrics)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice");
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sluice did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&out).expect("output folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            !name.starts_with('.'),
            "in-progress file left behind: {name}"
        );
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("json row");
            ids.push(row["id"].as_i64().expect("id"));
        }
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).expect("metrics")).expect("json");
    assert!(!ids.is_empty(), "nothing was written before the stop");
    assert_eq!(
        ids.len() as u64,
        m["records_written"].as_u64().expect("written")
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len() as u64,
        m["records_read"].as_u64().expect("read"),
        "every row read is written once"
    );
}
