//! The `filesystem` connector: local files as a bounded source and a partitioned sink.
//!
//! Source options: `path`, `format` (`json`, `csv`) and the format's options; metadata keys
//! `file.path` and `file.name`. Sink options: `path`, `format` (`parquet`, `json`, `csv`),
//! the format's options and the `sink.rolling-policy.*` options (see [`config`]).

pub mod config;
mod part_file;
mod partition;
mod sink;
mod source;

pub use sink::FileSink;
pub use source::FileSource;
