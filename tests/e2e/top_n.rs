//! Window Top-N and window deduplication, with the input and expected rows of Flink's
//! documentation (the Bid table of its Window Top-N page).

use serde_json::json;

use crate::common::*;

/// Flink's Window Top-N example table, in event-time order.
const BIDS: &str = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "A", "supplier_id": "supplier1"}
{"bidtime": "2020-04-15 08:06:00", "price": 4.00, "item": "C", "supplier_id": "supplier2"}
{"bidtime": "2020-04-15 08:07:00", "price": 2.00, "item": "G", "supplier_id": "supplier1"}
{"bidtime": "2020-04-15 08:08:00", "price": 2.00, "item": "B", "supplier_id": "supplier3"}
{"bidtime": "2020-04-15 08:09:00", "price": 5.00, "item": "D", "supplier_id": "supplier4"}
{"bidtime": "2020-04-15 08:11:00", "price": 2.00, "item": "B", "supplier_id": "supplier3"}
{"bidtime": "2020-04-15 08:13:00", "price": 1.00, "item": "E", "supplier_id": "supplier1"}
{"bidtime": "2020-04-15 08:15:00", "price": 3.00, "item": "H", "supplier_id": "supplier2"}
{"bidtime": "2020-04-15 08:17:00", "price": 6.00, "item": "F", "supplier_id": "supplier5"}
"#;

const BID_TABLE: &str = "CREATE TABLE Bid (bidtime TIMESTAMP(3), price DOUBLE, item STRING,
  supplier_id STRING, WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');";

fn run(sink_columns: &str, query: &str, parallelism: &str) -> Vec<serde_json::Value> {
    let dir = JobDir::new();
    let input = dir.write("bid.json", BIDS);
    let job = format!(
        "{BID_TABLE}\n{}\nINSERT INTO sink {query};",
        json_sink(sink_columns)
    );
    dir.run_json(&job, &input, &[("parallelism.default", parallelism)])
        .rows
}

const AGGREGATE_TOP_3: &str = "SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS rownum
    FROM (
      SELECT window_start, window_end, supplier_id, SUM(price) AS price, COUNT(*) AS cnt
      FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
      GROUP BY window_start, window_end, supplier_id
    )
  ) WHERE rownum <= 3";

#[test]
fn window_top_n_after_a_window_aggregate_matches_flinks_example() {
    for parallelism in ["1", "3"] {
        let rows = run(
            "window_start TIMESTAMP(3), window_end TIMESTAMP(3), supplier_id STRING, price DOUBLE, cnt BIGINT, rownum BIGINT",
            AGGREGATE_TOP_3,
            parallelism,
        );
        let row = |start: &str, end: &str, s: &str, price: f64, cnt: f64, n: f64| {
            json!({"window_start": format!("2020-04-15 {start}:00.000"), "window_end": format!("2020-04-15 {end}:00.000"),
                   "supplier_id": s, "price": price, "cnt": cnt, "rownum": n})
        };
        assert_rows(
            &rows,
            json!([
                row("08:00", "08:10", "supplier1", 6.0, 2.0, 1.0),
                row("08:00", "08:10", "supplier4", 5.0, 1.0, 2.0),
                row("08:00", "08:10", "supplier2", 4.0, 1.0, 3.0),
                row("08:10", "08:20", "supplier5", 6.0, 1.0, 1.0),
                row("08:10", "08:20", "supplier2", 3.0, 1.0, 2.0),
                row("08:10", "08:20", "supplier3", 2.0, 1.0, 3.0),
            ]),
        );
    }
}

#[test]
fn window_top_n_on_a_window_table_and_window_deduplication_match_flinks_examples() {
    let columns = "bidtime TIMESTAMP(3), price DOUBLE, item STRING, supplier_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), rownum BIGINT";
    let row = |t: &str, price: f64, item: &str, s: &str, start: &str, end: &str, n: f64| {
        json!({"bidtime": format!("2020-04-15 {t}:00.000"), "price": price, "item": item, "supplier_id": s,
               "window_start": format!("2020-04-15 {start}:00.000"), "window_end": format!("2020-04-15 {end}:00.000"), "rownum": n})
    };
    let top_3 = run(
        columns,
        "SELECT * FROM (
           SELECT bidtime, price, item, supplier_id, window_start, window_end,
             ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS rownum
           FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
         ) WHERE rownum <= 3",
        "2",
    );
    assert_rows(
        &top_3,
        json!([
            row("08:05", 4.0, "A", "supplier1", "08:00", "08:10", 2.0),
            row("08:06", 4.0, "C", "supplier2", "08:00", "08:10", 3.0),
            row("08:09", 5.0, "D", "supplier4", "08:00", "08:10", 1.0),
            row("08:11", 2.0, "B", "supplier3", "08:10", "08:20", 3.0),
            row("08:15", 3.0, "H", "supplier2", "08:10", "08:20", 2.0),
            row("08:17", 6.0, "F", "supplier5", "08:10", "08:20", 1.0),
        ]),
    );
    // Window deduplication: the last row of each window.
    let last = run(
        columns,
        "SELECT * FROM (
           SELECT bidtime, price, item, supplier_id, window_start, window_end,
             ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY bidtime DESC) AS rownum
           FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
         ) WHERE rownum = 1",
        "2",
    );
    assert_rows(
        &last,
        json!([
            row("08:09", 5.0, "D", "supplier4", "08:00", "08:10", 1.0),
            row("08:17", 6.0, "F", "supplier5", "08:10", "08:20", 1.0),
        ]),
    );
}

#[test]
fn a_row_number_without_a_window_is_refused_with_a_sentence() {
    let dir = JobDir::new();
    let input = dir.write("bid.json", BIDS);
    let job = format!(
        "{BID_TABLE}\n{}\nINSERT INTO sink SELECT item, rownum FROM (
           SELECT item, ROW_NUMBER() OVER (PARTITION BY supplier_id ORDER BY price DESC) AS rownum
           FROM Bid) WHERE rownum <= 2;",
        json_sink("item STRING, rownum BIGINT")
    );
    let outcome = dir.run(&job, &input, &[]);
    outcome.assert_failure();
    assert!(
        outcome.error_line().contains("window Top-N"),
        "{}",
        outcome.stderr
    );
}

/// A million out-of-order events (1,000 keys, disorder within the watermark delay, so none
/// is late): the top 5 keys by sum per minute, at parallelism 1 and 4, equal to DuckDB's
/// ROW_NUMBER over its batch GROUP BY of the same file.
#[test]
fn window_top_n_equals_duckdb_on_a_million_events() {
    let dir = JobDir::new();
    let events = dir.path().join("events.json");
    run_python(
        "gen_events.py",
        &[
            "--events=1000000",
            "--keys=1000",
            "--rate=1000",
            "--disorder-ms=2000",
            "--files=1",
            events.to_str().unwrap(),
        ],
    );
    let job = "CREATE TABLE events (k STRING, v DOUBLE, ts BIGINT,
  event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE sink (window_start TIMESTAMP(3), k STRING, total DOUBLE, rownum BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'parquet');
INSERT INTO sink SELECT window_start, k, total, rownum FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY total DESC) AS rownum
  FROM (SELECT window_start, window_end, k, SUM(v) AS total
        FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end, k)
) WHERE rownum <= 5;";
    let expected = {
        let sql = format!(
            "SELECT epoch_ms(ws) AS ws, k, rownum, total FROM (
               SELECT ws, k, total, row_number() OVER (PARTITION BY ws ORDER BY total DESC) AS rownum
               FROM (SELECT time_bucket(INTERVAL 1 MINUTE, make_timestamp(ts * 1000)) AS ws, k,
                            sum(v) AS total
                     FROM read_json('{}', format = 'newline_delimited') GROUP BY ALL))
             WHERE rownum <= 5 ORDER BY ws, rownum",
            events.display()
        );
        duckdb_query(&[], &sql)
    };
    assert!(expected.len() > 50, "{}", expected.len());
    for parallelism in ["1", "4"] {
        let run = JobDir::new();
        let outcome = run.run(job, &events, &[("parallelism.default", parallelism)]);
        outcome.assert_success();
        assert_eq!(outcome.metrics().dropped(), 0);
        let output = run.output();
        let actual = duckdb_query(
            &[("s", &output)],
            "SELECT epoch_ms(window_start) AS ws, k, rownum, total FROM s ORDER BY ws, rownum",
        );
        assert_eq!(actual.len(), expected.len(), "parallelism {parallelism}");
        for (a, e) in actual.iter().zip(&expected) {
            assert_eq!(
                (&a["ws"], &a["k"], &a["rownum"]),
                (&e["ws"], &e["k"], &e["rownum"]),
                "parallelism {parallelism}"
            );
            let (x, y) = (a["total"].as_f64().unwrap(), e["total"].as_f64().unwrap());
            assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "{a} against {e}");
        }
    }
}

/// Two bids that arrive after Flink's: supplier5's earliest (08:14, after its 08:17 bid) and
/// supplier6's only one (08:01, more than 5 minutes behind the latest bid).
const LATER_BIDS: &str = r#"{"bidtime": "2020-04-15 08:14:00", "price": 7.00, "item": "Z", "supplier_id": "supplier5"}
{"bidtime": "2020-04-15 08:01:00", "price": 1.00, "item": "L", "supplier_id": "supplier6"}
"#;

/// Deduplication without a window: the first bid of each supplier by bid time. The watermark
/// is 5 minutes behind, so a bid that arrives after a later one of its supplier but within
/// the delay still counts as the first; one older than the watermark is late.
#[test]
fn deduplication_keeps_each_key_s_earliest_on_time_row() {
    let bids = format!("{BIDS}{LATER_BIDS}");
    for parallelism in ["1", "2"] {
        let dir = JobDir::new();
        let input = dir.write("bid.json", &bids);
        let job = format!(
            "{}\n{}\nINSERT INTO sink SELECT supplier_id, item, bidtime, rownum FROM (
               SELECT *, ROW_NUMBER() OVER (PARTITION BY supplier_id ORDER BY bidtime ASC) AS rownum
               FROM Bid) WHERE rownum = 1;",
            BID_TABLE.replace("INTERVAL '1' SECOND", "INTERVAL '5' MINUTE"),
            json_sink("supplier_id STRING, item STRING, bidtime TIMESTAMP(3), rownum BIGINT")
        );
        let job = dir.run_json(&job, &input, &[("parallelism.default", parallelism)]);
        let row = |s: &str, item: &str, t: &str| json!({"supplier_id": s, "item": item, "bidtime": format!("2020-04-15 {t}:00.000"), "rownum": 1.0});
        assert_rows(
            &job.rows,
            json!([
                row("supplier1", "A", "08:05"),
                row("supplier2", "C", "08:06"),
                row("supplier3", "B", "08:08"),
                row("supplier4", "D", "08:09"),
                row("supplier5", "Z", "08:14"),
            ]),
        );
        assert_eq!(job.metrics.dropped(), 1, "the 08:01 bid is late");
    }
}

/// Flink's deduplication example orders by a processing-time attribute: each key's first
/// row to arrive is kept, whatever its event time, and no row is late.
#[test]
fn deduplication_by_processing_time_keeps_each_key_s_first_row_to_arrive() {
    let bids = format!("{BIDS}{LATER_BIDS}");
    for parallelism in ["1", "2"] {
        let dir = JobDir::new();
        let input = dir.write("bid.json", &bids);
        let job = format!(
            "CREATE TABLE Bid (bidtime TIMESTAMP(3), price DOUBLE, item STRING, supplier_id STRING,
               proctime AS PROCTIME())
             WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
             {}
             INSERT INTO sink SELECT supplier_id, item FROM (
               SELECT *, ROW_NUMBER() OVER (PARTITION BY supplier_id ORDER BY proctime ASC) AS row_num
               FROM Bid) WHERE row_num = 1;",
            json_sink("supplier_id STRING, item STRING")
        );
        let job = dir.run_json(&job, &input, &[("parallelism.default", parallelism)]);
        let row = |s: &str, item: &str| json!({"supplier_id": s, "item": item});
        assert_rows(
            &job.rows,
            json!([
                row("supplier1", "A"),
                row("supplier2", "C"),
                row("supplier3", "B"),
                row("supplier4", "D"),
                row("supplier5", "F"),
                row("supplier6", "L"),
            ]),
        );
        assert_eq!(job.metrics.dropped(), 0);
    }
}

#[test]
fn keeping_the_last_row_per_key_is_refused_with_a_sentence() {
    let dir = JobDir::new();
    let input = dir.write("bid.json", BIDS);
    let job = format!(
        "{BID_TABLE}\n{}\nINSERT INTO sink SELECT item, rownum FROM (
           SELECT item, ROW_NUMBER() OVER (PARTITION BY supplier_id ORDER BY bidtime DESC) AS rownum
           FROM Bid) WHERE rownum = 1;",
        json_sink("item STRING, rownum BIGINT")
    );
    let outcome = dir.run(&job, &input, &[]);
    outcome.assert_failure();
    assert!(outcome.error_line().contains("DESC"), "{}", outcome.stderr);
}
