//! Interval joins: orders and their shipments within an hour, exact rows for INNER, LEFT,
//! RIGHT and FULL; and a million events on each side against DuckDB.

use serde_json::{json, Value};

use crate::common::*;

const ORDERS: &str = r#"{"o_time": "2020-04-15 10:00:00", "id": "o1"}
{"o_time": "2020-04-15 10:05:00", "id": "o2"}
{"o_time": "2020-04-15 10:20:00", "id": "o3"}
"#;

const SHIPMENTS: &str = r#"{"s_time": "2020-04-15 10:25:00", "order_id": "o3"}
{"s_time": "2020-04-15 10:30:00", "order_id": "o1"}
{"s_time": "2020-04-15 10:40:00", "order_id": "o4"}
{"s_time": "2020-04-15 11:10:00", "order_id": "o2"}
"#;

/// The orders table (at `{input}`) and the shipments table (at `shipments`), each with a
/// watermark 1 s behind its time.
fn tables(shipments: &std::path::Path) -> String {
    format!(
        "CREATE TABLE orders (o_time TIMESTAMP(3), id STRING,
           WATERMARK FOR o_time AS o_time - INTERVAL '1' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         CREATE TABLE shipments (s_time TIMESTAMP(3), order_id STRING,
           WATERMARK FOR s_time AS s_time - INTERVAL '1' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
        shipments.display()
    )
}

fn shipped(kind: &str, parallelism: &str) -> Vec<Value> {
    let dir = JobDir::new();
    let orders = dir.write("orders.json", ORDERS);
    let shipments = dir.write("shipments.json", SHIPMENTS);
    let job = format!(
        "{}
         {}
         INSERT INTO sink SELECT o.id, o.o_time, s.order_id, s.s_time
         FROM orders o {kind} JOIN shipments s
         ON o.id = s.order_id AND s.s_time BETWEEN o.o_time AND o.o_time + INTERVAL '1' HOUR;",
        tables(&shipments),
        json_sink("id STRING, o_time TIMESTAMP(3), order_id STRING, s_time TIMESTAMP(3)")
    );
    dir.run_json(&job, &orders, &[("parallelism.default", parallelism)])
        .rows
}

fn row(order: Option<(&str, &str)>, shipment: Option<(&str, &str)>) -> Value {
    let t = |x: &str| format!("2020-04-15 {x}:00.000");
    json!({
        "id": order.map(|o| o.0), "o_time": order.map(|o| t(o.1)),
        "order_id": shipment.map(|s| s.0), "s_time": shipment.map(|s| t(s.1)),
    })
}

#[test]
fn interval_joins_pair_rows_within_the_interval() {
    let o1 = row(Some(("o1", "10:00")), Some(("o1", "10:30")));
    let o3 = row(Some(("o3", "10:20")), Some(("o3", "10:25")));
    let o2 = row(Some(("o2", "10:05")), None);
    let s2 = row(None, Some(("o2", "11:10")));
    let s4 = row(None, Some(("o4", "10:40")));
    for parallelism in ["1", "2"] {
        assert_rows(
            &shipped("INNER", parallelism),
            json!([o1.clone(), o3.clone()]),
        );
        assert_rows(
            &shipped("LEFT", parallelism),
            json!([o1.clone(), o2.clone(), o3.clone()]),
        );
        assert_rows(
            &shipped("RIGHT", parallelism),
            json!([o1.clone(), o3.clone(), s2.clone(), s4.clone()]),
        );
        assert_rows(
            &shipped("FULL", parallelism),
            json!([o1.clone(), o2.clone(), o3.clone(), s2.clone(), s4.clone()]),
        );
    }
}

/// A million events on each side, 100,000 keys, joined within 10 seconds either way,
/// LEFT: the pairs and the unmatched left rows equal DuckDB's, at parallelism 1 and 4.
/// The join's output keeps the orders' time as its time attribute: a window aggregates the
/// pairs by order time, and no pair is late (the join holds its watermark back by the
/// interval's width). Orders come one a second for over 8 hours and each is shipped 50
/// minutes later, so most pairs are found long after their order time, batches apart.
#[test]
fn the_pairs_of_an_interval_join_can_be_windowed_on_the_left_time() {
    const ORDERS: u32 = 30_000;
    let time = |s: u32| {
        let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
        format!("2020-04-15 {:02}:{m:02}:{s:02}", h + 6)
    };
    let mut orders = String::new();
    let mut shipments = String::new();
    for i in 0..ORDERS {
        orders.push_str(&format!(
            "{{\"o_time\": \"{}\", \"id\": \"o{i}\"}}\n",
            time(i)
        ));
        shipments.push_str(&format!(
            "{{\"s_time\": \"{}\", \"order_id\": \"o{i}\"}}\n",
            time(i + 3000)
        ));
    }
    let expected: Vec<serde_json::Value> = (0..ORDERS.div_ceil(3600))
        .map(|h| {
            json!({"window_start": format!("{}.000", time(h * 3600)),
                   "shipped": f64::from((ORDERS - h * 3600).min(3600))})
        })
        .collect();
    for parallelism in ["1", "2"] {
        let dir = JobDir::new();
        let orders = dir.write("orders.json", &orders);
        let shipments = dir.write("shipments.json", &shipments);
        let job = format!(
            "{}
             {}
             CREATE VIEW shipped AS SELECT o.id, o.o_time, s.s_time FROM orders o
             JOIN shipments s ON o.id = s.order_id
              AND s.s_time BETWEEN o.o_time AND o.o_time + INTERVAL '1' HOUR;
             INSERT INTO sink SELECT window_start, COUNT(*) AS shipped
             FROM TABLE(TUMBLE(TABLE shipped, DESCRIPTOR(o_time), INTERVAL '1' HOUR))
             GROUP BY window_start, window_end;",
            tables(&shipments),
            json_sink("window_start TIMESTAMP(3), shipped BIGINT")
        );
        let job = dir.run_json(&job, &orders, &[("parallelism.default", parallelism)]);
        assert_eq!(job.metrics.dropped(), 0, "at parallelism {parallelism}");
        assert_rows(&job.rows, json!(expected));
    }
}

#[test]
fn an_interval_join_equals_duckdb_on_a_million_events() {
    let dir = JobDir::new();
    let generate = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        run_python(
            "gen_events.py",
            &[
                "--events=1000000",
                "--keys=100000",
                "--rate=1000",
                "--disorder-ms=2000",
                "--files=1",
                &format!("--seed={seed}"),
                path.to_str().unwrap(),
            ],
        );
        path
    };
    let a = generate("a.json", "3");
    let b = generate("b.json", "4");
    let table = |name: &str, path: &str| {
        format!(
            "CREATE TABLE {name} (k STRING, v DOUBLE, ts BIGINT, event_ts AS TO_TIMESTAMP_LTZ(ts, 3),
               WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND)
             WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json');"
        )
    };
    let job = format!(
        "{}\n{}
         CREATE TABLE sink (k STRING, av DOUBLE, bv DOUBLE)
           WITH ('connector' = 'filesystem', 'path' = '{{output}}', 'format' = 'parquet');
         INSERT INTO sink SELECT x.k, x.v, y.v FROM ea x LEFT JOIN eb y
         ON x.k = y.k AND x.event_ts BETWEEN y.event_ts - INTERVAL '10' SECOND
                                         AND y.event_ts + INTERVAL '10' SECOND;",
        table("ea", "{input}"),
        table("eb", b.to_str().unwrap())
    );
    let expected = duckdb_query(
        &[],
        &format!(
            "WITH x AS (SELECT * FROM read_json('{}', format = 'newline_delimited')),
                  y AS (SELECT * FROM read_json('{}', format = 'newline_delimited')),
                  j AS (SELECT x.k, x.v AS av, y.v AS bv FROM x LEFT JOIN y
                        ON x.k = y.k AND x.ts BETWEEN y.ts - 10000 AND y.ts + 10000)
             SELECT count(*) AS rows, count(bv) AS pairs, sum(av) AS av, sum(bv) AS bv FROM j",
            a.display(),
            b.display()
        ),
    );
    assert!(
        expected[0]["pairs"].as_u64() > Some(1000),
        "{}",
        expected[0]
    );
    for parallelism in ["1", "4"] {
        let run = JobDir::new();
        let outcome = run.run(&job, &a, &[("parallelism.default", parallelism)]);
        outcome.assert_success();
        assert_eq!(outcome.metrics().dropped(), 0);
        let actual = duckdb_query(
            &[("s", &run.output())],
            "SELECT count(*) AS rows, count(bv) AS pairs, sum(av) AS av, sum(bv) AS bv FROM s",
        );
        let (x, e) = (&actual[0], &expected[0]);
        assert_eq!(
            (&x["rows"], &x["pairs"]),
            (&e["rows"], &e["pairs"]),
            "parallelism {parallelism}"
        );
        for key in ["av", "bv"] {
            let (p, q) = (x[key].as_f64().unwrap(), e[key].as_f64().unwrap());
            assert!((p - q).abs() <= 1e-9 * q.abs(), "{key}: {x} against {e}");
        }
    }
}
