//! A task fed by an exchange: it reads its upstream instances' channels, keeps their
//! watermarks, aligns checkpoint barriers, and drives its chain of operators.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, TryRecvError};
use crossbeam_utils::Backoff;

use crate::error::{Error, Result};
use crate::operator::StreamBatch;

use super::alignment::Aligner;
use super::chain::Chain;
use super::exchange::Message;
use super::watermarks::{Progress, Watermarks};
use super::JobControl;

/// How long a receiver waits for a message before it checks whether the job failed.
const POLL: Duration = Duration::from_millis(100);

/// The receiving task of one instance.
pub struct ReceiverTask {
    pub name: String,
    pub instance: usize,
    /// One channel per upstream instance: the first input's, then the second input's.
    pub inputs: Vec<Receiver<Message>>,
    /// How many of `inputs` belong to the first input.
    pub first_inputs: usize,
    pub chain: Chain,
}

/// The next message of a readable input: `(input, message)`, `Ok(None)` after a quiet poll.
///
/// While messages are waiting, they are taken without blocking, round-robin from `next` on
/// (so no input starves the others). When every readable input is empty the task spins and
/// yields a little (a receiver is usually faster than its senders, and parking and waking
/// a thread for each message costs more than the message), then blocks on all of them.
fn next_message(
    inputs: &[Receiver<Message>],
    aligner: &Aligner,
    next: &mut usize,
) -> Result<Option<(usize, Message)>> {
    let backoff = Backoff::new();
    loop {
        if let Some(found) = try_next(inputs, aligner, next)? {
            return Ok(Some(found));
        }
        if backoff.is_completed() {
            break;
        }
        backoff.snooze();
    }
    let mut select = Select::new();
    let mut indices = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        if aligner.readable(i) {
            select.recv(input);
            indices.push(i);
        }
    }
    if indices.is_empty() {
        return Err(Error::internal("a receiver has no input to read"));
    }
    let ready = match select.select_timeout(POLL) {
        Ok(ready) => ready,
        Err(_) => return Ok(None),
    };
    let input = indices[ready.index()];
    match ready.recv(&inputs[input]) {
        Ok(message) => Ok(Some((input, message))),
        // An upstream task that ends says End first; a vanished one failed.
        Err(_) => Err(Error::downstream_stopped()),
    }
}

/// A waiting message of a readable input, round-robin from `next` on.
fn try_next(
    inputs: &[Receiver<Message>],
    aligner: &Aligner,
    next: &mut usize,
) -> Result<Option<(usize, Message)>> {
    let n = inputs.len();
    for k in 0..n {
        let i = (*next + k) % n;
        if !aligner.readable(i) {
            continue;
        }
        match inputs[i].try_recv() {
            Ok(message) => {
                *next = (i + 1) % n;
                return Ok(Some((i, message)));
            }
            Err(TryRecvError::Empty) => {}
            // An upstream task that ends says End first; a vanished one failed.
            Err(TryRecvError::Disconnected) => return Err(Error::downstream_stopped()),
        }
    }
    Ok(None)
}

impl ReceiverTask {
    pub fn run(mut self, task: usize, control: &JobControl) -> Result<()> {
        let mut watermarks = Watermarks::new((0..self.inputs.len()).map(|i| (i, i64::MIN)));
        let mut aligner = Aligner::new(self.inputs.len());
        let mut turn = 0;
        while !aligner.all_ended() {
            let next = next_message(&self.inputs, &aligner, &mut turn);
            // Processing-time timers fire whether messages come or not.
            self.chain.poll_timers(Instant::now())?;
            let (from, message) = match next {
                Ok(Some(m)) => m,
                Ok(None) if control.has_failed() => return Ok(()),
                Ok(None) => continue,
                Err(_) if control.has_failed() => return Ok(()),
                Err(e) => return Err(e),
            };
            let aligned = match message {
                Message::Batch(batch) if from >= self.first_inputs => {
                    watermarks.active(from);
                    self.chain.push_side(1, StreamBatch::new(batch))?;
                    None
                }
                Message::Batch(batch) => {
                    watermarks.active(from);
                    self.chain.push_batch(StreamBatch::new(batch))?;
                    None
                }
                Message::Watermark(w) => {
                    watermarks.advance(from, w);
                    None
                }
                Message::Idle => {
                    watermarks.set_idle(from);
                    None
                }
                Message::Barrier(id) => aligner.barrier(from, id),
                Message::End => {
                    watermarks.end(from);
                    aligner.end(from)
                }
            };
            if let Some(id) = aligned {
                let mut parts = Vec::new();
                self.chain.push_barrier(id, self.instance, &mut parts)?;
                control.report_parts(task, id, parts);
            }
            match watermarks.progress(true) {
                Progress::Advanced(w) => {
                    control.metrics.set_watermark(&self.name, w);
                    self.chain.push_watermark(w)?;
                }
                Progress::Idle => self.chain.next.push_idle()?,
                Progress::Unchanged => {}
            }
        }
        let aborted = control.aborted();
        self.chain.finish(aborted)?;
        if !aborted && control.checkpointing() {
            let mut parts = Vec::new();
            self.chain.final_snapshots(self.instance, &mut parts)?;
            control.report_finished(task, Some(parts));
        }
        Ok(())
    }
}
