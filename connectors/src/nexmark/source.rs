//! The `nexmark` source: the Nexmark benchmark's persons, auctions and bids, one table with
//! a column per kind, as Flink's Nexmark connector gives them.
//!
//! Each parallel instance runs one generator (see `generator.rs`) and emits batches of up to
//! 8192 events, as fast as it can (`max-emit-speed`, the default) or at the event rate. A
//! checkpoint keeps each instance's event count and random state, so a resumed job goes on
//! with exactly the events it would have made.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{new_null_array, ArrayRef, Int32Array, RecordBatch, StructArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Fields, SchemaRef};
use sluice_engine::connector::{
    Options, SourceConnector, SourceContext, SourceEvent, SourceReader, TableSpec,
};
use sluice_engine::{Error, Result};

use crate::instance_position::{restored, InstancePosition};

use super::config::{check_schema, NexmarkOptions};
use super::generator::{Kind, Split};
use super::model::{AuctionColumns, BidColumns, EventAt, PersonColumns, Scratch, Shared};
use super::random::SplittableRandom;

const MAX_BATCH: i64 = 8192;
const MAX_WAIT: Duration = Duration::from_millis(100);

pub struct NexmarkSource {
    table: String,
    schema: SchemaRef,
    options: NexmarkOptions,
    /// Chosen when the job is planned, unless the options fix them.
    seed: u64,
    base_time_ms: i64,
    shared: OnceLock<Arc<Shared>>,
    /// Which of person, auction, bid the job reads.
    wanted: [bool; 3],
}

impl NexmarkSource {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        if let Some(meta) = spec.metadata.first() {
            return Err(Error::config(format!(
                "table '{}': the nexmark connector offers no metadata, but column '{}' asks for '{}'",
                spec.name, meta.name, meta.key
            )));
        }
        check_schema(&spec.name, &spec.schema)?;
        let options = NexmarkOptions::take(options)?;
        let wanted = std::array::from_fn(|i| {
            spec.projection
                .as_ref()
                .is_none_or(|p| p.contains(&(i + 1)))
        });
        Ok(Self {
            table: spec.name,
            schema: spec.schema,
            seed: options.seed.unwrap_or_else(rand::random),
            base_time_ms: options.base_time_ms.unwrap_or_else(now_ms),
            options,
            shared: OnceLock::new(),
            wanted,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a checkpoint keeps of a reader.
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    instance: usize,
    parallelism: usize,
    events: i64,
    random: u64,
    seed: u64,
    base_time_ms: i64,
}

impl InstancePosition for Position {
    fn instance(&self) -> usize {
        self.instance
    }
    fn parallelism(&self) -> usize {
        self.parallelism
    }
}

impl SourceConnector for NexmarkSource {
    fn describe(&self) -> String {
        let g = &self.options.generator;
        let events = match g.events {
            0 => "unbounded".to_string(),
            n => n.to_string(),
        };
        format!(
            "nexmark events.num={events} first-event.rate={}",
            g.first_event_rate
        )
    }

    fn bounded(&self) -> bool {
        self.options.generator.events > 0 && !self.options.keep_alive
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        let parallelism = ctx.parallelism.max(1);
        let fresh = Position {
            instance: ctx.instance,
            parallelism,
            events: 0,
            random: self
                .seed
                .wrapping_add((ctx.instance as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            seed: self.seed,
            base_time_ms: self.base_time_ms,
        };
        let position = restored::<Position>(ctx, "nexmark", &self.table)?.unwrap_or(fresh);
        let shared = if position.seed == self.seed {
            Arc::clone(self.shared.get_or_init(|| Arc::new(Shared::new(self.seed))))
        } else {
            Arc::new(Shared::new(position.seed))
        };
        let split = Split::new(
            &self.options.generator,
            ctx.instance,
            parallelism,
            position.base_time_ms,
        );
        Ok(Box::new(NexmarkReader {
            schema: Arc::clone(&self.schema),
            split,
            shared,
            random: SplittableRandom::new(position.random),
            events: position.events,
            position,
            max_emit_speed: self.options.max_emit_speed,
            keep_alive: self.options.keep_alive,
            wanted: self.wanted,
            started: None,
            partition_finished: false,
            scratch: Scratch::default(),
        }))
    }
}

struct NexmarkReader {
    schema: SchemaRef,
    split: Split,
    shared: Arc<Shared>,
    random: SplittableRandom,
    /// Events made so far (restores included).
    events: i64,
    /// Where this reader started, for snapshots.
    position: Position,
    max_emit_speed: bool,
    keep_alive: bool,
    wanted: [bool; 3],
    /// The wall-clock time of the first event made in this run, and its event number.
    started: Option<(Instant, i64)>,
    partition_finished: bool,
    scratch: Scratch,
}

impl SourceReader for NexmarkReader {
    fn partitions(&self) -> Vec<usize> {
        vec![self.position.instance]
    }

    fn next(&mut self, ctx: &SourceContext) -> Result<SourceEvent> {
        if ctx.stopping() {
            return Ok(SourceEvent::Finished);
        }
        let remaining = self.split.max_events - self.events;
        if remaining <= 0 {
            if self.keep_alive {
                std::thread::sleep(MAX_WAIT);
                return Ok(SourceEvent::Pending);
            }
            if self.partition_finished {
                return Ok(SourceEvent::Finished);
            }
            self.partition_finished = true;
            return Ok(SourceEvent::PartitionFinished(self.position.instance));
        }
        let mut count = remaining.min(MAX_BATCH);
        if !self.max_emit_speed {
            count = count.min(self.due_events());
            if count == 0 {
                std::thread::sleep(Duration::from_millis(1));
                return Ok(SourceEvent::Pending);
            }
        }
        let batch = self.generate(count)?;
        Ok(SourceEvent::Batch {
            partition: self.position.instance,
            batch,
        })
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let position = Position {
            events: self.events,
            random: self.random.state(),
            ..self.position
        };
        serde_json::to_vec(&position)
            .map(Some)
            .map_err(|e| Error::internal(format!("nexmark position: {e}")))
    }
}

impl NexmarkReader {
    /// How many events are due by the wall clock, when events keep to their event times.
    fn due_events(&mut self) -> i64 {
        let (started, first) = *self.started.get_or_insert((Instant::now(), self.events));
        let elapsed_ms = started.elapsed().as_millis() as i64;
        let offset = self.split.timestamp(first + 1) - self.split.base_time_ms;
        let mut due = 0;
        while due < MAX_BATCH
            && self.split.timestamp(self.events + due + 1) - self.split.base_time_ms - offset
                <= elapsed_ms
        {
            due += 1;
        }
        due
    }

    fn generate(&mut self, count: i64) -> Result<RecordBatch> {
        let mut kinds = Vec::with_capacity(count as usize);
        let (mut persons, mut auctions, mut bids) = (
            PersonColumns::default(),
            AuctionColumns::default(),
            BidColumns::default(),
        );
        let (split, shared, random) = (&self.split, &*self.shared, &mut self.random);
        // Only the columns the job reads are filled; the others become NULL columns.
        let [want_person, want_auction, want_bid] = self.wanted;
        for _ in 0..count {
            let k = self.events;
            let id = split.event_id(k);
            let timestamp = split.timestamp(1 + k);
            let kind = split.kind(id);
            let scratch = &mut self.scratch;
            let at = EventAt { k, id, timestamp };
            match kind {
                Kind::Person => persons.push(split, shared, random, at, scratch, want_person),
                Kind::Auction => auctions.push(split, shared, random, at, scratch, want_auction),
                Kind::Bid => bids.push(split, shared, random, at, want_bid),
            }
            if want_person && kind != Kind::Person {
                persons.push_empty();
            }
            if want_auction && kind != Kind::Auction {
                auctions.push_empty();
            }
            if want_bid && kind != Kind::Bid {
                bids.push_empty();
            }
            kinds.push(kind);
            self.events += 1;
        }
        let fields = self.schema.fields();
        let column = |i: usize, kind: Kind, children: Vec<ArrayRef>| -> Result<ArrayRef> {
            let data_type = fields[i].data_type();
            if !self.wanted[i - 1] {
                return Ok(new_null_array(data_type, kinds.len()));
            }
            let DataType::Struct(struct_fields) = data_type else {
                return Err(Error::internal("nexmark: a ROW column is not a struct"));
            };
            let valid = NullBuffer::from(kinds.iter().map(|&k| k == kind).collect::<Vec<_>>());
            struct_array(struct_fields, children, valid)
        };
        let event_type: ArrayRef = Arc::new(Int32Array::from(
            kinds.iter().map(|&k| k as i32).collect::<Vec<_>>(),
        ));
        let columns = vec![
            event_type,
            column(1, Kind::Person, persons.finish())?,
            column(2, Kind::Auction, auctions.finish())?,
            column(3, Kind::Bid, bids.finish())?,
        ];
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| Error::internal(format!("nexmark batch: {e}")))
    }
}

fn struct_array(fields: &Fields, children: Vec<ArrayRef>, valid: NullBuffer) -> Result<ArrayRef> {
    StructArray::try_new(fields.clone(), children, Some(valid))
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| Error::internal(format!("nexmark column: {e}")))
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
