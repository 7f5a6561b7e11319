//! What the end-to-end tests share: running the `sluice` binary on job files written into a
//! temporary folder, reading what its sinks wrote, and the Python tools (DuckDB, pyarrow,
//! in a virtualenv made by `tests/support/pyenv.sh`) that check results independently.
//!

pub mod aws;
pub mod featurestore;
mod run;
pub mod server;

pub use run::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The repository root (the root package is the `sluice` binary).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The Bid table of SEMANTICS.md's test vectors (price and supplier as in its HOP, CUMULATE
/// and SESSION vectors), one JSON object per line, in event-time order.
pub const BID_ROWS: &str = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": 2.00, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:09:00", "price": 5.00, "item": "D", "supplier": "s2"}
{"bidtime": "2020-04-15 08:11:00", "price": 3.00, "item": "B", "supplier": "s2"}
{"bidtime": "2020-04-15 08:13:00", "price": 1.00, "item": "E", "supplier": "s1"}
{"bidtime": "2020-04-15 08:17:00", "price": 6.00, "item": "F", "supplier": "s2"}
"#;

/// The watermark of SEMANTICS.md's test vectors.
pub const BID_WATERMARK: &str = "bidtime - INTERVAL '1' SECOND";

/// `CREATE TABLE bid` over the JSON file `{input}`, with the given price type and watermark
/// expression (none: no watermark).
pub fn bid_table(price_type: &str, watermark: Option<&str>) -> String {
    let watermark = watermark
        .map(|w| format!(",\n  WATERMARK FOR bidtime AS {w}"))
        .unwrap_or_default();
    format!(
        "CREATE TABLE bid (\n  bidtime TIMESTAMP(3),\n  price {price_type},\n  item STRING,\n  \
         supplier STRING{watermark}\n) WITH ('connector' = 'filesystem', 'path' = '{{input}}', \
         'format' = 'json');"
    )
}

/// `CREATE TABLE sink (<columns>)`: a JSON filesystem sink writing into `{output}`.
pub fn json_sink(columns: &str) -> String {
    format!(
        "CREATE TABLE sink ({columns}) \
         WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'json');"
    )
}

/// Sink columns of the "sum of price per window" jobs.
pub const SUM_SINK: &str = "window_start TIMESTAMP(3), window_end TIMESTAMP(3), total DOUBLE";

/// A job over the Bid table (DOUBLE prices, watermark bidtime - 1 s) into `sink`.
pub fn bid_job(sink_columns: &str, statements: &str) -> String {
    bid_job_with(Some(BID_WATERMARK), "DOUBLE", sink_columns, statements)
}

/// A job over the Bid table with the given watermark (none: no watermark) and price type.
pub fn bid_job_with(
    watermark: Option<&str>,
    price_type: &str,
    sink_columns: &str,
    statements: &str,
) -> String {
    format!(
        "{}\n{}\n{statements}\n",
        bid_table(price_type, watermark),
        json_sink(sink_columns)
    )
}

/// `INSERT INTO sink` the sum of price per TUMBLE window; `window_args` follow the descriptor
/// (size, and optionally offset).
pub fn tumble_sum(window_args: &str) -> String {
    format!(
        "INSERT INTO sink\nSELECT window_start, window_end, SUM(price)\n\
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), {window_args}))\n\
         GROUP BY window_start, window_end;"
    )
}

/// A TIMESTAMP(3) value as the JSON sink writes it, on the Bid table's day.
pub fn at(hh_mm: &str) -> String {
    format!("2020-04-15 {hh_mm}:00.000")
}

/// One row of a sum-per-window sink, times on the Bid table's day.
pub fn window_sum(start: &str, end: &str, total: f64) -> Value {
    json!({"window_start": at(start), "window_end": at(end), "total": total})
}

/// The rows of SEMANTICS.md's first vector: TUMBLE 10 min over the Bid table.
pub fn ten_minute_sums() -> Value {
    json!([
        window_sum("08:00", "08:10", 11.0),
        window_sum("08:10", "08:20", 10.0)
    ])
}

/// Path of a file in `tests/support/`.
pub fn support(name: &str) -> PathBuf {
    Path::new(REPO).join("tests/support").join(name)
}

/// The virtualenv's python (with DuckDB and pyarrow), set up once per test binary.
///
/// Panics when the environment cannot be made: a test that needs it must fail loudly,
/// never pass by skipping its check.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(support("pyenv.sh"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot set up the Python test environment: bash: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let path = stdout.lines().last().map(str::trim).unwrap_or_default();
        if !out.status.success() || path.is_empty() || !Path::new(path).exists() {
            panic!("cannot set up the Python test environment: {stderr}{stdout}");
        }
        PathBuf::from(path)
    })
}

/// Runs a script of `tests/support/` with the venv's python (see [`run_python_file`]).
pub fn run_python(script: &str, args: &[&str]) -> String {
    run_python_file(&support(script), args)
}

/// Runs a Python script with the venv's python; panics with its output unless it succeeds,
/// and returns its stdout.
pub fn run_python_file(script: &Path, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `tests/support/query.py`: one DuckDB query, with `views` naming Parquet folders
/// written by Sluice (`("m", dir)` makes view `m`). Returns the rows as JSON objects.
pub fn duckdb_query(views: &[(&str, &Path)], sql: &str) -> Vec<Value> {
    let specs: Vec<String> = views
        .iter()
        .map(|(name, dir)| format!("{name}={}", dir.display()))
        .collect();
    let mut args: Vec<&str> = Vec::new();
    for spec in &specs {
        args.extend(["--parquet", spec.as_str()]);
    }
    args.push(sql);
    let stdout = run_python("query.py", &args);
    match serde_json::from_str(stdout.trim()) {
        Ok(Value::Array(rows)) => rows,
        _ => panic!("query.py printed no JSON list: {stdout}"),
    }
}

/// A fresh temporary folder for one test; removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("sluice-e2e-")
        .tempdir()
        .expect("create a temporary folder")
}

/// Writes `dir/job.sql` from `template`, replacing each placeholder (`"{input}"`) by its
/// path. A placeholder missing from the template is a bug in the test and panics.
pub fn write_job(dir: &Path, template: &str, vars: &[(&str, &Path)]) -> PathBuf {
    let mut text = template.to_string();
    for (placeholder, path) in vars {
        assert!(
            text.contains(placeholder),
            "job template has no {placeholder}:\n{template}"
        );
        text = text.replace(placeholder, &path.display().to_string());
    }
    let job = dir.join("job.sql");
    fs::write(&job, text).expect("write job.sql");
    job
}

/// The temporary folder of one test: its input files, job file, sink folder `out/` and
/// metrics file. Removed when dropped.
pub struct JobDir {
    dir: TempDir,
}

impl JobDir {
    pub fn new() -> Self {
        JobDir { dir: temp_dir() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating its folders) and returns its path.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create input folder");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// The sink folder, `{output}` in job templates.
    pub fn output(&self) -> PathBuf {
        self.path().join("out")
    }

    /// Writes `job.sql` from `template` (`{input}` is `input`, `{output}` the sink folder) and
    /// runs it with `--set` pairs and `--metrics-json`.
    pub fn run(&self, template: &str, input: &Path, sets: &[(&str, &str)]) -> Outcome {
        let job = write_job(
            self.path(),
            template,
            &[("{input}", input), ("{output}", &self.output())],
        );
        sluice_run(&job)
            .sets(sets)
            .metrics_json(&self.path().join("metrics.json"))
            .output()
    }

    /// Runs like [`JobDir::run`], asserts success and that no in-progress file is left, and
    /// reads the JSON rows written.
    pub fn run_json(self, template: &str, input: &Path, sets: &[(&str, &str)]) -> JsonJob {
        let outcome = self.run(template, input, sets);
        outcome.assert_success();
        let output = self.output();
        assert_no_hidden_files(&output);
        JsonJob {
            rows: read_json_rows(&output),
            metrics: outcome.metrics(),
            output,
            dir: self,
        }
    }
}

impl Default for JobDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A finished job whose sink wrote JSON: its rows and metrics. Keeps its folder alive.
pub struct JsonJob {
    pub dir: JobDir,
    pub output: PathBuf,
    pub rows: Vec<Value>,
    pub metrics: Metrics,
}

/// Runs `template` over a file `input.json` holding `input` (see [`JobDir::run_json`]).
pub fn run_json_job(input: &str, template: &str, sets: &[(&str, &str)]) -> JsonJob {
    let dir = JobDir::new();
    let input = dir.write("input.json", input);
    dir.run_json(template, &input, sets)
}

/// A failed run over a bad input must say which file and which line (1-based): either as
/// `FILE:LINE` or naming the file and `line LINE`.
pub fn assert_names_file_and_line(outcome: &Outcome, file: &Path, line: usize) {
    outcome.assert_failure();
    let file = file.display().to_string();
    let stderr = &outcome.stderr;
    assert!(
        stderr.contains(&format!("{file}:{line}"))
            || (stderr.contains(&file) && stderr.contains(&format!("line {line}"))),
        "stderr should name {file} and line {line}:\n{stderr}"
    );
}

/// Every file and folder under `dir` (recursively), relative to `dir`, sorted.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("read folder entry").path();
            found.push(path.strip_prefix(root).expect("under root").to_path_buf());
            if path.is_dir() {
                walk(root, &path, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

fn is_hidden(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// After a successful run nothing may remain in progress: no hidden file or folder.
pub fn assert_no_hidden_files(dir: &Path) {
    let hidden: Vec<PathBuf> = list_files(dir)
        .into_iter()
        .filter(|p| is_hidden(p))
        .collect();
    assert!(
        hidden.is_empty(),
        "in-progress files left in {}: {hidden:?}",
        dir.display()
    );
}

/// The visible data files under `dir` with the given extension, relative to `dir`, sorted.
/// Each must be named `part-*`.
pub fn data_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = list_files(dir)
        .into_iter()
        .filter(|p| !is_hidden(p) && p.extension().is_some_and(|e| e == extension))
        .collect();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            name.starts_with("part-"),
            "data file not named part-*: {}",
            file.display()
        );
    }
    files
}

/// The rows of every visible `*.json` file under `dir` (one object per line), numbers made
/// comparable (see [`normalize`]) and sorted.
pub fn read_json_rows(dir: &Path) -> Vec<Value> {
    let mut rows: Vec<Value> = data_files(dir, "json")
        .iter()
        .flat_map(|f| json_lines(&dir.join(f)))
        .collect();
    sort_rows(&mut rows);
    rows
}

/// The rows of one JSON-lines file, normalized.
pub fn json_lines(file: &Path) -> Vec<Value> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l}", file.display()));
            assert!(
                row.is_object(),
                "{}: not a JSON object: {l}",
                file.display()
            );
            normalize(row)
        })
        .collect()
}

/// Every number as an f64, so that `11`, `11.0` and `11.00` compare equal: the tests check
/// values, and the few that care about the textual form (DECIMAL scale) read the text.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Number(n)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// Sorts rows by their JSON text: a deterministic order independent of the files' order.
pub fn sort_rows(rows: &mut [Value]) {
    rows.sort_by_cached_key(|r| r.to_string());
}

/// Asserts `actual` holds exactly the rows of `expected` (a JSON array), in any order.
pub fn assert_rows(actual: &[Value], expected: Value) {
    let Value::Array(expected) = normalize(expected) else {
        panic!("expected rows must be a JSON array");
    };
    let mut expected = expected;
    sort_rows(&mut expected);
    let mut actual: Vec<Value> = actual.iter().cloned().map(normalize).collect();
    sort_rows(&mut actual);
    assert_eq!(
        actual,
        expected,
        "\nactual rows:\n{}\nexpected rows:\n{}",
        lines(&actual),
        lines(&expected)
    );
}

fn lines(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("  {r}\n")).collect()
}

/// A job that failed must leave no visible data file behind.
pub fn assert_wrote_nothing(output: &Path) {
    if output.exists() {
        let files: Vec<PathBuf> = list_files(output)
            .into_iter()
            .filter(|p| !is_hidden(p) && !output.join(p).is_dir())
            .collect();
        assert!(
            files.is_empty(),
            "a failed job left files in {}: {files:?}",
            output.display()
        );
    }
}

/// What `tests/support/compare.py` checks: a TUMBLE aggregate Sluice wrote as Parquet against
/// a batch computation over the same JSON-lines input.
pub struct TumbleCheck<'a> {
    /// The input file, or a folder of `*.json` files (each one source partition).
    pub events: &'a Path,
    /// Sluice's Parquet output folder (columns `window_start`, `window_end`, the key, the
    /// aggregates).
    pub output: &'a Path,
    /// Input columns: group key, epoch-millisecond event time, aggregated value; the key
    /// column has the same name in the output.
    pub key: &'a str,
    pub ts: &'a str,
    pub value: &'a str,
    pub size_ms: u64,
    /// Which windows of that size.
    pub windows: Windows,
    /// (function, output column): count, sum, avg, min or max.
    pub aggregates: &'a [(&'a str, &'a str)],
    /// When rows may be late, the watermark they are decided against, record by record.
    pub lateness: Option<Lateness>,
}

/// The windows a [`TumbleCheck`] expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    Tumble,
    Hop { slide_ms: u64 },
    Cumulate { step_ms: u64 },
}

/// A source's watermark, as the late rows are decided against it: `rowtime - delay`,
/// emitted once the largest seen is more than `emit_interval_ms` past the last emitted
/// (`pipeline.auto-watermark-interval`: 200 ms by default, 0 for every record).
#[derive(Debug, Clone, Copy)]
pub struct Lateness {
    pub delay_ms: u64,
    pub emit_interval_ms: u64,
}

/// What compare.py found, once the output matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TumbleSummary {
    pub expected_late: u64,
    pub expected_rows: u64,
    pub actual_rows: u64,
}

impl TumbleCheck<'_> {
    /// Runs compare.py; panics with its report when Sluice's windows differ.
    pub fn run(&self) -> TumbleSummary {
        let path = |p: &Path| p.display().to_string();
        let mut args: Vec<String> = [
            "--events",
            &path(self.events),
            "--actual",
            &path(self.output),
            "--key",
            self.key,
            "--ts",
            self.ts,
            "--value",
            self.value,
            "--size-ms",
            &self.size_ms.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match self.windows {
            Windows::Tumble => {}
            Windows::Hop { slide_ms } => args.extend(["--slide-ms".into(), slide_ms.to_string()]),
            Windows::Cumulate { step_ms } => args.extend(["--step-ms".into(), step_ms.to_string()]),
        }
        for (function, column) in self.aggregates {
            args.extend(["--agg".to_string(), format!("{function}:{column}")]);
        }
        if let Some(Lateness {
            delay_ms,
            emit_interval_ms,
        }) = self.lateness
        {
            args.extend(["--late-delay-ms".to_string(), delay_ms.to_string()]);
            args.extend([
                "--watermark-interval-ms".to_string(),
                emit_interval_ms.to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let summary = run_compare("compare.py", &args);
        let count = |key: &str| {
            summary[key]
                .as_u64()
                .unwrap_or_else(|| panic!("no {key} in compare.py's {summary}"))
        };
        TumbleSummary {
            expected_late: count("expected_late"),
            expected_rows: count("expected_rows"),
            actual_rows: count("actual_rows"),
        }
    }
}

/// The newest checkpoint in `dir` with a manifest (0: none).
pub fn newest_complete(dir: &Path) -> u64 {
    checkpoint_folders(dir)
        .iter()
        .filter_map(|n| n.strip_prefix("chk-")?.parse().ok())
        .filter(|id: &u64| dir.join(format!("chk-{id}/_manifest.json")).exists())
        .max()
        .unwrap_or(0)
}

/// The `chk-*` folders in `dir`.
pub fn checkpoint_folders(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("chk-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `dir` holds a complete checkpoint numbered `id` or higher; fails if the job
/// ends first or none comes within 60 s.
pub fn wait_for_checkpoint(running: &mut Running, dir: &Path, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while newest_complete(dir) < id {
        assert!(
            running.is_running(),
            "the job ended before its checkpoint {id}"
        );
        assert!(Instant::now() < deadline, "no checkpoint {id} within 60 s");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a comparison script of `tests/support` (compare_over.py, compare_session.py) over
/// the generator's events (`k`, `ts`, `v`) and Sluice's Parquet output with columns `cnt`,
/// `total`, `mean`, `lo`, `hi` (count, sum, average, minimum, maximum of `v`), late rows
/// decided against a 1 s watermark delay emitted every 200 ms; `extra` says the window.
/// Returns the script's JSON summary (`expected_late`, `expected_rows`, `actual_rows`).
pub fn compare_five_aggregates(
    script: &str,
    events: &Path,
    actual: &Path,
    extra: &[&str],
) -> Value {
    let (events, actual) = (events.display().to_string(), actual.display().to_string());
    let mut args = vec![
        "--events",
        &events,
        "--actual",
        &actual,
        "--key",
        "k",
        "--ts",
        "ts",
        "--value",
        "v",
        "--agg",
        "count:cnt",
        "--agg",
        "sum:total",
        "--agg",
        "avg:mean",
        "--agg",
        "min:lo",
        "--agg",
        "max:hi",
        "--late-delay-ms",
        "1000",
        "--watermark-interval-ms",
        "200",
    ];
    args.extend_from_slice(extra);
    run_compare(script, &args)
}

/// Runs a comparison script of `tests/support` (compare.py and its kin) with `args`;
/// returns the JSON summary line it prints once the output matched (it fails the test with
/// its report otherwise).
pub fn run_compare(script: &str, args: &[&str]) -> Value {
    let stdout = run_python(script, args);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} printed no summary ({e}): {stdout}"))
}
