//! User errors: every mistake in a job file ends the run with a non-zero exit and one line
//! `error: <path as given>:<line>:<column>: <message>` naming the offending thing, never a
//! panic; a malformed input record names its file and line.

use std::fs;

use crate::common::{
    assert_names_file_and_line, assert_wrote_nothing, bid_job, bid_job_with, sluice, tumble_sum,
    write_job, JobDir, BID_ROWS, SUM_SINK,
};

/// Where the error must point.
enum At {
    /// The line and column of the first character of this text, a token.
    Token(&'static str),
    /// The line holding this text; the column is not checked (the offending token is a matter
    /// of taste: `INTERVAL` or its literal, an option's key or its value).
    Line(&'static str),
}

/// 1-based line and column of `needle`, which must occur exactly once in `text`.
fn locate(text: &str, needle: &str) -> (usize, usize) {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "{needle:?} must occur once in the job:\n{text}"
    );
    let before = &text[..text.find(needle).expect("counted above")];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Runs `template` as `job.sql` (a relative path, from the job's folder) and checks the
/// error line: position per `at`, and a message naming each of `names` (case-insensitive).
fn assert_job_error(template: &str, at: At, names: &[&str]) {
    let dir = JobDir::new();
    let input = dir.write("input.json", BID_ROWS);
    let job = write_job(
        dir.path(),
        template,
        &[("{input}", &input), ("{output}", &dir.output())],
    );
    let text = fs::read_to_string(&job).expect("read job.sql");
    let outcome = sluice()
        .arg("run")
        .arg("job.sql")
        .current_dir(dir.path())
        .output();
    outcome.assert_failure();

    let error = outcome.error_line();
    let located = error.strip_prefix("error: job.sql:").unwrap_or_else(|| {
        panic!("the error should start with 'error: job.sql:<line>:<column>:': {error}")
    });
    let mut parts = located.splitn(3, ':');
    let mut number = |what: &str| -> usize {
        let part = parts.next().unwrap_or_default();
        part.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no {what} number in the error ({part:?}): {error}"))
    };
    let (line, column) = (number("line"), number("column"));
    let message = parts.next().unwrap_or_default().to_lowercase();

    let (needle, check_column) = match at {
        At::Token(token) => (token, true),
        At::Line(text) => (text, false),
    };
    let (expected_line, expected_column) = locate(&text, needle);
    assert_eq!(
        line, expected_line,
        "line of {needle:?} in: {error}\n{text}"
    );
    if check_column {
        assert_eq!(
            column, expected_column,
            "column of {needle:?} in: {error}\n{text}"
        );
    }
    assert!(column >= 1, "columns are 1-based: {error}");
    for name in names {
        assert!(
            message.contains(&name.to_lowercase()),
            "the error should name {name:?}: {error}"
        );
    }
    assert_wrote_nothing(&dir.output());
}

/// A window query over the Bid table into the sum sink.
fn bid_query(query: &str) -> String {
    bid_job(SUM_SINK, query)
}

/// A row-by-row query over the Bid table into a sink `(bidtime, item, total DOUBLE)`.
fn row_query(query: &str) -> String {
    bid_job("bidtime TIMESTAMP(3), item STRING, total DOUBLE", query)
}

/// The 10-minute sum job with `from` (the first occurrence) replaced by `to`.
fn sum_job_with(from: &str, to: &str) -> String {
    let job = bid_query(&tumble_sum("INTERVAL '10' MINUTES"));
    assert!(job.contains(from), "job has no {from}");
    job.replacen(from, to, 1)
}

#[test]
fn unknown_table_in_from() {
    assert_job_error(
        &row_query("INSERT INTO sink\nSELECT bidtime, item, price\nFROM bids;"),
        At::Token("bids"),
        &["bids"],
    );
}

#[test]
fn unknown_table_in_insert_into() {
    assert_job_error(
        &row_query("INSERT INTO sinks\nSELECT bidtime, item, price FROM bid;"),
        At::Token("sinks"),
        &["sinks"],
    );
}

#[test]
fn unknown_column() {
    assert_job_error(
        &row_query("INSERT INTO sink\nSELECT bidtime, item, prize\nFROM bid;"),
        At::Token("prize"),
        &["prize"],
    );
}

#[test]
fn unknown_connector() {
    assert_job_error(
        &sum_job_with("'connector' = 'filesystem'", "'connector' = 'kafkaa'"),
        At::Line("'kafkaa'"),
        &["kafkaa"],
    );
}

#[test]
fn option_that_nothing_consumes() {
    assert_job_error(
        &sum_job_with("'format' = 'json'", "'format' = 'json',\n  'foo.bar' = '1'"),
        At::Token("'foo.bar'"),
        &["foo.bar", "bid"],
    );
}

#[test]
fn interval_that_is_not_a_number() {
    assert_job_error(
        &bid_query(&tumble_sum("INTERVAL 'abc' MINUTES")),
        At::Line("INTERVAL 'abc' MINUTES"),
        &["abc"],
    );
}

#[test]
fn window_size_of_zero() {
    assert_job_error(
        &bid_query(&tumble_sum("INTERVAL '0' MINUTES")),
        At::Line("INTERVAL '0' MINUTES"),
        &["size"],
    );
}

#[test]
fn window_on_a_column_without_watermark() {
    assert_job_error(
        &bid_job_with(
            None,
            "DOUBLE",
            SUM_SINK,
            &tumble_sum("INTERVAL '10' MINUTES"),
        ),
        At::Line("DESCRIPTOR(bidtime)"),
        &["bidtime"],
    );
}

#[test]
fn sum_of_a_string_column() {
    let query = "INSERT INTO sink
SELECT window_start, window_end, SUM(item)
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;";
    assert_job_error(&bid_query(query), At::Line("SUM(item)"), &["item"]);
}

#[test]
fn string_into_a_double_sink_column() {
    assert_job_error(
        &row_query("INSERT INTO sink SELECT bidtime, item, supplier FROM bid;"),
        At::Line("INSERT INTO sink SELECT"),
        &["total"],
    );
}

#[test]
fn syntax_error() {
    assert_job_error(
        &row_query("INSERT INTO sink\nSELEC bidtime, item, price FROM bid;"),
        At::Token("SELEC"),
        &["SELEC"],
    );
}

#[test]
fn malformed_json_line_names_file_and_line() {
    let mut lines: Vec<&str> = BID_ROWS.lines().collect();
    lines[2] = r#"{"bidtime": "2020-04-15 08:09:00", "price": 5.00, "item": "#;
    let dir = JobDir::new();
    let input = dir.write("input.json", &(lines.join("\n") + "\n"));
    let outcome = dir.run(
        &bid_query(&tumble_sum("INTERVAL '10' MINUTES")),
        &input,
        &[],
    );
    assert_names_file_and_line(&outcome, &input, 3);
    assert_eq!(outcome.status.code(), Some(6), "a data error's exit code");
    assert_wrote_nothing(&dir.output());
}

#[test]
fn an_unset_environment_variable_in_a_quoted_string() {
    assert_job_error(
        &sum_job_with("'format' = 'json'", "'format' = '${SLUICE_TEST_NEVER_SET}'"),
        At::Token("${SLUICE_TEST_NEVER_SET}"),
        &["SLUICE_TEST_NEVER_SET", "is not set"],
    );
}

#[test]
fn the_exit_code_says_what_kind_of_failure_stopped_the_job() {
    let code = |template: &str| {
        let dir = JobDir::new();
        let input = dir.write("input.json", BID_ROWS);
        dir.run(template, &input, &[]).status.code()
    };
    let sum = || bid_query(&tumble_sum("INTERVAL '10' MINUTES"));
    // The SQL is wrong: a plan error.
    assert_eq!(code(&sum().replace("SELECT", "SELEC")), Some(3));
    // An option's value is wrong: a config error.
    assert_eq!(
        code(&sum().replacen("'format' = 'json'", "'format' = 'yaml'", 1)),
        Some(4)
    );
    // The input is not there: a connector error.
    let missing = sum().replacen("{input}", "{input}.missing", 1);
    assert_eq!(code(&missing), Some(5));
}

#[test]
fn a_value_an_operator_cannot_compute_is_a_data_error_naming_the_operator() {
    let dir = JobDir::new();
    let input = dir.write("input.json", BID_ROWS);
    let job = row_query("INSERT INTO sink\nSELECT bidtime, item, CAST(item AS DOUBLE)\nFROM bid;");
    let outcome = dir.run(&job, &input, &[]);
    outcome.assert_failure();
    assert_eq!(outcome.status.code(), Some(6), "a data error's exit code");
    let error = outcome.error_line();
    assert!(error.contains("operator 'INSERT INTO sink"), "{error}");
    assert!(error.contains("Float64"), "{error}");
    assert_wrote_nothing(&dir.output());
}

#[test]
fn a_hop_size_that_is_not_a_multiple_of_the_slide() {
    let query = "INSERT INTO sink
SELECT window_start, window_end, SUM(price)
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '3' MINUTES, INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;";
    assert_job_error(
        &bid_query(query),
        At::Token("INTERVAL '10' MINUTES"),
        &["HOP", "multiple", "slide"],
    );
}

#[test]
fn a_cumulate_size_that_is_not_a_multiple_of_the_step() {
    let query = "INSERT INTO sink
SELECT window_start, window_end, SUM(price)
FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '4' MINUTES, INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;";
    assert_job_error(
        &bid_query(query),
        At::Token("INTERVAL '10' MINUTES"),
        &["CUMULATE", "multiple", "step"],
    );
}
