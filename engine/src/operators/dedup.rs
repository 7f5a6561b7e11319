//! Deduplication without a window: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC)
//! ... WHERE rownum = 1` keeps the first row of each key, insert-only.
//!
//! Per key the operator keeps the earliest row seen until the watermark passes its time, then
//! emits it (with row number 1) and remembers only that the key has been emitted; later rows
//! of the key are duplicates and are not emitted. A row at or before the watermark when it
//! arrives is late: dropped and counted, so the row emitted is always the key's earliest
//! on-time row, whatever the arrival order. With `table.exec.state.ttl` a key is forgotten
//! once that much processing time has passed since its state was last written (as Flink's
//! state time-to-live does), but a row waiting for the watermark is kept until it is emitted;
//! without a TTL keys are kept for the job's life.
//!
//! Ordered by a processing-time attribute (`ORDER BY proc_time ASC`), the first row of a key
//! is the first to arrive: it is emitted at once, and nothing waits for the watermark.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::OwnedRow;

use super::keys::KeyCodec;
use crate::error::Result;
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{NextTimers, Operator, StateSnapshot, StreamBatch, Timer};
use crate::operators::window_assign::rowtime_millis;
use crate::state::{self, KeyedState, StateTable};

/// What a deduplication computes.
#[derive(Debug, Clone)]
pub struct DedupSpec {
    /// Key columns of the input.
    pub keys: Vec<usize>,
    /// The time attribute rows are ordered by; None: processing time (arrival order).
    pub rowtime: Option<usize>,
    /// `table.exec.state.ttl` (None: keep keys forever).
    pub ttl: Option<Duration>,
    pub input_schema: SchemaRef,
    /// The input's columns and the row number (UInt64, always 1).
    pub output_schema: SchemaRef,
    pub table: String,
}

enum KeyState {
    /// The earliest on-time row so far, waiting for the watermark: its time and the row.
    Pending(i64, RecordBatch),
    /// Emitted: rows of this key are duplicates.
    Emitted,
}

struct Entry {
    state: KeyState,
    written: Instant,
}

pub struct Deduplicate {
    spec: Arc<DedupSpec>,
    metrics: Arc<JobMetrics>,
    codec: KeyCodec,
    keys: HashMap<OwnedRow, Entry>,
    /// Pending keys by the time their row fires at.
    due: BTreeMap<(i64, OwnedRow), ()>,
    watermark: i64,
    next_sweep: Option<Instant>,
    /// The "emitted" state table: the key columns.
    emitted_schema: SchemaRef,
}

impl Deduplicate {
    pub fn new(spec: Arc<DedupSpec>, metrics: Arc<JobMetrics>) -> Result<Self> {
        let key_fields: Vec<Field> = spec
            .keys
            .iter()
            .map(|i| {
                let f = spec.input_schema.field(*i);
                Field::new(f.name(), f.data_type().clone(), true)
            })
            .collect();
        let mut emitted_fields = key_fields.clone();
        emitted_fields.push(Field::new("__emitted", DataType::Int64, false));
        Ok(Deduplicate {
            codec: KeyCodec::new(&key_fields)?,
            emitted_schema: Arc::new(Schema::new(emitted_fields)),
            spec,
            metrics,
            keys: HashMap::new(),
            due: BTreeMap::new(),
            watermark: i64::MIN,
            next_sweep: None,
        })
    }

    fn key_columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.spec
            .keys
            .iter()
            .map(|i| Arc::clone(batch.column(*i)))
            .collect()
    }

    /// Processing time: emits the rows of `batch` whose key has not been seen, the first
    /// of each key in the batch.
    fn emit_first_arrivals(
        &mut self,
        batch: &RecordBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        let keys = self
            .codec
            .rows(&self.key_columns(batch), batch.num_rows())?;
        let now = Instant::now();
        let mut first = Vec::new();
        for i in 0..batch.num_rows() {
            let key = keys.row(i).owned();
            if let std::collections::hash_map::Entry::Vacant(v) = self.keys.entry(key) {
                v.insert(Entry {
                    state: KeyState::Emitted,
                    written: now,
                });
                first.push(i as u32);
            }
        }
        if !first.is_empty() {
            let indices = arrow::array::UInt32Array::from(first);
            let rows = arrow::compute::take_record_batch(batch, &indices)?;
            out.push(self.numbered(rows)?);
        }
        Ok(())
    }

    /// `rows` with their row number, 1.
    fn numbered(&self, rows: RecordBatch) -> Result<StreamBatch> {
        let mut columns = rows.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from(vec![1u64; rows.num_rows()])));
        Ok(StreamBatch::new(RecordBatch::try_new(
            Arc::clone(&self.spec.output_schema),
            columns,
        )?))
    }

    /// Takes in rows; with `drop_late`, rows at or before the watermark are dropped.
    fn take_rows(&mut self, batch: &RecordBatch, drop_late: bool) -> Result<()> {
        let Some(rowtime) = self.spec.rowtime else {
            // Restored processing-time state holds emitted keys only.
            return Ok(());
        };
        let times = rowtime_millis(batch.column(rowtime))?.clone();
        let keys = self
            .codec
            .rows(&self.key_columns(batch), batch.num_rows())?;
        let now = Instant::now();
        let mut late = 0u64;
        for i in 0..batch.num_rows() {
            if times.is_null(i) {
                self.metrics
                    .add_dropped(&self.spec.table, DropReason::NullEventTime, 1);
                continue;
            }
            let t = times.value(i);
            let key = keys.row(i);
            let earlier = match self.keys.get(&key.owned()) {
                Some(Entry {
                    state: KeyState::Emitted,
                    ..
                }) => continue,
                Some(Entry {
                    state: KeyState::Pending(pending, _),
                    ..
                }) => Some(*pending),
                None => None,
            };
            if drop_late && t <= self.watermark {
                late += 1;
                continue;
            }
            if earlier.is_some_and(|p| p <= t) {
                continue;
            }
            let owned = key.owned();
            if let Some(p) = earlier {
                self.due.remove(&(p, owned.clone()));
            }
            let row = batch.slice(i, 1);
            self.due.insert((t, owned.clone()), ());
            self.keys.insert(
                owned,
                Entry {
                    state: KeyState::Pending(t, row),
                    written: now,
                },
            );
        }
        self.metrics
            .add_dropped(&self.spec.table, DropReason::Late, late);
        Ok(())
    }

    /// Forgets emitted keys whose state is older than the TTL. A row still waiting for the
    /// watermark is never forgotten: it is an accepted record, and dropping it would lose it.
    fn sweep(&mut self, now: Instant) {
        let Some(ttl) = self.spec.ttl else {
            return;
        };
        self.keys.retain(|_, e| {
            matches!(e.state, KeyState::Pending(..)) || now.duration_since(e.written) < ttl
        });
        self.next_sweep = Some(now + (ttl / 4).max(Duration::from_millis(10)));
    }
}

impl Operator for Deduplicate {
    fn process_batch(&mut self, input: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        if self.next_sweep.is_none() && self.spec.ttl.is_some() {
            self.next_sweep = Some(Instant::now());
        }
        match self.spec.rowtime {
            Some(_) => self.take_rows(&input.batch, true),
            None => self.emit_first_arrivals(&input.batch, out),
        }
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let mut rows = Vec::new();
        while let Some(((t, _), _)) = self.due.first_key_value() {
            if *t > self.watermark {
                break;
            }
            let ((_, key), _) = self.due.pop_first().expect("a first entry");
            if let Some(entry) = self.keys.get_mut(&key) {
                let state = std::mem::replace(&mut entry.state, KeyState::Emitted);
                entry.written = Instant::now();
                if let KeyState::Pending(_, row) = state {
                    rows.push(row);
                }
            }
        }
        if !rows.is_empty() {
            let batch = concat_batches(&self.spec.input_schema, &rows)?;
            out.push(self.numbered(batch)?);
        }
        Ok(())
    }

    fn next_timers(&self) -> NextTimers {
        NextTimers {
            event: None,
            processing: self.next_sweep,
        }
    }

    fn on_timer(&mut self, timer: Timer, _out: &mut Vec<StreamBatch>) -> Result<()> {
        if let Timer::ProcessingTime(now) = timer {
            self.sweep(now);
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        _checkpoint: u64,
        _out: &mut Vec<StreamBatch>,
    ) -> Result<Option<StateSnapshot>> {
        Ok(Some(StateSnapshot::watermark(self.watermark)))
    }

    fn restore(&mut self, parts: &[StateSnapshot]) -> Result<()> {
        if let Some(w) = StateSnapshot::restored_watermark(parts) {
            self.watermark = w;
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        Some(self)
    }
}

impl KeyedState for Deduplicate {
    fn tables(&self) -> Vec<StateTable> {
        vec![
            state::table("pending", &self.spec.input_schema, self.spec.keys.clone()),
            state::table(
                "emitted",
                &self.emitted_schema,
                (0..self.spec.keys.len()).collect(),
            ),
        ]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let mut pending = Vec::new();
        let mut emitted = Vec::new();
        for (key, entry) in &self.keys {
            match &entry.state {
                KeyState::Pending(_, row) => pending.push(row.clone()),
                KeyState::Emitted => emitted.push(key.clone()),
            }
        }
        let mut emitted_batches = Vec::new();
        if !emitted.is_empty() {
            let mut columns = self.codec.columns(emitted.iter())?;
            columns.push(Arc::new(Int64Array::from(vec![1i64; emitted.len()])));
            emitted_batches.push(RecordBatch::try_new(
                Arc::clone(&self.emitted_schema),
                columns,
            )?);
        }
        Ok(vec![pending, emitted_batches])
    }

    fn restore(&mut self, table: usize, rows: &RecordBatch) -> Result<()> {
        if table == 0 {
            return self.take_rows(rows, false);
        }
        let k = self.spec.keys.len();
        let keys = self.codec.rows(&rows.columns()[..k], rows.num_rows())?;
        let now = Instant::now();
        for i in 0..rows.num_rows() {
            let key = keys.row(i).owned();
            if let Some(Entry {
                state: KeyState::Pending(t, _),
                ..
            }) = self.keys.remove(&key)
            {
                self.due.remove(&(t, key.clone()));
            }
            self.keys.insert(
                key,
                Entry {
                    state: KeyState::Emitted,
                    written: now,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::TimeUnit;

    fn spec(ttl: Option<Duration>) -> Arc<DedupSpec> {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("v", DataType::Utf8, false),
        ]));
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("rownum", DataType::UInt64, false)));
        Arc::new(DedupSpec {
            keys: vec![0],
            rowtime: Some(1),
            ttl,
            input_schema: Arc::clone(&input),
            output_schema: Arc::new(Schema::new(fields)),
            table: "t".into(),
        })
    }

    fn rows(spec: &DedupSpec, rows: &[(&str, i64, &str)]) -> StreamBatch {
        StreamBatch::new(
            RecordBatch::try_new(
                Arc::clone(&spec.input_schema),
                vec![
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(TimestampMillisecondArray::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap(),
        )
    }

    fn values(out: &[StreamBatch]) -> Vec<String> {
        let mut v: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let c = b
                    .batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                (0..c.len())
                    .map(|i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_earliest_on_time_row_of_each_key_is_emitted_once() {
        let spec = spec(None);
        let metrics = Arc::new(JobMetrics::new());
        let mut op = Deduplicate::new(Arc::clone(&spec), Arc::clone(&metrics)).unwrap();
        let mut out = Vec::new();
        op.process_batch(
            rows(
                &spec,
                &[("a", 20, "a20"), ("b", 15, "b15"), ("a", 10, "a10")],
            ),
            &mut out,
        )
        .unwrap();
        op.handle_watermark(12, &mut out).unwrap();
        assert_eq!(values(&out), ["a10"]);
        // A later row of an emitted key is a duplicate; one at or before the watermark is late.
        op.process_batch(
            rows(
                &spec,
                &[("a", 30, "a30"), ("c", 12, "c12"), ("b", 14, "b14")],
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(metrics.dropped_total(DropReason::Late), 1);
        // State survives a snapshot and restore.
        let stored = KeyedState::snapshot(&mut op).unwrap();
        let mut again = Deduplicate::new(Arc::clone(&spec), Arc::clone(&metrics)).unwrap();
        for (table, batches) in stored.iter().enumerate() {
            for b in batches {
                KeyedState::restore(&mut again, table, b).unwrap();
            }
        }
        out.clear();
        again
            .process_batch(rows(&spec, &[("a", 40, "a40")]), &mut out)
            .unwrap();
        again.handle_watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(values(&out), ["b14"]);
    }

    #[test]
    fn by_processing_time_the_first_row_to_arrive_is_emitted_at_once() {
        let spec = Arc::new(DedupSpec {
            rowtime: None,
            ..Arc::unwrap_or_clone(spec(None))
        });
        let mut op = Deduplicate::new(Arc::clone(&spec), Arc::new(JobMetrics::new())).unwrap();
        let mut out = Vec::new();
        op.process_batch(
            rows(
                &spec,
                &[("a", 20, "a20"), ("b", 15, "b15"), ("a", 10, "a10")],
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(values(&out), ["a20", "b15"]);
        out.clear();
        op.process_batch(rows(&spec, &[("b", 1, "b1"), ("c", 1, "c1")]), &mut out)
            .unwrap();
        assert_eq!(values(&out), ["c1"]);
        // The emitted keys are the state a checkpoint keeps.
        let stored = KeyedState::snapshot(&mut op).unwrap();
        assert_eq!(stored[1][0].num_rows(), 3);
    }

    #[test]
    fn a_key_is_forgotten_after_the_state_ttl() {
        let spec = spec(Some(Duration::from_millis(1)));
        let metrics = Arc::new(JobMetrics::new());
        let mut op = Deduplicate::new(Arc::clone(&spec), metrics).unwrap();
        let mut out = Vec::new();
        op.process_batch(rows(&spec, &[("a", 10, "first")]), &mut out)
            .unwrap();
        op.handle_watermark(10, &mut out).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        op.on_timer(Timer::ProcessingTime(Instant::now()), &mut out)
            .unwrap();
        assert!(op.keys.is_empty());
        // A row waiting for the watermark outlives the TTL: it is emitted, not forgotten.
        op.process_batch(rows(&spec, &[("b", 15, "waiting")]), &mut out)
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        op.on_timer(Timer::ProcessingTime(Instant::now()), &mut out)
            .unwrap();
        op.handle_watermark(15, &mut out).unwrap();
        assert_eq!(values(&out), ["first", "waiting"]);
        out.clear();
        op.process_batch(rows(&spec, &[("a", 20, "again")]), &mut out)
            .unwrap();
        op.handle_watermark(20, &mut out).unwrap();
        assert_eq!(values(&out), ["again"]);
    }
}
