//! Checkpoint storage: what every operator instance snapshotted at one barrier.
//!
//! A checkpoint is a folder `chk-<id>` in the checkpoint store ([`CheckpointStore`]: a
//! local folder, or an S3 prefix provided by the connectors). Each operator instance with
//! Arrow state (partial aggregates, source partition watermarks) gets one Arrow IPC file;
//! small values (a source reader's position, a sink's pending files, watermarks) live in the
//! manifest, `_manifest.json`, which is written last, as one atomic object. A folder without
//! a manifest, with a manifest that does not parse, or with a state file missing or of the
//! wrong size is not a complete checkpoint: restoring skips it and says so.
//!
//! The manifest also records the job's shape (its nodes' names and parallelism), so that a
//! job file changed in a way its state cannot serve stops with a clear message instead of
//! restoring garbage.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::graph::NodeId;
use crate::operator::StateSnapshot;

/// The manifest's name inside a checkpoint folder.
const MANIFEST: &str = "_manifest.json";

/// `execution.checkpointing.*` and `state.checkpoints.*`.
#[derive(Clone)]
pub struct CheckpointSettings {
    /// `state.checkpoints.dir`: where checkpoints go.
    pub store: Arc<dyn CheckpointStore>,
    /// `execution.checkpointing.interval`.
    pub interval: Duration,
    /// `state.checkpoints.num-retained` (3): complete checkpoints kept.
    pub retained: usize,
    /// `execution.checkpointing.timeout` (10 min): a checkpoint not complete by then is
    /// abandoned and the job goes on.
    pub timeout: Duration,
}

impl std::fmt::Debug for CheckpointSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSettings")
            .field("store", &self.store.location())
            .field("interval", &self.interval)
            .field("retained", &self.retained)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One part of a checkpoint: the snapshot of one operator instance.
#[derive(Debug, Clone)]
pub struct Part {
    pub node: NodeId,
    pub instance: usize,
    pub state: StateSnapshot,
}

/// A complete checkpoint read back, by node: every instance's part, in instance order.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub id: u64,
    /// Where it is, for messages.
    pub path: String,
    pub parts: HashMap<NodeId, Vec<StateSnapshot>>,
}

impl Restored {
    /// The parts of `node` (empty if it had none).
    pub fn node(&self, node: NodeId) -> &[StateSnapshot] {
        self.parts.get(&node).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// What writing a checkpoint took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
}

/// The folder name of checkpoint `id`.
pub fn folder_name(id: u64) -> String {
    format!("chk-{id}")
}

/// Where checkpoint `id` is, for messages.
pub fn checkpoint_path(store: &dyn CheckpointStore, id: u64) -> String {
    format!(
        "{}/{}",
        store.location().trim_end_matches('/'),
        folder_name(id)
    )
}

fn damaged(store: &dyn CheckpointStore, name: &str, e: impl std::fmt::Display) -> Error {
    Error::connector(format!(
        "checkpoint: {}/{name} is damaged: {e}",
        store.location().trim_end_matches('/')
    ))
}

/// Encodes batches as an Arrow IPC file.
fn ipc_bytes(batches: &[RecordBatch]) -> std::result::Result<Vec<u8>, arrow::error::ArrowError> {
    let mut bytes = Vec::new();
    if let Some(first) = batches.first() {
        let mut writer = FileWriter::try_new(&mut bytes, &first.schema())?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    Ok(bytes)
}

/// Writes checkpoint `id` of a job of shape `job` (one line per node) with its parts.
pub fn write(
    store: &dyn CheckpointStore,
    id: u64,
    job: &[String],
    parts: &[Part],
) -> Result<Written> {
    let folder = folder_name(id);
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    for part in parts {
        let mut entry = json!({
            "node": part.node,
            "instance": part.instance,
            "watermark": part.state.watermark,
            "blob": hex(&part.state.blob),
        });
        bytes += part.state.blob.len() as u64;
        if !part.state.batches.is_empty() {
            let name = format!("n{}-i{}.arrow", part.node, part.instance);
            let file = format!("{folder}/{name}");
            let data = ipc_bytes(&part.state.batches)
                .map_err(|e| Error::internal(format!("checkpoint: cannot encode {file}: {e}")))?;
            let size = data.len() as u64;
            store.put(&file, data)?;
            bytes += size;
            entry["file"] = json!(name);
            entry["size"] = json!(size);
        }
        entries.push(entry);
    }
    let manifest = json!({"checkpoint": id, "job": job, "parts": entries});
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::internal(format!("checkpoint: manifest: {e}")))?;
    let size = text.len() as u64;
    store.put(&format!("{folder}/{MANIFEST}"), text)?;
    Ok(Written {
        bytes: bytes + size,
    })
}

/// Checkpoint ids found in the store (complete or not), newest first.
pub fn list(store: &dyn CheckpointStore) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = store
        .folders()?
        .iter()
        .filter_map(|n| n.strip_prefix("chk-").and_then(|n| n.parse().ok()))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Reads checkpoint `id`; an error says why it is not complete.
pub fn read(store: &dyn CheckpointStore, id: u64, job: &[String]) -> Result<Restored> {
    let folder = folder_name(id);
    let path = checkpoint_path(store, id);
    let manifest_name = format!("{folder}/{MANIFEST}");
    let text = store
        .get(&manifest_name)?
        .ok_or_else(|| Error::connector(format!("checkpoint: {path} has no {MANIFEST}")))?;
    let manifest: Value =
        serde_json::from_slice(&text).map_err(|e| damaged(store, &manifest_name, e))?;
    let recorded: Vec<String> = manifest["job"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if recorded != job {
        let differs = recorded
            .iter()
            .zip(job)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("'{a}' is now '{b}'"))
            .unwrap_or_else(|| {
                format!(
                    "it had {} operators, the job has {}",
                    recorded.len(),
                    job.len()
                )
            });
        return Err(Error::plan(format!(
            "checkpoint {path} was taken by a different job ({differs}): its state cannot be \
             restored into this one; run with --fresh to start over"
        )));
    }
    let mut restored = Restored {
        id: manifest["checkpoint"].as_u64().unwrap_or(id),
        path: path.clone(),
        parts: HashMap::new(),
    };
    let parts = manifest["parts"].as_array().cloned().unwrap_or_default();
    let mut by_node: HashMap<NodeId, Vec<(usize, StateSnapshot)>> = HashMap::new();
    for entry in parts {
        let node = entry["node"].as_u64().unwrap_or_default() as NodeId;
        let instance = entry["instance"].as_u64().unwrap_or_default() as usize;
        let mut state = StateSnapshot {
            watermark: entry["watermark"].as_i64(),
            batches: Vec::new(),
            blob: unhex(entry["blob"].as_str().unwrap_or_default())
                .ok_or_else(|| damaged(store, &manifest_name, "a value is not hexadecimal"))?,
        };
        if let Some(name) = entry["file"].as_str() {
            let file = format!("{folder}/{name}");
            let data = store.get(&file)?.ok_or_else(|| {
                Error::connector(format!("checkpoint: state file {path}/{name} is missing"))
            })?;
            let size = data.len() as u64;
            if Some(size) != entry["size"].as_u64() {
                return Err(Error::connector(format!(
                    "checkpoint: state file {path}/{name} has {size} bytes, not the {} its \
                     manifest says",
                    entry["size"]
                )));
            }
            let reader = FileReader::try_new(Cursor::new(data), None)
                .map_err(|e| damaged(store, &file, e))?;
            state.batches = reader
                .collect::<std::result::Result<Vec<RecordBatch>, _>>()
                .map_err(|e| damaged(store, &file, e))?;
        }
        by_node.entry(node).or_default().push((instance, state));
    }
    for (node, mut states) in by_node {
        states.sort_by_key(|(i, _)| *i);
        restored
            .parts
            .insert(node, states.into_iter().map(|(_, s)| s).collect());
    }
    Ok(restored)
}

/// The newest complete checkpoint in the store; an incomplete newer one is skipped with a
/// message on stderr. A checkpoint of a different job is an error.
pub fn latest(store: &dyn CheckpointStore, job: &[String]) -> Result<Option<Restored>> {
    for id in list(store)? {
        match read(store, id, job) {
            Ok(restored) => return Ok(Some(restored)),
            Err(e) if e.kind() == crate::error::ErrorKind::Plan => return Err(e),
            Err(e) => eprintln!(
                "sluice: checkpoint {} is incomplete ({e}); falling back to an older one",
                checkpoint_path(store, id)
            ),
        }
    }
    Ok(None)
}

/// Keeps the `keep` newest checkpoints that have a manifest and removes every older folder;
/// newer folders without a manifest (a checkpoint being written) stay. Best effort: a
/// folder that cannot be removed now is removed by a later call.
pub fn retain(store: &dyn CheckpointStore, keep: usize) {
    let mut complete = 0;
    for id in list(store).unwrap_or_default() {
        let is_complete = matches!(
            store.get(&format!("{}/{MANIFEST}", folder_name(id))),
            Ok(Some(_))
        );
        if is_complete && complete < keep {
            complete += 1;
            continue;
        }
        if complete > 0 {
            let _ = store.remove_folder(&folder_name(id));
        }
    }
}

/// Removes every checkpoint (a job that ended has no use for them).
pub fn remove_all(store: &dyn CheckpointStore) -> Result<()> {
    for id in list(store)? {
        store.remove_folder(&folder_name(id))?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn state(values: &[i64], blob: &[u8]) -> StateSnapshot {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .unwrap();
        StateSnapshot {
            watermark: Some(values.len() as i64),
            batches: vec![batch],
            blob: blob.to_vec(),
        }
    }

    fn job() -> Vec<String> {
        vec!["source tx (2)".into(), "window (2)".into()]
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let parts = vec![
            Part {
                node: 1,
                instance: 1,
                state: state(&[3, 4], b"b"),
            },
            Part {
                node: 1,
                instance: 0,
                state: state(&[1], b""),
            },
            Part {
                node: 0,
                instance: 0,
                state: StateSnapshot {
                    blob: b"position".to_vec(),
                    ..Default::default()
                },
            },
        ];
        let written = write(&*store, 7, &job(), &parts).unwrap();
        assert!(written.bytes > 0);
        let restored = latest(&*store, &job()).unwrap().unwrap();
        assert_eq!(restored.id, 7);
        let window = restored.node(1);
        assert_eq!(window.len(), 2);
        assert_eq!(window[0].watermark, Some(1));
        assert_eq!(window[1].blob, b"b");
        assert_eq!(window[1].batches[0].num_rows(), 2);
        assert_eq!(restored.node(0)[0].blob, b"position");
        assert!(restored.node(5).is_empty());
    }

    #[test]
    fn damaged_checkpoints_are_skipped_and_other_jobs_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let parts = |v: &[i64]| {
            vec![Part {
                node: 1,
                instance: 0,
                state: state(v, b"x"),
            }]
        };
        write(&*store, 1, &job(), &parts(&[1])).unwrap();
        write(&*store, 2, &job(), &parts(&[1, 2])).unwrap();
        write(&*store, 3, &job(), &parts(&[1, 2, 3])).unwrap();
        // 3: a truncated manifest; 2: a missing state file; 4: no manifest at all.
        let manifest = dir.path().join("chk-3").join(MANIFEST);
        let text = std::fs::read(&manifest).unwrap();
        std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
        std::fs::remove_file(dir.path().join("chk-2/n1-i0.arrow")).unwrap();
        std::fs::create_dir_all(dir.path().join("chk-4")).unwrap();
        let restored = latest(&*store, &job()).unwrap().unwrap();
        assert_eq!(restored.id, 1);
        assert_eq!(restored.node(1)[0].batches[0].num_rows(), 1);

        let other = vec![
            "source tx (2)".to_string(),
            "window by card (2)".to_string(),
        ];
        let err = latest(&*store, &other).unwrap_err();
        assert!(
            err.message().contains(
                "was taken by a different job ('window (2)' is now 'window by card (2)')"
            ),
            "{err}"
        );
    }

    #[test]
    fn only_the_newest_checkpoints_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        for id in 1..=4 {
            write(&*store, id, &job(), &[]).unwrap();
        }
        // A newer folder without a manifest is a checkpoint being written: it stays.
        std::fs::create_dir_all(dir.path().join("chk-5")).unwrap();
        retain(&*store, 2);
        assert_eq!(list(&*store).unwrap(), vec![5, 4, 3]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(b"\x00\xffab")), Some(b"\x00\xffab".to_vec()));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
