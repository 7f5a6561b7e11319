"""Reading what Sluice wrote, for the test scripts: only visible (committed) files count.

Sluice keeps in-progress files hidden (names starting with '.'); DuckDB's globs would read
them, so the scripts list files themselves.
"""
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
