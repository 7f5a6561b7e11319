//! Checkpoints and exactly-once recovery: a job killed with SIGKILL at random moments and
//! restarted each time ends with the output of an uninterrupted run, row for row.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::aws::{aws_tool, kinesis_tool, moto, s3_fetch, unique_stream};
use crate::common::{
    checkpoint_folders, duckdb_query, gen_tx, newest_complete, run_python, sluice_run,
    wait_for_checkpoint, JobDir, Outcome, Sluice,
};
use serde_json::json;

/// `sluice datagen tx` transactions split over `files` JSON-lines files in `dir/in/`.
fn generate(dir: &Path, events: u64, files: usize) -> PathBuf {
    let all = dir.join("all.jsonl");
    gen_tx(&all, events, &["--keys=1000"]);
    let text = std::fs::read_to_string(&all).expect("read the events");
    let lines: Vec<&str> = text.lines().collect();
    let input = dir.join("in");
    std::fs::create_dir_all(&input).expect("create in/");
    let per_file = lines.len().div_ceil(files);
    for (i, chunk) in lines.chunks(per_file).enumerate() {
        std::fs::write(input.join(format!("tx-{i}.jsonl")), chunk.join("\n") + "\n")
            .expect("write an input file");
    }
    input
}

/// The input all tests read (2,000,000 transactions in 8 files) and the output of an
/// uninterrupted run over it, made once per test binary.
///
/// A static is never dropped, so the folder cannot be a temporary one (each run would leave
/// 700 MB behind): it is one fixed folder under Cargo's `target/tmp`, replaced by each run.
pub(crate) struct Reference {
    pub(crate) input: PathBuf,
    expected: PathBuf,
}

pub(crate) fn reference() -> &'static Reference {
    static REFERENCE: std::sync::OnceLock<Reference> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("checkpoint-reference");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the previous run's reference folder");
        }
        std::fs::create_dir_all(&dir).expect("create the reference folder");
        let input = generate(&dir, 2_000_000, 8);
        let expected = dir.join("expected");
        let plain = window_job(&dir, "plain.sql", &input, &expected, None);
        sluice_run(&plain).output().assert_success();
        Reference { input, expected }
    })
}

/// The checkpointed window job over the reference input, in a folder of its own.
struct Checkpointed {
    dir: JobDir,
    job: PathBuf,
    actual: PathBuf,
    checkpoints: PathBuf,
    expected: &'static Path,
}

fn checkpointed() -> Checkpointed {
    let dir = JobDir::new();
    let reference = reference();
    let actual = dir.path().join("actual");
    let checkpoints = dir.path().join("checkpoints");
    let job = window_job(
        dir.path(),
        "checkpointed.sql",
        &reference.input,
        &actual,
        Some(&checkpoints),
    );
    Checkpointed {
        dir,
        job,
        actual,
        checkpoints,
        expected: &reference.expected,
    }
}

/// The `SET` statements that turn checkpoints on (every `interval`, into `checkpoints`);
/// none without a folder.
fn checkpoint_settings(checkpoints: Option<&Path>, interval: &str) -> String {
    match checkpoints {
        None => String::new(),
        Some(cp) => format!(
            "SET 'execution.checkpointing.interval' = '{interval}';
             SET 'state.checkpoints.dir' = '{}';",
            cp.display()
        ),
    }
}

/// The per-minute metrics job from `input` into Parquet at `output`, with checkpoints into
/// `checkpoints` when given.
fn window_job(
    dir: &Path,
    name: &str,
    input: &Path,
    output: &Path,
    checkpoints: Option<&Path>,
) -> PathBuf {
    windowed_job(
        dir,
        name,
        input,
        output,
        checkpoints,
        "TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE)",
    )
}

/// The metrics job per window of `window` (a window table function call over `tx`).
pub(crate) fn windowed_job(
    dir: &Path,
    name: &str,
    input: &Path,
    output: &Path,
    checkpoints: Option<&Path>,
    window: &str,
) -> PathBuf {
    tx_job(
        dir,
        name,
        input,
        checkpoints,
        &format!(
            "CREATE TABLE metrics (
               window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
               tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO metrics
             SELECT window_start, window_end, currency, COUNT(*), SUM(fee), AVG(fee)
             FROM TABLE({window})
             GROUP BY window_start, window_end, currency;",
            output.display()
        ),
    )
}

/// Writes `dir/name`: table `tx` over the JSON files of `input` (watermark 5 s), at
/// parallelism 2, checkpoints into `checkpoints` when given, then `statements`.
pub(crate) fn tx_job(
    dir: &Path,
    name: &str,
    input: &Path,
    checkpoints: Option<&Path>,
    statements: &str,
) -> PathBuf {
    let settings = checkpoint_settings(checkpoints, "200 ms");
    let job = dir.join(name);
    std::fs::write(
        &job,
        format!(
            "SET 'parallelism.default' = '2';
             {settings}
             CREATE TABLE tx (
               tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING,
               event_time BIGINT,
               ts AS TO_TIMESTAMP_LTZ(event_time, 3),
               WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             {statements}",
            input.display(),
        ),
    )
    .expect("write the job");
    job
}

/// Runs `job` once per entry of `runs` (a delay in ms and `--set` pairs): each run is
/// killed with SIGKILL `delay` ms after it completed a checkpoint of its own, unless it
/// ended by itself. Then, unless a run ended by itself, it runs once more to the end with
/// the `last` settings. Returns the number of kills and the outcome of the run that ended.
fn kill_runs(
    job: &Path,
    checkpoints: &Path,
    runs: &[(u64, Vec<(&str, &str)>)],
    last: &[(&str, &str)],
) -> (usize, Outcome) {
    kill_runs_with(|| sluice_run(job), checkpoints, runs, last)
}

/// [`kill_runs`] with the command each run starts from.
fn kill_runs_with(
    command: impl Fn() -> Sluice,
    checkpoints: &Path,
    runs: &[(u64, Vec<(&str, &str)>)],
    last: &[(&str, &str)],
) -> (usize, Outcome) {
    let mut killed = 0;
    for (delay, sets) in runs {
        let before = newest_complete(checkpoints);
        let mut running = command().sets(sets).spawn();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while newest_complete(checkpoints) == before && running.is_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 60 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(*delay));
        if running.is_running() {
            running.kill();
            killed += 1;
        } else {
            let outcome = running.finish();
            outcome.assert_success();
            eprintln!("killed with SIGKILL {killed} times; then a run went to the end");
            return (killed, outcome);
        }
    }
    eprintln!("killed with SIGKILL {killed} times; the last run goes to the end");
    let outcome = command().sets(last).output();
    outcome.assert_success();
    (killed, outcome)
}

/// Runs `job` with 2 instances, kills it after a checkpoint, again with 4, then runs it to
/// the end with 1, and checks that the last run resumed from a checkpoint.
pub(crate) fn kill_at_2_and_4_then_finish_at_1(job: &Path, checkpoints: &Path) {
    let runs = vec![
        (50, vec![("parallelism.default", "2")]),
        (50, vec![("parallelism.default", "4")]),
    ];
    let (killed, last) = kill_runs(job, checkpoints, &runs, &[("parallelism.default", "1")]);
    assert_eq!(
        killed,
        2,
        "a run of {} ended before it was killed",
        job.display()
    );
    assert!(
        last.stderr.contains("resuming from checkpoint"),
        "{}",
        last.stderr
    );
}

/// A small deterministic random sequence (the test must be repeatable).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Asserts that two outputs of the metrics job hold the same windows: the same keys and
/// counts, sums and averages equal up to float rounding (partial sums merged in another
/// order after a restore), and no duplicate.
pub(crate) fn assert_same_output(expected: &Path, actual: &Path) {
    let stats = duckdb_query(
        &[("e", expected), ("a", actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT count(*) - count(DISTINCT (window_start, window_end, currency)) FROM a)
             AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a USING (window_start, window_end, currency)
             WHERE e.tx_count IS DISTINCT FROM a.tx_count
                OR abs(e.total_fee - a.total_fee) > 1e-9 * abs(e.total_fee)
                OR abs(e.avg_fee - a.avg_fee) > 1e-9 * abs(e.avg_fee)) AS different",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
}

#[test]
fn a_killed_file_job_resumes_to_the_output_of_an_uninterrupted_run() {
    let Checkpointed {
        dir: _dir,
        job,
        actual,
        checkpoints,
        expected,
    } = checkpointed();
    let mut rng = Lcg(7);
    let delays: Vec<u64> = (0..5).map(|_| rng.below(100)).collect();
    let runs: Vec<(u64, Vec<(&str, &str)>)> = delays.iter().map(|&d| (d, vec![])).collect();
    let (killed, outcome) = kill_runs(&job, &checkpoints, &runs, &[]);
    let resumed = outcome.stderr.contains("resuming from checkpoint");
    assert!(
        killed >= 3,
        "the job ended before it could be killed three times"
    );
    assert!(
        resumed,
        "the last run did not resume from a checkpoint:\n{}",
        outcome.stderr
    );
    // A job that ended has no use for its checkpoints: a new run starts over.
    assert!(
        checkpoint_folders(&checkpoints).is_empty(),
        "{:?}",
        checkpoint_folders(&checkpoints)
    );
    assert_same_output(expected, &actual);
}

#[test]
fn a_checkpoint_restores_at_another_parallelism() {
    let Checkpointed {
        dir: _dir,
        job,
        actual,
        checkpoints,
        expected,
    } = checkpointed();
    kill_at_2_and_4_then_finish_at_1(&job, &checkpoints);
    assert_same_output(expected, &actual);
}

#[test]
fn damaged_checkpoints_are_skipped_and_a_changed_job_is_refused() {
    let Checkpointed {
        dir,
        job,
        actual,
        checkpoints,
        expected,
    } = checkpointed();
    // Killed after two checkpoints at least.
    let mut running = sluice_run(&job).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while checkpoint_folders(&checkpoints).len() < 3 && running.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoints within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running.kill();
    let mut ids: Vec<u64> = checkpoint_folders(&checkpoints)
        .iter()
        .filter_map(|n| n.strip_prefix("chk-")?.parse().ok())
        .filter(|id: &u64| {
            checkpoints
                .join(format!("chk-{id}/_manifest.json"))
                .exists()
        })
        .collect();
    ids.sort_unstable();
    assert!(ids.len() >= 2, "{ids:?}");
    let newest = *ids.last().expect("a checkpoint");

    // A job with another window size cannot use this state.
    let text = std::fs::read_to_string(&job).unwrap();
    let changed = dir.path().join("changed.sql");
    std::fs::write(
        &changed,
        text.replace("INTERVAL '1' MINUTE", "INTERVAL '2' MINUTE"),
    )
    .unwrap();
    let refused = sluice_run(&changed).output();
    refused.assert_failure();
    assert_eq!(refused.status.code(), Some(3), "a plan error's exit code");
    let line = refused.error_line();
    assert!(
        line.contains(
            "cannot be restored into this job: operator 'INSERT INTO metrics/aggregate 1' \
             kept window TUMBLE(size 1 min, offset 0 ms) and the job now has \
             TUMBLE(size 2 min, offset 0 ms)"
        ),
        "{line}"
    );

    // Other keys, or other aggregates, cannot use it either.
    for (what, from, to) in [
        ("keys", "currency, COUNT(*)", "LOWER(currency), COUNT(*)"),
        ("aggregates", "SUM(fee)", "MAX(fee)"),
    ] {
        let mut edited = text.replace(from, to);
        if what == "keys" {
            edited = edited.replace("window_end, currency;", "window_end, LOWER(currency);");
        }
        assert_ne!(edited, text);
        let other = dir.path().join(format!("other_{what}.sql"));
        std::fs::write(&other, edited).unwrap();
        let refused = sluice_run(&other).output();
        refused.assert_failure();
        assert_eq!(refused.status.code(), Some(3), "{what}");
        let line = refused.error_line();
        assert!(
            line.contains(&format!(
                "cannot be restored into this job: operator 'INSERT INTO metrics/aggregate 1' \
                 kept {what} ("
            )),
            "{line}"
        );
    }

    // --from-checkpoint picks one (here the oldest, for the changed job: refused too), and
    // must name a chk-N folder.
    let oldest = checkpoints.join(format!("chk-{}", ids[0]));
    let picked = sluice_run(&changed)
        .args(&["--from-checkpoint", &oldest.display().to_string()])
        .output();
    picked.assert_failure();
    assert!(
        picked.error_line().contains(&format!(
            "checkpoint {} cannot be restored into this job",
            oldest.display()
        )),
        "{}",
        picked.error_line()
    );
    let nowhere = dir.path().join("nowhere");
    let bad = sluice_run(&job)
        .args(&["--from-checkpoint", &nowhere.display().to_string()])
        .output();
    bad.assert_failure();
    assert!(
        bad.error_line()
            .contains("not a checkpoint folder (chk-<number>)"),
        "{}",
        bad.error_line()
    );

    // The newest checkpoint with a truncated manifest: the run falls back and says so. It
    // runs the job with changes its state does not care about (a filter that keeps every
    // row, a source option set to its default, the sink's path: a folder inside the old
    // one, so the output read back is what both paths hold), which restore fine.
    let manifest = checkpoints.join(format!("chk-{newest}/_manifest.json"));
    let bytes = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &bytes[..bytes.len() / 2]).unwrap();
    let harmless = dir.path().join("harmless.sql");
    let edited = text
        .replace(
            "'format' = 'json')",
            "'format' = 'json', 'json.ignore-parse-errors' = 'false')",
        )
        .replace(
            "GROUP BY window_start",
            "WHERE fee >= 0 OR fee IS NULL\n             GROUP BY window_start",
        )
        .replace(
            &format!("'path' = '{}'", actual.display()),
            &format!("'path' = '{}/moved'", actual.display()),
        );
    assert!(
        edited.contains("/moved'") && edited.contains("WHERE fee"),
        "{edited}"
    );
    std::fs::write(&harmless, edited).unwrap();
    let outcome = sluice_run(&harmless).output();
    outcome.assert_success();
    assert!(
        outcome.stderr.contains(&format!(
            "checkpoint {} is incomplete",
            checkpoints.join(format!("chk-{newest}")).display()
        )),
        "{}",
        outcome.stderr
    );
    let previous = ids[ids.len() - 2];
    assert!(
        outcome.stderr.contains(&format!(
            "resuming from checkpoint {}",
            checkpoints.join(format!("chk-{previous}")).display()
        )),
        "{}",
        outcome.stderr
    );
    assert_same_output(expected, &actual);
}

#[test]
fn sigterm_takes_a_savepoint_leaves_committed_files_only_and_the_next_run_resumes() {
    // The archive job (every record to Parquet): files roll on each checkpoint, so output
    // is committed all along the run.
    let dir = JobDir::new();
    let Reference { input, .. } = reference();
    let actual = dir.path().join("archive");
    let checkpoints = dir.path().join("checkpoints");
    let job = dir.path().join("archive.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'parallelism.default' = '2';
             SET 'execution.checkpointing.interval' = '200 ms';
             SET 'state.checkpoints.dir' = '{}';
             CREATE TABLE tx (
               tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING,
               event_time BIGINT
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             CREATE TABLE archive (
               tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING,
               event_time BIGINT
             ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             INSERT INTO archive SELECT * FROM tx;",
            checkpoints.display(),
            input.display(),
            actual.display()
        ),
    )
    .expect("write the job");
    let mut running = sluice_run(&job).spawn();
    wait_for_checkpoint(&mut running, &checkpoints, 2);
    let stopped = running.terminate();
    stopped.assert_success();
    assert!(
        stopped.stderr.contains("savepoint") && stopped.stderr.contains("taken and committed"),
        "{}",
        stopped.stderr
    );
    // Committed files only, and some of them: nothing hidden is left in the output.
    crate::common::assert_no_hidden_files(&actual);
    let partial = duckdb_query(&[("a", &actual)], "SELECT count(*) AS n FROM a");
    let n = partial[0]["n"].as_u64().expect("a count");
    assert!(n > 0 && n < 2_000_000, "{n} rows after the savepoint");
    let resumed = sluice_run(&job).output();
    resumed.assert_success();
    assert!(
        resumed.stderr.contains("resuming from checkpoint"),
        "{}",
        resumed.stderr
    );
    // Every record exactly once.
    let all = duckdb_query(
        &[("a", &actual)],
        "SELECT count(*) AS n, count(DISTINCT tx_hash) AS hashes FROM a",
    );
    assert_eq!(all[0], json!({"n": 2_000_000, "hashes": 2_000_000}));
}

/// The windows of the Kinesis job: per key and minute, count, sum, min and max of `v`.
fn kinesis_window_job(
    dir: &Path,
    stream: &str,
    bucket: &str,
    prefix: &str,
    checkpoints: Option<&Path>,
) -> PathBuf {
    let settings = checkpoint_settings(checkpoints, "1 s");
    let job = dir.join(format!("{prefix}.sql"));
    std::fs::write(
        &job,
        format!(
            "SET 'parallelism.default' = '2';
             {settings}
             CREATE TABLE events (
               k STRING, v DOUBLE, ts BIGINT,
               event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
               WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
             ) WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'format' = 'json',
               'source.init.position' = 'TRIM_HORIZON', 'scan.bounded' = 'latest',
               'source.shard.discovery.interval' = '500 ms',
               'source.reader.empty-records-fetch-interval' = '50 ms');
             CREATE TABLE windows (
               window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING,
               cnt BIGINT, total DOUBLE, lo DOUBLE, hi DOUBLE
             ) WITH ('connector' = 'filesystem', 'path' = 's3://{bucket}/{prefix}',
               'format' = 'parquet');
             INSERT INTO windows
             SELECT window_start, window_end, k, COUNT(*), SUM(v), MIN(v), MAX(v)
             FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
             GROUP BY window_start, window_end, k;"
        ),
    )
    .expect("write the job");
    job
}

/// The crash test: 500,000 records in a 4-shard Kinesis stream (moto), a window
/// job checkpointing every second into S3 Parquet, killed with SIGKILL at 5 random
/// moments and restarted each time, ends with the output of an uninterrupted run.
#[test]
fn a_killed_kinesis_to_s3_job_resumes_to_the_output_of_an_uninterrupted_run() {
    let endpoint = &moto().endpoint;
    let dir = JobDir::new();
    let input = dir.path().join("events.jsonl");
    run_python(
        "gen_events.py",
        &[
            "--events=500000",
            "--keys=100",
            "--rate=500",
            "--disorder-ms=2000",
            &input.display().to_string(),
        ],
    );
    let stream = unique_stream("crash");
    let file = input.display().to_string();
    kinesis_tool(endpoint, &["create", "--stream", &stream, "--shards", "4"]);
    kinesis_tool(
        endpoint,
        &[
            "put", "--stream", &stream, "--file", &file, "--key", "random",
        ],
    );
    let bucket = unique_stream("crash").to_lowercase();
    aws_tool(
        "s3_tool.py",
        endpoint,
        &["create-bucket", "--bucket", &bucket],
    );

    let plain = kinesis_window_job(dir.path(), &stream, &bucket, "expected", None);
    sluice_run(&plain).aws(endpoint).output().assert_success();

    let checkpoints = dir.path().join("checkpoints");
    let job = kinesis_window_job(dir.path(), &stream, &bucket, "actual", Some(&checkpoints));
    let mut rng = Lcg(11);
    let runs: Vec<(u64, Vec<(&str, &str)>)> = (0..5).map(|_| (rng.below(1000), vec![])).collect();
    let (killed, outcome) =
        kill_runs_with(|| sluice_run(&job).aws(endpoint), &checkpoints, &runs, &[]);
    assert!(
        killed >= 3,
        "the job ended before it could be killed three times"
    );
    assert!(
        outcome.stderr.contains("resuming from checkpoint"),
        "{}",
        outcome.stderr
    );

    let fetch = |prefix: &str| {
        let out = dir.path().join(prefix);
        s3_fetch(endpoint, &bucket, &format!("{prefix}/"), &out);
        out
    };
    let (expected, actual) = (fetch("expected"), fetch("actual"));
    let stats = duckdb_query(
        &[("e", &expected), ("a", &actual)],
        "SELECT
           (SELECT count(*) FROM e) AS expected_rows,
           (SELECT count(*) FROM a) AS actual_rows,
           (SELECT sum(cnt) FROM a) AS records,
           (SELECT count(*) - count(DISTINCT (window_start, k)) FROM a) AS duplicates,
           (SELECT count(*) FROM e FULL JOIN a USING (window_start, k)
             WHERE e.cnt IS DISTINCT FROM a.cnt
                OR e.window_end IS DISTINCT FROM a.window_end
                OR e.lo IS DISTINCT FROM a.lo OR e.hi IS DISTINCT FROM a.hi
                OR abs(e.total - a.total) > 1e-9 * abs(e.total)) AS different",
    );
    let s = &stats[0];
    assert_eq!(s["duplicates"], json!(0), "{s}");
    assert_eq!(s["different"], json!(0), "{s}");
    assert_eq!(s["expected_rows"], s["actual_rows"], "{s}");
    assert_eq!(s["records"], json!(500_000), "{s}");
    // Each restore aborted the uploads the killed run had open; the last run completed or
    // aborted its own.
    assert_eq!(
        aws_tool("s3_tool.py", endpoint, &["uploads", "--bucket", &bucket]).trim(),
        "[]"
    );
}

#[test]
fn over_and_session_state_is_not_restored_into_another_frame_or_gap() {
    let reference = reference();
    let input = reference
        .input
        .parent()
        .expect("a folder")
        .join("all.jsonl");
    let jobs = [
        (
            "INSERT INTO recent SELECT tx_hash, COUNT(*) OVER w FROM tx
             WINDOW w AS (PARTITION BY currency ORDER BY ts
                          RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW);",
            ("INTERVAL '10' MINUTE", "INTERVAL '5' MINUTE"),
            "operator 'INSERT INTO recent/over 1' kept window RANGE 10 min PRECEDING and the \
             job now has RANGE 5 min PRECEDING",
        ),
        (
            "INSERT INTO recent SELECT currency, COUNT(*) FROM TABLE(SESSION(TABLE tx
               PARTITION BY currency, DESCRIPTOR(ts), INTERVAL '10' SECOND))
             GROUP BY window_start, window_end, currency;",
            ("INTERVAL '10' SECOND", "INTERVAL '20' SECOND"),
            "operator 'INSERT INTO recent/aggregate 1' kept window SESSION(gap 10 s) and the \
             job now has SESSION(gap 20 s)",
        ),
    ];
    for (insert, (from, to), expected) in jobs {
        let dir = JobDir::new();
        let checkpoints = dir.path().join("checkpoints");
        let output = dir.path().join("out");
        let statements = format!(
            "CREATE TABLE recent (k STRING, n BIGINT)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
             {insert}",
            output.display()
        );
        let job = tx_job(
            dir.path(),
            "job.sql",
            &input,
            Some(&checkpoints),
            &statements,
        );
        let mut running = sluice_run(&job).spawn();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while newest_complete(&checkpoints) == 0 && running.is_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint in 60 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(running.is_running(), "the job ended before a checkpoint");
        running.kill();
        let changed = tx_job(
            dir.path(),
            "changed.sql",
            &input,
            Some(&checkpoints),
            &statements.replace(from, to),
        );
        let refused = sluice_run(&changed).output();
        refused.assert_failure();
        assert_eq!(refused.status.code(), Some(3), "a plan error's exit code");
        assert!(
            refused.error_line().contains(expected),
            "{}",
            refused.error_line()
        );
    }
}
