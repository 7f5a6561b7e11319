-- Per-minute transaction metrics enriched with a currency reference table kept as CSV on S3:
-- a lookup join. Every minute and currency the job counts the transactions and sums their
-- fees, as tx_metrics_file.sql does, then looks the currency up in the reference table
-- (code, name, decimals, USD price) to add its name and the fees' value in US dollars.
--
-- The reference table is read whole when the job starts and checked for changes every
-- minute ('lookup.full-cache.periodic-reload.interval'); a changed file (a new price list
-- uploaded) is read again and used from then on. A minute whose currency is missing from
-- the table is still written, with NULL name and value (a LEFT join).
--
-- Input, relative to the current directory:
--   mkdir -p data && cargo run -- datagen tx --events 1000000 data/tx.jsonl
-- The reference table, jobs/reference/currencies.csv uploaded to S3 (see jobs/README.md), or
-- any folder or file: CURRENCIES_PATH=jobs/reference/currencies.csv reads it locally.
-- Output: Parquet in out/tx_metrics_enriched/.
--
-- Run: cargo run -- run jobs/tx_metrics_enriched.sql

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

CREATE TABLE currencies (
  code STRING,
  name STRING,
  decimals INT,
  usd_price DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = '${CURRENCIES_PATH:-s3://sluice-demo/reference/currencies/}',
  'format' = 'csv',
  'lookup.full-cache.periodic-reload.interval' = '1 min'
);

CREATE TABLE tx_metrics_enriched (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  currency STRING,
  currency_name STRING,
  tx_count BIGINT,
  total_fee DOUBLE,
  total_fee_usd DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/tx_metrics_enriched',
  'format' = 'parquet'
);

-- The per-minute metrics, with the time each row is processed: the time of the lookup.
CREATE VIEW minute_metrics AS
SELECT window_start, window_end, currency, COUNT(*) AS tx_count, SUM(fee) AS total_fee,
       PROCTIME() AS proc_time
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;

INSERT INTO tx_metrics_enriched
SELECT m.window_start, m.window_end, m.currency, c.name, m.tx_count, m.total_fee,
       m.total_fee * c.usd_price
FROM minute_metrics AS m
LEFT JOIN currencies FOR SYSTEM_TIME AS OF m.proc_time AS c
  ON m.currency = c.code;
