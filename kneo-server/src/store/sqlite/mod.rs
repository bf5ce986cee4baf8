//! The embedded store: SQLite in WAL mode at `.kneo/kneo_runs.sqlite`.
//!
//! One writer thread with group commit (SQLite allows one writer at a time anyway, see
//! [`writer`]) and a few reader connections used from tokio's blocking pool. `synchronous=NORMAL` in WAL mode keeps every
//! committed transaction across a process crash (`kill -9`); only a power loss can lose the last
//! commits, which is the documented trade-off of the embedded store.
//!
//! - [`connection`]: opening, pragmas, migrations and error classification.
//! - [`runs`]: runs, the queue and progress writes.
//! - [`records`]: trace, checkpoints, audit, idempotency, locks and service events.
//! - [`writer`]: the writer thread.

mod connection;
mod policies;
mod records;
mod rows;
mod runs;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::Value;

pub use connection::{open_connection, schema_version_of};

use super::{
    AuditEvent, AuditQuery, CheckpointQuery, ClaimRequest, ClaimResult, CreateOutcome,
    EnvironmentPolicyRecord, ErrorKind, IdempotencyBegin, IdempotencyBinding, IdempotencyRequest,
    Page, PageQuery, Progress, QueueCounts, QueueEntry, QueueRecord, RunQuery, RunRecord,
    SaveOutcome, ServiceEvent, Store, StoreError, StoreKind, TraceQuery,
};

const READER_CONNECTIONS: usize = 4;
/// 512 KiB of page cache per reader connection (negative `cache_size` is in KiB).
const READER_CACHE_PRAGMA: &str = "PRAGMA cache_size = -512;";

/// The embedded run-state store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// A database written by a newer kneo is refused with both schema versions named.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::from_io(
                    &format!("creating the state directory {}", parent.display()),
                    &e,
                )
            })?;
        }
        let mut writer = open_connection(path)?;
        connection::migrate(&mut writer)?;
        let writer = writer::Writer::start(writer)?;
        let readers = (0..READER_CONNECTIONS)
            .map(|_| {
                let reader = open_connection(path)?;
                // Readers look up rows by key; the OS page cache serves repeats, so each keeps
                // a small cache of its own instead of SQLite's default 2 MiB.
                reader
                    .execute_batch(READER_CACHE_PRAGMA)
                    .map_err(|e| connection::classify(e, "sizing a reader's page cache"))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer,
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `operation` in the writer thread, inside a transaction, and waits for the commit.
    async fn write<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(operation).await
    }

    /// Runs `operation` on one of the reader connections off the async runtime.
    async fn read<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let index = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let connection = inner.readers[index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            operation(&connection)
        })
        .await
        .map_err(|error| StoreError::internal(format!("store task failed: {error}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Sqlite
    }

    async fn probe(&self) -> Result<(), StoreError> {
        // The open connections keep working on a deleted file, so look at the path as well.
        let path = self.inner.path.clone();
        if !path.exists() {
            return Err(StoreError::new(
                ErrorKind::NotFound,
                format!("the SQLite file {} no longer exists", path.display()),
            ));
        }
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM runs LIMIT 1)",
                    [],
                    |_| Ok(()),
                )
                .map_err(|e| connection::classify(e, "probing the runs table"))
        })
        .await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(schema_version_of).await
    }

    async fn create_run(
        &self,
        run: &RunRecord,
        queue: Option<QueueEntry>,
        audit: &[AuditEvent],
        idempotency: Option<&IdempotencyBinding>,
    ) -> Result<CreateOutcome, StoreError> {
        let (run, audit) = (rows::RunRow::new(run)?, rows::AuditInsert::all(audit)?);
        let idempotency = idempotency.cloned();
        self.write(move |connection| {
            runs::create_run(
                connection,
                &run,
                queue.as_ref(),
                &audit,
                idempotency.as_ref(),
            )
        })
        .await
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |connection| runs::get_run(connection, &run_id))
            .await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        let query = query.clone();
        self.read(move |connection| runs::list_runs(connection, &query))
            .await
    }

    async fn save_progress(&self, progress: &Progress) -> Result<SaveOutcome, StoreError> {
        let progress = rows::PreparedProgress::new(progress)?;
        self.write(move |connection| runs::save_progress(connection, &progress))
            .await
    }

    async fn claim_runs(&self, request: &ClaimRequest) -> Result<ClaimResult, StoreError> {
        let request = request.clone();
        self.write(move |connection| runs::claim_runs(connection, &request))
            .await
    }

    async fn renew_lease(
        &self,
        run_id: &str,
        worker_id: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (run_id, worker_id) = (run_id.to_string(), worker_id.to_string());
        self.write(move |connection| runs::renew_lease(connection, &run_id, &worker_id, lease))
            .await
    }

    async fn release_lease(&self, run_id: &str, worker_id: &str) -> Result<(), StoreError> {
        let (run_id, worker_id) = (run_id.to_string(), worker_id.to_string());
        self.write(move |connection| runs::release_lease(connection, &run_id, &worker_id))
            .await
    }

    async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        self.read(runs::queue_counts).await
    }

    async fn queue_entry(&self, run_id: &str) -> Result<Option<QueueRecord>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |connection| runs::queue_entry(connection, &run_id))
            .await
    }

    async fn list_trace(
        &self,
        run_id: &str,
        query: &TraceQuery,
    ) -> Result<Page<Value>, StoreError> {
        let (run_id, query) = (run_id.to_string(), query.clone());
        self.read(move |connection| records::list_trace(connection, &run_id, &query))
            .await
    }

    async fn list_checkpoints(
        &self,
        run_id: &str,
        query: &CheckpointQuery,
    ) -> Result<Page<Value>, StoreError> {
        let (run_id, query) = (run_id.to_string(), query.clone());
        self.read(move |connection| records::list_checkpoints(connection, &run_id, &query))
            .await
    }

    async fn last_checkpoint(&self, run_id: &str) -> Result<Option<Value>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |connection| records::last_checkpoint(connection, &run_id))
            .await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let events = rows::AuditInsert::all(events)?;
        self.write(move |connection| records::insert_audit(connection, &events))
            .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        let query = query.clone();
        self.read(move |connection| records::list_audit(connection, &query))
            .await
    }

    async fn idempotency_begin(
        &self,
        request: &IdempotencyRequest,
    ) -> Result<IdempotencyBegin, StoreError> {
        let request = request.clone();
        self.write(move |connection| records::idempotency_begin(connection, &request))
            .await
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), StoreError> {
        let (scope, key, body) = (scope.to_string(), key.to_string(), body.clone());
        self.write(move |connection| {
            records::idempotency_complete(connection, &scope, &key, status, &body)
        })
        .await
    }

    async fn idempotency_abandon(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError> {
        let (scope, key, hash) = (scope.to_string(), key.to_string(), request_hash.to_string());
        self.write(move |connection| records::idempotency_abandon(connection, &scope, &key, &hash))
            .await
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |connection| records::try_lock(connection, &name, &owner, ttl))
            .await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |connection| records::unlock(connection, &name, &owner))
            .await
    }

    async fn record_service_event(&self, event: &ServiceEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.write(move |connection| records::insert_service_event(connection, &event))
            .await
    }

    async fn list_service_events(
        &self,
        query: &PageQuery,
    ) -> Result<Page<ServiceEvent>, StoreError> {
        let query = query.clone();
        self.read(move |connection| records::list_service_events(connection, &query))
            .await
    }

    async fn leases_of(&self, owner: &str, quiet_for: Duration) -> Result<Vec<String>, StoreError> {
        let owner = owner.to_string();
        self.read(move |connection| runs::leases_of(connection, &owner, quiet_for))
            .await
    }

    async fn requeue_orphaned_runs(&self) -> Result<u64, StoreError> {
        self.write(runs::requeue_orphaned_runs).await
    }

    async fn overdue_runs(&self, now: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let now = now.to_string();
        self.read(move |connection| runs::overdue_runs(connection, &now, limit))
            .await
    }

    async fn list_environment_policies(&self) -> Result<Vec<EnvironmentPolicyRecord>, StoreError> {
        self.read(policies::list).await
    }

    async fn get_environment_policy(
        &self,
        environment: &str,
    ) -> Result<Option<EnvironmentPolicyRecord>, StoreError> {
        let environment = environment.to_string();
        self.read(move |connection| policies::get(connection, &environment))
            .await
    }

    async fn put_environment_policy(
        &self,
        record: &EnvironmentPolicyRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |connection| policies::put(connection, &record))
            .await
    }
}
