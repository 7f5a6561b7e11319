//! The watermark of a task: the minimum over its inputs (a source's partitions, a
//! receiver's upstream instances) that are neither idle nor ended, emitted only when it
//! advances.
//!
//! An input that is idle stops holding the watermark back until it sends again; when every
//! input is idle the task says so downstream once, so it holds nothing back there either.
//! Sources and receivers share this one rule.

use std::collections::BTreeMap;

/// What a task forwards after its inputs changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The watermark advanced to this value.
    Advanced(i64),
    /// Every live input is idle (and was not before): hold nothing back downstream.
    Idle,
    Unchanged,
}

#[derive(Debug, Clone, Copy)]
struct Input {
    watermark: i64,
    idle: bool,
    ended: bool,
}

/// The watermarks of a task's inputs, by input id (partition or upstream instance).
#[derive(Debug, Clone)]
pub struct Watermarks {
    inputs: BTreeMap<usize, Input>,
    emitted: i64,
    idle: bool,
}

impl Watermarks {
    /// Inputs with their starting watermarks (`i64::MIN` for a fresh one).
    pub fn new(inputs: impl IntoIterator<Item = (usize, i64)>) -> Self {
        Self {
            inputs: inputs
                .into_iter()
                .map(|(id, watermark)| {
                    (
                        id,
                        Input {
                            watermark,
                            idle: false,
                            ended: false,
                        },
                    )
                })
                .collect(),
            emitted: i64::MIN,
            idle: false,
        }
    }

    /// The watermark emitted last.
    pub fn emitted(&self) -> i64 {
        self.emitted
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Adds an input (a partition found while running) unless it is known; it starts at
    /// `watermark`.
    pub fn add(&mut self, id: usize, watermark: i64) {
        self.inputs.entry(id).or_insert(Input {
            watermark,
            idle: false,
            ended: false,
        });
    }

    /// The watermark of input `id`, for sources that advance it row by row.
    pub fn get_mut(&mut self, id: usize) -> Option<&mut i64> {
        self.inputs.get_mut(&id).map(|i| &mut i.watermark)
    }

    /// Input `id` sent data or a watermark: it is active again, its watermark at least `w`.
    pub fn advance(&mut self, id: usize, w: i64) {
        if let Some(input) = self.inputs.get_mut(&id) {
            input.idle = false;
            input.watermark = input.watermark.max(w);
        }
    }

    /// Input `id` sent data, which the task passes on (its watermark moved through
    /// [`Self::get_mut`]): the input is active, and downstream sees this task active too.
    pub fn active(&mut self, id: usize) {
        if let Some(input) = self.inputs.get_mut(&id) {
            input.idle = false;
        }
        self.idle = false;
    }

    pub fn set_idle(&mut self, id: usize) {
        if let Some(input) = self.inputs.get_mut(&id) {
            input.idle = true;
        }
    }

    pub fn end(&mut self, id: usize) {
        if let Some(input) = self.inputs.get_mut(&id) {
            input.ended = true;
        }
    }

    /// The inputs' watermarks by id, ended ones included.
    pub fn each(&self) -> impl Iterator<Item = (usize, i64, bool)> + '_ {
        self.inputs
            .iter()
            .map(|(id, i)| (*id, i.watermark, i.ended))
    }

    /// What changed: the minimum over the inputs that hold the watermark if it advanced,
    /// or the news that none does. Live inputs hold it unless idle; with `final_from_ended`
    /// an ended input holds it at its last watermark (the maximum after a bounded end), as
    /// a finished channel does in Flink, so that inputs which ended and inputs which went
    /// idle together let the watermark advance to the ends' instead of calling the task idle
    /// (which would let a downstream task run ahead of the rows this one still holds).
    pub fn progress(&mut self, final_from_ended: bool) -> Progress {
        let holding = self
            .inputs
            .values()
            .filter(|i| if i.ended { final_from_ended } else { !i.idle });
        match holding.map(|i| i.watermark).min() {
            Some(w) if w > self.emitted => {
                self.emitted = w;
                self.idle = false;
                Progress::Advanced(w)
            }
            Some(_) => Progress::Unchanged,
            // Every live input is idle, or every input ended and the ends say nothing:
            // hold nothing back downstream.
            None if !self.idle => {
                self.idle = true;
                Progress::Idle
            }
            None => Progress::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_of_the_active_inputs_advances_once() {
        let mut w = Watermarks::new([(0, i64::MIN), (1, i64::MIN)]);
        w.advance(0, 100);
        assert_eq!(w.progress(true), Progress::Unchanged);
        w.advance(1, 50);
        assert_eq!(w.progress(true), Progress::Advanced(50));
        assert_eq!(w.progress(true), Progress::Unchanged);
        // Never backwards.
        w.advance(1, 40);
        assert_eq!(w.progress(true), Progress::Unchanged);
        w.set_idle(1);
        assert_eq!(w.progress(true), Progress::Advanced(100));
        w.set_idle(0);
        assert_eq!(w.progress(true), Progress::Idle);
        assert_eq!(w.progress(true), Progress::Unchanged);
        // Data passed on makes the task active downstream: idle again is news again.
        w.active(0);
        w.set_idle(0);
        assert_eq!(w.progress(true), Progress::Idle);
        w.advance(1, 300);
        assert_eq!(w.progress(true), Progress::Advanced(300));
    }

    #[test]
    fn ended_inputs_stop_counting_and_the_last_ones_decide() {
        let mut w = Watermarks::new([(0, i64::MIN), (1, i64::MIN)]);
        w.advance(0, i64::MAX);
        w.end(0);
        w.advance(1, 10);
        assert_eq!(w.progress(true), Progress::Advanced(10));
        w.advance(1, 20);
        w.end(1);
        assert_eq!(w.progress(true), Progress::Advanced(20));
        // Inputs that ended at the end of time and one that goes idle: the ends decide, the
        // task is not idle (it may hold windows that fire at the end).
        let mut w = Watermarks::new([(0, i64::MIN), (1, i64::MIN), (2, i64::MIN)]);
        for ended in [0, 1] {
            w.advance(ended, i64::MAX);
            w.end(ended);
        }
        assert_eq!(w.progress(true), Progress::Unchanged);
        w.set_idle(2);
        assert_eq!(w.progress(true), Progress::Advanced(i64::MAX));
        let mut none = Watermarks::new([]);
        assert_eq!(none.progress(false), Progress::Idle);
        assert_eq!(none.progress(false), Progress::Unchanged);
    }
}
