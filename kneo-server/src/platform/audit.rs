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

/// `run.created` (or `spec.run` for `POST /v1/specs/run`) for a new run, with kneo-serv's
/// metadata: the request's target, spec, environment and layers. `session_id` is masked as
/// kneo-serv masks it in audit metadata.
pub fn run_created(
    actor: &str,
    request: &super::CreateRun,
    loaded: &super::specs::LoadedSpec,
    run: &crate::store::RunRecord,
) -> AuditEvent {
    let spec_path = loaded.spec_path.as_deref();
    let environment = request.spec.environment.as_deref();
    let metadata = if request.via_specs_run {
        let status = if request.async_mode {
            "queued"
        } else {
            "running"
        };
        let mut metadata = json!({
            "target": request.target,
            "spec_path": spec_path,
            "inline_spec": spec_path.is_none(),
            "environment": environment,
            "status": status,
        });
        if request.async_mode {
            metadata["async_mode"] = json!(true);
        }
        metadata
    } else {
        let mut metadata = json!({
            "async_mode": request.async_mode,
            "target": request.target,
            "spec_path": spec_path,
            "inline_spec": spec_path.is_none(),
            "environment": environment,
            "session_id": crate::redact::MARKER,
            "metadata": request.metadata,
        });
        if let Some(skills) = request.skills.as_ref().filter(|skills| !skills.is_empty()) {
            metadata["skills_overlay"] = skills.to_json();
        }
        metadata
    };
    let event_type = if request.via_specs_run {
        "spec.run"
    } else {
        "run.created"
    };
    event(event_type, actor, Some(&run.id), None, metadata)
}
