//! Runs: the run body (`GET /v1/runs/{id}` and list items), lists, traces, checkpoints, recovery.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::page::PageInfo;

/// A run's status. Unknown names are kept, not refused, so a newer server still parses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RunStatus {
    /// Stored but not yet started (a queued async run's row says `created`).
    Created,
    Queued,
    Running,
    /// Paused for a human decision.
    Blocked,
    Paused,
    Completed,
    Failed,
    Cancelled,
    TimedOut,
    Expired,
    Other(String),
}

impl RunStatus {
    pub fn as_str(&self) -> &str {
        match self {
            RunStatus::Created => "created",
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Blocked => "blocked",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Expired => "expired",
            RunStatus::Other(name) => name,
        }
    }

    /// Final statuses: the run will not change again.
    pub fn is_terminal(&self) -> bool {
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

impl From<String> for RunStatus {
    fn from(name: String) -> RunStatus {
        match name.as_str() {
            "created" => RunStatus::Created,
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "blocked" | "paused_human_review" => RunStatus::Blocked,
            "paused" => RunStatus::Paused,
            "completed" | "succeeded" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            "timed_out" => RunStatus::TimedOut,
            "expired" => RunStatus::Expired,
            _ => RunStatus::Other(name),
        }
    }
}

impl From<RunStatus> for String {
    fn from(status: RunStatus) -> String {
        status.as_str().to_string()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run, as `GET /v1/runs/{id}` returns it or as it appears in a list (`id` there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    #[serde(alias = "id")]
    pub run_id: String,
    pub status: RunStatus,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub workflow_kind: Option<String>,
    #[serde(default)]
    pub input_text: Option<String>,
    #[serde(default)]
    pub output_text: Option<String>,
    #[serde(default)]
    pub current_step_index: Option<i64>,
    #[serde(default)]
    pub current_step_id: Option<String>,
    #[serde(default)]
    pub current_node_id: Option<String>,
    #[serde(default)]
    pub visited_steps: Vec<String>,
    #[serde(default)]
    pub continuation_id: Option<String>,
    #[serde(default)]
    pub pending_human_request: Option<Value>,
    #[serde(default)]
    pub trace_event_count: Option<i64>,
    #[serde(default)]
    pub trace_dropped: Option<i64>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub usage: Option<Value>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    /// Moves with every checkpoint, so a running run's age since `updated_at` is its silence.
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub deadline_at: Option<String>,
}

/// `GET /v1/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    #[serde(default)]
    pub runs: Vec<Run>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// One trace event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub parent_event_id: Option<String>,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub step_id: Option<String>,
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub input_preview: Option<String>,
    #[serde(default)]
    pub output_preview: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub error: Option<Value>,
}

/// `GET /v1/runs/{id}/trace`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TracePage {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub events: Vec<TraceEvent>,
    #[serde(flatten)]
    pub page: PageInfo,
    /// Events the server dropped past its per-run cap (serv ≥ 1.2).
    #[serde(default)]
    pub dropped: Option<i64>,
    #[serde(default)]
    pub complete: Option<bool>,
}

/// One checkpoint: the run's state after a unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(rename = "type", default)]
    pub checkpoint_type: Option<String>,
    #[serde(default)]
    pub step_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub sequence: Option<i64>,
    #[serde(default)]
    pub iteration: Option<i64>,
    #[serde(default)]
    pub state: Value,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `GET /v1/runs/{id}/checkpoints`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointPage {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// A run's queue record, as `GET /v1/runs/{id}/recovery` shows it (kneo-server only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueRecord {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub attempts: Option<i64>,
    #[serde(default)]
    pub lease_owner: Option<String>,
    /// When the holder's lease runs out unless renewed; in the past means the worker is gone.
    #[serde(default)]
    pub lease_expires_at: Option<String>,
    #[serde(default)]
    pub enqueued_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `GET /v1/runs/{id}/recovery`: where a run stands and whether `/continue` can take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecovery {
    pub run_id: String,
    pub status: RunStatus,
    #[serde(default)]
    pub current_step_index: Option<i64>,
    #[serde(default)]
    pub checkpoint_count: Option<i64>,
    #[serde(default)]
    pub queue: Option<QueueRecord>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub replay_context: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_read_old_and_unknown_names() {
        let parse = |name: &str| RunStatus::from(name.to_string());
        assert_eq!(parse("succeeded"), RunStatus::Completed);
        assert_eq!(parse("paused_human_review"), RunStatus::Blocked);
        assert_eq!(parse("warping"), RunStatus::Other("warping".into()));
        assert_eq!(parse("timed_out").as_str(), "timed_out");
        assert!(parse("expired").is_terminal());
        assert!(!parse("blocked").is_terminal());
    }

    #[test]
    fn a_list_item_reads_its_id_as_run_id() {
        let item = json!({"id": "r1", "status": "created", "created_at": "2026-01-01T00:00:00+00:00", "unknown": [1, 2]});
        let run: Run = serde_json::from_value(item).expect("parses");
        assert_eq!(run.run_id, "r1");
        assert_eq!(run.status, RunStatus::Created);
    }

    #[test]
    fn a_trace_page_keeps_its_paging_fields() {
        let body = json!({"run_id": "r1", "events": [{"type": "run_started", "metadata": {"message_count": 1}}],
            "count": 1, "total": 1, "window": 10000, "limit": 100, "offset": 0, "dropped": 0, "complete": true});
        let page: TracePage = serde_json::from_value(body).expect("parses");
        assert_eq!(page.events[0].event_type, "run_started");
        assert_eq!(page.page.total, Some(1));
        assert_eq!(page.complete, Some(true));
    }
}
