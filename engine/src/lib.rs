//! The Sluice dataflow runtime.
//!
//! A job is a [`graph::Graph`] of operators that exchange Arrow record batches and
//! watermarks over bounded channels ([`runtime`]: exchanges, chaining, source and receiver
//! tasks, watermarks, barrier alignment, the checkpoint coordinator). Sources read
//! partitions (files, shards) through the [`connector`] contract and compute event time and
//! watermarks ([`source`]); window operators ([`operators`]) keep partial aggregates per
//! window and key and emit each window once, when the watermark passes its end
//! ([`window`]). Stateful operators keep their state as keyed state of the engine
//! ([`state`]), which [`checkpoint`] stores; [`error`] is the one error type and [`log`]
//! how the libraries say what happens.

pub mod checkpoint;
pub mod connector;
pub mod error;
pub mod failpoint;
pub mod graph;
pub mod log;
pub mod metrics;
pub mod operator;
pub mod operators;
pub mod runtime;
pub mod source;
pub mod state;
pub mod window;

pub use error::{Error, Result};
