#!/usr/bin/env python3
"""Checks a Sluice OVER aggregation written as Parquet against DuckDB's window functions.

Sluice's output has one row per input row that was on time: the input's key, time and value
columns, then one column per aggregate. The expected rows are DuckDB's
`agg(v) OVER (PARTITION BY k ORDER BY ts <frame>)` over the same JSON-lines input (one
file, so arrival order is line order), with the rows Sluice must drop as late removed
first: a row is late when the watermark its file had emitted before it (Flink's rule, as
in compare.py) has reached its time. Rows with the same time are ordered by arrival for a
ROWS frame and are peers (they see each other) for a RANGE frame.

usage: compare_over.py --events FILE --actual FOLDER --key COL --ts COL --value COL
                       (--range-ms N | --rows N | --unbounded) --agg FUNC:COLUMN [--agg ...]
                       --late-delay-ms D [--watermark-interval-ms I]

Rows are matched on (key, time, value); the generator's values are random doubles, so a
match is one input row. Counts, minima and maxima must be equal; sums and averages, kept by
Sluice as running totals that rows enter and leave, within 1e-9 of the largest |value|.
Prints one JSON line {"expected_late", "expected_rows", "actual_rows"} or lists the first
differences and exits 1.
"""
import argparse

import duckdb

from compare import events_with_watermarks
from sluice_out import compare_tables, finish, parquet_view

TOLERANCE = 1e-9


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True)
    p.add_argument("--actual", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ts", required=True)
    p.add_argument("--value", required=True)
    frame = p.add_mutually_exclusive_group(required=True)
    frame.add_argument("--range-ms", type=int)
    frame.add_argument("--rows", type=int)
    frame.add_argument("--unbounded", action="store_true")
    p.add_argument("--agg", action="append", required=True, metavar="FUNC:COLUMN")
    p.add_argument("--late-delay-ms", type=int, required=True)
    p.add_argument("--watermark-interval-ms", type=int, default=0)
    a = p.parse_args()
    aggs = [spec.split(":", 1) for spec in a.agg]
    for func, _ in aggs:
        if func not in ("count", "sum", "avg", "min", "max"):
            raise SystemExit(f"unknown aggregate {func}")

    if a.range_ms is not None:
        window = f"PARTITION BY k ORDER BY ts RANGE BETWEEN {a.range_ms} PRECEDING AND CURRENT ROW"
    elif a.rows is not None:
        window = f"PARTITION BY k ORDER BY ts, rid ROWS BETWEEN {a.rows} PRECEDING AND CURRENT ROW"
    else:
        window = "PARTITION BY k ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"

    con = duckdb.connect()
    table = events_with_watermarks([a.events], a.key, a.ts, a.value, a.late_delay_ms,
                                   a.watermark_interval_ms)
    con.register("raw_events", table)
    con.execute("CREATE TABLE events AS SELECT row_number() OVER () AS rid, * FROM raw_events")
    con.execute("CREATE TABLE on_time AS SELECT * FROM events "
                "WHERE ts IS NOT NULL AND (wm IS NULL OR ts > wm)")
    late = con.execute("SELECT count(*) FROM events WHERE ts IS NOT NULL AND wm IS NOT NULL "
                       "AND ts <= wm").fetchone()[0]
    scale = con.execute("SELECT max(abs(v)) FROM on_time").fetchone()[0] or 1.0
    con.execute(
        "CREATE TABLE expected AS SELECT k, ts, v, count(*) OVER w AS e_count, sum(v) OVER w AS e_sum, "
        "avg(v) OVER w AS e_avg, min(v) OVER w AS e_min, max(v) OVER w AS e_max "
        f"FROM on_time WINDOW w AS ({window})")
    parquet_view(con, "sluice", a.actual)
    picked = ", ".join(f'"{col}" AS a_{func}' for func, col in aggs)
    con.execute(f'CREATE TABLE actual AS SELECT "{a.key}" AS k, "{a.ts}" AS ts, "{a.value}" AS v, '
                f"{picked} FROM sluice")

    problems = []

    compare_tables(con, problems, aggs, ["ts", "k", "v"], lambda func: TOLERANCE * scale)
    finish(con, problems, late)

if __name__ == "__main__":
    main()
