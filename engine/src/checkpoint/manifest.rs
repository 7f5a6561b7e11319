//! The manifest of a checkpoint, `_manifest.json`: a typed, versioned record of what the
//! checkpoint holds and of the operators whose state it is.
//!
//! Every field is required: a manifest that lacks one, has one too many, or has a value of
//! the wrong type does not parse, and the checkpoint counts as damaged, never as holding
//! a default. The operators are recorded by their stable ids (derived from the job's
//! structure, not from how it prints) with a description of what their state holds (the
//! window, the keys, the aggregates' state columns), so a restore can tell a harmless change
//! of the job (a sink's path, a filter's literal) from one its state cannot serve.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this Sluice writes and reads.
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub checkpoint: u64,
    /// The stateful operators of the job that took the checkpoint.
    pub operators: Vec<OperatorState>,
    pub parts: Vec<PartRecord>,
}

/// A stateful operator: its stable id and what its state holds, as `what → description`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorState {
    pub id: String,
    pub holds: BTreeMap<String, String>,
}

/// The snapshot of one operator instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRecord {
    /// The operator's stable id.
    pub operator: String,
    pub instance: u64,
    /// The watermark the instance had reached; `i64::MIN` when it had none.
    pub watermark: i64,
    /// A small opaque value (a reader's position, a sink's pending files), hexadecimal.
    pub blob: String,
    /// Arrow IPC files of its state tables.
    pub files: Vec<FileRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub table: String,
    /// The file's name inside the checkpoint folder.
    pub file: String,
    pub size: u64,
}

/// Why a checkpoint's state cannot be restored into a job; one sentence.
pub fn incompatibility(recorded: &[OperatorState], job: &[OperatorState]) -> Option<String> {
    for old in recorded {
        let Some(new) = job.iter().find(|o| o.id == old.id) else {
            return Some(format!(
                "it holds state of operator '{}', which the job no longer has",
                old.id
            ));
        };
        let keys: std::collections::BTreeSet<&String> =
            old.holds.keys().chain(new.holds.keys()).collect();
        for key in keys {
            let (was, is) = (old.holds.get(key), new.holds.get(key));
            if was != is {
                let show = |v: Option<&String>| v.map_or("nothing".to_string(), |v| v.clone());
                return Some(format!(
                    "operator '{}' kept {key} {} and the job now has {}",
                    old.id,
                    show(was),
                    show(is)
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str, holds: &[(&str, &str)]) -> OperatorState {
        OperatorState {
            id: id.into(),
            holds: holds
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_manifest_without_a_field_does_not_parse() {
        let manifest = Manifest {
            version: VERSION,
            checkpoint: 3,
            operators: vec![op("source tx", &[("connector", "kinesis")])],
            parts: vec![PartRecord {
                operator: "source tx".into(),
                instance: 0,
                watermark: i64::MIN,
                blob: "00".into(),
                files: vec![],
            }],
        };
        let value = serde_json::to_value(&manifest).unwrap();
        let back: Manifest = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back, manifest);
        let without = |path: &[&str], field: &str| {
            let mut v = value.clone();
            let mut at = &mut v;
            for p in path {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at.as_object_mut().unwrap().remove(field).unwrap();
            serde_json::from_value::<Manifest>(v)
        };
        assert!(without(&[], "version").is_err());
        assert!(without(&["parts", "0"], "watermark").is_err());
        assert!(without(&["parts", "0"], "files").is_err());
        assert!(without(&["operators", "0"], "holds").is_err());
        let mut extra = value.clone();
        extra["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Manifest>(extra).is_err());
    }

    #[test]
    fn a_changed_state_is_named_and_harmless_changes_pass() {
        let window = |size: &str| {
            op(
                "insert tx_metrics/aggregate 1",
                &[("window", size), ("keys", "currency STRING")],
            )
        };
        let recorded = vec![window("TUMBLE(1 min)"), op("sink tx_metrics 1", &[])];
        assert_eq!(incompatibility(&recorded, &recorded), None);
        // A new operator starts empty.
        let mut more = recorded.clone();
        more.push(op("source other", &[]));
        assert_eq!(incompatibility(&recorded, &more), None);
        let changed = vec![window("TUMBLE(5 min)"), op("sink tx_metrics 1", &[])];
        assert_eq!(
            incompatibility(&recorded, &changed).unwrap(),
            "operator 'insert tx_metrics/aggregate 1' kept window TUMBLE(1 min) and the job now has TUMBLE(5 min)"
        );
        assert_eq!(
            incompatibility(&recorded, &recorded[..1]).unwrap(),
            "it holds state of operator 'sink tx_metrics 1', which the job no longer has"
        );
    }
}
