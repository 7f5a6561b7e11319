//! State that stays bounded on an endless stream: the interval join frees rows once the
//! watermark passes their interval, and the deduplication with `table.exec.state.ttl`
//! forgets keys. Each job runs over 1,000,000 and then 5,000,000 generated events; the
//! process's peak memory must not grow with the number of events (it would by hundreds of
//! megabytes if every row or key were kept, as the control run without TTL shows).

use crate::common::*;

/// Runs `query` over `events` rows of `ticks` (a sequence `id`, one per millisecond of
/// event time, key `k`) into a blackhole, and returns the run's metrics.
fn run(events: u64, keys: &str, settings: &str, query: &str) -> Metrics {
    let dir = JobDir::new();
    let job = format!(
        "{settings}
         CREATE TABLE ticks (id BIGINT, k AS {keys}, ts AS TO_TIMESTAMP_LTZ(id, 3),
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'datagen', 'rows-per-second' = '1000000000',
               'number-of-rows' = '{events}', 'fields.id.kind' = 'sequence',
               'fields.id.start' = '1', 'fields.id.end' = '{events}');
         CREATE TABLE out (a BIGINT, b BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO out {query};"
    );
    let job = dir.write("job.sql", &job);
    // One instance: the generator splits the sequence between instances into ranges, and
    // the watermark (the slowest instance's) would hold every other instance's rows.
    let outcome = sluice_run(&job)
        .set("parallelism.default", "1")
        .metrics_json(&dir.path().join("metrics.json"))
        .output();
    outcome.assert_success();
    let metrics = outcome.metrics();
    assert_eq!(metrics.records_read, events);
    metrics
}

/// Peak memory in MB.
fn mb(m: &Metrics) -> f64 {
    m.peak_rss_bytes as f64 / 1e6
}

/// The run over 5M events used at most a little more memory than the run over 1M.
fn assert_flat(small: &Metrics, large: &Metrics, what: &str) {
    assert!(
        mb(large) <= mb(small) * 1.25 + 16.0,
        "{what}: peak memory grew from {:.0} MB at 1M events to {:.0} MB at 5M",
        mb(small),
        mb(large)
    );
}

#[test]
fn an_interval_join_s_memory_is_flat_from_1m_to_5m_events() {
    // Each row meets the rows of its key in the next 2 s: three per row.
    let query = "SELECT a.id, b.id FROM ticks a JOIN ticks b
                 ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '2' SECOND";
    let small = run(1_000_000, "id % 1000", "", query);
    let large = run(5_000_000, "id % 1000", "", query);
    assert_eq!(small.records_written, 3 * 1_000_000 - 3_000);
    assert_eq!(large.records_written, 3 * 5_000_000 - 3_000);
    assert_flat(&small, &large, "interval join");
}

#[test]
fn a_deduplication_with_state_ttl_has_flat_memory_from_1m_to_5m_keys() {
    // Every key is new: without a TTL each one would be kept for ever.
    let query = "SELECT id, rownum FROM (
                   SELECT id, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rownum
                   FROM ticks) WHERE rownum = 1";
    let ttl = "SET 'table.exec.state.ttl' = '300 ms';";
    let small = run(1_000_000, "id", ttl, query);
    let large = run(5_000_000, "id", ttl, query);
    assert_eq!(large.records_written, 5_000_000);
    assert_flat(&small, &large, "deduplication with TTL");
    // The control: without the TTL the same job keeps every key, and its memory grows.
    let unbounded = run(5_000_000, "id", "", query);
    assert!(
        mb(&unbounded) > mb(&large) + 200.0,
        "without a TTL 5M keys took {:.0} MB, with one {:.0} MB",
        mb(&unbounded),
        mb(&large)
    );
}
