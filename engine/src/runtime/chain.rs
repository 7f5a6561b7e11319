//! Chaining: the operators of one task, each feeding the next by a function call, and the
//! exchanges at the end of the chain that feed other tasks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{Part, Restored};
use crate::error::{Error, ErrorKind, Result};
use crate::graph::{Edge, Graph, NodeId, NodeKind};
use crate::metrics::{JobMetrics, OperatorCounters};
use crate::operator::{NextTimers, Operator, StateSnapshot, StreamBatch, Timer};
use crate::state;

use super::exchange::{ExchangeOut, Exchanges, Message};

/// Where the output of a node goes: chained operators and exchanges.
#[derive(Default)]
pub struct Fanout {
    chained: Vec<Chain>,
    exchanges: Vec<ExchangeOut>,
    /// What the node that owns this fanout emitted (its metrics' "records out").
    emitted: Option<Arc<OperatorCounters>>,
}

/// One operator of a task and what follows it.
pub struct Chain {
    /// The operator's stable id, which its state has in checkpoints.
    pub uid: String,
    pub instance: usize,
    pub parallelism: usize,
    pub operator: Box<dyn Operator>,
    pub next: Fanout,
}

/// How many timers may fire for one watermark or clock reading before the operator is
/// taken to be stuck (a timer it does not clear).
const MAX_TIMERS_AT_ONCE: usize = 1_000_000;

impl Fanout {
    /// The chain after node `id` for one instance: the operators chained to it and the
    /// exchanges it feeds.
    pub fn build(
        graph: &Graph,
        id: NodeId,
        instance: usize,
        exchanges: &Exchanges,
        metrics: &JobMetrics,
    ) -> Result<Self> {
        let mut fanout = Fanout {
            emitted: Some(metrics.operator(&graph.nodes[id].uid)),
            ..Fanout::default()
        };
        for (consumer, edge, side) in graph.consumer_inputs(id) {
            let node = &graph.nodes[consumer];
            match edge {
                Edge::Forward => {
                    let NodeKind::Operator { factory } = &node.kind else {
                        return Err(Error::internal("a source cannot consume another node"));
                    };
                    fanout.chained.push(Chain {
                        uid: node.uid.clone(),
                        instance,
                        parallelism: node.parallelism,
                        operator: factory.create(instance, node.parallelism)?,
                        next: Fanout::build(graph, consumer, instance, exchanges, metrics)?,
                    });
                }
                Edge::Hash(_) | Edge::Single => {
                    fanout
                        .exchanges
                        .push(exchanges.out(consumer, side, edge, instance)?);
                }
            }
        }
        Ok(fanout)
    }

    pub fn push_batches(&mut self, batches: Vec<StreamBatch>) -> Result<()> {
        for batch in batches {
            if let Some(emitted) = &self.emitted {
                let b = &batch.batch;
                emitted
                    .records
                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                let bytes: usize = b
                    .columns()
                    .iter()
                    .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
                    .sum();
                emitted.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            for exchange in &self.exchanges {
                exchange.send_batch(&batch.batch)?;
            }
            match self.chained.len() {
                0 => {}
                1 => self.chained[0].push_batch(batch)?,
                _ => self
                    .chained
                    .iter_mut()
                    .try_for_each(|c| c.push_batch(batch.clone()))?,
            }
        }
        Ok(())
    }

    pub fn push_watermark(&mut self, watermark: i64) -> Result<()> {
        for chain in &mut self.chained {
            chain.push_watermark(watermark)?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::Watermark(watermark)))
    }

    pub fn push_idle(&mut self) -> Result<()> {
        for chain in &mut self.chained {
            chain.next.push_idle()?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::Idle))
    }

    /// The input ended; `aborted`: the job was stopped with checkpoints on.
    pub fn finish(&mut self, aborted: bool) -> Result<()> {
        for chain in &mut self.chained {
            chain.finish(aborted)?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::End))
    }

    /// A barrier reached this point: the chained operators snapshot, in order, and the
    /// barrier goes on through every exchange.
    pub fn push_barrier(&mut self, id: u64, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        for chain in &mut self.chained {
            chain.push_barrier(id, instance, parts)?;
        }
        self.exchanges
            .iter()
            .try_for_each(|x| x.broadcast(|| Message::Barrier(id)))
    }

    pub fn restore(&mut self, restored: &Restored) -> Result<()> {
        self.chained
            .iter_mut()
            .try_for_each(|c| c.restore(restored))
    }

    /// Fires the processing-time timers that are due in the chained operators.
    pub fn poll_timers(&mut self, now: Instant) -> Result<()> {
        self.chained.iter_mut().try_for_each(|c| c.poll_timers(now))
    }

    /// The chained operators' snapshots at the end of the input (no barrier to send).
    pub fn final_snapshots(&mut self, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        self.chained
            .iter_mut()
            .try_for_each(|c| c.final_snapshots(instance, parts))
    }
}

impl Chain {
    /// An error of this operator, naming it (its id names the INSERT, so the table) unless
    /// the error names its table already (a connector's) or is another task's failure.
    fn named(&self, e: Error) -> Error {
        // Connector and data errors name their table, file or line already; others are
        // named after the operator (a value it could not compute becomes a data error).
        match e.kind() {
            ErrorKind::Connector | ErrorKind::Data => e,
            _ if e.is_downstream_stopped() || e.is_located() => e,
            _ => e.at_run_time().context(format!("operator '{}'", self.uid)),
        }
    }

    pub fn push_batch(&mut self, batch: StreamBatch) -> Result<()> {
        let mut out = Vec::new();
        self.operator
            .process_batch(batch, &mut out)
            .map_err(|e| self.named(e))?;
        self.next.push_batches(out)
    }

    /// A batch of input `side` of a node with two inputs.
    pub fn push_side(&mut self, side: usize, batch: StreamBatch) -> Result<()> {
        let mut out = Vec::new();
        self.operator
            .process_side(side, batch, &mut out)
            .map_err(|e| self.named(e))?;
        self.next.push_batches(out)
    }

    pub fn push_watermark(&mut self, watermark: i64) -> Result<()> {
        let mut out = Vec::new();
        self.fire_timers(&mut out, |next| {
            next.event.filter(|t| *t <= watermark).map(Timer::EventTime)
        })?;
        self.operator
            .handle_watermark(watermark, &mut out)
            .map_err(|e| self.named(e))?;
        self.next.push_batches(out)?;
        self.next
            .push_watermark(self.operator.output_watermark(watermark))
    }

    /// Fires the processing-time timers due at `now`, here and further down the chain.
    pub fn poll_timers(&mut self, now: Instant) -> Result<()> {
        let mut out = Vec::new();
        self.fire_timers(&mut out, |next| {
            next.processing
                .filter(|t| *t <= now)
                .map(Timer::ProcessingTime)
        })?;
        self.next.push_batches(out)?;
        self.next.poll_timers(now)
    }

    /// Calls `on_timer` while `due` finds a due timer among the operator's next ones.
    fn fire_timers(
        &mut self,
        out: &mut Vec<StreamBatch>,
        due: impl Fn(NextTimers) -> Option<Timer>,
    ) -> Result<()> {
        for _ in 0..MAX_TIMERS_AT_ONCE {
            match due(self.operator.next_timers()) {
                Some(timer) => self
                    .operator
                    .on_timer(timer, out)
                    .map_err(|e| self.named(e))?,
                None => return Ok(()),
            }
        }
        Err(Error::internal(format!(
            "operator {} keeps a timer due that it does not clear",
            self.uid
        )))
    }

    pub fn finish(&mut self, aborted: bool) -> Result<()> {
        if aborted {
            self.operator.on_abort().map_err(|e| self.named(e))?;
        } else {
            let mut out = Vec::new();
            self.operator
                .on_finish(&mut out)
                .map_err(|e| self.named(e))?;
            self.next.push_batches(out)?;
        }
        self.next.finish(aborted)
    }

    /// The operator's state at a barrier: what it snapshots itself and its keyed state.
    fn snapshot(&mut self, id: u64, out: &mut Vec<StreamBatch>) -> Result<Option<Part>> {
        let mut state = self.operator.snapshot(id, out).map_err(|e| self.named(e))?;
        if let Some(keyed) = self.operator.keyed_state() {
            let tables = keyed.tables();
            let rows = keyed.snapshot();
            let rows = rows.map_err(|e| self.named(e))?;
            let state = state.get_or_insert_with(StateSnapshot::default);
            state
                .tables
                .extend(tables.into_iter().map(|t| t.name).zip(rows));
        }
        Ok(state.map(|state| Part {
            operator: self.uid.clone(),
            instance: self.instance,
            state,
        }))
    }

    pub fn push_barrier(&mut self, id: u64, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        let mut out = Vec::new();
        parts.extend(self.snapshot(id, &mut out)?);
        self.next.push_batches(out)?;
        self.next.push_barrier(id, instance, parts)
    }

    pub fn restore(&mut self, restored: &Restored) -> Result<()> {
        self.restore_own(restored)?;
        self.next.restore(restored)
    }

    /// Restores this operator only (the rest of the chain is restored with its fanout).
    pub fn restore_own(&mut self, restored: &Restored) -> Result<()> {
        let parts = restored.operator(&self.uid);
        self.operator.restore(parts)?;
        if let Some(keyed) = self.operator.keyed_state() {
            let stored: Vec<&[(String, Vec<_>)]> =
                parts.iter().map(|p| p.tables.as_slice()).collect();
            state::restore_owned(keyed, &stored, self.instance, self.parallelism)?;
        }
        Ok(())
    }

    pub fn final_snapshots(&mut self, instance: usize, parts: &mut Vec<Part>) -> Result<()> {
        parts.extend(self.snapshot(0, &mut Vec::new())?);
        self.next.final_snapshots(instance, parts)
    }
}
