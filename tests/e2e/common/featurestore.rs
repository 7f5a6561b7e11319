//! The local feature store for the tests: `sluice featurestore serve` on a free port, and
//! boto3 (`tests/support/featurestore_tool.py`) to create groups and read records back.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::aws::aws_tool;
use super::{duckdb_query, sluice, Running};

/// A running `sluice featurestore serve`.
pub struct Server {
    pub running: Running,
    pub endpoint: String,
}

impl Server {
    pub fn start(data: &Path) -> Self {
        Self::start_with_env(data, &[])
    }

    /// Starts the server with extra environment (the AWS settings of an S3 offline store).
    pub fn start_with_env(data: &Path, env: &[(&str, String)]) -> Self {
        let mut command = sluice();
        for (k, v) in env {
            command = command.env(k, v);
        }
        let mut running = command
            .args(&["featurestore", "serve", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .args(&["--offline-flush-interval", "0.5s"])
            .spawn();
        let endpoint = super::server::listening_endpoint(&mut running);
        Server { running, endpoint }
    }
}

/// `tests/support/featurestore_tool.py` (boto3) against `endpoint`.
pub fn tool(endpoint: &str, args: &[&str]) -> String {
    aws_tool("featurestore_tool.py", endpoint, args)
}

/// The features of the tx-metrics group of the example jobs.
pub const GROUP_FEATURES: &str =
    "currency:String,window_end:String,tx_count:Integral,total_fee:Fractional,avg_fee:Fractional";

/// Creates feature group `name` with the tx-metrics features (record identifier `currency`,
/// event time `window_end`) and an offline store in the store's `offline/` folder.
pub fn create_group(endpoint: &str, name: &str) {
    create_group_with(
        endpoint,
        name,
        ("currency", "window_end"),
        GROUP_FEATURES,
        &["--offline-uri", "offline"],
    );
}

/// Creates feature group `name` with record identifier and event time features `keys`,
/// `features` as `name:Type,...`, and further `featurestore_tool.py create-group` options.
pub fn create_group_with(
    endpoint: &str,
    name: &str,
    keys: (&str, &str),
    features: &str,
    options: &[&str],
) {
    let mut args = vec![
        "create-group",
        "--name",
        name,
        "--id",
        keys.0,
        "--time",
        keys.1,
        "--features",
        features,
    ];
    args.extend_from_slice(options);
    tool(endpoint, &args);
}

/// The records of `ids` as boto3's GetRecord returns them (missing ones left out).
pub fn dump(
    endpoint: &str,
    group: &str,
    ids: &[String],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let out = tool(endpoint, &["get", "--name", group, "--ids", &ids.join(",")]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn close(actual: &str, expected: f64) -> bool {
    let a: f64 = actual.parse().unwrap_or(f64::NAN);
    (a - expected).abs() <= 1e-12 * expected.abs().max(1e-300)
}

/// Asserts that the store holds, for every currency, the values of its latest window.
pub fn assert_latest(store: &BTreeMap<String, BTreeMap<String, String>>, expected: &[Value]) {
    assert_eq!(store.len(), expected.len(), "records: {store:?}");
    for e in expected {
        let currency = e["currency"].as_str().expect("currency");
        let got = store
            .get(currency)
            .unwrap_or_else(|| panic!("no record {currency}"));
        let window_end = iso(e["window_end_ms"].as_i64().expect("window end"));
        assert_eq!(got["window_end"], window_end, "{currency}: {got:?}");
        assert_eq!(
            got["tx_count"],
            e["tx_count"].to_string(),
            "{currency}: {got:?}"
        );
        for f in ["total_fee", "avg_fee"] {
            let want = e[f].as_f64().expect("a number");
            assert!(close(&got[f], want), "{currency} {f}: {} != {want}", got[f]);
        }
    }
}

/// Per currency, the latest window of a job's Parquet output (columns window_end, currency,
/// tx_count, total_fee, avg_fee), in the shape [`assert_latest`] takes.
pub fn latest_in_parquet(output: &Path) -> Vec<Value> {
    duckdb_query(
        &[("m", output)],
        "SELECT currency, epoch_ms(window_end) AS window_end_ms, tx_count, total_fee, avg_fee
         FROM m
         QUALIFY row_number() OVER (PARTITION BY currency ORDER BY window_end DESC) = 1
         ORDER BY currency",
    )
}
