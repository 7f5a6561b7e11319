//! Checkpoint storage: what every operator instance snapshotted at one barrier, on disk.
//!
//! A checkpoint is a folder `chk-<id>` under the checkpoint directory. Each operator instance
//! with Arrow state (partial aggregates, source partition watermarks) gets one Arrow IPC
//! file; small values (a source reader's position, a sink's pending files, watermarks) live
//! in the manifest, `_manifest.json`, which is written last, under a temporary name and then
//! renamed. A folder without a manifest, with a manifest that does not parse, or with a
//! state file missing or of the wrong size is not a complete checkpoint: restoring skips it
//! and says so.
//!
//! The manifest also records the job's shape (its nodes' names and parallelism), so that a
//! job file changed in a way its state cannot serve stops with a clear message instead of
//! restoring garbage.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// `state.checkpoints.dir`: where checkpoints go (a local folder).
    pub dir: PathBuf,
    /// `execution.checkpointing.interval`.
    pub interval: Duration,
    /// `state.checkpoints.num-retained` (3): complete checkpoints kept.
    pub retained: usize,
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
    pub path: PathBuf,
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

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::connector(format!("checkpoint: cannot {what} {}: {e}", path.display()))
}

/// The folder of checkpoint `id`.
pub fn checkpoint_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("chk-{id}"))
}

/// Writes checkpoint `id` of a job of shape `job` (one line per node) with its parts.
pub fn write(dir: &Path, id: u64, job: &[String], parts: &[Part]) -> Result<Written> {
    let folder = checkpoint_path(dir, id);
    std::fs::create_dir_all(&folder).map_err(|e| io_error("create", &folder, e))?;
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
        if let Some(first) = part.state.batches.first() {
            let name = format!("n{}-i{}.arrow", part.node, part.instance);
            let path = folder.join(&name);
            let file = File::create(&path).map_err(|e| io_error("create", &path, e))?;
            let mut writer = FileWriter::try_new(BufWriter::new(file), &first.schema())
                .map_err(|e| io_error("write", &path, e))?;
            for batch in &part.state.batches {
                writer
                    .write(batch)
                    .map_err(|e| io_error("write", &path, e))?;
            }
            writer.finish().map_err(|e| io_error("write", &path, e))?;
            let mut inner = writer
                .into_inner()
                .map_err(|e| io_error("write", &path, e))?;
            inner.flush().map_err(|e| io_error("write", &path, e))?;
            let file = inner
                .into_inner()
                .map_err(|e| io_error("write", &path, e.error()))?;
            file.sync_all().map_err(|e| io_error("sync", &path, e))?;
            let size = std::fs::metadata(&path)
                .map_err(|e| io_error("read", &path, e))?
                .len();
            bytes += size;
            entry["file"] = json!(name);
            entry["size"] = json!(size);
        }
        entries.push(entry);
    }
    let manifest = json!({"checkpoint": id, "job": job, "parts": entries});
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| io_error("write", &folder, e))?;
    let temp = folder.join(format!("{MANIFEST}.tmp"));
    let path = folder.join(MANIFEST);
    let mut file = File::create(&temp).map_err(|e| io_error("create", &temp, e))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| io_error("rename", &temp, e))?;
    // The rename is durable once the folder is.
    if let Ok(d) = File::open(&folder) {
        let _ = d.sync_all();
    }
    Ok(Written {
        bytes: bytes + text.len() as u64,
    })
}

/// Checkpoint ids found in `dir` (complete or not), newest first.
pub fn list(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Reads checkpoint folder `path`; an error says why it is not complete.
pub fn read(path: &Path, job: &[String]) -> Result<Restored> {
    let manifest_path = path.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|e| io_error("read", &manifest_path, e))?;
    let manifest: Value = serde_json::from_slice(&text).map_err(|e| {
        Error::connector(format!(
            "checkpoint: {} is damaged: {e}",
            manifest_path.display()
        ))
    })?;
    let id = manifest["checkpoint"].as_u64().unwrap_or_default();
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
            "checkpoint {} was taken by a different job ({differs}): its state cannot be \
             restored into this one; run with --fresh to start over",
            path.display()
        )));
    }
    let mut restored = Restored {
        id,
        path: path.to_path_buf(),
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
            blob: unhex(entry["blob"].as_str().unwrap_or_default()).ok_or_else(|| {
                Error::connector(format!(
                    "checkpoint: {} is damaged: a value is not hexadecimal",
                    manifest_path.display()
                ))
            })?,
        };
        if let Some(name) = entry["file"].as_str() {
            let file_path = path.join(name);
            let size = std::fs::metadata(&file_path)
                .map_err(|_| {
                    Error::connector(format!(
                        "checkpoint: state file {} is missing",
                        file_path.display()
                    ))
                })?
                .len();
            if Some(size) != entry["size"].as_u64() {
                return Err(Error::connector(format!(
                    "checkpoint: state file {} has {size} bytes, not the {} its manifest says",
                    file_path.display(),
                    entry["size"]
                )));
            }
            let file = File::open(&file_path).map_err(|e| io_error("read", &file_path, e))?;
            let reader = FileReader::try_new(BufReader::new(file), None)
                .map_err(|e| io_error("read", &file_path, e))?;
            state.batches = reader
                .collect::<std::result::Result<Vec<RecordBatch>, _>>()
                .map_err(|e| io_error("read", &file_path, e))?;
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

/// The newest complete checkpoint in `dir`; an incomplete newer one is skipped with a
/// message on stderr. A checkpoint of a different job is an error.
pub fn latest(dir: &Path, job: &[String]) -> Result<Option<Restored>> {
    for id in list(dir) {
        let path = checkpoint_path(dir, id);
        match read(&path, job) {
            Ok(restored) => return Ok(Some(restored)),
            Err(e) if e.kind() == crate::error::ErrorKind::Plan => return Err(e),
            Err(e) => eprintln!(
                "sluice: checkpoint {} is incomplete ({e}); falling back to an older one",
                path.display()
            ),
        }
    }
    Ok(None)
}

/// Keeps the `keep` newest checkpoints that have a manifest and removes every older folder;
/// newer folders without a manifest (a checkpoint being written) stay.
pub fn retain(dir: &Path, keep: usize) {
    let mut complete = 0;
    for id in list(dir) {
        let path = checkpoint_path(dir, id);
        let is_complete = path.join(MANIFEST).exists();
        if is_complete && complete < keep {
            complete += 1;
            continue;
        }
        if complete > 0 {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
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
    use std::sync::Arc;

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
        let written = write(dir.path(), 7, &job(), &parts).unwrap();
        assert!(written.bytes > 0);
        let restored = latest(dir.path(), &job()).unwrap().unwrap();
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
        let parts = |v: &[i64]| {
            vec![Part {
                node: 1,
                instance: 0,
                state: state(v, b"x"),
            }]
        };
        write(dir.path(), 1, &job(), &parts(&[1])).unwrap();
        write(dir.path(), 2, &job(), &parts(&[1, 2])).unwrap();
        write(dir.path(), 3, &job(), &parts(&[1, 2, 3])).unwrap();
        // 3: a truncated manifest; 2: a missing state file; 4: no manifest at all.
        let manifest = checkpoint_path(dir.path(), 3).join(MANIFEST);
        let text = std::fs::read(&manifest).unwrap();
        std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
        std::fs::remove_file(checkpoint_path(dir.path(), 2).join("n1-i0.arrow")).unwrap();
        std::fs::create_dir_all(checkpoint_path(dir.path(), 4)).unwrap();
        let restored = latest(dir.path(), &job()).unwrap().unwrap();
        assert_eq!(restored.id, 1);
        assert_eq!(restored.node(1)[0].batches[0].num_rows(), 1);

        let other = vec![
            "source tx (2)".to_string(),
            "window by card (2)".to_string(),
        ];
        let err = latest(dir.path(), &other).unwrap_err();
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
        for id in 1..=4 {
            write(dir.path(), id, &job(), &[]).unwrap();
        }
        // A newer folder without a manifest is a checkpoint being written: it stays.
        std::fs::create_dir_all(checkpoint_path(dir.path(), 5)).unwrap();
        retain(dir.path(), 2);
        assert_eq!(list(dir.path()), vec![5, 4, 3]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(b"\x00\xffab")), Some(b"\x00\xffab".to_vec()));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
