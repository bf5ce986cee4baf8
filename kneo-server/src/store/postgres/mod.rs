//! The production store: Postgres through tokio-postgres and a deadpool pool, connecting with
//! [`crate::postgres_client`] (libpq's `sslmode` and certificate settings, rustls).
//!
//! Starting never needs the server. [`PostgresStore::new`] only parses the URL; connecting and
//! migrating happen in [`PostgresStore::ensure_ready`], whose success is cached, and every
//! operation calls it first while the store is not ready. A service started during a Postgres
//! outage therefore recovers by itself within seconds of Postgres coming back, without a restart.
//! Every operation is time-bounded (pool timeouts, then an overall limit), so a dead or hanging
//! server shows as `connection_refused` or `timeout` at once instead of a stuck request, and a
//! connection abandoned by a timeout is closed rather than handed to the next operation.
//!
//! - [`errors`]: SQLSTATE codes and I/O errors → the stable [`ErrorKind`]s `/readyz` shows.
//! - [`migrate`]: `migrations/*.sql` under an advisory lock, tracked in `schema_migrations`.
//! - [`runs`]: runs, the queue (`FOR UPDATE SKIP LOCKED` claims) and progress writes.
//! - [`records`]: trace, checkpoints, audit, idempotency, locks and service events.
//! - [`continuations`]: the continuation store in the same database.
//! - [`columns`], [`sql`]: value conversions and statement helpers.

mod columns;
mod continuations;
mod errors;
mod migrate;
mod policies;
mod records;
mod runs;
mod sql;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio::time::Instant;

pub use continuations::PostgresContinuationStore;

use self::errors::Failure;
use self::sql::column;
use super::{
    AuditEvent, AuditQuery, CheckpointQuery, ClaimRequest, ClaimResult, CreateOutcome,
    EnvironmentPolicyRecord, ErrorKind, IdempotencyBegin, IdempotencyBinding, IdempotencyRequest,
    Page, PageQuery, Progress, QueueCounts, QueueEntry, QueueRecord, RunQuery, RunRecord,
    SaveOutcome, ServiceEvent, Store, StoreError, StoreKind, TraceQuery,
};
use crate::postgres_client::PostgresTarget;
use crate::redact::redacted_text;

/// TCP connect limit per attempt; the server is usually close, so a slow connect means trouble.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Opening a connection (including the handshake) or recycling one: a dead server shows fast.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting for a free connection: under a burst every connection is busy for a while, and a
/// request should queue rather than fail; the operation limit still bounds the whole wait.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(8);
/// An operation's own attempt at getting the store ready (connect + migrate).
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole of one operation, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of a transaction Postgres aborted to resolve a deadlock or serialization conflict.
const ATTEMPTS: u32 = 4;
/// Idle time before TCP keepalives start, so a server that vanished without closing the socket
/// is noticed on idle pooled connections too.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// The Postgres run-state store. Cheap to clone; clones share the pool and readiness.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `host:port/database` of the server, for messages; never the password.
    target: String,
    /// Set once the schema is known to be migrated; cleared when an operation finds it gone or
    /// newer than this binary.
    ready: AtomicBool,
    /// One readiness attempt at a time: the others wait for its outcome instead of piling on.
    readying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.target)
            .field("ready", &self.inner.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Prepares a store for `url` with up to `pool_size` connections, without connecting: an
    /// unreachable server is not an error here (the service starts degraded). Only a URL that does
    /// not parse is refused.
    pub fn new(url: &str, pool_size: usize) -> Result<PostgresStore, StoreError> {
        let target = PostgresTarget::from_url(url).map_err(|error| {
            StoreError::internal(redacted_text(&format!(
                "the Postgres URL {} cannot be used: {error}; check KNEO_SERV_DATABASE_URL",
                crate::redact::redact_dsn(url)
            )))
        })?;
        PostgresStore::with_target(target, pool_size)
    }

    /// Prepares a store for an already parsed target (the service parses its URL once, at start).
    pub fn with_target(
        mut target: PostgresTarget,
        pool_size: usize,
    ) -> Result<PostgresStore, StoreError> {
        let config = target.config_mut();
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE);
        if config.get_application_name().is_none() {
            // Lets a DBA tell kneo's sessions apart in pg_stat_activity.
            config.application_name("kneo");
        }
        let target_name = target.describe().to_string();
        let manager = Manager::from_config(
            target.config().clone(),
            target.connector(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let target = target_name;
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| {
                StoreError::internal(format!(
                    "building the Postgres connection pool for {target}: {error}"
                ))
            })?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                target,
                ready: AtomicBool::new(false),
                readying: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Connects and applies pending migrations, once: later calls return at once. A schema newer
    /// than this binary is refused with [`ErrorKind::SchemaTooNew`] naming both versions.
    pub async fn ensure_ready(&self) -> Result<(), StoreError> {
        self.inner.ensure_ready().await
    }

    /// Whether the schema has been found ready (and not lost since).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The continuation store in the same database, sharing this store's pool and readiness.
    pub fn continuation_store(&self) -> PostgresContinuationStore {
        PostgresContinuationStore {
            inner: self.inner.clone(),
        }
    }
}

impl Inner {
    async fn ensure_ready(&self) -> Result<(), StoreError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _turn = self.readying.lock().await;
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut client = self.connection().await?;
        migrate::migrate(&mut client)
            .await
            .map_err(|failure| failure.error)?;
        self.ready.store(true, Ordering::Release);
        tracing::info!(target: "kneo_serv.service", target_database = %self.target, "the Postgres store is ready");
        Ok(())
    }

    /// Readiness for an operation: free once ready, otherwise one bounded attempt.
    async fn ready(&self) -> Result<(), StoreError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        match tokio::time::timeout(READY_TIMEOUT, self.ensure_ready()).await {
            Ok(result) => result,
            Err(_) => Err(errors::timed_out(
                "preparing the Postgres schema",
                READY_TIMEOUT,
                &self.target,
            )),
        }
    }

    async fn connection(&self) -> Result<Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| errors::pool(error, &self.target))
    }

    /// Runs one operation on a ready store.
    async fn run<T, F>(&self, operation: &str, attempt: F) -> Result<T, StoreError>
    where
        F: AsyncFnMut(&mut Client) -> Result<T, Failure>,
    {
        self.ready().await?;
        self.run_unchecked(operation, attempt).await
    }

    /// Runs one operation on a pooled connection: time-bounded, and re-run when Postgres aborted
    /// it to break a deadlock or serialization conflict (the transaction was rolled back whole).
    async fn run_unchecked<T, F>(&self, operation: &str, mut attempt: F) -> Result<T, StoreError>
    where
        F: AsyncFnMut(&mut Client) -> Result<T, Failure>,
    {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let timed_out = || errors::timed_out(operation, OPERATION_TIMEOUT, &self.target);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut client = tokio::time::timeout_at(deadline, self.connection())
                .await
                .map_err(|_| timed_out())??;
            let result = match tokio::time::timeout_at(deadline, attempt(&mut client)).await {
                Ok(result) => result,
                Err(_) => {
                    // The connection may be half-way through an exchange; close it instead of
                    // giving it to the next operation.
                    drop(deadpool_postgres::Object::take(client));
                    return Err(timed_out());
                }
            };
            match result {
                Ok(value) => return Ok(value),
                Err(failure) if failure.retryable && tries < ATTEMPTS => {
                    tracing::debug!(target: "kneo_serv.service", operation, tries, error = %failure.error.message,
                        "Postgres aborted a transaction to resolve a conflict; running it again");
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(tries))).await;
                }
                Err(failure) => {
                    self.forget_readiness_on(&failure.error);
                    return Err(failure.error);
                }
            }
        }
    }

    /// A schema that vanished (dropped, restored over) or got newer must be looked at again before
    /// the next operation; connection trouble does not touch readiness, the pool handles that.
    fn forget_readiness_on(&self, error: &StoreError) {
        if matches!(
            error.kind,
            ErrorKind::SchemaMissing | ErrorKind::SchemaTooNew
        ) && self.ready.swap(false, Ordering::AcqRel)
        {
            tracing::warn!(target: "kneo_serv.service", kind = error.kind.as_str(), error = %error.message,
                "the Postgres schema is no longer usable; the store will check it again (runbook § 2.4)");
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.inner
            .run("probing the runs table", async |client| {
                let operation = "probing the runs table";
                // One round trip: the runs table answers, and no newer kneo has migrated past us
                // since we started (another server may share this database).
                let row = sql::query_one(
                    &*client,
                    operation,
                    "SELECT (SELECT 1 FROM runs LIMIT 1), (SELECT MAX(version) FROM schema_migrations)",
                    &[],
                )
                .await?;
                let version: Option<i64> = column(&row, 1, operation)?;
                match version {
                    Some(version) if version > crate::drill::known_schema_version() => Err(migrate::schema_too_new(version).into()),
                    _ => Ok(()),
                }
            })
            .await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        // Readable even when the schema is too new to use: that is when the number matters most.
        self.inner
            .run_unchecked("reading the schema version", async |client| {
                migrate::schema_version(&*client).await
            })
            .await
    }

    async fn create_run(
        &self,
        run: &RunRecord,
        queue: Option<QueueEntry>,
        audit: &[AuditEvent],
        idempotency: Option<&IdempotencyBinding>,
    ) -> Result<CreateOutcome, StoreError> {
        let (run, audit, idempotency) = (run.clone(), audit.to_vec(), idempotency.cloned());
        self.inner
            .run("creating a run", async move |client| {
                runs::create_run(client, &run, queue.as_ref(), &audit, idempotency.as_ref()).await
            })
            .await
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let run_id = run_id.to_string();
        self.inner
            .run("reading a run", async move |client| {
                runs::get_run(&*client, &run_id).await
            })
            .await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        let query = query.clone();
        self.inner
            .run("listing runs", async move |client| {
                runs::list_runs(&*client, &query).await
            })
            .await
    }

    async fn save_progress(&self, progress: &Progress) -> Result<SaveOutcome, StoreError> {
        let progress = progress.clone();
        self.inner
            .run("saving progress", async move |client| {
                runs::save_progress(client, &progress).await
            })
            .await
    }

    async fn claim_runs(&self, request: &ClaimRequest) -> Result<ClaimResult, StoreError> {
        let request = request.clone();
        self.inner
            .run("claiming runs", async move |client| {
                runs::claim_runs(client, &request).await
            })
            .await
    }

    async fn renew_lease(
        &self,
        run_id: &str,
        worker_id: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (run_id, worker_id) = (run_id.to_string(), worker_id.to_string());
        self.inner
            .run("renewing a lease", async move |client| {
                runs::renew_lease(&*client, &run_id, &worker_id, lease).await
            })
            .await
    }

    async fn release_lease(&self, run_id: &str, worker_id: &str) -> Result<(), StoreError> {
        let (run_id, worker_id) = (run_id.to_string(), worker_id.to_string());
        self.inner
            .run("releasing a lease", async move |client| {
                runs::release_lease(&*client, &run_id, &worker_id).await
            })
            .await
    }

    async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        self.inner
            .run("counting the queue", async |client| {
                runs::queue_counts(&*client).await
            })
            .await
    }

    async fn queue_entry(&self, run_id: &str) -> Result<Option<QueueRecord>, StoreError> {
        let run_id = run_id.to_string();
        self.inner
            .run("reading a queue record", async move |client| {
                runs::queue_entry(&*client, &run_id).await
            })
            .await
    }

    async fn list_trace(
        &self,
        run_id: &str,
        query: &TraceQuery,
    ) -> Result<Page<Value>, StoreError> {
        let (run_id, query) = (run_id.to_string(), query.clone());
        self.inner
            .run("listing trace events", async move |client| {
                records::list_trace(&*client, &run_id, &query).await
            })
            .await
    }

    async fn list_checkpoints(
        &self,
        run_id: &str,
        query: &CheckpointQuery,
    ) -> Result<Page<Value>, StoreError> {
        let (run_id, query) = (run_id.to_string(), query.clone());
        self.inner
            .run("listing checkpoints", async move |client| {
                records::list_checkpoints(&*client, &run_id, &query).await
            })
            .await
    }

    async fn last_checkpoint(&self, run_id: &str) -> Result<Option<Value>, StoreError> {
        let run_id = run_id.to_string();
        self.inner
            .run("reading the last checkpoint", async move |client| {
                records::last_checkpoint(&*client, &run_id).await
            })
            .await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.inner
            .run("recording audit events", async move |client| {
                let transaction = client
                    .transaction()
                    .await
                    .map_err(errors::database("starting a transaction"))?;
                records::insert_audit(&transaction, &events).await?;
                transaction
                    .commit()
                    .await
                    .map_err(errors::database("committing audit events"))
            })
            .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        let query = query.clone();
        self.inner
            .run("listing audit events", async move |client| {
                records::list_audit(&*client, &query).await
            })
            .await
    }

    async fn idempotency_begin(
        &self,
        request: &IdempotencyRequest,
    ) -> Result<IdempotencyBegin, StoreError> {
        let request = request.clone();
        self.inner
            .run("starting an idempotent request", async move |client| {
                records::idempotency_begin(client, &request).await
            })
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
        self.inner
            .run("completing an idempotent request", async move |client| {
                records::idempotency_complete(&*client, &scope, &key, status, &body).await
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
        self.inner
            .run("abandoning an idempotent request", async move |client| {
                records::idempotency_abandon(&*client, &scope, &key, &hash).await
            })
            .await
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.inner
            .run("taking a lock", async move |client| {
                records::try_lock(&*client, &name, &owner, ttl).await
            })
            .await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.inner
            .run("releasing a lock", async move |client| {
                records::unlock(&*client, &name, &owner).await
            })
            .await
    }

    async fn record_service_event(&self, event: &ServiceEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.inner
            .run("recording a service event", async move |client| {
                records::insert_service_event(&*client, &event).await
            })
            .await
    }

    async fn list_service_events(
        &self,
        query: &PageQuery,
    ) -> Result<Page<ServiceEvent>, StoreError> {
        let query = query.clone();
        self.inner
            .run("listing service events", async move |client| {
                records::list_service_events(&*client, &query).await
            })
            .await
    }

    /// Nothing to do on Postgres: the database is shared by every kneo process, so a lease found
    /// here may well belong to a live worker elsewhere. Lease expiry (and the claim that re-takes
    /// expired leases) is what returns a dead worker's runs to the queue.
    async fn leases_of(&self, owner: &str, quiet_for: Duration) -> Result<Vec<String>, StoreError> {
        let owner = owner.to_string();
        self.inner
            .run("reading a holder's leases", async move |client| {
                runs::leases_of(&*client, &owner, quiet_for).await
            })
            .await
    }

    async fn requeue_orphaned_runs(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn overdue_runs(&self, now: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let now = now.to_string();
        self.inner
            .run("finding overdue runs", async move |client| {
                runs::overdue_runs(&*client, &now, limit).await
            })
            .await
    }

    async fn list_environment_policies(&self) -> Result<Vec<EnvironmentPolicyRecord>, StoreError> {
        self.inner
            .run("listing environment policies", async move |client| {
                policies::list(&*client).await
            })
            .await
    }

    async fn get_environment_policy(
        &self,
        environment: &str,
    ) -> Result<Option<EnvironmentPolicyRecord>, StoreError> {
        let environment = environment.to_string();
        self.inner
            .run("reading an environment policy", async move |client| {
                policies::get(&*client, &environment).await
            })
            .await
    }

    async fn put_environment_policy(
        &self,
        record: &EnvironmentPolicyRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.inner
            .run("storing an environment policy", async move |client| {
                policies::put(&*client, &record).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_host_port_and_database_but_no_password() {
        let store = PostgresStore::new("postgres://kneo:s3cret@db.internal:6543/runs", 1)
            .expect("valid URL");
        assert_eq!(store.inner.target, "db.internal:6543/runs");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_its_password() {
        let error =
            PostgresStore::new("postgres://kneo:s3cret@db:notaport/runs", 4).expect_err("bad port");
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(!error.message.contains("s3cret"), "{}", error.message);
    }

    #[tokio::test]
    async fn creating_a_store_does_not_connect() {
        // Port 1 on localhost refuses at once; `new` must succeed anyway.
        let store = PostgresStore::new("postgres://kneo@127.0.0.1:1/kneo", 2)
            .expect("a valid URL is accepted");
        assert!(!store.is_ready());
        let error = store.probe().await.expect_err("nothing listens on port 1");
        assert_eq!(
            error.kind,
            ErrorKind::ConnectionRefused,
            "{}",
            error.message
        );
    }
}
