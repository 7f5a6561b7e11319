-- Per-minute blockchain transaction metrics from a Kinesis stream: pipeline 1 of
-- shared/MISSION.md without the Lambda glue. Transactions arrive on the stream `tx`; every
-- minute and currency, the job counts them and sums and averages their fees, and writes the
-- result three times: as Parquet in out/tx_metrics_kinesis/, as JSON records on the stream
-- `tx_metrics` (partition key: the currency), and into the SageMaker Feature Store group
-- `tx-metrics` (PutRecord per currency and minute).
--
-- Credentials and endpoint come from the standard AWS chain; for a local run against moto
-- or LocalStack set AWS_ENDPOINT_URL. Fill the stream with the producer first:
--   python3 jobs/kinesis_producer.py --stream tx --create-shards 4 --count 100000
-- (jobs/README.md has the whole walk-through.)
--
-- 'scan.bounded' = 'latest' makes this a backfill: the job reads every record that arrived
-- before it started, fires the last windows and ends. Remove that line to run it as a
-- continuous pipeline that stops on Ctrl-C.
--
-- Run: cargo run --release -- run jobs/tx_metrics_kinesis.sql

-- Checkpoints every 10 s make the Parquet output exactly-once: files become visible when a
-- checkpoint completes, and a job that dies resumes from the last one (Ctrl-C takes a
-- savepoint first). On AWS, put them next to the data: 's3://my-bucket/checkpoints/tx'.
SET 'execution.checkpointing.interval' = '10 s';
SET 'state.checkpoints.dir' = 'out/checkpoints/tx_metrics_kinesis';

CREATE TABLE tx (
  tx_hash STRING,
  block BIGINT,
  fee DOUBLE,
  amount DOUBLE,
  currency STRING,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kinesis',
  'stream' = 'tx',
  'aws.region' = 'us-east-1',
  'source.init.position' = 'TRIM_HORIZON',
  'scan.bounded' = 'latest',
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
  'path' = 'out/tx_metrics_kinesis',
  'format' = 'parquet'
);

CREATE TABLE tx_metrics_stream (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  currency STRING,
  tx_count BIGINT,
  total_fee DOUBLE,
  avg_fee DOUBLE
) PARTITIONED BY (currency) WITH (
  'connector' = 'kinesis',
  'stream' = 'tx_metrics',
  'aws.region' = 'us-east-1',
  'format' = 'json'
);

-- The feature group 'tx-metrics' must exist (jobs/README.md shows how to create it). The
-- endpoint comes from the standard AWS settings: AWS_ENDPOINT_URL_SAGEMAKER and
-- AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME point it at `sluice featurestore serve`.
CREATE TABLE tx_features (
  currency STRING,
  window_end TIMESTAMP(3),
  tx_count BIGINT,
  total_fee DOUBLE,
  avg_fee DOUBLE
) WITH (
  'connector' = 'sagemaker-featurestore',
  'feature-group.name' = 'tx-metrics',
  'aws.region' = 'us-east-1'
);

CREATE TEMPORARY VIEW per_minute AS
SELECT window_start, window_end, currency,
       COUNT(*) AS tx_count, SUM(fee) AS total_fee, AVG(fee) AS avg_fee
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;

INSERT INTO tx_metrics SELECT * FROM per_minute;

INSERT INTO tx_metrics_stream SELECT * FROM per_minute;

INSERT INTO tx_features SELECT currency, window_end, tx_count, total_fee, avg_fee FROM per_minute;
