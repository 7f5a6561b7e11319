#!/usr/bin/env bash
# Runs one Sluice benchmark on the release build and checks its output before printing the
# figures (events/s, MB/s of input, peak resident memory).
#
#   benches/run.sh tx          # 1. per-minute metrics, 5M events of gen_tx.py (4 keys) -> Parquet
#   benches/run.sh tx-keys     # 2. the same with 100,000 keys, at 1M and at 5M events
#   benches/run.sh datagen     # 3. datagen -> the same window -> blackhole (no JSON)
#   benches/run.sh sink        # 4. 5M rows straight to Parquet (INSERT INTO pq SELECT * FROM tx)
#   benches/run.sh flink       # 5. side by side with Flink (../shared/bench/compare_flink.sh)
#
# env: EVENTS (default 5000000), PARALLELISM (default 2), WORK (default /tmp/sluice-bench)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
shared="$repo/../shared/bench"
work="${WORK:-/tmp/sluice-bench}"
events="${EVENTS:-5000000}"
par="${PARALLELISM:-2}"
mkdir -p "$work"

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
sluice="$repo/target/release/sluice"
python="$(bash "$repo/tests/support/pyenv.sh" | tail -n 1)"

# gen_tx.py input, generated once per (events, keys).
input_for() { # events keys
  local file="$work/tx_$1_k$2.jsonl"
  [ -s "$file" ] || python3 "$shared/gen_tx.py" --events "$1" --keys "$2" "$file"
  echo "$file"
}

metrics_job() { # input output
  cat <<SQL
SET 'parallelism.default' = '$par';
CREATE TABLE tx (
  tx_hash STRING, block BIGINT, fee DOUBLE, amount DOUBLE, currency STRING, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '$1', 'format' = 'json');
CREATE TABLE metrics (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE, avg_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '$2', 'format' = 'parquet');
INSERT INTO metrics
SELECT window_start, window_end, currency, COUNT(*), SUM(fee), AVG(fee)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;
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

check_metrics() { # input output
  "$python" "$repo/tests/support/compare.py" --events "$1" --actual "$2" --key currency \
    --ts event_time --value fee --size-ms 60000 \
    --agg count:tx_count --agg sum:total_fee --agg avg:avg_fee --late-delay-ms 5000 >/dev/null
  echo "  output checked against DuckDB: equal"
}

tx_bench() { # name events keys
  local input out job
  input="$(input_for "$2" "$3")"
  out="$work/$1_out"; job="$work/$1.sql"
  rm -rf "$out"
  metrics_job "$input" "$out" >"$job"
  run_job "$1" "$job"
  check_metrics "$input" "$out"
}

case "${1:-}" in
  tx) tx_bench tx "$events" 4 ;;
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
  flink)
    cmd="$work/sluice_for_flink.sh"
    cat >"$cmd" <<SH
#!/usr/bin/env bash
# compare_flink.sh appends INPUT OUTPUT_DIR.
set -euo pipefail
job="$work/flink_side.sql"
$(declare -f metrics_job)
par=$par
metrics_job "\$1" "\$2" > "\$job"
"$sluice" run "\$job" 2>/dev/null
SH
    chmod +x "$cmd"
    EVENTS="$events" PARALLELISM="$par" WORK="$work" bash "$shared/compare_flink.sh" "$cmd"
    check_metrics "$work/tx_${events}.jsonl" "$work/sluice_out"
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
