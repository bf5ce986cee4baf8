//! Response bodies in kneo-serv's shapes, built from stored runs.

use serde_json::{Map, Value, json};

use crate::store::RunRecord;

/// Run metadata keys that describe the request rather than the result.
const REQUEST_KEYS: [&str; 10] = [
    "spec_path",
    "spec",
    "target",
    "environment",
    "overlays",
    "overrides",
    "skills_overlay",
    "timeout_seconds",
    "frozen_spec",
    "caller_metadata",
];

/// Bookkeeping keys that never leave the service.
const INTERNAL_KEYS: [&str; 1] = ["checkpoint_sequence"];

fn public_metadata(run: &RunRecord) -> Map<String, Value> {
    let mut metadata = run.metadata.clone();
    for key in INTERNAL_KEYS {
        metadata.remove(key);
    }
    metadata
}

fn trace_block(run: &RunRecord, events: Vec<Value>) -> Value {
    json!({"run_id": run.id, "events": events})
}

/// `RunCreateResponse` of a run that finished or blocked in the request (golden 08, 26).
pub fn run_result(run: &RunRecord, trace: Vec<Value>) -> Value {
    let mut metadata: Map<String, Value> = public_metadata(run)
        .into_iter()
        .filter(|(key, _)| !REQUEST_KEYS.contains(&key.as_str()) && key != "execution_context")
        .collect();
    if let Some(error) = &run.error {
        metadata.insert("error".into(), error.clone());
    }
    metadata.insert("trace".into(), trace_block(run, trace));
    json!({
        "run_id": run.id,
        "status": run.status.as_str(),
        "output_text": run.output_text,
        "human_intervention_required": run.continuation_id.is_some() && run.status == crate::store::RunStatus::Blocked,
        "continuation_id": run.continuation_id,
        "metadata": metadata,
    })
}

/// The error types that end a run on a guardrail's verdict (kneo-serv's exception names).
const GUARDRAIL_ERRORS: [&str; 3] = [
    crate::engine::guardrails::GUARDRAIL_VIOLATION,
    crate::engine::guardrails::TOOL_RESULT_VIOLATION,
    crate::engine::guardrails::TOOL_MIDDLEWARE_VIOLATION,
];

/// A sync run that a guardrail stopped answers `422 guardrail_violation` instead of its
/// state (kneo-serv's mapping): the message names the guardrail, `violation_type` the stage's
/// error type, `run_id` the run left failed with that error.
pub fn guardrail_violation(run: &RunRecord) -> Option<crate::api::error::ApiError> {
    let error = run.error.as_ref()?;
    let violation_type = error.get("type").and_then(Value::as_str)?;
    if run.status != crate::store::RunStatus::Failed || !GUARDRAIL_ERRORS.contains(&violation_type)
    {
        return None;
    }
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some(
        crate::api::error::ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "guardrail_violation",
            message,
        )
        .with("violation_type", violation_type)
        .with(
            "guardrail_id",
            error.get("guardrail_id").cloned().unwrap_or(Value::Null),
        )
        .with("run_id", run.id.clone()),
    )
}

/// `RunCreateResponse` of an accepted async run (golden 13): the request as recorded.
pub fn run_accepted(run: &RunRecord) -> Value {
    let metadata: Map<String, Value> = public_metadata(run)
        .into_iter()
        .filter(|(key, _)| REQUEST_KEYS.contains(&key.as_str()))
        .collect();
    json!({
        "run_id": run.id,
        "status": "queued",
        "output_text": null,
        "human_intervention_required": false,
        "continuation_id": null,
        "metadata": metadata,
    })
}

/// `RunStatusResponse` (golden 09), with the stored trace.
pub fn run_status(run: &RunRecord, trace: Vec<Value>) -> Value {
    let mut metadata = public_metadata(run);
    metadata.insert("trace".into(), trace_block(run, trace));
    json!({
        "run_id": run.id,
        "status": run.status.as_str(),
        "agent_name": run.agent_name,
        "workflow_name": run.workflow_name,
        "workflow_kind": run.workflow_kind,
        "session_id": run.session_id,
        "input_text": run.input_text,
        "output_text": run.output_text,
        "current_step_index": run.current_step_index,
        "current_node_id": run.current_node_id,
        "visited_steps": run.visited_steps,
        "visited_nodes": run.visited_nodes,
        "pending_human_request": run.pending_human_request,
        "continuation_id": run.continuation_id,
        "trace_event_count": run.trace_event_count,
        "trace_dropped": run.trace_dropped,
        "usage": run.usage,
        "metadata": metadata,
        "error": run.error,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "deadline_at": run.deadline_at,
    })
}

/// A run as list endpoints return it (golden 15). The trace is left out of list items (read it
/// from `/runs/{id}/trace`); `metadata.trace.event_count` says how long it is.
pub fn run_list_item(run: &RunRecord) -> Value {
    let mut item = serde_json::to_value(run).unwrap_or_else(|_| json!({}));
    // kneo-serv masks `session_id` in list items (its redactor treats the key as sensitive),
    // even when it is null; the run itself shows it in clear.
    if let Some(fields) = item.as_object_mut() {
        fields.insert("session_id".into(), json!(crate::redact::MARKER));
    }
    if let Some(metadata) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in INTERNAL_KEYS {
            metadata.remove(key);
        }
        metadata.insert(
            "trace".into(),
            json!({"run_id": run.id, "events": [], "event_count": run.trace_event_count, "omitted": true}),
        );
    }
    item
}

/// `HumanResumeResponse`: only the four fields its schema allows.
pub fn resume_result(run: &RunRecord, trace: Vec<Value>) -> Value {
    let full = run_result(run, trace);
    json!({
        "run_id": full["run_id"],
        "status": full["status"],
        "output_text": full["output_text"],
        "metadata": full["metadata"],
    })
}
