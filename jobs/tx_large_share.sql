-- Per minute and currency, all transactions next to the large ones (amount of 4.5 or
-- more), over a JSON-lines file: a window join of two window aggregates on window_start,
-- window_end and currency. A LEFT join keeps the minutes without any large transaction (their
-- large_count is NULL). Each minute's rows are emitted once, when the watermark passes its
-- end.
--
-- The input is made by Sluice's transaction generator, relative to the current directory:
--   mkdir -p data && cargo run -- datagen tx --events 1000000 data/tx.jsonl
-- Output: Parquet in out/tx_large_share/, one row per minute and currency.
--
-- Run: cargo run -- run jobs/tx_large_share.sql

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

CREATE TABLE tx_large_share (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  currency STRING,
  tx_count BIGINT,
  large_count BIGINT,
  large_amount DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/tx_large_share',
  'format' = 'parquet'
);

CREATE VIEW all_tx AS
SELECT window_start, window_end, currency, COUNT(*) AS tx_count
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;

CREATE VIEW large_tx AS
SELECT window_start, window_end, currency, COUNT(*) AS large_count, SUM(amount) AS large_amount
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
WHERE amount >= 4.5
GROUP BY window_start, window_end, currency;

INSERT INTO tx_large_share
SELECT a.window_start, a.window_end, a.currency, a.tx_count, l.large_count, l.large_amount
FROM all_tx AS a
LEFT JOIN large_tx AS l
  ON a.window_start = l.window_start AND a.window_end = l.window_end
 AND a.currency = l.currency;
