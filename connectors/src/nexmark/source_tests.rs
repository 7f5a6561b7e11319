//! Unit tests of `source`: the events of Flink's generator, repeatable from a seed,
//! resumed exactly from a checkpoint, with Flink's proportions and hot-item ratios.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};
use sluice_engine::metrics::JobMetrics;

use super::super::config::nexmark_schema;
use super::*;

const BASE: i64 = 1_700_000_000_000;

fn source(pairs: &[(&str, &str)]) -> NexmarkSource {
    projected_source(pairs, None)
}

fn projected_source(pairs: &[(&str, &str)], projection: Option<Vec<usize>>) -> NexmarkSource {
    let mut values: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    values.insert("seed".into(), "7".into());
    values.insert("base-time".into(), BASE.to_string());
    let mut options = Options::new("nx", values);
    let spec = TableSpec {
        name: "nx".into(),
        schema: Arc::new(nexmark_schema()),
        metadata: vec![],
        partition_by: vec![],
        projection,
    };
    let source = NexmarkSource::new(spec, &mut options).unwrap();
    options.finish().unwrap();
    source
}

fn context(instance: usize, parallelism: usize, restored: Vec<Vec<u8>>) -> SourceContext {
    let mut ctx = SourceContext::new(
        Arc::new(JobMetrics::new()),
        Arc::new(AtomicBool::new(false)),
        instance,
        parallelism,
    );
    ctx.restored = Arc::new(restored);
    ctx
}

/// Every batch of a reader until it finishes.
fn drain(reader: &mut dyn SourceReader, ctx: &SourceContext) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    loop {
        match reader.next(ctx).unwrap() {
            SourceEvent::Batch { batch, .. } => batches.push(batch),
            SourceEvent::Finished => return batches,
            _ => {}
        }
    }
}

fn all(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}

fn field<'a>(batch: &'a RecordBatch, column: &str, name: &str) -> &'a dyn Array {
    batch
        .column_by_name(column)
        .unwrap()
        .as_struct()
        .column_by_name(name)
        .unwrap()
        .as_ref()
}

#[test]
fn the_first_events_are_flinks() {
    let source = source(&[("events.num", "100")]);
    let ctx = context(0, 1, vec![]);
    let batch = all(&drain(&mut *source.create_reader(&ctx).unwrap(), &ctx));
    assert_eq!(batch.num_rows(), 100);
    let kinds = batch.column(0).as_primitive::<Int32Type>();
    // Event ids 2 and 3 are auctions 1001 and 1002, 4 to 49 bids, 50 person 1001.
    assert_eq!(&kinds.values()[..3], [1, 1, 2]);
    assert_eq!(kinds.value(48), 0);
    let auction_ids = field(&batch, "auction", "id").as_primitive::<Int64Type>();
    assert_eq!((auction_ids.value(0), auction_ids.value(1)), (1001, 1002));
    let person_ids = field(&batch, "person", "id").as_primitive::<Int64Type>();
    assert_eq!(person_ids.value(48), 1001);
    assert!(
        batch.column(1).is_null(0) && batch.column(2).is_valid(0) && batch.column(3).is_null(0)
    );
    // 10,000 events a second: event n at n / 10 ms.
    let times = field(&batch, "bid", "dateTime").as_primitive::<TimestampMillisecondType>();
    assert_eq!(times.value(9), BASE + 1);
    assert_eq!(times.value(97), BASE + 9);
}

#[test]
fn a_seed_repeats_the_events_and_a_checkpoint_resumes_them_exactly() {
    let source = source(&[("events.num", "40000")]);
    let ctx = context(1, 2, vec![]);
    let whole = all(&drain(&mut *source.create_reader(&ctx).unwrap(), &ctx));
    assert_eq!(whole.num_rows(), 20_000);
    assert_eq!(
        all(&drain(&mut *source.create_reader(&ctx).unwrap(), &ctx)),
        whole
    );
    // Stop after one batch, resume from its snapshot.
    let mut reader = source.create_reader(&ctx).unwrap();
    let SourceEvent::Batch { batch: first, .. } = reader.next(&ctx).unwrap() else {
        panic!("no batch")
    };
    let position = reader.snapshot().unwrap().unwrap();
    let resumed_ctx = context(1, 2, vec![b"".to_vec(), position]);
    let rest = drain(
        &mut *source.create_reader(&resumed_ctx).unwrap(),
        &resumed_ctx,
    );
    let mut batches = vec![first];
    batches.extend(rest);
    assert_eq!(all(&batches), whole);
    // The other generator makes other ids on the same timeline.
    let other_ctx = context(0, 2, vec![]);
    let other = all(&drain(
        &mut *source.create_reader(&other_ctx).unwrap(),
        &other_ctx,
    ));
    let ids = |b: &RecordBatch| {
        field(b, "auction", "id")
            .as_primitive::<Int64Type>()
            .clone()
    };
    assert!(
        ids(&other).iter().flatten().max() < ids(&whole).iter().flatten().filter(|&i| i > 0).min()
    );
}

#[test]
fn proportions_and_hot_ratios_are_flinks() {
    let source = source(&[("events.num", "500000")]);
    let ctx = context(0, 1, vec![]);
    let batch = all(&drain(&mut *source.create_reader(&ctx).unwrap(), &ctx));
    let kinds = batch.column(0).as_primitive::<Int32Type>();
    let count = |k: i32| kinds.values().iter().filter(|&&v| v == k).count();
    assert_eq!((count(0), count(1), count(2)), (10_000, 30_000, 460_000));
    let bids: Vec<usize> = (0..batch.num_rows())
        .filter(|&i| kinds.value(i) == 2)
        .collect();
    let auctions = field(&batch, "bid", "auction").as_primitive::<Int64Type>();
    let bidders = field(&batch, "bid", "bidder").as_primitive::<Int64Type>();
    let channels = field(&batch, "bid", "channel").as_string::<i32>();
    let extras = field(&batch, "bid", "extra").as_string::<i32>();
    let share = |f: &dyn Fn(usize) -> bool| {
        bids.iter().filter(|&&i| f(i)).count() as f64 / bids.len() as f64
    };
    // Hot auctions (a multiple of 100 past 1000) about half the bids, hot bidders (1
    // past a multiple of 100, plus 2000) three quarters, the four hot channels half.
    let hot_auctions = share(&|i| (auctions.value(i) - 1000) % 100 == 0);
    let hot_bidders = share(&|i| (bidders.value(i) - 2000) % 100 == 1);
    let hot_channels =
        share(&|i| ["Google", "Facebook", "Baidu", "Apple"].contains(&channels.value(i)));
    assert!((0.49..0.52).contains(&hot_auctions), "{hot_auctions}");
    assert!((0.74..0.77).contains(&hot_bidders), "{hot_bidders}");
    assert!((0.49..0.51).contains(&hot_channels), "{hot_channels}");
    let extra_len =
        bids.iter().map(|&i| extras.value(i).len()).sum::<usize>() as f64 / bids.len() as f64;
    assert!((66.0..69.0).contains(&extra_len), "{extra_len}");
    // Auctions last on average until 100 more auctions have been made (1,666 events).
    let starts = field(&batch, "auction", "dateTime").as_primitive::<TimestampMillisecondType>();
    let ends = field(&batch, "auction", "expires").as_primitive::<TimestampMillisecondType>();
    let lengths: Vec<i64> = (0..batch.num_rows())
        .filter(|&i| kinds.value(i) == 1)
        .map(|i| ends.value(i) - starts.value(i))
        .collect();
    let mean = lengths.iter().sum::<i64>() as f64 / lengths.len() as f64;
    assert!(
        lengths.iter().all(|&l| (1..=334).contains(&l)) && (160.0..175.0).contains(&mean),
        "{mean}"
    );
}

#[test]
fn a_job_reading_only_bids_gets_the_same_bids() {
    let ctx = context(0, 1, vec![]);
    let whole = all(&drain(
        &mut *source(&[("events.num", "20000")])
            .create_reader(&ctx)
            .unwrap(),
        &ctx,
    ));
    let bids_only = projected_source(&[("events.num", "20000")], Some(vec![0, 3]));
    let projected = all(&drain(&mut *bids_only.create_reader(&ctx).unwrap(), &ctx));
    assert_eq!(projected.column(3), whole.column(3));
    assert_eq!(projected.column(1).null_count(), projected.num_rows());
}
