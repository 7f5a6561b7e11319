//! Shard discovery and assignment: the part of a Kinesis source that all its parallel
//! instances share (Flink calls it the split enumerator).
//!
//! The coordinator lists the stream's shards with ListShards at start and then every
//! discovery interval (and at once when a shard finishes, so children are picked up
//! promptly). A shard becomes ready when each of its parents that is still listed has
//! been read to its end; ready shards go to the instance that reads the fewest shards.
//! Reading parents before children keeps the records of one partition key in order across
//! a split or a merge.
//!
//! Where a shard starts: a shard of the first listing starts at the table's
//! `source.init.position`; a shard found later (a child) at TRIM_HORIZON, so nothing written
//! to it is skipped; after a restore, every shard the checkpoint knows resumes after its last
//! delivered sequence number, and every other at TRIM_HORIZON.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use serde::{Deserialize, Serialize};
use sluice_engine::{Error, Result};

use super::config::{Bound, InitialPosition, KinesisSourceConfig, StreamRef};
use crate::aws::{retry, Failure};

/// Where a shard's reading (re)starts; the checkpointed state of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Latest,
    TrimHorizon,
    /// Epoch milliseconds.
    AtTimestamp(i64),
    /// After this sequence number: the last record delivered.
    After(String),
    /// Read to its end; never read again.
    Finished,
}

impl Position {
    pub fn initial(p: InitialPosition) -> Self {
        match p {
            InitialPosition::Latest => Position::Latest,
            InitialPosition::TrimHorizon => Position::TrimHorizon,
            InitialPosition::AtTimestamp(t) => Position::AtTimestamp(t.timestamp_millis()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Position::Latest => "LATEST".into(),
            Position::TrimHorizon => "TRIM_HORIZON".into(),
            Position::AtTimestamp(ms) => format!("AT_TIMESTAMP {ms}"),
            Position::After(seq) => format!("after sequence number {seq}"),
            Position::Finished => "its end".into(),
        }
    }
}

/// A reader's checkpointed state: the position of every shard it has been given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub shards: BTreeMap<String, Position>,
}

impl Snapshot {
    /// Merges the snapshots of all instances. A shard in two of them (it moved between
    /// instances) keeps the furthest position: finished, then a sequence number.
    pub fn merge(parts: &[Vec<u8>], table: &str) -> Result<Self> {
        let mut merged = Snapshot::default();
        for part in parts {
            let snapshot: Snapshot = serde_json::from_slice(part).map_err(|e| {
                Error::data(format!(
                    "table '{table}': the checkpointed Kinesis position is unreadable: {e}"
                ))
            })?;
            for (shard, position) in snapshot.shards {
                let slot = merged.shards.entry(shard).or_insert(position.clone());
                let rank = |p: &Position| match p {
                    Position::Finished => 2,
                    Position::After(_) => 1,
                    _ => 0,
                };
                if rank(&position) > rank(slot) {
                    *slot = position;
                }
            }
        }
        Ok(merged)
    }
}

/// A shard handed to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The shard's partition number inside the engine (unique within the source).
    pub partition: usize,
    pub shard_id: String,
    pub start: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Known, waiting for its parents.
    Waiting,
    Assigned(usize),
    Finished,
}

#[derive(Debug)]
struct Entry {
    partition: usize,
    parents: Vec<String>,
    start: Position,
    status: Status,
}

#[derive(Debug, Default)]
struct State {
    shards: BTreeMap<String, Entry>,
    queues: Vec<Vec<Assignment>>,
    load: Vec<usize>,
    listings: u64,
    /// Shards finished so far, and how many had finished when the last listing started:
    /// a bounded read is done only when a listing after the last finish found nothing new.
    finishes: u64,
    finishes_at_last_listing: u64,
    error: Option<Error>,
}

/// The shared part of one Kinesis source.
pub struct Coordinator {
    table: String,
    stream: StreamRef,
    client: Client,
    initial: Position,
    restored: Option<Snapshot>,
    bound: Bound,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

impl Coordinator {
    /// Lists the stream and assigns its first shards; fails when the stream is missing or
    /// cannot be read.
    pub async fn start(
        table: String,
        config: &KinesisSourceConfig,
        client: Client,
        restored: Option<Snapshot>,
        parallelism: usize,
    ) -> Result<Arc<Self>> {
        let coordinator = Arc::new(Self {
            table,
            stream: config.stream.clone(),
            client,
            initial: Position::initial(config.initial_position),
            restored,
            bound: config.bound,
            state: Mutex::new(State {
                queues: vec![Vec::new(); parallelism],
                load: vec![0; parallelism],
                ..State::default()
            }),
            wake: tokio::sync::Notify::new(),
        });
        coordinator.discover().await?;
        tokio::spawn(discovery_loop(
            Arc::downgrade(&coordinator),
            config.discovery_interval,
        ));
        Ok(coordinator)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Takes the shards newly assigned to `instance`.
    pub fn take_assignments(&self, instance: usize) -> Vec<Assignment> {
        std::mem::take(&mut self.state().queues[instance])
    }

    /// The error discovery ran into, if any: every reader stops with it.
    pub fn error(&self) -> Option<Error> {
        self.state().error.clone()
    }

    /// A reader delivered the last record of `shard`: its children may start.
    pub fn finished(&self, shard: &str) {
        {
            let mut guard = self.state();
            let state = &mut *guard;
            if let Some(entry) = state.shards.get_mut(shard) {
                if let Status::Assigned(i) = entry.status {
                    state.load[i] -= 1;
                }
                entry.status = Status::Finished;
            }
            state.finishes += 1;
        }
        self.wake.notify_one();
    }

    /// A bounded read is complete: every shard is finished, and a listing made after the
    /// last one finished found no new shard.
    pub fn bounded_done(&self) -> bool {
        let state = self.state();
        self.bound == Bound::Latest
            && state.finishes_at_last_listing == state.finishes
            && state.shards.values().all(|e| e.status == Status::Finished)
            && state.queues.iter().all(Vec::is_empty)
    }

    /// Lists the shards and assigns the ready ones.
    async fn discover(&self) -> Result<()> {
        let finishes = self.state().finishes;
        let shards = self.list_shards().await?;
        let mut state = self.state();
        let state = &mut *state;
        let first = state.listings == 0;
        state.listings += 1;
        state.finishes_at_last_listing = finishes;
        for shard in shards {
            if state.shards.contains_key(shard.shard_id()) {
                continue;
            }
            let start = start_position(
                shard.shard_id(),
                self.restored.as_ref(),
                first.then_some(&self.initial),
            );
            let parents = shard
                .parent_shard_id()
                .into_iter()
                .chain(shard.adjacent_parent_shard_id())
                .map(str::to_string)
                .collect();
            let status = if start == Position::Finished {
                Status::Finished
            } else {
                Status::Waiting
            };
            let partition = state.shards.len();
            state.shards.insert(
                shard.shard_id().to_string(),
                Entry {
                    partition,
                    parents,
                    start,
                    status,
                },
            );
        }
        // Assign every waiting shard whose listed parents are all finished.
        let ready: Vec<String> = state
            .shards
            .iter()
            .filter(|(_, e)| e.status == Status::Waiting)
            .filter(|(_, e)| {
                e.parents.iter().all(|p| {
                    state
                        .shards
                        .get(p)
                        .is_none_or(|parent| parent.status == Status::Finished)
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            let instance = (0..state.load.len())
                .min_by_key(|&i| (state.load[i], i))
                .unwrap_or(0);
            let entry = state.shards.get_mut(&id).expect("listed above");
            entry.status = Status::Assigned(instance);
            state.load[instance] += 1;
            state.queues[instance].push(Assignment {
                partition: entry.partition,
                shard_id: id,
                start: entry.start.clone(),
            });
        }
        Ok(())
    }

    /// Every shard of the stream, open and closed, following ListShards' pages.
    async fn list_shards(&self) -> Result<Vec<aws_sdk_kinesis::types::Shard>> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let what = format!("table '{}': ListShards", self.table);
            let page = retry(&what, None, || {
                // One page holds up to 10,000 shards; later pages take only the token.
                let mut call = self.client.list_shards().max_results(10_000);
                call = match (&token, &self.stream) {
                    (Some(t), _) => call.next_token(t),
                    (None, StreamRef::Name(n)) => call.stream_name(n),
                    (None, StreamRef::Arn(a)) => call.stream_arn(a),
                };
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            })
            .await
            .map_err(|f| self.stream_error("ListShards", &f))?;
            shards.extend(page.shards().iter().cloned());
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(shards),
            }
        }
    }

    /// The one sentence a failed stream-level call stops the job with.
    pub fn stream_error(&self, call: &str, failure: &Failure) -> Error {
        stream_error(&self.table, &self.stream, call, failure)
    }
}

/// Where a newly listed shard starts: where the checkpoint left it (a shard the checkpoint
/// does not know came later: TRIM_HORIZON); on a fresh start, at the table's position if it
/// is in the first listing (`initial` given), else at TRIM_HORIZON: a shard that appears
/// while the job runs (a child of a split or merge) holds only records the job has not seen.
fn start_position(
    shard: &str,
    restored: Option<&Snapshot>,
    initial: Option<&Position>,
) -> Position {
    match (restored, initial) {
        (Some(r), _) => r
            .shards
            .get(shard)
            .cloned()
            .unwrap_or(Position::TrimHorizon),
        (None, Some(initial)) => initial.clone(),
        (None, None) => Position::TrimHorizon,
    }
}

/// The one sentence a failed call on `stream` stops the job with.
pub fn stream_error(table: &str, stream: &StreamRef, call: &str, failure: &Failure) -> Error {
    let name = stream.name();
    match failure {
        Failure::NotFound(_) => Error::connector(format!(
            "table '{table}': Kinesis stream '{name}' does not exist ({call} failed)"
        )),
        f if f.is_fatal("AccessDeniedException")
            || f.is_fatal("AccessDenied")
            || f.is_fatal("UnrecognizedClientException") =>
        {
            Error::connector(format!(
                "table '{table}': access to Kinesis stream '{name}' was denied ({call}): {}",
                f.describe()
            ))
        }
        other => Error::connector(format!(
            "table '{table}': Kinesis stream '{name}': {call} failed: {}",
            other.describe()
        )),
    }
}

/// Lists the stream every `interval`, or sooner when a shard finishes, until the source is
/// gone or a bounded read is complete.
async fn discovery_loop(coordinator: Weak<Coordinator>, interval: Duration) {
    loop {
        let notified = match coordinator.upgrade() {
            None => return,
            Some(c) => {
                if c.bounded_done() {
                    return;
                }
                // Wait on a clone of the Arc only as long as the wait lasts.
                let c2 = Arc::clone(&c);
                drop(c);
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = c2.wake.notified() => {}
                }
                c2
            }
        };
        if Arc::strong_count(&notified) == 1 {
            return;
        }
        if let Err(e) = notified.discover().await {
            let mut state = notified.state();
            state.error.get_or_insert(e);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_found_later_start_at_trim_horizon() {
        let latest = Position::Latest;
        assert_eq!(start_position("s0", None, Some(&latest)), Position::Latest);
        assert_eq!(start_position("s3", None, None), Position::TrimHorizon);
        let restored = Snapshot {
            shards: [("s0".to_string(), Position::After("7".into()))].into(),
        };
        assert_eq!(
            start_position("s0", Some(&restored), Some(&latest)),
            Position::After("7".into())
        );
        assert_eq!(
            start_position("s1", Some(&restored), Some(&latest)),
            Position::TrimHorizon
        );
    }

    #[test]
    fn snapshots_merge_to_the_furthest_position() {
        let a = Snapshot {
            shards: [
                ("s0".to_string(), Position::After("10".into())),
                ("s1".to_string(), Position::TrimHorizon),
            ]
            .into(),
        };
        let b = Snapshot {
            shards: [
                ("s1".to_string(), Position::After("5".into())),
                ("s2".to_string(), Position::Finished),
            ]
            .into(),
        };
        let parts = vec![
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap(),
        ];
        let merged = Snapshot::merge(&parts, "tx").unwrap();
        assert_eq!(merged.shards["s0"], Position::After("10".into()));
        assert_eq!(merged.shards["s1"], Position::After("5".into()));
        assert_eq!(merged.shards["s2"], Position::Finished);
        assert!(Snapshot::merge(&[b"nonsense".to_vec()], "tx").is_err());
    }
}
