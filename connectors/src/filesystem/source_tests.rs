//! Unit tests of `source`.
use std::sync::atomic::AtomicBool;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Field, Fields, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType};
use sluice_engine::connector::MetadataColumn;
use sluice_engine::metrics::JobMetrics;

use super::*;

fn spec(fields: Vec<Field>, metadata: Vec<(&str, &str)>) -> TableSpec {
    TableSpec {
        name: "tx".into(),
        schema: Arc::new(Schema::new(fields)),
        metadata: metadata
            .into_iter()
            .map(|(name, key)| MetadataColumn {
                name: name.into(),
                key: key.into(),
            })
            .collect(),
        partition_by: vec![],
        projection: None,
    }
}

fn options(pairs: &[(&str, &str)]) -> Options {
    Options::from_pairs("tx", pairs)
}

fn context(instance: usize, parallelism: usize) -> SourceContext {
    SourceContext::new(
        Arc::new(JobMetrics::new()),
        Arc::new(AtomicBool::new(false)),
        instance,
        parallelism,
    )
}

/// Reads everything one instance produces: its batches and the events in order.
fn read_all(source: &FileSource, ctx: &SourceContext) -> Result<(Vec<RecordBatch>, Vec<String>)> {
    let mut reader = source.create_reader(ctx)?;
    let mut batches = Vec::new();
    let mut events = Vec::new();
    loop {
        match reader.next(ctx)? {
            SourceEvent::Batch { partition, batch } => {
                events.push(format!("batch {partition} {}", batch.num_rows()));
                batches.push(batch);
            }
            SourceEvent::PartitionFinished(p) => events.push(format!("finished {p}")),
            SourceEvent::PartitionAdded(p) => events.push(format!("added {p}")),
            SourceEvent::Pending => events.push("pending".into()),
            SourceEvent::Finished => return Ok((batches, events)),
        }
    }
}

fn tx_fields() -> Vec<Field> {
    vec![
        Field::new("tx_hash", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("event_time", DataType::Int64, true),
    ]
}

fn json_source(path: &Path, extra: &[(&str, &str)], fields: Vec<Field>) -> Result<FileSource> {
    let path = path.display().to_string();
    let mut pairs = vec![("path", path.as_str()), ("format", "json")];
    pairs.extend_from_slice(extra);
    let mut o = options(&pairs);
    let source = FileSource::new(spec(fields, vec![]), &mut o)?;
    o.finish()?;
    Ok(source)
}

#[test]
fn decodes_json_lines_with_blank_lines_and_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.json");
    std::fs::write(
        &file,
        "{\"tx_hash\":\"a\",\"amount\":1.5,\"event_time\":10,\"extra\":[1,2]}\n\n   \n\
         {\"tx_hash\":\"b\",\"amount\":2,\"event_time\":20}\r\n\
         {\"amount\":3.0,\"event_time\":30,\"Tx_Hash\":\"c\"}",
    )
    .unwrap();
    let source = json_source(&file, &[], tx_fields()).unwrap();
    let ctx = context(0, 1);
    let (batches, events) = read_all(&source, &ctx).unwrap();
    assert_eq!(events, vec!["batch 0 3", "finished 0"]);
    let b = &batches[0];
    assert_eq!(b.schema(), source.table.schema);
    let hashes = b.column(0).as_string::<i32>();
    assert_eq!(hashes.value(0), "a");
    assert_eq!(hashes.value(1), "b");
    // Field names are case-sensitive: `Tx_Hash` is not `tx_hash`.
    assert!(hashes.is_null(2));
    assert_eq!(
        b.column(1).as_primitive::<Float64Type>().values(),
        &[1.5, 2.0, 3.0]
    );
    assert_eq!(
        b.column(2).as_primitive::<Int64Type>().values(),
        &[10, 20, 30]
    );
    assert!(
        ctx.metrics
            .bytes_read
            .load(std::sync::atomic::Ordering::Relaxed)
            > 100
    );
}

#[test]
fn malformed_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.json");
    let mut text = String::new();
    for i in 0..15 {
        text.push_str(&format!(
            "{{\"tx_hash\":\"h{i}\",\"amount\":{i},\"event_time\":{i}}}\n"
        ));
    }
    text.push('\n'); // line 16 is blank and still counts
    text.push_str("{\"tx_hash\":\"bad\",\"amount\":\n"); // line 17
    text.push_str("{\"tx_hash\":\"z\",\"amount\":1,\"event_time\":1}\n");
    std::fs::write(&file, text).unwrap();
    let source = json_source(&file, &[], tx_fields()).unwrap();
    let err = read_all(&source, &context(0, 1)).unwrap_err();
    assert_eq!(err.kind(), sluice_engine::error::ErrorKind::Data);
    let prefix = format!("table 'tx': file {} line 17: ", file.display());
    assert!(err.message().starts_with(&prefix), "{err}");

    // A wrong type is found the same way.
    std::fs::write(&file, "{\"amount\":1}\n{\"amount\":\"lots\"}\n").unwrap();
    let err = read_all(
        &json_source(&file, &[], tx_fields()).unwrap(),
        &context(0, 1),
    )
    .unwrap_err();
    assert!(err.message().contains("line 2: "), "{err}");
}

#[test]
fn ignored_parse_errors_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.json");
    let mut text = String::new();
    for i in 0..20_000 {
        if i % 5000 == 7 {
            text.push_str("not json at all\n");
        }
        text.push_str(&format!(
            "{{\"tx_hash\":\"h{i}\",\"amount\":{i},\"event_time\":{i}}}\n"
        ));
    }
    text.push_str("{\"event_time\": \"not a number\"}\n");
    std::fs::write(&file, text).unwrap();
    let source = json_source(&file, &[("json.ignore-parse-errors", "true")], tx_fields()).unwrap();
    let ctx = context(0, 1);
    let (batches, _) = read_all(&source, &ctx).unwrap();
    let times: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(
        times,
        (0..20_000).collect::<Vec<_>>(),
        "rows kept, in file order"
    );
    assert_eq!(ctx.metrics.dropped_total(DropReason::Malformed), 5);
    assert!(batches.iter().all(|b| b.num_rows() <= BATCH_SIZE));
}

/// A file of good lines (event_time = row number) with bad lines of every kind mixed
/// in; returns the text, the good event times and the line numbers of the bad lines.
fn dirty_file(rows: i64) -> (String, Vec<i64>, Vec<u64>) {
    let bad_kinds = [
        "garbage",
        "{\"tx_hash\":\"cut\",\"amount\":",
        "{\"amount\":1}}",
        "{\"amount\":\"not a number\"}",
        "{\"event_time\":1.5e400}",
        "[1,2,3]",
    ];
    let (mut text, mut good, mut bad) = (String::new(), Vec::new(), Vec::new());
    let mut line = 0;
    for i in 0..rows {
        if i % 997 == 3 {
            line += 1;
            bad.push(line);
            text.push_str(bad_kinds[(i as usize / 997) % bad_kinds.len()]);
            text.push('\n');
        }
        if i % 1500 == 0 {
            line += 1;
            text.push_str("   \n");
        }
        line += 1;
        good.push(i);
        text.push_str(&format!(
            "{{\"tx_hash\":\"h{i}\",\"amount\":null,\"event_time\":{i}}}\n"
        ));
    }
    (text, good, bad)
}

fn event_times(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

#[test]
fn every_kind_of_bad_line_is_found_among_many() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.json");
    let (text, good, bad) = dirty_file(30_000);
    std::fs::write(&file, text).unwrap();

    let source = json_source(&file, &[("json.ignore-parse-errors", "true")], tx_fields()).unwrap();
    let ctx = context(0, 1);
    let (batches, _) = read_all(&source, &ctx).unwrap();
    assert_eq!(event_times(&batches), good);
    assert_eq!(
        ctx.metrics.dropped_total(DropReason::Malformed),
        bad.len() as u64
    );

    // Without ignoring, the first bad line is named.
    let err = read_all(
        &json_source(&file, &[], tx_fields()).unwrap(),
        &context(0, 1),
    )
    .unwrap_err();
    assert!(
        err.message().contains(&format!(" line {}: ", bad[0])),
        "{err}"
    );
}

#[test]
fn missing_fields_are_found_among_explicit_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.json");
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..20_000 {
        if i % 3001 == 5 {
            text.push_str(&format!("{{\"tx_hash\":null,\"event_time\":{i}}}\n"));
        } else {
            expected.push(i);
            text.push_str(&format!(
                "{{\"tx_hash\":null,\"amount\":null,\"event_time\":{i}}}\n"
            ));
        }
    }
    std::fs::write(&file, text).unwrap();
    let options = [
        ("json.fail-on-missing-field", "true"),
        ("json.ignore-parse-errors", "true"),
    ];
    let source = json_source(&file, &options, tx_fields()).unwrap();
    let ctx = context(0, 1);
    let (batches, _) = read_all(&source, &ctx).unwrap();
    assert_eq!(event_times(&batches), expected);
    assert_eq!(ctx.metrics.dropped_total(DropReason::Malformed), 7);

    let strict = json_source(&file, &options[..1], tx_fields()).unwrap();
    let err = read_all(&strict, &context(0, 1)).unwrap_err();
    assert!(
        err.message()
            .ends_with(" line 6: field 'amount' is missing"),
        "{err}"
    );
}

#[test]
fn missing_fields_are_null_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.json");
    std::fs::write(
        &file,
        "{\"tx_hash\":\"a\",\"amount\":null,\"event_time\":1}\n{\"tx_hash\":\"b\",\"amount\":2}\n",
    )
    .unwrap();
    let (batches, _) = read_all(
        &json_source(&file, &[], tx_fields()).unwrap(),
        &context(0, 1),
    )
    .unwrap();
    assert!(batches[0].column(2).is_null(1));

    let strict = json_source(
        &file,
        &[("json.fail-on-missing-field", "true")],
        tx_fields(),
    )
    .unwrap();
    let err = read_all(&strict, &context(0, 1)).unwrap_err();
    assert_eq!(
        err.message(),
        format!(
            "table 'tx': file {} line 2: field 'event_time' is missing",
            file.display()
        )
    );
}

#[test]
fn nested_rows_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.json");
    std::fs::write(
        &file,
        "{\"user\":{\"id\":7,\"name\":\"ann\"},\"ts\":\"2020-12-30 12:13:14.123\",\"ltz\":\"2020-12-30T12:13:14.123Z\"}\n\
         {\"user\":null,\"ts\":\"2020-12-30T12:13:14.123\",\"ltz\":1609330394123}\n",
    )
    .unwrap();
    let user = Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let fields = vec![
        Field::new("user", DataType::Struct(user), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new(
            "ltz",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ];
    let (batches, _) = read_all(&json_source(&file, &[], fields).unwrap(), &context(0, 1)).unwrap();
    let b = &batches[0];
    let user = b.column(0).as_struct();
    assert_eq!(user.column(0).as_primitive::<Int64Type>().value(0), 7);
    assert_eq!(user.column(1).as_string::<i32>().value(0), "ann");
    assert!(user.is_null(1));
    let ts = b.column(1).as_primitive::<TimestampMillisecondType>();
    assert_eq!(ts.values(), &[1_609_330_394_123, 1_609_330_394_123]);
    let ltz = b.column(2).as_primitive::<TimestampMillisecondType>();
    assert_eq!(ltz.values(), &[1_609_330_394_123, 1_609_330_394_123]);
}

#[test]
fn csv_with_options_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tx.csv");
    std::fs::write(&file, "a;1.5;10\n'b;c';;20\n\nd;NULL;30\nbad;x;1\n").unwrap();
    let path = file.display().to_string();
    let base = [
        ("path", path.as_str()),
        ("format", "csv"),
        ("csv.field-delimiter", ";"),
        ("csv.quote-character", "'"),
        ("csv.null-literal", "NULL"),
    ];
    let mut o = options(&base);
    let source = FileSource::new(spec(tx_fields(), vec![]), &mut o).unwrap();
    o.finish().unwrap();
    let err = read_all(&source, &context(0, 1)).unwrap_err();
    assert!(
        err.message()
            .starts_with(&format!("table 'tx': file {path} line 5: ")),
        "{err}"
    );

    let mut with_ignore = base.to_vec();
    with_ignore.push(("csv.ignore-parse-errors", "true"));
    let mut o = options(&with_ignore);
    let source = FileSource::new(spec(tx_fields(), vec![]), &mut o).unwrap();
    let ctx = context(0, 1);
    let (batches, _) = read_all(&source, &ctx).unwrap();
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3);
    assert_eq!(b.column(0).as_string::<i32>().value(1), "b;c");
    assert!(b.column(1).is_null(1));
    assert!(b.column(1).is_null(2));
    assert_eq!(ctx.metrics.dropped_total(DropReason::Malformed), 1);
}

#[test]
fn folders_files_instances_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("b/c")).unwrap();
    std::fs::create_dir_all(root.join("_temp")).unwrap();
    for (name, n) in [
        ("a.json", 1),
        ("b/c/d.json", 2),
        ("b/e.json", 3),
        ("z.json", 4),
    ] {
        std::fs::write(root.join(name), format!("{{\"amount\":{n}}}\n")).unwrap();
    }
    std::fs::write(root.join(".hidden.json"), "{\"amount\":99}\n").unwrap();
    std::fs::write(root.join("_SUCCESS"), "").unwrap();
    std::fs::write(root.join("_temp/x.json"), "{\"amount\":99}\n").unwrap();

    let mut fields = tx_fields();
    fields.push(Field::new("path", DataType::Utf8, true));
    fields.push(Field::new("name", DataType::Utf8, true));
    let root_text = root.display().to_string();
    let mut o = options(&[("path", root_text.as_str()), ("format", "json")]);
    let source = FileSource::new(
        spec(
            fields.clone(),
            vec![("path", "file.path"), ("name", "file.name")],
        ),
        &mut o,
    )
    .unwrap();
    assert_eq!(
        source.describe(),
        format!("filesystem(json) path={root_text}")
    );

    let (batches, events) = read_all(&source, &context(0, 2)).unwrap();
    assert_eq!(
        events,
        vec!["batch 0 1", "finished 0", "batch 2 1", "finished 2"]
    );
    assert_eq!(
        batches[0].column(1).as_primitive::<Float64Type>().value(0),
        1.0
    );
    assert_eq!(
        batches[1].column(1).as_primitive::<Float64Type>().value(0),
        3.0
    );
    assert_eq!(
        batches[1].column(3).as_string::<i32>().value(0),
        root.join("b/e.json").display().to_string()
    );
    assert_eq!(batches[1].column(4).as_string::<i32>().value(0), "e.json");
    let (_, events) = read_all(&source, &context(1, 2)).unwrap();
    assert_eq!(
        events,
        vec!["batch 1 1", "finished 1", "batch 3 1", "finished 3"]
    );
    let (_, events) = read_all(&source, &context(5, 6)).unwrap();
    assert!(
        events.is_empty(),
        "an instance without files finishes at once"
    );

    let mut o = options(&[("path", root_text.as_str()), ("format", "json")]);
    let err = FileSource::new(
        spec(fields, vec![("path", "file.path"), ("name", "file.size")]),
        &mut o,
    )
    .err()
    .unwrap();
    assert!(
        err.message().contains("table 'tx'") && err.message().contains("'file.size'"),
        "{err}"
    );
}

#[test]
fn partition_columns_come_from_folders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dt=2020-12-30/n=__DEFAULT_PARTITION__")).unwrap();
    std::fs::write(
        dir.path()
            .join("dt=2020-12-30/n=__DEFAULT_PARTITION__/p.json"),
        "{\"amount\":1}\n",
    )
    .unwrap();
    let fields = vec![
        Field::new("amount", DataType::Float64, true),
        Field::new("dt", DataType::Date32, true),
        Field::new("n", DataType::Int32, true),
    ];
    let mut table = spec(fields, vec![]);
    table.partition_by = vec!["dt".into(), "n".into()];
    let root = dir.path().display().to_string();
    let mut o = options(&[("path", root.as_str()), ("format", "json")]);
    let source = FileSource::new(table, &mut o).unwrap();
    let (batches, _) = read_all(&source, &context(0, 1)).unwrap();
    let b = &batches[0];
    assert_eq!(
        b.column(1)
            .as_primitive::<arrow::datatypes::Date32Type>()
            .value(0),
        18626
    );
    assert!(b.column(2).is_null(0));
}

#[test]
fn missing_path_is_a_connector_error() {
    let err = json_source(Path::new("/no/such/place"), &[], tx_fields())
        .err()
        .unwrap();
    assert_eq!(err.kind(), sluice_engine::error::ErrorKind::Connector);
    assert_eq!(
        err.message(),
        "table 'tx': path '/no/such/place' does not exist"
    );
}
