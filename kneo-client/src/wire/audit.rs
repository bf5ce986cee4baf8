//! Audit events (`GET /v1/audit-events`): who did what to which run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::page::PageInfo;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    /// `run.created`, `run.cancelled`, `human.decision`, …
    pub event_type: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub continuation_id: Option<String>,
    /// The key name that acted (never the key itself).
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEventList {
    #[serde(default)]
    pub events: Vec<AuditEvent>,
    #[serde(flatten)]
    pub page: PageInfo,
}
