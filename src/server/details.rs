//! The JSON the API answers with: a job in the list, and one job's details.
//!
//! Built from the registry record and the current run's live counters. Nothing here holds a
//! credential: the record keeps the SQL text and `SET` overrides (which never carry AWS
//! keys: those come from the standard AWS chain), and node names are what `explain` shows.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::registry::JobRecord;
use super::supervisor::{Attempt, JobHandle};
use crate::job::node_figures;
use crate::prometheus::JobSample;

fn iso(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |d| {
        Value::String(d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    })
}

fn state(record: &JobRecord) -> Value {
    json!(record.state.as_str())
}

/// A job as the list shows it.
pub fn summary(job: &JobHandle) -> Value {
    let r = job.record();
    let attempt = job.attempt();
    json!({
        "id": r.id,
        "name": r.name,
        "file": r.file,
        "state": state(&r),
        "submitted_at": iso(r.submitted_at_ms),
        "restarts": r.restarts,
        "records_read": attempt.as_ref().map(|a| a.metrics.records_read()),
        "records_written": attempt.as_ref().map(|a| a.metrics.records_written()),
        "last_error": r.last_error,
    })
}

/// One job with its graph, counters, checkpoints and drops.
pub fn details(job: &JobHandle) -> Value {
    let mut v = summary(job);
    let r = job.record();
    v["sql"] = json!(r.sql);
    v["set"] = json!(r
        .set
        .iter()
        .map(|(k, val)| json!({"key": k, "value": val}))
        .collect::<Vec<_>>());
    if let Some(a) = job.attempt() {
        v["run"] = run(&a);
    }
    v
}

fn run(a: &Attempt) -> Value {
    let m = &a.metrics;
    let nodes: Vec<Value> = a
        .graph
        .iter()
        .zip(node_figures(&a.graph, m))
        .map(|(n, fig)| {
            json!({
                "id": n.uid,
                "name": n.name,
                "parallelism": n.parallelism,
                "input": n.input.as_ref().map(|(from, edge)| json!({"id": from, "edge": edge})),
                "records_in": fig.records_in,
                "bytes_in": fig.bytes_in,
                "records_out": fig.records_out,
                "bytes_out": fig.bytes_out,
            })
        })
        .collect();
    let watermark = m.watermark().filter(|w| *w != i64::MIN);
    let now = chrono::Utc::now().timestamp_millis();
    let checkpoints: Vec<Value> = m
        .checkpoint_history()
        .iter()
        .rev()
        .map(|c| {
            json!({
                "id": c.id,
                "completed": c.failure.is_none(),
                "ended_at": iso(c.ended_at_ms),
                "duration_ms": c.duration.as_secs_f64() * 1e3,
                "size_bytes": c.bytes,
                "failure": c.failure,
            })
        })
        .collect();
    let figures = m.checkpoints();
    json!({
        "duration_ms": a.started.elapsed().as_millis() as u64,
        "checkpointing": a.checkpointing,
        "records_read": m.records_read(),
        "bytes_read": m.bytes_read.load(Ordering::Relaxed),
        "records_written": m.records_written(),
        "watermark": watermark.map(|w| if w == i64::MAX { json!("end of input") } else { iso(w) }),
        "event_time_lag_ms": watermark.filter(|w| *w != i64::MAX).map(|w| now - w),
        "graph": nodes,
        "sources": m.partitions().iter().map(|p| json!({
            "table": p.table,
            "partition": p.partition,
            "records": p.records,
            "bytes": p.bytes,
            "millis_behind_latest": p.millis_behind_latest,
            "throttles": p.throttles,
            "retries": p.retries,
        })).collect::<Vec<_>>(),
        "sinks": m.sinks().iter().map(|k| json!({
            "table": k.table,
            "records": k.records,
            "retries": k.retries,
            "throttles": k.throttles,
            "rejected": k.failures,
            "latency_p50_ms": k.p50.map(|d| d.as_secs_f64() * 1e3),
            "latency_p99_ms": k.p99.map(|d| d.as_secs_f64() * 1e3),
        })).collect::<Vec<_>>(),
        "checkpoints": {
            "completed": figures.completed,
            "failed": figures.failed,
            "recent": checkpoints,
        },
        "dropped": m.dropped().into_iter().map(|((table, reason), n)| json!({
            "table": table,
            "reason": reason.as_str(),
            "records": n,
        })).collect::<Vec<_>>(),
    })
}

/// The job as the metrics show it.
pub fn sample(job: &JobHandle) -> JobSample {
    let r = job.record();
    let attempt = job.attempt();
    JobSample {
        state: Some(r.state.as_str()),
        id: r.id,
        name: r.name,
        restarts: r.restarts,
        metrics: attempt.as_ref().map(|a| a.metrics.clone()),
        graph: attempt.map(|a| a.graph).unwrap_or_default(),
    }
}
