//! The subcommands of `kneo`, one module per command group, and what they share: the runtime
//! every service-side command runs on, and how a startup error is described.

pub mod config;
pub mod human;
pub mod service;
pub mod spec;

use kneo_client::Exit;
use kneo_server::app::StartupError;
use kneo_server::config::Config;

/// Threads for blocking work; see [`with_runtime`].
const MAX_BLOCKING_THREADS: usize = 12;

/// Reads the configuration, starts logging and a runtime, and runs `command` on it.
pub fn with_runtime<F, Fut>(command: F) -> Exit
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kneo: configuration error: {error}");
            return Exit::Usage;
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
            return Exit::Failed;
        }
    };
    match runtime.block_on(command(config)) {
        Ok(()) => Exit::Success,
        Err(message) => {
            eprintln!("kneo: {message}");
            Exit::Failed
        }
    }
}

pub fn describe(error: StartupError) -> String {
    match error {
        StartupError::Store(error) => format!(
            "cannot open the store ({}): {}",
            error.kind,
            kneo_server::redact::redacted_text(&error.message)
        ),
        other => other.to_string(),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
