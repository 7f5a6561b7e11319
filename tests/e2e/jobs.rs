//! The example jobs of `jobs/`, run as a user runs them: from a working folder (where their
//! relative `data/` and `out/` paths point), with nothing but the job file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::aws::{aws_tool, moto, unique_stream};
use crate::common::featurestore::{assert_latest, latest_in_parquet};
use crate::common::{
    assert_no_hidden_files, data_files, duckdb_query, gen_tx, run_compare, run_python_file, sluice,
    sluice_run, JobDir, Metrics, Sluice, TumbleCheck, TumbleSummary, Windows, REPO,
};
use serde_json::json;

/// Copies `jobs/<name>` into the working folder, runs it there, asserts success and returns
/// the job text, the Parquet output folder (checked to hold committed files only) and the
/// metrics.
fn run_example(dir: &JobDir, name: &str, output: &str) -> (String, PathBuf, Metrics) {
    run_example_with(dir, name, output, |run| run)
}

/// [`run_example`] with the run given more (environment variables) by `with`.
fn run_example_with(
    dir: &JobDir,
    name: &str,
    output: &str,
    with: impl FnOnce(Sluice) -> Sluice,
) -> (String, PathBuf, Metrics) {
    let text = fs::read_to_string(Path::new(REPO).join("jobs").join(name))
        .unwrap_or_else(|e| panic!("read jobs/{name}: {e}"));
    fs::write(dir.path().join(name), &text).expect("copy the job");
    let run = sluice_run(Path::new(name))
        .current_dir(dir.path())
        .metrics_json(&dir.path().join("metrics.json"));
    let outcome = with(run).output();
    outcome.assert_success();
    let output = dir.path().join(output);
    assert_no_hidden_files(&output);
    assert!(
        !data_files(&output, "parquet").is_empty(),
        "no part-*.parquet in {}",
        output.display()
    );
    (text, output, outcome.metrics())
}

/// Checks a tx_metrics job's Parquet output (count, total and average fee per currency and
/// minute) against DuckDB over the transactions it read.
fn check_tx_metrics(events: &Path, output: &Path) -> TumbleSummary {
    TumbleCheck {
        events,
        output,
        key: "currency",
        ts: "event_time",
        value: "fee",
        size_ms: 60_000,
        windows: Windows::Tumble,
        aggregates: &[
            ("count", "tx_count"),
            ("sum", "total_fee"),
            ("avg", "avg_fee"),
        ],
        lateness: None,
    }
    .run()
}

/// The value of a numeric option `'key' = 'N'` in a job file.
fn option_number(job: &str, key: &str) -> u64 {
    let quoted = format!("'{key}'");
    let line = job
        .lines()
        .find(|l| l.trim_start().starts_with(&quoted))
        .unwrap_or_else(|| panic!("no option {key} in the job"));
    let digits: String = line[line.find('=').expect("key = value") + 1..]
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("option {key} is not a number: {line}"))
}

/// The view both INSERTs of `tx_metrics_local.sql` read is computed once: one window
/// aggregate feeds both sinks (Flink's sub-plan reuse), unless the setting turns it off.
#[test]
fn tx_metrics_local_runs_its_shared_view_once() {
    let job = Path::new(REPO).join("jobs/tx_metrics_local.sql");
    let count = |sets: &[(&str, &str)], what: &str| {
        let outcome = sluice().arg("explain").arg(&job).sets(sets).output();
        outcome.assert_success();
        outcome.stdout.lines().filter(|l| l.contains(what)).count()
    };
    assert_eq!(count(&[], "aggregate final"), 1);
    assert_eq!(count(&[], "] sink "), 2);
    let separate = [("table.optimizer.reuse-sub-plan-enabled", "false")];
    assert_eq!(count(&separate, "aggregate final"), 2);
}

#[test]
fn tx_metrics_local_accounts_for_every_generated_transaction() {
    let dir = JobDir::new();
    let (job, output, metrics) = run_example(&dir, "tx_metrics_local.sql", "out/tx_metrics");
    let generated = option_number(&job, "number-of-rows");
    assert_eq!(metrics.records_read, generated, "records_read");
    // The generator's disorder (up to 2 s) stays within the watermark delay (5 s).
    assert_eq!(metrics.late, 0, "late rows");

    let stats = duckdb_query(
        &[("m", &output)],
        "SELECT sum(tx_count) AS txs, count(*) AS rows_written,
                count(*) - count(DISTINCT (window_start, currency)) AS duplicates,
                count(*) FILTER (WHERE epoch_ms(window_end) - epoch_ms(window_start) <> 60000
                                    OR epoch_ms(window_start) % 60000 <> 0) AS not_one_minute,
                count(*) FILTER (WHERE abs(avg_fee * tx_count - total_fee) > 1e-9 * total_fee)
                    AS avg_not_total_over_count,
                count(*) FILTER (WHERE avg_fee < 0 OR avg_fee > 0.001) AS avg_out_of_range,
                min(epoch_ms(window_start)) AS first_window
         FROM m",
    );
    let stats = &stats[0];
    assert_eq!(
        stats["txs"],
        json!(metrics.records_read - metrics.dropped()),
        "{stats}"
    );
    // Both sinks (Parquet and the feature store) get every row.
    assert_eq!(
        stats["rows_written"],
        json!(metrics.records_written / 2),
        "{stats}"
    );
    for check in [
        "duplicates",
        "not_one_minute",
        "avg_not_total_over_count",
        "avg_out_of_range",
    ] {
        assert_eq!(stats[check], json!(0), "{check}: {stats}");
    }
    // Event time starts at 1700000000000 (22:13:20 UTC) minus at most 2 s.
    assert_eq!(
        stats["first_window"],
        json!(1_699_999_980_000_u64),
        "{stats}"
    );

    // The currency is the sequence number modulo 4: each gets exactly a quarter.
    let per_currency = duckdb_query(
        &[("m", &output)],
        "SELECT currency, sum(tx_count) AS txs FROM m GROUP BY currency ORDER BY currency",
    );
    let quarter = generated / 4;
    assert_eq!(
        per_currency,
        ["ADA", "BTC", "ETH", "SOL"].map(|c| json!({"currency": c, "txs": quarter})),
    );

    // The local feature store: `sluice featurestore get` prints each currency's latest
    // minute, and the offline store holds every minute once.
    let mut store = BTreeMap::new();
    for currency in ["ADA", "BTC", "ETH", "SOL"] {
        let out = sluice()
            .args(&["featurestore", "get", "tx-metrics", currency])
            .current_dir(dir.path())
            .output();
        out.assert_success();
        let record: BTreeMap<String, String> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        store.insert(currency.to_string(), record);
    }
    assert_latest(&store, &latest_in_parquet(&output));
    let offline = duckdb_query(
        &[
            ("o", &dir.path().join("out/featurestore/offline")),
            ("m", &output),
        ],
        "SELECT (SELECT count(*) FROM o) AS offline_rows,
                (SELECT count(DISTINCT (currency, window_end)) FROM o) AS offline_windows,
                (SELECT count(*) FROM m) AS windows",
    );
    let windows = &offline[0]["windows"];
    assert_eq!(offline[0]["offline_rows"], *windows, "{offline:?}");
    assert_eq!(offline[0]["offline_windows"], *windows, "{offline:?}");
}

#[test]
fn tx_metrics_file_matches_duckdb_over_generated_transactions() {
    let dir = JobDir::new();
    let events = dir.path().join("data/tx.jsonl");
    fs::create_dir_all(events.parent().expect("data/")).expect("create data/");
    let generated = 20_000;
    // As jobs/README.md makes the input.
    gen_tx(&events, generated, &[]);

    let (_, output, metrics) = run_example(&dir, "tx_metrics_file.sql", "out/tx_metrics_file");
    assert_eq!(metrics.records_read, generated, "records_read");
    assert_eq!(
        metrics.dropped(),
        0,
        "the generator's 2 s disorder is within the 5 s delay"
    );
    let summary = check_tx_metrics(&events, &output);
    assert_eq!(metrics.records_written, summary.actual_rows);
}

#[test]
fn tx_largest_file_matches_duckdb_over_generated_transactions() {
    let dir = JobDir::new();
    let events = dir.path().join("data/tx.jsonl");
    fs::create_dir_all(events.parent().expect("data/")).expect("create data/");
    // As jobs/README.md makes the input.
    gen_tx(&events, 20_000, &[]);
    let (_, output, metrics) = run_example(&dir, "tx_largest_file.sql", "out/tx_largest");
    assert_eq!(metrics.dropped(), 0);
    // DuckDB's ROW_NUMBER over the same file, per minute and currency.
    let sql = format!(
        "WITH r AS (
           SELECT epoch_ms(time_bucket(INTERVAL 1 MINUTE, make_timestamp(event_time * 1000)))
                    AS ws, currency, tx_hash, amount,
                  row_number() OVER (PARTITION BY time_bucket(INTERVAL 1 MINUTE,
                    make_timestamp(event_time * 1000)), currency ORDER BY amount DESC) AS rn
           FROM read_json('{}', format = 'newline_delimited'))
         SELECT
           (SELECT count(*) FROM r WHERE rn <= 3) AS expected,
           (SELECT count(*) FROM s) AS actual,
           (SELECT count(*) FROM (SELECT ws, currency, rn, tx_hash, amount FROM r WHERE rn <= 3)
              e FULL JOIN (SELECT epoch_ms(window_start) AS ws, currency,
                                  rank_in_minute AS rn, tx_hash, amount FROM s) a
              USING (ws, currency, rn)
            WHERE e.tx_hash IS DISTINCT FROM a.tx_hash OR e.amount IS DISTINCT FROM a.amount)
             AS different",
        events.display()
    );
    let stats = &duckdb_query(&[("s", &output)], &sql)[0];
    assert_eq!(stats["different"], json!(0), "{stats}");
    assert_eq!(stats["expected"], stats["actual"], "{stats}");
    assert!(stats["actual"].as_u64() > Some(12), "{stats}");
    assert_eq!(Some(metrics.records_written), stats["actual"].as_u64());
}

/// Generates `events` transactions into `data/tx.jsonl` of `dir`, as jobs/README.md does,
/// and runs example `name` over them with nothing dropped; returns the input and output.
fn run_tx_example(dir: &JobDir, events: u64, name: &str, output: &str) -> (PathBuf, PathBuf) {
    let input = dir.path().join("data/tx.jsonl");
    fs::create_dir_all(input.parent().expect("data/")).expect("create data/");
    gen_tx(&input, events, &[]);
    let (_, output, metrics) = run_example(dir, name, output);
    assert_eq!(metrics.dropped(), 0);
    (input, output)
}

/// DuckDB's `stats` over the transactions (view `t`, with more views in `views`: `, v AS
/// (...)`) and Sluice's output (view `s`).
fn tx_stats(input: &Path, output: &Path, views: &str, stats: &str) -> serde_json::Value {
    let sql = format!(
        "WITH t AS (SELECT * FROM read_json('{}', format = 'newline_delimited')){views}
         SELECT {stats}",
        input.display()
    );
    duckdb_query(&[("s", output)], &sql).remove(0)
}

#[test]
fn tx_first_in_block_keeps_each_block_and_currency_s_earliest_transaction() {
    let dir = JobDir::new();
    let (input, output) = run_tx_example(
        &dir,
        20_000,
        "tx_first_in_block.sql",
        "out/tx_first_in_block",
    );
    let stats = tx_stats(
        &input,
        &output,
        "",
        "(SELECT count(DISTINCT (block, currency)) FROM t) AS expected,
         (SELECT count(*) FROM s) AS actual,
         (SELECT count(*) FROM s
            LEFT JOIN (SELECT block, currency, min(event_time) AS first FROM t GROUP BY ALL) m
              USING (block, currency)
            LEFT JOIN t USING (tx_hash)
          WHERE m.first IS DISTINCT FROM epoch_ms(s.tx_time)
             OR t.event_time IS DISTINCT FROM m.first OR t.amount <> s.amount) AS different",
    );
    assert_eq!(stats["different"], json!(0), "{stats}");
    assert_eq!(stats["expected"], stats["actual"], "{stats}");
    assert!(stats["actual"].as_u64() > Some(20), "{stats}");
}

#[test]
fn tx_large_share_window_joins_all_and_large_transactions_per_minute() {
    let dir = JobDir::new();
    let (input, output) = run_tx_example(&dir, 20_000, "tx_large_share.sql", "out/tx_large_share");
    let stats = tx_stats(
        &input,
        &output,
        ", e AS (
           SELECT epoch_ms(time_bucket(INTERVAL 1 MINUTE, make_timestamp(event_time * 1000)))
                    AS ws, currency, count(*) AS n,
                  nullif(count(*) FILTER (WHERE amount >= 4.5), 0) AS large,
                  sum(amount) FILTER (WHERE amount >= 4.5) AS amount
           FROM t GROUP BY ALL)",
        "(SELECT count(*) FROM e) AS expected, (SELECT count(*) FROM s) AS actual,
         (SELECT count(*) FROM e FULL JOIN (SELECT epoch_ms(window_start) AS ws, * FROM s) a
            USING (ws, currency)
          WHERE e.n IS DISTINCT FROM a.tx_count OR e.large IS DISTINCT FROM a.large_count
             OR abs(coalesce(e.amount, 0) - coalesce(a.large_amount, 0)) > 1e-9)
           AS different",
    );
    assert_eq!(stats["different"], json!(0), "{stats}");
    assert_eq!(stats["expected"], stats["actual"], "{stats}");
    assert_eq!(stats["actual"], json!(16), "{stats}");
}

#[test]
fn tx_whale_followups_interval_joins_the_stream_with_itself() {
    let dir = JobDir::new();
    let (input, output) = run_tx_example(
        &dir,
        200_000,
        "tx_whale_followups.sql",
        "out/tx_whale_followups",
    );
    let stats = tx_stats(
        &input,
        &output,
        ", w AS (SELECT * FROM t WHERE amount >= 4.99),
         pairs AS (SELECT a.tx_hash AS a, b.tx_hash AS b FROM w a JOIN w b
                   ON a.currency = b.currency AND b.event_time > a.event_time
                  AND b.event_time <= a.event_time + 10000)",
        "(SELECT count(*) FROM pairs) AS expected, (SELECT count(*) FROM s) AS actual,
         (SELECT count(*) FROM pairs p FULL JOIN s ON p.a = s.first_hash AND p.b = s.next_hash
          WHERE p.a IS NULL OR s.first_hash IS NULL) AS different",
    );
    assert_eq!(stats["different"], json!(0), "{stats}");
    assert_eq!(stats["expected"], stats["actual"], "{stats}");
    assert!(stats["actual"].as_u64() > Some(50), "{stats}");
}

#[test]
fn tx_metrics_enriched_looks_each_minute_s_currency_up_in_a_csv_table_on_s3() {
    let endpoint = &moto().endpoint;
    let bucket = unique_stream("reference");
    aws_tool(
        "s3_tool.py",
        endpoint,
        &["create-bucket", "--bucket", &bucket],
    );
    let dir = JobDir::new();
    // The reference table as jobs/README.md uploads it, less ADA: ADA's minutes are written
    // with NULL name and value.
    let reference = fs::read_to_string(Path::new(REPO).join("jobs/reference/currencies.csv"))
        .expect("read jobs/reference/currencies.csv");
    let without_ada: String = reference
        .lines()
        .filter(|l| !l.starts_with("ADA,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let table = dir.write("currencies.csv", &without_ada);
    aws_tool(
        "s3_tool.py",
        endpoint,
        &[
            "put",
            "--bucket",
            &bucket,
            "--key",
            "reference/currencies/currencies.csv",
            "--file",
            &table.display().to_string(),
        ],
    );
    let events = dir.path().join("data/tx.jsonl");
    fs::create_dir_all(events.parent().expect("data/")).expect("create data/");
    gen_tx(&events, 20_000, &[]);
    let path = format!("s3://{bucket}/reference/currencies/");
    let (_, output, metrics) = run_example_with(
        &dir,
        "tx_metrics_enriched.sql",
        "out/tx_metrics_enriched",
        |run| run.aws(endpoint).env("CURRENCIES_PATH", &path),
    );
    assert_eq!(metrics.dropped(), 0);
    // DuckDB's per-minute metrics over the same file, joined with the same CSV.
    let sql = format!(
        "WITH e AS (
           SELECT epoch_ms(time_bucket(INTERVAL 1 MINUTE, make_timestamp(event_time * 1000)))
                    AS ws, currency, count(*) AS n, sum(fee) AS fee
           FROM read_json('{}', format = 'newline_delimited') GROUP BY ALL),
         c AS (SELECT * FROM read_csv('{}', header = false, columns = {{
                 'code': 'VARCHAR', 'name': 'VARCHAR', 'decimals': 'INTEGER',
                 'usd_price': 'DOUBLE'}})),
         expected AS (SELECT ws, currency, n, fee, name, fee * usd_price AS usd
                      FROM e LEFT JOIN c ON e.currency = c.code),
         actual AS (SELECT epoch_ms(window_start) AS ws, currency, tx_count AS n,
                           total_fee AS fee, currency_name AS name, total_fee_usd AS usd
                    FROM s)
         SELECT
           (SELECT count(*) FROM expected) AS expected,
           (SELECT count(*) FROM actual) AS actual,
           (SELECT count(*) FROM actual WHERE name IS NULL) AS unnamed,
           (SELECT count(*) FROM expected x FULL JOIN actual a USING (ws, currency)
            WHERE x.n IS DISTINCT FROM a.n OR x.name IS DISTINCT FROM a.name
               OR abs(x.fee - a.fee) > 1e-9 OR (x.usd IS NULL) <> (a.usd IS NULL)
               OR abs(x.usd - a.usd) > 1e-9 * abs(x.usd)) AS different",
        events.display(),
        table.display()
    );
    let stats = &duckdb_query(&[("s", &output)], &sql)[0];
    assert_eq!(stats["different"], json!(0), "{stats}");
    assert_eq!(stats["expected"], stats["actual"], "{stats}");
    // 200 s of event time: 4 minutes, one currency in four without a name.
    assert_eq!(stats["actual"], json!(16), "{stats}");
    assert_eq!(stats["unnamed"], json!(4), "{stats}");
}

#[test]
fn tx_metrics_kinesis_reads_the_producer_s_stream_and_writes_every_sink() {
    use crate::common::aws::{aws_tool, kinesis_tool, moto, s3_fetch};
    use crate::common::featurestore::{create_group, dump, Server};

    let endpoint = &moto().endpoint;
    let dir = JobDir::new();
    let generated = 20_000u64;
    // The producer as jobs/README.md runs it, and the same transactions into a file for
    // DuckDB (the producer runs `sluice datagen tx` with the same defaults).
    run_python_file(
        &Path::new(REPO).join("jobs/kinesis_producer.py"),
        &[
            "--stream",
            "tx",
            "--create-shards",
            "4",
            "--count",
            &generated.to_string(),
            "--endpoint",
            endpoint,
            "--sluice",
            env!("CARGO_BIN_EXE_sluice"),
        ],
    );
    kinesis_tool(
        endpoint,
        &["create", "--stream", "tx_metrics", "--shards", "2"],
    );
    let events = dir.path().join("tx.jsonl");
    gen_tx(&events, generated, &[]);
    let bucket = "tx-metrics-job";
    aws_tool(
        "s3_tool.py",
        endpoint,
        &["create-bucket", "--bucket", bucket],
    );

    // The feature store, served locally, with the group jobs/README.md creates.
    let store = Server::start(&dir.path().join("featurestore"));
    create_group(&store.endpoint, "tx-metrics");

    let name = "tx_metrics_kinesis.sql";
    let text = fs::read_to_string(Path::new(REPO).join("jobs").join(name)).expect("read the job");
    fs::write(dir.path().join(name), &text).expect("copy the job");
    let outcome = sluice_run(Path::new(name))
        .current_dir(dir.path())
        .aws(endpoint)
        .env("SLUICE_BUCKET", bucket)
        .env("GLUE_DATABASE", "analytics")
        .env("AWS_ENDPOINT_URL_SAGEMAKER", &store.endpoint)
        .env(
            "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME",
            &store.endpoint,
        )
        .metrics_json(&dir.path().join("metrics.json"))
        .output();
    outcome.assert_success();
    let metrics = outcome.metrics();
    assert_eq!(metrics.records_read, generated);
    assert_eq!(metrics.dropped(), 0);
    // Parquet on S3, in day and hour folders registered in Glue, each with its _SUCCESS.
    let output = dir.path().join("s3");
    s3_fetch(endpoint, bucket, "tx_metrics/", &output);
    assert_no_hidden_files(&output);
    let summary = check_tx_metrics(&events, &output);
    let glue: serde_json::Value = serde_json::from_str(&aws_tool(
        "s3_tool.py",
        endpoint,
        &[
            "glue-table",
            "--database",
            "analytics",
            "--table",
            "tx_metrics",
        ],
    ))
    .expect("glue-table prints JSON");
    let partitions: Vec<serde_json::Value> = duckdb_query(
        &[("m", &output)],
        "SELECT DISTINCT strftime(window_start, '%Y-%m-%d') AS dt, strftime(window_start, '%H') AS hr
         FROM m ORDER BY dt, hr",
    )
    .iter()
    .map(|r| {
        let (dt, hr) = (r["dt"].as_str().unwrap(), r["hr"].as_str().unwrap());
        assert!(
            output.join(format!("dt={dt}/hr={hr}/_SUCCESS")).exists(),
            "no _SUCCESS in dt={dt}/hr={hr}"
        );
        json!([[dt, hr], format!("s3://{bucket}/tx_metrics/dt={dt}/hr={hr}/")])
    })
    .collect();
    assert_eq!(glue["partitions"], json!(partitions), "{glue}");
    // The same rows went to the tx_metrics stream, each once, keyed by currency.
    let read = dir.path().join("tx_metrics.jsonl");
    kinesis_tool(
        endpoint,
        &[
            "read",
            "--stream",
            "tx_metrics",
            "--out",
            &read.display().to_string(),
        ],
    );
    let records: Vec<serde_json::Value> = fs::read_to_string(&read)
        .expect("read the stream dump")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.len() as u64, summary.actual_rows);
    let from_stream: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| {
            let row: serde_json::Value =
                serde_json::from_str(r["data"].as_str().expect("utf-8 data")).expect("JSON");
            assert_eq!(r["key"], row["currency"]);
            format!(
                "{} {} {}",
                row["window_start"], row["currency"], row["tx_count"]
            )
        })
        .collect();
    let from_parquet: std::collections::BTreeSet<String> = duckdb_query(
        &[("m", &output)],
        "SELECT strftime(window_start, '%Y-%m-%d %H:%M:%S.%g') AS s, currency, tx_count FROM m",
    )
    .iter()
    .map(|r| {
        format!(
            "\"{}\" {} {}",
            r["s"].as_str().unwrap(),
            r["currency"],
            r["tx_count"]
        )
    })
    .collect();
    assert_eq!(from_stream, from_parquet);

    // Feature Store holds each currency's latest minute.
    let latest = latest_in_parquet(&output);
    let ids: Vec<String> = latest
        .iter()
        .map(|r| r["currency"].as_str().expect("currency").to_string())
        .collect();
    assert_latest(&dump(&store.endpoint, "tx-metrics", &ids), &latest);
}

#[test]
fn fraud_features_match_duckdb_and_the_online_store_keeps_each_card_s_latest() {
    let dir = JobDir::new();
    let events = dir.path().join("data/cards.jsonl");
    fs::create_dir_all(events.parent().expect("data/")).expect("create data/");
    let generated = 50_000;
    // As jobs/README.md makes the input.
    sluice()
        .args(&["datagen", "cards", &format!("--events={generated}")])
        .arg(&events)
        .output()
        .assert_success();
    let (_, output, metrics) = run_example(&dir, "fraud_features.sql", "out/card_features");
    assert_eq!(metrics.records_read, generated, "records_read");
    assert_eq!(metrics.dropped(), 0, "2 s of disorder within a 5 s delay");
    // Every transaction has one row in each sink.
    assert_eq!(metrics.records_written, 2 * generated);
    let summary = compare_over_features(&events, &output);
    assert_eq!(summary["actual_rows"], json!(generated), "{summary}");

    // The online store holds each card's features of its latest transaction: check the
    // busiest cards (those under attack), whose latest time is unique.
    let latest = duckdb_query(
        &[("f", &output)],
        "SELECT card_id, tx_count_10m, avg_amount_10m FROM (
           SELECT *, count(*) OVER (PARTITION BY card_id, event_time) AS same_time,
                  max(event_time) OVER (PARTITION BY card_id) AS last_time,
                  count(*) OVER (PARTITION BY card_id) AS txs
           FROM f)
         WHERE event_time = last_time AND same_time = 1
         ORDER BY txs DESC, card_id LIMIT 5",
    );
    assert_eq!(latest.len(), 5, "{latest:?}");
    for row in latest {
        let card = row["card_id"].as_str().expect("a card id");
        let out = sluice()
            .args(&["featurestore", "get", "card-features", card])
            .current_dir(dir.path())
            .output();
        out.assert_success();
        let record: BTreeMap<String, String> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        assert_eq!(
            record["tx_count_10m"],
            row["tx_count_10m"].to_string(),
            "{card}: {record:?}"
        );
        let avg: f64 = record["avg_amount_10m"].parse().expect("a number");
        let expected = row["avg_amount_10m"].as_f64().expect("a number");
        assert!(
            (avg - expected).abs() <= 1e-9 * expected,
            "{card}: {record:?}"
        );
    }
}

/// Checks `jobs/fraud_features.sql`'s Parquet output (per card, over the 10 minutes up to
/// each transaction: count, average and largest amount) with compare_over.py against
/// DuckDB's window functions over the card transactions it read (watermark 5 s behind).
fn compare_over_features(events: &Path, output: &Path) -> serde_json::Value {
    let (events, output) = (events.display().to_string(), output.display().to_string());
    run_compare(
        "compare_over.py",
        &[
            "--events",
            &events,
            "--actual",
            &output,
            "--key",
            "card_id",
            "--ts",
            "event_time",
            "--value",
            "amount",
            "--range-ms",
            "600000",
            "--agg",
            "count:tx_count_10m",
            "--agg",
            "avg:avg_amount_10m",
            "--agg",
            "max:max_amount_10m",
            "--late-delay-ms",
            "5000",
            "--watermark-interval-ms",
            "200",
        ],
    )
}
