//! The `datagen` connector: a source of generated rows, for tests and benchmarks.
//!
//! Options as in Flink: `rows-per-second`, `number-of-rows`, and per column
//! `fields.<col>.kind|min|max|length|var-len|start|end|null-rate|max-past`; plus Sluice's
//! `seed` for repeatable values (see [`config`]).
//!
//! [`transactions`] makes the blockchain transactions of the example jobs for
//! `sluice datagen tx`, [`cards`] the card transactions of the fraud job for
//! `sluice datagen cards`.

pub mod cards;
pub mod config;
mod source;
pub mod transactions;

pub use cards::{CardSpec, CardTransactions};
pub use source::DatagenSource;
pub use transactions::{TransactionSpec, Transactions};
