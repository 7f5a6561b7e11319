#!/usr/bin/env python3
"""Checks a Sluice SESSION window aggregate written as Parquet against an independent result.

The sessions are found here, record by record in input order (one file: one source
partition), by Flink's rules: each row opens [ts, ts + gap); it merges with every open
session of its key that overlaps or touches that window; a session closes (fires) once the
watermark reaches its end - 1 ms and is gone, so a later row starts a new one; a row with no
open session to join whose own window the watermark has passed is late and dropped. The
watermark before each row is Flink's, as in compare.py. DuckDB then aggregates the rows of
each session.

usage: compare_session.py --events FILE --actual FOLDER --key COL --ts COL --value COL
                          --gap-ms G --agg FUNC:COLUMN [--agg ...]
                          --late-delay-ms D [--watermark-interval-ms I]

The output has window_start, window_end, the key column and one column per aggregate
(count, sum, avg, min, max). Counts and min/max must be equal, sums and averages within 1e-9
relative; no session may appear twice. Prints one JSON line {"expected_late",
"expected_rows", "actual_rows"} or lists the first differences and exits 1.
"""
import argparse

import duckdb
import pyarrow as pa

from compare import events_with_watermarks
from sluice_out import compare_tables, finish, parquet_view

RELATIVE_TOLERANCE = 1e-9


def assign(keys, stamps, marks, gap):
    """The final session (start, end) of every row in input order, None for a late or
    timeless row; and the number of late rows."""
    open_sessions = {}  # key -> ids of its open sessions
    bounds = []  # session id -> (start, end)
    merged_into = {}  # session id -> the id of the session it merged into
    row_session = []
    late = 0
    for key, ts, wm in zip(keys, stamps, marks):
        if ts is None:
            row_session.append(None)
            continue
        mine = open_sessions.get(key, [])
        if wm is not None:
            mine = [s for s in mine if bounds[s][1] - 1 > wm]  # closed sessions are gone
        start, end = ts, ts + gap
        touching = [s for s in mine if bounds[s][0] <= end and bounds[s][1] >= start]
        if not touching and wm is not None and end - 1 <= wm:
            late += 1
            row_session.append(None)
            open_sessions[key] = mine
            continue
        sid = len(bounds)
        bounds.append((min([start] + [bounds[s][0] for s in touching]),
                       max([end] + [bounds[s][1] for s in touching])))
        for s in touching:
            merged_into[s] = sid
        open_sessions[key] = [s for s in mine if s not in touching] + [sid]
        row_session.append(sid)

    def final(sid):
        path = []
        while sid in merged_into:
            path.append(sid)
            sid = merged_into[sid]
        for p in path:
            merged_into[p] = sid
        return sid

    return [None if sid is None else bounds[final(sid)] for sid in row_session], late


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True)
    p.add_argument("--actual", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ts", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--gap-ms", type=int, required=True)
    p.add_argument("--agg", action="append", required=True, metavar="FUNC:COLUMN")
    p.add_argument("--late-delay-ms", type=int, required=True)
    p.add_argument("--watermark-interval-ms", type=int, default=0)
    a = p.parse_args()
    aggs = [spec.split(":", 1) for spec in a.agg]
    for func, _ in aggs:
        if func not in ("count", "sum", "avg", "min", "max"):
            raise SystemExit(f"unknown aggregate {func}")

    table = events_with_watermarks([a.events], a.key, a.ts, a.value, a.late_delay_ms,
                                   a.watermark_interval_ms)
    keys = table.column("k").to_pylist()
    stamps = table.column("ts").to_pylist()
    marks = table.column("wm").to_pylist()
    rows, late = assign(keys, stamps, marks, a.gap_ms)
    con = duckdb.connect()
    con.register("raw_events", table.append_column("session_start", pa.array([r and r[0] for r in rows], pa.int64()))
                 .append_column("session_end", pa.array([r and r[1] for r in rows], pa.int64())))
    con.execute(
        "CREATE TABLE expected AS SELECT k, session_start AS ws, session_end AS we, "
        "count(*) AS e_count, sum(v) AS e_sum, avg(v) AS e_avg, min(v) AS e_min, max(v) AS e_max "
        "FROM raw_events WHERE session_start IS NOT NULL GROUP BY ALL")
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
