//! Where checkpoints are kept: a store of whole objects under relative names, a local
//! folder here ([`LocalStore`]) or an S3 prefix (provided by the connectors).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Where checkpoints are kept. Names are relative (`chk-3/_manifest.json`); each object is
/// written whole or not at all.
pub trait CheckpointStore: Send + Sync {
    /// The store's location, for messages (`/var/sluice/cp`, `s3://bucket/cp`).
    fn location(&self) -> String;
    /// Writes object `name` durably, replacing it if it exists.
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()>;
    /// Reads object `name`; `None` when it does not exist.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// The names of the folders at the top of the store (`chk-1`, `chk-2`, ...).
    fn folders(&self) -> Result<Vec<String>>;
    /// Removes folder `name` and everything in it.
    fn remove_folder(&self, name: &str) -> Result<()>;
}

/// Checkpoints in a local folder.
pub struct LocalStore {
    pub dir: PathBuf,
}

impl LocalStore {
    pub fn new(dir: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self { dir: dir.into() })
    }
}

fn io_error(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::connector(format!("checkpoint: cannot {what} {}: {e}", path.display()))
}

impl CheckpointStore for LocalStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.dir.join(name);
        let folder = path.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&folder).map_err(|e| io_error("create", &folder, e))?;
        // Written under a temporary name and renamed: a crash leaves no half-written file
        // under the real name.
        let temp = folder.join(format!(
            ".{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object")
        ));
        let mut file = File::create(&temp).map_err(|e| io_error("create", &temp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("write", &temp, e))?;
        std::fs::rename(&temp, &path).map_err(|e| io_error("rename", &temp, e))?;
        // The rename is durable once the folder is.
        if let Ok(d) = File::open(&folder) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    fn folders(&self) -> Result<Vec<String>> {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => Ok(entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_error("list", &self.dir, e)),
        }
    }

    fn remove_folder(&self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &path, e)),
        }
    }
}
