//! Sluice's end-to-end tests: real job files run by the `sluice` binary against real
//! servers (moto for AWS, the local feature store, Docker for the compose stack), their
//! output checked by independent readers (DuckDB, pyarrow, boto3).
//!
//! One test binary for all of them: it links once, and its tests run side by side, so the
//! compose stack's slow start overlaps with the other tests.

mod common;

mod bounded_state;
mod checkpoints;
mod cli;
mod compose;
mod connectors_e2e;
mod differential;
mod errors;
mod featurestore;
mod functions;
mod interval_join;
mod jobs;
mod kinesis;
mod kinesis_bench_server;
mod lookup_join;
mod nexmark;
mod operator_restores;
mod over;
mod s3;
mod server;
mod session_windows;
mod sliding_windows;
mod stop;
mod top_n;
mod window_join;
mod window_vectors;
