//! `sluice server` for the tests: started on a free port with its own data folder, and
//! called over HTTP as any client would (raw requests, so malformed ones can be sent too).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{sluice, Running};

/// A running `sluice server`.
pub struct Server {
    pub running: Running,
    pub endpoint: String,
    token: Option<String>,
}

/// The `http://...` address a server printed in its "listening on" line.
pub fn listening_endpoint(running: &mut Running) -> String {
    running.wait_until(Duration::from_secs(60), "listening", |out, _| {
        out.iter().any(|l| l.contains("listening on http://"))
    });
    let line = running
        .stdout
        .iter()
        .find(|l| l.contains("listening on"))
        .expect("the listening line");
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .to_string()
}

/// An HTTP answer: status and body (JSON when it parses, else the text as a JSON string).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Server {
    /// `sluice server --data DATA` with `extra` arguments, on a free port.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data, extra, &[])
    }

    /// [`Server::start`] with environment variables set for the server process.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = sluice();
        for (key, value) in env {
            command = command.env(key, value);
        }
        let mut running = command
            .args(&["server", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .args(extra)
            .spawn();
        let endpoint = listening_endpoint(&mut running);
        let token = extra
            .iter()
            .position(|a| *a == "--auth-token")
            .map(|i| extra[i + 1].to_string());
        Server {
            running,
            endpoint,
            token,
        }
    }

    /// A request with the server's token (if it has one).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        request(
            method,
            &format!("{}{path}", self.endpoint),
            body,
            auth.as_deref(),
            Some("application/json"),
        )
    }

    /// Submits `sql` (named `file`) with settings; returns the job id (the answer must be 201).
    pub fn submit(&self, file: &str, sql: &str, set: &[(&str, &str)]) -> String {
        let set: serde_json::Map<String, Value> = set
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let body = serde_json::json!({"sql": sql, "file": file, "set": set}).to_string();
        let a = self.call("POST", "/v1/jobs", Some(&body));
        assert_eq!(a.status, 201, "submit answered {}: {}", a.status, a.text);
        a.body["id"].as_str().expect("a job id").to_string()
    }

    pub fn job(&self, id: &str) -> Value {
        let a = self.call("GET", &format!("/v1/jobs/{id}"), None);
        assert_eq!(a.status, 200, "{}", a.text);
        a.body
    }

    /// Waits until `ready` holds for the job's details; panics with them after `timeout`.
    pub fn wait_job(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id);
            if ready(&job) {
                return job;
            }
            if Instant::now() > deadline {
                panic!("job {id} did not reach {what} within {timeout:?}: {job:#}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the job to be in `state`.
    pub fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        self.wait_job(id, timeout, state, |j| j["state"] == state)
    }
}

/// One HTTP request; a connection failure panics.
pub fn request(
    method: &str,
    url: &str,
    body: Option<&str>,
    authorization: Option<&str>,
    content_type: Option<&str>,
) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let result = match method {
        "GET" | "DELETE" => {
            let mut r = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            if let Some(a) = authorization {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => {
            let mut r = agent.post(url);
            if let Some(a) = authorization {
                r = r.header("Authorization", a);
            }
            if let Some(t) = content_type {
                r = r.header("Content-Type", t);
            }
            match body {
                Some(b) => r.send(b.as_bytes()),
                None => r.send_empty(),
            }
        }
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Answer { status, body, text }
}
