//! Job metrics in the Prometheus text exposition format, for the server's `/metrics` and
//! `sluice run --metrics-listen`.
//!
//! Every scrape reads the jobs' live counters (plain atomics) and encodes them with the
//! `prometheus-client` crate. The metrics are listed, once, in `docs/metrics.md`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sluice_engine::metrics::{DropReason, JobMetrics};
use sluice_engine::{Error, Result};

use crate::job::{node_figures, NodeView};

/// The content type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the sink request latency histogram.
const LATENCY_BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

/// One job as the metrics show it.
#[derive(Debug, Clone)]
pub struct JobSample {
    pub id: String,
    pub name: String,
    /// The server's state of the job (None for `sluice run`).
    pub state: Option<&'static str>,
    pub restarts: u64,
    /// The counters of its current (or last) run, if it has started.
    pub metrics: Option<Arc<JobMetrics>>,
    pub graph: Vec<NodeView>,
}

/// The metrics of `jobs` in the text format.
pub fn render(jobs: Vec<JobSample>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Jobs(jobs)));
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

/// The metrics endpoint of `sluice run --metrics-listen`; it stops when dropped.
pub struct Exporter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `job`'s metrics at `http://listen/metrics` until the returned value is dropped.
pub fn serve_one(listen: SocketAddr, job: JobSample) -> Result<Exporter> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, bound) = std::sync::mpsc::channel::<Result<SocketAddr>>();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let job = job.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(vec![job])) }
        }),
    );
    let failed = ready.clone();
    let thread = std::thread::Builder::new()
        .name("metrics endpoint".into())
        .spawn(move || {
            let result = sluice_connectors::http::serve(
                router,
                listen,
                "the metrics endpoint",
                |addr| {
                    let _ = ready.send(Ok(addr));
                },
                async move {
                    let _ = stopped.await;
                },
            );
            if let Err(e) = result {
                let _ = failed.send(Err(e));
            }
        })
        .map_err(|e| Error::internal(format!("cannot start a thread: {e}")))?;
    let addr = bound
        .recv()
        .map_err(|_| Error::internal("the metrics endpoint ended before it started"))??;
    eprintln!("sluice: metrics at http://{addr}/metrics");
    Ok(Exporter {
        stop: Some(stop),
        thread: Some(thread),
    })
}

#[derive(Debug)]
struct Jobs(Vec<JobSample>);

type Labels = Vec<(String, String)>;

/// One sample of a family.
enum Value {
    Counter(u64),
    Gauge(f64),
    /// Cumulative counts at [`LATENCY_BOUNDS_MS`], the sum in seconds, the count.
    Histogram(Vec<u64>, f64, u64),
}

/// The samples of every family, in the order they are encoded.
#[derive(Default)]
struct Families(Vec<Family>);

struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

impl Families {
    fn add(&mut self, name: &'static str, help: &'static str, kind: MetricType) -> usize {
        self.0.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.0.len() - 1
    }

    fn push(&mut self, family: usize, labels: Labels, value: Value) {
        self.0[family].samples.push((labels, value));
    }
}

fn labels(job: &JobSample, more: &[(&str, &str)]) -> Labels {
    let mut l = vec![
        ("job_id".to_string(), job.id.clone()),
        ("job_name".to_string(), job.name.clone()),
    ];
    l.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l
}

fn collect(jobs: &[JobSample]) -> Families {
    let mut f = Families::default();
    use MetricType::{Counter, Gauge, Histogram};
    let state = f.add("sluice_job_state", "1 for the state the job is in.", Gauge);
    let restarts = f.add("sluice_job_restarts", "Restarts after failures.", Counter);
    let read = f.add(
        "sluice_job_records_read",
        "Records the job's sources read (after decoding, before any drop).",
        Counter,
    );
    let bytes = f.add(
        "sluice_job_read_bytes",
        "Bytes the job's sources read.",
        Counter,
    );
    let written = f.add(
        "sluice_job_records_written",
        "Records the job's sinks wrote.",
        Counter,
    );
    let op_in = f.add(
        "sluice_operator_records_in",
        "Records an operator received (over all its instances).",
        Counter,
    );
    let op_out = f.add(
        "sluice_operator_records_out",
        "Records an operator emitted (over all its instances).",
        Counter,
    );
    let op_bytes_in = f.add(
        "sluice_operator_in_bytes",
        "Arrow bytes (in memory) of the records an operator received.",
        Counter,
    );
    let op_bytes_out = f.add(
        "sluice_operator_out_bytes",
        "Arrow bytes (in memory) of the records an operator emitted.",
        Counter,
    );
    let dropped = f.add(
        "sluice_records_dropped",
        "Records dropped, by table and reason.",
        Counter,
    );
    let watermark = f.add(
        "sluice_watermark_seconds",
        "The job's lowest operator watermark, in seconds since the Unix epoch.",
        Gauge,
    );
    let lag = f.add(
        "sluice_event_time_lag_seconds",
        "How far the watermark is behind the wall clock.",
        Gauge,
    );
    let checkpoints = f.add("sluice_checkpoints", "Checkpoints completed.", Counter);
    let checkpoint_failures = f.add(
        "sluice_checkpoint_failures",
        "Checkpoints abandoned (not complete within execution.checkpointing.timeout).",
        Counter,
    );
    let checkpoint_duration = f.add(
        "sluice_checkpoint_last_duration_seconds",
        "Duration of the newest completed checkpoint, trigger to commit.",
        Gauge,
    );
    let checkpoint_size = f.add(
        "sluice_checkpoint_last_size_bytes",
        "Size of the newest completed checkpoint.",
        Gauge,
    );
    let p_records = f.add(
        "sluice_source_partition_records",
        "Records read from one source partition (a Kinesis shard).",
        Counter,
    );
    let p_bytes = f.add(
        "sluice_source_partition_read_bytes",
        "Bytes read from one source partition.",
        Counter,
    );
    let p_behind = f.add(
        "sluice_source_partition_behind_latest_seconds",
        "How far the reader of a partition is behind its newest record (Kinesis MillisBehindLatest).",
        Gauge,
    );
    let p_throttles = f.add(
        "sluice_source_partition_throttles",
        "Read calls the service refused for its rate limits.",
        Counter,
    );
    let p_retries = f.add(
        "sluice_source_partition_retries",
        "Read calls retried.",
        Counter,
    );
    let s_records = f.add(
        "sluice_sink_records",
        "Records a service sink's service accepted.",
        Counter,
    );
    let s_retries = f.add("sluice_sink_retries", "Sink calls retried.", Counter);
    let s_throttles = f.add(
        "sluice_sink_throttles",
        "Sink calls the service refused for its rate limits.",
        Counter,
    );
    let s_rejected = f.add(
        "sluice_sink_rejected",
        "Records the sink's service rejected for good.",
        Counter,
    );
    let s_latency = f.add(
        "sluice_sink_request_duration_seconds",
        "Latency of successful sink calls.",
        Histogram,
    );
    let now = chrono::Utc::now().timestamp_millis();
    let bounds: Vec<Duration> = LATENCY_BOUNDS_MS
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    for job in jobs {
        if let Some(s) = job.state {
            f.push(state, labels(job, &[("state", s)]), Value::Gauge(1.0));
        }
        f.push(restarts, labels(job, &[]), Value::Counter(job.restarts));
        let Some(m) = &job.metrics else {
            continue;
        };
        f.push(read, labels(job, &[]), Value::Counter(m.records_read()));
        f.push(
            bytes,
            labels(job, &[]),
            Value::Counter(m.bytes_read.load(Ordering::Relaxed)),
        );
        f.push(
            written,
            labels(job, &[]),
            Value::Counter(m.records_written()),
        );
        for (node, fig) in job.graph.iter().zip(node_figures(&job.graph, m)) {
            let l = labels(
                job,
                &[("operator", &node.uid), ("operator_name", &node.name)],
            );
            if let (Some(records), Some(bytes)) = (fig.records_in, fig.bytes_in) {
                f.push(op_in, l.clone(), Value::Counter(records));
                f.push(op_bytes_in, l.clone(), Value::Counter(bytes));
            }
            f.push(op_out, l.clone(), Value::Counter(fig.records_out));
            f.push(op_bytes_out, l, Value::Counter(fig.bytes_out));
        }
        for ((table, reason), n) in m.dropped() {
            let l = labels(job, &[("table", &table), ("reason", reason_label(reason))]);
            f.push(dropped, l, Value::Counter(n));
        }
        if let Some(w) = m.watermark().filter(|w| *w != i64::MIN && *w != i64::MAX) {
            f.push(watermark, labels(job, &[]), Value::Gauge(w as f64 / 1e3));
            f.push(lag, labels(job, &[]), Value::Gauge((now - w) as f64 / 1e3));
        }
        let c = m.checkpoints();
        f.push(checkpoints, labels(job, &[]), Value::Counter(c.completed));
        f.push(
            checkpoint_failures,
            labels(job, &[]),
            Value::Counter(c.failed),
        );
        if c.completed > 0 {
            let d = c.last_duration.as_secs_f64();
            f.push(checkpoint_duration, labels(job, &[]), Value::Gauge(d));
            let b = c.last_bytes as f64;
            f.push(checkpoint_size, labels(job, &[]), Value::Gauge(b));
        }
        for p in m.partitions() {
            let l = labels(job, &[("table", &p.table), ("partition", &p.partition)]);
            f.push(p_records, l.clone(), Value::Counter(p.records));
            f.push(p_bytes, l.clone(), Value::Counter(p.bytes));
            let behind = p.millis_behind_latest as f64 / 1e3;
            f.push(p_behind, l.clone(), Value::Gauge(behind));
            f.push(p_throttles, l.clone(), Value::Counter(p.throttles));
            f.push(p_retries, l, Value::Counter(p.retries));
        }
        for (table, sink) in m.sink_metrics() {
            let l = labels(job, &[("table", &table)]);
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            f.push(s_records, l.clone(), Value::Counter(load(&sink.records)));
            f.push(s_retries, l.clone(), Value::Counter(load(&sink.retries)));
            f.push(
                s_throttles,
                l.clone(),
                Value::Counter(load(&sink.throttles)),
            );
            f.push(s_rejected, l.clone(), Value::Counter(load(&sink.failures)));
            let (counts, sum, count) = sink.latency_buckets(&bounds);
            f.push(
                s_latency,
                l,
                Value::Histogram(counts, sum.as_secs_f64(), count),
            );
        }
    }
    f
}

/// A drop reason as a label value: one word, as Prometheus labels usually are.
fn reason_label(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Malformed => "malformed",
        DropReason::Late => "late",
        DropReason::NullEventTime => "null_event_time",
        DropReason::Rejected => "rejected",
    }
}

impl Collector for Jobs {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in collect(&self.0).0 {
            if f.samples.is_empty() {
                continue;
            }
            let mut family = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            for (labels, value) in f.samples {
                let sample = family.encode_family(&labels)?;
                match value {
                    Value::Counter(n) => ConstCounter::new(n).encode(sample)?,
                    Value::Gauge(x) => ConstGauge::new(x).encode(sample)?,
                    Value::Histogram(cumulative, sum, count) => {
                        let mut sample = sample;
                        let mut buckets = Vec::with_capacity(cumulative.len() + 1);
                        let mut below = 0;
                        for (bound, n) in LATENCY_BOUNDS_MS.iter().zip(&cumulative) {
                            buckets.push((*bound as f64 / 1e3, n.saturating_sub(below)));
                            below = *n;
                        }
                        buckets.push((f64::INFINITY, count.saturating_sub(below)));
                        sample.encode_histogram::<Labels>(sum, count, &buckets, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_a_job_are_exposed_with_its_labels() {
        let m = Arc::new(JobMetrics::new());
        m.add_read(10, 300);
        m.add_written(4);
        m.add_dropped("tx", DropReason::Late, 2);
        m.operator("src").records.fetch_add(10, Ordering::Relaxed);
        m.sink("fs").add_latency(Duration::from_millis(3));
        let text = render(vec![JobSample {
            id: "abc".into(),
            name: "demo".into(),
            state: Some("RUNNING"),
            restarts: 1,
            metrics: Some(m),
            graph: vec![
                NodeView {
                    uid: "src".into(),
                    name: "source tx".into(),
                    parallelism: 1,
                    input: None,
                },
                NodeView {
                    uid: "agg".into(),
                    name: "window".into(),
                    parallelism: 1,
                    input: Some(("src".into(), "hash")),
                },
            ],
        }]);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        has(r#"sluice_job_state{job_id="abc",job_name="demo",state="RUNNING"} 1.0"#);
        has(r#"sluice_job_records_read_total{job_id="abc",job_name="demo"} 10"#);
        has(r#"sluice_job_read_bytes_total{job_id="abc",job_name="demo"} 300"#);
        has(
            r#"sluice_records_dropped_total{job_id="abc",job_name="demo",table="tx",reason="late"} 2"#,
        );
        has(
            r#"sluice_operator_records_in_total{job_id="abc",job_name="demo",operator="agg",operator_name="window"} 10"#,
        );
        has(
            r#"sluice_sink_request_duration_seconds_bucket{le="0.005",job_id="abc",job_name="demo",table="fs"} 1"#,
        );
        has(
            r#"sluice_sink_request_duration_seconds_bucket{le="0.002",job_id="abc",job_name="demo",table="fs"} 0"#,
        );
        has("# TYPE sluice_job_restarts counter");
    }
}
