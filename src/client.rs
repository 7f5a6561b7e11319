//! The commands that talk to a running `sluice server`: submit, list, status, stop, resume
//! and delete. Output is for people unless `--json` asks for the server's JSON.

use std::path::PathBuf;

use serde_json::{json, Value};
use sluice_engine::{Error, Result};

/// Where the server is and how to talk to it.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// The server's address.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8081")]
    server: String,
    /// The server's auth token, if it has one.
    #[arg(long, env = "SLUICE_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Print the server's JSON answer instead of text for people.
    #[arg(long)]
    json: bool,
}

/// What to ask the server.
pub enum Request {
    Submit {
        job: PathBuf,
        set: Vec<(String, String)>,
        name: Option<String>,
    },
    List,
    Status(String),
    Stop {
        id: String,
        savepoint: bool,
    },
    Resume(String),
    Delete(String),
}

pub fn call(connection: &Connection, request: Request) -> Result<()> {
    let (method, path, body) = match &request {
        Request::Submit { job, set, name } => {
            let sql = std::fs::read_to_string(job).map_err(|e| {
                Error::config(format!("cannot read job file {}: {e}", job.display()))
            })?;
            let set: serde_json::Map<String, Value> =
                set.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let mut body = json!({"sql": sql, "file": job.display().to_string(), "set": set});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            ("POST", "/v1/jobs".to_string(), Some(body))
        }
        Request::List => ("GET", "/v1/jobs".into(), None),
        Request::Status(id) => ("GET", format!("/v1/jobs/{id}"), None),
        Request::Stop { id, savepoint } => (
            "POST",
            format!("/v1/jobs/{id}/stop"),
            Some(json!({"savepoint": savepoint})),
        ),
        Request::Resume(id) => ("POST", format!("/v1/jobs/{id}/resume"), None),
        Request::Delete(id) => ("DELETE", format!("/v1/jobs/{id}"), None),
    };
    let answer = send(connection, method, &path, body)?;
    if connection.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    match request {
        Request::Submit { .. } => println!(
            "submitted job {} ({}): {}",
            text(&answer["id"]),
            text(&answer["name"]),
            text(&answer["state"])
        ),
        Request::List => print!("{}", job_table(&answer)),
        Request::Status(_) => print!("{}", status(&answer)),
        Request::Stop { id, savepoint } => println!(
            "job {id}: stopping{}",
            if savepoint { " with a savepoint" } else { "" }
        ),
        Request::Resume(id) => println!("job {id}: resumed"),
        Request::Delete(id) => println!("job {id}: deleted"),
    }
    Ok(())
}

fn send(connection: &Connection, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let url = format!("{}{path}", connection.server.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let authorization = connection
        .auth_token
        .as_ref()
        .map(|t| format!("Bearer {t}"));
    let unreachable = |e: ureq::Error| {
        Error::connector(format!(
            "cannot reach the Sluice server at {} ({e}); start one with `sluice server` or \
             give its address with --server or SLUICE_SERVER",
            connection.server
        ))
    };
    let response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = &authorization {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(a) = &authorization {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (_, body) => {
            let mut r = agent.post(&url);
            if let Some(a) = &authorization {
                r = r.header("Authorization", a);
            }
            match body {
                Some(b) => r.send_json(b),
                None => r.send_empty(),
            }
        }
    };
    let mut response = response.map_err(unreachable)?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(unreachable)?;
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|_| {
            Error::connector(format!(
                "{} answered {status} with something other than JSON: is it a Sluice server?",
                connection.server
            ))
        })?
    };
    if status.is_success() {
        return Ok(value);
    }
    let message = value["error"]
        .as_str()
        .unwrap_or("no reason given")
        .to_string();
    Err(if status.as_u16() == 400 {
        Error::plan(message)
    } else if status.is_client_error() {
        Error::config(message)
    } else {
        Error::connector(format!("the server failed: {message}"))
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn job_table(answer: &Value) -> String {
    let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    let mut out = format!(
        "{:<32}  {:<10}  {:>12}  {:>12}  {}\n",
        "ID", "STATE", "READ", "WRITTEN", "NAME"
    );
    for j in jobs {
        out.push_str(&format!(
            "{:<32}  {:<10}  {:>12}  {:>12}  {}\n",
            text(&j["id"]),
            text(&j["state"]),
            text(&j["records_read"]),
            text(&j["records_written"]),
            text(&j["name"])
        ));
    }
    out
}

fn status(j: &Value) -> String {
    let run = &j["run"];
    let mut out = format!(
        "job {} ({})\n  state            {}\n  submitted        {}\n  restarts         {}\n",
        text(&j["id"]),
        text(&j["name"]),
        text(&j["state"]),
        text(&j["submitted_at"]),
        text(&j["restarts"]),
    );
    if !run.is_null() {
        out.push_str(&format!(
            "  records read     {}\n  records written  {}\n  watermark        {}\n",
            text(&run["records_read"]),
            text(&run["records_written"]),
            text(&run["watermark"]),
        ));
        for d in run["dropped"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  dropped          {}: {} ({})\n",
                text(&d["table"]),
                text(&d["records"]),
                text(&d["reason"])
            ));
        }
        let c = &run["checkpoints"];
        out.push_str(&format!(
            "  checkpoints      {} completed, {} failed\n",
            text(&c["completed"]),
            text(&c["failed"])
        ));
        out.push_str("  operators\n");
        for n in run["graph"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    {} (parallelism {}): in {}, out {}\n",
                text(&n["name"]),
                text(&n["parallelism"]),
                text(&n["records_in"]),
                text(&n["records_out"])
            ));
        }
    }
    if !j["last_error"].is_null() {
        out.push_str(&format!("  last error       {}\n", text(&j["last_error"])));
    }
    out
}
