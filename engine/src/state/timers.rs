//! Per-key event-time timers: "call me for this key when the watermark reaches this time".
//!
//! An operator that buffers rows per key (a session, an OVER frame, an interval join side)
//! sets a timer per key and time; when the watermark passes, the engine calls the operator's
//! `on_timer` and the operator takes the keys that are due ([`TimerQueue::due`]). Keys are
//! kept in Arrow's row format, so any key columns work, and the queue is keyed state: its
//! table (time, then the key columns) is checkpointed and split by key like the rest.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};

use crate::error::Result;

use super::{table, StateTable};

/// Timers by (time, key), earliest first.
pub struct TimerQueue {
    key_fields: Vec<Field>,
    converter: RowConverter,
    timers: BTreeSet<(i64, OwnedRow)>,
    schema: SchemaRef,
}

impl TimerQueue {
    /// A queue for keys of these columns.
    pub fn new(key_fields: Vec<Field>) -> Result<Self> {
        let converter = RowConverter::new(
            key_fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let mut fields = vec![Field::new("__timer", DataType::Int64, false)];
        fields.extend(key_fields.iter().cloned());
        Ok(Self {
            key_fields,
            converter,
            timers: BTreeSet::new(),
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Sets a timer at `time` for each row of `keys` (key columns); setting one twice keeps
    /// one.
    pub fn set(&mut self, time: i64, keys: &[ArrayRef]) -> Result<()> {
        let rows = self.converter.convert_columns(keys)?;
        for row in rows.iter() {
            self.timers.insert((time, row.owned()));
        }
        Ok(())
    }

    /// The earliest time of any timer.
    pub fn next(&self) -> Option<i64> {
        self.timers.first().map(|(t, _)| *t)
    }

    pub fn len(&self) -> usize {
        self.timers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// Removes and returns the timers at or before `watermark`: their times and their keys
    /// as columns, earliest first.
    pub fn due(&mut self, watermark: i64) -> Result<Option<(Vec<i64>, Vec<ArrayRef>)>> {
        let mut times = Vec::new();
        let mut keys = Vec::new();
        while let Some((t, _)) = self.timers.first() {
            if *t > watermark {
                break;
            }
            let (t, key) = self.timers.pop_first().expect("a first timer");
            times.push(t);
            keys.push(key);
        }
        if times.is_empty() {
            return Ok(None);
        }
        let columns = self.converter.convert_rows(keys.iter().map(|k| k.row()))?;
        Ok(Some((times, columns)))
    }

    /// The queue's state table: time, then the key columns (the keys of the table).
    pub fn table(&self, name: &str) -> StateTable {
        table(name, &self.schema, (1..=self.key_fields.len()).collect())
    }

    /// Every timer as rows of [`TimerQueue::table`].
    pub fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        if self.timers.is_empty() {
            return Ok(Vec::new());
        }
        let times: Int64Array = self.timers.iter().map(|(t, _)| Some(*t)).collect();
        let keys = self
            .converter
            .convert_rows(self.timers.iter().map(|(_, k)| k.row()))?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(times)];
        columns.extend(keys);
        Ok(vec![RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?])
    }

    /// Adds timers from rows of [`TimerQueue::table`].
    pub fn restore(&mut self, rows: &RecordBatch) -> Result<()> {
        let times = rows.column(0).as_primitive::<Int64Type>();
        let keys = self.converter.convert_columns(&rows.columns()[1..])?;
        for (i, key) in keys.iter().enumerate() {
            self.timers.insert((times.value(i), key.owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;

    use super::*;
    use crate::state::owned_rows;

    fn keys(values: &[&str]) -> Vec<ArrayRef> {
        vec![Arc::new(StringArray::from(values.to_vec()))]
    }

    fn names(columns: &[ArrayRef]) -> Vec<String> {
        columns[0]
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect()
    }

    #[test]
    fn timers_come_due_in_time_order_once() {
        let mut q = TimerQueue::new(vec![Field::new("card", DataType::Utf8, false)]).unwrap();
        q.set(300, &keys(&["b", "a"])).unwrap();
        q.set(100, &keys(&["c"])).unwrap();
        q.set(300, &keys(&["a"])).unwrap();
        assert_eq!((q.len(), q.next()), (3, Some(100)));
        assert!(q.due(99).unwrap().is_none());
        let (times, due) = q.due(300).unwrap().unwrap();
        assert_eq!(times, vec![100, 300, 300]);
        assert_eq!(names(&due), ["c", "a", "b"]);
        assert!(q.is_empty());
    }

    #[test]
    fn timers_survive_a_checkpoint_split_by_key() {
        let fields = vec![Field::new("card", DataType::Utf8, false)];
        let mut q = TimerQueue::new(fields.clone()).unwrap();
        let cards: Vec<String> = (0..50).map(|i| format!("card-{i}")).collect();
        let refs: Vec<&str> = cards.iter().map(String::as_str).collect();
        q.set(1000, &keys(&refs)).unwrap();
        let table = q.table("timers");
        let rows = q.snapshot().unwrap();
        let mut restored = 0;
        for instance in 0..3 {
            let mut r = TimerQueue::new(fields.clone()).unwrap();
            for batch in &rows {
                r.restore(&owned_rows(batch, &table.keys, instance, 3).unwrap())
                    .unwrap();
            }
            restored += r.len();
        }
        assert_eq!(restored, 50);
    }
}
