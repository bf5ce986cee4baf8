//! `kneo service serve` (the HTTP API with in-process workers) and `kneo service worker` (queue
//! workers without the API, Postgres only).

use clap::Subcommand;
use kneo_client::Exit;
use kneo_server::app::{self, StartupError};
use kneo_server::config::Config;

use super::{describe, shutdown_signal, with_runtime};

#[derive(Subcommand)]
pub enum ServiceCommand {
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

pub fn run(command: ServiceCommand) -> Exit {
    with_runtime(|config| async move {
        match command {
            ServiceCommand::Serve { host, port } => serve(config, &host, port).await,
            ServiceCommand::Worker { concurrency } => worker(config, concurrency).await,
        }
    })
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
