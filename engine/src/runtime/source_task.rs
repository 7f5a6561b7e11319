//! A task rooted at a source: it reads the source's partitions, computes event time and the
//! per-partition watermarks, injects checkpoint barriers, and drives its chain.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, Int64Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};

use crate::checkpoint::Part;
use crate::connector::{SourceContext, SourceEvent, SourceReader};
use crate::error::{Error, Result};
use crate::operator::StateSnapshot;
use crate::source::{PartitionWatermark, SourcePrep};

use super::chain::Fanout;
use super::watermarks::{Progress, Watermarks};
use super::JobControl;

/// The state table of a source's partition watermarks.
const PARTITIONS: &str = "partitions";

/// The source task of one instance.
pub struct SourceTask {
    /// The source's stable id.
    pub uid: String,
    pub instance: usize,
    pub name: String,
    /// The table it reads.
    pub table: String,
    pub prep: Arc<SourcePrep>,
    pub idle_timeout: Option<Duration>,
    /// The source ends by itself: when all its partitions have finished it is about to
    /// end, and its watermark goes to the end of time rather than idle (an idle input lets
    /// downstream operators run ahead of rows this task's operators still hold, such as
    /// partial aggregates flushed at the end).
    pub bounded: bool,
    pub fanout: Fanout,
    /// Partition watermarks of the checkpoint the job resumes from.
    pub restored_watermarks: HashMap<usize, i64>,
}

/// Partition watermarks of a source from its checkpoint parts (all instances').
pub fn restored_watermarks(parts: &[StateSnapshot]) -> HashMap<usize, i64> {
    let mut out = HashMap::new();
    for batch in parts.iter().flat_map(|p| p.table(PARTITIONS)) {
        if batch.num_columns() < 2 {
            continue;
        }
        let (Some(ids), Some(marks)) = (
            batch.column(0).as_primitive_opt::<UInt64Type>(),
            batch.column(1).as_primitive_opt::<Int64Type>(),
        ) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            out.insert(ids.value(i) as usize, marks.value(i));
        }
    }
    out
}

/// A source's partition watermarks as a checkpoint keeps them.
fn watermark_batch(watermarks: &Watermarks) -> Result<RecordBatch> {
    let (mut ids, mut marks, mut finished) = (Vec::new(), Vec::new(), Vec::new());
    for (id, watermark, ended) in watermarks.each() {
        ids.push(id as u64);
        marks.push(watermark);
        finished.push(ended);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt64, false),
        Field::new("watermark", DataType::Int64, false),
        Field::new("finished", DataType::Boolean, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from(ids)),
            Arc::new(Int64Array::from(marks)),
            Arc::new(BooleanArray::from(finished)),
        ],
    )?)
}

impl SourceTask {
    /// The source's part of a checkpoint: the reader's position after the last event it
    /// returned and the partitions' watermarks.
    fn own_part(&self, reader: &mut dyn SourceReader, watermarks: &Watermarks) -> Result<Part> {
        Ok(Part {
            operator: self.uid.clone(),
            instance: self.instance,
            state: StateSnapshot {
                watermark: Some(watermarks.emitted()),
                tables: vec![(PARTITIONS.to_string(), vec![watermark_batch(watermarks)?])],
                blob: reader.snapshot()?.unwrap_or_default(),
            },
        })
    }

    pub fn run(
        mut self,
        task: usize,
        mut reader: Box<dyn SourceReader>,
        ctx: SourceContext,
        control: &JobControl,
    ) -> Result<()> {
        let partitions = reader.partitions();
        let mut watermarks = Watermarks::new(partitions.iter().map(|p| {
            (
                *p,
                self.restored_watermarks.get(p).copied().unwrap_or(i64::MIN),
            )
        }));
        let mut last_data: HashMap<usize, Instant> =
            partitions.iter().map(|p| (*p, Instant::now())).collect();
        // The largest watermark expression seen per partition (what `watermarks` holds is
        // the one emitted); a partition without an entry has seen nothing past its emitted.
        let mut seen: HashMap<usize, i64> = HashMap::new();
        let mut last_barrier = control.requested_checkpoint();
        let mut rows_read = 0u64;
        if watermarks.is_empty() {
            // An instance that owns no partition must not hold the watermark back.
            if let Progress::Idle = watermarks.progress(false) {
                self.fanout.push_idle()?;
            }
        }
        loop {
            if control.has_failed() {
                return Ok(());
            }
            let requested = control.requested_checkpoint();
            if requested > last_barrier {
                last_barrier = requested;
                let mut parts = vec![self.own_part(reader.as_mut(), &watermarks)?];
                self.fanout
                    .push_barrier(requested, self.instance, &mut parts)?;
                control.report_parts(task, requested, parts);
            }
            // Connector errors name their table already.
            match reader.next(&ctx)? {
                SourceEvent::Batch { partition, batch } => {
                    control.metrics.add_read(batch.num_rows() as u64, 0);
                    rows_read += batch.num_rows() as u64;
                    crate::failpoint::source_read(&self.table, rows_read);
                    let emitted = watermarks
                        .get_mut(partition)
                        .ok_or_else(|| Error::internal(format!("unknown partition {partition}")))?;
                    let mut state = PartitionWatermark {
                        emitted: *emitted,
                        seen: *seen.get(&partition).unwrap_or(emitted),
                    };
                    let rows = self.prep.apply(&batch, &mut state)?;
                    *emitted = state.emitted;
                    seen.insert(partition, state.seen);
                    watermarks.active(partition);
                    last_data.insert(partition, Instant::now());
                    self.fanout.push_batches(vec![rows])?;
                }
                SourceEvent::PartitionAdded(p) => {
                    let start = self.restored_watermarks.get(&p).copied();
                    watermarks.add(p, start.unwrap_or(watermarks.emitted()));
                    last_data.insert(p, Instant::now());
                }
                SourceEvent::PartitionFinished(p) => watermarks.end(p),
                SourceEvent::Pending => {}
                SourceEvent::Finished => break,
            }
            let now = Instant::now();
            self.fanout.poll_timers(now)?;
            // Checked after every event: a busy partition must not keep a silent one from
            // being marked idle.
            if let Some(timeout) = self.idle_timeout {
                for (p, at) in &last_data {
                    if now.duration_since(*at) >= timeout {
                        watermarks.set_idle(*p);
                    }
                }
            }
            // Every partition idle or finished (a reader whose shards all closed while
            // their children went to other instances): hold nothing back.
            match watermarks.progress(false) {
                Progress::Advanced(w) => {
                    control.metrics.set_watermark(&self.name, w);
                    self.fanout.push_watermark(w)?;
                }
                Progress::Idle if self.bounded && watermarks.each().all(|(_, _, ended)| ended) => {}
                Progress::Idle => self.fanout.push_idle()?,
                Progress::Unchanged => {}
            }
        }
        if !ctx.stopping() {
            // The end of a bounded input: every remaining window fires.
            control.metrics.set_watermark(&self.name, i64::MAX);
            self.fanout.push_watermark(i64::MAX)?;
        }
        let aborted = control.aborted();
        self.fanout.finish(aborted)?;
        if !aborted && control.checkpointing() {
            let mut parts = vec![self.own_part(reader.as_mut(), &watermarks)?];
            self.fanout.final_snapshots(self.instance, &mut parts)?;
            control.report_finished(task, Some(parts));
        }
        Ok(())
    }
}
