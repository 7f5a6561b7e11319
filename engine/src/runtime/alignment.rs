//! Barrier alignment of a task with several inputs (aligned checkpoints, as in Flink).
//!
//! When an input delivers the barrier of checkpoint `n`, the task stops reading that input
//! until every other live input has delivered it too: what the input sends after the barrier
//! belongs to the next checkpoint. The task does not queue that data itself; it leaves it in
//! the input's bounded channel, so the upstream instance waits (backpressure) and memory
//! stays bounded however long the alignment takes. Once aligned, the task snapshots its
//! operators, passes the barrier on and reads every input again.

/// Which inputs are blocked for the checkpoint being aligned.
#[derive(Debug, Clone)]
pub struct Aligner {
    /// The checkpoint being aligned, if any.
    aligning: Option<u64>,
    /// Inputs that delivered its barrier.
    arrived: Vec<bool>,
    ended: Vec<bool>,
}

impl Aligner {
    pub fn new(inputs: usize) -> Self {
        Self {
            aligning: None,
            arrived: vec![false; inputs],
            ended: vec![false; inputs],
        }
    }

    /// False while input `input` has delivered the barrier being aligned: leave its
    /// messages in its channel.
    pub fn readable(&self, input: usize) -> bool {
        let blocked = self.aligning.is_some() && self.arrived[input];
        !(self.ended[input] || blocked)
    }

    /// Input `input` delivered the barrier of checkpoint `id`. Returns the checkpoint to
    /// snapshot when this completes the alignment.
    pub fn barrier(&mut self, input: usize, id: u64) -> Option<u64> {
        // Barriers come in order on each input, so a newer id means every input is past
        // the older one (or ended): the newer one is what is aligned now.
        if self.aligning.is_none_or(|a| a < id) {
            self.aligning = Some(id);
        }
        self.arrived[input] = true;
        self.complete()
    }

    /// Input `input` ended; an alignment it was holding up may complete.
    pub fn end(&mut self, input: usize) -> Option<u64> {
        self.ended[input] = true;
        self.complete()
    }

    pub fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }

    fn complete(&mut self) -> Option<u64> {
        let id = self.aligning?;
        let done = self.arrived.iter().zip(&self.ended).all(|(a, e)| *a || *e);
        if done {
            self.aligning = None;
            self.arrived.iter_mut().for_each(|a| *a = false);
            Some(id)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_blocked_from_its_barrier_until_all_have_theirs() {
        let mut a = Aligner::new(3);
        assert!((0..3).all(|i| a.readable(i)));
        assert_eq!(a.barrier(1, 7), None);
        assert!(!a.readable(1));
        assert!(a.readable(0) && a.readable(2));
        assert_eq!(a.barrier(0, 7), None);
        assert_eq!(a.barrier(2, 7), Some(7));
        assert!((0..3).all(|i| a.readable(i)), "every input is read again");
        // The next checkpoint starts afresh.
        assert_eq!(a.barrier(2, 8), None);
        assert!(!a.readable(2));
    }

    #[test]
    fn an_ended_input_does_not_hold_an_alignment_up() {
        let mut a = Aligner::new(2);
        assert_eq!(a.barrier(0, 3), None);
        assert_eq!(a.end(1), Some(3));
        assert!(a.readable(0) && !a.readable(1));
        // With one input left, its barrier aligns at once.
        assert_eq!(a.barrier(0, 4), Some(4));
        assert_eq!(a.end(0), None);
        assert!(a.all_ended());
    }
}
