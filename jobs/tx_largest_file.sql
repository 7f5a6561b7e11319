-- The three largest transactions of every minute and currency, over a JSON-lines file: a
-- window Top-N (ROW_NUMBER over a window table, filtered on the row number), emitted once
-- per minute when the watermark passes its end.
--
-- The input is made by Sluice's transaction generator, relative to the current directory:
--   mkdir -p data && cargo run -- datagen tx --events 1000000 data/tx.jsonl
-- Output: Parquet in out/tx_largest/, one row per minute, currency and rank (1 to 3).
--
-- Run: cargo run -- run jobs/tx_largest_file.sql

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

CREATE TABLE tx_largest (
  window_start TIMESTAMP(3),
  currency STRING,
  rank_in_minute BIGINT,
  tx_hash STRING,
  amount DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/tx_largest',
  'format' = 'parquet'
);

INSERT INTO tx_largest
SELECT window_start, currency, rownum, tx_hash, amount
FROM (
  SELECT *,
    ROW_NUMBER() OVER (PARTITION BY window_start, window_end, currency ORDER BY amount DESC) AS rownum
  FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
)
WHERE rownum <= 3;
