//! Unit tests of `sink`.
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow::array::{
    Decimal128Array, Float64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, LogicalType};
use parquet::file::reader::{FileReader as _, SerializedFileReader};

use super::*;

fn sink(dir: &Path, format: &str, partition_by: &[&str], extra: &[(&str, &str)]) -> FileSink {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    values.insert("path".into(), dir.display().to_string());
    values.insert("format".into(), format.into());
    for (k, v) in extra {
        values.insert(k.to_string(), v.to_string());
    }
    let mut options = Options::new("out", values);
    let spec = TableSpec {
        name: "out".into(),
        schema: schema(),
        metadata: vec![],
        partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
        projection: None,
    };
    let sink = FileSink::new(spec, &mut options).unwrap();
    options.finish().unwrap();
    sink
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Region", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(10, 2), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "ltz",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("x", DataType::Float64, true),
    ]))
}

fn batch(regions: Vec<Option<&str>>) -> RecordBatch {
    let n = regions.len();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(regions)),
            Arc::new(
                Decimal128Array::from((0..n as i128).map(|i| 1100 + i).collect::<Vec<_>>())
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(TimestampMicrosecondArray::from(vec![
                1_609_330_394_123_456;
                n
            ])),
            Arc::new(
                TimestampMillisecondArray::from(vec![1_609_330_394_123; n]).with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![0.5; n])),
        ],
    )
    .unwrap()
}

/// Every file below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn success_files_once_the_last_writer_has_committed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sink = sink(
        &out,
        "json",
        &["Region"],
        &[("sink.partition-commit.policy.kind", "success-file")],
    );
    let mut first = sink.create_writer(&SinkContext::standalone(0, 2)).unwrap();
    let mut second = sink.create_writer(&SinkContext::standalone(1, 2)).unwrap();
    first.write(&batch(vec![Some("eu")])).unwrap();
    second.write(&batch(vec![Some("us")])).unwrap();
    first.finish().unwrap();
    assert!(
        !files(&out).iter().any(|f| f.ends_with("_SUCCESS")),
        "no _SUCCESS while another writer has uncommitted files"
    );
    second.finish().unwrap();
    let success: Vec<String> = files(&out)
        .into_iter()
        .filter(|f| f.ends_with("_SUCCESS"))
        .collect();
    assert_eq!(success, vec!["Region=eu/_SUCCESS", "Region=us/_SUCCESS"]);
}

#[test]
fn partition_folders_and_commit_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sink = sink(&out, "json", &["Region"], &[]);
    assert_eq!(
        sink.describe(),
        format!(
            "filesystem(json) path={} partitioned by (Region)",
            out.display()
        )
    );
    let mut writer = sink.create_writer(&SinkContext::standalone(1, 2)).unwrap();
    writer
        .write(&batch(vec![
            Some("eu/west"),
            None,
            Some("us"),
            Some("eu/west"),
        ]))
        .unwrap();

    let before = files(&out);
    assert_eq!(before.len(), 3);
    assert!(
        before.iter().all(|f| Path::new(f)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".part-")
            && f.ends_with(".json.inprogress")),
        "nothing visible before finish: {before:?}"
    );

    writer.finish().unwrap();
    let after = files(&out);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|f| !f.contains("inprogress")));
    let eu: Vec<&String> = after
        .iter()
        .filter(|f| f.starts_with("Region=eu%2Fwest/part-"))
        .collect();
    assert_eq!(eu.len(), 1);
    assert!(
        eu[0].contains("-1-") && eu[0].ends_with(".json"),
        "instance 1 in the name: {}",
        eu[0]
    );
    assert!(after
        .iter()
        .any(|f| f.starts_with("Region=__DEFAULT_PARTITION__/part-")));
    let text = std::fs::read_to_string(out.join(eu[0])).unwrap();
    assert_eq!(
        text,
        "{\"amount\":11.00,\"ts\":\"2020-12-30 12:13:14.123456\",\"ltz\":\"2020-12-30 12:13:14.123Z\",\"x\":0.5}\n\
         {\"amount\":11.03,\"ts\":\"2020-12-30 12:13:14.123456\",\"ltz\":\"2020-12-30 12:13:14.123Z\",\"x\":0.5}\n",
        "partition columns are not repeated inside the files"
    );
}

#[test]
fn parquet_files_have_lowercase_names_millis_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(dir.path(), "parquet", &[], &[]);
    let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
    writer.write(&batch(vec![Some("eu"), None])).unwrap();
    writer.finish().unwrap();
    let names = files(dir.path());
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("part-") && names[0].ends_with("-0-0.parquet"),
        "{names:?}"
    );
    let path = dir.path().join(&names[0]);

    let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    let columns = meta.file_metadata().schema_descr().columns().to_vec();
    let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    assert_eq!(names, vec!["region", "amount", "ts", "ltz", "x"]);
    for (i, utc) in [(2, false), (3, true)] {
        let Some(LogicalType::Timestamp(t)) = columns[i].logical_type_ref() else {
            panic!("column {i} is not a timestamp")
        };
        assert_eq!(t.is_adjusted_to_u_t_c, utc);
        assert_eq!(t.unit, parquet::basic::TimeUnit::MILLIS);
    }
    let Some(LogicalType::Decimal(d)) = columns[1].logical_type_ref() else {
        panic!("decimal expected")
    };
    assert_eq!((d.precision, d.scale), (10, 2));
    let row_group = meta.row_group(0);
    assert!(matches!(
        row_group.column(0).compression(),
        Compression::ZSTD(_)
    ));
    assert!(row_group.column(1).statistics().is_some());

    let batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
    let ts = batches[0]
        .column(2)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(ts.value(0), 1_609_330_394_123);
}

#[test]
fn rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(
        dir.path(),
        "csv",
        &[],
        &[("sink.rolling-policy.file-size", "1 kb")],
    );
    let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
    for _ in 0..10 {
        writer
            .write(&batch(vec![Some("region-with-a-long-name"); 10]))
            .unwrap();
    }
    let rolled = files(dir.path());
    assert!(
        rolled.iter().filter(|f| f.ends_with(".csv")).count() >= 4,
        "{rolled:?}"
    );
    writer.finish().unwrap();
    let all = files(dir.path());
    assert!(
        all.iter()
            .all(|f| f.starts_with("part-") && f.ends_with(".csv")),
        "{all:?}"
    );
    let lines: usize = all
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.path().join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(lines, 100);
    let first = std::fs::read_to_string(dir.path().join(&all[0])).unwrap();
    assert_eq!(
        first.lines().next().unwrap(),
        "region-with-a-long-name,11.00,2020-12-30 12:13:14.123456,2020-12-30 12:13:14.123Z,0.5"
    );
}

#[test]
fn unfinished_files_are_removed_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(dir.path(), "parquet", &["Region"], &[]);
    let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
    writer.write(&batch(vec![Some("a"), Some("b")])).unwrap();
    assert_eq!(files(dir.path()).len(), 2);
    drop(writer);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn rolls_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(
        dir.path(),
        "json",
        &[],
        &[("sink.rolling-policy.rollover-interval", "0 ms")],
    );
    let mut writer = sink.create_writer(&SinkContext::standalone(0, 1)).unwrap();
    writer.write(&batch(vec![Some("a")])).unwrap();
    writer.write(&batch(vec![Some("b")])).unwrap();
    let visible: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("part-"))
        .collect();
    assert_eq!(
        visible.len(),
        1,
        "the first file rolled when the second batch came"
    );
    writer.finish().unwrap();
    assert_eq!(files(dir.path()).len(), 2);
}

/// Visible (committed) part files below `dir`.
fn visible(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.starts_with("part-"))
        .collect()
}

#[test]
fn files_of_an_abandoned_checkpoint_are_committed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(dir.path(), "json", &[], &[]);
    let mut context = SinkContext::standalone(0, 1);
    context.exactly_once = true;
    let mut writer = sink.create_writer(&context).unwrap();
    writer.write(&batch(vec![Some("a")])).unwrap();
    // Checkpoint 1 times out: its prepared files are never committed by it.
    let _abandoned = writer.prepare_commit().unwrap();
    writer.write(&batch(vec![Some("b")])).unwrap();
    let second = writer.prepare_commit().unwrap();
    assert!(visible(dir.path()).is_empty());
    sink.commit(&[second]).unwrap();
    assert_eq!(visible(dir.path()).len(), 2, "both checkpoints' files");
    // Once committed, a file is not handed to later checkpoints again.
    writer.write(&batch(vec![Some("c")])).unwrap();
    let third = writer.prepare_commit().unwrap();
    let prepared: Prepared = serde_json::from_slice(&third).unwrap();
    assert_eq!(prepared.files.len(), 1);
    sink.commit(&[third]).unwrap();
    assert_eq!(visible(dir.path()).len(), 3);
}
