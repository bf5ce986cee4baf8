//! The service's own history, kept in the `service_events` table: every start (version, schema
//! version, store kind, host), every readiness transition with the failing checks, bursts of 5xx.
//!
//! This is what `kneo-ops rollback plan` reads to tell a bad deploy from a bad dependency.
//! Events are queued in memory and flushed to the store, so a start or a transition that happens
//! while the store is down is still recorded once it returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use crate::readiness::Readiness;
use crate::store::{ServiceEvent, Store};

/// Events kept in memory while the store is unreachable; older ones are dropped past this.
const MAX_PENDING: usize = 1_000;

/// 5xx answers within one monitor tick that make a burst worth recording.
pub const SERVER_ERROR_BURST: u64 = 5;

/// Whether the service was ready, and its failing checks with their error kinds.
type ReadinessSnapshot = (bool, Vec<(String, String)>);

/// Records service events for one process.
#[derive(Clone)]
pub struct ServiceEvents {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    version: String,
    host: String,
    pending: Mutex<Vec<ServiceEvent>>,
    /// The last readiness seen: ready, and the failing checks with their error kinds.
    last_readiness: Mutex<Option<ReadinessSnapshot>>,
    server_errors: AtomicU64,
}

impl ServiceEvents {
    pub fn new(store: Arc<dyn Store>, version: &str, host: &str) -> ServiceEvents {
        ServiceEvents {
            inner: Arc::new(Inner {
                store,
                version: version.to_string(),
                host: host.to_string(),
                pending: Mutex::new(Vec::new()),
                last_readiness: Mutex::new(None),
                server_errors: AtomicU64::new(0),
            }),
        }
    }

    /// Queues an event and tries to write it.
    pub fn record(&self, event_type: &str, details: Value) {
        let event = ServiceEvent {
            id: crate::clock::new_id(),
            event_type: event_type.to_string(),
            created_at: crate::clock::now_text(),
            version: self.inner.version.clone(),
            host: self.inner.host.clone(),
            details,
        };
        {
            let mut pending = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pending.len() >= MAX_PENDING {
                pending.remove(0);
            }
            pending.push(event);
        }
        let events = self.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { events.flush().await });
        }
    }

    /// Writes queued events; those that fail stay queued for the next flush.
    pub async fn flush(&self) {
        let batch: Vec<ServiceEvent> = std::mem::take(
            &mut *self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut unwritten = Vec::new();
        for event in batch {
            if !unwritten.is_empty() {
                unwritten.push(event);
                continue;
            }
            if let Err(error) = self.inner.store.record_service_event(&event).await {
                tracing::debug!(target: "kneo_serv.service", %error, "service event kept for later");
                unwritten.push(event);
            }
        }
        if !unwritten.is_empty() {
            let mut pending = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            unwritten.append(&mut pending);
            *pending = unwritten;
        }
    }

    /// Records a readiness transition (and the first observation after start).
    pub fn observe_readiness(&self, readiness: &Readiness) {
        let failing: Vec<(String, String)> = readiness
            .failing()
            .into_iter()
            .map(|name| {
                let kind = readiness.checks[&name]
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("failed")
                    .to_string();
                (name, kind)
            })
            .collect();
        let current = (readiness.ready, failing);
        let previous = {
            let mut last = self
                .inner
                .last_readiness
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.as_ref() == Some(&current) {
                return;
            }
            last.replace(current.clone())
        };
        let (ready, failing) = current;
        let failing: serde_json::Map<String, Value> = failing
            .into_iter()
            .map(|(name, kind)| (name, json!(kind)))
            .collect();
        let failing_text = Value::Object(failing.clone()).to_string();
        tracing::info!(target: "kneo_serv.service", event = "readiness_changed", ready, failing = %failing_text);
        self.record(
            "readiness.changed",
            json!({
                "ready": ready,
                "failing": failing,
                "previous_ready": previous.map(|(ready, _)| ready),
            }),
        );
    }

    /// Counts a 5xx answer; the monitor turns a burst of them into an event.
    pub fn note_server_error(&self) {
        self.inner.server_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Called once per monitor tick: records a burst if enough 5xx answers came since the last.
    pub fn close_error_window(&self, window_seconds: f64) {
        let count = self.inner.server_errors.swap(0, Ordering::Relaxed);
        if count >= SERVER_ERROR_BURST {
            self.record(
                "http.5xx_burst",
                json!({"count": count, "window_seconds": window_seconds}),
            );
        }
    }

    /// Events not yet written (for tests and the shutdown path).
    pub fn pending_count(&self) -> usize {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Reads the recorded service events straight from a store, oldest first, without starting a
/// service or migrating anything: for `kneo-ops rollback plan` when the API itself is down, or
/// when its schema is from another version.
pub mod history {
    use serde_json::Value;

    use crate::backup::StoreLocation;
    use crate::store::{ServiceEvent, StoreError};

    pub async fn read(location: &StoreLocation) -> Result<Vec<ServiceEvent>, StoreError> {
        match location {
            StoreLocation::Sqlite { state_dir } => {
                let path = state_dir.join("kneo_runs.sqlite");
                tokio::task::spawn_blocking(move || read_sqlite(&path))
                    .await
                    .map_err(|error| {
                        StoreError::internal(format!("history task failed: {error}"))
                    })?
            }
            StoreLocation::Postgres { url } => read_postgres(url).await,
        }
    }

    fn read_sqlite(path: &std::path::Path) -> Result<Vec<ServiceEvent>, StoreError> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let classify = |error: rusqlite::Error| {
            StoreError::internal(format!(
                "reading service events from {}: {error}",
                path.display()
            ))
        };
        let connection = rusqlite::Connection::open_with_flags(path, flags).map_err(classify)?;
        let mut statement = connection
            .prepare("SELECT id, event_type, created_at, version, host, details FROM service_events ORDER BY position")
            .map_err(classify)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(classify)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, event_type, created_at, version, host, details)| ServiceEvent {
                    id,
                    event_type,
                    created_at,
                    version,
                    host,
                    details: serde_json::from_str(&details).unwrap_or(Value::Null),
                },
            )
            .collect())
    }

    async fn read_postgres(url: &str) -> Result<Vec<ServiceEvent>, StoreError> {
        let target = crate::postgres_client::PostgresTarget::from_url(url).map_err(|error| {
            StoreError::internal(format!(
                "reading service events from {}: {error}",
                crate::redact::redact_dsn(url)
            ))
        })?;
        let safe = target.describe().to_string();
        let failed = |what: &str, error: tokio_postgres::Error| {
            StoreError::internal(format!(
                "{what} ({safe}): {}",
                crate::postgres_client::failure::explain(&error)
            ))
        };
        let (client, connection) = target
            .connect()
            .await
            .map_err(|e| failed("connecting", e))?;
        let driver = tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT id, event_type, created_at, version, host, details FROM service_events ORDER BY position",
                &[],
            )
            .await
            .map_err(|e| failed("reading service events", e));
        driver.abort();
        Ok(rows?
            .into_iter()
            .map(|row| ServiceEvent {
                id: row.get(0),
                event_type: row.get(1),
                created_at: crate::clock::format(row.get::<_, chrono::DateTime<chrono::Utc>>(2)),
                version: row.get(3),
                host: row.get(4),
                details: row.get(5),
            })
            .collect())
    }
}
