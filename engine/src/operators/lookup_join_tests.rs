use std::sync::Mutex;

use arrow::array::{AsArray, Int64Array, StringArray};
use arrow::datatypes::{Field, Int64Type, Schema};
use datafusion::physical_expr::expressions::Column;

use super::*;

/// Rows of the rates table: (code, rate).
type RateRows = Vec<(Option<&'static str>, i64)>;

/// A table held in memory whose rows the test replaces.
struct Rows {
    version: Mutex<(u32, RateRows)>,
}

fn table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("code", DataType::Utf8, true),
        Field::new("rate", DataType::Int64, true),
    ]))
}

impl LookupConnector for Rows {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn version(&self) -> Result<String> {
        Ok(self.version.lock().unwrap().0.to_string())
    }

    fn load(&self) -> Result<Vec<RecordBatch>> {
        let rows = self.version.lock().unwrap().1.clone();
        let codes: StringArray = rows.iter().map(|r| r.0).collect();
        let rates = Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        Ok(vec![RecordBatch::try_new(
            table_schema(),
            vec![Arc::new(codes), Arc::new(rates)],
        )?])
    }
}

fn join(kind: JoinKind, connector: Arc<Rows>, interval: Duration) -> LookupJoin {
    let schema = table_schema();
    let prep = Arc::new(SourcePrep {
        columns: vec![
            Arc::new(Column::new("code", 0)),
            Arc::new(Column::new("rate", 1)),
        ],
        schema: Arc::clone(&schema),
        watermark: None,
    });
    let table = LookupTable::new(LookupTableSpec {
        name: "rates".into(),
        connector,
        prep,
        keys: vec![0],
        key_types: vec![DataType::Utf8],
        reload_interval: interval,
        max_retries: 0,
    })
    .unwrap();
    let output = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("currency", DataType::Utf8, true),
        Field::new("code", DataType::Utf8, true),
        Field::new("rate", DataType::Int64, true),
    ]));
    LookupJoin::new(Arc::new(LookupJoinSpec {
        kind,
        stream_keys: vec![1],
        table,
        output_schema: output,
        residual: None,
    }))
    .unwrap()
}

fn stream(rows: &[(i64, Option<&str>)]) -> StreamBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("currency", DataType::Utf8, true),
    ]));
    let ids = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    let currencies: StringArray = rows.iter().map(|r| r.1).collect();
    StreamBatch {
        batch: RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(currencies)]).unwrap(),
        row_watermarks: Some(Arc::new(Int64Array::from(
            rows.iter().map(|r| r.0 * 10).collect::<Vec<_>>(),
        ))),
    }
}

/// (id, rate) of every output row, and the row watermarks that came with them.
fn run(op: &mut LookupJoin, rows: &[(i64, Option<&str>)]) -> (Vec<(i64, Option<i64>)>, Vec<i64>) {
    let mut out = Vec::new();
    op.process_batch(stream(rows), &mut out).unwrap();
    let mut pairs = Vec::new();
    let mut watermarks = Vec::new();
    for b in out {
        let ids = b.batch.column(0).as_primitive::<Int64Type>();
        let rates = b.batch.column(3).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            pairs.push((ids.value(i), rates.is_valid(i).then(|| rates.value(i))));
        }
        watermarks.extend(b.row_watermarks.unwrap().values().iter().copied());
    }
    (pairs, watermarks)
}

fn rates() -> Arc<Rows> {
    Arc::new(Rows {
        version: Mutex::new((
            1,
            vec![
                (Some("EUR"), 108),
                (Some("GBP"), 127),
                (Some("GBP"), 128),
                (None, 0),
            ],
        )),
    })
}

#[test]
fn inner_join_keeps_matches_in_stream_order_and_null_keys_match_nothing() {
    let mut op = join(JoinKind::Inner, rates(), Duration::from_secs(3600));
    let (rows, watermarks) = run(
        &mut op,
        &[
            (1, Some("GBP")),
            (2, Some("USD")),
            (3, None),
            (4, Some("EUR")),
        ],
    );
    assert_eq!(rows, vec![(1, Some(127)), (1, Some(128)), (4, Some(108))]);
    assert_eq!(watermarks, vec![10, 10, 40]);
}

#[test]
fn left_join_keeps_unmatched_rows_with_nulls() {
    let mut op = join(JoinKind::Left, rates(), Duration::from_secs(3600));
    let (rows, _) = run(&mut op, &[(1, Some("USD")), (2, None), (3, Some("EUR"))]);
    assert_eq!(rows, vec![(1, None), (2, None), (3, Some(108))]);
}

#[test]
fn a_changed_table_is_read_again() {
    let connector = rates();
    let mut op = join(
        JoinKind::Inner,
        Arc::clone(&connector),
        Duration::from_millis(50),
    );
    assert_eq!(run(&mut op, &[(1, Some("USD"))]).0, vec![]);
    *connector.version.lock().unwrap() = (2, vec![(Some("USD"), 100)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rows, _) = run(&mut op, &[(1, Some("USD")), (2, Some("EUR"))]);
        if rows == vec![(1, Some(100))] {
            break;
        }
        assert!(Instant::now() < deadline, "the table was not read again");
        std::thread::sleep(Duration::from_millis(20));
    }
}
