//! The HTTP listener and its connections: a deep listen backlog, a cap on open connections that
//! closes idle ones first and answers `503` when every connection is busy, a header-read timeout,
//! and the open-file limit raised as far as the system allows.
//!
//! Thousands of idle or half-sent connections must not make the service unreachable: a connection
//! that has not sent a complete request head within `KNEO_SERV_HTTP_HEADER_READ_TIMEOUT_SECONDS`
//! is closed by hyper (this covers a new connection, a slow head, and an idle keep-alive
//! connection between two requests); when the cap is reached, the oldest connection with no
//! request in flight is closed to make room, so a new `/healthz` connection is always served.
//! Only when every connection has a request in flight does a new one get `503
//! too_many_connections` and is closed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// Pending connections the kernel queues for us (it caps this at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Headers hyper parses in one request; kneo's own, lower limit answers with the envelope.
const PARSED_HEADERS: usize = 500;

/// File descriptors kept for everything but client connections (store files, the Postgres pool,
/// continuation files, spec reads, child processes of command functions and MCP servers).
const RESERVED_FILES: u64 = 256;

/// The smallest connection cap derived from a low open-file limit.
const MIN_CONNECTIONS: usize = 64;

/// Raises the soft open-file limit to the hard limit; returns `(before, after)` for the log.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    if limit.current == limit.maximum {
        return Ok((before, before));
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(std::io::Error::from)?;
    let after = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    Ok((before, after))
}

/// The connection cap: the configured one, or what the open-file limit leaves room for.
pub fn connection_cap(configured: Option<usize>) -> usize {
    if let Some(cap) = configured {
        return cap;
    }
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let room = files.saturating_sub(RESERVED_FILES);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, 100_000)
}

/// Binds `address` with a listen backlog of [`LISTEN_BACKLOG`] (tokio's own bind uses 128, so a
/// burst of connects waited for SYN retries).
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for candidate in tokio::net::lookup_host(address).await? {
        match bind_one(candidate) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{address} resolves to no address"),
        )
    }))
}

fn bind_one(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// One open connection, as the cap sees it.
struct Slot {
    /// Requests of this connection being served right now.
    in_flight: Arc<AtomicUsize>,
    /// Cancelled to close the connection gracefully (an idle one closes at once).
    close: CancellationToken,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    slots: Mutex<BTreeMap<u64, Slot>>,
    next_id: AtomicU64,
}

/// What to do with a connection just accepted.
enum Admission {
    Serve {
        id: u64,
        in_flight: Arc<AtomicUsize>,
        close: CancellationToken,
    },
    Refuse,
}

impl Registry {
    fn admit(&self, cap: usize, shutdown: &CancellationToken) -> Admission {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let closing = slots.values().filter(|s| s.close.is_cancelled()).count();
        if slots.len() - closing >= cap {
            // Make room by closing the oldest connection that waits for a request.
            let idle = slots.values().find(|slot| {
                !slot.close.is_cancelled() && slot.in_flight.load(Ordering::Acquire) == 0
            });
            match idle {
                Some(slot) => slot.close.cancel(),
                None => return Admission::Refuse,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let close = shutdown.child_token();
        slots.insert(
            id,
            Slot {
                in_flight: in_flight.clone(),
                close: close.clone(),
            },
        );
        Admission::Serve {
            id,
            in_flight,
            close,
        }
    }

    fn remove(&self, id: u64) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn open(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Counts a request as in flight, on its connection and service-wide, while its response is
/// produced (dropped with the request's future, also when the client goes away).
struct InFlight {
    connection: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl InFlight {
    fn enter(connection: &Arc<AtomicUsize>, metrics: &Arc<Metrics>) -> InFlight {
        connection.fetch_add(1, Ordering::AcqRel);
        metrics
            .http_requests_in_flight
            .fetch_add(1, Ordering::Relaxed);
        InFlight {
            connection: connection.clone(),
            metrics: metrics.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connection.fetch_sub(1, Ordering::AcqRel);
        self.metrics
            .http_requests_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then closes every connection
/// gracefully (requests in flight finish) and waits for them up to `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let tracker = TaskTracker::new();
    let mut accept_failures: u32 = 0;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => {
                accept_failures = 0;
                accepted
            }
            Err(error) => {
                accept_failures = accept_failures.saturating_add(1);
                if accept_failures == 1 || accept_failures.is_multiple_of(100) {
                    tracing::warn!(target: "kneo_serv.service", %error, open = registry.open(), failures = accept_failures,
                        "accepting a connection failed (runbook § 1.6: raise the open-file limit or lower KNEO_SERV_MAX_CONNECTIONS)");
                }
                // Out of descriptors: let closing connections give some back.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match registry.admit(settings.max_connections, &shutdown) {
            Admission::Refuse => {
                metrics
                    .http_connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracker.spawn(refuse(stream, settings.max_connections));
            }
            Admission::Serve {
                id,
                in_flight,
                close,
            } => {
                let registry = registry.clone();
                let router = router.clone();
                let settings = settings.clone();
                let metrics = metrics.clone();
                tracker.spawn(async move {
                    metrics.http_connections.fetch_add(1, Ordering::Relaxed);
                    serve_connection(stream, router, &settings, in_flight, &metrics, close).await;
                    metrics.http_connections.fetch_sub(1, Ordering::Relaxed);
                    registry.remove(id);
                });
            }
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(target: "kneo_serv.service", open = registry.open(),
            "connections still open after the shutdown timeout; closing them");
    }
    Ok(())
}

/// Serves one connection until it ends or `close` asks it to finish.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    settings: &ConnectionSettings,
    in_flight: Arc<AtomicUsize>,
    metrics: &Arc<Metrics>,
    close: CancellationToken,
) {
    let metrics = metrics.clone();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let guard = InFlight::enter(&in_flight, &metrics);
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            drop(guard);
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        .max_headers(PARSED_HEADERS)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(target: "kneo_serv.service", %error, "connection ended with an error");
                }
                return;
            }
            _ = close.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers a connection over the cap with `503 too_many_connections` and closes it.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = serde_json::json!({"detail": {
        "error": "too_many_connections",
        "message": format!("The service holds its maximum of {cap} connections, each with a request in flight (KNEO_SERV_MAX_CONNECTIONS); retry shortly (runbook § 1.6)."),
        "max_connections": cap,
    }})
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
