#!/usr/bin/env python3
"""Checks a Sluice window aggregate written as Parquet against an independent batch result.

The expected result is DuckDB's batch GROUP BY over the same JSON-lines input, each event
expanded into the windows it belongs to by epoch arithmetic: TUMBLE start = ts - (ts mod
size); HOP (--slide-ms) every start s = k * slide with s <= ts < s + size; CUMULATE
(--step-ms) the windows [b, b + j * step) of the size-aligned b with ts < b + j * step. With
--late-delay-ms, an event counts in a window only if it is not late for it, and the rows
Sluice must drop as late are removed first, decided here record by record, for each input
file (one source partition) on its own, as Flink emits watermarks: the largest (ts - delay)
seen so far is emitted once it exceeds the last emitted watermark by more than
--watermark-interval-ms (0: after every record); the row is late for a window if and only if
the watermark emitted before it has reached the window's end - 1 ms, and counts as late
(dropped) when it is late for every window it belongs to.

usage: compare.py --events FILE_OR_FOLDER --actual FOLDER --key COL --ts COL --value COL
                  --size-ms N [--slide-ms S | --step-ms T] --agg FUNC:COLUMN [--agg ...]
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

from sluice_out import compare_tables, finish, parquet_view, visible_files

RELATIVE_TOLERANCE = 1e-9


def input_files(path):
    return visible_files(path, ".json") if os.path.isdir(path) else [path]


def events_with_watermarks(files, key, ts_col, value, delay, interval):
    """Every event with the watermark its file had emitted before it, as an Arrow table."""
    keys, values, stamps, marks = [], [], [], []
    for path in files:
        watermark = None  # emitted
        seen = None  # the largest ts - delay so far
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                ts = row[ts_col]
                keys.append(row[key])
                values.append(row[value])
                stamps.append(ts)
                marks.append(watermark)
                if ts is None:
                    continue  # dropped as a NULL event time, not as late
                if seen is None or ts - delay > seen:
                    seen = ts - delay
                    if watermark is None or seen - watermark > interval:
                        watermark = seen
    return pa.table({"k": pa.array(keys, pa.string()), "v": pa.array(values, pa.float64()),
                     "ts": pa.array(stamps, pa.int64()), "wm": pa.array(marks, pa.int64())})


def windows_sql(size, slide, step):
    """The windows (ws, we) of each event, as a SELECT over view `events` (rid, ts)."""
    floor = lambda unit: f"ts - ((ts % {unit}) + {unit}) % {unit}"
    if slide:
        return (f"SELECT rid, {floor(slide)} - i * {slide} AS ws, {floor(slide)} - i * {slide} + {size} AS we "
                f"FROM events, range(0, {size // slide}) t(i) WHERE ts IS NOT NULL")
    if step:
        return (f"SELECT rid, {floor(size)} AS ws, {floor(size)} + j * {step} AS we "
                f"FROM events, range(1, {size // step} + 1) t(j) "
                f"WHERE ts IS NOT NULL AND ts < {floor(size)} + j * {step}")
    return f"SELECT rid, {floor(size)} AS ws, {floor(size)} + {size} AS we FROM events WHERE ts IS NOT NULL"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True)
    p.add_argument("--actual", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ts", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--size-ms", type=int, required=True)
    p.add_argument("--slide-ms", type=int, help="HOP windows of this slide")
    p.add_argument("--step-ms", type=int, help="CUMULATE windows of this step")
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
    if a.late_delay_ms is None:
        con.execute(
            f"CREATE TABLE events AS SELECT row_number() OVER () AS rid, {a.key} AS k, "
            f"{a.value} AS v, {a.ts} AS ts, NULL::BIGINT AS wm "
            f"FROM read_json({files!r}, format = 'newline_delimited', "
            f"columns = {{{a.key}: 'VARCHAR', {a.value}: 'DOUBLE', {a.ts}: 'BIGINT'}})")
    else:
        table = events_with_watermarks(files, a.key, a.ts, a.value, a.late_delay_ms,
                                       a.watermark_interval_ms)
        con.register("raw_events", table)
        con.execute("CREATE TABLE events AS SELECT row_number() OVER () AS rid, * FROM raw_events")
    size = a.size_ms
    # Every (event, window) pair in which the event is on time.
    con.execute(
        f"CREATE TABLE counted AS SELECT w.rid, w.ws, w.we FROM ({windows_sql(size, a.slide_ms, a.step_ms)}) w "
        "JOIN events e USING (rid) WHERE e.wm IS NULL OR e.wm < w.we - 1")
    con.execute(
        "CREATE TABLE expected AS SELECT e.k, c.ws, c.we, "
        "count(*) AS e_count, sum(v) AS e_sum, avg(v) AS e_avg, min(v) AS e_min, max(v) AS e_max "
        "FROM counted c JOIN events e USING (rid) GROUP BY ALL")
    late = con.execute(
        "SELECT count(*) FROM events WHERE ts IS NOT NULL AND rid NOT IN (SELECT rid FROM counted)"
    ).fetchone()[0]
    parquet_view(con, "sluice", a.actual)
    picked = ", ".join(f'"{col}" AS a_{func}' for func, col in aggs)
    con.execute(
        f'CREATE TABLE actual AS SELECT "{a.key}" AS k, epoch_ms(window_start) AS ws, '
        f"epoch_ms(window_end) AS we, {picked} FROM sluice")

    problems = []

    compare_tables(con, problems, aggs, ["ws", "we", "k"],
                   lambda func: f"{RELATIVE_TOLERANCE} * abs(e.e_{func})")
    finish(con, problems, late)

if __name__ == "__main__":
    main()
