//! An in-memory Kinesis read API for Sluice's ingestion benchmark.
//!
//! moto serves a few thousand records a second: far too slow to measure a client that
//! should read 100 MB/s. This server holds a stream in memory, built once from a file of
//! JSON lines (padded to a record size, spread over shards by partition key hash, optionally
//! packed into KPL aggregates), and serves Kinesis's read calls with the service's JSON
//! shapes, base64 payloads, sequence numbers, `MillisBehindLatest` and per-shard read limits.
//! A test in `tests/e2e` compares its answers with moto's, field by field.

pub mod api;
pub mod pacing;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::Server;
pub use stream::{Stream, StreamConfig};

/// Serves `server` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, server: Arc<Server>) -> std::io::Result<()> {
    axum::serve(listener, server.router()).await
}

/// Starts `server` on a free port of 127.0.0.1 on a thread of its own (for tests) and
/// returns its endpoint.
pub fn start_in_background(server: Arc<Server>) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = serve(listener, server).await;
            }
        })
    });
    Ok(endpoint)
}
