//! What a run reports: the progress line, the summary at the end, `--metrics-json`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_engine::metrics::{DropReason, JobMetrics};

pub fn format_watermark(w: Option<i64>) -> String {
    match w {
        None | Some(i64::MIN) => "-".into(),
        Some(i64::MAX) => "end of input".into(),
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        ),
    }
}

pub fn progress_line(m: &JobMetrics, elapsed: Duration) -> String {
    let read = m.records_read();
    let rate = read as f64 / elapsed.as_secs_f64().max(1e-3);
    let mut line = format!(
        "read {read} ({rate:.0}/s) · written {} · watermark {} · late {} · malformed {}",
        m.records_written(),
        format_watermark(m.watermark()),
        m.dropped_total(DropReason::Late),
        m.dropped_total(DropReason::Malformed),
    );
    let c = m.checkpoints();
    if c.completed > 0 {
        line.push_str(&format!(
            " · checkpoint {} ({} ms, {:.1} MB)",
            c.last_id,
            c.last_duration.as_millis(),
            c.last_bytes as f64 / 1e6
        ));
    }
    line
}

/// Peak resident memory of this process in bytes (Linux: VmHWM), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn summary(m: &JobMetrics, elapsed: Duration, failed: bool) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mut s = format!(
        "sluice: job {} after {:.2} s\n  records read        {} ({:.0}/s, {:.1} MB/s)\n  records written     {}\n  dropped late        {}\n  dropped malformed   {}\n  dropped null time   {}\n",
        if failed { "failed" } else { "finished" },
        elapsed.as_secs_f64(),
        m.records_read(),
        m.records_read() as f64 / seconds,
        m.bytes_read.load(Ordering::Relaxed) as f64 / seconds / 1e6,
        m.records_written(),
        m.dropped_total(DropReason::Late),
        m.dropped_total(DropReason::Malformed),
        m.dropped_total(DropReason::NullEventTime),
    );
    if let Some(peak) = peak_rss_bytes() {
        s.push_str(&format!(
            "  peak memory (RSS)   {:.1} MB\n",
            peak as f64 / 1e6
        ));
    }
    for ((table, reason), n) in m.dropped() {
        s.push_str(&format!("    {table}: {n} dropped ({})\n", reason.as_str()));
    }
    let c = m.checkpoints();
    if c.completed > 0 {
        s.push_str(&format!(
            "  checkpoints         {} (last: {} in {} ms, {:.2} MB; longest {} ms, largest {:.2} MB)\n",
            c.completed,
            c.last_id,
            c.last_duration.as_millis(),
            c.last_bytes as f64 / 1e6,
            c.max_duration.as_millis(),
            c.max_bytes as f64 / 1e6
        ));
    }
    if let Some((id, reason)) = &c.last_failure {
        s.push_str(&format!(
            "  checkpoints failed  {} (last: {id}, {reason})\n",
            c.failed
        ));
    }
    for k in m.sinks() {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        };
        s.push_str(&format!(
            "  sink {}: {} records put, {} retried, {} throttled, {} rejected, latency p50 {} p99 {}\n",
            k.table,
            k.records,
            k.retries,
            k.throttles,
            k.failures,
            ms(k.p50),
            ms(k.p99)
        ));
    }
    for p in m.partitions() {
        s.push_str(&format!(
            "  {} {}: {} records, {} bytes, {} ms behind latest, {} throttled, {} retried\n",
            p.table,
            p.partition,
            p.records,
            p.bytes,
            p.millis_behind_latest,
            p.throttles,
            p.retries
        ));
    }
    s
}

pub fn metrics_json(m: &JobMetrics, elapsed: Duration) -> String {
    let partitions: Vec<serde_json::Value> = m
        .partitions()
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "table": p.table,
                "partition": p.partition,
                "records": p.records,
                "bytes": p.bytes,
                "millis_behind_latest": p.millis_behind_latest,
                "throttles": p.throttles,
                "retries": p.retries,
            })
        })
        .collect();
    let sinks: Vec<serde_json::Value> = m
        .sinks()
        .into_iter()
        .map(|k| {
            let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
            serde_json::json!({
                "table": k.table,
                "records": k.records,
                "retries": k.retries,
                "throttles": k.throttles,
                "failures": k.failures,
                "latency_p50_ms": ms(k.p50),
                "latency_p99_ms": ms(k.p99),
            })
        })
        .collect();
    let json = serde_json::json!({
        "records_read": m.records_read(),
        "bytes_read": m.bytes_read.load(Ordering::Relaxed),
        "records_written": m.records_written(),
        "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "peak_rss_bytes": peak_rss_bytes().unwrap_or(0),
        "dropped": {
            "late": m.dropped_total(DropReason::Late),
            "malformed": m.dropped_total(DropReason::Malformed),
            "null_event_time": m.dropped_total(DropReason::NullEventTime),
            "rejected": m.dropped_total(DropReason::Rejected),
        },
        "partitions": partitions,
        "sinks": sinks,
        "checkpoints": {
            "completed": m.checkpoints().completed,
            "last_id": m.checkpoints().last_id,
            "last_ms": m.checkpoints().last_duration.as_secs_f64() * 1e3,
            "last_bytes": m.checkpoints().last_bytes,
            "max_ms": m.checkpoints().max_duration.as_secs_f64() * 1e3,
            "max_bytes": m.checkpoints().max_bytes,
            "failed": m.checkpoints().failed,
        },
    });
    format!("{json}\n")
}
