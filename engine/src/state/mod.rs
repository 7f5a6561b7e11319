//! Keyed state as a service of the engine.
//!
//! A stateful operator declares its state as tables of Arrow rows ([`StateTable`]): partial
//! aggregates per window and key, a per-key buffer of rows, a per-key set of pending timers.
//! Each table names the columns that hold the key. At a checkpoint barrier the engine asks
//! the operator for the rows of each table ([`KeyedState::snapshot`]) and stores them; on a
//! restore it reads the rows every instance stored, keeps the ones whose key this instance
//! owns now (by the same key hash the exchanges route rows with, so the state lands where
//! the key's new rows will), and hands them to the operator ([`KeyedState::restore`]). A
//! job can therefore resume at another parallelism, and no operator writes its own
//! snapshot, restore or rescaling code.
//!
//! Snapshots are cheap where state did not change: an operator returns the same Arrow
//! batches (shared buffers, not copies) for what it did not touch since the last barrier,
//! so the work at a barrier follows what changed, and encoding and writing the files happen
//! on the checkpoint coordinator's thread while the task goes on.

pub mod timers;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::runtime::{key_hashes, owner};

/// One table of an operator's keyed state.
#[derive(Debug, Clone)]
pub struct StateTable {
    /// Unique within the operator; names its files in a checkpoint.
    pub name: String,
    pub schema: SchemaRef,
    /// The key columns, hashed (in this order) to decide which instance owns a row. They
    /// must be the columns, types and order the operator's input exchange hashes.
    pub keys: Vec<usize>,
}

/// What a stateful operator keeps, as tables the engine stores, restores and splits.
pub trait KeyedState {
    /// The operator's state tables; the same for the operator's whole life.
    fn tables(&self) -> Vec<StateTable>;

    /// The rows of every table, in the order of [`Self::tables`]. Batches that did not
    /// change since the last snapshot should be returned again as they are (cloning a
    /// batch shares its buffers).
    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>>;

    /// Rows of table `table` (an index into [`Self::tables`]) that this instance owns, from
    /// the checkpoint the job resumes from; called once per stored batch.
    fn restore(&mut self, table: usize, rows: &RecordBatch) -> Result<()>;
}

/// The rows of `batch` whose key (columns `keys`) belongs to `instance` of `parallelism`.
pub fn owned_rows(
    batch: &RecordBatch,
    keys: &[usize],
    instance: usize,
    parallelism: usize,
) -> Result<RecordBatch> {
    if parallelism <= 1 || batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    if keys.is_empty() {
        // Keyless state lives on one instance (a `Single` exchange feeds instance 0).
        return Ok(if instance == 0 {
            batch.clone()
        } else {
            batch.slice(0, 0)
        });
    }
    let columns: Vec<ArrayRef> = keys
        .iter()
        .map(|&k| {
            batch
                .columns()
                .get(k)
                .cloned()
                .ok_or_else(|| Error::internal(format!("state key column {k} is missing")))
        })
        .collect::<Result<_>>()?;
    let hashes = key_hashes(&columns, batch.num_rows())?;
    let rows: Vec<u32> = hashes
        .iter()
        .enumerate()
        .filter(|(_, h)| owner(**h, parallelism) == instance)
        .map(|(i, _)| i as u32)
        .collect();
    if rows.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &UInt32Array::from(rows))?)
}

/// Restores `state` from the tables every instance stored (`stored[i]` is instance i's
/// tables by name), keeping what `instance` of `parallelism` owns.
pub fn restore_owned(
    state: &mut dyn KeyedState,
    stored: &[&[(String, Vec<RecordBatch>)]],
    instance: usize,
    parallelism: usize,
) -> Result<()> {
    for (index, table) in state.tables().iter().enumerate() {
        for tables in stored {
            let batches = tables
                .iter()
                .filter(|(name, _)| *name == table.name)
                .flat_map(|(_, b)| b);
            for batch in batches {
                if batch.schema().fields() != table.schema.fields() {
                    return Err(Error::internal(format!(
                        "state table '{}' was stored with other columns than it has now",
                        table.name
                    )));
                }
                let mine = owned_rows(batch, &table.keys, instance, parallelism)?;
                if mine.num_rows() > 0 {
                    state.restore(index, &mine)?;
                }
            }
        }
    }
    Ok(())
}

/// A schema shared by reference, for tables built once per operator.
pub fn table(name: &str, schema: &SchemaRef, keys: Vec<usize>) -> StateTable {
    StateTable {
        name: name.to_string(),
        schema: Arc::clone(schema),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    /// A per-key counter map as keyed state: table "counts" (key, count).
    struct Counts {
        schema: SchemaRef,
        counts: BTreeMap<String, i64>,
    }

    impl Counts {
        fn new() -> Self {
            Counts {
                schema: Arc::new(Schema::new(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("count", DataType::Int64, false),
                ])),
                counts: BTreeMap::new(),
            }
        }
    }

    impl KeyedState for Counts {
        fn tables(&self) -> Vec<StateTable> {
            vec![table("counts", &self.schema, vec![0])]
        }
        fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
            let keys: StringArray = self.counts.keys().map(Some).collect();
            let counts: Int64Array = self.counts.values().copied().map(Some).collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&self.schema),
                vec![Arc::new(keys), Arc::new(counts)],
            )?;
            Ok(vec![vec![batch]])
        }
        fn restore(&mut self, _table: usize, rows: &RecordBatch) -> Result<()> {
            let keys = rows.column(0).as_string::<i32>();
            let counts = rows.column(1).as_primitive::<Int64Type>();
            for (k, c) in keys.iter().zip(counts.iter()) {
                *self.counts.entry(k.unwrap().to_string()).or_default() += c.unwrap();
            }
            Ok(())
        }
    }

    /// Snapshots of `before` instances, restored into `after` instances.
    fn rescale(before: &mut [Counts], after: usize) -> Vec<Counts> {
        let stored: Vec<Vec<(String, Vec<RecordBatch>)>> = before
            .iter_mut()
            .map(|c| {
                let tables = c.tables();
                tables
                    .iter()
                    .zip(c.snapshot().unwrap())
                    .map(|(t, b)| (t.name.clone(), b))
                    .collect()
            })
            .collect();
        let refs: Vec<&[(String, Vec<RecordBatch>)]> = stored.iter().map(Vec::as_slice).collect();
        (0..after)
            .map(|i| {
                let mut c = Counts::new();
                restore_owned(&mut c, &refs, i, after).unwrap();
                c
            })
            .collect()
    }

    #[test]
    fn state_splits_by_key_on_scale_up_and_merges_on_scale_down() {
        // Two instances, each with the keys a hash exchange of two would send it.
        let mut two: Vec<Counts> = (0..2).map(|_| Counts::new()).collect();
        for k in 0..100 {
            let key = format!("k{k}");
            let hash = key_hashes(
                &[Arc::new(StringArray::from(vec![key.as_str()])) as ArrayRef],
                1,
            )
            .unwrap()[0];
            two[owner(hash, 2)].counts.insert(key, k);
        }
        let three = rescale(&mut two, 3);
        // Every key once, at the instance a hash exchange of three sends it to.
        let mut seen = BTreeMap::new();
        for (i, c) in three.iter().enumerate() {
            for (k, v) in &c.counts {
                let hash = key_hashes(
                    &[Arc::new(StringArray::from(vec![k.as_str()])) as ArrayRef],
                    1,
                )
                .unwrap()[0];
                assert_eq!(owner(hash, 3), i, "{k} restored at the wrong instance");
                assert!(seen.insert(k.clone(), *v).is_none(), "{k} twice");
            }
        }
        assert_eq!(seen.len(), 100);
        let mut three = three;
        let one = rescale(&mut three, 1);
        assert_eq!(one[0].counts.len(), 100);
        assert_eq!(one[0].counts.values().sum::<i64>(), (0..100).sum::<i64>());
    }

    #[test]
    fn keyless_state_goes_to_the_first_instance() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        assert_eq!(owned_rows(&batch, &[], 0, 3).unwrap().num_rows(), 2);
        assert_eq!(owned_rows(&batch, &[], 2, 3).unwrap().num_rows(), 0);
    }
}
