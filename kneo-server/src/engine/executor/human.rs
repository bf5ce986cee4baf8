//! Human pauses: the pending request a reviewer sees, the continuation written durably before
//! the run is marked blocked, and the `human_pause` boundary.

use serde_json::{Map, Value, json};

use super::state::Execution;
use super::{Interrupt, Outcome};
use crate::engine::plan::{StepPlan, WorkflowPlan};
use crate::spec::model::HumanSpec;
use crate::store::{Continuation, RunStatus};

/// Where a run pauses: a sequential step by index, or a graph node by id.
#[derive(Debug, Clone, Copy)]
pub(super) enum PausePosition<'p> {
    Step(usize),
    Node(&'p str),
}

impl PausePosition<'_> {
    fn key(&self) -> String {
        match self {
            PausePosition::Step(index) => index.to_string(),
            PausePosition::Node(id) => format!("node:{id}"),
        }
    }
}

/// The continuation id of a pause: derived from the run and the boundary it pauses at, so a run
/// re-executed after a crash rewrites the same continuation instead of leaving a second one.
fn continuation_id_for(run_id: &str, position: &str, sequence: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{run_id}/{position}/{sequence}").as_bytes());
    let hex = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Builds the pending request a reviewer sees (kneo-serv's request shape).
pub fn human_request(request_id: &str, step_id: &str, spec: &HumanSpec, input: &str) -> Value {
    let mut context = Map::new();
    context.insert("input_text".into(), json!(input));
    for (key, value) in &spec.context {
        context.insert(key.clone(), value.clone());
    }
    let options = if spec.options.is_empty() {
        Value::Null
    } else {
        json!(spec.options)
    };
    crate::redact::redacted(&json!({
        "id": request_id,
        "type": spec.request_type.as_str(),
        "title": spec.title(),
        "prompt": spec.prompt(),
        "context": context,
        "options": options,
        "default_option": spec.default_option,
        "requested_by": step_id,
        "assignee": spec.assignee,
        "timeout_seconds": spec.timeout_seconds,
        "on_timeout": spec.on_timeout.as_str(),
        "metadata": {},
    }))
}

/// Pauses the run at `step` (a human step) with `current_input` as what the reviewer sees.
pub(super) async fn pause_for_human(
    execution: &mut Execution<'_>,
    workflow: &WorkflowPlan,
    position: PausePosition<'_>,
    step: &StepPlan,
    reference: &str,
    spec: &HumanSpec,
    current_input: &str,
) -> Result<Outcome, Interrupt> {
    let continuation_id = continuation_id_for(
        &execution.run.id,
        &position.key(),
        execution.next_sequence(),
    );
    let (index, node) = match position {
        PausePosition::Step(index) => (Some(index as i64), None),
        PausePosition::Node(node) => (None, Some(node.to_string())),
    };
    let request_id = crate::clock::new_id();
    let request = human_request(&request_id, &step.id, spec, current_input);
    let expires_at = spec.timeout_seconds.map(|seconds| {
        let now = chrono::Utc::now();
        now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1e6 + seconds as f64
    });
    execution.emit(
        execution
            .event("human_intervention_requested")
            .with("workflow_name", workflow.name.clone())
            .with("step_id", step.id.clone())
            .with("current_node_id", json!(node))
            .input(current_input)
            .metadata(json!({"continuation_id": continuation_id, "request": request})),
    );
    execution.run.status = RunStatus::Blocked;
    execution.run.current_step_index = index;
    execution.run.current_node_id = node.clone();
    execution.run.pending_human_request = Some(request.clone());
    execution.run.continuation_id = Some(continuation_id.clone());
    execution.run.output_text = Some("Human intervention required.".into());
    execution.set_context(
        "human_intervention_requested",
        Some(&step.id),
        current_input,
        Some(current_input),
        current_input,
    );
    let metadata = &mut execution.run.metadata;
    metadata.insert("human_intervention_required".into(), json!(true));
    metadata.insert("continuation_id".into(), json!(continuation_id));
    metadata.insert("request".into(), request.clone());
    metadata.insert("pending_step_id".into(), json!(step.id));
    if node.is_some() {
        metadata.insert("pending_node_id".into(), json!(step.id));
    }
    let start_index = execution.leg_start;
    execution.leg_metadata(workflow, start_index, Some(&step.id));
    let mut continuation_metadata = Map::new();
    continuation_metadata.insert("step_id".into(), json!(step.id));
    continuation_metadata.insert("human_ref".into(), json!(reference));
    continuation_metadata.insert("step_index".into(), json!(index));
    if let Some(node) = &node {
        continuation_metadata.insert("node_id".into(), json!(node));
    }
    let continuation = Continuation {
        id: continuation_id.clone(),
        run_id: execution.run.id.clone(),
        workflow_name: Some(workflow.name.clone()),
        workflow_kind: Some(workflow.kind.as_str().to_string()),
        current_step_index: index,
        current_node_id: node,
        current_input: Some(crate::redact::redacted_text(current_input)),
        visited_steps: execution.run.visited_steps.clone(),
        visited_nodes: execution.run.visited_nodes.clone(),
        messages: execution.run.messages.clone(),
        variables: Map::new(),
        pending_human_request_id: Some(request_id),
        pending_human_request: request.clone(),
        expires_at,
        trace_events: execution.pending.clone(),
        metadata: continuation_metadata,
        created_at: crate::clock::now_text(),
    };
    execution.recorder.pause(&continuation).await?;
    crate::faults::point("after_continuation_write");
    let metadata = json!({"continuation_id": continuation_id, "request": request});
    execution
        .checkpoint("human_pause", Some(&step.id), metadata, true)
        .await?;
    Ok(Outcome::Blocked(execution.run.clone()))
}
