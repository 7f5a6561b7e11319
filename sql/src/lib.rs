//! Sluice SQL: Flink SQL job files to engine graphs.
//!
//! [`statements`] splits a job file into `SET`, `CREATE TABLE`, `CREATE VIEW` and
//! `INSERT INTO` statements; [`windows`] takes window table functions out of queries and
//! [`lookups`] the `FOR SYSTEM_TIME AS OF` tables of lookup joins;
//! [`planner`] plans queries with DataFusion and lowers the plans onto the engine.

pub mod athena;
pub mod functions;
pub mod json_syntax;
pub mod location;
pub mod lookups;
pub mod planner;
pub mod restart;
pub mod rewrite_functions;
pub mod settings;
pub mod statements;
pub mod types;
pub mod variables;
pub mod windows;

pub use location::SourceFile;
pub use planner::{job_settings, plan_job, plan_job_with_defaults, JobPlan};
