//! Real AWS APIs for the tests: a moto server (Kinesis, S3, Glue) started by the test
//! binary itself, and a fault-injecting proxy in front of it.
//!
//! Nothing is mocked inside Sluice: the official AWS SDK talks HTTP to these servers through
//! an endpoint override. Test data is written and read back with boto3, an independent
//! client (`tests/support/kinesis_tool.py`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{python, support, Sluice};

/// A running moto server, shared by the tests of one binary; it stops when the binary
/// exits (its wrapper watches the pipe we hold).
pub struct Moto {
    pub endpoint: String,
    _stdin: Mutex<ChildStdin>,
    /// Ends by itself when the pipe above closes.
    _child: Mutex<Child>,
}

/// The test binary's moto server, started on first use. Panics, naming what is missing,
/// when it cannot start: a test must never pass without its server.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let mut child = Command::new(python())
            .arg(support("moto_serve.py"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto (tests/support/moto_serve.py): {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read moto's endpoint");
        let endpoint = line.trim().to_string();
        assert!(
            endpoint.starts_with("http://"),
            "moto did not start (see moto_serve.py's message above); got {line:?}"
        );
        Moto {
            endpoint,
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        }
    })
}

/// The environment every AWS client of the tests gets: the endpoint and dummy credentials
/// through the standard chain, nothing else.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_SESSION_TOKEN", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        // No profile or instance metadata lookups on a test machine.
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

impl Sluice {
    /// Points the run's AWS SDK at `endpoint` (moto, or a proxy in front of it).
    pub fn aws(mut self, endpoint: &str) -> Self {
        for (k, v) in aws_env(endpoint) {
            self = self.env(k, &v);
        }
        self
    }
}

/// Runs `tests/support/kinesis_tool.py` against `endpoint`; returns its stdout.
pub fn kinesis_tool(endpoint: &str, args: &[&str]) -> String {
    aws_tool("kinesis_tool.py", endpoint, args)
}

/// Downloads the objects below `prefix` of `bucket` into `out` with boto3, keeping their
/// keys below the prefix as paths.
pub fn s3_fetch(endpoint: &str, bucket: &str, prefix: &str, out: &Path) {
    aws_tool(
        "s3_tool.py",
        endpoint,
        &[
            "fetch",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--out",
            &out.display().to_string(),
        ],
    );
}

/// Runs a boto3 script of `tests/support/` against `endpoint` with the tests' AWS
/// environment; panics with its output unless it succeeds, and returns its stdout.
pub fn aws_tool(script: &str, endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(support(script))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .envs(aws_env(endpoint))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fault-injecting proxy in front of moto (`tests/support/fault_proxy.py`); stopped when
/// dropped.
pub struct FaultProxy {
    pub endpoint: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` with `fault_proxy.py` options such as
    /// `["--throttle", "0.1"]`.
    pub fn start(upstream: &str, options: &[&str]) -> Self {
        let dir = super::temp_dir();
        let ready = dir.path().join("port");
        let child = Command::new(python())
            .arg(support("fault_proxy.py"))
            .args(["--upstream", upstream, "--port", "0", "--ready-file"])
            .arg(&ready)
            .args(options)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start fault_proxy.py: {e}"));
        let port = wait_for_file(&ready, Duration::from_secs(30));
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{}", port.trim()),
            child,
            _dir: dir,
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // SIGTERM, so the proxy prints its fault counts.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Waits for `path` to exist with content; returns the content.
pub fn wait_for_file(path: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stream name no other test of this run uses.
pub fn unique_stream(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
