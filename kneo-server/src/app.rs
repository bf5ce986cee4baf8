//! Building the service from its configuration and serving it until shutdown.
//!
//! [`start`] opens the stores (refusing a schema newer than this binary, tolerating an unreachable
//! Postgres), records the start, starts the workers and the monitor, and serves the API on the
//! given listener until the shutdown future resolves. Tests bind `127.0.0.1:0` and call it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::platform::Platform;
use crate::service_events::ServiceEvents;
use crate::store::continuation_files::FileContinuationStore;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{ErrorKind, StoreError, Stores};
use crate::{readiness, worker};

/// The commit this binary was built from, when the build knew it.
pub const COMMIT: Option<&str> = option_env!("KNEO_BUILD_COMMIT");

/// Who this process is, for service events and `GET /v1/health`.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
}

impl Instance {
    pub fn current() -> Instance {
        Instance {
            id: crate::clock::new_id(),
            host: hostname(),
            pid: std::process::id(),
            started_at: crate::clock::now_text(),
        }
    }
}

/// The host's name (`uname -n`, which is what `gethostname` reads too).
fn hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub platform: Arc<Platform>,
    pub service_events: ServiceEvents,
    pub instance: Arc<Instance>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(StoreError),
    #[error("cannot listen on {address}: {error}")]
    Listen {
        address: String,
        error: std::io::Error,
    },
}

/// How long start-up waits for Postgres before starting degraded.
const STARTUP_STORE_WAIT: Duration = Duration::from_secs(3);

/// Opens the configured stores.
///
/// SQLite problems are fatal (the file is ours). An unreachable Postgres is not: the service starts
/// degraded and the store reconnects by itself; only a schema newer than this binary is fatal.
pub async fn open_stores(config: &Config) -> Result<Stores, StartupError> {
    match &config.postgres_target {
        None => {
            let runs = SqliteStore::open(&config.sqlite_path()).map_err(StartupError::Store)?;
            let continuations = FileContinuationStore::new(&config.continuations_dir());
            Ok(Stores {
                runs: Arc::new(runs),
                continuations: Arc::new(continuations),
                continuation_kind: "files",
            })
        }
        Some(target) => {
            let store = PostgresStore::with_target(target.clone(), config.postgres_pool_size)
                .map_err(StartupError::Store)?;
            match tokio::time::timeout(STARTUP_STORE_WAIT, store.ensure_ready()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) if error.kind == ErrorKind::SchemaTooNew => {
                    return Err(StartupError::Store(error));
                }
                Ok(Err(error)) => {
                    let section = readiness::runbook_section(
                        "run_state_store",
                        Some(error.kind.as_str()),
                        kneo_triage::matrix::Store::Postgres,
                    );
                    tracing::warn!(target: "kneo_serv.service", error = %crate::redact::redacted_text(&error.message),
                    kind = error.kind.as_str(), "Postgres is not usable yet; starting degraded (runbook § {section})")
                }
                Err(_) => tracing::warn!(target: "kneo_serv.service", kind = "timeout",
                    "Postgres did not answer within 3 s; starting degraded (runbook § 2.2)"),
            }
            let continuations = store.continuation_store();
            Ok(Stores {
                runs: Arc::new(store),
                continuations: Arc::new(continuations),
                continuation_kind: "postgres",
            })
        }
    }
}

/// Builds the shared state on opened stores.
pub fn build_state(config: Config, stores: Stores) -> AppState {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let instance = Arc::new(Instance::current());
    let engine = Arc::new(Engine::with_builtins());
    let service_events =
        ServiceEvents::new(stores.runs.clone(), crate::drill::version(), &instance.host);
    let platform = Arc::new(Platform::new(
        config.clone(),
        stores.clone(),
        engine.clone(),
        metrics.clone(),
        instance.id.clone(),
    ));
    AppState {
        config,
        stores,
        metrics,
        engine,
        platform,
        service_events,
        instance,
    }
}

/// A running service: its address and the handle that stops it.
pub struct RunningService {
    pub address: std::net::SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningService {
    /// Stops accepting requests, stops the workers, and waits for them to hand back their runs.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        match self.server.await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

/// Starts everything on `listener` and serves until [`RunningService::stop`].
pub async fn start(state: AppState, listener: TcpListener) -> std::io::Result<RunningService> {
    let address = listener.local_addr()?;
    let (shutdown, mut stopped) = watch::channel(false);
    record_start(&state).await;
    if !state.config.unread_variables.is_empty() {
        tracing::warn!(target: "kneo_serv.service", variables = %state.config.unread_variables.join(","),
            "these kneo-serv variables are set but kneo does not act on them yet; they change nothing \
             (docs/configuration.md, \"kneo-serv variables that kneo does not read\")");
    }
    let workers = worker::spawn_in_process(&state, shutdown.subscribe());
    let monitor = tokio::spawn(monitor(state.clone(), shutdown.subscribe()));
    let router = crate::api::router(state.clone());
    let serving_state = state.clone();
    let settings = crate::connections::ConnectionSettings {
        max_connections: crate::connections::connection_cap(state.config.max_connections),
        header_read_timeout: state.config.http_header_read_timeout,
    };
    let server = tokio::spawn(async move {
        let stop_serving = tokio_util::sync::CancellationToken::new();
        let until_stopped = stop_serving.clone();
        tokio::spawn(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            until_stopped.cancel();
        });
        let grace = serving_state.config.shutdown_timeout;
        let result = crate::connections::serve(
            listener,
            router,
            settings,
            serving_state.metrics.clone(),
            stop_serving,
            grace,
        )
        .await;
        // Work whose client went away is still running: let it end before the workers stop.
        if !serving_state.platform.finish_owned_work(grace).await {
            tracing::warn!(target: "kneo_serv.service", "request work did not finish within the shutdown timeout; its runs return to the queue when their leases expire");
        }
        if tokio::time::timeout(grace, futures_util::future::join_all(workers))
            .await
            .is_err()
        {
            tracing::warn!(target: "kneo_serv.service", "workers did not stop within the shutdown timeout; their runs return to the queue when the lease expires");
        }
        monitor.abort();
        serving_state.service_events.record(
            "service.stopped",
            serde_json::json!({"pid": serving_state.instance.pid}),
        );
        serving_state.service_events.flush().await;
        result
    });
    Ok(RunningService {
        address,
        state,
        shutdown,
        server,
    })
}

/// Serves until `shutdown` resolves (the `kneo service serve` path).
pub async fn serve_until(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let running = start(state, listener).await?;
    shutdown.await;
    running.stop().await
}

async fn record_start(state: &AppState) {
    let schema_version = state.stores.runs.schema_version().await.ok();
    state.service_events.record(
        "service.started",
        serde_json::json!({
            "version": crate::drill::version(),
            "commit": COMMIT,
            "schema_version": schema_version,
            "store_kind": state.stores.runs.kind().as_str(),
            "pid": state.instance.pid,
            "instance_id": state.instance.id,
            "auth_enabled": state.config.auth_enabled,
            "worker_concurrency": state.config.worker.concurrency,
        }),
    );
    state.service_events.flush().await;
}

/// Background upkeep: readiness transitions, reconnection, pending service events, 5xx bursts,
/// expired human tasks and overdue runs.
async fn monitor(state: AppState, mut stopped: watch::Receiver<bool>) {
    let interval = state.config.sweep_interval;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let readiness = readiness::evaluate(&state).await;
        state.service_events.observe_readiness(&readiness);
        state
            .service_events
            .close_error_window(interval.as_secs_f64());
        state.service_events.flush().await;
        if readiness.ready {
            state.platform.sweep().await;
        }
    }
}
