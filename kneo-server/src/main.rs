//! `kneo`: the kneo run service and its local commands.
//!
//! - `kneo service serve [--host] [--port]`: the HTTP API with in-process workers.
//! - `kneo service worker`: a queue worker process (Postgres only).
//! - `kneo spec validate <path> [--json]`: validate a spec file (exit 0 valid, 1 invalid, 2 unreadable).
//! - `kneo human sweep`: apply `on_timeout` to expired human tasks and time out overdue runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the request path allocates many small JSON values,
/// and glibc malloc showed up as a quarter of the CPU in profiles of the sync-run benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use kneo_server::app::{self, StartupError};
use kneo_server::config::Config;

#[derive(Parser)]
#[command(name = "kneo", version = kneo_server::VERSION, about = "The kneo run service: agent workflows over HTTP, with a durable queue")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Work with spec files.
    Spec {
        #[command(subcommand)]
        command: SpecCommand,
    },
    /// Operate on human tasks.
    Human {
        #[command(subcommand)]
        command: HumanCommand,
    },
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Serve the HTTP API (embedded store under .kneo/ unless KNEO_SERV_DATABASE_URL is set).
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Run queue workers without the HTTP API (needs KNEO_SERV_DATABASE_URL).
    Worker {
        /// Workers in this process, at least 1 (default: KNEO_SERV_WORKER_CONCURRENCY).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: Option<u16>,
    },
}

#[derive(Subcommand)]
enum SpecCommand {
    /// Validate a spec file: exit 0 valid, 1 invalid, 2 unreadable.
    Validate {
        path: PathBuf,
        /// Print `{valid, diagnostics}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HumanCommand {
    /// Apply on_timeout to expired human tasks and time out overdue runs, once.
    Sweep {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Spec {
            command: SpecCommand::Validate { path, json },
        } => validate_file(&path, json),
        Command::Service { command } => with_runtime(|config| async move {
            match command {
                ServiceCommand::Serve { host, port } => serve(config, &host, port).await,
                ServiceCommand::Worker { concurrency } => worker(config, concurrency).await,
            }
        }),
        Command::Human {
            command: HumanCommand::Sweep { json },
        } => with_runtime(|config| async move { sweep(config, json).await }),
    }
}

/// Threads for blocking work; see [`with_runtime`].
const MAX_BLOCKING_THREADS: usize = 12;

/// Reads the configuration, starts logging and a runtime, and runs `command` on it.
fn with_runtime<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kneo: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    kneo_server::telemetry::init(&config.log_level);
    // Blocking work is short (SQLite reads on a pool of 4 connections, small file operations),
    // so a few threads serve it. Tokio's default of 512 lets a burst of requests start dozens of
    // threads, each keeping its own allocator heap: resident memory tripled under load.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kneo: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(command(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kneo: {message}");
            ExitCode::from(1)
        }
    }
}

fn describe(error: StartupError) -> String {
    match error {
        StartupError::Store(error) => format!(
            "cannot open the store ({}): {}",
            error.kind,
            kneo_server::redact::redacted_text(&error.message)
        ),
        other => other.to_string(),
    }
}

async fn serve(config: Config, host: &str, port: u16) -> Result<(), String> {
    let _lock = match &config.database_url {
        None => Some(
            kneo_server::store::state_lock::StateLock::acquire(&config.state_dir)
                .map_err(|e| e.to_string())?,
        ),
        Some(_) => None,
    };
    if !config.auth_enabled {
        let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1";
        let level = if loopback {
            "local development only"
        } else {
            "DANGER: the API is open to the network"
        };
        tracing::warn!(target: "kneo_serv.service", host, "auth is disabled ({level}); set KNEO_SERV_API_KEYS or KNEO_SERV_ADMIN_API_KEY");
    }
    if config.worker.concurrency == 0 {
        let hint = if config.database_url.is_none() {
            "the embedded store has no separate workers, so async runs will wait forever"
        } else {
            "run `kneo service worker` processes, or async runs will wait (runbook § 5.1)"
        };
        tracing::warn!(target: "kneo_serv.service", "KNEO_SERV_WORKER_CONCURRENCY=0: no in-process workers; {hint}");
    }
    let stores = app::open_stores(&config).await.map_err(describe)?;
    let embedded = config.database_url.is_none();
    let state = app::build_state(config, stores);
    if embedded {
        // The lock proves no other process serves this store, so every leased run is orphaned.
        match state.stores.runs.requeue_orphaned_runs().await {
            Ok(0) => {}
            Ok(count) => {
                tracing::warn!(target: "kneo_serv.service", count, "requeued runs left running by a previous process")
            }
            Err(error) => {
                tracing::warn!(target: "kneo_serv.service", %error, "could not requeue orphaned runs; they return when their leases expire")
            }
        }
    }
    // Every client connection holds a file descriptor: take all the system allows.
    match kneo_server::connections::raise_open_file_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(target: "kneo_serv.service", event = "open_file_limit", before, after,
                "raised the open-file limit (RLIMIT_NOFILE) to its hard limit")
        }
        Ok((limit, _)) => {
            tracing::info!(target: "kneo_serv.service", event = "open_file_limit", limit,
                "the open-file limit (RLIMIT_NOFILE) is already at its hard limit")
        }
        Err(error) => {
            tracing::warn!(target: "kneo_serv.service", %error, "could not raise the open-file limit; connections are capped below it")
        }
    }
    let max_connections = kneo_server::connections::connection_cap(state.config.max_connections);
    tracing::info!(target: "kneo_serv.service", event = "connection_cap", max_connections,
        header_read_timeout_seconds = state.config.http_header_read_timeout.as_secs_f64(),
        "connections beyond the cap close idle ones first, then answer 503 (runbook § 1.6)");
    let address = format!("{host}:{port}");
    let listener = kneo_server::connections::bind(&address)
        .await
        .map_err(|error| {
            describe(StartupError::Listen {
                address: address.clone(),
                error,
            })
        })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(target: "kneo_serv.service", event = "listening", address = %bound, version = kneo_server::drill::version(),
        store = state.stores.runs.kind().as_str());
    println!(
        "kneo {} listening on http://{bound}",
        kneo_server::drill::version()
    );
    app::serve_until(state, listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn worker(mut config: Config, concurrency: Option<u16>) -> Result<(), String> {
    if config.database_url.is_none() {
        return Err("separate worker processes need Postgres (KNEO_SERV_DATABASE_URL); the embedded store runs its workers \
                    inside `kneo service serve` (runbook § 2.3)"
            .into());
    }
    if let Some(count) = concurrency {
        config.worker.concurrency = usize::from(count);
    }
    if config.worker.concurrency == 0 {
        // A worker process with no workers would run, look healthy and never claim a run.
        return Err(
            "KNEO_SERV_WORKER_CONCURRENCY is 0, so this worker process would claim nothing; \
             set it (or --concurrency) to 1 or more"
                .into(),
        );
    }
    let stores = app::open_stores(&config).await.map_err(describe)?;
    let state = app::build_state(config, stores);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = kneo_server::worker::spawn_in_process(&state, stopped);
    println!("kneo worker: {} worker(s) claiming runs", workers.len());
    shutdown_signal().await;
    let _ = stop.send(true);
    let grace = state.config.shutdown_timeout;
    if tokio::time::timeout(grace, futures_util::future::join_all(workers))
        .await
        .is_err()
    {
        tracing::warn!(target: "kneo_serv.service", "workers did not finish within the shutdown timeout; their runs return when the leases expire");
    }
    Ok(())
}

async fn sweep(config: Config, json: bool) -> Result<(), String> {
    let stores = app::open_stores(&config).await.map_err(describe)?;
    let state = app::build_state(config, stores);
    let now = kneo_server::clock::now_text();
    let overdue = state
        .stores
        .runs
        .overdue_runs(&now, 10_000)
        .await
        .map_err(|e| e.to_string())?;
    for run in &overdue {
        state.platform.time_out(&run.id, None).await;
    }
    let tasks = state
        .platform
        .sweep_human_tasks()
        .await
        .map_err(|e| format!("{e:?}"))?;
    state.service_events.flush().await;
    if json {
        println!(
            "{}",
            serde_json::json!({"timed_out_runs": overdue.len(), "human_tasks_processed": tasks})
        );
    } else {
        println!(
            "timed out {} overdue run(s); processed {tasks} expired human task(s)",
            overdue.len()
        );
    }
    Ok(())
}

/// `kneo spec validate`: validates a file against this build's registries, offline.
fn validate_file(path: &std::path::Path, json: bool) -> ExitCode {
    use kneo_server::spec::parse::{SpecLimits, parse_yaml};
    let limits = SpecLimits::default();
    let outcome = std::fs::read(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
        .and_then(|bytes| {
            parse_yaml(&bytes, &limits).map_err(|error| format!("{}: {error}", path.display()))
        });
    let value = match outcome {
        Ok(value) => value,
        Err(message) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "error": message, "diagnostics": []})
                );
            } else {
                eprintln!("kneo: {message}");
            }
            return ExitCode::from(2);
        }
    };
    let engine = kneo_server::engine::Engine::with_builtins();
    // Skill sources must lie in the spec root the service would use: KNEO_SERV_SPEC_ROOT, else
    // the working directory (as kneo-serv's CLI does).
    let root = std::env::var_os("KNEO_SERV_SPEC_ROOT")
        .filter(|root| !root.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let validation =
        kneo_server::platform::specs::validate_for_this_build(&value, &engine, Some(&root));
    let valid = validation.valid();
    if json {
        let report = serde_json::json!({
            "agent_name": validation.spec.as_ref().map(|s| s.agent.name.clone()),
            "workflow_name": validation.spec.as_ref().and_then(|s| s.workflow.as_ref()).and_then(|w| w.name.clone()),
        });
        println!(
            "{}",
            serde_json::json!({"valid": valid, "diagnostics": validation.diagnostics, "report": report})
        );
    } else {
        for diagnostic in &validation.diagnostics {
            let severity = format!("{:?}", diagnostic.severity).to_lowercase();
            println!(
                "{severity} {} at {}: {}",
                diagnostic.code,
                if diagnostic.path.is_empty() {
                    "(document)"
                } else {
                    &diagnostic.path
                },
                diagnostic.message
            );
            if let Some(suggestion) = &diagnostic.suggestion {
                println!("  fix: {suggestion}");
            }
        }
        println!(
            "{}: {}",
            path.display(),
            if valid {
                "valid"
            } else {
                "invalid (runbook § 6.1)"
            }
        );
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!(target: "kneo_serv.service", event = "shutdown", "shutting down: no new requests; waiting for running work");
}
