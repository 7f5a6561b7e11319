//! Window joins: the input and expected rows of Flink's Window Join page for INNER, LEFT,
//! RIGHT and FULL joins, and a join of two window aggregates over a million events against
//! DuckDB.

use serde_json::{json, Value};

use crate::common::*;

const LEFT: &str = r#"{"row_time": "2020-04-15 12:02:00", "num": 1, "id": "L1"}
{"row_time": "2020-04-15 12:06:00", "num": 2, "id": "L2"}
{"row_time": "2020-04-15 12:03:00", "num": 3, "id": "L3"}
"#;

const RIGHT: &str = r#"{"row_time": "2020-04-15 12:01:00", "num": 2, "id": "R2"}
{"row_time": "2020-04-15 12:04:00", "num": 3, "id": "R3"}
{"row_time": "2020-04-15 12:05:00", "num": 4, "id": "R4"}
"#;

/// Flink's example: 5-minute TUMBLE windows on both tables (a 5-minute watermark delay,
/// so L3, which comes after L2, is on time), joined on `num` and the window.
fn flink_example(kind: &str, parallelism: &str) -> Vec<Value> {
    let dir = JobDir::new();
    let left = dir.write("left.json", LEFT);
    let right = dir.write("right.json", RIGHT);
    // `{input}` is the left file (the job runner fills it in).
    let table = |name: &str, path: &str| {
        format!(
            "CREATE TABLE {name} (row_time TIMESTAMP(3), num INT, id STRING,
               WATERMARK FOR row_time AS row_time - INTERVAL '5' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json');"
        )
    };
    let job = format!(
        "{}\n{}\n{}
         INSERT INTO sink
         SELECT L.num AS L_Num, L.id AS L_Id, R.num AS R_Num, R.id AS R_Id,
                COALESCE(L.window_start, R.window_start) AS window_start,
                COALESCE(L.window_end, R.window_end) AS window_end
         FROM (SELECT * FROM TABLE(TUMBLE(TABLE LeftTable, DESCRIPTOR(row_time), INTERVAL '5' MINUTES))) L
         {kind} JOIN (SELECT * FROM TABLE(TUMBLE(TABLE RightTable, DESCRIPTOR(row_time), INTERVAL '5' MINUTES))) R
         ON L.num = R.num AND L.window_start = R.window_start AND L.window_end = R.window_end;",
        table("LeftTable", "{input}"),
        table("RightTable", right.to_str().unwrap()),
        json_sink(
            "L_Num INT, L_Id STRING, R_Num INT, R_Id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3)"
        ),
    );
    dir.run_json(&job, &left, &[("parallelism.default", parallelism)])
        .rows
}

fn row(l: Option<(f64, &str)>, r: Option<(f64, &str)>, start: &str, end: &str) -> Value {
    json!({
        "L_Num": l.map(|x| x.0), "L_Id": l.map(|x| x.1),
        "R_Num": r.map(|x| x.0), "R_Id": r.map(|x| x.1),
        "window_start": format!("2020-04-15 {start}:00.000"),
        "window_end": format!("2020-04-15 {end}:00.000"),
    })
}

#[test]
fn window_joins_match_flinks_examples() {
    let l1 = row(Some((1.0, "L1")), None, "12:00", "12:05");
    let l2 = row(Some((2.0, "L2")), None, "12:05", "12:10");
    let l3r3 = row(Some((3.0, "L3")), Some((3.0, "R3")), "12:00", "12:05");
    let r2 = row(None, Some((2.0, "R2")), "12:00", "12:05");
    let r4 = row(None, Some((4.0, "R4")), "12:05", "12:10");
    for parallelism in ["1", "2"] {
        assert_rows(&flink_example("INNER", parallelism), json!([l3r3.clone()]));
        assert_rows(
            &flink_example("LEFT", parallelism),
            json!([l1.clone(), l2.clone(), l3r3.clone()]),
        );
        assert_rows(
            &flink_example("RIGHT", parallelism),
            json!([l3r3.clone(), r2.clone(), r4.clone()]),
        );
        assert_rows(
            &flink_example("FULL", parallelism),
            json!([l1.clone(), l2.clone(), l3r3.clone(), r2.clone(), r4.clone()]),
        );
    }
}

/// A window join's output keeps the left window's `window_time` as its time attribute, so a
/// larger window can aggregate the joined rows (a cascade), none of them late.
#[test]
fn a_window_join_s_window_time_feeds_a_larger_window() {
    let bids = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.0, "supplier_id": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": 2.0, "supplier_id": "s1"}
{"bidtime": "2020-04-15 08:09:00", "price": 5.0, "supplier_id": "s2"}
{"bidtime": "2020-04-15 08:13:00", "price": 1.0, "supplier_id": "s1"}
{"bidtime": "2020-04-15 08:55:00", "price": 3.0, "supplier_id": "s2"}
{"bidtime": "2020-04-15 09:17:00", "price": 6.0, "supplier_id": "s3"}
"#;
    for parallelism in ["1", "2"] {
        let dir = JobDir::new();
        let input = dir.write("bid.json", bids);
        let job = format!(
            "CREATE TABLE Bid (bidtime TIMESTAMP(3), price DOUBLE, supplier_id STRING,
               WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND)
             WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
             {}
             CREATE VIEW totals AS SELECT window_start, window_end, window_time, supplier_id,
               SUM(price) AS price
             FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
             GROUP BY window_start, window_end, window_time, supplier_id;
             CREATE VIEW counts AS SELECT window_start, window_end, supplier_id, COUNT(*) AS cnt
             FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
             GROUP BY window_start, window_end, supplier_id;
             CREATE VIEW joined AS SELECT t.window_time AS wt, t.price, c.cnt FROM totals t
             JOIN counts c ON t.window_start = c.window_start AND t.window_end = c.window_end
              AND t.supplier_id = c.supplier_id;
             INSERT INTO sink SELECT window_start, SUM(cnt) AS bids, SUM(price) AS total
             FROM TABLE(TUMBLE(TABLE joined, DESCRIPTOR(wt), INTERVAL '1' HOUR))
             GROUP BY window_start, window_end;",
            json_sink("window_start TIMESTAMP(3), bids BIGINT, total DOUBLE")
        );
        let job = dir.run_json(&job, &input, &[("parallelism.default", parallelism)]);
        assert_eq!(job.metrics.dropped(), 0);
        assert_rows(
            &job.rows,
            json!([
                {"window_start": "2020-04-15 08:00:00.000", "bids": 5.0, "total": 15.0},
                {"window_start": "2020-04-15 09:00:00.000", "bids": 1.0, "total": 6.0},
            ]),
        );
    }
}

#[test]
fn a_join_that_is_not_a_window_join_is_refused_with_a_sentence() {
    let dir = JobDir::new();
    let left = dir.write("left.json", LEFT);
    let job = format!(
        "CREATE TABLE a (row_time TIMESTAMP(3), num INT, id STRING,
           WATERMARK FOR row_time AS row_time - INTERVAL '5' MINUTE)
         WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         {}
         INSERT INTO sink SELECT x.id, y.id FROM a x JOIN a y ON x.num = y.num;",
        json_sink("l STRING, r STRING")
    );
    let outcome = dir.run(&job, &left, &[]);
    outcome.assert_failure();
    assert!(
        outcome.error_line().contains("window join"),
        "{}",
        outcome.stderr
    );
}

/// Per minute and key: the count of one file's events FULL JOINed with the sum of another's,
/// a million events each, at parallelism 1 and 4, equal to DuckDB's.
#[test]
fn a_join_of_two_window_aggregates_equals_duckdb_on_a_million_events() {
    let dir = JobDir::new();
    let generate = |name: &str, seed: &str, keys: &str| {
        let path = dir.path().join(name);
        run_python(
            "gen_events.py",
            &[
                "--events=1000000",
                &format!("--keys={keys}"),
                "--rate=1000",
                "--disorder-ms=2000",
                "--files=1",
                &format!("--seed={seed}"),
                path.to_str().unwrap(),
            ],
        );
        path
    };
    let a = generate("a.json", "1", "1000");
    let b = generate("b.json", "2", "1200");
    let table = |name: &str, path: &str| {
        format!(
            "CREATE TABLE {name} (k STRING, v DOUBLE, ts BIGINT, event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
               WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND)
             WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json');"
        )
    };
    let job = format!(
        "{}\n{}
         CREATE TABLE sink (ws TIMESTAMP(3), ka STRING, kb STRING, n BIGINT, total DOUBLE)
           WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'parquet');
         INSERT INTO sink SELECT COALESCE(x.window_start, y.window_start), x.k, y.k, x.n, y.total
         FROM (SELECT window_start, window_end, k, COUNT(*) AS n
               FROM TABLE(TUMBLE(TABLE ea, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
               GROUP BY window_start, window_end, k) x
         FULL JOIN (SELECT window_start, window_end, k, SUM(v) AS total
               FROM TABLE(TUMBLE(TABLE eb, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
               GROUP BY window_start, window_end, k) y
         ON x.k = y.k AND x.window_start = y.window_start AND x.window_end = y.window_end;",
        table("ea", "{input}"),
        table("eb", b.to_str().unwrap())
    );
    let expected_sql = format!(
        "WITH x AS (SELECT time_bucket(INTERVAL 1 MINUTE, make_timestamp(ts * 1000)) AS ws, k,
                           count(*) AS n FROM read_json('{}', format = 'newline_delimited') GROUP BY ALL),
              y AS (SELECT time_bucket(INTERVAL 1 MINUTE, make_timestamp(ts * 1000)) AS ws, k,
                           sum(v) AS total FROM read_json('{}', format = 'newline_delimited') GROUP BY ALL)
         SELECT count(*) AS rows, count(x.k) AS left_rows, count(y.k) AS right_rows,
                sum(x.n) AS n, sum(y.total) AS total
         FROM x FULL JOIN y ON x.k = y.k AND x.ws = y.ws",
        a.display(),
        b.display()
    );
    let expected = duckdb_query(&[], &expected_sql);
    for parallelism in ["1", "4"] {
        let run = JobDir::new();
        let outcome = run.run(&job, &a, &[("parallelism.default", parallelism)]);
        outcome.assert_success();
        assert_eq!(outcome.metrics().dropped(), 0);
        let actual = duckdb_query(
            &[("s", &run.output())],
            "SELECT count(*) AS rows, count(ka) AS left_rows, count(kb) AS right_rows,
                    sum(n) AS n, sum(total) AS total,
                    count(*) FILTER (WHERE ka IS NOT NULL AND kb IS NOT NULL AND ka <> kb) AS mismatched
             FROM s",
        );
        let (a, e) = (&actual[0], &expected[0]);
        for key in ["rows", "left_rows", "right_rows", "n"] {
            assert_eq!(
                a[key], e[key],
                "{key} at parallelism {parallelism}: {a} against {e}"
            );
        }
        assert_eq!(a["mismatched"], json!(0));
        let (x, y) = (a["total"].as_f64().unwrap(), e["total"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-9 * y.abs(), "{a} against {e}");
    }
}
