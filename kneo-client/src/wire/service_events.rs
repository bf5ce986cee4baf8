//! Service events (`GET /v1/service/events`): starts, stops, readiness transitions, 5xx bursts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::page::PageInfo;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEvent {
    #[serde(default)]
    pub id: Option<String>,
    /// `service.started`, `service.stopped`, `readiness.changed`, `http.5xx_burst`.
    pub event_type: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub details: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceEventList {
    #[serde(default)]
    pub events: Vec<ServiceEvent>,
    #[serde(flatten)]
    pub page: PageInfo,
}
