//! The filesystem connector end to end: JSON and CSV sources (file and folder), malformed
//! records, Hive-partitioned JSON output and the Parquet file layout Athena needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{
    assert_names_file_and_line, assert_no_hidden_files, assert_rows, bid_job, data_files,
    duckdb_query, json_lines, sort_rows, ten_minute_sums, tumble_sum, JobDir, BID_ROWS, SUM_SINK,
};
use serde_json::{json, Value};

/// The 10-minute sum job over the Bid table, with `from` in its text replaced by `to`.
fn ten_minute_job_with_source(from: &str, to: &str) -> String {
    let job = bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES"));
    assert!(job.contains(from), "job has no {from}");
    job.replacen(from, to, 1)
}

/// The Bid rows as CSV, columns in the table's order.
fn bid_csv() -> String {
    BID_ROWS
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("bid row");
            let field = |k: &str| match &row[k] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!(
                "{},{},{},{}\n",
                field("bidtime"),
                field("price"),
                field("item"),
                field("supplier")
            )
        })
        .collect()
}

/// Runs a 10-minute sum job over the Bid rows in `input` and checks the vector's windows.
fn assert_reads_all_bids(dir: JobDir, job: &str, input: &Path) {
    let run = dir.run_json(job, input, &[]);
    assert_rows(&run.rows, ten_minute_sums());
    assert_eq!(run.metrics.records_read, 6, "records_read");
}

#[test]
fn json_parse_errors_are_skipped_and_counted_when_ignored() {
    let lines: Vec<&str> = BID_ROWS.lines().collect();
    let input = [
        lines[0],
        r#"{"bidtime": "2020-04-15 08:06:00", "price": "#,
        lines[1],
        lines[2],
        "this is not json",
        lines[3],
        lines[4],
        lines[5],
    ]
    .join("\n");
    let job = ten_minute_job_with_source(
        "'format' = 'json'",
        "'format' = 'json', 'json.ignore-parse-errors' = 'true'",
    );
    let dir = JobDir::new();
    let input = dir.write("input.json", &input);
    let run = dir.run_json(&job, &input, &[]);
    assert_rows(&run.rows, ten_minute_sums());
    assert_eq!(run.metrics.malformed, 2, "two malformed lines");
    assert_eq!(run.metrics.late + run.metrics.null_event_time, 0);
}

#[test]
fn folder_source_reads_every_file() {
    let dir = JobDir::new();
    let (first, second) =
        BID_ROWS.split_at(BID_ROWS.match_indices('\n').nth(2).expect("6 rows").0 + 1);
    dir.write("in/a.json", first);
    dir.write("in/b.json", second);
    let folder = dir.path().join("in");
    assert_reads_all_bids(
        dir,
        &bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES")),
        &folder,
    );
}

#[test]
fn csv_source_reads_columns_in_declared_order() {
    let dir = JobDir::new();
    let input = dir.write("input.csv", &bid_csv());
    let job = ten_minute_job_with_source("'format' = 'json'", "'format' = 'csv'");
    assert_reads_all_bids(dir, &job, &input);
}

#[test]
fn malformed_csv_line_fails_naming_file_and_line() {
    let dir = JobDir::new();
    let csv = bid_csv().replacen(",3.0,B,", ",abc,B,", 1);
    assert!(
        csv.lines().nth(3).is_some_and(|l| l.contains("abc")),
        "line 4 is the bad one"
    );
    let input = dir.write("input.csv", &csv);
    let job = ten_minute_job_with_source("'format' = 'json'", "'format' = 'csv'");
    assert_names_file_and_line(&dir.run(&job, &input, &[]), &input, 4);
}

const TX_ROWS: &str = r#"{"tx_hash": "a1", "fee": 0.5, "currency": "BTC", "event_time": 1700000000000}
{"tx_hash": "a2", "fee": 0.25, "currency": "ETH", "event_time": 1700000010000}
{"tx_hash": "a3", "fee": 1.0, "currency": "BTC", "event_time": 1700000020000}
{"tx_hash": "a4", "fee": 4.0, "currency": null, "event_time": 1700000030000}
{"tx_hash": "a5", "fee": 2.0, "currency": "BTC", "event_time": 1700000045000}
"#;

/// Runs a [`tx_job`] over [`TX_ROWS`]; returns its folder (keep it alive) and the sink
/// folder, checked to hold no in-progress file.
fn run_tx_job(job: &str) -> (JobDir, PathBuf) {
    let dir = JobDir::new();
    let input = dir.write("tx.json", TX_ROWS);
    dir.run(job, &input, &[]).assert_success();
    let output = dir.output();
    assert_no_hidden_files(&output);
    (dir, output)
}

/// Per-minute count and total fee per currency (1700000000000 is 2023-11-14 22:13:20 UTC),
/// into a sink declared by `sink`.
fn tx_job(sink: &str) -> String {
    format!(
        "CREATE TABLE tx (
  tx_hash STRING, fee DOUBLE, currency STRING, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
{sink}
INSERT INTO sink
SELECT window_start, window_end, currency, COUNT(*), SUM(fee)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency;
"
    )
}

#[test]
fn partitioned_by_sink_writes_hive_folders_without_the_partition_column() {
    let job = tx_job(
        "CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), currency STRING,
  tx_count BIGINT, total_fee DOUBLE
) PARTITIONED BY (currency)
WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'json');",
    );
    let (_dir, output) = run_tx_job(&job);

    let mut by_folder: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
    for file in data_files(&output, "json") {
        let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
        by_folder
            .entry(folder)
            .or_default()
            .extend(json_lines(&output.join(&file)));
    }
    for rows in by_folder.values_mut() {
        sort_rows(rows);
    }
    let row = |minute: &str, count: u64, fee: f64| {
        json!({"window_start": format!("2023-11-14 22:{minute}:00.000"),
               "window_end": format!("2023-11-14 22:{}:00.000", minute.parse::<u32>().unwrap() + 1),
               "tx_count": count, "total_fee": fee})
    };
    let expected: BTreeMap<PathBuf, Value> = [
        (
            "currency=BTC",
            json!([row("13", 2, 1.5), row("14", 1, 2.0)]),
        ),
        ("currency=ETH", json!([row("13", 1, 0.25)])),
        ("currency=__DEFAULT_PARTITION__", json!([row("13", 1, 4.0)])),
    ]
    .into_iter()
    .map(|(folder, rows)| (PathBuf::from(folder), rows))
    .collect();
    assert_eq!(
        by_folder.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "partition folders (data files directly in the sink folder show as \"\")"
    );
    for (folder, rows) in expected {
        assert_rows(&by_folder[&folder], rows);
    }
}

#[test]
fn parquet_sink_writes_lowercase_columns_and_int64_millisecond_timestamps() {
    let job = tx_job(
        "CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), Currency STRING,
  TxCount BIGINT, total_fee DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'parquet');",
    );
    let (_dir, output) = run_tx_job(&job);
    assert!(
        !data_files(&output, "parquet").is_empty(),
        "no part-*.parquet in {}",
        output.display()
    );

    let schema = duckdb_query(
        &[("m", &output)],
        "SELECT DISTINCT name, type, coalesce(logical_type, '') AS logical, \
         coalesce(converted_type, '') AS converted \
         FROM m_schema WHERE coalesce(num_children, 0) = 0 ORDER BY name",
    );
    let names: Vec<&str> = schema.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "currency",
            "total_fee",
            "txcount",
            "window_end",
            "window_start"
        ]
    );
    for column in schema
        .iter()
        .filter(|c| c["name"].as_str().unwrap_or("").starts_with("window"))
    {
        assert_eq!(column["type"], "INT64", "timestamps are INT64: {column}");
        let unit = format!("{}{}", column["logical"], column["converted"]);
        assert!(
            unit.contains("MILLIS"),
            "timestamps are in milliseconds: {column}"
        );
    }

    let rows = duckdb_query(
        &[("m", &output)],
        "SELECT epoch_ms(window_start) AS ws, epoch_ms(window_end) AS we, currency, txcount, \
         total_fee FROM m ORDER BY ws, currency NULLS LAST",
    );
    let minute = |m: i64| 1_699_999_980_000 + m * 60_000; // 22:13:00 UTC is minute 0
    assert_rows(
        &rows,
        json!([
            {"ws": minute(0), "we": minute(1), "currency": "BTC", "txcount": 2, "total_fee": 1.5},
            {"ws": minute(0), "we": minute(1), "currency": "ETH", "txcount": 1, "total_fee": 0.25},
            {"ws": minute(0), "we": minute(1), "currency": null, "txcount": 1, "total_fee": 4.0},
            {"ws": minute(1), "we": minute(2), "currency": "BTC", "txcount": 1, "total_fee": 2.0},
        ]),
    );
}

/// A JSON source decodes only the columns the job reads (`explain` lists them): a value of
/// the wrong type in a field no query reads does not make the record malformed, as in
/// Flink, whose JSON format converts only the projected fields.
#[test]
fn a_json_source_decodes_only_the_columns_the_job_reads() {
    let dir = JobDir::new();
    let input = dir.write(
        "events.json",
        "{\"id\": 1, \"note\": \"fine\", \"size\": 10}\n\
         {\"id\": 2, \"note\": {\"not\": \"a string\"}, \"size\": 20}\n\
         {\"id\": 3, \"note\": \"fine\", \"size\": \"thirty\"}\n",
    );
    let job = "CREATE TABLE events (id BIGINT, note STRING, size BIGINT)
                 WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json',
                       'json.ignore-parse-errors' = 'true');
               CREATE TABLE sink (id BIGINT, size BIGINT)
                 WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'json');
               INSERT INTO sink SELECT id, size FROM events;";
    let written = crate::common::write_job(
        dir.path(),
        job,
        &[("{input}", &input), ("{output}", &dir.output())],
    );
    let explain = crate::common::sluice()
        .arg("explain")
        .arg(&written)
        .output();
    explain.assert_success();
    assert!(
        explain.stdout.contains("reads (id, size)"),
        "{}",
        explain.stdout
    );
    let run = dir.run_json(job, &input, &[]);
    let mut rows = run.rows;
    sort_rows(&mut rows);
    // Row 2's unread `note` is not a string: still read. Row 3's `size` is read: malformed.
    assert_rows(&rows, json!([{"id": 1, "size": 10}, {"id": 2, "size": 20}]));
    assert_eq!(run.metrics.malformed, 1);
}
