-- Per-minute blockchain transaction metrics over a JSON-lines file, the same query as
-- tx_metrics_local.sql (and as benches/flink/tumble_metrics.py runs on Flink).
--
-- The input is made by Sluice's transaction generator, relative to the current directory:
--   mkdir -p data && cargo run -- datagen tx --events 1000000 data/tx.jsonl
-- Each line: tx_hash, block, fee, amount, currency, event_time (epoch milliseconds), up to
-- 2 s out of order. Output: Parquet in out/tx_metrics_file/.
--
-- Run: cargo run -- run jobs/tx_metrics_file.sql

CREATE TABLE tx (
  tx_hash STRING,
  block BIGINT,
  fee DOUBLE,
  amount DOUBLE,
  currency STRING,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'data/tx.jsonl',
  'format' = 'json'
);

CREATE TABLE tx_metrics (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  currency STRING,
  tx_count BIGINT,
  total_fee DOUBLE,
  avg_fee DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/tx_metrics_file',
  'format' = 'parquet'
);

INSERT INTO tx_metrics
SELECT window_start, window_end, currency, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;
