//! Records the stores keep, and the queries and writes they accept.
//!
//! The records serialize to the exact JSON shapes kneo-serv 1.2 returns, so the API can hand them
//! out without a second set of types.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }

    /// The name kneo-serv reports as the queue `kind` in `/readyz`.
    pub fn queue_kind(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "SQLiteRunStateStore",
            StoreKind::Postgres => "PostgresRunStateStore",
        }
    }
}

/// The status of a run (the `run_lifecycle` statuses of kneo-serv 0.9+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Created,
    Running,
    Blocked,
    Paused,
    Completed,
    Failed,
    Cancelled,
    TimedOut,
    Expired,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Created,
        RunStatus::Running,
        RunStatus::Blocked,
        RunStatus::Paused,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
        RunStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Created => "created",
            RunStatus::Running => "running",
            RunStatus::Blocked => "blocked",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Expired => "expired",
        }
    }

    /// Parses a status name; `succeeded` is accepted as the older name of `completed`.
    pub fn parse(text: &str) -> Option<RunStatus> {
        if text == "succeeded" {
            return Some(RunStatus::Completed);
        }
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Terminal statuses are final: no write may replace them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed
                | RunStatus::Failed
                | RunStatus::Cancelled
                | RunStatus::TimedOut
                | RunStatus::Expired
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored state of a run (kneo-serv's `RunState`), as list endpoints return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub status: RunStatus,
    pub agent_name: Option<String>,
    pub workflow_name: Option<String>,
    pub workflow_kind: Option<String>,
    pub input_text: Option<String>,
    pub output_text: Option<String>,
    pub current_step_index: Option<i64>,
    pub current_step_id: Option<String>,
    pub current_node_id: Option<String>,
    #[serde(default)]
    pub visited_steps: Vec<String>,
    #[serde(default)]
    pub visited_nodes: Vec<String>,
    #[serde(default)]
    pub messages: Vec<Value>,
    pub pending_human_request: Option<Value>,
    pub continuation_id: Option<String>,
    #[serde(default)]
    pub trace_dropped: i64,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub error: Option<Value>,
    pub parent_run_id: Option<String>,
    pub session_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub deadline_at: Option<String>,
    #[serde(default)]
    pub trace_event_count: i64,
    pub usage: Option<Value>,
}

impl RunRecord {
    /// A new `created` run with the given id and input.
    pub fn new(id: String, input_text: String, now: String) -> RunRecord {
        RunRecord {
            id,
            status: RunStatus::Created,
            agent_name: None,
            workflow_name: None,
            workflow_kind: None,
            input_text: Some(input_text),
            output_text: None,
            current_step_index: None,
            current_step_id: None,
            current_node_id: None,
            visited_steps: Vec::new(),
            visited_nodes: Vec::new(),
            messages: Vec::new(),
            pending_human_request: None,
            continuation_id: None,
            trace_dropped: 0,
            metadata: Map::new(),
            error: None,
            parent_run_id: None,
            session_id: None,
            tags: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            started_at: None,
            completed_at: None,
            deadline_at: None,
            trace_event_count: 0,
            usage: None,
        }
    }
}

/// Status of a queue record (kneo-serv's queue statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Queued => "queued",
            QueueStatus::Running => "running",
            QueueStatus::Completed => "completed",
            QueueStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<QueueStatus> {
        [
            QueueStatus::Queued,
            QueueStatus::Running,
            QueueStatus::Completed,
            QueueStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// How a run enters the queue when it is created.
#[derive(Debug, Clone)]
pub enum QueueEntry {
    /// Async run: waits for a worker.
    Queued,
    /// Sync run: executed by the request itself, leased so a crash hands it to a worker.
    Leased { worker_id: String, lease: Duration },
}

/// A queue record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub run_id: String,
    pub status: QueueStatus,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<String>,
    pub enqueued_at: String,
    pub updated_at: String,
    pub last_error: Option<String>,
}

/// What a writer expects the stored status to be before its write applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any status that is not terminal.
    NonTerminal,
    /// Exactly this status (e.g. a resume expects `blocked`).
    Status(RunStatus),
    /// This status, even if it is terminal (only `/continue` re-opens a `failed` run).
    Reopen(RunStatus),
}

/// What happens to the run's queue record in the same transaction.
#[derive(Debug, Clone)]
pub enum QueueTransition {
    /// The run finished (or blocked): the record is closed with this status.
    Finish {
        status: QueueStatus,
        error: Option<String>,
    },
    /// The run goes (back) into the queue, e.g. after `/continue` in async mode.
    Enqueue,
    /// The run is taken over by this owner (a sync `/continue` or a resume executing in-request).
    Lease { worker_id: String, lease: Duration },
}

/// One atomic unit of progress on a run.
#[derive(Debug, Clone)]
pub struct Progress {
    pub run: RunRecord,
    pub expect: Expect,
    pub trace_events: Vec<Value>,
    pub checkpoints: Vec<Value>,
    pub audit: Vec<AuditEvent>,
    pub queue: Option<QueueTransition>,
    /// When set, the write applies only while this owner still holds the run's lease, so a worker
    /// whose lease expired (and was re-claimed) can never write over the new holder.
    pub lease_holder: Option<String>,
    /// When set, the write also binds this idempotency key to the run, in the same transaction;
    /// if another request bound the key first, nothing is written ([`SaveOutcome::KeyTaken`]).
    pub idempotency: Option<IdempotencyBinding>,
}

impl Progress {
    pub fn new(run: RunRecord) -> Progress {
        Progress {
            run,
            expect: Expect::NonTerminal,
            trace_events: Vec::new(),
            checkpoints: Vec::new(),
            audit: Vec::new(),
            queue: None,
            lease_holder: None,
            idempotency: None,
        }
    }
}

/// Whether a [`Progress`] write applied.
#[derive(Debug, Clone, PartialEq)]
pub enum SaveOutcome {
    Saved,
    /// Nothing was written: the stored run has this status (missing runs report `None`).
    Refused {
        current: Option<RunStatus>,
    },
    /// Nothing was written: the writer no longer holds the run's lease.
    LeaseLost,
    /// Nothing was written: another request bound the write's idempotency key first.
    KeyTaken,
}

/// Whether [`super::Store::create_run`] created the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// Nothing was written: another request bound the idempotency key first.
    KeyTaken,
}

/// A worker asking for work.
///
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker_id: String,
    /// The claimer executes nothing right now, so runs still leased to `worker_id` are left over
    /// from a store exchange that failed (a claim whose commit answer was lost, a release during
    /// an outage): claim them again too, rather than strand them until their lease expires.
    pub reclaim_own_leases: bool,
    pub lease: Duration,
    /// Claims after which a run is dead-lettered (0 = never).
    pub max_attempts: u32,
    pub limit: usize,
}

/// A run a worker now holds.
#[derive(Debug, Clone)]
pub struct Claim {
    pub run: RunRecord,
    pub attempt: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ClaimResult {
    pub claimed: Vec<Claim>,
    /// Runs moved to `failed` because their attempts were used up.
    pub dead_lettered: Vec<RunRecord>,
}

/// Queue records by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QueueCounts {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
    /// Running records whose lease has expired (their worker probably died).
    pub expired_leases: i64,
    /// Age in seconds of the oldest queued record.
    pub oldest_queued_age_seconds: Option<f64>,
}

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        }
    }
}

/// Pagination shared by every list (kneo-serv § 1.1).
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub limit: usize,
    pub offset: usize,
    pub order: SortOrder,
    /// Only the newest `window` rows are reachable.
    pub window: usize,
}

/// The list window kneo-serv 0.11+ reports.
pub const LIST_WINDOW: usize = 10_000;

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery {
            limit: 100,
            offset: 0,
            order: SortOrder::Desc,
            window: LIST_WINDOW,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Rows matching the filter in the whole store.
    pub total: i64,
}

/// Columns runs can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSort {
    CreatedAt,
    UpdatedAt,
    Status,
    Id,
}

impl RunSort {
    pub const NAMES: [&'static str; 4] = ["created_at", "updated_at", "status", "id"];

    pub fn parse(text: &str) -> Option<RunSort> {
        match text {
            "created_at" => Some(RunSort::CreatedAt),
            "updated_at" => Some(RunSort::UpdatedAt),
            "status" => Some(RunSort::Status),
            "id" | "run_id" => Some(RunSort::Id),
            _ => None,
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            RunSort::CreatedAt => "created_at",
            RunSort::UpdatedAt => "updated_at",
            RunSort::Status => "status",
            RunSort::Id => "id",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunQuery {
    pub page: PageQuery,
    pub status: Option<RunStatus>,
    pub sort: RunSort,
    /// The other filters of `GET /v1/runs`, AND-combined with `status`; the page and its `total`
    /// apply the same predicate.
    pub filter: RunFilter,
}

/// The optional filters of `GET /v1/runs` (beside `status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// `agent` or `workflow`, as stored on the run (never the workflow type).
    pub workflow_kind: Option<String>,
    /// Exact match on the workflow's name.
    pub workflow_name: Option<String>,
    pub session_id: Option<String>,
    /// Whether the run's `error` is set (a cancelled run has one).
    pub has_error: Option<bool>,
    /// Inclusive lower bound on `created_at`, in the stored timestamp form.
    pub created_after: Option<String>,
    /// Inclusive upper bound on `created_at`, in the stored timestamp form.
    pub created_before: Option<String>,
    /// Case-insensitive substring of `output_text` or of `error.message` (each on its own).
    pub q: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TraceQuery {
    pub page: PageQuery,
    pub event_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CheckpointQuery {
    pub page: PageQuery,
    pub checkpoint_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub page: PageQuery,
    pub event_type: Option<String>,
    pub run_id: Option<String>,
    /// Only events whose metadata mentions this text (capture bundles look up request ids).
    pub mentions: Option<String>,
}

/// A stored environment policy (`PUT /v1/policies/environment/{environment}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentPolicyRecord {
    pub environment: String,
    /// The policy document, every field present.
    pub policy: Value,
    pub updated_at: String,
}

/// One audit record (redacted before it reaches the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub event_type: String,
    pub run_id: Option<String>,
    pub continuation_id: Option<String>,
    pub actor: String,
    pub metadata: Value,
    pub created_at: String,
}

/// An idempotent request about to run.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    /// The operation the key is scoped to, e.g. `runs:create`.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the canonical JSON of the request payload.
    pub request_hash: String,
    /// After this long an unfinished record is considered abandoned.
    pub lock_ttl: Duration,
}

/// What an idempotency record says about a request.
///
/// A record is `in_progress` (a request holds the key and has written nothing yet; the mark
/// lapses at its lock TTL, so it dies with a process that dies), `bound` (the first write made
/// under the key bound it to its run in the same transaction: the key's answer is that run's,
/// and no second run can be made for it), or `completed` (the answer is stored for replay).
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First time (or the previous holder's mark lapsed): go ahead, bind the key with the first
    /// write, then call `idempotency_complete` (or `idempotency_abandon` if nothing was bound).
    Started,
    /// Same key, same payload, finished: answer with the stored response.
    Replay { status: u16, body: Value },
    /// Same key, same payload, its run exists but its answer was not stored yet (still
    /// executing, or its request's process died): the answer comes from this run.
    Bound { run_id: String },
    /// Same key, different payload.
    Conflict,
    /// Same key while the first request holds it and has not written anything yet.
    InProgress,
}

/// Ties an idempotency key to the run a write creates or changes, in that write's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyBinding {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    /// The request's final answer when the write decides it (an async create's 202): the record
    /// is then `completed`. `None` leaves it `bound` to the run until the answer is stored.
    pub answer: Option<(u16, Value)>,
}

impl IdempotencyBinding {
    /// The record's `state`, `response_status` and `response_body` after binding to `run_id`.
    pub fn record(&self, run_id: &str) -> (&'static str, Option<i64>, Value) {
        match &self.answer {
            Some((status, body)) => ("completed", Some(i64::from(*status)), body.clone()),
            None => ("bound", None, serde_json::json!({ "run_id": run_id })),
        }
    }
}

/// The run id a `bound` record's `response_body` holds.
pub fn bound_run_id(body: &Value) -> Option<String> {
    body.get("run_id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The service's own history: starts, readiness transitions, 5xx bursts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEvent {
    pub id: String,
    pub event_type: String,
    pub created_at: String,
    pub version: String,
    pub host: String,
    pub details: Value,
}

/// A paused human task: everything needed to resume its run (kneo-serv's `WorkflowContinuation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continuation {
    pub id: String,
    pub run_id: String,
    pub workflow_name: Option<String>,
    pub workflow_kind: Option<String>,
    pub current_step_index: Option<i64>,
    pub current_node_id: Option<String>,
    pub current_input: Option<String>,
    #[serde(default)]
    pub visited_steps: Vec<String>,
    #[serde(default)]
    pub visited_nodes: Vec<String>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub variables: Map<String, Value>,
    pub pending_human_request_id: Option<String>,
    pub pending_human_request: Value,
    /// Epoch seconds after which the task has expired.
    pub expires_at: Option<f64>,
    #[serde(default)]
    pub trace_events: Vec<Value>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
}

/// A continuation store's listing: readable records, and those it could not read.
#[derive(Debug, Clone, Default)]
pub struct ContinuationListing {
    pub continuations: Vec<Continuation>,
    pub unreadable: Vec<UnreadableContinuation>,
}

/// A continuation record that exists but cannot be parsed (torn write, manual edit, disk error).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnreadableContinuation {
    pub continuation_id: String,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn succeeded_is_an_alias_of_completed() {
        assert_eq!(RunStatus::parse("succeeded"), Some(RunStatus::Completed));
        assert_eq!(RunStatus::parse("timed_out"), Some(RunStatus::TimedOut));
        assert_eq!(RunStatus::parse("bogus"), None);
    }

    #[test]
    fn terminal_statuses_are_the_five_of_the_contract() {
        let terminal: Vec<_> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(RunStatus::as_str)
            .collect();
        assert_eq!(
            terminal,
            vec!["completed", "failed", "cancelled", "timed_out", "expired"]
        );
    }

    #[test]
    fn a_run_record_round_trips_through_json() {
        let run = RunRecord::new(
            "r1".into(),
            "hi".into(),
            "2026-01-01T00:00:00.000000+00:00".into(),
        );
        let text = serde_json::to_string(&run).expect("serializes");
        let back: RunRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(run, back);
        assert!(text.contains("\"status\":\"created\""));
    }
}
