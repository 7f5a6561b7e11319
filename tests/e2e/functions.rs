//! Flink's built-in functions that Sluice adds to DataFusion's: each computed by a job over
//! one row of values and one row of NULLs, with the results Flink gives.

use serde_json::json;

use crate::common::*;

const ROWS: &str = r#"{"s": "a,b,c", "n": "123", "t": "2020-04-15 08:05:07", "x": 5, "j": "{\"a\": {\"b\": 7}, \"c\": [1, 2]}"}
{"s": null, "n": null, "t": null, "x": null, "j": null}
"#;

/// `(column, expression)`: each result is cast to STRING, so one sink type fits all.
const CALLS: &[(&str, &str)] = &[
    ("split_index", "SPLIT_INDEX(s, ',', 1)"),
    ("regexp_extract", "REGEXP_EXTRACT(s, '([a-z]),([a-z])', 2)"),
    ("regexp_whole", "REGEXP_EXTRACT(s, 'b,c')"),
    ("if_", "IF(x > 3, 'big', 'small')"),
    ("is_digit", "IS_DIGIT(n)"),
    ("hash_code", "HASH_CODE(s)"),
    ("locate", "LOCATE('b', s)"),
    ("concat", "CONCAT(s, n)"),
    ("json_value", "JSON_VALUE(j, '$.a.b')"),
    ("json_query", "JSON_QUERY(j, '$.c')"),
    ("json_exists", "JSON_EXISTS(j, '$.c[1]')"),
    ("to_timestamp", "TO_TIMESTAMP(t)"),
    (
        "to_timestamp_fmt",
        "TO_TIMESTAMP(SPLIT_INDEX(t, ' ', 0), 'yyyy-MM-dd')",
    ),
    ("unix_timestamp", "UNIX_TIMESTAMP(t)"),
    ("timestampadd", "TIMESTAMPADD(MINUTE, 5, TO_TIMESTAMP(t))"),
    (
        "timestampdiff",
        "TIMESTAMPDIFF(HOUR, TO_TIMESTAMP(t), TIMESTAMPADD(DAY, 1, TO_TIMESTAMP(t)))",
    ),
    ("floor_hour", "FLOOR(TO_TIMESTAMP(t) TO HOUR)"),
    ("ceil_hour", "CEIL(TO_TIMESTAMP(t) TO HOUR)"),
    ("year_", "YEAR(TO_TIMESTAMP(t))"),
    ("dayofweek", "DAYOFWEEK(TO_TIMESTAMP(t))"),
    ("hour_", "HOUR(TO_TIMESTAMP(t))"),
    (
        "date_format",
        "DATE_FORMAT(TO_TIMESTAMP(t), 'yyyy/MM/dd HH:mm')",
    ),
    ("md5", "MD5(n)"),
    ("sha256", "SHA256(n)"),
    ("to_base64", "TO_BASE64(s)"),
    ("from_base64", "FROM_BASE64(TO_BASE64(s))"),
    ("from_unixtime", "FROM_UNIXTIME(x * 100000000)"),
    (
        "from_unixtime_fmt",
        "FROM_UNIXTIME(x, 'yyyy/MM/dd HH:mm:ss')",
    ),
    ("sha1", "SHA1(n)"),
    ("sha2_224", "SHA2(n, 224)"),
    ("sha512", "SHA512(n)"),
    ("sign_int", "SIGN(x - 9)"),
    ("sign_double", "SIGN(x * 1.5)"),
    ("truncate", "TRUNCATE(x / 3.0, 2)"),
    ("log_natural", "LOG(x)"),
    ("log_base", "LOG(5, x * 5)"),
    (
        "to_date_fmt",
        "TO_DATE(SPLIT_INDEX(t, ' ', 0), 'yyyy-MM-dd')",
    ),
    ("unix_now", "UNIX_TIMESTAMP() > 1700000000"),
    ("concat_ws", "CONCAT_WS('-', s, n)"),
    ("regexp_replace", "REGEXP_REPLACE(s, '([a-z])', '<$1>')"),
    ("lpad", "LPAD(n, 6, '0')"),
    ("rpad", "RPAD(n, 5, 'x')"),
    ("initcap", "INITCAP(s)"),
    ("substring", "SUBSTRING(s FROM 2 FOR 3)"),
    ("position", "POSITION('b' IN s)"),
    ("overlay", "OVERLAY(s PLACING 'XY' FROM 2 FOR 2)"),
    ("char_length", "CHAR_LENGTH(s)"),
    ("upper_lower", "LOWER(UPPER(s)) || UPPER(s)"),
    (
        "trims",
        "TRIM(CONCAT(' ', n, ' ')) || LTRIM(CONCAT(' ', n)) || RTRIM(CONCAT(n, ' '))",
    ),
    ("repeat_", "REPEAT(n, 2)"),
    ("replace_", "REPLACE(s, ',', '')"),
    ("reverse_", "REVERSE(s)"),
    ("left_right", "LEFT(s, 2) || RIGHT(s, 2)"),
    ("ascii_", "ASCII(s)"),
    ("chr_", "CHR(x + 60)"),
    ("abs_", "ABS(x - 9)"),
    ("power_", "POWER(x, 2)"),
    ("round_", "ROUND(x / 3.0, 2)"),
    ("greatest_", "GREATEST(x, 7, 3)"),
    ("least_", "LEAST(x, 7, 3)"),
];

#[test]
fn flink_built_ins_give_flinks_results_and_nulls() {
    let columns: Vec<String> = CALLS.iter().map(|(c, _)| format!("{c} STRING")).collect();
    let selects: Vec<String> = CALLS
        .iter()
        .map(|(_, e)| format!("CAST({e} AS STRING)"))
        .collect();
    let job = format!(
        "CREATE TABLE t (s STRING, n STRING, t STRING, x INT, j STRING)
           WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         {}
         INSERT INTO sink SELECT {} FROM t;",
        json_sink(&columns.join(", ")),
        selects.join(", ")
    );
    let dir = JobDir::new();
    let input = dir.write("rows.json", ROWS);
    let rows = dir
        .run_json(&job, &input, &[("parallelism.default", "1")])
        .rows;
    let expected: &[(&str, &str)] = &[
        ("split_index", "b"),
        ("regexp_extract", "b"),
        ("regexp_whole", "b,c"),
        ("if_", "big"),
        ("is_digit", "true"),
        ("hash_code", "90987982"),
        ("locate", "3"),
        ("concat", "a,b,c123"),
        ("json_value", "7"),
        ("json_query", "[1,2]"),
        ("json_exists", "true"),
        ("to_timestamp", "2020-04-15 08:05:07"),
        ("to_timestamp_fmt", "2020-04-15 00:00:00"),
        ("unix_timestamp", "1586937907"),
        ("timestampadd", "2020-04-15 08:10:07"),
        ("timestampdiff", "24"),
        ("floor_hour", "2020-04-15 08:00:00"),
        ("ceil_hour", "2020-04-15 09:00:00"),
        ("year_", "2020"),
        ("dayofweek", "4"),
        ("hour_", "8"),
        ("date_format", "2020/04/15 08:05"),
        ("md5", "202cb962ac59075b964b07152d234b70"),
        ("sha256", "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"),
        ("to_base64", "YSxiLGM="),
        ("from_base64", "a,b,c"),
        ("from_unixtime", "1985-11-05 00:53:20"),
        ("from_unixtime_fmt", "1970/01/01 00:00:05"),
        ("sha1", "40bd001563085fc35165329ea1ff5c5ecbdbbeef"),
        ("sha2_224", "78d8045d684abd2eece923758f3cd781489df3a48e1278982466017f"),
        ("sha512", "3c9909afec25354d551dae21590bb26e38d53f2173b8d3dc3eee4c047e7ab1c1eb8b85103e3be7ba613b31bb5c9c36214dc9f14a42fd7a2fdb84856bca5c44c2"),
        ("sign_int", "-1"),
        ("sign_double", "1.0"),
        ("truncate", "1.66"),
        ("log_natural", "1.6094379124341003"),
        ("log_base", "2.0"),
        ("to_date_fmt", "2020-04-15"),
        ("unix_now", "true"),
        ("concat_ws", "a,b,c-123"),
        ("regexp_replace", "<a>,<b>,<c>"),
        ("lpad", "000123"),
        ("rpad", "123xx"),
        ("initcap", "A,B,C"),
        ("substring", ",b,"),
        ("position", "3"),
        ("overlay", "aXY,c"),
        ("char_length", "5"),
        ("upper_lower", "a,b,cA,B,C"),
        ("trims", "123123123"),
        ("repeat_", "123123"),
        ("replace_", "abc"),
        ("reverse_", "c,b,a"),
        ("left_right", "a,,c"),
        ("ascii_", "97"),
        ("chr_", "A"),
        ("abs_", "4"),
        ("power_", "25.0"),
        ("round_", "1.67"),
        ("greatest_", "7"),
        ("least_", "3"),
    ];
    let values = serde_json::Value::Object(
        expected
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    );
    // NULL in, NULL out; but IF's condition is not true (small), IS_DIGIT is false.
    let mut nulls = serde_json::Map::new();
    for (c, _) in CALLS {
        nulls.insert(c.to_string(), serde_json::Value::Null);
    }
    nulls.insert("if_".into(), json!("small"));
    nulls.insert("is_digit".into(), json!("false"));
    nulls.insert("unix_now".into(), json!("true"));
    // CONCAT_WS skips NULL arguments, as in Flink.
    nulls.insert("concat_ws".into(), json!(""));
    let actual: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|mut r| {
            // Timestamps cast to STRING may carry milliseconds; compare to the second.
            for key in [
                "to_timestamp",
                "to_timestamp_fmt",
                "timestampadd",
                "floor_hour",
                "ceil_hour",
            ] {
                if let Some(s) = r[key].as_str() {
                    r[key] = json!(s.trim_end_matches(".000").replace('T', " "));
                }
            }
            r
        })
        .collect();
    assert_rows(&actual, json!([values, serde_json::Value::Object(nulls)]));
}

/// Flink's documented JSON_VALUE examples with RETURNING and ON EMPTY / ON ERROR, and the
/// JSON construction functions, over documents with a value, a JSON null, invalid JSON and
/// NULL.
#[test]
fn json_value_clauses_and_json_construction_give_flinks_results() {
    let docs = r#"{"id": 1, "doc": "{\"a\": true, \"n\": 7, \"f\": \"1.5\", \"a.b\": [0.998, 0.996], \"arr\": [1, 2]}"}
{"id": 2, "doc": "{\"n\": null}"}
{"id": 3, "doc": "not json"}
{"id": 4, "doc": null}
"#;
    let calls = [
        ("a", "JSON_VALUE(doc, '$.a')"),
        (
            "a_bool",
            "CAST(JSON_VALUE(doc, '$.a' RETURNING BOOLEAN) AS STRING)",
        ),
        ("b_lax", "JSON_VALUE(doc, 'lax $.b' DEFAULT FALSE ON EMPTY)"),
        (
            "b_strict",
            "JSON_VALUE(doc, 'strict $.b' DEFAULT FALSE ON ERROR)",
        ),
        (
            "ab",
            "CAST(JSON_VALUE(doc, '$.[\"a.b\"][0]' RETURNING DOUBLE) AS STRING)",
        ),
        (
            "n",
            "CAST(JSON_VALUE(doc, '$.n' RETURNING INT DEFAULT -1 ON EMPTY DEFAULT -2 ON ERROR) \
             AS STRING)",
        ),
        (
            "f",
            "CAST(JSON_VALUE(doc, '$.f' RETURNING INT DEFAULT -3 ON ERROR) AS STRING)",
        ),
        (
            "arr",
            "JSON_VALUE(doc, '$.arr' DEFAULT 'not a scalar' ON ERROR)",
        ),
        (
            "obj",
            "JSON_OBJECT(KEY 'id' VALUE id, 'n' VALUE JSON_VALUE(doc, '$.n'), \
             'list' VALUE JSON_ARRAY(1, 'two', CAST(NULL AS STRING)))",
        ),
        (
            "arr2",
            "JSON_ARRAY(id, JSON_OBJECT('k' VALUE CAST(NULL AS STRING) ABSENT ON NULL), \
             CAST(NULL AS INT) NULL ON NULL)",
        ),
        ("str", "JSON_STRING(JSON_VALUE(doc, '$.a'))"),
    ];
    let columns: Vec<String> = calls.iter().map(|(c, _)| format!("{c} STRING")).collect();
    let selects: Vec<&str> = calls.iter().map(|(_, e)| *e).collect();
    let job = format!(
        "CREATE TABLE t (id BIGINT, doc STRING)
           WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         {}
         INSERT INTO sink SELECT id, {} FROM t;",
        json_sink(&format!("id BIGINT, {}", columns.join(", "))),
        selects.join(", ")
    );
    let dir = JobDir::new();
    let input = dir.write("docs.json", docs);
    let mut rows = dir
        .run_json(&job, &input, &[("parallelism.default", "1")])
        .rows;
    sort_rows(&mut rows);
    let obj = |id: u32, n: &str| format!(r#"{{"id":{id},"n":{n},"list":[1,"two"]}}"#);
    let arr2 = |id: u32| format!("[{id},{{}},null]");
    assert_rows(
        &rows,
        json!([
            {"id": 1, "a": "true", "a_bool": "true", "b_lax": "false", "b_strict": "false",
             "ab": "0.998", "n": "7", "f": "-3", "arr": "not a scalar",
             "obj": obj(1, "\"7\""), "arr2": arr2(1), "str": "\"true\""},
            {"id": 2, "a": null, "a_bool": null, "b_lax": "false", "b_strict": "false",
             "ab": null, "n": "-1", "f": null, "arr": null,
             "obj": obj(2, "null"), "arr2": arr2(2), "str": null},
            {"id": 3, "a": null, "a_bool": null, "b_lax": null, "b_strict": "false",
             "ab": null, "n": "-2", "f": "-3", "arr": "not a scalar",
             "obj": obj(3, "null"), "arr2": arr2(3), "str": null},
            {"id": 4, "a": null, "a_bool": null, "b_lax": null, "b_strict": null,
             "ab": null, "n": null, "f": null, "arr": null,
             "obj": obj(4, "null"), "arr2": arr2(4), "str": null},
        ]),
    );
    // ERROR ON EMPTY stops the job with a sentence naming the call.
    let job = format!(
        "CREATE TABLE t (id BIGINT, doc STRING)
           WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         {}
         INSERT INTO sink SELECT JSON_VALUE(doc, '$.missing' ERROR ON EMPTY) FROM t;",
        json_sink("v STRING")
    );
    let dir = JobDir::new();
    let input = dir.write("docs.json", docs);
    let outcome = dir.run(&job, &input, &[]);
    outcome.assert_failure();
    assert!(
        outcome
            .error_line()
            .contains("JSON_VALUE(doc, '$.missing') found nothing (ERROR ON EMPTY)"),
        "{}",
        outcome.stderr
    );
}

/// Flink's way to leave out late rows before they reach a window:
/// `WHERE CURRENT_WATERMARK(ts) IS NULL OR ts > CURRENT_WATERMARK(ts)`. Rows straight from
/// the source see the watermark they were read at, the one a window judges them by.
#[test]
fn current_watermark_filters_the_rows_a_window_would_drop_as_late() {
    let bids = r#"{"bidtime": "2020-04-15 08:05:00", "item": "A"}
{"bidtime": "2020-04-15 08:07:00", "item": "B"}
{"bidtime": "2020-04-15 08:06:00", "item": "C"}
{"bidtime": "2020-04-15 08:01:00", "item": "LATE"}
{"bidtime": "2020-04-15 08:09:00", "item": "D"}
"#;
    let dir = JobDir::new();
    let input = dir.write("bid.json", bids);
    let job = format!(
        "CREATE TABLE Bid (bidtime TIMESTAMP(3), item STRING,
           WATERMARK FOR bidtime AS bidtime - INTERVAL '1' MINUTE)
         WITH ('connector' = 'filesystem', 'path' = '{{input}}', 'format' = 'json');
         {}
         INSERT INTO sink SELECT item, CURRENT_WATERMARK(bidtime) AS wm FROM Bid
         WHERE CURRENT_WATERMARK(bidtime) IS NULL OR bidtime > CURRENT_WATERMARK(bidtime);",
        json_sink("item STRING, wm TIMESTAMP(3)")
    );
    let mut rows = dir
        .run_json(&job, &input, &[("parallelism.default", "1")])
        .rows;
    sort_rows(&mut rows);
    let row = |item: &str, wm: Option<&str>| json!({"item": item, "wm": wm.map(|t| format!("2020-04-15 {t}:00.000"))});
    assert_rows(
        &rows,
        json!([
            row("A", None),
            row("B", Some("08:04")),
            // C is at the watermark, so late as Flink has it (and a window would drop it).
            row("D", Some("08:06")),
        ]),
    );
}

#[test]
fn clock_functions_read_the_clock_when_rows_are_processed() {
    let job = "CREATE TABLE t (s STRING, n STRING, t STRING, x INT, j STRING)
           WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
         CREATE TABLE sink (now_ms BIGINT, today STRING, local_ms BIGINT)
           WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'json');
         INSERT INTO sink SELECT UNIX_TIMESTAMP(DATE_FORMAT(NOW(), 'yyyy-MM-dd HH:mm:ss')),
           CAST(CURRENT_DATE AS STRING),
           UNIX_TIMESTAMP(DATE_FORMAT(LOCALTIMESTAMP, 'yyyy-MM-dd HH:mm:ss'))
         FROM t;";
    let before = chrono::Utc::now();
    let dir = JobDir::new();
    let input = dir.write("rows.json", ROWS);
    let rows = dir.run_json(job, &input, &[]).rows;
    let after = chrono::Utc::now();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let now = r["now_ms"].as_f64().unwrap() as i64;
        assert!(
            (before.timestamp() - 1..=after.timestamp()).contains(&now),
            "{r}"
        );
        assert_eq!(r["local_ms"], r["now_ms"], "UTC session: local time is UTC");
        let days: Vec<String> = [before, after]
            .iter()
            .map(|t| t.format("%Y-%m-%d").to_string())
            .collect();
        assert!(
            days.contains(&r["today"].as_str().unwrap().to_string()),
            "{r}"
        );
    }
}

/// Bids with a repeated item, for COUNT(DISTINCT).
/// FIRST_VALUE, LAST_VALUE and LISTAGG of a window take its rows in arrival order (as in
/// Flink, which does not sort them by time), skipping NULLs.
#[test]
fn first_last_and_listagg_take_a_window_s_rows_in_arrival_order() {
    let bids = format!(
        "{BIDS}{}",
        r#"{"bidtime": "2020-04-15 08:19:00", "price": 7.00, "item": null, "supplier": "s3"}
{"bidtime": "2020-04-15 08:19:30", "price": null, "item": "G", "supplier": "s3"}
"#
    );
    let dir = JobDir::new();
    let input = dir.write("bid.json", &bids);
    let job = format!(
        "{BID_TABLE}
         {}
         INSERT INTO sink SELECT window_start, FIRST_VALUE(price), LAST_VALUE(price),
           LISTAGG(item), LISTAGG(DISTINCT supplier, ';')
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
         GROUP BY window_start, window_end;",
        json_sink("ws TIMESTAMP(3), first_price DOUBLE, last_price DOUBLE, items STRING, suppliers STRING")
    );
    let rows = dir
        .run_json(&job, &input, &[("parallelism.default", "1")])
        .rows;
    let suppliers = |r: &serde_json::Value| {
        let mut s: Vec<String> = r["suppliers"]
            .as_str()
            .unwrap_or_default()
            .split(';')
            .map(String::from)
            .collect();
        s.sort();
        s.join(";")
    };
    let mut rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|mut r| {
            r["suppliers"] = json!(suppliers(&r));
            r
        })
        .collect();
    sort_rows(&mut rows);
    assert_rows(
        &rows,
        json!([
            {"ws": "2020-04-15 08:00:00.000", "first_price": 4.0, "last_price": 5.0,
             "items": "C,A,C", "suppliers": "s1;s2"},
            {"ws": "2020-04-15 08:10:00.000", "first_price": 3.0, "last_price": 7.0,
             "items": "B,E,F,G", "suppliers": "s1;s2;s3"},
        ]),
    );
}

const BIDS: &str = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": 2.00, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:09:00", "price": 5.00, "item": "C", "supplier": "s2"}
{"bidtime": "2020-04-15 08:11:00", "price": 3.00, "item": "B", "supplier": "s2"}
{"bidtime": "2020-04-15 08:13:00", "price": 1.00, "item": "E", "supplier": "s1"}
{"bidtime": "2020-04-15 08:17:00", "price": 6.00, "item": "F", "supplier": "s2"}
"#;

const BID_TABLE: &str = "CREATE TABLE bid (bidtime TIMESTAMP(3), price DOUBLE, item STRING,
  supplier STRING, WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');";

/// COUNT(DISTINCT), a FILTER, and NULLIF, COALESCE, TRY_CAST and CASE inside an aggregate,
/// in every window kind.
#[test]
fn distinct_counts_and_expressions_inside_aggregates_work_in_every_window_kind() {
    let aggregates = "COUNT(DISTINCT item), COUNT(DISTINCT supplier) FILTER (WHERE price > 2),
        SUM(NULLIF(price, 4.0) + COALESCE(TRY_CAST(item AS DOUBLE), 0)
            + CASE WHEN price > 3 THEN 1 ELSE 0 END)";
    let cases: Vec<(&str, serde_json::Value)> =
        vec![
        (
            "TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES)",
            json!([["08:00", "08:10", 2, 2, 8.0], ["08:10", "08:20", 3, 1, 11.0]]),
        ),
        (
            "HOP(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES)",
            json!([["08:00", "08:10", 2, 2, 8.0], ["08:05", "08:15", 4, 2, 12.0],
                   ["08:10", "08:20", 3, 1, 11.0], ["08:15", "08:25", 1, 1, 7.0]]),
        ),
        (
            "CUMULATE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES)",
            json!([["08:00", "08:10", 2, 2, 8.0], ["08:10", "08:15", 2, 1, 4.0],
                   ["08:10", "08:20", 3, 1, 11.0]]),
        ),
        (
            "SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES)",
            json!([["08:05", "08:15", 4, 2, 12.0], ["08:17", "08:19", 1, 1, 7.0]]),
        ),
    ];
    for (window, expected) in cases {
        let dir = JobDir::new();
        let input = dir.write("bid.json", BIDS);
        let job = format!(
            "{BID_TABLE}
             {}
             INSERT INTO sink SELECT window_start, window_end, {aggregates}
             FROM TABLE({window}) GROUP BY window_start, window_end;",
            json_sink(
                "ws TIMESTAMP(3), we TIMESTAMP(3), items BIGINT, suppliers BIGINT, total DOUBLE"
            )
        );
        let rows = dir
            .run_json(&job, &input, &[("parallelism.default", "2")])
            .rows;
        let expected: Vec<serde_json::Value> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                json!({"ws": format!("2020-04-15 {}:00.000", r[0].as_str().unwrap()),
                       "we": format!("2020-04-15 {}:00.000", r[1].as_str().unwrap()),
                       "items": r[2].as_f64(), "suppliers": r[3].as_f64(), "total": r[4]})
            })
            .collect();
        assert_rows(&rows, serde_json::Value::Array(expected));
    }
    // And over a RANGE OVER window: the distinct items of the 6 minutes up to each bid.
    let dir = JobDir::new();
    let input = dir.write("bid.json", BIDS);
    let job = format!(
        "{BID_TABLE}
         {}
         INSERT INTO sink SELECT bidtime, COUNT(DISTINCT item) OVER w,
           SUM(price) FILTER (WHERE price > 2) OVER w,
           COUNT(DISTINCT supplier) FILTER (WHERE price > 2) OVER w
         FROM bid
         WINDOW w AS (ORDER BY bidtime RANGE BETWEEN INTERVAL '6' MINUTE PRECEDING AND CURRENT ROW);",
        json_sink("t TIMESTAMP(3), items BIGINT, dear DOUBLE, dear_suppliers BIGINT")
    );
    let rows = dir.run_json(&job, &input, &[]).rows;
    let expected: Vec<serde_json::Value> = [
        ("08:05", 1, 4.0, 1),
        ("08:07", 2, 4.0, 1),
        ("08:09", 2, 9.0, 2),
        ("08:11", 3, 12.0, 2),
        ("08:13", 4, 8.0, 1),
        ("08:17", 3, 9.0, 1),
    ]
    .iter()
    .map(|(t, n, dear, suppliers)| {
        json!({"t": format!("2020-04-15 {t}:00.000"), "items": *n as f64, "dear": dear,
               "dear_suppliers": *suppliers as f64})
    })
    .collect();
    assert_rows(&rows, serde_json::Value::Array(expected));
}
