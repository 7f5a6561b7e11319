#!/usr/bin/env bash
# Runs one Sluice benchmark on the dist build (LTO, one codegen unit) and checks its output
# before printing the figures (events/s, MB/s of input, peak resident memory).
#
#   benches/run.sh tx          # 1. per-minute metrics, 5M events of `sluice datagen tx` (4 keys) -> Parquet
#   benches/run.sh tx-vs-duckdb # 1 against DuckDB's GROUP BY over the same file, alternating
#   benches/run.sh tx-keys     # 2. the same with 100,000 keys, at 1M and at 5M events
#   benches/run.sh datagen     # 3. datagen -> the same window -> blackhole (no JSON)
#   benches/run.sh sink        # 4. 5M rows straight to Parquet (INSERT INTO pq SELECT * FROM tx)
#   benches/run.sh flink       # 5. side by side with Flink (PyFlink, benches/flink/), same input
#   benches/run.sh flink-windows # 8. the same for TUMBLE 1 min, HOP 10 min / 1 min, CUMULATE
#                              #    1 h / 1 min and OVER RANGE 10 min per key (FLINK_QUERIES
#                              #    picks some of: tumble hop cumulate over)
#   benches/run.sh featurestore # 6. per-minute metrics of 100,000 keys into Feature Store:
#                              #    the embedded local store, then `sluice featurestore serve`
#   benches/run.sh checkpoints # 7. benchmark 3's job with 100,000 keys in every window, with
#                              #    no checkpoints, every 10 s and every 1 s
#   benches/run.sh two-sinks   # 9. benchmark 1's view read by two INSERTs into two Parquet
#                              #    sinks, shared (one aggregate) and not, against one sink
#   benches/run.sh kinesis     # 10. benchmark 1's window over Kinesis: 100 shards of 1 KB JSON
#                              #    records (then KPL-aggregated) served from memory by
#                              #    benches/kinesis-server (KINESIS_EVENTS, default 1000000)
#   benches/run.sh nexmark     # 11. Nexmark q0 q1 q2 q5 q7 q8 (jobs/nexmark/) on the nexmark
#                              #    source (NEXMARK_EVENTS, default 50000000; NEXMARK_QUERIES)
#   benches/run.sh link-order  # not a benchmark: rewrites src/link-order.txt, the functions
#                              #    benchmarks 1 and 8 and jobs/tx_metrics_local.sql run, from
#                              #    callgrind (valgrind), for build.rs to lay out the binary
#
# env: EVENTS (default 5000000), PARALLELISM (default 2), WORK (default /tmp/sluice-bench),
#      PROFILE (default dist; `dev` or `release` measure what those builds cost),
#      SLUICE (a `sluice` binary to measure instead of building one, e.g. one built at an
#      earlier commit for a before/after comparison), KINESIS_SERVER (likewise for
#      benchmark 10's server)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
work="${WORK:-/tmp/sluice-bench}"
events="${EVENTS:-5000000}"
par="${PARALLELISM:-2}"
profile="${PROFILE:-dist}"
mkdir -p "$work"

if [ -n "${SLUICE:-}" ]; then
  sluice="$SLUICE"
else
  cargo build --profile "$profile" --quiet --manifest-path "$repo/Cargo.toml" --bin sluice
  case "$profile" in
    dev) sluice="$repo/target/debug/sluice" ;;
    *) sluice="$repo/target/$profile/sluice" ;;
  esac
fi
python="$(bash "$repo/tests/support/pyenv.sh" | tail -n 1)"

# Says so when the binary's code is not laid out by src/link-order.txt (build.rs): when it
# defines fewer than 90 % of the listed functions (code changed since the list was written)
# or they are not together (a dev build, or a linker other than LLD). Its resident memory
# is then far above the figures in benches/README.md.
if [ "${1:-}" != link-order ] && command -v nm >/dev/null; then
  "$python" - "$sluice" "$repo/src/link-order.txt" <<'PY'
import subprocess, sys
listed = {line.strip() for line in open(sys.argv[2]) if line.strip() and not line.startswith("#")}
symbols = subprocess.run(["nm", "-S", "--defined-only", sys.argv[1]], capture_output=True, text=True).stdout
found, spans = set(), []
for line in symbols.splitlines():
    parts = line.split()
    if len(parts) == 4 and parts[3] in listed:
        found.add(parts[3])
        spans.append((int(parts[0], 16), int(parts[1], 16)))
size = sum(length for _, length in spans)
spread = max(a + n for a, n in spans) - min(a for a, _ in spans) if spans else 0
if len(found) < 0.9 * len(listed) or spread > 2 * size:
    print(f"run.sh: {len(found)} of the {len(listed)} functions in src/link-order.txt are in the binary, "
          f"spread over {spread / 2**20:.0f} MB for {size / 2**20:.1f} MB of code; "
          "run benches/run.sh link-order and build again to lay out its code", file=sys.stderr)
PY
fi

# `sluice datagen tx` input, generated once per (events, keys).
input_for() { # events keys
  local file="$work/tx_$1_k$2.jsonl"
  [ -s "$file" ] || "$sluice" datagen tx --events "$1" --keys "$2" "$file"
  echo "$file"
}

# The transactions source table over JSON lines at $1 (or with the connector options $2),
# with the parallelism setting.
tx_table() { # input [connector options]
  local with="${2:-'connector' = 'filesystem', 'path' = '$1', 'format' = 'json'}"
  cat <<SQL
SET 'parallelism.default' = '$par';
CREATE TABLE tx (
  tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ($with);
SQL
}

# Runs a job file; prints the figures from its metrics.
run_job() { # name job_file
  local metrics="$work/$1.metrics.json"
  "$sluice" run "$2" --metrics-json "$metrics" 2>"$work/$1.log"
  "$python" - "$metrics" "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
s = m["seconds"]
print(f"{sys.argv[2]}: {m['records_read']} events in {s:.2f} s = {m['records_read']/s:,.0f} events/s, "
      f"{m['bytes_read']/s/1e6:,.0f} MB/s of input, peak RSS {m['peak_rss_bytes']/1e6:.0f} MB, "
      f"late {m['dropped']['late']}")
PY
}


tx_bench() { # name events keys
  local input out job
  input="$(input_for "$2" "$3")"
  out="$work/$1_out"; job="$work/$1.sql"
  rm -rf "$out"
  query_job tumble "$input" "$out" >"$job"
  run_job "$1" "$job"
  check_query tumble "$input" "$out"
}

# The window job of benchmark 2 into a Feature Store sink with the given endpoint.
features_job() { # input endpoint
  tx_table "$1"
  cat <<SQL
CREATE TABLE features (
  currency STRING, window_end TIMESTAMP(3), tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'sagemaker-featurestore', 'feature-group.name' = 'tx-metrics',
  'aws.endpoint' = '$2', 'aws.region' = 'us-east-1', 'record-identifier' = 'currency');
INSERT INTO features
SELECT currency, window_end, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;
SQL
}

# Prints the sink's figures and checks that it put one record per window and key (as
# DuckDB counts them over the input) and rejected none.
features_figures() { # name input
  "$python" - "$work/$1.metrics.json" "$1" "$2" <<'PY'
import duckdb, json, sys
m = json.load(open(sys.argv[1])); name = sys.argv[2]
sink = m["sinks"][0]
windows = duckdb.sql(f"select count(distinct (currency, event_time // 60000)) from read_json('{sys.argv[3]}')").fetchall()[0][0]
assert sink["records"] == windows and sink["failures"] == 0, (sink, windows)
print(f"{name}: {sink['records']} records put in {m['seconds']:.2f} s = {sink['records']/m['seconds']:,.0f} records/s, "
      f"put latency p50 {sink['latency_p50_ms']:.2f} ms p99 {sink['latency_p99_ms']:.2f} ms, "
      f"{sink['retries']} retries, peak RSS {m['peak_rss_bytes']/1e6:.0f} MB")
print(f"  checked: one record per window and key ({windows}), none rejected")
PY
}

# Sluice's job for a query of benchmarks 5 and 8 (the queries of benches/flink/tx_queries.py).
query_job() { # query input output [source connector options]
  tx_table "$2" "${4:-}"
  case "$1" in
    over) cat <<SQL
CREATE TABLE recent (
  tx_hash STRING, currency STRING, event_time BIGINT, fee DOUBLE,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '$3', 'format' = 'parquet');
INSERT INTO recent
SELECT tx_hash, currency, event_time, fee, COUNT(*) OVER w, SUM(fee) OVER w, AVG(fee) OVER w
FROM tx
WINDOW w AS (PARTITION BY currency ORDER BY ts
             RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW);
SQL
    ;;
    *)
      local window
      case "$1" in
        tumble) window="TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE)" ;;
        hop) window="HOP(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE)" ;;
        cumulate) window="CUMULATE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)" ;;
      esac
      cat <<SQL
CREATE TABLE metrics (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '$3', 'format' = 'parquet');
INSERT INTO metrics
SELECT window_start, window_end, currency, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE($window)
GROUP BY window_start, window_end, currency;
SQL
    ;;
  esac
}

# Checks Sluice's output of a query against DuckDB over the same input.
check_query() { # query input output
  local shape=()
  case "$1" in
    over)
      "$python" "$repo/tests/support/compare_over.py" --events "$2" --actual "$3" --key currency \
        --ts event_time --value fee --range-ms 600000 --agg count:tx_count --agg sum:total_fee \
        --agg avg:avg_fee --late-delay-ms 5000 --watermark-interval-ms 200 >/dev/null
      echo "  output checked against DuckDB's window functions: equal"
      return
      ;;
    tumble) shape=(--size-ms 60000) ;;
    hop) shape=(--size-ms 600000 --slide-ms 60000) ;;
    cumulate) shape=(--size-ms 3600000 --step-ms 60000) ;;
  esac
  "$python" "$repo/tests/support/compare.py" --events "$2" --actual "$3" --key currency \
    --ts event_time --value fee "${shape[@]}" --agg count:tx_count --agg sum:total_fee \
    --agg avg:avg_fee --late-delay-ms 5000 --watermark-interval-ms 200 >/dev/null
  echo "  output checked against DuckDB: equal"
}

# Runs a query on Flink (PyFlink, Java 17 on PATH, in a venv of its own installed on first
# use) and on Sluice over the same input, prints both whole-process times and compares the
# outputs row by row.
flink_vs_sluice() { # query
  local venv="$work/flink-venv" query="$1"
  if ! cmp -s "$here/flink/requirements.txt" "$venv/requirements.installed" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$here/flink/requirements.txt"
    cp "$here/flink/requirements.txt" "$venv/requirements.installed"
  fi
  local input flink sluice_s started
  input="$(input_for "$events" 4)"
  rm -rf "$work/flink_out_$query" "$work/sluice_out_$query"
  query_job "$query" "$input" "$work/sluice_out_$query" >"$work/flink_side_$query.sql"
  started=$(date +%s.%N)
  "$venv/bin/python" "$here/flink/tx_queries.py" "$input" "$work/flink_out_$query" \
    --query "$query" --parallelism "$par" >"$work/flink_$query.log" 2>&1
  flink=$(echo "$(date +%s.%N) - $started" | bc)
  started=$(date +%s.%N)
  "$sluice" run "$work/flink_side_$query.sql" --metrics-json "$work/flink_side_$query.metrics.json" \
    2>"$work/flink_side_$query.log"
  sluice_s=$(echo "$(date +%s.%N) - $started" | bc)
  echo "$query: flink $flink s whole process ($(grep -o 'flink_job_seconds.*' "$work/flink_$query.log")); sluice $sluice_s s whole process; speed-up $(echo "scale=1; $flink / $sluice_s" | bc)x"
  check_query "$query" "$input" "$work/sluice_out_$query"
  # Flink's own output (CSV, no header) against Sluice's Parquet, row by row.
  "$python" - "$query" "$work/flink_out_$query" "$work/sluice_out_$query" <<'PY'
import duckdb, glob, os, sys
query, flink_dir, sluice_dir = sys.argv[1:]
flink = [f for f in glob.glob(os.path.join(flink_dir, "**", "*"), recursive=True)
         if os.path.isfile(f) and not os.path.basename(f).startswith(".")]
sluice = glob.glob(os.path.join(sluice_dir, "*.parquet"))
if query == "over":
    columns = {"tx_hash": "VARCHAR", "currency": "VARCHAR", "event_time": "BIGINT", "fee": "DOUBLE"}
    on = ["tx_hash"]
else:
    columns = {"window_start": "TIMESTAMP", "window_end": "TIMESTAMP", "currency": "VARCHAR"}
    on = ["window_start", "window_end", "currency"]
columns.update({"tx_count": "BIGINT", "total_fee": "DOUBLE", "avg_fee": "DOUBLE"})
con = duckdb.connect()
con.execute(f"CREATE VIEW f AS SELECT * FROM read_csv({flink}, header = false, columns = {columns})")
con.execute(f"CREATE VIEW s AS SELECT * FROM read_parquet({sluice})")
rows = con.execute("SELECT count(*) FROM f").fetchone()[0]
close = lambda c: f"abs(f.{c} - s.{c}) > 1e-9 * abs(f.{c}) + 1e-12"
differ = con.execute(f"""SELECT count(*) FROM f FULL JOIN s USING ({', '.join(on)})
  WHERE f.tx_count IS DISTINCT FROM s.tx_count OR {close('total_fee')} OR {close('avg_fee')}
     OR f.currency IS NULL OR s.currency IS NULL""").fetchone()[0]
assert differ == 0, f"{differ} of {rows} rows differ between Flink and Sluice"
print(f"  Flink's output equals Sluice's: {rows} rows")
PY
}

case "${1:-}" in
  tx) tx_bench tx "$events" 4 ;;
  tx-vs-duckdb)
    # Benchmark 1 against DuckDB's batch GROUP BY over the same file (DuckDB from PyPI, 2
    # threads, the result written as Parquet), whole process (start-up included) and peak
    # RSS from /usr/bin/time, ROUNDS (3) rounds alternating; Sluice's output is checked.
    input="$(input_for "$events" 4)"
    out="$work/tx-vs-duckdb_out"; job="$work/tx-vs-duckdb.sql"
    query_job tumble "$input" "$out" >"$job"
    cat >"$work/tx-vs-duckdb.py" <<PY
import duckdb
con = duckdb.connect(config={"threads": 2})
con.execute("""COPY (SELECT to_timestamp((event_time // 60000) * 60) AS window_start, currency,
  count(*) AS tx_count, sum(fee) AS total_fee, avg(fee) AS avg_fee
  FROM read_json('$input', format = 'newline_delimited',
    columns = {'tx_hash': 'VARCHAR', 'block': 'BIGINT', 'fee': 'DOUBLE', 'amount': 'DOUBLE',
               'currency': 'VARCHAR', 'event_time': 'BIGINT'})
  GROUP BY ALL) TO '$work/tx-vs-duckdb.parquet' (FORMAT parquet)""")
PY
    for round in $(seq "${ROUNDS:-3}"); do
      rm -rf "$out"
      /usr/bin/time -f "round $round: sluice %e s, peak RSS %M KB" -o "$work/tx-vs-duckdb.time" \
        "$sluice" run "$job" >/dev/null 2>"$work/tx-vs-duckdb.log" || { cat "$work/tx-vs-duckdb.log"; exit 1; }
      cat "$work/tx-vs-duckdb.time"
      /usr/bin/time -f "round $round: duckdb %e s, peak RSS %M KB" -o "$work/tx-vs-duckdb.time" \
        "$python" "$work/tx-vs-duckdb.py"
      cat "$work/tx-vs-duckdb.time"
    done
    check_query tumble "$input" "$out"
    ;;
  checkpoints)
    # datagen (seeded: the same rows in every run) -> per-minute window over 100,000 keys ->
    # blackhole, so the figures are the engine's and the checkpoints'. Each instance walks
    # the same event-time range, 10 rows per millisecond: 1,200,000 rows and about 100,000
    # keys in every one-minute window.
    rows="${CP_ROWS:-1200000000}"
    half=$((rows / 2))
    written=""
    for interval in none "10 s" "1 s"; do
      name="checkpoints-${interval// /}"
      cp="$work/${name}_cp"; job="$work/$name.sql"
      rm -rf "$cp"
      {
        echo "SET 'parallelism.default' = '$par';"
        [ "$interval" = none ] || printf "SET 'execution.checkpointing.interval' = '%s';\nSET 'state.checkpoints.dir' = '%s';\n" "$interval" "$cp"
        cat <<SQL
CREATE TABLE g (seq BIGINT, fee DOUBLE, k BIGINT,
  ts AS TO_TIMESTAMP_LTZ(1700000000000 + (seq % $half) / 10, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen', 'number-of-rows' = '$rows', 'rows-per-second' = '1000000000',
  'seed' = '42', 'fields.seq.kind' = 'sequence', 'fields.seq.start' = '0',
  'fields.seq.end' = '$((rows - 1))', 'fields.fee.min' = '0', 'fields.fee.max' = '1',
  'fields.k.min' = '0', 'fields.k.max' = '99999');
CREATE TABLE b (ws TIMESTAMP(3), k BIGINT, n BIGINT, total DOUBLE, average DOUBLE)
WITH ('connector' = 'blackhole');
INSERT INTO b SELECT window_start, k, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE(TUMBLE(TABLE g, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, k;
SQL
      } >"$job"
      run_job "$name" "$job"
      written="$written $("$python" - "$work/$name.metrics.json" "$rows" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); rows = int(sys.argv[2])
assert m["records_read"] == rows, m
c = m["checkpoints"]
if c["completed"]:
    print(f"  {c['completed']} checkpoints; last {c['last_ms']:.0f} ms, {c['last_bytes']/1e6:.1f} MB; "
          f"longest {c['max_ms']:.0f} ms, largest {c['max_bytes']/1e6:.1f} MB", file=sys.stderr)
print(m["records_written"])
PY
)"
    done
    # The same seeded rows: every run writes the same windows.
    "$python" - "$rows" $written <<'PY'
import sys
rows, counts = int(sys.argv[1]), [int(c) for c in sys.argv[2:]]
base = 1_700_000_000_000
windows = (base + rows // 2 // 10 - 1) // 60000 - base // 60000 + 1
assert len(set(counts)) == 1, counts
assert windows * 99_000 < counts[0] <= windows * 100_000, (counts, windows)
print(f"  checked: every run wrote the same {counts[0]:,} (window, key) rows, {windows} windows")
PY
    ;;
  featurestore)
    input="$(input_for "${FS_EVENTS:-200000}" 100000)"
    # The embedded store: records go straight into a local store folder.
    rm -rf "$work/fs_local"
    features_job "$input" "local:$work/fs_local" >"$work/fs-local.sql"
    "$sluice" run "$work/fs-local.sql" --metrics-json "$work/featurestore-local.metrics.json" \
      2>"$work/featurestore-local.log"
    features_figures featurestore-local "$input"
    # The served store: PutRecord over HTTP through the AWS SDK.
    rm -rf "$work/fs_served"
    "$sluice" featurestore serve --listen 127.0.0.1:0 --data "$work/fs_served" \
      >"$work/fs_served.out" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    until grep -q "listening on" "$work/fs_served.out" 2>/dev/null; do sleep 0.1; done
    endpoint="$(grep -o 'http://[0-9.:]*' "$work/fs_served.out" | head -n 1)"
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
      AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    "$python" "$repo/tests/support/featurestore_tool.py" create-group --endpoint "$endpoint" \
      --name tx-metrics --id currency --time window_end --features \
      currency:String,window_end:String,tx_count:Integral,total_fee:Fractional,avg_fee:Fractional
    features_job "$input" "$endpoint" >"$work/fs-served.sql"
    "$sluice" run "$work/fs-served.sql" --metrics-json "$work/featurestore-served.metrics.json" \
      2>"$work/featurestore-served.log"
    features_figures featurestore-served "$input"
    ;;
  tx-keys)
    tx_bench tx-keys-1m 1000000 100000
    tx_bench tx-keys "$events" 100000
    ;;
  datagen)
    rows=$((events * 4))
    job="$work/datagen.sql"
    cat >"$job" <<SQL
SET 'parallelism.default' = '$par';
CREATE TABLE g (seq BIGINT, fee DOUBLE, k INT,
  ts AS TO_TIMESTAMP_LTZ(1700000000000 + seq, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen', 'number-of-rows' = '$rows', 'rows-per-second' = '1000000000',
  'fields.seq.kind' = 'sequence', 'fields.seq.start' = '0', 'fields.seq.end' = '$((rows - 1))',
  'fields.fee.min' = '0', 'fields.fee.max' = '1', 'fields.k.min' = '0', 'fields.k.max' = '3');
CREATE TABLE b (ws TIMESTAMP(3), k INT, n BIGINT, total DOUBLE, average DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO b SELECT window_start, k, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE(TUMBLE(TABLE g, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, k;
SQL
    run_job datagen "$job"
    # One row per millisecond: every minute holds 60,000 rows over 4 keys.
    "$python" - "$work/datagen.metrics.json" "$rows" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); rows = int(sys.argv[2])
windows = len(range(1700000000000 // 60000, (1700000000000 + rows - 1) // 60000 + 1))
assert m["records_read"] == rows, m
assert m["records_written"] == windows * 4, (m, windows)
print(f"  checked: {rows} rows read, {windows} windows x 4 keys written")
PY
    ;;
  sink)
    input="$(input_for "$events" 4)"
    out="$work/sink_out"; job="$work/sink.sql"
    rm -rf "$out"
    cat >"$job" <<SQL
SET 'parallelism.default' = '$par';
CREATE TABLE tx (tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING, event_time BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '$input', 'format' = 'json');
CREATE TABLE pq (tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING, event_time BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '$out', 'format' = 'parquet');
INSERT INTO pq SELECT * FROM tx;
SQL
    run_job sink "$job"
    "$python" - "$input" "$out" <<'PY'
import duckdb, sys, glob, os
files = [f for f in glob.glob(os.path.join(sys.argv[2], "*.parquet"))]
a = duckdb.sql(f"select count(*), sum(fee), sum(event_time), count(distinct tx_hash) from read_parquet({files})").fetchall()[0]
b = duckdb.sql(f"select count(*), sum(fee), sum(event_time), count(distinct tx_hash) from read_json('{sys.argv[1]}')").fetchall()[0]
assert a[0] == b[0] and a[2] == b[2] and a[3] == b[3] and abs(a[1] - b[1]) <= 1e-9 * abs(b[1]), (a, b)
print(f"  output checked against DuckDB: {a[0]} rows, same sums and distinct hashes")
PY
    ;;
  two-sinks)
    input="$(input_for "$events" 4)"
    tx_bench one-sink "$events" 4
    for reuse in true false; do
      name="two-sinks-reuse-$reuse"; job="$work/$name.sql"
      rm -rf "$work/${name}_a" "$work/${name}_b"
      {
        tx_table "$input"
        cat <<SQL
SET 'table.optimizer.reuse-sub-plan-enabled' = '$reuse';
CREATE TABLE a (window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = '$work/${name}_a', 'format' = 'parquet');
CREATE TABLE b (window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = '$work/${name}_b', 'format' = 'parquet');
CREATE VIEW per_minute AS
SELECT window_start, window_end, currency, COUNT(*) AS tx_count, SUM(fee) AS total_fee,
       AVG(fee) AS avg_fee
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;
INSERT INTO a SELECT * FROM per_minute;
INSERT INTO b SELECT * FROM per_minute;
SQL
      } >"$job"
      echo "  aggregates in the plan: $("$sluice" explain "$job" | grep -c 'aggregate final')"
      run_job "$name" "$job"
      check_query tumble "$input" "$work/${name}_a"
      check_query tumble "$input" "$work/${name}_b"
    done
    ;;
  kinesis)
    # Benchmark 10: the reference job's window over a Kinesis stream of 100 shards, served
    # from memory by benches/kinesis-server at Kinesis's per-shard read limits; each record
    # is one `datagen tx` line padded to about 1 KB, then the same records packed 20 to a
    # KPL aggregate.
    server_bin="${KINESIS_SERVER:-}"
    if [ -z "$server_bin" ]; then
      cargo build --profile "$profile" --quiet --manifest-path "$repo/Cargo.toml" \
        -p sluice-kinesis-bench --bin kinesis-bench-server
      case "$profile" in
        dev) server_bin="$repo/target/debug/kinesis-bench-server" ;;
        *) server_bin="$repo/target/$profile/kinesis-bench-server" ;;
      esac
    fi
    input="$(input_for "${KINESIS_EVENTS:-1000000}" 4)"
    for variant in plain kpl; do
      name="kinesis-$variant"; out="$work/${name}_out"; job="$work/$name.sql"
      kpl=(); [ "$variant" = kpl ] && kpl=(--kpl 20)
      rm -rf "$out"
      coproc SERVER { exec "$server_bin" "$input" --shards 100 --record-bytes 1000 "${kpl[@]}"; }
      read -r endpoint <&"${SERVER[0]}"
      query_job tumble "$input" "$out" "'connector' = 'kinesis', 'stream' = 'bench', 'format' = 'json',
  'source.init.position' = 'TRIM_HORIZON', 'scan.bounded' = 'latest'" >"$job"
      AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench \
        AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true run_job "$name" "$job"
      "$python" - "$endpoint/stats" "$work/$name.metrics.json" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1]))
m = json.load(open(sys.argv[2]))
secs = m["seconds"]
print(f"  {s['stream_user_records']:,} payloads of {s['stream_user_bytes'] / s['stream_user_records']:.0f} bytes "
      f"({s['stream_records']:,} Kinesis records) over {s['shards']} shards: "
      f"{s['stream_user_bytes'] / secs / 1e6:,.0f} MB/s of payload, {s['stream_user_records'] / secs:,.0f} records/s")
print(f"  GetRecords: {s['get_records_calls']:,} calls, refused by the 5 calls/s limit {s['refused_calls_limit']}, "
      f"by the 2 MiB/s limit {s['refused_bytes_limit']}; shortest gap between calls on one shard {s['min_gap_ms']:.1f} ms; "
      f"server CPU {s['cpu_seconds']:.2f} s")
assert s["records_served"] >= s["stream_records"], s
PY
      kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
      check_query tumble "$input" "$out"
    done
    ;;
  nexmark)
    # Benchmark 11: the Nexmark queries of jobs/nexmark/ (Flink's, unchanged) on the nexmark
    # source, NEXMARK_EVENTS events (10,000,000 a second of event time, as Flink's published
    # runs), parallelism $par, to blackhole sinks. Prints wall time, events/s, CPU seconds
    # (user + system) and events per CPU second (per core).
    n="${NEXMARK_EVENTS:-50000000}"
    for q in ${NEXMARK_QUERIES:-q0 q1 q2 q5 q7 q8}; do
      job="$work/nexmark_$q.sql"
      { echo "SET 'parallelism.default' = '$par';"
        sed -e "s/'events.num' = '10000000'/'events.num' = '$n'/" \
          -e "s/'connector' = 'nexmark',/'connector' = 'nexmark', 'seed' = '1',/" \
          "$repo/jobs/nexmark/$q.sql"; } >"$job"
      /usr/bin/time -f "%e %U %S" -o "$work/nexmark_$q.time" \
        "$sluice" run "$job" --metrics-json "$work/nexmark_$q.metrics.json" 2>"$work/nexmark_$q.log"
      "$python" - "$q" "$n" "$work/nexmark_$q.metrics.json" "$work/nexmark_$q.time" <<'PY'
import json, sys
q, n, metrics, times = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = json.load(open(metrics))
wall, user, system = (float(x) for x in open(times).read().split()[-3:])
cpu = user + system
assert m["records_read"] == n, (m["records_read"], n)
if q in ("q0", "q1") and n % 100 == 0:  # every bid: 46 of every 50 events
    assert m["records_written"] == n // 50 * 46, m["records_written"]
print(f"{q}: {n:,} events in {wall:.2f} s = {n / wall / 1e6:.2f} M events/s; CPU {cpu:.2f} s = "
      f"{n / cpu / 1e6:.2f} M events per CPU second; {m['records_written']:,} rows out, "
      f"late {m['dropped']['late']}, peak RSS {m['peak_rss_bytes'] / 1e6:.0f} MB")
PY
    done
    ;;
  flink) flink_vs_sluice tumble ;;
  flink-windows)
    for query in ${FLINK_QUERIES:-tumble hop cumulate over}; do flink_vs_sluice "$query"; done
    ;;
  link-order)
    command -v valgrind >/dev/null ||
      { echo "run.sh link-order needs valgrind (Debian package valgrind), which is not installed" >&2; exit 1; }
    dir="$work/link-order"
    rm -rf "$dir"; mkdir -p "$dir"
    input="$(input_for 100000 4)"
    callgrind() { # name command...
      local name="$1"; shift
      valgrind --tool=callgrind --demangle=no --dump-instr=no --compress-strings=no \
        --compress-pos=no --callgrind-out-file="$dir/$name.callgrind" "$@" >/dev/null 2>"$dir/$name.log" ||
        { echo "run.sh link-order: the $name job failed under callgrind, see $dir/$name.log" >&2; exit 1; }
    }
    for query in tumble hop cumulate over; do
      query_job "$query" "$input" "$dir/out_$query" >"$dir/$query.sql"
      callgrind "$query" "$sluice" run "$dir/$query.sql"
    done
    (cd "$dir" && callgrind local "$sluice" run "$repo/jobs/tx_metrics_local.sql")
    export LC_ALL=C
    # The rustc that built the binary, from its .comment section: build.rs compares it with
    # its own, since mangled names differ between rustc versions.
    built_by="$(readelf -p .comment "$sluice" | sed -n 's/.*rustc version \(.*\)$/rustc \1/p' | head -n 1)"
    nm --defined-only "$sluice" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u >"$dir/defined"
    { echo "# ${built_by:-rustc unknown}, $profile profile: the functions jobs run (benches/run.sh link-order)"
      sed -n 's/^c\{0,1\}fn=//p' "$dir"/*.callgrind | sort -u | comm -12 - "$dir/defined"; } >"$dir/order"
    [ "$(wc -l <"$dir/order")" -gt 1000 ] ||
      { echo "run.sh link-order: only $(wc -l <"$dir/order") lines in $dir/order; src/link-order.txt left as it was" >&2; exit 1; }
    mv "$dir/order" "$repo/src/link-order.txt"
    echo "src/link-order.txt: $(($(wc -l <"$repo/src/link-order.txt") - 1)) functions"
    ;;
  *)
    sed -n '2,27p' "$0"
    exit 2
    ;;
esac
