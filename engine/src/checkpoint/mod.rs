//! Checkpoints: what every operator instance snapshotted at one barrier.
//!
//! A checkpoint is a folder `chk-<id>` in the checkpoint store ([`CheckpointStore`]: a
//! local folder, or an S3 prefix provided by the connectors). Each state table of each
//! operator instance (partial aggregates, source partition watermarks) is one Arrow IPC
//! file; small values (a source reader's position, a sink's pending files, watermarks) live
//! in the [`manifest`], `_manifest.json`, which is written last, as one atomic object. A
//! folder without a manifest, with a manifest that does not parse, or with a state file
//! missing or of the wrong size is not a complete checkpoint: restoring skips it and says
//! so.
//!
//! State is matched to operators by their stable ids. The manifest records what each
//! stateful operator's state holds, so a job file changed in a way its state cannot serve
//! stops with one sentence naming the operator and the change, instead of restoring
//! garbage; other changes (a sink's path, a connector option, a filter) restore fine.

pub mod manifest;
mod store;

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::operator::StateSnapshot;
use manifest::{FileRecord, Manifest, OperatorState, PartRecord, VERSION};
pub use store::{CheckpointStore, LocalStore};

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
    /// The operator's stable id.
    pub operator: String,
    pub instance: usize,
    pub state: StateSnapshot,
}

/// A complete checkpoint read back, by operator: every instance's part, in instance order.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub id: u64,
    /// Where it is, for messages.
    pub path: String,
    pub parts: HashMap<String, Vec<StateSnapshot>>,
}

impl Restored {
    /// The parts of the operator with stable id `operator` (empty if it had none).
    pub fn operator(&self, operator: &str) -> &[StateSnapshot] {
        self.parts.get(operator).map(Vec::as_slice).unwrap_or(&[])
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

/// A name for a file that is safe in any store: the operator's id may hold any character.
fn file_name(operator: usize, instance: usize, table: &str) -> String {
    let table: String = table
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("op{operator}-i{instance}-{table}.arrow")
}

/// Writes checkpoint `id` of a job whose stateful operators are `operators`, with its
/// parts.
pub fn write(
    store: &dyn CheckpointStore,
    id: u64,
    operators: &[OperatorState],
    parts: &[Part],
) -> Result<Written> {
    let folder = folder_name(id);
    let mut records = Vec::new();
    let mut bytes = 0u64;
    for part in parts {
        let index = operators
            .iter()
            .position(|o| o.id == part.operator)
            .ok_or_else(|| {
                Error::internal(format!(
                    "checkpoint: operator '{}' has state but is not in the job's list",
                    part.operator
                ))
            })?;
        let mut files = Vec::new();
        for (table, batches) in &part.state.tables {
            if batches.is_empty() {
                continue;
            }
            let name = file_name(index, part.instance, table);
            let data = ipc_bytes(batches).map_err(|e| {
                Error::internal(format!("checkpoint: cannot encode {folder}/{name}: {e}"))
            })?;
            let size = data.len() as u64;
            store.put(&format!("{folder}/{name}"), data)?;
            bytes += size;
            files.push(FileRecord {
                table: table.clone(),
                file: name,
                size,
            });
        }
        bytes += part.state.blob.len() as u64;
        records.push(PartRecord {
            operator: part.operator.clone(),
            instance: part.instance as u64,
            watermark: part.state.watermark.unwrap_or(i64::MIN),
            blob: hex(&part.state.blob),
            files,
        });
    }
    let manifest = Manifest {
        version: VERSION,
        checkpoint: id,
        operators: operators.to_vec(),
        parts: records,
    };
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

/// Reads the manifest of checkpoint `id`; an error says why it is not complete.
fn read_manifest(store: &dyn CheckpointStore, id: u64) -> Result<Manifest> {
    let name = format!("{}/{MANIFEST}", folder_name(id));
    let text = store.get(&name)?.ok_or_else(|| {
        Error::connector(format!(
            "checkpoint: {} has no {MANIFEST}",
            checkpoint_path(store, id)
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| damaged(store, &name, e))?;
    if manifest.version != VERSION {
        return Err(Error::plan(format!(
            "checkpoint {} was written in checkpoint format {} and this Sluice reads format \
             {VERSION}; run with --fresh to start over",
            checkpoint_path(store, id),
            manifest.version
        )));
    }
    if manifest.checkpoint != id {
        return Err(damaged(
            store,
            &name,
            format!("it says it is checkpoint {}", manifest.checkpoint),
        ));
    }
    Ok(manifest)
}

/// Reads one state file of a part, checking its size against the manifest.
fn read_file(store: &dyn CheckpointStore, id: u64, file: &FileRecord) -> Result<Vec<RecordBatch>> {
    let path = checkpoint_path(store, id);
    let name = format!("{}/{}", folder_name(id), file.file);
    let data = store.get(&name)?.ok_or_else(|| {
        Error::connector(format!(
            "checkpoint: state file {path}/{} is missing",
            file.file
        ))
    })?;
    if data.len() as u64 != file.size {
        return Err(Error::connector(format!(
            "checkpoint: state file {path}/{} has {} bytes, not the {} its manifest says",
            file.file,
            data.len(),
            file.size
        )));
    }
    let reader =
        FileReader::try_new(Cursor::new(data), None).map_err(|e| damaged(store, &name, e))?;
    reader
        .collect::<std::result::Result<Vec<RecordBatch>, _>>()
        .map_err(|e| damaged(store, &name, e))
}

/// Reads checkpoint `id` for a job whose stateful operators are `job`; an error says why
/// it is not complete, or why its state does not fit the job.
pub fn read(store: &dyn CheckpointStore, id: u64, job: &[OperatorState]) -> Result<Restored> {
    let path = checkpoint_path(store, id);
    let manifest = read_manifest(store, id)?;
    if let Some(why) = manifest::incompatibility(&manifest.operators, job) {
        return Err(Error::plan(format!(
            "checkpoint {path} cannot be restored into this job: {why}; run with --fresh to \
             start over"
        )));
    }
    let manifest_name = format!("{}/{MANIFEST}", folder_name(id));
    let mut by_operator: HashMap<String, Vec<(u64, StateSnapshot)>> = HashMap::new();
    for part in manifest.parts {
        let mut state = StateSnapshot {
            watermark: (part.watermark != i64::MIN).then_some(part.watermark),
            tables: Vec::new(),
            blob: unhex(&part.blob)
                .ok_or_else(|| damaged(store, &manifest_name, "a value is not hexadecimal"))?,
        };
        for file in &part.files {
            state
                .tables
                .push((file.table.clone(), read_file(store, id, file)?));
        }
        by_operator
            .entry(part.operator)
            .or_default()
            .push((part.instance, state));
    }
    let mut restored = Restored {
        id,
        path,
        parts: HashMap::new(),
    };
    for (operator, mut states) in by_operator {
        states.sort_by_key(|(i, _)| *i);
        restored
            .parts
            .insert(operator, states.into_iter().map(|(_, s)| s).collect());
    }
    Ok(restored)
}

/// The newest complete checkpoint in the store; an incomplete newer one is skipped with a
/// message on stderr. A checkpoint whose state does not fit the job is an error.
pub fn latest(store: &dyn CheckpointStore, job: &[OperatorState]) -> Result<Option<Restored>> {
    for id in list(store)? {
        match read(store, id, job) {
            Ok(restored) => return Ok(Some(restored)),
            Err(e) if e.kind() == crate::error::ErrorKind::Plan => return Err(e),
            Err(e) => tracing::warn!(
                "checkpoint {} is incomplete ({e}); falling back to an older one",
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
    use std::collections::BTreeMap;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn state(values: &[i64], blob: &[u8]) -> StateSnapshot {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .unwrap();
        StateSnapshot {
            watermark: Some(values.len() as i64),
            tables: vec![("windows".into(), vec![batch])],
            blob: blob.to_vec(),
        }
    }

    fn op(id: &str, window: &str) -> OperatorState {
        OperatorState {
            id: id.into(),
            holds: BTreeMap::from([("window".to_string(), window.to_string())]),
        }
    }

    fn job() -> Vec<OperatorState> {
        vec![
            op("source tx", "-"),
            op("insert m/aggregate 1", "TUMBLE(1 min)"),
        ]
    }

    fn part(operator: &str, instance: usize, state: StateSnapshot) -> Part {
        Part {
            operator: operator.into(),
            instance,
            state,
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let parts = vec![
            part("insert m/aggregate 1", 1, state(&[3, 4], b"b")),
            part("insert m/aggregate 1", 0, state(&[1], b"")),
            part(
                "source tx",
                0,
                StateSnapshot {
                    blob: b"position".to_vec(),
                    ..Default::default()
                },
            ),
        ];
        let written = write(&*store, 7, &job(), &parts).unwrap();
        assert!(written.bytes > 0);
        let restored = latest(&*store, &job()).unwrap().unwrap();
        assert_eq!(restored.id, 7);
        let window = restored.operator("insert m/aggregate 1");
        assert_eq!(window.len(), 2);
        assert_eq!(window[0].watermark, Some(1));
        assert_eq!(window[1].blob, b"b");
        assert_eq!(window[1].table("windows").next().unwrap().num_rows(), 2);
        assert_eq!(restored.operator("source tx")[0].blob, b"position");
        assert_eq!(restored.operator("source tx")[0].watermark, None);
        assert!(restored.operator("other").is_empty());
    }

    #[test]
    fn damaged_checkpoints_are_skipped_and_changed_state_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let parts = |v: &[i64]| vec![part("insert m/aggregate 1", 0, state(v, b"x"))];
        write(&*store, 1, &job(), &parts(&[1])).unwrap();
        write(&*store, 2, &job(), &parts(&[1, 2])).unwrap();
        write(&*store, 3, &job(), &parts(&[1, 2, 3])).unwrap();
        // 3: a truncated manifest; 2: a missing state file; 4: no manifest at all.
        let manifest = dir.path().join("chk-3").join(MANIFEST);
        let text = std::fs::read(&manifest).unwrap();
        std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
        std::fs::remove_file(dir.path().join("chk-2/op1-i0-windows.arrow")).unwrap();
        std::fs::create_dir_all(dir.path().join("chk-4")).unwrap();
        let restored = latest(&*store, &job()).unwrap().unwrap();
        assert_eq!(restored.id, 1);
        let windows = &restored.operator("insert m/aggregate 1")[0];
        assert_eq!(windows.table("windows").next().unwrap().num_rows(), 1);

        let other = vec![
            op("source tx", "-"),
            op("insert m/aggregate 1", "TUMBLE(5 min)"),
        ];
        let err = latest(&*store, &other).unwrap_err();
        assert!(
            err.message().contains(
                "cannot be restored into this job: operator 'insert m/aggregate 1' kept window \
                 TUMBLE(1 min) and the job now has TUMBLE(5 min)"
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
