-- Whale transactions (amount of 4.99 or more) followed within 10 seconds by another whale
-- transaction of the same currency, over a JSON-lines file: an interval join of the stream
-- with itself on the currency, with bounds on the two rowtimes. A pair is emitted as soon as
-- its second transaction arrives; a transaction is forgotten once the watermark shows that
-- no partner can still come.
--
-- The input is made by Sluice's transaction generator, relative to the current directory:
--   mkdir -p data && cargo run -- datagen tx --events 1000000 data/tx.jsonl
-- Output: Parquet in out/tx_whale_followups/, one row per pair.
--
-- Run: cargo run -- run jobs/tx_whale_followups.sql

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

CREATE TABLE tx_whale_followups (
  currency STRING,
  first_hash STRING,
  first_time TIMESTAMP_LTZ(3),
  first_amount DOUBLE,
  next_hash STRING,
  next_time TIMESTAMP_LTZ(3),
  next_amount DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/tx_whale_followups',
  'format' = 'parquet'
);

CREATE VIEW whales AS
SELECT tx_hash, currency, amount, ts FROM tx WHERE amount >= 4.99;

INSERT INTO tx_whale_followups
SELECT a.currency, a.tx_hash, a.ts, a.amount, b.tx_hash, b.ts, b.amount
FROM whales AS a
JOIN whales AS b
  ON a.currency = b.currency
 AND b.ts > a.ts AND b.ts <= a.ts + INTERVAL '10' SECOND;
