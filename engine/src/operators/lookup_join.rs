//! Lookup join: each row of a stream joined with the rows of a bounded table that have
//! equal keys, as the table is when the row is processed (`JOIN dim FOR SYSTEM_TIME AS OF
//! s.proc_time AS d ON s.k = d.k`). INNER drops a row without a match; LEFT keeps it with
//! NULLs for the table's columns.
//!
//! The table is held whole in memory, indexed by key, and shared by the operator's parallel
//! instances ([`LookupTable`]). A background thread asks the connector every reload
//! interval whether the contents changed, and reads the table again when they did; rows go
//! on being joined with the previous contents meanwhile. The operator keeps no state of
//! its own: a restored job reads the table afresh.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat_batches, filter_record_batch, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::connector::LookupConnector;
use crate::error::{Error, Result};
use crate::operator::{Operator, StreamBatch};
use crate::source::SourcePrep;

use super::JoinKind;

/// How a lookup table is read and kept fresh.
pub struct LookupTableSpec {
    /// The table's name, for messages.
    pub name: String,
    pub connector: Arc<dyn LookupConnector>,
    /// From the connector's columns to the table's (computed columns evaluated).
    pub prep: Arc<SourcePrep>,
    /// Key columns of the table, in the order of the join's key pairs.
    pub keys: Vec<usize>,
    /// The stream's key types: table keys are cast to them before they are compared.
    pub key_types: Vec<DataType>,
    /// How often the contents are checked for changes.
    pub reload_interval: Duration,
    /// Further attempts at reading the table when one fails.
    pub max_retries: u32,
}

/// The table's contents at one version, indexed by key.
struct Contents {
    version: String,
    rows: RecordBatch,
    /// Row numbers of `rows` by key (rows with a NULL key are in no entry: NULL equals
    /// nothing).
    index: HashMap<Box<[u8]>, Vec<u32>>,
}

/// A lookup table shared by the instances of one lookup join.
pub struct LookupTable {
    spec: LookupTableSpec,
    converter: RowConverter,
    contents: RwLock<Option<Arc<Contents>>>,
    /// Serialises first loads, so instances starting together read the table once.
    first_load: std::sync::Mutex<()>,
}

impl LookupTable {
    pub fn new(spec: LookupTableSpec) -> Result<Arc<Self>> {
        let converter = RowConverter::new(
            spec.key_types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        Ok(Arc::new(Self {
            spec,
            converter,
            contents: RwLock::new(None),
            first_load: std::sync::Mutex::new(()),
        }))
    }

    /// The current contents; the first call reads the table and starts the reload thread.
    fn contents(self: &Arc<Self>) -> Result<Arc<Contents>> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _guard = self
            .first_load
            .lock()
            .map_err(|_| Error::internal("a lookup table's loader panicked"))?;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let contents = Arc::new(self.read_with_retries()?);
        tracing::info!(
            "lookup table '{}': {} rows read from {}",
            self.spec.name,
            contents.rows.num_rows(),
            self.spec.connector.describe()
        );
        self.replace(Arc::clone(&contents));
        let weak = Arc::downgrade(self);
        let interval = self.spec.reload_interval;
        std::thread::Builder::new()
            .name(format!("lookup {}", self.spec.name))
            .spawn(move || reload_loop(weak, interval))
            .map_err(|e| Error::internal(format!("cannot start a lookup reload thread: {e}")))?;
        Ok(contents)
    }

    fn current(&self) -> Option<Arc<Contents>> {
        self.contents.read().ok().and_then(|c| c.clone())
    }

    fn replace(&self, contents: Arc<Contents>) {
        if let Ok(mut c) = self.contents.write() {
            *c = Some(contents);
        }
    }

    fn read_with_retries(&self) -> Result<Contents> {
        let mut attempt = 0;
        loop {
            match self.read() {
                Ok(c) => return Ok(c),
                Err(e) if attempt < self.spec.max_retries => {
                    attempt += 1;
                    tracing::warn!(
                        "lookup table '{}': reading it failed (attempt {attempt}), retrying: {e}",
                        self.spec.name
                    );
                    std::thread::sleep(Duration::from_millis(500 << attempt.min(4)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the whole table and indexes it by key.
    fn read(&self) -> Result<Contents> {
        let spec = &self.spec;
        let version = spec.connector.version()?;
        let batches = spec
            .connector
            .load()?
            .iter()
            .map(|b| spec.prep.table_columns(b))
            .collect::<Result<Vec<_>>>()?;
        let rows = concat_batches(&spec.prep.schema, &batches)?;
        let keys = spec
            .keys
            .iter()
            .zip(&spec.key_types)
            .map(|(&k, t)| Ok(cast(rows.column(k), t)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let encoded = self.converter.convert_columns(&keys)?;
        let mut index: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for (row, key) in encoded.iter().enumerate() {
            if keys.iter().any(|k| k.is_null(row)) {
                continue;
            }
            index
                .entry(key.as_ref().into())
                .or_default()
                .push(row as u32);
        }
        Ok(Contents {
            version,
            rows,
            index,
        })
    }

    /// Reads the table again if its version changed; keeps the old contents on failure.
    fn refresh(&self) {
        let Some(current) = self.current() else {
            return;
        };
        let name = &self.spec.name;
        match self.spec.connector.version() {
            Ok(v) if v == current.version => {}
            Ok(_) => match self.read_with_retries() {
                Ok(contents) => {
                    tracing::info!(
                        "lookup table '{name}' changed: {} rows read again",
                        contents.rows.num_rows()
                    );
                    self.replace(Arc::new(contents));
                }
                Err(e) => tracing::warn!(
                    "lookup table '{name}' changed but could not be read again; joining with \
                     the rows read before: {e}"
                ),
            },
            Err(e) => tracing::warn!("lookup table '{name}': cannot check for changes: {e}"),
        }
    }
}

/// Checks the table every `interval` while any operator holds it.
fn reload_loop(table: Weak<LookupTable>, interval: Duration) {
    let step = interval.min(Duration::from_millis(200));
    let mut due = Instant::now() + interval;
    loop {
        std::thread::sleep(step);
        let Some(table) = table.upgrade() else {
            return;
        };
        if Instant::now() >= due {
            table.refresh();
            due = Instant::now() + interval;
        }
    }
}

/// What a lookup join computes.
pub struct LookupJoinSpec {
    /// `Inner` or `Left`.
    pub kind: JoinKind,
    /// The stream's key columns, pairwise equal to the table's.
    pub stream_keys: Vec<usize>,
    pub table: Arc<LookupTable>,
    /// The stream's columns followed by the table's.
    pub output_schema: SchemaRef,
    /// The rest of the join condition, over the output columns (INNER joins only).
    pub residual: Option<Arc<dyn PhysicalExpr>>,
}

/// One instance of a lookup join.
pub struct LookupJoin {
    spec: Arc<LookupJoinSpec>,
}

impl LookupJoin {
    /// Reads the table unless another instance already did; fails with the connector's
    /// sentence when it cannot be read.
    pub fn new(spec: Arc<LookupJoinSpec>) -> Result<Self> {
        spec.table.contents()?;
        Ok(Self { spec })
    }

    /// Pairs of (stream row, table row) to emit, in stream order.
    fn matches(&self, contents: &Contents, keys: &Rows, key_columns: &[ArrayRef]) -> Pairs {
        let mut pairs = Pairs::default();
        for (row, key) in keys.iter().enumerate() {
            let hits = if key_columns.iter().any(|k| k.is_null(row)) {
                None
            } else {
                contents.index.get(key.as_ref())
            };
            match hits {
                Some(hits) => {
                    for &hit in hits {
                        pairs.stream.push(row as u32);
                        pairs.table.push(Some(hit));
                    }
                }
                None if self.spec.kind == JoinKind::Left => {
                    pairs.stream.push(row as u32);
                    pairs.table.push(None);
                }
                None => {}
            }
        }
        pairs
    }
}

#[derive(Default)]
struct Pairs {
    stream: Vec<u32>,
    table: Vec<Option<u32>>,
}

impl Operator for LookupJoin {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let contents = self.spec.table.contents()?;
        let batch = &input.batch;
        let key_columns: Vec<ArrayRef> = self
            .spec
            .stream_keys
            .iter()
            .map(|&k| Arc::clone(batch.column(k)))
            .collect();
        let keys = self.spec.table.converter.convert_columns(&key_columns)?;
        let pairs = self.matches(&contents, &keys, &key_columns);
        if pairs.stream.is_empty() {
            return Ok(());
        }
        let stream_rows = UInt32Array::from(pairs.stream);
        let table_rows = UInt32Array::from(pairs.table);
        let mut columns = Vec::with_capacity(self.spec.output_schema.fields().len());
        for c in batch.columns() {
            columns.push(take(c.as_ref(), &stream_rows, None)?);
        }
        for c in contents.rows.columns() {
            columns.push(take(c.as_ref(), &table_rows, None)?);
        }
        let mut joined = RecordBatch::try_new(Arc::clone(&self.spec.output_schema), columns)?;
        let mut row_watermarks = match &input.row_watermarks {
            Some(w) => Some(take(w.as_ref(), &stream_rows, None)?),
            None => None,
        };
        if let Some(residual) = &self.spec.residual {
            let mask = residual.evaluate(&joined)?.into_array(joined.num_rows())?;
            let mask = arrow::array::AsArray::as_boolean_opt(mask.as_ref())
                .ok_or_else(|| Error::plan("a join condition must be a boolean"))?;
            let mask = super::filter::without_nulls(mask);
            joined = filter_record_batch(&joined, &mask)?;
            if let Some(w) = row_watermarks {
                row_watermarks = Some(arrow::compute::filter(w.as_ref(), &mask)?);
            }
        }
        if joined.num_rows() == 0 {
            return Ok(());
        }
        out.push(StreamBatch {
            batch: joined,
            row_watermarks: row_watermarks.map(|w| Arc::new(Int64Array::from(w.to_data()))),
        });
        Ok(())
    }
}

#[cfg(test)]
#[path = "lookup_join_tests.rs"]
mod tests;
