//! The `print` connector: a sink that prints rows, for debugging and examples.
//!
//! Options: `print-identifier`, `standard-error` (see [`config`]).

pub mod config;
mod sink;

pub use sink::PrintSink;
