//! A part file: one output file of the filesystem sink, from opening to commit.
//!
//! A part file is written under a hidden in-progress name
//! (`.part-<uuid>-<instance>-<n>.<ext>.inprogress`) that readers skip, and renamed to its
//! final name (`part-<uuid>-<instance>-<n>.<ext>`) when it is closed, so a reader never sees
//! a half-written file. A part file dropped without being closed (the job failed) deletes its
//! in-progress file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use sluice_engine::{Error, Result};

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

enum Writer {
    Parquet(Box<ArrowWriter<File>>),
    /// JSON and CSV: rows are encoded into `buffer`, then written to the file in one call.
    Lines {
        file: File,
        buffer: Vec<u8>,
        written: u64,
    },
}

/// An open part file.
pub struct PartFile {
    in_progress: PathBuf,
    target: PathBuf,
    /// `None` once closed.
    writer: Option<Writer>,
    pub opened_at: Instant,
    pub last_write: Instant,
}

impl PartFile {
    /// Creates `<folder>/.<name>.inprogress`, to become `<folder>/<name>` on close.
    pub fn create(folder: &Path, name: &str, encoding: &FileEncoding) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(|e| {
            Error::connector(format!("cannot create folder {}: {e}", folder.display()))
        })?;
        let in_progress = folder.join(format!(".{name}.inprogress"));
        let target = folder.join(name);
        let file = File::create(&in_progress).map_err(|e| {
            Error::connector(format!("cannot create file {}: {e}", in_progress.display()))
        })?;
        let writer = match encoding {
            FileEncoding::Parquet { schema, properties } => {
                let properties = WriterProperties::clone(properties);
                let writer =
                    ArrowWriter::try_new(file, schema.clone(), Some(properties)).map_err(|e| {
                        Error::connector(format!(
                            "cannot start parquet file {}: {e}",
                            in_progress.display()
                        ))
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
            in_progress,
            target,
            writer: Some(writer),
            opened_at: now,
            last_write: now,
        })
    }

    /// Appends rows (with the sink's data columns).
    pub fn write(&mut self, batch: &RecordBatch, encoding: &FileEncoding) -> Result<()> {
        let io_error = |e: &dyn std::fmt::Display| {
            Error::connector(format!(
                "cannot write file {}: {e}",
                self.in_progress.display()
            ))
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

    /// Finishes the file and renames it into view; returns its final path.
    pub fn close(mut self) -> Result<PathBuf> {
        let in_progress = self.in_progress.clone();
        let failed = |e: &dyn std::fmt::Display| {
            Error::connector(format!("cannot finish file {}: {e}", in_progress.display()))
        };
        match self.writer.take() {
            Some(Writer::Parquet(writer)) => {
                (*writer).close().map_err(|e| failed(&e))?;
            }
            Some(Writer::Lines { mut file, .. }) => file.flush().map_err(|e| failed(&e))?,
            None => {}
        }
        std::fs::rename(&self.in_progress, &self.target).map_err(|e| failed(&e))?;
        Ok(self.target.clone())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Never closed: the job failed, and a partial file must not be committed. The
            // hidden file is only litter, so a failure to delete it is not worth reporting.
            let _ = std::fs::remove_file(&self.in_progress);
        }
    }
}
