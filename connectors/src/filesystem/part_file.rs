//! A part file: one output file of the filesystem sink, from opening to commit.
//!
//! A local part file is written under a hidden in-progress name
//! (`.part-<uuid>-<instance>-<n>.<ext>.inprogress`) that readers skip, and renamed to its
//! final name (`part-<uuid>-<instance>-<n>.<ext>`) when it is closed, so a reader never sees
//! a half-written file. A part file dropped without being closed (the job failed) deletes its
//! in-progress file. On S3 a part file is a multipart upload (see [`crate::aws::s3`]): closing it
//! leaves the upload pending, and the object appears only when the sink commits it.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use sluice_engine::{Error, Result};

use crate::aws::s3::{PendingUpload, S3Target, S3Upload};
use crate::format::csv::CsvLineEncoder;
use crate::format::json::JsonLineEncoder;
use crate::format::parquet::to_parquet_batch;

/// How the rows of one table are turned into file contents.
pub enum FileEncoding {
    /// Parquet with the file schema (see [`crate::format::parquet::parquet_schema`]).
    Parquet {
        schema: SchemaRef,
        properties: Arc<WriterProperties>,
    },
    Json(JsonLineEncoder),
    Csv(CsvLineEncoder),
}

impl FileEncoding {
    pub fn extension(&self) -> &'static str {
        match self {
            FileEncoding::Parquet { .. } => "parquet",
            FileEncoding::Json(_) => "json",
            FileEncoding::Csv(_) => "csv",
        }
    }

    /// Encodes rows as lines of text (JSON, CSV).
    fn encode_lines(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        match self {
            FileEncoding::Json(encoder) => encoder.encode(batch, out),
            FileEncoding::Csv(encoder) => encoder.encode(batch, out),
            FileEncoding::Parquet { .. } => Err(ArrowError::InvalidArgumentError(
                "parquet is not a line format".into(),
            )),
        }
    }
}

/// Where the part files of a table go.
#[derive(Clone)]
pub enum Storage {
    /// A local folder.
    Local(PathBuf),
    /// An S3 bucket and prefix.
    S3(Arc<S3Target>),
}

/// The bytes of a part file: a local file, or an S3 upload.
type Output = Box<dyn Write + Send>;

enum Writer {
    Parquet(Box<ArrowWriter<Output>>),
    /// JSON and CSV: rows are encoded into `buffer`, then written to the file in one call.
    Lines {
        file: Output,
        buffer: Vec<u8>,
        written: u64,
    },
}

/// Where an open part file is, and where it goes on commit.
enum Place {
    Local {
        in_progress: PathBuf,
        target: PathBuf,
    },
    S3(S3Upload),
}

impl Place {
    fn describe(&self) -> String {
        match self {
            Place::Local { in_progress, .. } => in_progress.display().to_string(),
            Place::S3(upload) => upload.key(),
        }
    }
}

/// A closed part file.
pub enum Closed {
    /// Renamed into view already (local files).
    Visible,
    /// Uploaded, but not visible until committed (S3).
    Pending(PendingUpload),
    /// Written in full under its hidden name, to be renamed when a checkpoint commits it.
    LocalPending(LocalPending),
}

/// A closed local file waiting for its commit: renaming `in_progress` to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LocalPending {
    pub in_progress: PathBuf,
    pub target: PathBuf,
}

impl LocalPending {
    /// Renames the file into view. Idempotent: a file already renamed (a checkpoint
    /// committed again after a crash) is fine.
    pub fn commit(&self) -> Result<()> {
        match std::fs::rename(&self.in_progress, &self.target) {
            Ok(()) => Ok(()),
            Err(_) if !self.in_progress.exists() && self.target.exists() => Ok(()),
            Err(e) => Err(Error::connector(format!(
                "cannot commit file {}: {e}",
                self.target.display()
            ))),
        }
    }

    /// Deletes the hidden file (it was never covered by a checkpoint).
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.in_progress);
    }
}

/// An open part file.
pub struct PartFile {
    place: Place,
    /// `None` once closed.
    writer: Option<Writer>,
    pub opened_at: Instant,
    pub last_write: Instant,
}

impl PartFile {
    /// Creates part file `name` in partition folder `folder` (`""` or `a=1/b=2`): locally
    /// `<root>/<folder>/.<name>.inprogress`, to become `<root>/<folder>/<name>` on close; on
    /// S3 an upload to `<prefix>/<folder>/<name>`.
    pub fn create(
        storage: &Storage,
        folder: &str,
        name: &str,
        encoding: &FileEncoding,
    ) -> Result<Self> {
        let (place, file): (Place, Output) = match storage {
            Storage::Local(root) => {
                let folder = root.join(folder);
                std::fs::create_dir_all(&folder).map_err(|e| {
                    Error::connector(format!("cannot create folder {}: {e}", folder.display()))
                })?;
                let in_progress = folder.join(format!(".{name}.inprogress"));
                let target = folder.join(name);
                let file = File::create(&in_progress).map_err(|e| {
                    Error::connector(format!("cannot create file {}: {e}", in_progress.display()))
                })?;
                (
                    Place::Local {
                        in_progress,
                        target,
                    },
                    Box::new(std::io::BufWriter::new(file)),
                )
            }
            Storage::S3(target) => {
                let upload = target.create(target.location.key(folder, name))?;
                (Place::S3(upload.clone()), Box::new(upload))
            }
        };
        let in_progress = place.describe();
        let writer = match encoding {
            FileEncoding::Parquet { schema, properties } => {
                let properties = WriterProperties::clone(properties);
                let writer =
                    ArrowWriter::try_new(file, schema.clone(), Some(properties)).map_err(|e| {
                        Error::connector(format!("cannot start parquet file {in_progress}: {e}"))
                    })?;
                Writer::Parquet(Box::new(writer))
            }
            FileEncoding::Json(_) | FileEncoding::Csv(_) => Writer::Lines {
                file,
                buffer: Vec::new(),
                written: 0,
            },
        };
        let now = Instant::now();
        Ok(Self {
            place,
            writer: Some(writer),
            opened_at: now,
            last_write: now,
        })
    }

    /// Appends rows (with the sink's data columns).
    pub fn write(&mut self, batch: &RecordBatch, encoding: &FileEncoding) -> Result<()> {
        let place = &self.place;
        let io_error = |e: &dyn std::fmt::Display| {
            Error::connector(format!("cannot write file {}: {e}", place.describe()))
        };
        match (&mut self.writer, encoding) {
            (Some(Writer::Parquet(writer)), FileEncoding::Parquet { schema, .. }) => {
                let batch = to_parquet_batch(batch, schema).map_err(|e| io_error(&e))?;
                writer.write(&batch).map_err(|e| io_error(&e))?;
            }
            (
                Some(Writer::Lines {
                    file,
                    buffer,
                    written,
                }),
                _,
            ) => {
                buffer.clear();
                encoding
                    .encode_lines(batch, buffer)
                    .map_err(|e| io_error(&e))?;
                file.write_all(buffer).map_err(|e| io_error(&e))?;
                *written += buffer.len() as u64;
            }
            _ => {
                return Err(Error::internal(
                    "part file written after close or with another encoding",
                ))
            }
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// The file's size so far, including what the Parquet writer still buffers (estimated).
    pub fn size(&self) -> u64 {
        match &self.writer {
            Some(Writer::Parquet(w)) => (w.bytes_written() + w.in_progress_size()) as u64,
            Some(Writer::Lines { written, .. }) => *written,
            None => 0,
        }
    }

    /// Finishes the file: a local one is renamed into view, an S3 one is uploaded and left
    /// pending, to be committed by the sink.
    ///
    /// A local file stays hidden unless `publish` (with checkpoints, the checkpoint that
    /// covers it renames it).
    pub fn close_as(mut self, publish: bool) -> Result<Closed> {
        let described = self.place.describe();
        let failed = |e: &dyn std::fmt::Display| {
            Error::connector(format!("cannot finish file {described}: {e}"))
        };
        match self.writer.take() {
            Some(Writer::Parquet(writer)) => {
                let mut out = (*writer).into_inner().map_err(|e| failed(&e))?;
                out.flush().map_err(|e| failed(&e))?;
            }
            Some(Writer::Lines { mut file, .. }) => file.flush().map_err(|e| failed(&e))?,
            None => {}
        }
        match &self.place {
            Place::Local {
                in_progress,
                target,
            } if !publish => Ok(Closed::LocalPending(LocalPending {
                in_progress: in_progress.clone(),
                target: target.clone(),
            })),
            Place::Local {
                in_progress,
                target,
            } => {
                std::fs::rename(in_progress, target).map_err(|e| failed(&e))?;
                Ok(Closed::Visible)
            }
            Place::S3(upload) => Ok(Closed::Pending(upload.clone().finish()?)),
        }
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Never closed: the job failed, and a partial file must not be committed. The
            // hidden file is only litter, so a failure to delete it is not worth reporting;
            // an S3 upload is aborted when its last handle goes.
            if let Place::Local { in_progress, .. } = &self.place {
                let _ = std::fs::remove_file(in_progress);
            }
        }
    }
}
