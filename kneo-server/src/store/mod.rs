//! Storage: the [`Store`] trait for run state, queue, trace, checkpoints, audit, idempotency, locks
//! and service events, the [`ContinuationStore`] trait for paused human tasks, and their backends.
//!
//! - [`sqlite`]: the embedded default (`.kneo/kneo_runs.sqlite`, WAL) plus continuation files.
//! - [`postgres`]: production, through tokio-postgres and a deadpool pool.
//!
//! Each backend carries its own SQL migrations, tracked in `schema_migrations`. The queue claim is
//! a store operation because it is where the two backends differ most (row locks vs one writer).

pub mod continuation_files;
pub mod error;
pub mod postgres;
pub mod run_filter;
pub mod sqlite;
pub mod state_lock;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

pub use error::{ErrorKind, StoreError};
pub use types::*;

/// The newest schema version this binary knows, per backend.
///
/// A database that reports a higher version was written by a newer kneo and is refused.
pub const SCHEMA_VERSION: i64 = 2;

/// Run state, queue and everything recorded alongside runs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is.
    fn kind(&self) -> StoreKind;

    /// Cheap liveness probe of the run state (the `run_state_store` readiness check).
    async fn probe(&self) -> Result<(), StoreError>;

    /// The applied schema version.
    async fn schema_version(&self) -> Result<i64, StoreError>;

    /// Inserts a run with its first audit events; with `enqueue`, also its queue record; with
    /// `idempotency`, binds the key to the run. All in one transaction, so a 202 is only sent once
    /// the run is durably queued, and a key can never end up with two runs.
    async fn create_run(
        &self,
        run: &RunRecord,
        queue: Option<QueueEntry>,
        audit: &[AuditEvent],
        idempotency: Option<&IdempotencyBinding>,
    ) -> Result<CreateOutcome, StoreError>;

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError>;

    /// Applies one step of progress atomically: the new run state, its trace events, a checkpoint,
    /// audit events and the queue transition. Refused (nothing written) when the stored run is
    /// already terminal, or its status is not the one the writer expected.
    async fn save_progress(&self, progress: &Progress) -> Result<SaveOutcome, StoreError>;

    /// Claims up to `limit` runs for `worker_id`: queued ones in FIFO order, and running ones whose
    /// lease expired. Runs whose attempts reached `max_attempts` are dead-lettered instead and
    /// returned separately so the caller can record them.
    async fn claim_runs(&self, request: &ClaimRequest) -> Result<ClaimResult, StoreError>;

    /// Extends a lease the worker still holds; false when it has lost it.
    async fn renew_lease(
        &self,
        run_id: &str,
        worker_id: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives a claimed run back to the queue (e.g. on shutdown) so another worker takes it at once.
    async fn release_lease(&self, run_id: &str, worker_id: &str) -> Result<(), StoreError>;

    /// Runs leased to `owner` whose lease was neither taken nor renewed for `quiet_for`. An owner
    /// that is not executing one of them lost track of it in a store exchange that failed (a
    /// commit whose answer never came, a release during an outage); it hands it back.
    async fn leases_of(&self, owner: &str, quiet_for: Duration) -> Result<Vec<String>, StoreError>;

    /// Queue records by status (the `queue` readiness check and the queue gauges).
    async fn queue_counts(&self) -> Result<QueueCounts, StoreError>;

    /// The queue record of one run, if it has one.
    async fn queue_entry(&self, run_id: &str) -> Result<Option<QueueRecord>, StoreError>;

    async fn list_trace(&self, run_id: &str, query: &TraceQuery)
    -> Result<Page<Value>, StoreError>;

    async fn list_checkpoints(
        &self,
        run_id: &str,
        query: &CheckpointQuery,
    ) -> Result<Page<Value>, StoreError>;

    /// The newest checkpoint of a run (crash recovery and `/continue` start from it).
    async fn last_checkpoint(&self, run_id: &str) -> Result<Option<Value>, StoreError>;

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError>;

    /// Starts (or replays) an idempotent request.
    async fn idempotency_begin(
        &self,
        request: &IdempotencyRequest,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Stores the response of a finished idempotent request for replay.
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), StoreError>;

    /// Forgets an in-progress record (nothing bound to it) whose request failed before producing
    /// a replayable answer; a record another request took over (another hash) is left alone.
    async fn idempotency_abandon(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError>;

    /// Takes the named lock unless another owner holds an unexpired one.
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    async fn record_service_event(&self, event: &ServiceEvent) -> Result<(), StoreError>;

    async fn list_service_events(
        &self,
        query: &PageQuery,
    ) -> Result<Page<ServiceEvent>, StoreError>;

    /// Returns every leased run to the queue at once, and drops every `in_progress` idempotency
    /// mark (nothing is bound to one, and its holder is gone). Only for a store that one process
    /// owns (the embedded store under its state lock): any lease or mark found at start-up belongs
    /// to a dead process. Shared stores rely on lease and mark expiry instead and do nothing here.
    async fn requeue_orphaned_runs(&self) -> Result<u64, StoreError>;

    /// Runs whose deadline passed while still `created`, `running` or `blocked`.
    async fn overdue_runs(&self, now: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError>;

    /// Every stored environment policy, by environment name.
    async fn list_environment_policies(&self) -> Result<Vec<EnvironmentPolicyRecord>, StoreError>;

    async fn get_environment_policy(
        &self,
        environment: &str,
    ) -> Result<Option<EnvironmentPolicyRecord>, StoreError>;

    /// Stores (or replaces) the policy of `record.environment`.
    async fn put_environment_policy(
        &self,
        record: &EnvironmentPolicyRecord,
    ) -> Result<(), StoreError>;
}

/// Paused human tasks, one record per blocked run.
#[async_trait]
pub trait ContinuationStore: Send + Sync + 'static {
    /// Probes the store (the `continuation_store` readiness check).
    async fn probe(&self) -> Result<(), StoreError>;

    /// Writes a continuation durably (files: temp file, fsync, rename).
    async fn put(&self, continuation: &Continuation) -> Result<(), StoreError>;

    /// One continuation; a torn or corrupt record is an error, never a silent `None`.
    async fn get(&self, continuation_id: &str) -> Result<Option<Continuation>, StoreError>;

    /// Every continuation, with the ones that could not be read reported beside them.
    async fn list(&self) -> Result<ContinuationListing, StoreError>;

    async fn delete(&self, continuation_id: &str) -> Result<bool, StoreError>;
}

/// The two stores a service runs on.
#[derive(Clone)]
pub struct Stores {
    pub runs: Arc<dyn Store>,
    pub continuations: Arc<dyn ContinuationStore>,
    /// `files` or `postgres`, as `/readyz` reports the continuation store.
    pub continuation_kind: &'static str,
}
