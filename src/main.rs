//! `sluice`: run and explain Flink SQL job files, or serve them.
//!
//! `sluice run JOB.sql` plans the job and runs it until its bounded sources end, or until
//! Ctrl-C for unbounded ones. `sluice explain JOB.sql` prints the operator graph.
//! `sluice server` runs many jobs in one process; `sluice submit`, `list`, `status`, `stop`,
//! `resume` and `delete` talk to it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod client;
mod datagen;
mod job;
mod logging;
mod prometheus;
mod report;
mod server;

use clap::{Parser, Subcommand};
use job::{checkpoint_run, parse_sets, read_job, Resume};
use report::{metrics_json, progress_line, summary};
use sluice_engine::metrics::JobMetrics;
use sluice_engine::runtime::{run_with_checkpoints, JobControl};
use sluice_engine::{Error, Result};
use sluice_sql::plan_job;

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
        /// Serve the job's metrics for Prometheus at http://ADDR/metrics while it runs.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Run a server that runs many jobs: submit them with `sluice submit` or its REST API,
    /// watch them on its web page. Stops every job with a savepoint at Ctrl-C or SIGTERM.
    Server {
        /// Address to listen on (port 0 picks a free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// The server's folder: the job registry and, unless a job sets
        /// 'state.checkpoints.dir', the jobs' checkpoints.
        #[arg(long, default_value = "out/server")]
        data: PathBuf,
        /// Submit every *.sql file of this folder at start (each file once).
        #[arg(long, value_name = "DIR")]
        jobs_dir: Option<PathBuf>,
        /// Every request needs 'Authorization: Bearer TOKEN'.
        #[arg(long, env = "SLUICE_AUTH_TOKEN", hide_env_values = true)]
        auth_token: Option<String>,
    },
    /// Submit a job file to a running server.
    Submit {
        job: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A name for the job (default: the file name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// List the server's jobs with their state.
    List {
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Show one job: state, counters, watermark, checkpoints, operators, last error.
    Status {
        id: String,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Stop a job with a savepoint (or cancel it with --no-savepoint).
    Stop {
        id: String,
        /// Stop at once: output after the last checkpoint is not committed.
        #[arg(long)]
        no_savepoint: bool,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Resume a stopped job from its savepoint or latest checkpoint.
    Resume {
        id: String,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Forget a job that does not run.
    Delete {
        id: String,
        #[command(flatten)]
        connection: client::Connection,
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
        /// Every request must carry this token: as its access key id (set AWS_ACCESS_KEY_ID
        /// to it in the SDK client) or as 'Authorization: Bearer TOKEN'.
        #[arg(long, env = "SLUICE_FEATURESTORE_AUTH_TOKEN", hide_env_values = true)]
        auth_token: Option<String>,
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
            auth_token,
        } => {
            let settings = StoreSettings {
                region,
                offline_flush: Some(offline_flush_interval),
                ..StoreSettings::default()
            };
            let store = LocalStore::open(&data, settings).map_err(store_error)?;
            let shown = data.display().to_string();
            let token = auth_token.filter(|t| !t.is_empty());
            server::serve(Arc::clone(&store), listen, token, |bound| {
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

fn run_job(
    job: PathBuf,
    set: Vec<String>,
    metrics_path: Option<PathBuf>,
    metrics_listen: Option<std::net::SocketAddr>,
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
    let exporter = match metrics_listen {
        None => None,
        Some(addr) => Some(prometheus::serve_one(
            addr,
            prometheus::JobSample {
                id: "run".into(),
                name: job
                    .file_stem()
                    .map_or("job".into(), |n| n.to_string_lossy().into_owned()),
                state: None,
                restarts: 0,
                metrics: Some(Arc::clone(&metrics)),
                graph: job::graph_view(&plan.graph),
            },
        )?),
    };
    let result = run_with_checkpoints(&plan.graph, &control, checkpoints);
    drop(exporter);
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
            metrics_listen,
        } => run_job(
            job,
            set,
            metrics_json,
            metrics_listen,
            Resume {
                from_checkpoint,
                fresh,
            },
        ),
        Command::Server {
            listen,
            data,
            jobs_dir,
            auth_token,
        } => server::serve(server::ServerArgs {
            listen,
            data,
            jobs_dir,
            auth_token: auth_token.filter(|t| !t.is_empty()),
        }),
        Command::Submit {
            job,
            set,
            name,
            connection,
        } => parse_sets(&set)
            .and_then(|set| client::call(&connection, client::Request::Submit { job, set, name })),
        Command::List { connection } => client::call(&connection, client::Request::List),
        Command::Status { id, connection } => {
            client::call(&connection, client::Request::Status(id))
        }
        Command::Stop {
            id,
            no_savepoint,
            connection,
        } => client::call(
            &connection,
            client::Request::Stop {
                id,
                savepoint: !no_savepoint,
            },
        ),
        Command::Resume { id, connection } => {
            client::call(&connection, client::Request::Resume(id))
        }
        Command::Delete { id, connection } => {
            client::call(&connection, client::Request::Delete(id))
        }
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
