-- Fraud features per card, at every card transaction: how many transactions the card made
-- in the 10 minutes up to and including this one, their average and their largest amount.
-- A fraud model reads them online at authorisation time and trains on their history.
--
-- The input is JSON lines from `sluice datagen cards` (card_id, amount, merchant,
-- event_time in epoch milliseconds), out of order by up to 2 s, within the 5 s watermark
-- delay. Every transaction gives one feature row, emitted once the watermark has passed its
-- time (an OVER aggregation over event time, as Flink runs it):
--   - as Parquet in out/card_features/ (relative to the current directory), for training;
--   - into the feature group card-features of a local feature store in out/featurestore/
--     (created on the first run), whose online store keeps each card's latest features.
--
-- Run: cargo run -- datagen cards --events 200000 data/cards.jsonl
--      cargo run -- run jobs/fraud_features.sql
-- Then: cargo run -- featurestore get card-features card-000042

CREATE TABLE card_tx (
  card_id STRING,
  amount DOUBLE,
  merchant STRING,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'data/cards.jsonl',
  'format' = 'json'
);

CREATE TABLE card_features_history (
  card_id STRING,
  event_time BIGINT,
  amount DOUBLE,
  merchant STRING,
  tx_count_10m BIGINT,
  avg_amount_10m DOUBLE,
  max_amount_10m DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/card_features',
  'format' = 'parquet'
);

-- 'local:DIR' writes straight into a local feature store folder; against SageMaker
-- Feature Store, drop 'aws.endpoint' and set 'aws.region'.
CREATE TABLE card_features_online (
  card_id STRING,
  tx_time TIMESTAMP(3),
  tx_count_10m BIGINT,
  avg_amount_10m DOUBLE,
  max_amount_10m DOUBLE
) WITH (
  'connector' = 'sagemaker-featurestore',
  'feature-group.name' = 'card-features',
  'aws.endpoint' = 'local:out/featurestore',
  'record-identifier' = 'card_id',
  'event-time' = 'tx_time'
);

CREATE TEMPORARY VIEW card_windows AS
SELECT card_id, event_time, ts, amount, merchant,
       COUNT(*) OVER w AS tx_count_10m,
       AVG(amount) OVER w AS avg_amount_10m,
       MAX(amount) OVER w AS max_amount_10m
FROM card_tx
WINDOW w AS (
  PARTITION BY card_id
  ORDER BY ts
  RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW
);

INSERT INTO card_features_history
SELECT card_id, event_time, amount, merchant, tx_count_10m, avg_amount_10m, max_amount_10m
FROM card_windows;

INSERT INTO card_features_online
SELECT card_id, CAST(ts AS TIMESTAMP(3)), tx_count_10m, avg_amount_10m, max_amount_10m
FROM card_windows;
