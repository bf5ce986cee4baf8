//! Building audit events: one place that redacts their metadata and stamps the request id of
//! the request that caused them, so `kneo-ops capture --request-id` can find them.

use serde_json::{Value, json};

use crate::store::AuditEvent;

/// A new audit event; `run_id` and `continuation_id` scope it.
pub fn event(
    event_type: &str,
    actor: &str,
    run_id: Option<&str>,
    continuation_id: Option<&str>,
    metadata: Value,
) -> AuditEvent {
    let mut metadata = crate::redact::redacted(&metadata);
    if let (Some(fields), Some(request_id)) = (
        metadata.as_object_mut(),
        crate::api::request_log::current_request_id(),
    ) {
        fields
            .entry("request_id")
            .or_insert_with(|| json!(request_id));
    }
    AuditEvent {
        id: crate::clock::new_id(),
        event_type: event_type.to_string(),
        run_id: run_id.map(str::to_string),
        continuation_id: continuation_id.map(str::to_string),
        actor: actor.to_string(),
        metadata,
        created_at: crate::clock::now_text(),
    }
}
