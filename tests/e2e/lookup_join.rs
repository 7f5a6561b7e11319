//! Lookup joins: a stream enriched with a bounded table read whole (`JOIN t FOR SYSTEM_TIME
//! AS OF s.proc_time`), from CSV, JSON and Parquet files, local and on S3; the table read
//! again when its file changes while the job runs; and the mistakes refused with a sentence.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::aws::{aws_tool, moto, unique_stream};
use crate::common::*;

const ORDERS: &str = r#"{"id": 1, "currency": "EUR", "amount": 10.0}
{"id": 2, "currency": "USD", "amount": 20.0}
{"id": 3, "currency": "GBP", "amount": 30.0}
{"id": 4, "currency": null, "amount": 40.0}
{"id": 5, "currency": "EUR", "amount": 50.0}
"#;

/// Orders enriched with `rates` (code, name, usd) read with `rates_options`.
fn enriched(kind: &str, rates_options: &str, condition: &str, parallelism: &str) -> Vec<Value> {
    let dir = JobDir::new();
    let orders = dir.write("orders.json", ORDERS);
    let job = format!(
        "CREATE TABLE orders (id BIGINT, currency STRING, amount DOUBLE, pt AS PROCTIME())
         WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         CREATE TABLE rates (code STRING, name STRING, usd DOUBLE) WITH ({rates_options});
         {}
         INSERT INTO sink SELECT o.id, r.name, o.amount * r.usd
         FROM orders AS o {kind} JOIN rates FOR SYSTEM_TIME AS OF o.pt AS r
           ON o.currency = r.code{condition};",
        json_sink("id BIGINT, name STRING, usd DOUBLE")
    );
    let mut rows = dir
        .run_json(&job, &orders, &[("parallelism.default", parallelism)])
        .rows;
    sort_rows(&mut rows);
    rows
}

fn local_rates(dir: &JobDir, name: &str, contents: &str, format: &str) -> String {
    let path = dir.write(name, contents);
    format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = '{format}'",
        path.display()
    )
}

const RATES_CSV: &str = "EUR,Euro,1.5\nGBP,Pound,2\nGBP,Sterling,3\n";

#[test]
fn inner_and_left_lookup_joins_give_exact_rows_at_any_parallelism() {
    let dir = JobDir::new();
    let csv = local_rates(&dir, "rates/a.csv", RATES_CSV, "csv");
    let inner = json!([
        {"id": 1, "name": "Euro", "usd": 15.0},
        {"id": 3, "name": "Pound", "usd": 60.0},
        {"id": 3, "name": "Sterling", "usd": 90.0},
        {"id": 5, "name": "Euro", "usd": 75.0},
    ]);
    for parallelism in ["1", "2"] {
        assert_rows(&enriched("", &csv, "", parallelism), inner.clone());
    }
    // LEFT keeps the orders without a rate, the one with a NULL currency too.
    assert_rows(
        &enriched("LEFT", &csv, "", "2"),
        json!([
            {"id": 1, "name": "Euro", "usd": 15.0},
            {"id": 2, "name": null, "usd": null},
            {"id": 3, "name": "Pound", "usd": 60.0},
            {"id": 3, "name": "Sterling", "usd": 90.0},
            {"id": 4, "name": null, "usd": null},
            {"id": 5, "name": "Euro", "usd": 75.0},
        ]),
    );
    // A condition besides the keys applies to the joined rows.
    assert_rows(
        &enriched("", &csv, " AND r.usd > 1.5 AND o.amount < 35", "1"),
        json!([
            {"id": 3, "name": "Pound", "usd": 60.0},
            {"id": 3, "name": "Sterling", "usd": 90.0},
        ]),
    );
}

#[test]
fn json_and_parquet_tables_are_looked_up_as_csv_ones() {
    let dir = JobDir::new();
    let json_rates = local_rates(
        &dir,
        "rates.json",
        "{\"code\": \"EUR\", \"name\": \"Euro\", \"usd\": 1.5}\n\
         {\"code\": \"GBP\", \"name\": \"Pound\", \"usd\": 2}\n",
        "json",
    );
    let expected = json!([
        {"id": 1, "name": "Euro", "usd": 15.0},
        {"id": 3, "name": "Pound", "usd": 60.0},
        {"id": 5, "name": "Euro", "usd": 75.0},
    ]);
    assert_rows(&enriched("", &json_rates, "", "1"), expected.clone());
    // Parquet written by DuckDB, its column names in capitals and `usd` a DECIMAL: columns
    // are found by name in any case and cast to the declared types.
    let parquet = dir.path().join("parquet");
    std::fs::create_dir_all(&parquet).expect("create the Parquet folder");
    duckdb_query(
        &[],
        &format!(
            "COPY (SELECT * FROM (VALUES ('EUR', 'Euro', 1.5::DECIMAL(6, 2)),
                                         ('GBP', 'Pound', 2.0::DECIMAL(6, 2)))
                   t(CODE, NAME, USD)) TO '{}' (FORMAT parquet)",
            parquet.join("rates.parquet").display()
        ),
    );
    let parquet_rates = format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet'",
        parquet.display()
    );
    assert_rows(&enriched("", &parquet_rates, "", "2"), expected);
}

#[test]
fn a_table_on_s3_is_looked_up_through_the_aws_chain() {
    let endpoint = &moto().endpoint;
    let bucket = unique_stream("rates");
    aws_tool(
        "s3_tool.py",
        endpoint,
        &["create-bucket", "--bucket", &bucket],
    );
    let dir = JobDir::new();
    let file = dir.write("rates.csv", RATES_CSV);
    for key in ["reference/rates/part-1.csv", "reference/rates/_SUCCESS"] {
        let file = file.display().to_string();
        aws_tool(
            "s3_tool.py",
            endpoint,
            &["put", "--bucket", &bucket, "--key", key, "--file", &file],
        );
    }
    let orders = dir.write("orders.json", ORDERS);
    let job = format!(
        "CREATE TABLE orders (id BIGINT, currency STRING, amount DOUBLE, pt AS PROCTIME())
         WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         CREATE TABLE rates (code STRING, name STRING, usd DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = 's3://{bucket}/reference/rates/',
               'format' = 'csv');
         {}
         INSERT INTO sink SELECT o.id, r.name FROM orders o
         JOIN rates FOR SYSTEM_TIME AS OF o.pt AS r ON o.currency = r.code;",
        json_sink("id BIGINT, name STRING")
    );
    let job = write_job(
        dir.path(),
        &job,
        &[("{input}", &orders), ("{output}", &dir.output())],
    );
    sluice_run(&job).aws(endpoint).output().assert_success();
    let mut rows = read_json_rows(&dir.output());
    sort_rows(&mut rows);
    // `_SUCCESS` is a marker, not a part of the table.
    assert_rows(
        &rows,
        json!([
            {"id": 1, "name": "Euro"}, {"id": 3, "name": "Pound"},
            {"id": 3, "name": "Sterling"}, {"id": 5, "name": "Euro"},
        ]),
    );
}

#[test]
fn a_changed_table_is_read_again_while_the_job_runs() {
    let dir = JobDir::new();
    let rates = dir.write("rates/rates.csv", "K,1\n");
    // 30 rows a second for 8 s, each looked up in the table as it is then.
    let job = format!(
        "CREATE TABLE ticks (id BIGINT, k AS 'K', pt AS PROCTIME())
         WITH ('connector' = 'datagen', 'rows-per-second' = '30', 'number-of-rows' = '240',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '240');
         CREATE TABLE rates (code STRING, version INT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv',
               'lookup.full-cache.periodic-reload.interval' = '200 ms');
         CREATE TABLE seen (id BIGINT, version INT) WITH ('connector' = 'print');
         INSERT INTO seen SELECT t.id, r.version FROM ticks t
         JOIN rates FOR SYSTEM_TIME AS OF t.pt AS r ON t.k = r.code;",
        rates.parent().expect("a folder").display()
    );
    let job = dir.write("job.sql", &job);
    let mut running = sluice_run(&job).set("parallelism.default", "1").spawn();
    running.wait_until(
        Duration::from_secs(60),
        "rows joined with version 1",
        |out, _| out.len() >= 20,
    );
    // A new version replaces the file, as an upload of a new price list does.
    let staged = dir.write("staged.csv", "K,2\n");
    std::fs::rename(&staged, &rates).expect("replace the table's file");
    let outcome = running.finish();
    outcome.assert_success();
    let versions: Vec<(u64, u64)> = outcome
        .stdout
        .lines()
        .filter_map(|l| {
            let inner = l.split_once("+I[")?.1.strip_suffix(']')?;
            let (id, version) = inner.split_once(", ")?;
            Some((id.parse().ok()?, version.parse().ok()?))
        })
        .collect();
    assert_eq!(
        versions.len(),
        240,
        "every tick matched once:\n{}",
        outcome.stdout
    );
    let first_new = versions
        .iter()
        .position(|(_, v)| *v == 2)
        .expect("rows after the change see version 2");
    assert!(first_new >= 20, "{versions:?}");
    assert!(
        versions[..first_new].iter().all(|(_, v)| *v == 1)
            && versions[first_new..].iter().all(|(_, v)| *v == 2),
        "the versions change once, in order: {versions:?}"
    );
}

/// A job that looks `rates` up as `join` says, with `rates` defined by `rates_with`.
fn lookup_job(rates_with: &str, join: &str) -> String {
    format!(
        "CREATE TABLE orders (id BIGINT, currency STRING, ts TIMESTAMP(3), pt AS PROCTIME(),
           WATERMARK FOR ts AS ts)
         WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         CREATE TABLE rates (code STRING, usd DOUBLE) WITH ({rates_with});
         {}
         INSERT INTO sink SELECT o.id, r.usd FROM {join} ON o.currency = r.code;",
        json_sink("id BIGINT, usd DOUBLE")
    )
}

fn plan_error(rates_with: &str, join: &str) -> String {
    let dir = JobDir::new();
    let input = dir.write("orders.json", "");
    let outcome = dir.run(&lookup_job(rates_with, join), &input, &[]);
    outcome.assert_failure();
    outcome.error_line().to_string()
}

#[test]
fn mistakes_are_refused_with_a_sentence() {
    let csv = "'connector' = 'filesystem', 'path' = '/nonexistent/rates', 'format' = 'csv'";
    let error = plan_error(csv, "orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r");
    assert!(
        error.ends_with(
            "job.sql:6:65: FOR SYSTEM_TIME AS OF o.ts: the column is not a processing-time \
             attribute; a lookup join reads the table as it is when each row is processed, at a \
             column declared `AS PROCTIME()` (joins at event time against a versioned table are \
             not supported)"
        ),
        "{error}"
    );
    let error = plan_error(
        "'connector' = 'kinesis', 'stream' = 'rates', 'format' = 'json'",
        "orders o JOIN rates FOR SYSTEM_TIME AS OF o.pt AS r",
    );
    assert!(
        error.contains(
            "table 'rates': a 'kinesis' table cannot be looked up FOR SYSTEM_TIME AS OF; a lookup \
             join reads a bounded 'filesystem' table (local or s3://)"
        ),
        "{error}"
    );
    let error = plan_error(csv, "rates FOR SYSTEM_TIME AS OF o.pt AS r JOIN orders o");
    assert!(
        error.contains("the table looked up FOR SYSTEM_TIME AS OF ('rates') goes on the right"),
        "{error}"
    );
    let error = plan_error(
        &format!("{csv}, 'lookup.cache' = 'PARTIAL'"),
        "orders o JOIN rates FOR SYSTEM_TIME AS OF o.pt AS r",
    );
    assert!(
        error.contains("option 'lookup.cache' = 'PARTIAL' is not supported"),
        "{error}"
    );
    // A table that cannot be read stops the job at its start, naming table and path.
    let dir = JobDir::new();
    let input = dir.write(
        "orders.json",
        "{\"id\": 1, \"currency\": \"EUR\", \"ts\": \"2024-01-01 00:00:00\"}\n",
    );
    let outcome = dir.run(
        &lookup_job(
            &format!("{csv}, 'lookup.max-retries' = '0'"),
            "orders o JOIN rates FOR SYSTEM_TIME AS OF o.pt AS r",
        ),
        &input,
        &[],
    );
    outcome.assert_failure();
    assert!(
        outcome
            .error_line()
            .contains("table 'rates': path '/nonexistent/rates' does not exist"),
        "{}",
        outcome.stderr
    );
}
