//! Postgres backend (placeholder until the full backend lands).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::*;

#[derive(Clone)]
pub struct PostgresStore;

impl PostgresStore {
    pub fn new(_url: &str, _pool_size: usize) -> Result<PostgresStore, StoreError> {
        Ok(PostgresStore)
    }
    pub async fn ensure_ready(&self) -> Result<(), StoreError> {
        Err(pending())
    }
    pub fn continuation_store(&self) -> PostgresContinuationStore {
        PostgresContinuationStore
    }
}

fn pending() -> StoreError {
    StoreError::new(
        ErrorKind::Unavailable,
        "the Postgres backend is not built yet",
    )
}

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }
    async fn requeue_orphaned_runs(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn probe(&self) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn schema_version(&self) -> Result<i64, StoreError> {
        Err(pending())
    }
    async fn create_run(
        &self,
        _run: &RunRecord,
        _queue: Option<QueueEntry>,
        _audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn get_run(&self, _run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        Err(pending())
    }
    async fn list_runs(&self, _query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        Err(pending())
    }
    async fn save_progress(&self, _progress: &Progress) -> Result<SaveOutcome, StoreError> {
        Err(pending())
    }
    async fn claim_runs(&self, _request: &ClaimRequest) -> Result<ClaimResult, StoreError> {
        Err(pending())
    }
    async fn renew_lease(
        &self,
        _run_id: &str,
        _worker_id: &str,
        _lease: Duration,
    ) -> Result<bool, StoreError> {
        Err(pending())
    }
    async fn release_lease(&self, _run_id: &str, _worker_id: &str) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        Err(pending())
    }
    async fn queue_entry(&self, _run_id: &str) -> Result<Option<QueueRecord>, StoreError> {
        Err(pending())
    }
    async fn list_trace(
        &self,
        _run_id: &str,
        _query: &TraceQuery,
    ) -> Result<Page<Value>, StoreError> {
        Err(pending())
    }
    async fn list_checkpoints(
        &self,
        _run_id: &str,
        _query: &CheckpointQuery,
    ) -> Result<Page<Value>, StoreError> {
        Err(pending())
    }
    async fn last_checkpoint(&self, _run_id: &str) -> Result<Option<Value>, StoreError> {
        Err(pending())
    }
    async fn record_audit(&self, _events: &[AuditEvent]) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn list_audit(&self, _query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        Err(pending())
    }
    async fn idempotency_begin(
        &self,
        _request: &IdempotencyRequest,
    ) -> Result<IdempotencyBegin, StoreError> {
        Err(pending())
    }
    async fn idempotency_complete(
        &self,
        _scope: &str,
        _key: &str,
        _status: u16,
        _body: &Value,
    ) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn idempotency_abandon(&self, _scope: &str, _key: &str) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn try_lock(
        &self,
        _name: &str,
        _owner: &str,
        _ttl: Duration,
    ) -> Result<bool, StoreError> {
        Err(pending())
    }
    async fn unlock(&self, _name: &str, _owner: &str) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn record_service_event(&self, _event: &ServiceEvent) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn list_service_events(
        &self,
        _query: &PageQuery,
    ) -> Result<Page<ServiceEvent>, StoreError> {
        Err(pending())
    }
    async fn overdue_runs(&self, _now: &str, _limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        Err(pending())
    }
}

#[derive(Clone)]
pub struct PostgresContinuationStore;

#[async_trait]
impl ContinuationStore for PostgresContinuationStore {
    async fn probe(&self) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn put(&self, _c: &Continuation) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn get(&self, _id: &str) -> Result<Option<Continuation>, StoreError> {
        Err(pending())
    }
    async fn list(&self) -> Result<ContinuationListing, StoreError> {
        Err(pending())
    }
    async fn delete(&self, _id: &str) -> Result<bool, StoreError> {
        Err(pending())
    }
}
