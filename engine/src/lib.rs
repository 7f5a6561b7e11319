//! The Sluice dataflow runtime.
//!
//! A job is a [`graph::Graph`] of operators that exchange Arrow record batches and
//! watermarks over bounded channels ([`runtime`]). Sources read partitions (files, shards)
//! through the [`connector`] contract and compute event time and watermarks
//! ([`source`]); window operators ([`operators`]) keep partial aggregates per window and
//! key and emit each window once, when the watermark passes its end ([`window`]).

pub mod checkpoint;
pub mod connector;
pub mod error;
pub mod graph;
pub mod metrics;
pub mod operator;
pub mod operators;
pub mod runtime;
pub mod source;
pub mod window;

pub use error::{Error, Result};
