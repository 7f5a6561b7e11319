//! The Kinesis ingestion benchmark's own server (`benches/kinesis-server`) against moto: the
//! same calls, with the same records in both, give answers of the same shape and the same
//! records in the same shards and order; and Sluice reads the whole stream from it, plain
//! and KPL-aggregated, within Kinesis's per-shard read limits.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_kinesis_bench::{start_in_background, Server, Stream, StreamConfig};

use crate::common::aws::{kinesis_tool, moto, unique_stream};
use crate::common::{read_json_rows, sluice_run, write_job, JobDir};

/// One call of Kinesis's JSON protocol; returns the HTTP status and the body.
fn call(endpoint: &str, operation: &str, body: &Value) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .post(&format!("{endpoint}/"))
        .header("X-Amz-Target", &format!("Kinesis_20131202.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .send(body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{operation} at {endpoint}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("a response body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{operation} at {endpoint}: not JSON ({e}): {text}"));
    (status, value)
}

/// The shape of a JSON value: its keys and the types of their values, recursively (an
/// array's shape is its first element's).
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// Both servers answer `operation` with the same status and shape; returns both answers.
fn same_shape(
    moto: &str,
    bench: &str,
    operation: &str,
    moto_body: &Value,
    bench_body: &Value,
) -> (Value, Value) {
    let (moto_status, moto_answer) = call(moto, operation, moto_body);
    let (bench_status, bench_answer) = call(bench, operation, bench_body);
    assert_eq!(
        (moto_status, shape(&moto_answer)),
        (bench_status, shape(&bench_answer)),
        "{operation}: moto answered {moto_answer}, the benchmark server {bench_answer}"
    );
    (moto_answer, bench_answer)
}

/// (partition key, data) of the records of a GetRecords answer.
fn records(answer: &Value) -> Vec<(String, String)> {
    answer["Records"]
        .as_array()
        .expect("Records")
        .iter()
        .map(|r| {
            (
                r["PartitionKey"].as_str().unwrap().into(),
                r["Data"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!(r#"{{"k": {i}, "v": "value {i}"}}"#).into_bytes())
        .collect()
}

#[test]
fn the_benchmark_server_answers_as_moto_does() {
    let moto = moto().endpoint.as_str();
    let name = unique_stream("bench-shape");
    let dir = JobDir::new();
    let file = dir.write("records.jsonl", &{
        let mut text = String::new();
        for p in payloads(40) {
            text.push_str(std::str::from_utf8(&p).unwrap());
            text.push('\n');
        }
        text
    });
    kinesis_tool(moto, &["create", "--stream", &name, "--shards", "2"]);
    // Keys are str() of field k: the same as the server's (the record's number).
    kinesis_tool(
        moto,
        &[
            "put",
            "--stream",
            &name,
            "--file",
            &file.display().to_string(),
            "--key-field",
            "k",
        ],
    );
    let config = StreamConfig {
        name: name.clone(),
        shards: 2,
        record_bytes: 0,
        kpl: None,
        write_rate: 1_000_000,
    };
    let stream = Stream::build(&config, payloads(40).into_iter(), 1_700_000_000_000);
    let bench = start_in_background(Server::new(stream)).expect("start the benchmark server");
    let bench = bench.as_str();
    let named = json!({ "StreamName": name });

    let (moto_shards, bench_shards) = same_shape(moto, bench, "ListShards", &named, &named);
    for field in ["ShardId", "HashKeyRange"] {
        let of = |answer: &Value| -> Vec<Value> {
            answer["Shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s[field].clone())
                .collect()
        };
        assert_eq!(of(&moto_shards), of(&bench_shards), "ListShards: {field}");
    }
    let (moto_summary, bench_summary) =
        same_shape(moto, bench, "DescribeStreamSummary", &named, &named);
    for field in ["StreamName", "StreamARN", "StreamStatus", "OpenShardCount"] {
        assert_eq!(
            moto_summary["StreamDescriptionSummary"][field],
            bench_summary["StreamDescriptionSummary"][field],
            "DescribeStreamSummary: {field}"
        );
    }

    let mut total = 0;
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let from = |kind: &str, sequence: Option<&Value>| {
            let mut body =
                json!({ "StreamName": name, "ShardId": shard, "ShardIteratorType": kind });
            if let Some(s) = sequence {
                body["StartingSequenceNumber"] = s.clone();
            }
            body
        };
        let (moto_it, bench_it) = same_shape(
            moto,
            bench,
            "GetShardIterator",
            &from("TRIM_HORIZON", None),
            &from("TRIM_HORIZON", None),
        );
        let get = |it: &Value| json!({ "ShardIterator": it["ShardIterator"], "Limit": 100 });
        let (moto_all, bench_all) =
            same_shape(moto, bench, "GetRecords", &get(&moto_it), &get(&bench_it));
        assert_eq!(records(&moto_all), records(&bench_all), "{shard}: records");
        assert!(
            records(&bench_all).len() >= 5,
            "{shard} holds too few records to compare"
        );
        total += records(&bench_all).len();
        // After the second record: the rest, in the same order.
        let second = |answer: &Value| answer["Records"][1]["SequenceNumber"].clone();
        let (moto_it, bench_it) = same_shape(
            moto,
            bench,
            "GetShardIterator",
            &from("AFTER_SEQUENCE_NUMBER", Some(&second(&moto_all))),
            &from("AFTER_SEQUENCE_NUMBER", Some(&second(&bench_all))),
        );
        let (moto_rest, bench_rest) =
            same_shape(moto, bench, "GetRecords", &get(&moto_it), &get(&bench_it));
        assert_eq!(
            records(&moto_rest),
            records(&bench_rest),
            "{shard}: records after the second"
        );
        assert_eq!(records(&bench_rest), records(&bench_all)[2..].to_vec());
        // At the end: no records, caught up, an iterator to go on with.
        let next = |answer: &Value| json!({ "ShardIterator": answer["NextShardIterator"] });
        let (moto_end, bench_end) = same_shape(
            moto,
            bench,
            "GetRecords",
            &next(&moto_all),
            &next(&bench_all),
        );
        assert_eq!(moto_end["Records"], json!([]));
        assert_eq!(bench_end["Records"], json!([]));
        assert_eq!(
            bench_end["MillisBehindLatest"],
            moto_end["MillisBehindLatest"]
        );
    }
    assert_eq!(total, 40);

    // Errors: the same status and error type.
    let missing = json!({ "StreamName": "no-such-stream" });
    let (moto_error, bench_error) = same_shape(moto, bench, "ListShards", &missing, &missing);
    assert_eq!(moto_error["__type"], bench_error["__type"]);
    let bad_shard = json!({ "StreamName": name, "ShardId": "shardId-000000000009", "ShardIteratorType": "TRIM_HORIZON" });
    let (moto_error, bench_error) =
        same_shape(moto, bench, "GetShardIterator", &bad_shard, &bad_shard);
    assert_eq!(moto_error["__type"], bench_error["__type"]);
}

/// Transaction-like payloads: key `currency` of 5, a fee, an event time.
fn tx_payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"currency":"C{}","fee":{}.25,"event_time":{}}}"#,
                i % 5,
                i % 7,
                1_700_000_000_000u64 + i as u64 * 50
            )
            .into_bytes()
        })
        .collect()
}

#[test]
fn sluice_reads_the_whole_stream_from_the_benchmark_server_within_its_limits() {
    let dir = JobDir::new();
    for kpl in [None, Some(25)] {
        let config = StreamConfig {
            name: "bench".into(),
            shards: 8,
            record_bytes: 400,
            kpl,
            write_rate: 1_000_000,
        };
        let server = Server::new(Stream::build(
            &config,
            tx_payloads(3_000).into_iter(),
            1_700_000_000_000,
        ));
        let endpoint =
            start_in_background(Arc::clone(&server)).expect("start the benchmark server");
        let out = dir.path().join(format!("out-{}", kpl.unwrap_or(1)));
        let job = write_job(
            dir.path(),
            "CREATE TABLE tx (currency STRING, fee DOUBLE, event_time BIGINT)
WITH ('connector' = 'kinesis', 'stream' = 'bench', 'format' = 'json',
  'source.init.position' = 'TRIM_HORIZON', 'scan.bounded' = 'latest',
  'source.shard.get-records.max-record-count' = '200');
CREATE TABLE out (currency STRING, fee DOUBLE, event_time BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'json');
INSERT INTO out SELECT * FROM tx;",
            &[("{output}", &out)],
        );
        sluice_run(&job).aws(&endpoint).output().assert_success();
        // Every payload once, with its values.
        let mut got: Vec<String> = read_json_rows(&out)
            .iter()
            .map(|r| format!("{} {} {}", r["event_time"], r["currency"], r["fee"]))
            .collect();
        got.sort();
        let mut expected: Vec<String> = (0..3_000u64)
            .map(|i| {
                format!(
                    "{}.0 \"C{}\" {}.25",
                    1_700_000_000_000u64 + i * 50,
                    i % 5,
                    i % 7
                )
            })
            .collect();
        expected.sort();
        assert_eq!(got, expected, "KPL {kpl:?}");
        let stats = server.stats_json();
        assert_eq!(stats["refused_calls_limit"], 0, "{stats}");
        assert_eq!(stats["refused_bytes_limit"], 0, "{stats}");
        assert_eq!(stats["records_served"], stats["stream_records"], "{stats}");
    }
}
