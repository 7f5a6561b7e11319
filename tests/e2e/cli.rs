//! The `sluice` command itself: `explain` shows the graph a job compiles to without running it.

use crate::common::{
    assert_wrote_nothing, bid_job, sluice, tumble_sum, write_job, JobDir, BID_ROWS, SUM_SINK,
};

#[test]
fn explain_prints_the_operator_graph_without_running_the_job() {
    let dir = JobDir::new();
    let input = dir.write("input.json", BID_ROWS);
    let template = bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES"));
    let job = write_job(
        dir.path(),
        &template,
        &[("{input}", &input), ("{output}", &dir.output())],
    );
    let outcome = sluice().arg("explain").arg(&job).output();
    outcome.assert_success();
    let graph = outcome.stdout.to_lowercase();
    // Connectors describe themselves as "<connector> <format> <path>".
    for part in [
        "filesystem",
        &input.display().to_string(),
        &dir.output().display().to_string(),
    ] {
        assert!(
            graph.contains(&part.to_lowercase()),
            "explain should show {part}:\n{graph}"
        );
    }
    assert!(
        graph.contains("tumble") || graph.contains("window"),
        "no window operator:\n{graph}"
    );
    assert_wrote_nothing(&dir.output());
}

#[test]
fn athena_ddl_prints_the_table_of_each_filesystem_sink() {
    let dir = JobDir::new();
    let job = dir.write(
        "job.sql",
        "CREATE TABLE tx (currency STRING, fee DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
CREATE TABLE metrics (window_start TIMESTAMP(3), currency STRING, tx_count BIGINT, dt STRING)
PARTITIONED BY (dt)
WITH ('connector' = 'filesystem', 'path' = 's3://lake/metrics/', 'format' = 'parquet');
INSERT INTO metrics
SELECT window_start, currency, COUNT(*), DATE_FORMAT(window_start, 'yyyy-MM-dd')
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;",
    );
    let outcome = sluice().arg("athena-ddl").arg(&job).output();
    outcome.assert_success();
    assert_eq!(
        outcome.stdout,
        "CREATE EXTERNAL TABLE IF NOT EXISTS `metrics` (
  `window_start` timestamp,
  `currency` string,
  `tx_count` bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://lake/metrics/';
-- then load the partitions written so far: MSCK REPAIR TABLE `metrics`;

"
    );
}
