//! The TUMBLE test vectors of SEMANTICS.md, each run as a job file over a small JSON input
//! and checked row by row; plus the window forms users write around them (legacy GROUP BY
//! TUMBLE, cascaded windows, group keys with HAVING, the common aggregates) and a stateless
//! job.

use crate::common::{
    assert_rows, at, bid_job, bid_job_with, data_files, read_json_rows, run_json_job,
    ten_minute_sums, tumble_sum, window_sum, JsonJob, BID_ROWS, BID_WATERMARK, SUM_SINK,
};
use serde_json::json;

fn assert_counts(run: &JsonJob, read: u64, written: u64) {
    assert_eq!(run.metrics.records_read, read, "records_read");
    assert_eq!(run.metrics.records_written, written, "records_written");
    assert_eq!(
        run.metrics.records_written,
        run.rows.len() as u64,
        "records_written vs rows"
    );
}

#[test]
fn tumble_10_minutes_sums_price_per_window_at_any_parallelism() {
    let job = bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES"));
    for parallelism in ["1", "4"] {
        let run = run_json_job(BID_ROWS, &job, &[("parallelism.default", parallelism)]);
        assert_rows(&run.rows, ten_minute_sums());
        assert_counts(&run, 6, 2);
        assert_eq!(
            run.metrics.dropped(),
            0,
            "nothing is dropped at parallelism {parallelism}"
        );
    }
}

#[test]
fn tumble_over_decimal_prices_keeps_the_scale() {
    let job = bid_job_with(
        Some(BID_WATERMARK),
        "DECIMAL(10, 2)",
        "window_start TIMESTAMP(3), window_end TIMESTAMP(3), total DECIMAL(38, 2)",
        &tumble_sum("INTERVAL '10' MINUTES"),
    );
    let run = run_json_job(BID_ROWS, &job, &[]);
    assert_rows(&run.rows, ten_minute_sums());
    // The value is right; now its text: a DECIMAL(_, 2) is written with two decimals.
    let mut totals: Vec<String> = data_files(&run.output, "json")
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(run.output.join(f)).expect("read sink file");
            text.lines()
                .map(|l| raw_field(l, "total"))
                .collect::<Vec<_>>()
        })
        .collect();
    totals.sort();
    assert_eq!(totals, ["10.00", "11.00"]);
}

/// The text of `key`'s value in one JSON line, as written (whitespace removed).
fn raw_field(line: &str, key: &str) -> String {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    let marker = format!("\"{key}\":");
    let start = compact
        .find(&marker)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + marker.len();
    let rest = &compact[start..];
    rest[..rest.find([',', '}']).unwrap_or(rest.len())].to_string()
}

#[test]
fn tumble_with_one_minute_offset() {
    let run = run_json_job(
        BID_ROWS,
        &bid_job(
            SUM_SINK,
            &tumble_sum("INTERVAL '10' MINUTES, INTERVAL '1' MINUTES"),
        ),
        &[],
    );
    assert_rows(
        &run.rows,
        json!([
            window_sum("08:01", "08:11", 11.0),
            window_sum("08:11", "08:21", 10.0)
        ]),
    );
}

#[test]
fn tumble_offsets_align_windows_as_flink_does() {
    let input =
        r#"{"bidtime": "2021-06-30 00:00:04", "price": 1.5, "item": "X", "supplier": "s1"}"#;
    let (before, after, aligned) = (
        ("2021-06-29 23:54:00.000", "2021-06-30 00:04:00.000"),
        ("2021-06-29 23:56:00.000", "2021-06-30 00:06:00.000"),
        ("2021-06-30 00:00:00.000", "2021-06-30 00:10:00.000"),
    );
    let cases = [
        ("-16", before),
        ("-6", before),
        ("4", before),
        ("-4", after),
        ("6", after),
        ("16", after),
        ("0", aligned),
    ];
    for (offset, (start, end)) in cases {
        let window = format!("INTERVAL '10' MINUTES, INTERVAL '{offset}' MINUTES");
        let run = run_json_job(input, &bid_job(SUM_SINK, &tumble_sum(&window)), &[]);
        assert_rows(
            &run.rows,
            json!([{"window_start": start, "window_end": end, "total": 1.5}]),
        );
    }
}

#[test]
fn row_of_an_already_fired_window_is_dropped_and_counted_as_late() {
    // Without delay, the 08:10:00 row carries the watermark to 08:10:00.000, past
    // [08:00,08:10)'s end - 1 ms, so that window fires: the 08:09 row after it is late,
    // while a row at exactly 08:10:00.000 belongs to the still open [08:10,08:20).
    let input = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:10:00", "price": 2.00, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:09:00", "price": 5.00, "item": "D", "supplier": "s2"}
{"bidtime": "2020-04-15 08:10:00.000", "price": 1.00, "item": "B", "supplier": "s2"}
"#;
    let job = bid_job_with(
        Some("bidtime"),
        "DOUBLE",
        SUM_SINK,
        &tumble_sum("INTERVAL '10' MINUTES"),
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(input, &job, &[("parallelism.default", parallelism)]);
        assert_rows(
            &run.rows,
            json!([
                window_sum("08:00", "08:10", 4.0),
                window_sum("08:10", "08:20", 3.0)
            ]),
        );
        assert_eq!(
            run.metrics.late, 1,
            "the 08:09 row is late at parallelism {parallelism}"
        );
        assert_eq!(run.metrics.dropped(), 1);
        assert_counts(&run, 4, 2);
    }
}

/// A table with an epoch-millisecond column and a TIMESTAMP_LTZ rowtime computed from it.
const LTZ_JOB: &str = "CREATE TABLE tx (
  ms BIGINT,
  price DOUBLE,
  ts AS TO_TIMESTAMP_LTZ(ms, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), total DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'json');
INSERT INTO sink
SELECT window_start, window_end, SUM(price)
FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;
";

#[test]
fn timestamp_ltz_windows_align_in_the_session_time_zone() {
    // 1618495260000 is 2021-04-15 14:01:00 UTC, 22:01:00 in Shanghai (UTC+8).
    let input = r#"{"ms": 1618495260000, "price": 2.5}
"#;
    let utc = json!([{"window_start": "2021-04-15 14:00:00.000",
                      "window_end": "2021-04-15 14:10:00.000", "total": 2.5}]);
    let shanghai = json!([{"window_start": "2021-04-15 22:00:00.000",
                           "window_end": "2021-04-15 22:10:00.000", "total": 2.5}]);
    assert_rows(&run_json_job(input, LTZ_JOB, &[]).rows, utc);
    let in_file = format!("SET 'table.local-time-zone' = 'Asia/Shanghai';\n{LTZ_JOB}");
    assert_rows(&run_json_job(input, &in_file, &[]).rows, shanghai.clone());
    let on_command_line = run_json_job(
        input,
        LTZ_JOB,
        &[("table.local-time-zone", "Asia/Shanghai")],
    );
    assert_rows(&on_command_line.rows, shanghai);
}

#[test]
fn row_with_null_event_time_is_dropped_and_counted() {
    let null_row =
        r#"{"bidtime": null, "price": 100.00, "item": "Z", "supplier": "s1"}"#.to_string() + "\n";
    let (first, rest) = BID_ROWS.split_at(BID_ROWS.find('\n').expect("two lines") + 1);
    let input = format!("{first}{null_row}{rest}");
    let run = run_json_job(
        &input,
        &bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES")),
        &[],
    );
    assert_rows(&run.rows, ten_minute_sums());
    assert_eq!(run.metrics.null_event_time, 1);
    assert_eq!(run.metrics.late, 0);
    assert_counts(&run, 7, 2);
}

#[test]
fn legacy_group_by_tumble_gives_the_same_rows_as_the_table_function() {
    let legacy = "INSERT INTO sink
SELECT TUMBLE_START(bidtime, INTERVAL '10' MINUTE), TUMBLE_END(bidtime, INTERVAL '10' MINUTE),
       SUM(price)
FROM bid
GROUP BY TUMBLE(bidtime, INTERVAL '10' MINUTE);";
    let legacy_rows = run_json_job(BID_ROWS, &bid_job(SUM_SINK, legacy), &[]).rows;
    let tvf_rows = run_json_job(
        BID_ROWS,
        &bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES")),
        &[],
    )
    .rows;
    assert_rows(&legacy_rows, ten_minute_sums());
    assert_eq!(legacy_rows, tvf_rows);
}

#[test]
fn ten_minute_windows_cascade_into_twenty_minute_windows() {
    let input = format!(
        "{BID_ROWS}{}\n",
        r#"{"bidtime": "2020-04-15 08:31:00", "price": 7.00, "item": "G", "supplier": "s1"}"#
    );
    let cascade = "CREATE TEMPORARY VIEW ten AS
SELECT window_start AS ten_start, window_end AS ten_end, window_time AS rowtime,
       SUM(price) AS partial_total
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, window_time;
INSERT INTO sink
SELECT window_start, window_end, SUM(partial_total)
FROM TABLE(TUMBLE(TABLE ten, DESCRIPTOR(rowtime), INTERVAL '20' MINUTES))
GROUP BY window_start, window_end;";
    let run = run_json_job(&input, &bid_job(SUM_SINK, cascade), &[]);
    // Ten-minute sums 11, 10 and 7 (08:30); their window_time (end - 1 ms) puts the first two
    // into [08:00,08:20).
    assert_rows(
        &run.rows,
        json!([
            window_sum("08:00", "08:20", 21.0),
            window_sum("08:20", "08:40", 7.0)
        ]),
    );
}

#[test]
fn window_grouped_by_key_with_having() {
    let query = "INSERT INTO sink
SELECT window_start, window_end, supplier, SUM(price)
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, supplier
HAVING SUM(price) > 5;";
    let sink = "window_start TIMESTAMP(3), window_end TIMESTAMP(3), supplier STRING, total DOUBLE";
    let run = run_json_job(BID_ROWS, &bid_job(sink, query), &[]);
    // Per supplier: [08:00,08:10) s1 6, s2 5; [08:10,08:20) s1 1, s2 9. HAVING keeps > 5.
    assert_rows(
        &run.rows,
        json!([
            {"window_start": at("08:00"), "window_end": at("08:10"), "supplier": "s1", "total": 6.0},
            {"window_start": at("08:10"), "window_end": at("08:20"), "supplier": "s2", "total": 9.0},
        ]),
    );
    assert_counts(&run, 6, 2);
}

#[test]
fn window_count_count_distinct_min_max_avg() {
    let input = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": 2.00, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:09:00", "price": 6.00, "item": "D", "supplier": "s2"}
{"bidtime": "2020-04-15 08:11:00", "price": 3.00, "item": "B", "supplier": "s2"}
{"bidtime": "2020-04-15 08:13:00", "price": 1.00, "item": "E", "supplier": "s2"}
"#;
    let query = "INSERT INTO sink
SELECT window_start, window_end, COUNT(*), COUNT(DISTINCT supplier), MIN(price), MAX(price),
       AVG(price)
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;";
    let sink = "window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT, suppliers BIGINT, \
                lo DOUBLE, hi DOUBLE, mean DOUBLE";
    let run = run_json_job(input, &bid_job(sink, query), &[]);
    assert_rows(
        &run.rows,
        json!([
            {"window_start": at("08:00"), "window_end": at("08:10"),
             "cnt": 3, "suppliers": 2, "lo": 2.0, "hi": 6.0, "mean": 4.0},
            {"window_start": at("08:10"), "window_end": at("08:20"),
             "cnt": 2, "suppliers": 1, "lo": 1.0, "hi": 3.0, "mean": 2.0},
        ]),
    );
}

#[test]
fn coalesce_nullif_and_case_work_inside_aggregates_and_projections() {
    // COALESCE is one of DataFusion's functions that exist only to be rewritten before they
    // run; inside an aggregate it used to stop the job with an internal error.
    let input = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": null, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:09:00", "price": 6.00, "item": "D", "supplier": null}
{"bidtime": "2020-04-15 08:11:00", "price": 3.00, "item": "B", "supplier": "s2"}
"#;
    let query = "INSERT INTO sink
SELECT window_start, window_end, SUM(COALESCE(price, 10)), COUNT(NULLIF(supplier, 's1')),
       MAX(CASE WHEN item = 'D' THEN COALESCE(price, 0) * 2 ELSE price END),
       COUNT(TRY_CAST(item AS INT))
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;";
    let sink = "window_start TIMESTAMP(3), window_end TIMESTAMP(3), total DOUBLE, others BIGINT, \
                hi DOUBLE, numeric_items BIGINT";
    let run = run_json_job(input, &bid_job(sink, query), &[]);
    assert_rows(
        &run.rows,
        json!([
            {"window_start": at("08:00"), "window_end": at("08:10"),
             "total": 20.0, "others": 0, "hi": 12.0, "numeric_items": 0},
            {"window_start": at("08:10"), "window_end": at("08:20"),
             "total": 3.0, "others": 1, "hi": 3.0, "numeric_items": 0},
        ]),
    );
    let projected = run_json_job(
        input,
        &bid_job(
            "item STRING, supplier STRING",
            "INSERT INTO sink SELECT item, COALESCE(supplier, 'unknown') FROM bid;",
        ),
        &[],
    );
    assert_rows(
        &projected.rows,
        json!([
            {"item": "C", "supplier": "s1"}, {"item": "A", "supplier": "s1"},
            {"item": "D", "supplier": "unknown"}, {"item": "B", "supplier": "s2"},
        ]),
    );
}

#[test]
fn filter_where_on_aggregates_of_tumble_and_session_windows() {
    let sink = "window_start TIMESTAMP(3), window_end TIMESTAMP(3), pricey BIGINT, \
                s1_total DOUBLE, n BIGINT";
    let select = |window: &str| {
        format!(
            "INSERT INTO sink
SELECT window_start, window_end, COUNT(*) FILTER (WHERE price > 2),
       SUM(price) FILTER (WHERE supplier = 's1'), COUNT(*)
FROM TABLE({window})
GROUP BY window_start, window_end;"
        )
    };
    let row = |start: &str, end: &str, pricey: u64, s1_total: Option<f64>, n: u64| {
        json!({"window_start": at(start), "window_end": at(end), "pricey": pricey,
               "s1_total": s1_total, "n": n})
    };
    for parallelism in ["1", "4"] {
        let sets = [("parallelism.default", parallelism)];
        let tumble = run_json_job(
            BID_ROWS,
            &bid_job(
                sink,
                &select("TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES)"),
            ),
            &sets,
        );
        assert_rows(
            &tumble.rows,
            json!([
                row("08:00", "08:10", 2, Some(6.0), 3),
                row("08:10", "08:20", 2, Some(1.0), 3)
            ]),
        );
        // A row the FILTER leaves out still belongs to its session.
        let session = run_json_job(
            BID_ROWS,
            &bid_job(
                sink,
                &select("SESSION(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES)"),
            ),
            &sets,
        );
        assert_rows(
            &session.rows,
            json!([
                row("08:05", "08:15", 3, Some(7.0), 5),
                row("08:17", "08:19", 1, None, 1)
            ]),
        );
    }
}

#[test]
fn stateless_select_where_passes_matching_rows_through() {
    let query = "INSERT INTO sink SELECT bidtime, item, price * 2 FROM bid WHERE price > 3;";
    let sink = "bidtime TIMESTAMP(3), item STRING, doubled DOUBLE";
    let run = run_json_job(BID_ROWS, &bid_job(sink, query), &[]);
    assert_rows(
        &run.rows,
        json!([
            {"bidtime": at("08:05"), "item": "C", "doubled": 8.0},
            {"bidtime": at("08:09"), "item": "D", "doubled": 10.0},
            {"bidtime": at("08:17"), "item": "F", "doubled": 12.0},
        ]),
    );
    assert_counts(&run, 6, 3);
}

#[test]
fn two_inserts_share_one_source_and_run_as_one_job() {
    let second = "CREATE TABLE per_supplier (supplier STRING, window_start TIMESTAMP(3), n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{output}_suppliers', 'format' = 'json');
INSERT INTO per_supplier
SELECT supplier, window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, supplier;";
    let statements = format!("{}\n{second}", tumble_sum("INTERVAL '10' MINUTES"));
    let run = run_json_job(
        BID_ROWS,
        &bid_job(SUM_SINK, &statements),
        &[("parallelism.default", "2")],
    );
    assert_rows(&run.rows, ten_minute_sums());
    let suppliers = read_json_rows(&run.dir.path().join("out_suppliers"));
    assert_rows(
        &suppliers,
        json!([
            {"supplier": "s1", "window_start": at("08:00"), "n": 2},
            {"supplier": "s2", "window_start": at("08:00"), "n": 1},
            {"supplier": "s1", "window_start": at("08:10"), "n": 1},
            {"supplier": "s2", "window_start": at("08:10"), "n": 2},
        ]),
    );
    // The source is read once for both statements: 6 rows in, 2 + 4 rows out.
    assert_eq!(run.metrics.records_read, 6, "records_read");
    assert_eq!(run.metrics.records_written, 6, "records_written");
}

#[test]
fn a_column_selected_twice_is_renamed_as_flink_does() {
    let sink = "a TIMESTAMP(3), b TIMESTAMP(3), item STRING";
    let query = "INSERT INTO sink SELECT bidtime, bidtime, item FROM bid WHERE item = 'C';";
    let run = run_json_job(BID_ROWS, &bid_job(sink, query), &[]);
    assert_rows(
        &run.rows,
        json!([{"a": at("08:05"), "b": at("08:05"), "item": "C"}]),
    );
}

#[test]
fn comments_may_hold_semicolons_anywhere_in_a_job() {
    let job = format!(
        "/* a block comment; over\n   two lines; */\n-- a line comment; with a semicolon\n{}",
        bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES /* size; */"))
    );
    let run = run_json_job(BID_ROWS, &job, &[]);
    assert_rows(&run.rows, ten_minute_sums());
}
