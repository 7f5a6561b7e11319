#!/usr/bin/env python3
"""Benchmark 5's other side: the per-minute transaction metrics on Apache Flink.

The same query as benchmark 1 (count, total fee and average fee per currency in 1-minute
tumbling windows, watermark 5 s behind the event time) over the same JSON-lines file, run by
PyFlink's local mini-cluster in streaming mode and written as CSV so the two outputs can be
compared row by row. Prints the job's own seconds (without JVM start-up) as
`flink_job_seconds N`; benches/run.sh times the whole process around it.

usage: tumble_metrics.py INPUT.jsonl OUTPUT_DIR [--parallelism N]
"""
import argparse
import time

from pyflink.table import EnvironmentSettings, TableEnvironment

SOURCE = """
CREATE TABLE tx (
  tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')
"""

SINK = """
CREATE TABLE metrics (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""

QUERY = """
INSERT INTO metrics
SELECT window_start, window_end, currency, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency
"""


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("input")
    args.add_argument("output")
    args.add_argument("--parallelism", default="2")
    a = args.parse_args()

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", a.parallelism)
    config.set("table.local-time-zone", "UTC")
    env.execute_sql(SOURCE.format(path=a.input))
    env.execute_sql(SINK.format(path=a.output))
    started = time.monotonic()
    env.execute_sql(QUERY).wait()
    print(f"flink_job_seconds {time.monotonic() - started:.3f}")


if __name__ == "__main__":
    main()
