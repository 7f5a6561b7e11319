//! HOP and CUMULATE windows: the test vectors of Flink's documentation over the Bid table,
//! the legacy `GROUP BY HOP(...)` form, lateness (a row late for some windows is counted in
//! the open ones), and the errors of their arguments.

use crate::common::{
    assert_rows, bid_job, bid_job_with, run_json_job, window_sum, BID_ROWS, SUM_SINK,
};
use serde_json::json;

/// `INSERT INTO sink` the sum of price per window of `function(TABLE bid, DESCRIPTOR(bidtime),
/// args)`.
fn window_sum_query(function: &str, args: &str) -> String {
    format!(
        "INSERT INTO sink\nSELECT window_start, window_end, SUM(price)\n\
         FROM TABLE({function}(TABLE bid, DESCRIPTOR(bidtime), {args}))\n\
         GROUP BY window_start, window_end;"
    )
}

fn hop_rows() -> serde_json::Value {
    json!([
        window_sum("08:00", "08:10", 11.0),
        window_sum("08:05", "08:15", 15.0),
        window_sum("08:10", "08:20", 10.0),
        window_sum("08:15", "08:25", 6.0),
    ])
}

#[test]
fn hop_5_minutes_of_10_follows_the_vector_at_any_parallelism() {
    let job = bid_job(
        SUM_SINK,
        &window_sum_query("HOP", "INTERVAL '5' MINUTES, INTERVAL '10' MINUTES"),
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(BID_ROWS, &job, &[("parallelism.default", parallelism)]);
        // [07:55, 08:05) is empty: 08:05 is not in it.
        assert_rows(&run.rows, hop_rows());
        assert_eq!(run.metrics.dropped(), 0);
        assert_eq!(run.metrics.records_written, 4);
    }
}

#[test]
fn legacy_group_by_hop_gives_the_same_rows() {
    let legacy = "INSERT INTO sink
SELECT HOP_START(bidtime, INTERVAL '5' MINUTE, INTERVAL '10' MINUTE),
       HOP_END(bidtime, INTERVAL '5' MINUTE, INTERVAL '10' MINUTE), SUM(price)
FROM bid
GROUP BY HOP(bidtime, INTERVAL '5' MINUTE, INTERVAL '10' MINUTE);";
    let run = run_json_job(BID_ROWS, &bid_job(SUM_SINK, legacy), &[]);
    assert_rows(&run.rows, hop_rows());
}

#[test]
fn cumulate_2_minutes_up_to_10_follows_the_vector_at_any_parallelism() {
    let job = bid_job(
        SUM_SINK,
        &window_sum_query("CUMULATE", "INTERVAL '2' MINUTES, INTERVAL '10' MINUTES"),
    );
    for parallelism in ["1", "4"] {
        let run = run_json_job(BID_ROWS, &job, &[("parallelism.default", parallelism)]);
        assert_rows(
            &run.rows,
            json!([
                window_sum("08:00", "08:06", 4.0),
                window_sum("08:00", "08:08", 6.0),
                window_sum("08:00", "08:10", 11.0),
                window_sum("08:10", "08:12", 3.0),
                window_sum("08:10", "08:14", 4.0),
                window_sum("08:10", "08:16", 4.0),
                window_sum("08:10", "08:18", 10.0),
                window_sum("08:10", "08:20", 10.0),
            ]),
        );
        assert_eq!(run.metrics.dropped(), 0);
    }
}

#[test]
fn a_hop_row_late_for_a_fired_window_still_counts_in_the_open_one() {
    // Without delay, the 08:10 row carries the watermark to 08:10:00.000: [08:00, 08:10)
    // fires. The 08:07 row after it is missing from that window but counted in
    // [08:05, 08:15), which is still open; nothing is dropped whole.
    let input = r#"{"bidtime": "2020-04-15 08:05:00", "price": 4.00, "item": "C", "supplier": "s1"}
{"bidtime": "2020-04-15 08:10:00", "price": 2.00, "item": "A", "supplier": "s1"}
{"bidtime": "2020-04-15 08:07:00", "price": 5.00, "item": "D", "supplier": "s2"}
"#;
    let job = bid_job_with(
        Some("bidtime"),
        "DOUBLE",
        SUM_SINK,
        &window_sum_query("HOP", "INTERVAL '5' MINUTES, INTERVAL '10' MINUTES"),
    );
    // Every record emits its watermark, as in the lateness vectors.
    let run = run_json_job(input, &job, &[("pipeline.auto-watermark-interval", "0")]);
    assert_rows(
        &run.rows,
        json!([
            window_sum("08:00", "08:10", 4.0),
            window_sum("08:05", "08:15", 11.0),
            window_sum("08:10", "08:20", 2.0),
        ]),
    );
    assert_eq!(run.metrics.late, 0, "no row is late for all its windows");
}
