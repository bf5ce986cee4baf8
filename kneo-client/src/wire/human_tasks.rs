//! Human tasks: paused runs waiting for a decision (`/v1/human-tasks`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::page::PageInfo;

/// One open task in `GET /v1/human-tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanTask {
    /// The continuation id (what `/resume` takes).
    #[serde(alias = "continuation_id")]
    pub id: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub workflow_kind: Option<String>,
    #[serde(default)]
    pub current_step_index: Option<i64>,
    #[serde(default)]
    pub pending_human_request_id: Option<String>,
    #[serde(default)]
    pub pending_human_request: Option<Value>,
    /// Epoch seconds after which the task has timed out.
    #[serde(default)]
    pub expires_at: Option<f64>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl HumanTask {
    /// Escalated tasks passed their deadline but may still be resumed.
    pub fn is_escalated(&self) -> bool {
        self.pending_human_request
            .as_ref()
            .and_then(|request| request.get("escalated_at"))
            .is_some_and(|at| !at.is_null())
    }
}

/// `GET /v1/human-tasks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HumanTaskList {
    #[serde(default)]
    pub tasks: Vec<HumanTask>,
    #[serde(flatten)]
    pub page: PageInfo,
    /// Continuation records the server could not read (kneo-server reports them, § 8.2).
    #[serde(default)]
    pub unreadable: Vec<Value>,
    #[serde(default)]
    pub warning: Option<String>,
}

/// `GET /v1/human-tasks/{continuation_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanTaskDetail {
    pub continuation_id: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub expires_at: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escalation_is_read_from_the_pending_request() {
        let task = json!({"id": "c1", "expires_at": 1795927074.33, "pending_human_request": {"escalated_at": "2026-01-01T00:00:00Z"}});
        let task: HumanTask = serde_json::from_value(task).expect("parses");
        assert!(task.is_escalated());
        let plain: HumanTask = serde_json::from_value(
            json!({"id": "c2", "pending_human_request": {"escalated_at": null}}),
        )
        .expect("parses");
        assert!(!plain.is_escalated());
    }
}
