//! The `datagen` connector: a source of generated rows, for tests and benchmarks.
//!
//! Options as in Flink: `rows-per-second`, `number-of-rows`, and per column
//! `fields.<col>.kind|min|max|length|var-len|start|end|null-rate|max-past`; plus Sluice's
//! `seed` for repeatable values (see [`config`]).

pub mod config;
mod source;

pub use source::DatagenSource;
