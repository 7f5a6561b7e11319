//! The bridge between a sink writer on an engine thread and the async task that calls the
//! sink's service (Kinesis PutRecords, Feature Store PutRecord) on the AWS runtime.
//!
//! The writer hands over items through a bounded channel (a slow service holds the job
//! back), asks the task to flush at a checkpoint (the answer comes once everything handed
//! over before is delivered: at-least-once), and at the end closes the channel and waits
//! for the task. When the task stopped with an error, that error is what the writer
//! reports; a writer dropped without finishing (the job failed) stops its task.

use std::future::Future;

use sluice_engine::{Error, Result};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::aws::runtime;

/// Chunks of items queued between a writer and its task.
const CHANNEL_CAPACITY: usize = 16;

/// What a writer hands its task.
pub enum ToTask<T> {
    Items(Vec<T>),
    /// Answer once every item handed over before is delivered.
    Flush(oneshot::Sender<()>),
}

/// A writer's end of the bridge.
pub struct Bridge<T> {
    /// Names the writer in messages: `table 'x': the Kinesis writer`.
    what: String,
    tx: Option<mpsc::Sender<ToTask<T>>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl<T: Send + 'static> Bridge<T> {
    /// Starts `run` on the AWS runtime with the receiving end of the channel.
    pub fn spawn<F, Fut>(what: impl Into<String>, run: F) -> Self
    where
        F: FnOnce(mpsc::Receiver<ToTask<T>>) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = runtime().spawn(run(rx));
        Self {
            what: what.into(),
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Hands `items` to the task; waits while the channel is full.
    pub fn send(&mut self, items: Vec<T>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.blocking_send(ToTask::Items(items)).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    /// Waits until every item handed over so far is delivered.
    pub fn flush(&mut self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.blocking_send(ToTask::Flush(done)).is_ok());
        if sent && wait.blocking_recv().is_ok() {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    /// Closes the channel and waits until the task has delivered everything and ended.
    pub fn finish(&mut self) -> Result<()> {
        self.tx = None;
        match self.task.take() {
            None => Ok(()),
            Some(task) => runtime().block_on(task).unwrap_or_else(|e| {
                Err(Error::internal(format!("{} failed to run: {e}", self.what)))
            }),
        }
    }

    /// The task has stopped early: its error, or one that says so.
    fn stopped(&mut self) -> Error {
        self.tx = None;
        match self.task.take().map(|task| runtime().block_on(task)) {
            Some(Ok(Err(e))) => e,
            _ => Error::internal(format!("{} stopped", self.what)),
        }
    }
}

impl<T> Drop for Bridge<T> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A task that delivers items (counting them) and fails on the item 13.
    fn counting(delivered: Arc<AtomicUsize>) -> Bridge<u32> {
        Bridge::spawn("test writer", move |mut rx| async move {
            while let Some(message) = rx.recv().await {
                match message {
                    ToTask::Items(items) => {
                        for item in items {
                            if item == 13 {
                                return Err(Error::connector("item 13 refused"));
                            }
                            delivered.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    ToTask::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
            Ok(())
        })
    }

    #[test]
    fn a_flush_returns_once_everything_before_it_is_delivered() {
        let delivered = Arc::new(AtomicUsize::new(0));
        let mut bridge = counting(Arc::clone(&delivered));
        for chunk in 0..50 {
            bridge.send(vec![chunk * 100 + 1, chunk * 100 + 2]).unwrap();
        }
        bridge.flush().unwrap();
        assert_eq!(delivered.load(Ordering::SeqCst), 100);
        bridge.finish().unwrap();
    }

    #[test]
    fn the_task_s_error_is_the_writer_s() {
        let mut bridge = counting(Arc::new(AtomicUsize::new(0)));
        bridge.send(vec![1, 13]).unwrap();
        let err = bridge.flush().unwrap_err();
        assert_eq!(err.message(), "item 13 refused");
        // Once stopped, it stays stopped.
        assert!(bridge.send(vec![2]).is_err());
    }
}
