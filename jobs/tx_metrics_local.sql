-- Per-minute blockchain transaction metrics, entirely local: no input files, no AWS.
--
-- A datagen source makes 200,000 transactions (hash, fee, amount, currency) at 100,000 per
-- second. Event time comes from a sequence: one transaction every 5 ms of event time from
-- 2023-11-14 22:13:20 UTC, each shifted back by up to 2 s of random delay, so the stream is
-- out of order the way Kinesis data is -- but never by more than the 5 s watermark delay,
-- so no transaction is late. For every 1-minute tumbling window and currency the job writes
-- the number of transactions, the total fee and the average fee as Parquet into
-- out/tx_metrics/ (relative to the current directory), and puts them into the feature group
-- tx-metrics of a local feature store in out/featurestore/ (created on first run): the
-- online store keeps each currency's latest minute, the offline store every minute.
--
-- Run: cargo run -- run jobs/tx_metrics_local.sql
-- Then: cargo run -- featurestore get tx-metrics BTC

CREATE TABLE tx (
  tx_hash STRING,
  fee DOUBLE,
  amount DOUBLE,
  seq BIGINT,
  delay_ms INT,
  currency AS CASE MOD(seq, 4) WHEN 0 THEN 'BTC' WHEN 1 THEN 'ETH' WHEN 2 THEN 'SOL' ELSE 'ADA' END,
  event_time AS 1700000000000 + seq * 5 - delay_ms,
  ts AS TO_TIMESTAMP_LTZ(1700000000000 + seq * 5 - delay_ms, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '200000',
  'rows-per-second' = '100000',
  'fields.tx_hash.length' = '64',
  'fields.fee.min' = '0',
  'fields.fee.max' = '0.001',
  'fields.amount.min' = '0',
  'fields.amount.max' = '5',
  'fields.seq.kind' = 'sequence',
  'fields.seq.start' = '1',
  'fields.seq.end' = '200000',
  'fields.delay_ms.min' = '0',
  'fields.delay_ms.max' = '2000'
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
  'path' = 'out/tx_metrics',
  'format' = 'parquet'
);

-- The same metrics as features. 'local:DIR' writes straight into a local feature store
-- folder; against SageMaker Feature Store, drop 'aws.endpoint' and set 'aws.region'.
CREATE TABLE tx_features (
  currency STRING,
  window_end TIMESTAMP(3),
  tx_count BIGINT,
  total_fee DOUBLE,
  avg_fee DOUBLE
) WITH (
  'connector' = 'sagemaker-featurestore',
  'feature-group.name' = 'tx-metrics',
  'aws.endpoint' = 'local:out/featurestore',
  'record-identifier' = 'currency',
  'event-time' = 'window_end'
);

CREATE TEMPORARY VIEW per_minute AS
SELECT window_start, window_end, currency,
       COUNT(*) AS tx_count, SUM(fee) AS total_fee, AVG(fee) AS avg_fee
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;

INSERT INTO tx_metrics SELECT * FROM per_minute;

INSERT INTO tx_features SELECT currency, window_end, tx_count, total_fee, avg_fee FROM per_minute;
