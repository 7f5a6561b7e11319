-- The first transaction of every block and currency, over a JSON-lines file: a
-- deduplication (ROW_NUMBER per key ordered by the time attribute, keeping row 1). Each
-- key's earliest transaction is emitted once the watermark passes its time; the later ones
-- of the key are duplicates and are not emitted. 'table.exec.state.ttl' forgets a key an
-- hour after it was last written, so the state stays bounded on an endless stream.
--
-- The input is made by Sluice's transaction generator, relative to the current directory:
--   mkdir -p data && cargo run -- datagen tx --events 1000000 data/tx.jsonl
-- Output: Parquet in out/tx_first_in_block/, one row per block and currency.
--
-- Run: cargo run -- run jobs/tx_first_in_block.sql

SET 'table.exec.state.ttl' = '1 h';

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

CREATE TABLE tx_first_in_block (
  block BIGINT,
  currency STRING,
  tx_hash STRING,
  amount DOUBLE,
  tx_time TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'filesystem',
  'path' = 'out/tx_first_in_block',
  'format' = 'parquet'
);

INSERT INTO tx_first_in_block
SELECT block, currency, tx_hash, amount, ts
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY block, currency ORDER BY ts ASC) AS rownum
  FROM tx
)
WHERE rownum = 1;
