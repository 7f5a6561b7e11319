#!/usr/bin/env python3
"""Checks a Sluice TUMBLE aggregate written as Parquet against an independent batch result.

The expected result is DuckDB's batch GROUP BY over the same JSON-lines input, with windows
computed by epoch arithmetic: start = ts - (ts mod size). With --late-delay-ms, the rows
Sluice must drop as late are removed first, decided here record by record, for each input
file (one source partition) on its own, as Flink emits watermarks: the largest (ts - delay)
seen so far is emitted once it exceeds the last emitted watermark by more than
--watermark-interval-ms (0: after every record); the row is late if and only if the
watermark emitted before it has reached its window's end - 1 ms.

usage: compare.py --events FILE_OR_FOLDER --actual FOLDER --key COL --ts COL --value COL
                  --size-ms N --agg FUNC:COLUMN [--agg ...]
                  [--late-delay-ms D [--watermark-interval-ms I]]

FUNC is count, sum, avg, min or max and COLUMN the Sluice output column holding it; the
output also has window_start, window_end and the key column. Counts and min/max must match
exactly, sums and averages within 1e-9 relative, the window x key sets must be equal and no
window x key may appear twice. Prints one JSON line {"expected_late", "expected_rows",
"actual_rows"} or, on a mismatch, lists the first differences and exits 1.
"""
import argparse
import json
import os

import duckdb
import pyarrow as pa

from sluice_out import parquet_view, visible_files

RELATIVE_TOLERANCE = 1e-9
EXACT = {"count", "min", "max"}


def input_files(path):
    return visible_files(path, ".json") if os.path.isdir(path) else [path]


def non_late_events(files, key, ts_col, value, size, delay, interval):
    """The rows that are not late by the per-record rule, as an Arrow table, and the late count."""
    keys, values, stamps, late = [], [], [], 0
    for path in files:
        watermark = None  # emitted
        seen = None  # the largest ts - delay so far
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                ts = row[ts_col]
                if ts is None:
                    continue  # dropped as a NULL event time, not as late
                window_end = ts - ts % size + size  # Python's % is never negative here
                if watermark is not None and watermark >= window_end - 1:
                    late += 1
                else:
                    keys.append(row[key])
                    values.append(row[value])
                    stamps.append(ts)
                if seen is None or ts - delay > seen:
                    seen = ts - delay
                    if watermark is None or seen - watermark > interval:
                        watermark = seen
    table = pa.table({"k": pa.array(keys, pa.string()), "v": pa.array(values, pa.float64()),
                      "ts": pa.array(stamps, pa.int64())})
    return table, late


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True)
    p.add_argument("--actual", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ts", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--size-ms", type=int, required=True)
    p.add_argument("--agg", action="append", required=True, metavar="FUNC:COLUMN")
    p.add_argument("--late-delay-ms", type=int)
    p.add_argument("--watermark-interval-ms", type=int, default=0)
    a = p.parse_args()
    aggs = [spec.split(":", 1) for spec in a.agg]
    for func, _ in aggs:
        if func not in ("count", "sum", "avg", "min", "max"):
            raise SystemExit(f"unknown aggregate {func}")

    con = duckdb.connect()
    files = input_files(a.events)
    late = 0
    if a.late_delay_ms is None:
        con.execute(
            f"CREATE VIEW events AS SELECT {a.key} AS k, {a.value} AS v, {a.ts} AS ts "
            f"FROM read_json({files!r}, format = 'newline_delimited', "
            f"columns = {{{a.key}: 'VARCHAR', {a.value}: 'DOUBLE', {a.ts}: 'BIGINT'}})")
    else:
        events, late = non_late_events(files, a.key, a.ts, a.value, a.size_ms, a.late_delay_ms,
                                       a.watermark_interval_ms)
        con.register("events", events)
    size = a.size_ms
    con.execute(
        f"CREATE TABLE expected AS SELECT k, ts - ((ts % {size}) + {size}) % {size} AS ws, "
        "count(*) AS e_count, sum(v) AS e_sum, avg(v) AS e_avg, min(v) AS e_min, max(v) AS e_max "
        "FROM events WHERE ts IS NOT NULL GROUP BY ALL")
    parquet_view(con, "sluice", a.actual)
    picked = ", ".join(f'"{col}" AS a_{func}' for func, col in aggs)
    con.execute(
        f'CREATE TABLE actual AS SELECT "{a.key}" AS k, epoch_ms(window_start) AS ws, '
        f"epoch_ms(window_end) AS we, {picked} FROM sluice")

    problems = []

    def report(title, sql):
        rows = con.execute(sql).fetchall()
        if rows:
            problems.append(f"{title}: {len(rows)} rows, first ones:")
            problems.extend(f"  {r}" for r in rows[:10])

    report("window x key emitted more than once",
           "SELECT k, ws, count(*) FROM actual GROUP BY ALL HAVING count(*) > 1 ORDER BY ws, k")
    report(f"window_end != window_start + {size} ms",
           f"SELECT k, ws, we FROM actual WHERE we IS DISTINCT FROM ws + {size} ORDER BY ws, k")
    differs = ["e.k IS NULL", "a.k IS NULL"]
    for func, _ in aggs:
        if func in EXACT:
            differs.append(f"a.a_{func} IS DISTINCT FROM e.e_{func}")
        else:
            differs.append(
                f"NOT coalesce(abs(a.a_{func} - e.e_{func}) <= {RELATIVE_TOLERANCE} * abs(e.e_{func}), false)")
    columns = ", ".join(f"e.e_{func}, a.a_{func}" for func, _ in aggs)
    header = ", ".join(f"expected {func}, actual {col}" for func, col in aggs)
    report(f"windows that differ (key, window_start ms, {header}; None = missing)",
           f"SELECT coalesce(e.k, a.k) AS key, coalesce(e.ws, a.ws) AS ws, {columns} "
           "FROM expected e FULL OUTER JOIN actual a ON e.k = a.k AND e.ws = a.ws "
           f"WHERE {' OR '.join(differs)} ORDER BY ws, key")

    expected_rows = con.execute("SELECT count(*) FROM expected").fetchone()[0]
    actual_rows = con.execute("SELECT count(*) FROM actual").fetchone()[0]
    if problems:
        print(f"Sluice's output differs from the batch result ({expected_rows} expected rows, "
              f"{actual_rows} actual rows, {late} late input rows):")
        print("\n".join(problems))
        raise SystemExit(1)
    print(json.dumps({"expected_late": late, "expected_rows": expected_rows, "actual_rows": actual_rows}))


if __name__ == "__main__":
    main()
