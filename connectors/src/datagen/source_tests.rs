//! Unit tests of `source`.
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use arrow::array::AsArray;
use arrow::datatypes::{Field, Int32Type, Int64Type, Schema, TimestampMillisecondType};
use sluice_engine::metrics::JobMetrics;

use super::*;

fn source(fields: Vec<Field>, pairs: &[(&str, &str)]) -> Result<DatagenSource> {
    let values: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut options = Options::new("gen", values);
    let spec = TableSpec {
        name: "gen".into(),
        schema: Arc::new(Schema::new(fields)),
        metadata: vec![],
        partition_by: vec![],
        projection: None,
    };
    let source = DatagenSource::new(spec, &mut options)?;
    options.finish()?;
    Ok(source)
}

fn context(instance: usize, parallelism: usize) -> SourceContext {
    SourceContext::new(
        Arc::new(JobMetrics::new()),
        Arc::new(AtomicBool::new(false)),
        instance,
        parallelism,
    )
}

fn drain(source: &DatagenSource, ctx: &SourceContext) -> Vec<RecordBatch> {
    let mut reader = source.create_reader(ctx).unwrap();
    assert_eq!(reader.partitions(), vec![ctx.instance]);
    let mut batches = Vec::new();
    let mut finished_partition = false;
    loop {
        match reader.next(ctx).unwrap() {
            SourceEvent::Batch { partition, batch } => {
                assert_eq!(partition, ctx.instance);
                batches.push(batch);
            }
            SourceEvent::PartitionFinished(p) => {
                assert_eq!(p, ctx.instance);
                finished_partition = true;
            }
            SourceEvent::Pending | SourceEvent::PartitionAdded(_) => {}
            SourceEvent::Finished => break,
        }
    }
    assert!(finished_partition);
    batches
}

#[test]
fn sequence_split_over_two_instances_covers_the_range_once() {
    let source = source(
        vec![
            Field::new("id", DataType::Int32, false),
            Field::new("s", DataType::Utf8, true),
        ],
        &[
            ("rows-per-second", "1000000"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "20001"),
        ],
    )
    .unwrap();
    assert!(source.bounded());
    let mut all = Vec::new();
    let mut counts = Vec::new();
    for instance in 0..2 {
        let batches = drain(&source, &context(instance, 2));
        let ids: Vec<i32> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "contiguous per instance"
        );
        assert!(batches.iter().all(|b| b.num_rows() <= MAX_BATCH));
        let s = batches[0].column(1).as_string::<i32>();
        assert_eq!(s.value(0).len(), 100);
        assert!(s.value(0).chars().all(|c| c.is_ascii_hexdigit()));
        counts.push(ids.len());
        all.extend(ids);
    }
    assert_eq!(counts, vec![10_001, 10_000]);
    all.sort_unstable();
    assert_eq!(all, (1..=20_001).collect::<Vec<_>>());
}

#[test]
fn number_of_rows_split_and_random_bounds() {
    let fields = vec![
        Field::new("n", DataType::Int64, true),
        Field::new("price", DataType::Decimal128(6, 2), true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("flag", DataType::Boolean, true),
        Field::new("x", DataType::Float32, true),
    ];
    let source = source(
        fields,
        &[
            ("number-of-rows", "101"),
            ("rows-per-second", "100000"),
            ("fields.n.min", "5"),
            ("fields.n.max", "7"),
            ("fields.n.null-rate", "0.5"),
            ("fields.price.min", "1.50"),
            ("fields.price.max", "2"),
            ("fields.ts.max-past", "1 min"),
            ("seed", "42"),
        ],
    )
    .unwrap();
    let before = now_millis();
    let mut total = 0;
    let mut nulls = 0;
    for instance in 0..3 {
        for b in drain(&source, &context(instance, 3)) {
            total += b.num_rows();
            let n = b.column(0).as_primitive::<Int64Type>();
            nulls += n.null_count();
            assert!(n.iter().flatten().all(|v| (5..=7).contains(&v)));
            let price = b
                .column(1)
                .as_primitive::<arrow::datatypes::Decimal128Type>();
            assert!(price.values().iter().all(|v| (150..=200).contains(v)));
            let ts = b.column(2).as_primitive::<TimestampMillisecondType>();
            assert!(ts
                .values()
                .iter()
                .all(|&t| t >= before - 60_000 - 1000 && t <= now_millis()));
        }
    }
    assert_eq!(total, 101);
    assert!(nulls > 10 && nulls < 91, "about half NULL: {nulls}");
}

#[test]
fn seeded_runs_repeat() {
    let make = || {
        source(
            vec![Field::new("n", DataType::Int64, true)],
            &[("number-of-rows", "10"), ("seed", "7")],
        )
        .unwrap()
    };
    let a = drain(&make(), &context(0, 1));
    let b = drain(&make(), &context(0, 1));
    assert_eq!(a, b);
}

#[test]
fn a_restored_reader_goes_on_after_its_position() {
    let source = source(
        vec![Field::new("id", DataType::Int64, false)],
        &[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "100"),
            ("rows-per-second", "200"),
        ],
    )
    .unwrap();
    // Instance 1 of 2 owns 51..=100; it emits one batch, then a checkpoint is taken.
    let first = context(1, 2);
    let mut reader = source.create_reader(&first).unwrap();
    let SourceEvent::Batch { batch, .. } = reader.next(&first).unwrap() else {
        panic!("a batch expected")
    };
    let emitted = batch.num_rows() as i64;
    assert_eq!(emitted, 10, "a tenth of a second of 100 rows per second");
    let position = reader.snapshot().unwrap().unwrap();
    let other = Position {
        instance: 0,
        parallelism: 2,
        emitted: 3,
    };
    let mut restored = context(1, 2);
    restored.restored = Arc::new(vec![serde_json::to_vec(&other).unwrap(), position.clone()]);
    let ids: Vec<i64> = drain(&source, &restored)
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ids, (51 + emitted..=100).collect::<Vec<_>>());
    // With a `number-of-rows` beyond the sequence, the sequence still ends the source.
    let counted = self::source(
        vec![Field::new("id", DataType::Int64, false)],
        &[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "100"),
            ("number-of-rows", "1000"),
            ("rows-per-second", "1000000"),
        ],
    )
    .unwrap();
    let rows: usize = drain(&counted, &restored)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows as i64, 50 - emitted);
    // Another parallelism cannot split the positions.
    let mut elsewhere = context(0, 3);
    elsewhere.restored = Arc::new(vec![position]);
    let e = source.create_reader(&elsewhere).err().unwrap();
    assert!(
        e.to_string()
            .contains("parallelism of its checkpoint (2), not 3"),
        "{e}"
    );
}

#[test]
fn rate_is_kept() {
    let source = source(
        vec![Field::new("n", DataType::Int64, true)],
        &[("number-of-rows", "40"), ("rows-per-second", "200")],
    )
    .unwrap();
    let started = Instant::now();
    let batches = drain(&source, &context(0, 1));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 40);
    // 40 rows at 200/s: the last batch of 20 is due after 0.1 s.
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn unsupported_types_and_metadata_are_plan_errors() {
    let err = source(vec![Field::new("b", DataType::Binary, true)], &[])
        .err()
        .unwrap();
    assert!(
        err.message().contains("column 'b'") && err.message().contains("cannot generate"),
        "{err}"
    );
    let err = source(
        vec![Field::new("n", DataType::Int8, true)],
        &[("fields.n.min", "x")],
    )
    .err()
    .unwrap();
    assert!(err.message().contains("'min' = 'x'"), "{err}");
}

#[test]
fn stops_when_asked() {
    let source = source(vec![Field::new("n", DataType::Int64, true)], &[]).unwrap();
    assert!(!source.bounded());
    let ctx = context(0, 1);
    let mut reader = source.create_reader(&ctx).unwrap();
    assert!(matches!(
        reader.next(&ctx).unwrap(),
        SourceEvent::Batch { .. }
    ));
    ctx.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(reader.next(&ctx).unwrap(), SourceEvent::Finished));
}
