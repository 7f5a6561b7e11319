-- Per-minute blockchain transaction metrics from a Kinesis stream: the reference pipeline
-- (a poller publishes transactions to Kinesis, a stream job computes per-minute metrics into
-- a feature store and S3) in one job, without Lambda glue. Transactions arrive on the stream
-- `tx`; every minute and currency, the job counts them and sums and averages their fees, and
-- writes the result three times: as Parquet on S3 partitioned by day and hour and registered
-- in the Glue Data Catalog (so Athena can query it at once), as JSON records on the stream
-- `tx_metrics` (partition key: the currency), and into the SageMaker Feature Store group
-- `tx-metrics` (PutRecord per currency and minute).
--
-- Credentials, region and endpoints come from the standard AWS chain; for a local run
-- against an emulator set AWS_ENDPOINT_URL. `docker compose up` runs this job against moto
-- (see README.md); jobs/README.md has the walk-through without Docker.
--
-- The environment fills in the '${NAME:-default}' parts:
--   SLUICE_BUCKET      the bucket of the Parquet output (sluice-demo)
--   GLUE_DATABASE      the Glue database of its table (sluice)
--   SLUICE_CHECKPOINTS where checkpoints go: a folder or s3://bucket/prefix
--                      (out/checkpoints/tx_metrics_kinesis)
--   CHECKPOINT_INTERVAL how often a checkpoint is taken (10 s)
--   TX_SCAN_BOUNDED    'latest' (default) makes this a backfill: the job reads every record
--                      that arrived before it started, fires the last windows and ends;
--                      'none' runs it as a continuous pipeline that stops on Ctrl-C.
--
-- Run: cargo run -- run jobs/tx_metrics_kinesis.sql

-- Checkpoints every 10 s make the Parquet output exactly-once: files become visible when a
-- checkpoint completes, and a job that dies resumes from the last one (Ctrl-C takes a
-- savepoint first).
SET 'execution.checkpointing.interval' = '${CHECKPOINT_INTERVAL:-10 s}';
SET 'state.checkpoints.dir' = '${SLUICE_CHECKPOINTS:-out/checkpoints/tx_metrics_kinesis}';

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
  'aws.region' = '${AWS_REGION:-us-east-1}',
  'source.init.position' = 'TRIM_HORIZON',
  'scan.bounded' = '${TX_SCAN_BOUNDED:-latest}',
  'format' = 'json'
);

CREATE TABLE tx_metrics (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  currency STRING,
  tx_count BIGINT,
  total_fee DOUBLE,
  avg_fee DOUBLE,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = 's3://${SLUICE_BUCKET:-sluice-demo}/tx_metrics/',
  'format' = 'parquet',
  'aws.region' = '${AWS_REGION:-us-east-1}',
  'sink.partition-commit.policy.kind' = 'metastore,success-file',
  'glue.database' = '${GLUE_DATABASE:-sluice}'
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
  'aws.region' = '${AWS_REGION:-us-east-1}',
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
  'aws.region' = '${AWS_REGION:-us-east-1}'
);

CREATE TEMPORARY VIEW per_minute AS
SELECT window_start, window_end, currency,
       COUNT(*) AS tx_count, SUM(fee) AS total_fee, AVG(fee) AS avg_fee
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;

INSERT INTO tx_metrics
SELECT *, DATE_FORMAT(window_start, 'yyyy-MM-dd'), DATE_FORMAT(window_start, 'HH') FROM per_minute;

INSERT INTO tx_metrics_stream SELECT * FROM per_minute;

INSERT INTO tx_features SELECT currency, window_end, tx_count, total_fee, avg_fee FROM per_minute;
