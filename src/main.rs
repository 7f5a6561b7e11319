//! `sluice`: run and explain Flink SQL job files.
//!
//! `sluice run JOB.sql` plans the job and runs it until its bounded sources end, or until
//! Ctrl-C for unbounded ones. `sluice explain JOB.sql` prints the operator graph.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod datagen;
mod logging;

use clap::{Parser, Subcommand};
use sluice_engine::checkpoint::manifest::OperatorState;
use sluice_engine::checkpoint::{self, CheckpointSettings};
use sluice_engine::metrics::{DropReason, JobMetrics};
use sluice_engine::runtime::{run_with_checkpoints, CheckpointRun, JobControl};
use sluice_engine::{Error, Result};
use sluice_sql::{plan_job, SourceFile};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Flink SQL stream processor on Arrow and DataFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job file until its bounded sources end (or Ctrl-C).
    Run {
        /// The job file: SET, CREATE TABLE, CREATE VIEW and INSERT INTO statements.
        job: PathBuf,
        /// A setting, as `SET 'key' = 'value'` would give it (wins over the file).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Write the final counters as JSON to this file.
        #[arg(long, value_name = "PATH")]
        metrics_json: Option<PathBuf>,
        /// Resume from this checkpoint folder (`.../chk-N`) instead of the newest one.
        #[arg(long, value_name = "PATH", conflicts_with = "fresh")]
        from_checkpoint: Option<String>,
        /// Start from the beginning even if the checkpoint folder holds checkpoints.
        #[arg(long)]
        fresh: bool,
    },
    /// Print the operator graph of a job file with parallelism and edges.
    Explain {
        job: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the Athena CREATE EXTERNAL TABLE statement of each filesystem table the job
    /// writes to.
    AthenaDdl { job: PathBuf },
    /// The local feature store: serve it with the SageMaker Feature Store API, or read it.
    Featurestore {
        #[command(subcommand)]
        command: FeatureStoreCommand,
    },
    /// Generate example data.
    Datagen {
        #[command(subcommand)]
        command: DatagenCommand,
    },
}

#[derive(Subcommand)]
enum DatagenCommand {
    /// Blockchain transactions (tx_hash, block, fee, amount, currency, event_time in epoch
    /// milliseconds) as JSON lines, out of order within --disorder-ms, the same for the same
    /// --seed.
    Tx(datagen::TxArgs),
    /// Card transactions (card_id, amount, merchant, event_time in epoch milliseconds) as
    /// JSON lines, out of order within --disorder-ms, with bursts on a few cards: the input
    /// of jobs/fraud_features.sql.
    Cards(datagen::CardArgs),
}

#[derive(Subcommand)]
enum FeatureStoreCommand {
    /// Serve a local feature store over HTTP with the SageMaker Feature Store API (runtime
    /// and control plane), until Ctrl-C or SIGTERM.
    Serve {
        /// Address to listen on; port 0 picks a free port (the address is printed).
        #[arg(long, default_value = "127.0.0.1:8085")]
        listen: std::net::SocketAddr,
        /// The store's folder (online store database and offline files).
        #[arg(long, default_value = "out/featurestore")]
        data: PathBuf,
        /// Region used in ARNs and offline store paths.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// How often accepted puts are written to the offline store as Parquet.
        #[arg(long, default_value = "10s", value_parser = parse_seconds)]
        offline_flush_interval: Duration,
    },
    /// Print the latest record of RECORD_ID in feature group GROUP of a local store folder.
    Get {
        group: String,
        record_id: String,
        #[arg(long, default_value = "out/featurestore")]
        data: PathBuf,
    },
}

fn parse_seconds(text: &str) -> std::result::Result<Duration, String> {
    let number = text.trim().trim_end_matches('s');
    number
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'{text}' is not a number of seconds, such as 10s"))
}

fn featurestore(command: FeatureStoreCommand) -> Result<()> {
    use sluice_connectors::featurestore::{server, LocalStore, StoreSettings};
    let store_error =
        |e: sluice_connectors::featurestore::store::StoreError| Error::connector(e.to_string());
    match command {
        FeatureStoreCommand::Serve {
            listen,
            data,
            region,
            offline_flush_interval,
        } => {
            let settings = StoreSettings {
                region,
                offline_flush: Some(offline_flush_interval),
                ..StoreSettings::default()
            };
            let store = LocalStore::open(&data, settings).map_err(store_error)?;
            let shown = data.display().to_string();
            server::serve(Arc::clone(&store), listen, |bound| {
                println!("sluice featurestore: listening on http://{bound} (data in {shown})");
                let _ = std::io::Write::flush(&mut std::io::stdout());
            })?;
            store.close();
            eprintln!("sluice featurestore: stopped");
            Ok(())
        }
        FeatureStoreCommand::Get {
            group,
            record_id,
            data,
        } => {
            if !data.join("store.redb").exists() {
                return Err(Error::config(format!(
                    "{} holds no feature store (no store.redb)",
                    data.display()
                )));
            }
            let settings = StoreSettings {
                offline_flush: None,
                ..StoreSettings::default()
            };
            let store = LocalStore::open(&data, settings).map_err(store_error)?;
            let record = store
                .get_record(&group, &record_id, None)
                .map_err(store_error)?
                .ok_or_else(|| {
                    Error::data(format!(
                        "feature group '{group}' has no record '{record_id}' in the online store"
                    ))
                })?;
            let mut object = serde_json::Map::new();
            for v in record.values {
                let value = match (v.value_as_string, v.value_as_string_list) {
                    (Some(s), _) => serde_json::Value::String(s),
                    (None, Some(list)) => serde_json::json!(list),
                    (None, None) => serde_json::Value::Null,
                };
                object.insert(v.feature_name, value);
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&object).unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn read_job(path: &PathBuf) -> Result<SourceFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read job file {}: {e}", path.display())))?;
    Ok(SourceFile {
        path: path.display().to_string(),
        text,
    })
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Error::config(format!("--set '{s}': expected KEY=VALUE")))
        })
        .collect()
}

fn format_watermark(w: Option<i64>) -> String {
    match w {
        None | Some(i64::MIN) => "-".into(),
        Some(i64::MAX) => "end of input".into(),
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        ),
    }
}

fn progress_line(m: &JobMetrics, elapsed: Duration) -> String {
    let read = m.records_read();
    let rate = read as f64 / elapsed.as_secs_f64().max(1e-3);
    let mut line = format!(
        "read {read} ({rate:.0}/s) · written {} · watermark {} · late {} · malformed {}",
        m.records_written(),
        format_watermark(m.watermark()),
        m.dropped_total(DropReason::Late),
        m.dropped_total(DropReason::Malformed),
    );
    let c = m.checkpoints();
    if c.completed > 0 {
        line.push_str(&format!(
            " · checkpoint {} ({} ms, {:.1} MB)",
            c.last_id,
            c.last_duration.as_millis(),
            c.last_bytes as f64 / 1e6
        ));
    }
    line
}

/// Peak resident memory of this process in bytes (Linux: VmHWM), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn summary(m: &JobMetrics, elapsed: Duration, failed: bool) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mut s = format!(
        "sluice: job {} after {:.2} s\n  records read        {} ({:.0}/s, {:.1} MB/s)\n  records written     {}\n  dropped late        {}\n  dropped malformed   {}\n  dropped null time   {}\n",
        if failed { "failed" } else { "finished" },
        elapsed.as_secs_f64(),
        m.records_read(),
        m.records_read() as f64 / seconds,
        m.bytes_read.load(Ordering::Relaxed) as f64 / seconds / 1e6,
        m.records_written(),
        m.dropped_total(DropReason::Late),
        m.dropped_total(DropReason::Malformed),
        m.dropped_total(DropReason::NullEventTime),
    );
    if let Some(peak) = peak_rss_bytes() {
        s.push_str(&format!(
            "  peak memory (RSS)   {:.1} MB\n",
            peak as f64 / 1e6
        ));
    }
    for ((table, reason), n) in m.dropped() {
        s.push_str(&format!("    {table}: {n} dropped ({})\n", reason.as_str()));
    }
    let c = m.checkpoints();
    if c.completed > 0 {
        s.push_str(&format!(
            "  checkpoints         {} (last: {} in {} ms, {:.2} MB; longest {} ms, largest {:.2} MB)\n",
            c.completed,
            c.last_id,
            c.last_duration.as_millis(),
            c.last_bytes as f64 / 1e6,
            c.max_duration.as_millis(),
            c.max_bytes as f64 / 1e6
        ));
    }
    if let Some((id, reason)) = &c.last_failure {
        s.push_str(&format!(
            "  checkpoints failed  {} (last: {id}, {reason})\n",
            c.failed
        ));
    }
    for k in m.sinks() {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        };
        s.push_str(&format!(
            "  sink {}: {} records put, {} retried, {} throttled, {} rejected, latency p50 {} p99 {}\n",
            k.table,
            k.records,
            k.retries,
            k.throttles,
            k.failures,
            ms(k.p50),
            ms(k.p99)
        ));
    }
    for p in m.partitions() {
        s.push_str(&format!(
            "  {} {}: {} records, {} bytes, {} ms behind latest, {} throttled, {} retried\n",
            p.table,
            p.partition,
            p.records,
            p.bytes,
            p.millis_behind_latest,
            p.throttles,
            p.retries
        ));
    }
    s
}

fn metrics_json(m: &JobMetrics, elapsed: Duration) -> String {
    let partitions: Vec<serde_json::Value> = m
        .partitions()
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "table": p.table,
                "partition": p.partition,
                "records": p.records,
                "bytes": p.bytes,
                "millis_behind_latest": p.millis_behind_latest,
                "throttles": p.throttles,
                "retries": p.retries,
            })
        })
        .collect();
    let sinks: Vec<serde_json::Value> = m
        .sinks()
        .into_iter()
        .map(|k| {
            let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
            serde_json::json!({
                "table": k.table,
                "records": k.records,
                "retries": k.retries,
                "throttles": k.throttles,
                "failures": k.failures,
                "latency_p50_ms": ms(k.p50),
                "latency_p99_ms": ms(k.p99),
            })
        })
        .collect();
    let json = serde_json::json!({
        "records_read": m.records_read(),
        "bytes_read": m.bytes_read.load(Ordering::Relaxed),
        "records_written": m.records_written(),
        "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "peak_rss_bytes": peak_rss_bytes().unwrap_or(0),
        "dropped": {
            "late": m.dropped_total(DropReason::Late),
            "malformed": m.dropped_total(DropReason::Malformed),
            "null_event_time": m.dropped_total(DropReason::NullEventTime),
            "rejected": m.dropped_total(DropReason::Rejected),
        },
        "partitions": partitions,
        "sinks": sinks,
        "checkpoints": {
            "completed": m.checkpoints().completed,
            "last_id": m.checkpoints().last_id,
            "last_ms": m.checkpoints().last_duration.as_secs_f64() * 1e3,
            "last_bytes": m.checkpoints().last_bytes,
            "max_ms": m.checkpoints().max_duration.as_secs_f64() * 1e3,
            "max_bytes": m.checkpoints().max_bytes,
            "failed": m.checkpoints().failed,
        },
    });
    format!("{json}\n")
}

/// How `run` treats the checkpoints in the checkpoint folder.
struct Resume {
    from_checkpoint: Option<String>,
    fresh: bool,
}

/// The checkpointing of a run: which checkpoint it resumes from, if any.
fn checkpoint_run(
    settings: Option<CheckpointSettings>,
    operators: &[OperatorState],
    resume: Resume,
) -> Result<Option<CheckpointRun>> {
    let Some(settings) = settings else {
        if resume.from_checkpoint.is_some() {
            return Err(Error::config(
                "--from-checkpoint needs checkpoints: set 'execution.checkpointing.interval' \
                 and 'state.checkpoints.dir'",
            ));
        }
        return Ok(None);
    };
    let restored = match (resume.from_checkpoint, resume.fresh) {
        (_, true) => None,
        (Some(path), false) => Some(read_checkpoint(&path, operators)?),
        (None, false) => checkpoint::latest(&*settings.store, operators)?,
    };
    if let Some(r) = &restored {
        eprintln!("sluice: resuming from checkpoint {}", r.path);
    }
    Ok(Some(CheckpointRun { settings, restored }))
}

/// Reads the checkpoint `--from-checkpoint` names: a `chk-<id>` folder, local or on S3.
fn read_checkpoint(path: &str, operators: &[OperatorState]) -> Result<checkpoint::Restored> {
    let path = path.trim_end_matches('/');
    let (store, folder) = path.rsplit_once('/').unwrap_or((".", path));
    let id = folder
        .strip_prefix("chk-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::config(format!(
                "--from-checkpoint {path}: not a checkpoint folder (chk-<number>)"
            ))
        })?;
    let store =
        sluice_connectors::checkpoint_store::open(if store.is_empty() { "/" } else { store })?;
    checkpoint::read(&*store, id, operators)
}

fn run_job(
    job: PathBuf,
    set: Vec<String>,
    metrics_path: Option<PathBuf>,
    resume: Resume,
) -> Result<()> {
    let file = read_job(&job)?;
    let metrics = Arc::new(JobMetrics::new());
    let plan = plan_job(&file, &parse_sets(&set)?, Arc::clone(&metrics))?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let checkpoints = checkpoint_run(
        plan.checkpoints.clone(),
        &plan.graph.operator_states(),
        resume,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let control = JobControl::new(Arc::clone(&metrics), Arc::clone(&stop));
    {
        let savepoint = Arc::clone(&control.savepoint);
        let checkpointing = checkpoints.is_some();
        let asked = AtomicBool::new(false);
        // Ctrl-C or SIGTERM. With checkpoints: a last checkpoint (a savepoint), committed,
        // then stop; without: flush and close the sinks. Again while stopping: exit at once.
        let _ = ctrlc::set_handler(move || {
            if asked.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            if checkpointing {
                eprintln!("\nsluice: stopping: taking a savepoint (Ctrl-C again to kill)");
                savepoint.store(true, Ordering::SeqCst);
            } else {
                eprintln!("\nsluice: stopping: flushing and closing sinks (Ctrl-C again to kill)");
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        let (m, d, bar2) = (Arc::clone(&metrics), Arc::clone(&done), bar.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                bar2.set_message(progress_line(&m, started.elapsed()));
                bar2.tick();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        bar
    });
    let result = run_with_checkpoints(&plan.graph, &control, checkpoints);
    done.store(true, Ordering::Relaxed);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    eprint!("{}", summary(&metrics, started.elapsed(), result.is_err()));
    if let Some(path) = metrics_path {
        std::fs::write(&path, metrics_json(&metrics, started.elapsed()))
            .map_err(|e| Error::connector(format!("cannot write {}: {e}", path.display())))?;
    }
    result
}

fn main() -> ExitCode {
    // A panic is a bug in Sluice: say so in one line instead of a backtrace; the task's
    // failure then stops the job with an error naming the task.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        eprintln!(
            "sluice: internal error in {}: {info}",
            thread.name().unwrap_or("main")
        );
    }));
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Run {
            job,
            set,
            metrics_json,
            from_checkpoint,
            fresh,
        } => run_job(
            job,
            set,
            metrics_json,
            Resume {
                from_checkpoint,
                fresh,
            },
        ),
        Command::Explain { job, set } => read_job(&job).and_then(|file| {
            let plan = plan_job(&file, &parse_sets(&set)?, Arc::new(JobMetrics::new()))?;
            print!("{}", plan.graph.explain());
            Ok(())
        }),
        Command::AthenaDdl { job } => read_job(&job).and_then(|file| {
            print!("{}", sluice_sql::athena::athena_ddl(&file)?);
            Ok(())
        }),
        Command::Featurestore { command } => featurestore(command),
        Command::Datagen {
            command: DatagenCommand::Tx(args),
        } => datagen::transactions(args),
        Command::Datagen {
            command: DatagenCommand::Cards(args),
        } => datagen::cards(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.kind().exit_code())
        }
    }
}
