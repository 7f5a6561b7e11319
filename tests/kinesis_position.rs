//! The Kinesis reader's position round-trips: a reader created from another reader's
//! snapshot resumes after the last record that one delivered, on every shard, with no record
//! lost or repeated. (Wiring it into checkpoints is the checkpoint issue's work.)
//!
//! Its own test binary: it sets the AWS environment of this process, which the SDK inside
//! the connector reads, and which the end-to-end tests' `sluice` processes must not inherit.

#[allow(dead_code)]
#[path = "e2e/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use common::aws::{aws_env, kinesis_tool, moto, unique_stream};
use common::JobDir;
use sluice_engine::connector::{Options, SourceContext, SourceEvent, SourceReader, TableSpec};
use sluice_engine::metrics::JobMetrics;

fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(0)
        .as_primitive::<Int64Type>()
        .iter()
        .flatten()
        .collect()
}

fn reader(stream: &str, restored: Vec<Vec<u8>>) -> Box<dyn SourceReader> {
    let spec = TableSpec {
        name: "r".into(),
        schema: Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("k", DataType::Utf8, true),
        ])),
        metadata: vec![],
        partition_by: vec![],
        projection: None,
    };
    let mut options = Options::from_pairs(
        "r",
        &[
            ("stream", stream),
            ("format", "json"),
            ("source.init.position", "TRIM_HORIZON"),
            ("scan.bounded", "latest"),
            ("source.shard.get-records.max-record-count", "40"),
            ("source.shard.discovery.interval", "200 ms"),
        ],
    );
    let source = sluice_connectors::create_source("kinesis", spec, &mut options).unwrap();
    options.finish().unwrap();
    let mut ctx = context();
    ctx.restored = Arc::new(restored);
    source.create_reader(&ctx).unwrap()
}

fn context() -> SourceContext {
    SourceContext::new(
        Arc::new(JobMetrics::new()),
        Arc::new(AtomicBool::new(false)),
        0,
        1,
    )
}

#[test]
fn a_reader_resumes_after_the_last_record_it_delivered() {
    let endpoint = &moto().endpoint;
    for (k, v) in aws_env(endpoint) {
        std::env::set_var(k, v);
    }
    let stream = unique_stream("position");
    kinesis_tool(endpoint, &["create", "--stream", &stream, "--shards", "3"]);
    let dir = JobDir::new();
    let lines: String = (0..600)
        .map(|i| format!("{{\"id\": {i}, \"k\": \"key-{}\"}}\n", i % 11))
        .collect();
    let file = dir.write("records.jsonl", &lines);
    kinesis_tool(
        endpoint,
        &[
            "put",
            "--stream",
            &stream,
            "--file",
            file.to_str().unwrap(),
            "--key-field",
            "k",
        ],
    );

    // First run: stop after a few batches, in the middle of the shards.
    let ctx = context();
    let mut first = reader(&stream, vec![]);
    let mut seen = BTreeSet::new();
    let mut batches = 0;
    while batches < 5 {
        match first.next(&ctx).unwrap() {
            SourceEvent::Batch { batch, .. } => {
                batches += 1;
                for id in ids(&batch) {
                    assert!(seen.insert(id), "{id} twice");
                }
            }
            SourceEvent::Finished => panic!("finished early"),
            _ => {}
        }
    }
    let snapshot = first
        .snapshot()
        .unwrap()
        .expect("kinesis readers have a position");
    drop(first);
    let before = seen.len();
    assert!(
        before > 0 && before < 600,
        "{before} records before the snapshot"
    );

    // Second run from the snapshot: exactly the rest.
    let mut second = reader(&stream, vec![snapshot]);
    loop {
        match second.next(&ctx).unwrap() {
            SourceEvent::Batch { batch, .. } => {
                for id in ids(&batch) {
                    assert!(seen.insert(id), "{id} delivered again after the restore");
                }
            }
            SourceEvent::Finished => break,
            _ => {}
        }
    }
    assert_eq!(seen, (0..600).collect::<BTreeSet<i64>>());
}
