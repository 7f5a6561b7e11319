//! What `sluice run` and the server share to start a job: reading the job file, `--set`
//! values, and the checkpoint a run resumes from.

use std::path::PathBuf;

use sluice_engine::checkpoint::manifest::OperatorState;
use sluice_engine::checkpoint::{self, CheckpointSettings};
use sluice_engine::graph::{Edge, Graph};
use sluice_engine::metrics::JobMetrics;
use sluice_engine::runtime::CheckpointRun;
use sluice_engine::{Error, Result};
use sluice_sql::SourceFile;

pub fn read_job(path: &PathBuf) -> Result<SourceFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read job file {}: {e}", path.display())))?;
    Ok(SourceFile {
        path: path.display().to_string(),
        text,
    })
}

pub fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Error::config(format!("--set '{s}': expected KEY=VALUE")))
        })
        .collect()
}

/// How `run` treats the checkpoints in the checkpoint folder.
pub struct Resume {
    pub from_checkpoint: Option<String>,
    pub fresh: bool,
}

/// The checkpointing of a run: which checkpoint it resumes from, if any.
pub fn checkpoint_run(
    settings: Option<CheckpointSettings>,
    operators: &[OperatorState],
    resume: Resume,
) -> Result<Option<CheckpointRun>> {
    let Some(settings) = settings else {
        if resume.from_checkpoint.is_some() {
            return Err(Error::config(
                "--from-checkpoint needs checkpoints: set 'execution.checkpointing.interval' \
                 and 'state.checkpoints.dir'",
            ));
        }
        return Ok(None);
    };
    let restored = match (resume.from_checkpoint, resume.fresh) {
        (_, true) => None,
        (Some(path), false) => Some(read_checkpoint(&path, operators)?),
        (None, false) => checkpoint::latest(&*settings.store, operators)?,
    };
    if let Some(r) = &restored {
        eprintln!("sluice: resuming from checkpoint {}", r.path);
    }
    Ok(Some(CheckpointRun { settings, restored }))
}

/// Reads the checkpoint `--from-checkpoint` names: a `chk-<id>` folder, local or on S3.
pub fn read_checkpoint(path: &str, operators: &[OperatorState]) -> Result<checkpoint::Restored> {
    let path = path.trim_end_matches('/');
    let (store, folder) = path.rsplit_once('/').unwrap_or((".", path));
    let id = folder
        .strip_prefix("chk-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::config(format!(
                "--from-checkpoint {path}: not a checkpoint folder (chk-<number>)"
            ))
        })?;
    let store =
        sluice_connectors::checkpoint_store::open(if store.is_empty() { "/" } else { store })?;
    checkpoint::read(&*store, id, operators)
}

/// One node of a running job's graph, for the API.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub uid: String,
    pub name: String,
    pub parallelism: usize,
    /// The node feeding this one and how (`forward`, `hash`, `single`).
    pub input: Option<(String, &'static str)>,
}

/// The nodes of `graph` as the API and the metrics show them.
pub fn graph_view(graph: &Graph) -> Vec<NodeView> {
    graph
        .nodes
        .iter()
        .map(|n| NodeView {
            uid: n.uid.clone(),
            name: n.name.clone(),
            parallelism: n.parallelism,
            input: n.input.as_ref().map(|(id, edge)| {
                let kind = match edge {
                    Edge::Forward => "forward",
                    Edge::Hash(_) => "hash",
                    Edge::Single => "single",
                };
                (graph.nodes[*id].uid.clone(), kind)
            }),
        })
        .collect()
}

/// What one node received and emitted so far, over all its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFigures {
    /// What its input node emitted (None for a source).
    pub records_in: Option<u64>,
    pub bytes_in: Option<u64>,
    pub records_out: u64,
    /// Arrow bytes in memory.
    pub bytes_out: u64,
}

/// The figures of every node of `graph`, in its order.
pub fn node_figures(graph: &[NodeView], metrics: &JobMetrics) -> Vec<NodeFigures> {
    let emitted = metrics.operators();
    let out = |uid: &str| emitted.get(uid).copied().unwrap_or((0, 0));
    graph
        .iter()
        .map(|n| {
            let input = n.input.as_ref().map(|(from, _)| out(from));
            NodeFigures {
                records_in: input.map(|i| i.0),
                bytes_in: input.map(|i| i.1),
                records_out: out(&n.uid).0,
                bytes_out: out(&n.uid).1,
            }
        })
        .collect()
}
