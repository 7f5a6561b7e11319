#!/usr/bin/env python3
"""The Flink side of the side-by-side benchmarks (5 and 8): Sluice's benchmark queries on
Apache Flink.

Each query reads the transactions of `sluice datagen tx` (JSON lines, watermark 5 s behind
the event time), runs in PyFlink's local mini-cluster in streaming mode, and writes CSV so
the output can be compared with Sluice's row by row:

- tumble: count, total fee and average fee per currency in 1-minute tumbling windows
  (benchmark 5, the same query as benchmark 1);
- hop: the same per HOP window of 10 minutes sliding by 1 minute;
- cumulate: the same per CUMULATE window of 1 hour growing by 1 minute;
- over: per transaction, the count, total fee and average fee of its currency's
  transactions of the 10 minutes up to it (OVER ... RANGE BETWEEN INTERVAL '10' MINUTE
  PRECEDING AND CURRENT ROW), with the transaction's hash.

Prints the job's own seconds (without JVM start-up) as `flink_job_seconds N`;
benches/run.sh times the whole process around it.

usage: tx_queries.py INPUT.jsonl OUTPUT_DIR [--query tumble|hop|cumulate|over] [--parallelism N]
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

WINDOW_SINK = """
CREATE TABLE metrics (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""

WINDOW_QUERY = """
INSERT INTO metrics
SELECT window_start, window_end, currency, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE({window})
GROUP BY window_start, window_end, currency
"""

WINDOWS = {
    "tumble": "TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE)",
    "hop": "HOP(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE)",
    "cumulate": "CUMULATE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)",
}

OVER_SINK = """
CREATE TABLE recent (
  tx_hash STRING, currency STRING, event_time BIGINT, fee DOUBLE,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""

OVER_QUERY = """
INSERT INTO recent
SELECT tx_hash, currency, event_time, fee, COUNT(*) OVER w, SUM(fee) OVER w, AVG(fee) OVER w
FROM tx
WINDOW w AS (PARTITION BY currency ORDER BY ts
             RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW)
"""


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("input")
    args.add_argument("output")
    args.add_argument("--query", default="tumble", choices=[*WINDOWS, "over"])
    args.add_argument("--parallelism", default="2")
    a = args.parse_args()

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", a.parallelism)
    config.set("table.local-time-zone", "UTC")
    env.execute_sql(SOURCE.format(path=a.input))
    if a.query == "over":
        env.execute_sql(OVER_SINK.format(path=a.output))
        query = OVER_QUERY
    else:
        env.execute_sql(WINDOW_SINK.format(path=a.output))
        query = WINDOW_QUERY.format(window=WINDOWS[a.query])
    started = time.monotonic()
    env.execute_sql(query).wait()
    print(f"flink_job_seconds {time.monotonic() - started:.3f}")


if __name__ == "__main__":
    main()
