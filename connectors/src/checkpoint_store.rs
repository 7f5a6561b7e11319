//! Where `state.checkpoints.dir` puts checkpoints: a local folder (`/path`, `file:///path`)
//! or an S3 prefix (`s3://bucket/prefix`, through the same client setup as the S3 sink:
//! the standard credential chain, `AWS_ENDPOINT_URL(_S3)`, path-style with an endpoint).
//!
//! S3 objects are written whole by one PutObject, so the manifest, written last, appears
//! complete or not at all, as on a local disk.

use std::sync::{Arc, OnceLock};

use sluice_engine::checkpoint::{CheckpointStore, LocalStore};
use sluice_engine::connector::Options;
use sluice_engine::Result;

use crate::aws::s3::{S3Location, S3Target};
use crate::aws::{runtime, sdk_config};

/// The store of `location` (the value of `state.checkpoints.dir`). An S3 store connects
/// when first used, so planning and `explain` make no call.
pub fn open(location: &str) -> Result<Arc<dyn CheckpointStore>> {
    let location = location.trim();
    let mut options = Options::from_pairs("state.checkpoints.dir", &[]);
    match S3Location::take(location, &mut options)? {
        Some(s3) => Ok(Arc::new(S3Store {
            location: s3,
            target: OnceLock::new(),
        })),
        None => Ok(LocalStore::new(
            location.strip_prefix("file://").unwrap_or(location),
        )),
    }
}

/// Checkpoints below an S3 prefix.
struct S3Store {
    location: S3Location,
    target: OnceLock<Arc<S3Target>>,
}

impl S3Store {
    fn target(&self) -> Result<&Arc<S3Target>> {
        if let Some(target) = self.target.get() {
            return Ok(target);
        }
        let subject = format!(
            "checkpoints ('state.checkpoints.dir' = '{}')",
            self.location()
        );
        let sdk = runtime().block_on(sdk_config(&subject, &self.location.aws))?;
        let target = S3Target::connect(&subject, &self.location, &sdk)?;
        Ok(self.target.get_or_init(|| target))
    }

    fn key(&self, name: &str) -> String {
        self.location.key("", name)
    }
}

impl CheckpointStore for S3Store {
    fn location(&self) -> String {
        self.location.url().trim_end_matches('/').to_string()
    }

    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.target()?.put_object(&self.key(name), bytes)
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.target()?.get_object(&self.key(name))
    }

    fn folders(&self) -> Result<Vec<String>> {
        let prefix = self.location.folder();
        Ok(self
            .target()?
            .list(&prefix, Some("/"))?
            .into_iter()
            .filter_map(|p| {
                let folder = p.strip_prefix(&prefix)?.strip_suffix('/')?;
                (!folder.is_empty()).then(|| folder.to_string())
            })
            .collect())
    }

    fn remove_folder(&self, name: &str) -> Result<()> {
        let target = self.target()?;
        for key in target.list(&format!("{}/", self.key(name)), None)? {
            target.delete_object(&key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(open("file:///tmp/cp").unwrap().location(), "/tmp/cp");
        assert_eq!(open("/tmp/cp").unwrap().location(), "/tmp/cp");
        assert_eq!(
            open("s3://bucket/jobs/cp/").unwrap().location(),
            "s3://bucket/jobs/cp"
        );
        assert!(open("s3://").is_err());
    }
}
