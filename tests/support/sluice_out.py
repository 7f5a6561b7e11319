"""Reading what Sluice wrote, for the test scripts: only visible (committed) files count.

Sluice keeps in-progress files hidden (names starting with '.'); DuckDB's globs would read
them, so the scripts list files themselves.
"""
import json
import os


def visible_files(folder, suffix):
    """All files under `folder` ending in `suffix`, skipping hidden files and folders, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in files if f.endswith(suffix) and not f.startswith(".")]
    return sorted(found)


def parquet_view(con, name, folder):
    """Creates view `name` over the rows of every visible Parquet file under `folder` (error
    if there is none), and view `name_schema` over their Parquet schemas (physical and
    logical types)."""
    files = visible_files(folder, ".parquet")
    if not files:
        raise SystemExit(f"no .parquet files under {folder}")
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files!r}, hive_partitioning = false)")
    con.execute(f"CREATE VIEW {name}_schema AS SELECT * FROM parquet_schema({files!r})")
    return files


def report(con, problems, title, sql):
    """Runs `sql`; if it returns rows, adds `title`, their number and the first ten to
    `problems` (a list of lines)."""
    rows = con.execute(sql).fetchall()
    if rows:
        problems.append(f"{title}: {len(rows)} rows, first ones:")
        problems.extend(f"  {r}" for r in rows[:10])


def finish(con, problems, late):
    """Ends a comparison of tables `expected` and `actual`: lists `problems` and exits 1 if
    there are any, else prints the one JSON summary line the tests read."""
    expected_rows = con.execute("SELECT count(*) FROM expected").fetchone()[0]
    actual_rows = con.execute("SELECT count(*) FROM actual").fetchone()[0]
    if problems:
        print(f"Sluice's output differs from DuckDB's ({expected_rows} expected rows, "
              f"{actual_rows} actual rows, {late} late input rows):")
        print("\n".join(problems))
        raise SystemExit(1)
    print(json.dumps({"expected_late": late, "expected_rows": expected_rows, "actual_rows": actual_rows}))


# Aggregates whose values must be equal; the others (sums, averages) within a tolerance.
EXACT = {"count", "min", "max"}


def compare_tables(con, problems, aggs, on, tolerance):
    """Compares tables `expected` (columns `on`, then e_<func> per aggregate) and `actual`
    (`on`, then a_<func>): rows of `on` twice in actual, rows missing on either side and
    values that differ go into `problems`. `aggs` are (func, Sluice column) pairs;
    `tolerance(func)` is the SQL of the allowed |actual - expected| of a sum or average."""
    keys = ", ".join(on)
    report(con, problems, f"({keys}) emitted more than once",
           f"SELECT {keys}, count(*) FROM actual GROUP BY ALL HAVING count(*) > 1 ORDER BY {keys}")
    differs = [f"e.{on[0]} IS NULL", f"a.{on[0]} IS NULL"]
    for func, _ in aggs:
        if func in EXACT:
            differs.append(f"a.a_{func} IS DISTINCT FROM e.e_{func}")
        else:
            differs.append(f"NOT coalesce(abs(a.a_{func} - e.e_{func}) <= {tolerance(func)}, false)")
    columns = ", ".join(f"e.e_{func}, a.a_{func}" for func, _ in aggs)
    header = ", ".join(f"expected {func}, actual {col}" for func, col in aggs)
    picked = ", ".join(f"coalesce(e.{c}, a.{c}) AS {c}" for c in on)
    join = " AND ".join(f"e.{c} = a.{c}" for c in on)
    report(con, problems, f"rows that differ ({keys}, {header}; None = missing)",
           f"SELECT {picked}, {columns} FROM expected e FULL OUTER JOIN actual a ON {join} "
           f"WHERE {' OR '.join(differs)} ORDER BY {keys}")
