-- The largest transaction per minute and currency, from the Kinesis stream `tx`: the job the
-- compose stack's `sluice-server` service submits at start (it runs every *.sql file of
-- jobs/server/ once). It reads the same stream as jobs/tx_metrics_kinesis.sql, independently,
-- and writes JSON lines to S3.
--
-- The environment fills in the '${NAME:-default}' parts:
--   SLUICE_BUCKET   the bucket of the output (sluice-demo)
--
-- Submit it to a running server: sluice submit jobs/server/tx_largest.sql
-- Its checkpoints go to the server's data folder (no 'state.checkpoints.dir' here).

SET 'execution.checkpointing.interval' = '10 s';
SET 'restart-strategy.type' = 'exponential-delay';

CREATE TABLE tx (
  tx_hash STRING,
  amount DOUBLE,
  currency STRING,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kinesis',
  'stream' = 'tx',
  'aws.region' = '${AWS_REGION:-us-east-1}',
  'source.init.position' = 'TRIM_HORIZON',
  'format' = 'json'
);

CREATE TABLE tx_largest (
  window_start TIMESTAMP(3),
  currency STRING,
  largest DOUBLE,
  tx_count BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = 's3://${SLUICE_BUCKET:-sluice-demo}/server/tx_largest/',
  'format' = 'json'
);

INSERT INTO tx_largest
SELECT window_start, currency, MAX(amount), COUNT(*)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;
