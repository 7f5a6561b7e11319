//! Window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end [, k] ORDER BY
//! ...) ... WHERE rownum <= N` on windowed rows, as Flink runs it: emit-once, insert-only.
//!
//! Rows are kept per window until the watermark passes the window's end; then each
//! partition's rows are sorted, and the first N are emitted with their row number. A row
//! whose window has already fired is late: dropped and counted. `rownum = 1` ordered by the
//! rowtime is window deduplication.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use chrono_tz::Tz;

use crate::error::Result;
use crate::metrics::{DropReason, JobMetrics};
use crate::operator::{Operator, StateSnapshot, StreamBatch};
use crate::operators::rows_by_window_fire;
use crate::state::{self, KeyedState, StateTable};

pub use arrow::compute::SortOptions;

/// What a window Top-N computes.
#[derive(Debug)]
pub struct TopNSpec {
    /// Partition columns of the input (window_start and window_end among them).
    pub partition: Vec<usize>,
    /// Sort columns of the input and their direction.
    pub order: Vec<(usize, SortOptions)>,
    /// How many rows of each partition are emitted.
    pub limit: usize,
    /// The input's `window_end` column (wall-clock milliseconds).
    pub window_end: usize,
    /// Session time zone, when windows are on TIMESTAMP_LTZ away from UTC.
    pub time_zone: Option<Tz>,
    pub input_schema: SchemaRef,
    /// The input's columns and the row number (UInt64).
    pub output_schema: SchemaRef,
    /// The source table, for drop counts.
    pub table: String,
}

pub struct WindowTopN {
    spec: Arc<TopNSpec>,
    metrics: Arc<JobMetrics>,
    /// Rows waiting for their window to fire, by the rowtime the window fires at.
    windows: BTreeMap<i64, Vec<RecordBatch>>,
    watermark: i64,
}

impl WindowTopN {
    pub fn new(spec: Arc<TopNSpec>, metrics: Arc<JobMetrics>) -> Self {
        WindowTopN {
            spec,
            metrics,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
        }
    }

    /// Files the rows of `batch` under their windows; with `drop_late`, rows of windows that
    /// have fired are dropped and counted.
    fn buffer(&mut self, batch: &RecordBatch, drop_late: bool) -> Result<()> {
        let (parts, late) = rows_by_window_fire(
            batch,
            self.spec.window_end,
            self.spec.time_zone,
            drop_late.then_some(self.watermark),
        )?;
        self.metrics
            .add_dropped(&self.spec.table, DropReason::Late, late);
        for (fire, part) in parts {
            self.windows.entry(fire).or_default().push(part);
        }
        Ok(())
    }

    /// The first `limit` rows of each partition of `rows`, in partition and rank order,
    /// with their row numbers.
    fn rank(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let spec = &self.spec;
        let mut sort: Vec<SortColumn> = spec
            .partition
            .iter()
            .map(|c| SortColumn {
                values: Arc::clone(rows.column(*c)),
                options: None,
            })
            .collect();
        sort.extend(spec.order.iter().map(|(c, o)| SortColumn {
            values: Arc::clone(rows.column(*c)),
            options: Some(*o),
        }));
        // Ties keep their arrival order, as in Flink.
        sort.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..rows.num_rows() as u32)),
            options: None,
        });
        let sorted = lexsort_to_indices(&sort, None)?;
        let sorted = take_record_batch(rows, &sorted)?;
        let partition: Vec<ArrayRef> = spec
            .partition
            .iter()
            .map(|c| Arc::clone(sorted.column(*c)))
            .collect();
        let converter = RowConverter::new(
            partition
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect(),
        )?;
        let keys = converter.convert_columns(&partition)?;
        let mut keep = Vec::new();
        let mut numbers = Vec::new();
        let mut rank = 0u64;
        for i in 0..sorted.num_rows() {
            rank = if i > 0 && keys.row(i) == keys.row(i - 1) {
                rank + 1
            } else {
                1
            };
            if rank <= spec.limit as u64 {
                keep.push(i as u32);
                numbers.push(rank);
            }
        }
        let kept = take_record_batch(&sorted, &UInt32Array::from(keep))?;
        let mut columns = kept.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from(numbers)));
        Ok(RecordBatch::try_new(
            Arc::clone(&spec.output_schema),
            columns,
        )?)
    }
}

impl Operator for WindowTopN {
    fn process_batch(&mut self, input: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        self.buffer(&input.batch, true)
    }

    fn handle_watermark(&mut self, watermark: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let later = match self.watermark.checked_add(1) {
            Some(next) => self.windows.split_off(&next),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.windows, later);
        for (_, batches) in due {
            let rows = concat_batches(&self.spec.input_schema, &batches)?;
            if rows.num_rows() > 0 {
                out.push(StreamBatch::new(self.rank(&rows)?));
            }
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

impl KeyedState for WindowTopN {
    fn tables(&self) -> Vec<StateTable> {
        vec![state::table(
            "rows",
            &self.spec.input_schema,
            self.spec.partition.clone(),
        )]
    }

    fn snapshot(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        Ok(vec![self.windows.values().flatten().cloned().collect()])
    }

    fn restore(&mut self, _table: usize, rows: &RecordBatch) -> Result<()> {
        self.buffer(rows, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::window_assign::rowtime_millis;
    use arrow::array::{Float64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn spec(limit: usize) -> Arc<TopNSpec> {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let input = Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("supplier", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
        ]));
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("rownum", DataType::UInt64, false)));
        Arc::new(TopNSpec {
            partition: vec![0, 1],
            order: vec![(
                3,
                SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            )],
            limit,
            window_end: 1,
            time_zone: None,
            input_schema: Arc::clone(&input),
            output_schema: Arc::new(Schema::new(fields)),
            table: "bid".into(),
        })
    }

    fn rows(spec: &TopNSpec, window: i64, rows: &[(&str, f64)]) -> StreamBatch {
        let n = rows.len();
        let start = TimestampMillisecondArray::from(vec![window; n]);
        let end = TimestampMillisecondArray::from(vec![window + 600_000; n]);
        let suppliers = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let prices = Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        StreamBatch::new(
            RecordBatch::try_new(
                Arc::clone(&spec.input_schema),
                vec![
                    Arc::new(start),
                    Arc::new(end),
                    Arc::new(suppliers),
                    Arc::new(prices),
                ],
            )
            .unwrap(),
        )
    }

    fn emitted(out: &[StreamBatch]) -> Vec<(i64, String, u64)> {
        let mut v = Vec::new();
        for b in out {
            let b = &b.batch;
            let start = rowtime_millis(b.column(0)).unwrap();
            let s = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
            let n = b.column(4).as_any().downcast_ref::<UInt64Array>().unwrap();
            for i in 0..b.num_rows() {
                v.push((start.value(i), s.value(i).to_string(), n.value(i)));
            }
        }
        v
    }

    #[test]
    fn the_first_rows_of_each_window_fire_once_with_the_watermark_and_late_rows_are_dropped() {
        let spec = spec(2);
        let metrics = Arc::new(JobMetrics::new());
        let mut op = WindowTopN::new(Arc::clone(&spec), Arc::clone(&metrics));
        let mut out = Vec::new();
        op.process_batch(rows(&spec, 0, &[("a", 1.0), ("b", 5.0)]), &mut out)
            .unwrap();
        op.process_batch(
            rows(&spec, 600_000, &[("c", 9.0), ("d", 2.0), ("e", 3.0)]),
            &mut out,
        )
        .unwrap();
        op.process_batch(rows(&spec, 0, &[("f", 4.0)]), &mut out)
            .unwrap();
        op.handle_watermark(599_998, &mut out).unwrap();
        assert!(out.is_empty());
        op.handle_watermark(599_999, &mut out).unwrap();
        assert_eq!(emitted(&out), [(0, "b".into(), 1), (0, "f".into(), 2)]);
        out.clear();
        // A row of the fired window is late.
        op.process_batch(rows(&spec, 0, &[("g", 8.0)]), &mut out)
            .unwrap();
        assert_eq!(metrics.dropped_total(DropReason::Late), 1);
        // State survives a snapshot and restore.
        let stored = KeyedState::snapshot(&mut op).unwrap();
        let mut again = WindowTopN::new(Arc::clone(&spec), Arc::clone(&metrics));
        for b in &stored[0] {
            KeyedState::restore(&mut again, 0, b).unwrap();
        }
        again.handle_watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(
            emitted(&out),
            [(600_000, "c".into(), 1), (600_000, "e".into(), 2)]
        );
    }
}
