//! The checkpointed position of a generating source (datagen, nexmark): one per parallel
//! instance, each instance generating its own share, so a job resumes only at the
//! parallelism of its checkpoint, each instance from its own position.

use serde::de::DeserializeOwned;
use sluice_engine::connector::SourceContext;
use sluice_engine::{Error, Result};

/// A position that says which instance, of how many, it belongs to.
pub trait InstancePosition: DeserializeOwned {
    fn instance(&self) -> usize;
    fn parallelism(&self) -> usize;
}

/// This instance's position in the checkpoint the job resumes from (None on a fresh
/// start), or why the checkpoint cannot be resumed: a damaged position, or another
/// parallelism. `connector` and `table` name them in the message.
pub fn restored<P: InstancePosition>(
    ctx: &SourceContext,
    connector: &str,
    table: &str,
) -> Result<Option<P>> {
    let parallelism = ctx.parallelism.max(1);
    let mut own = None;
    for blob in ctx.restored.iter().filter(|b| !b.is_empty()) {
        let position: P = serde_json::from_slice(blob).map_err(|e| {
            Error::connector(format!(
                "table '{table}': the checkpoint's {connector} position is damaged: {e}"
            ))
        })?;
        if position.parallelism() != parallelism {
            return Err(Error::config(format!(
                "table '{table}': a {connector} source resumes only at the parallelism of its \
                 checkpoint ({}), not {}; run with --fresh to start over",
                position.parallelism(),
                ctx.parallelism
            )));
        }
        if position.instance() == ctx.instance {
            own = Some(position);
        }
    }
    Ok(own)
}
