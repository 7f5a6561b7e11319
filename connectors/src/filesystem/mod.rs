//! The `filesystem` connector: local files as a bounded source and a partitioned sink, which
//! also writes to `s3://` paths.
//!
//! Source options: `path`, `format` (`json`, `csv`) and the format's options; metadata keys
//! `file.path` and `file.name`. Sink options: `path` (a folder or `s3://bucket/prefix`),
//! `format` (`parquet`, `json`, `csv`), the format's options, the `sink.rolling-policy.*`
//! options, and for S3 `aws.region`, `aws.endpoint`, `s3.path-style-access` (see [`config`]).
//! A table looked up by a lookup join is read whole, locally or from S3 ([`FileLookup`]).

mod commit;
pub mod config;
mod lookup;
mod part_file;
pub(crate) mod partition;
mod sink;
mod source;

pub use lookup::{FileLookup, LookupOptions};
pub use sink::FileSink;
pub use source::FileSource;
