//! Exchanges: how rows and control messages cross from the instances of one task to the
//! instances of the next, over bounded channels.
//!
//! Every (upstream instance, downstream instance) pair has a channel of its own, so a
//! receiver can stop reading one input (while it aligns a checkpoint barrier) and the
//! backpressure of that channel's bound holds exactly that upstream instance back. A `Hash`
//! edge sends each row to the instance `hash(key) % n`; a `Single` edge sends everything to
//! instance 0.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use crossbeam_channel::{bounded, Receiver, Sender};
use datafusion::common::hash_utils::{create_hashes, RandomState};

use crate::error::{Error, Result};
use crate::graph::{Edge, Graph, NodeId};

/// How many messages a channel between two task instances holds before the sender waits.
pub const CHANNEL_CAPACITY: usize = 16;

/// A message between task instances.
#[derive(Debug)]
pub enum Message {
    Batch(RecordBatch),
    Watermark(i64),
    Idle,
    /// Checkpoint barrier: everything before it belongs to checkpoint `n`.
    Barrier(u64),
    End,
}

/// The hashes by which rows are sent to the instances of a hash exchange (`hash % n`), and
/// by which keyed state is split on a restore at another parallelism.
pub fn key_hashes(columns: &[ArrayRef], rows: usize) -> Result<Vec<u64>> {
    let mut hashes = vec![0; rows];
    create_hashes(columns, &RandomState::with_seed(0x51u64), &mut hashes)?;
    Ok(hashes)
}

/// The instance of `parallelism` that owns the key with this hash.
#[inline]
pub fn owner(hash: u64, parallelism: usize) -> usize {
    (hash % parallelism as u64) as usize
}

/// The sending side of an exchange, held by one upstream instance: one sender per
/// downstream instance.
pub struct ExchangeOut {
    edge: Edge,
    senders: Vec<Sender<Message>>,
}

impl ExchangeOut {
    fn send(&self, to: usize, message: Message) -> Result<()> {
        self.senders[to]
            .send(message)
            .map_err(|_| Error::downstream_stopped())
    }

    pub fn broadcast(&self, message: impl Fn() -> Message) -> Result<()> {
        (0..self.senders.len()).try_for_each(|to| self.send(to, message()))
    }

    pub fn send_batch(&self, batch: &RecordBatch) -> Result<()> {
        let n = self.senders.len();
        let columns = match &self.edge {
            Edge::Hash(columns) if n > 1 => columns,
            _ => return self.send(0, Message::Batch(batch.clone())),
        };
        let arrays: Vec<_> = columns
            .iter()
            .map(|c| Arc::clone(batch.column(*c)))
            .collect();
        let hashes = key_hashes(&arrays, batch.num_rows())?;
        let mut targets: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (row, h) in hashes.iter().enumerate() {
            targets[owner(*h, n)].push(row as u32);
        }
        for (to, rows) in targets.into_iter().enumerate() {
            if !rows.is_empty() {
                let part = take_record_batch(batch, &UInt32Array::from(rows))?;
                self.send(to, Message::Batch(part))?;
            }
        }
        Ok(())
    }
}

/// The channels of every exchange of a graph, until the tasks take their ends.
pub struct Exchanges {
    /// By (consumer node, input side): `senders[to][from]`.
    senders: HashMap<(NodeId, usize), Vec<Vec<Sender<Message>>>>,
    /// By consumer node: `receivers[to][from]`, taken by the receiving task: the first
    /// input's upstream instances, then the second input's.
    receivers: HashMap<NodeId, Vec<Option<Vec<Receiver<Message>>>>>,
    /// By consumer node: how many of its receivers belong to its first input.
    first_inputs: HashMap<NodeId, usize>,
}

impl Exchanges {
    /// One channel per (upstream instance, downstream instance) of every exchange edge.
    pub fn new(graph: &Graph) -> Self {
        let mut senders = HashMap::new();
        let mut receivers = HashMap::new();
        let mut first_inputs = HashMap::new();
        for (id, node) in graph.nodes.iter().enumerate() {
            let mut mine: Vec<Vec<Receiver<Message>>> = vec![Vec::new(); node.parallelism];
            for (side, input) in [&node.input, &node.second_input].into_iter().enumerate() {
                let Some((from, Edge::Hash(_) | Edge::Single)) = input else {
                    continue;
                };
                let upstream = graph.nodes[*from].parallelism;
                let (s, r): (Vec<Vec<_>>, Vec<Vec<_>>) = (0..node.parallelism)
                    .map(|_| (0..upstream).map(|_| bounded(CHANNEL_CAPACITY)).unzip())
                    .unzip();
                senders.insert((id, side), s);
                for (to, r) in r.into_iter().enumerate() {
                    mine[to].extend(r);
                }
                if side == 0 {
                    first_inputs.insert(id, upstream);
                }
            }
            if mine.iter().any(|m| !m.is_empty()) {
                receivers.insert(id, mine.into_iter().map(Some).collect());
            }
        }
        Self {
            senders,
            receivers,
            first_inputs,
        }
    }

    /// How many of `consumer`'s inputs (upstream instances) belong to its first input.
    pub fn first_inputs(&self, consumer: NodeId) -> usize {
        self.first_inputs.get(&consumer).copied().unwrap_or(0)
    }

    /// The sending side of the exchange into input `side` of `consumer` for upstream
    /// instance `from`.
    pub fn out(
        &self,
        consumer: NodeId,
        side: usize,
        edge: &Edge,
        from: usize,
    ) -> Result<ExchangeOut> {
        let senders = self
            .senders
            .get(&(consumer, side))
            .ok_or_else(|| Error::internal("an exchange without channels"))?;
        Ok(ExchangeOut {
            edge: edge.clone(),
            senders: senders.iter().map(|s| s[from].clone()).collect(),
        })
    }

    /// The receiving side of instance `instance` of `consumer`, one receiver per upstream
    /// instance; can be taken once.
    pub fn take_inputs(
        &mut self,
        consumer: NodeId,
        instance: usize,
    ) -> Result<Vec<Receiver<Message>>> {
        self.receivers
            .get_mut(&consumer)
            .and_then(|r| r.get_mut(instance))
            .and_then(Option::take)
            .ok_or_else(|| Error::internal("the inputs of a task were taken twice"))
    }
}
