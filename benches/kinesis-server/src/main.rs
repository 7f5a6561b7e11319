//! `kinesis-bench-server`: serves a stream built from a file of JSON lines through Kinesis's
//! read API, for `benches/run.sh kinesis`. Prints its endpoint on the first line of stdout,
//! then serves until killed; `GET /stats` says what it has served.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use sluice_kinesis_bench::{serve, Server, Stream, StreamConfig};

#[derive(Parser)]
struct Args {
    /// JSON lines: one record payload per line.
    input: PathBuf,
    #[arg(long, default_value = "bench")]
    stream: String,
    #[arg(long, default_value_t = 100)]
    shards: usize,
    /// Pad each payload to about this many bytes.
    #[arg(long, default_value_t = 1000)]
    record_bytes: usize,
    /// Pack this many user records into each Kinesis record (KPL aggregation).
    #[arg(long)]
    kpl: Option<usize>,
    /// Serve on this address (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Worker threads of the server.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let file = std::fs::File::open(&args.input)
        .map_err(|e| format!("cannot read {}: {e}", args.input.display()))?;
    let lines = std::io::BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .filter(|l| !l.is_empty());
    let config = StreamConfig {
        name: args.stream,
        shards: args.shards,
        record_bytes: args.record_bytes,
        kpl: args.kpl,
        // Each shard written at its full 1 MB/s.
        write_rate: 1_000_000,
    };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let server = Server::new(Stream::build(&config, lines, now_ms));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("http://{}", listener.local_addr()?);
        serve(listener, server).await
    })?;
    Ok(())
}
