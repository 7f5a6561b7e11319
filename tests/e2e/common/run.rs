//! Running the `sluice` binary from a test: to the end ([`Sluice::output`]) or in the
//! background ([`Sluice::spawn`]), with what it printed and its metrics read back.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one `sluice` run may take before the test fails instead of hanging.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Builds one invocation of the `sluice` binary.
pub struct Sluice {
    cmd: Command,
    metrics_json: Option<PathBuf>,
}

/// `sluice run JOB`.
pub fn sluice_run(job: &Path) -> Sluice {
    sluice().arg("run").arg(job)
}

/// Writes `events` transactions of `sluice datagen tx` (default seed, rate and disorder;
/// `extra` adds options such as `--keys=1000`) as JSON lines into `path`.
pub fn gen_tx(path: &Path, events: u64, extra: &[&str]) {
    sluice()
        .args(&["datagen", "tx", &format!("--events={events}")])
        .args(extra)
        .arg(path)
        .output()
        .assert_success();
}

/// The `sluice` binary with no arguments yet.
pub fn sluice() -> Sluice {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.stdin(Stdio::null()).env("RUST_BACKTRACE", "0");
    Sluice {
        cmd,
        metrics_json: None,
    }
}

impl Sluice {
    pub fn args(mut self, args: &[&str]) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    /// `--set key=value`.
    pub fn set(self, key: &str, value: &str) -> Self {
        self.arg("--set").arg(format!("{key}={value}"))
    }

    /// `--set` for each pair.
    pub fn sets(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |s, (k, v)| s.set(k, v))
    }

    /// `--metrics-json PATH`: the metrics can then be read with [`Outcome::metrics`].
    pub fn metrics_json(mut self, path: &Path) -> Self {
        self.metrics_json = Some(path.to_path_buf());
        self.arg("--metrics-json").arg(path)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Starts the run in the background, for tests that watch it while it runs.
    pub fn spawn(mut self) -> Running {
        let (described, mut child) = self.start();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines =
            |pipe: Box<dyn Read + Send>, err: bool, tx: std::sync::mpsc::Sender<(bool, String)>| {
                thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(pipe).lines() {
                        match line {
                            Ok(l) => {
                                if tx.send((err, l)).is_err() {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                })
            };
        lines(
            Box::new(child.stdout.take().expect("stdout")),
            false,
            tx.clone(),
        );
        lines(Box::new(child.stderr.take().expect("stderr")), true, tx);
        Running {
            command: described,
            child,
            lines: rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
            metrics_json: self.metrics_json,
        }
    }

    /// Starts the command with piped output; returns it described, for messages.
    fn start(&mut self) -> (String, std::process::Child) {
        let described = format!("{:?}", self.cmd);
        let child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
        (described, child)
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs to the end (or fails the test after [`RUN_TIMEOUT`]).
    pub fn output(mut self) -> Outcome {
        let (described, mut child) = self.start();
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for sluice") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{described} did not finish within {RUN_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        Outcome {
            command: described,
            status,
            stdout: stdout.join().expect("read stdout"),
            stderr: stderr.join().expect("read stderr"),
            metrics_json: self.metrics_json,
        }
    }
}

/// A `sluice` run in the background.
pub struct Running {
    command: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(bool, String)>,
    /// Lines seen so far.
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    metrics_json: Option<PathBuf>,
}

impl Running {
    /// Collects output lines until `done` says so (it sees stdout and stderr so far), or
    /// panics after `timeout` with what was seen.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&[String], &[String]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(&self.stdout, &self.stderr) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((false, l)) => self.stdout.push(l),
                Ok((true, l)) => self.stderr.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    if done(&self.stdout, &self.stderr) {
                        return;
                    }
                    panic!(
                        "{} ended before {what}:\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        self.command,
                        self.stdout.join("\n"),
                        self.stderr.join("\n")
                    );
                }
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not reach {what} within {timeout:?}:\n--- stdout ({} lines) ---\n{}\n--- stderr ---\n{}",
                    self.command,
                    self.stdout.len(),
                    self.stdout.iter().rev().take(20).cloned().collect::<Vec<_>>().join("\n"),
                    self.stderr.join("\n")
                );
            }
        }
    }

    /// Sends Ctrl-C (SIGINT) and waits for the run to end.
    pub fn interrupt(self) -> Outcome {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.finish()
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn terminate(self) -> Outcome {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.finish()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the run to end by itself.
    pub fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for sluice") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not finish within {RUN_TIMEOUT:?}", self.command);
            }
            thread::sleep(Duration::from_millis(20));
        };
        for (err, line) in self.lines.iter() {
            if err {
                self.stderr.push(line);
            } else {
                self.stdout.push(line);
            }
        }
        Outcome {
            command: std::mem::take(&mut self.command),
            status,
            stdout: self.stdout.join("\n") + "\n",
            stderr: self.stderr.join("\n") + "\n",
            metrics_json: self.metrics_json.take(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// How a `sluice` run ended.
pub struct Outcome {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    metrics_json: Option<PathBuf>,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "{}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "sluice failed:\n{}", self.describe());
        self.assert_no_panic()
    }

    /// A user error: non-zero exit, no panic.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success(),
            "sluice should have failed:\n{}",
            self.describe()
        );
        self.assert_no_panic()
    }

    fn assert_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "sluice panicked:\n{}",
            self.describe()
        );
        self
    }

    /// The single `error: ...` line of stderr.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one 'error: ' line on stderr:\n{}",
            self.describe()
        );
        lines[0]
    }

    /// The `--metrics-json` file written at the end of the run.
    pub fn metrics(&self) -> Metrics {
        let path = self
            .metrics_json
            .as_ref()
            .expect("run without --metrics-json");
        let text = fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "no metrics file {}: {e}\n{}",
                path.display(),
                self.describe()
            )
        });
        Metrics::parse(&text)
    }
}

/// The `--metrics-json` document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    pub records_read: u64,
    pub records_written: u64,
    pub late: u64,
    pub malformed: u64,
    pub null_event_time: u64,
    /// The process's peak resident memory.
    pub peak_rss_bytes: u64,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let doc: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("metrics file is not JSON ({e}): {text}"));
        let count = |pointer: &str| {
            doc.pointer(pointer)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("metrics file has no count at {pointer}: {text}"))
        };
        Metrics {
            records_read: count("/records_read"),
            records_written: count("/records_written"),
            late: count("/dropped/late"),
            malformed: count("/dropped/malformed"),
            null_event_time: count("/dropped/null_event_time"),
            peak_rss_bytes: count("/peak_rss_bytes"),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.late + self.malformed + self.null_event_time
    }
}
