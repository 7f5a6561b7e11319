#!/usr/bin/env python3
"""Runs one DuckDB query and prints its rows as a JSON list of objects (one line).

usage: query.py [--parquet NAME=FOLDER]... SQL

--parquet creates view NAME over the visible Parquet files Sluice wrote under FOLDER, and
view NAME_schema over their Parquet schemas (DuckDB's parquet_schema()).
Values JSON cannot hold (timestamps, decimals) are printed as strings.
"""
import argparse
import json

import duckdb

from sluice_out import parquet_view


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--parquet", action="append", default=[], metavar="NAME=FOLDER")
    p.add_argument("sql")
    a = p.parse_args()
    con = duckdb.connect()
    for spec in a.parquet:
        name, folder = spec.split("=", 1)
        parquet_view(con, name, folder)
    cur = con.execute(a.sql)
    columns = [d[0] for d in cur.description]
    rows = [dict(zip(columns, r)) for r in cur.fetchall()]
    print(json.dumps(rows, default=str))


if __name__ == "__main__":
    main()
