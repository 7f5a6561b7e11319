//! The `sluice` command itself: `explain` shows the graph a job compiles to without running it.

mod common;

use common::{
    assert_wrote_nothing, bid_job, sluice, tumble_sum, write_job, JobDir, BID_ROWS, SUM_SINK,
};

#[test]
fn explain_prints_the_operator_graph_without_running_the_job() {
    let dir = JobDir::new();
    let input = dir.write("input.json", BID_ROWS);
    let template = bid_job(SUM_SINK, &tumble_sum("INTERVAL '10' MINUTES"));
    let job = write_job(
        dir.path(),
        &template,
        &[("{input}", &input), ("{output}", &dir.output())],
    );
    let outcome = sluice().arg("explain").arg(&job).output();
    outcome.assert_success();
    let graph = outcome.stdout.to_lowercase();
    // Connectors describe themselves as "<connector> <format> <path>".
    for part in [
        "filesystem",
        &input.display().to_string(),
        &dir.output().display().to_string(),
    ] {
        assert!(
            graph.contains(&part.to_lowercase()),
            "explain should show {part}:\n{graph}"
        );
    }
    assert!(
        graph.contains("tumble") || graph.contains("window"),
        "no window operator:\n{graph}"
    );
    assert_wrote_nothing(&dir.output());
}
