//! The `nexmark` connector: a source of the Nexmark benchmark's events (persons, auctions
//! and bids of an online auction), made as Flink's Nexmark generator makes them, so the
//! Nexmark queries written for Flink run on Sluice unchanged.

pub mod config;
pub mod generator;
pub mod model;
pub mod random;
pub mod source;

pub use source::NexmarkSource;
