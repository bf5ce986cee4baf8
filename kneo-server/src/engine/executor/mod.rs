//! Executing a plan: one step at a time, each followed by a durable boundary (the run's new
//! state, its trace events and a checkpoint, written in one transaction by the [`Recorder`]).
//!
//! The run row always says where to go next (`current_step_index`, or `current_node_id` in a
//! graph, and `metadata.execution_context.next_input`), so a run whose worker died continues
//! after its last completed step and never runs a completed step again.
//!
//! Sequential workflows run here; graph workflows in [`graph_run`].

mod graph_run;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::agent::{EventSink, Failure, StepContext};
use super::command::CommandPlan;
use super::functions::FunctionInput;
use super::graph::NodeStatus;
use super::plan::{AgentPlan, Plan, StepPlan, Unit, WorkflowPlan};
use super::providers::Message;
use super::trace::TraceEvent;
use crate::spec::model::WorkflowType;
use crate::spec::model::{HumanSpec, OnError};
use crate::store::{Continuation, RunRecord, RunStatus, StoreError};

/// One durable step boundary.
#[derive(Debug, Clone)]
pub struct Boundary {
    pub run: RunRecord,
    pub trace_events: Vec<Value>,
    /// In sequence order; usually one, more when earlier ones were deferred.
    pub checkpoints: Vec<Value>,
    /// The run reached a terminal status or blocked: its queue record is closed.
    pub finished: bool,
}

/// Why execution stopped before the plan finished.
#[derive(Debug, Clone)]
pub enum Interrupt {
    /// The stored run no longer accepts writes (cancelled, timed out, or finished elsewhere).
    Refused(Option<RunStatus>),
    /// Another worker holds the run now.
    LeaseLost,
    /// The cancellation token fired.
    Cancelled,
    Store(StoreError),
}

/// Persists boundaries and continuations for the executor.
#[async_trait]
pub trait Recorder: Send + Sync {
    async fn boundary(&self, boundary: Boundary) -> Result<(), Interrupt>;
    /// Writes a continuation durably before the run is marked blocked.
    async fn pause(&self, continuation: &Continuation) -> Result<(), Interrupt>;
}

/// How execution ended.
#[derive(Debug)]
pub enum Outcome {
    /// Completed or failed: the final state is stored.
    Finished(RunRecord),
    /// Waiting for a person.
    Blocked(RunRecord),
    Interrupted(Interrupt),
}

/// Limits that shape execution.
#[derive(Debug, Clone)]
pub struct ExecutionSettings {
    /// Trace events kept per run (0 = no cap); later ones are counted as dropped.
    pub trace_max_events: usize,
}

/// A step's failure, after its retries.
type StepFailure = Failure;

/// What one step produced.
struct StepOutput {
    text: String,
    input_tokens: u64,
    output_tokens: u64,
}

/// The mutable state of a run while it executes.
struct Execution<'a> {
    run: RunRecord,
    recorder: &'a dyn Recorder,
    cancel: &'a CancellationToken,
    settings: &'a ExecutionSettings,
    pending: Vec<Value>,
    /// Checkpoints built but not yet written: they go out with the next boundary.
    deferred: Vec<Value>,
    last_event_id: Option<String>,
    started: Instant,
    /// The step this leg of execution started at (0, or the step after a resume).
    leg_start: usize,
    input_tokens: u64,
    output_tokens: u64,
    /// The graph node the next checkpoint belongs to (its `node_id`).
    current_node: Option<String>,
    /// A graph run's routing state, kept in `execution_context.graph` (see [`graph_run`]).
    graph_state: Option<Value>,
}

impl<'a> Execution<'a> {
    /// Emits the events a unit of work collected (tool calls, command output).
    fn emit_collected(&mut self, sink: &EventSink) {
        for event in sink.drain() {
            self.emit(event);
        }
    }

    fn emit(&mut self, event: TraceEvent) {
        let event = event.with("parent_event_id", json!(self.last_event_id));
        self.last_event_id = Some(event.event_id());
        let cap = self.settings.trace_max_events;
        if cap > 0 && self.run.trace_event_count as usize >= cap {
            self.run.trace_dropped += 1;
            return;
        }
        self.run.trace_event_count += 1;
        self.pending.push(event.build());
    }

    fn next_sequence(&self) -> i64 {
        self.run
            .metadata
            .get("checkpoint_sequence")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1
    }

    /// Writes a boundary: the run as it is now, the trace since the last one, and a checkpoint.
    async fn checkpoint(
        &mut self,
        checkpoint_type: &str,
        step_id: Option<&str>,
        metadata: Value,
        finished: bool,
    ) -> Result<(), Interrupt> {
        if !finished && self.cancel.is_cancelled() {
            return Err(Interrupt::Cancelled);
        }
        self.build_checkpoint_now(checkpoint_type, step_id, metadata);
        let boundary = Boundary {
            run: self.run.clone(),
            trace_events: std::mem::take(&mut self.pending),
            checkpoints: std::mem::take(&mut self.deferred),
            finished,
        };
        self.recorder.boundary(boundary).await
    }

    /// Records a checkpoint that is written with the next boundary instead of on its own. The
    /// start of a run has nothing to resume from, so its checkpoint need not cost a transaction.
    fn defer_checkpoint(&mut self, checkpoint_type: &str, step_id: Option<&str>, metadata: Value) {
        self.build_checkpoint_now(checkpoint_type, step_id, metadata);
    }

    /// Builds the next checkpoint from the run's current state and the trace events not yet in a
    /// checkpoint (those events stay pending until the boundary writes them).
    fn build_checkpoint_now(
        &mut self,
        checkpoint_type: &str,
        step_id: Option<&str>,
        metadata: Value,
    ) {
        let now = crate::clock::now_text();
        self.run.updated_at = now.clone();
        let sequence = self.next_sequence();
        self.run
            .metadata
            .insert("checkpoint_sequence".into(), json!(sequence));
        let in_checkpoints: usize = self
            .deferred
            .iter()
            .map(|checkpoint| checkpoint["trace_events"].as_array().map_or(0, Vec::len))
            .sum();
        let delta = &self.pending[in_checkpoints.min(self.pending.len())..];
        let mut checkpoint = build_checkpoint(
            &self.run,
            checkpoint_type,
            step_id,
            sequence,
            delta,
            metadata,
            &now,
        );
        if let Some(node) = &self.current_node {
            checkpoint["node_id"] = json!(node);
        }
        self.deferred.push(checkpoint);
    }

    fn set_context(
        &mut self,
        last_event_type: &str,
        step_id: Option<&str>,
        last_input: &str,
        last_output: Option<&str>,
        next_input: &str,
    ) {
        self.run.metadata.insert(
            "execution_context".into(),
            json!({
                "last_event_type": last_event_type,
                "current_step_id": step_id,
                "current_node_id": self.run.current_node_id,
                "visited_steps": self.run.visited_steps,
                "visited_nodes": self.run.visited_nodes,
                "last_input_text": crate::redact::redacted_text(last_input),
                "last_output_text": last_output.map(crate::redact::redacted_text),
                "current_iteration": 1,
                "next_input": next_input,
            }),
        );
        if let Some(state) = &self.graph_state
            && let Some(context) = self
                .run
                .metadata
                .get_mut("execution_context")
                .and_then(Value::as_object_mut)
        {
            context.insert("graph".into(), state.clone());
        }
    }

    fn finish_metadata(&mut self, agent: &AgentPlan) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let metadata = &mut self.run.metadata;
        metadata.insert("sdk".into(), json!("kneo_agent"));
        metadata.insert("iterations".into(), json!(1));
        metadata.insert("duration_ms".into(), json!(duration_ms));
        let runtime_name = agent.provider.runtime_name();
        let mode = if runtime_name.starts_with("native") {
            "native"
        } else {
            "bridge"
        };
        metadata.insert("runtime_mode".into(), json!(mode));
        metadata.insert("runtime_name".into(), json!(runtime_name));
        metadata.insert("agent_name".into(), json!(agent.name));
        if self.input_tokens + self.output_tokens > 0 {
            let usage = json!({
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            });
            self.run.usage = Some(usage.clone());
            self.run.metadata.insert("usage".into(), usage);
        }
    }

    /// The workflow-level result metadata kneo-serv reports for a leg of execution (the part
    /// since the start or the last resume), optionally with the step the run now waits on.
    fn leg_metadata(
        &mut self,
        workflow: &WorkflowPlan,
        start_index: usize,
        pending_step: Option<&str>,
    ) {
        let end = workflow.steps.len();
        let leg: Vec<&str> = workflow.steps[start_index.min(end)..]
            .iter()
            .map(|step| step.id.as_str())
            .collect();
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let visited = self.run.visited_steps.clone();
        let metadata = &mut self.run.metadata;
        let mut summary = json!({"name": workflow.name, "type": workflow.kind.as_str(), "visited_steps": visited});
        if workflow.graph.is_some() {
            summary["visited_nodes"] = json!(self.run.visited_nodes);
            summary["current_node_id"] = json!(self.run.current_node_id);
        }
        if let Some(step) = pending_step {
            summary["pending_step_id"] = json!(step);
        }
        metadata.insert("workflow".into(), summary);
        metadata.insert(
            "workflow_description".into(),
            json!(workflow.description.clone().unwrap_or_default()),
        );
        metadata.insert("workflow_type".into(), json!(workflow.kind.as_str()));
        metadata.insert("workflow_steps".into(), json!(leg));
        metadata.insert("sdk".into(), json!("kneo_agent"));
        metadata.insert("iterations".into(), json!(1));
        metadata.insert("duration_ms".into(), json!(duration_ms));
        metadata.entry("variables").or_insert_with(|| json!({}));
    }

    /// Counts one more completed iteration of `step_id` (kneo-serv's `step_iteration_counts`).
    fn count_iteration(&mut self, step_id: &str) {
        let counts = self
            .run
            .metadata
            .entry("step_iteration_counts")
            .or_insert_with(|| json!({}));
        if let Some(counts) = counts.as_object_mut() {
            let key = format!("{step_id}|");
            let next = counts.get(&key).and_then(Value::as_i64).unwrap_or(0) + 1;
            counts.insert(key, json!(next));
        }
    }

    fn mark_finished(&mut self, status: RunStatus) {
        let now = crate::clock::now_text();
        self.run.status = status;
        self.run.completed_at = Some(now.clone());
        self.run.updated_at = now;
    }
}

/// The checkpoint document in kneo-serv's shape, as stored. `state` carries the run with only
/// its last 20 messages and without the parts the run row or the checkpoint itself already hold
/// (the frozen spec, the trace delta): [`expand_checkpoint`] puts them back when a checkpoint is
/// read, so stored checkpoints stay small however long the run gets.
/// Longest list a checkpoint's state snapshot keeps (its newest items), as kneo-serv's
/// `KNEO_SERV_CHECKPOINT_MAX_LIST_ITEMS`; the full lists are on the run row.
const PREVIEW_LIST_ITEMS: usize = 20;
/// Most keys a snapshot's object keeps (`KNEO_SERV_CHECKPOINT_MAX_DICT_ITEMS`).
const PREVIEW_DICT_ITEMS: usize = 50;

/// Bounds every list and object in a snapshot, so a long run's checkpoints do not each repeat
/// its whole history (which would make the run's checkpoints grow with the square of its
/// length). True when anything was cut.
fn bound_preview(object: &mut serde_json::Map<String, Value>) -> bool {
    fn bound(value: &mut Value) -> bool {
        match value {
            Value::Array(items) => {
                let mut cut = items.len() > PREVIEW_LIST_ITEMS;
                if cut {
                    items.drain(..items.len() - PREVIEW_LIST_ITEMS);
                }
                for item in items.iter_mut() {
                    cut |= bound(item);
                }
                cut
            }
            Value::Object(fields) => bound_preview(fields),
            _ => false,
        }
    }
    let mut cut = object.len() > PREVIEW_DICT_ITEMS;
    if cut {
        let keep: Vec<String> = object.keys().take(PREVIEW_DICT_ITEMS).cloned().collect();
        object.retain(|key, _| keep.contains(key));
    }
    for value in object.values_mut() {
        cut |= bound(value);
    }
    cut
}

pub fn build_checkpoint(
    run: &RunRecord,
    checkpoint_type: &str,
    step_id: Option<&str>,
    sequence: i64,
    trace_events: &[Value],
    metadata: Value,
    now: &str,
) -> Value {
    let mut state = serde_json::to_value(run).unwrap_or_else(|_| json!({}));
    if let Some(state) = state.as_object_mut() {
        let message_count = run.messages.len();
        let recent: Vec<Value> = run
            .messages
            .iter()
            .skip(message_count.saturating_sub(20))
            .cloned()
            .collect();
        state.insert("messages".into(), Value::Array(recent));
        if let Some(metadata) = state.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("checkpoint_sequence");
            metadata.remove("frozen_spec");
        }
        if bound_preview(state) {
            state.insert(
                "preview".into(),
                json!({"max_list_items": PREVIEW_LIST_ITEMS, "max_dict_items": PREVIEW_DICT_ITEMS}),
            );
        }
    }
    json!({
        "id": crate::clock::new_id(),
        "run_id": run.id,
        "type": checkpoint_type,
        "workflow_name": run.workflow_name,
        "step_id": step_id,
        "node_id": null,
        "sequence": sequence,
        "iteration": 1,
        "state": crate::redact::redacted(&state),
        "trace_events": trace_events,
        "metadata": crate::redact::redacted(&metadata),
        "created_at": now,
    })
}

/// A stored checkpoint as the API returns it: `state.trace_events` and `state.metadata.trace`
/// (the checkpoint's own trace delta) and `state.metadata.frozen_spec` (the run's) put back.
pub fn expand_checkpoint(mut checkpoint: Value, frozen_spec: Option<&Value>) -> Value {
    let trace = checkpoint
        .get("trace_events")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let run_id = checkpoint.get("run_id").cloned().unwrap_or(Value::Null);
    if let Some(state) = checkpoint.get_mut("state").and_then(Value::as_object_mut) {
        state.insert("trace_events".into(), trace.clone());
        if let Some(metadata) = state.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("trace".into(), json!({"run_id": run_id, "events": trace}));
            if let Some(frozen) = frozen_spec {
                metadata.insert("frozen_spec".into(), frozen.clone());
            }
        }
    }
    checkpoint
}

fn message(role: &str, content: &str, name: Option<&str>) -> Value {
    let mut message = Message::new(role, &crate::redact::redacted_text(content));
    message.name = name.map(str::to_string);
    message.to_json()
}

/// Executes `plan` for `run` from where the run row says it stands.
pub async fn execute(
    plan: &Plan,
    run: RunRecord,
    recorder: &dyn Recorder,
    cancel: &CancellationToken,
    settings: &ExecutionSettings,
) -> Outcome {
    let mut execution = Execution {
        run,
        recorder,
        cancel,
        settings,
        pending: Vec::new(),
        deferred: Vec::new(),
        last_event_id: None,
        started: Instant::now(),
        leg_start: 0,
        input_tokens: 0,
        output_tokens: 0,
        current_node: None,
        graph_state: None,
    };
    let result = match &plan.workflow {
        None => run_agent(&mut execution, &plan.agent).await,
        Some(workflow) if workflow.kind == WorkflowType::Graph => {
            graph_run::run_graph(&mut execution, plan, workflow).await
        }
        Some(workflow) => run_sequential(&mut execution, plan, workflow).await,
    };
    match result {
        Ok(outcome) => outcome,
        Err(interrupt) => Outcome::Interrupted(interrupt),
    }
}

async fn run_agent(execution: &mut Execution<'_>, agent: &AgentPlan) -> Result<Outcome, Interrupt> {
    let input = execution.run.input_text.clone().unwrap_or_default();
    let fresh = execution.run.messages.is_empty();
    if fresh {
        execution.run.messages.push(message("user", &input, None));
    }
    execution.emit(
        TraceEvent::new("run_started", &execution.run.id, None)
            .with("agent_name", agent.name.clone())
            .input(&input)
            .metadata(json!({"message_count": execution.run.messages.len()})),
    );
    let context = json!({
        "target": execution.run.metadata.get("target"),
        "environment": execution.run.metadata.get("environment"),
        "timeout_seconds": execution.run.metadata.get("timeout_seconds"),
        "deadline_at": execution.run.deadline_at,
    });
    execution.defer_checkpoint("run_started", None, context);

    let context = StepContext {
        run_id: execution.run.id.clone(),
        step_id: None,
        attempt: 1,
        events: EventSink::default(),
    };
    let answer = tokio::select! {
        _ = execution.cancel.cancelled() => return Err(Interrupt::Cancelled),
        answer = super::agent::run_agent(agent, &input, &context) => answer,
    };
    execution.emit_collected(&context.events);
    match answer {
        Ok(output) => {
            execution.input_tokens += output.input_tokens;
            execution.output_tokens += output.output_tokens;
            execution
                .run
                .messages
                .push(message("assistant", &output.text, None));
            execution.emit(
                TraceEvent::new("run_completed", &execution.run.id, None)
                    .with("agent_name", agent.name.clone())
                    .output(&output.text)
                    .metadata(json!({"message_count": execution.run.messages.len()})),
            );
            execution.run.output_text = Some(crate::redact::redacted_text(&output.text));
            execution.finish_metadata(agent);
            execution.mark_finished(RunStatus::Completed);
            let metadata = json!({"output_text": execution.run.output_text});
            execution
                .checkpoint("run_completed", None, metadata, true)
                .await?;
        }
        Err(failure) => fail_run(execution, agent, None, &failure).await?,
    }
    Ok(Outcome::Finished(execution.run.clone()))
}

/// Records a failure as the run's final state.
async fn fail_run(
    execution: &mut Execution<'_>,
    agent: &AgentPlan,
    step_id: Option<&str>,
    failure: &StepFailure,
) -> Result<(), Interrupt> {
    let message = crate::redact::redacted_text(&failure.message);
    let error = json!({"type": failure.kind, "message": message, "step_id": step_id});
    execution.emit(
        TraceEvent::new(
            if execution.run.workflow_name.is_some() {
                "workflow_failed"
            } else {
                "run_failed"
            },
            &execution.run.id,
            None,
        )
        .with("agent_name", agent.name.clone())
        .with("workflow_name", json!(execution.run.workflow_name))
        .with("step_id", json!(step_id))
        .error(failure.kind, &message),
    );
    execution.run.error = Some(error.clone());
    execution.finish_metadata(agent);
    execution.mark_finished(RunStatus::Failed);
    execution
        .checkpoint("run_failed", step_id, json!({"error": error}), true)
        .await
}

async fn run_sequential(
    execution: &mut Execution<'_>,
    plan: &Plan,
    workflow: &WorkflowPlan,
) -> Result<Outcome, Interrupt> {
    let input = execution.run.input_text.clone().unwrap_or_default();
    let start_index = execution.run.current_step_index.unwrap_or(0).max(0) as usize;
    let resuming = execution.run.current_step_index.is_some();
    let mut current_input = execution
        .run
        .metadata
        .get("execution_context")
        .and_then(|context| context.get("next_input"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|_| resuming)
        .unwrap_or_else(|| input.clone());
    let step_count = workflow.steps.len();
    execution.leg_start = start_index;
    if resuming {
        execution.emit(
            TraceEvent::new("workflow_resumed", &execution.run.id, None)
                .with("workflow_name", workflow.name.clone())
                .input(&current_input)
                .metadata(json!({"start_index": start_index, "step_count": step_count})),
        );
    } else {
        execution.run.messages.push(message("user", &input, None));
        execution.emit(
            TraceEvent::new("workflow_started", &execution.run.id, None)
                .with("workflow_name", workflow.name.clone())
                .input(&input)
                .metadata(json!({"start_index": 0, "step_count": step_count})),
        );
        execution.run.current_step_index = Some(0);
        execution
            .run
            .metadata
            .insert("step_iteration_counts".into(), json!({}));
        execution.set_context("workflow_started", None, &input, None, &input);
        let context = json!({
            "target": execution.run.metadata.get("target"),
            "environment": execution.run.metadata.get("environment"),
            "timeout_seconds": execution.run.metadata.get("timeout_seconds"),
            "deadline_at": execution.run.deadline_at,
        });
        execution.defer_checkpoint("run_started", None, context);
    }

    for index in start_index..step_count {
        let step = &workflow.steps[index];
        if execution.cancel.is_cancelled() {
            return Err(Interrupt::Cancelled);
        }
        if step.disabled {
            execution.emit(
                TraceEvent::new("step_skipped", &execution.run.id, None)
                    .with("workflow_name", workflow.name.clone())
                    .with("step_id", step.id.clone())
                    .metadata(json!({"index": index, "reason": "disabled"})),
            );
            execution.run.current_step_index = Some(index as i64 + 1);
            continue;
        }
        if let Unit::Human { reference, spec } = &step.unit {
            return pause_for_human(
                execution,
                workflow,
                PausePosition::Step(index),
                step,
                reference,
                spec,
                &current_input,
            )
            .await;
        }
        execution.emit(
            TraceEvent::new("step_started", &execution.run.id, None)
                .with("workflow_name", workflow.name.clone())
                .with("step_id", step.id.clone())
                .input(&current_input)
                .metadata(json!({"index": index, "kind": step.unit.kind()})),
        );
        let result = run_step_with_policy(execution, workflow, step, &current_input).await?;
        match result {
            StepResult::Done(output) => {
                execution.input_tokens += output.input_tokens;
                execution.output_tokens += output.output_tokens;
                execution.run.visited_steps.push(step.id.clone());
                execution.count_iteration(&step.id);
                execution
                    .run
                    .messages
                    .push(message("assistant", &output.text, Some(&step.id)));
                execution.emit(
                    TraceEvent::new("step_completed", &execution.run.id, None)
                        .with("workflow_name", workflow.name.clone())
                        .with("step_id", step.id.clone())
                        .output(&output.text),
                );
                let previous_input = std::mem::replace(&mut current_input, output.text.clone());
                execution.run.current_step_index = Some(index as i64 + 1);
                execution.set_context(
                    "step_completed",
                    Some(&step.id),
                    &previous_input,
                    Some(&output.text),
                    &current_input,
                );
                let metadata = json!({
                    "workflow_type": workflow.kind.as_str(),
                    "input_text": previous_input,
                    "output_text": output.text,
                    "error": null,
                    "iteration": 1,
                });
                execution
                    .checkpoint("step_completed", Some(&step.id), metadata, false)
                    .await?;
            }
            StepResult::Skipped(failure) => {
                execution.run.visited_steps.push(step.id.clone());
                execution.emit(
                    TraceEvent::new("step_failed", &execution.run.id, None)
                        .with("workflow_name", workflow.name.clone())
                        .with("step_id", step.id.clone())
                        .metadata(json!({"on_error": "continue"}))
                        .error(failure.kind, &failure.message),
                );
                execution.run.current_step_index = Some(index as i64 + 1);
                execution.set_context(
                    "step_failed",
                    Some(&step.id),
                    &current_input,
                    None,
                    &current_input,
                );
                let metadata = json!({
                    "workflow_type": workflow.kind.as_str(),
                    "input_text": current_input,
                    "error": {"type": failure.kind, "message": failure.message},
                    "continued": true,
                });
                execution
                    .checkpoint("step_failed", Some(&step.id), metadata, false)
                    .await?;
            }
            StepResult::Failed(failure) => {
                execution.run.current_step_index = Some(index as i64);
                execution.set_context(
                    "step_failed",
                    Some(&step.id),
                    &current_input,
                    None,
                    &current_input,
                );
                fail_run(execution, &plan.agent, Some(&step.id), &failure).await?;
                return Ok(Outcome::Finished(execution.run.clone()));
            }
        }
    }

    execution.emit(
        TraceEvent::new("workflow_completed", &execution.run.id, None)
            .with("workflow_name", workflow.name.clone())
            .output(&current_input)
            .metadata(json!({"visited_steps": execution.run.visited_steps})),
    );
    execution.run.output_text = Some(crate::redact::redacted_text(&current_input));
    execution.run.current_step_index = None;
    execution.run.pending_human_request = None;
    execution.finish_metadata(&plan.agent);
    execution.leg_metadata(workflow, start_index, None);
    execution.mark_finished(RunStatus::Completed);
    let metadata = json!({"output_text": execution.run.output_text});
    execution
        .checkpoint("run_completed", None, metadata, true)
        .await?;
    Ok(Outcome::Finished(execution.run.clone()))
}

enum StepResult {
    Done(StepOutput),
    /// Failed under `on_error: continue`: the input passes on unchanged.
    Skipped(StepFailure),
    Failed(StepFailure),
}

/// Runs a step under its retries and timeout, then applies its `on_error` policy.
async fn run_step_with_policy(
    execution: &mut Execution<'_>,
    workflow: &WorkflowPlan,
    step: &StepPlan,
    input: &str,
) -> Result<StepResult, Interrupt> {
    let failure = match run_with_retries(execution, step, input).await? {
        Ok(output) => return Ok(StepResult::Done(output)),
        Err(failure) => failure,
    };
    match step.on_error {
        OnError::Fail | OnError::Retry => Ok(StepResult::Failed(failure)),
        OnError::Continue => Ok(StepResult::Skipped(failure)),
        OnError::Fallback => {
            let Some(fallback) = step.fallback.and_then(|index| workflow.steps.get(index)) else {
                return Ok(StepResult::Failed(failure));
            };
            execution.emit(
                TraceEvent::new("step_fallback", &execution.run.id, None)
                    .with("workflow_name", workflow.name.clone())
                    .with("step_id", step.id.clone())
                    .metadata(json!({"fallback_step_id": fallback.id}))
                    .error(failure.kind, &failure.message),
            );
            // The fallback runs under its own retries and timeout, never its own on_error.
            match run_with_retries(execution, fallback, input).await? {
                Ok(output) => Ok(StepResult::Done(output)),
                Err(fallback_failure) => Ok(StepResult::Failed(StepFailure {
                    kind: fallback_failure.kind,
                    message: format!(
                        "{} (after fallback {} also failed: {})",
                        failure.message, fallback.id, fallback_failure.message
                    ),
                })),
            }
        }
    }
}

/// One step's attempts: `1 + max_retries`, each under the step timeout. A timed-out attempt is
/// not retried (as in kneo-serv 0.9+), since the work it started may still be running somewhere.
async fn run_with_retries(
    execution: &mut Execution<'_>,
    step: &StepPlan,
    input: &str,
) -> Result<Result<StepOutput, StepFailure>, Interrupt> {
    let attempts = 1 + step.max_retries;
    let mut last_failure = None;
    for attempt in 1..=attempts {
        let context = StepContext {
            run_id: execution.run.id.clone(),
            step_id: Some(step.id.clone()),
            attempt,
            events: EventSink::default(),
        };
        let work = run_unit(&step.unit, input, &context);
        let bounded = async {
            match step.timeout {
                Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                    Err(StepFailure {
                        kind: "step_timeout",
                        message: format!(
                            "step {} timed out after {:.3} s (runbook § 5.3)",
                            step.id,
                            limit.as_secs_f64()
                        ),
                    })
                }),
                None => work.await,
            }
        };
        let result = tokio::select! {
            _ = execution.cancel.cancelled() => {
                execution.emit_collected(&context.events);
                return Err(Interrupt::Cancelled);
            }
            result = bounded => result,
        };
        execution.emit_collected(&context.events);
        match result {
            Ok(output) => return Ok(Ok(output)),
            Err(failure) => {
                let timed_out = matches!(failure.kind, "step_timeout" | "provider_timeout");
                if attempt < attempts && !timed_out {
                    execution.emit(
                        TraceEvent::new("step_retry", &execution.run.id, None)
                            .with("step_id", step.id.clone())
                            .metadata(json!({"attempt": attempt, "max_retries": step.max_retries}))
                            .error(failure.kind, &failure.message),
                    );
                }
                last_failure = Some(failure);
                if timed_out {
                    break;
                }
            }
        }
    }
    Ok(Err(last_failure.unwrap_or(StepFailure {
        kind: "step_failed",
        message: format!("step {} failed", step.id),
    })))
}

type UnitFuture<'u> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<StepOutput, StepFailure>> + Send + 'u>,
>;

/// The work of one attempt.
fn run_unit<'u>(unit: &'u Unit, input: &'u str, context: &'u StepContext) -> UnitFuture<'u> {
    Box::pin(async move {
        match unit {
            Unit::Agent(agent) => super::agent::run_agent(agent, input, context)
                .await
                .map(|answer| StepOutput {
                    text: answer.text,
                    input_tokens: answer.input_tokens,
                    output_tokens: answer.output_tokens,
                }),
            Unit::Function {
                implementation,
                function,
            } => function
                .call(FunctionInput {
                    text: input.to_string(),
                    run_id: context.run_id.clone(),
                    step_id: context.step_id.clone().unwrap_or_default(),
                    attempt: context.attempt,
                })
                .await
                .map(|text| StepOutput {
                    text,
                    input_tokens: 0,
                    output_tokens: 0,
                })
                .map_err(|error| StepFailure {
                    kind: "function_error",
                    message: format!("{implementation}: {error}"),
                }),
            Unit::Command { reference, command } => {
                run_command_function(reference, command, input, context).await
            }
            Unit::Workflow(workflow) => run_nested_workflow(workflow, input, context).await,
            Unit::Human { .. } => Err(StepFailure {
                kind: "human_step_unsupported",
                message: "a human step cannot run inside a nested workflow (E_STEP_WORKFLOW_NESTED_HUMAN)".into(),
            }),
        }
    })
}

/// A `command:` function: the step input as JSON on stdin, the answer's `text` from stdout; its
/// stderr goes into the trace (redacted, bounded).
async fn run_command_function(
    reference: &str,
    command: &CommandPlan,
    input: &str,
    context: &StepContext,
) -> Result<StepOutput, StepFailure> {
    let step_id = context.step_id.clone().unwrap_or_default();
    let document = CommandPlan::function_input(input, &context.run_id, &step_id, context.attempt);
    let result = command.run(&document).await;
    let event = TraceEvent::new("command_completed", &context.run_id, None)
        .with("step_id", step_id.clone())
        .with("tool_name", Value::Null);
    match result {
        Ok(output) => {
            context.events.push(event.metadata(json!({
                "function": reference,
                "program": command.program(),
                "exit_code": output.exit_code,
                "duration_ms": output.duration_ms,
                "stderr": output.stderr,
            })));
            Ok(StepOutput {
                text: output.text,
                input_tokens: 0,
                output_tokens: 0,
            })
        }
        Err(error) => {
            context.events.push(
                event
                    .metadata(json!({"function": reference, "program": command.program(), "stderr": error.stderr}))
                    .error("function_error", &error.message),
            );
            Err(StepFailure {
                kind: "function_error",
                message: format!("function {reference}: {}", error.message),
            })
        }
    }
}

/// A nested component workflow, run inline as one step: its steps' retries and `on_error`
/// apply (fallbacks excepted), but it has no durable boundaries of its own.
async fn run_nested_workflow(
    workflow: &WorkflowPlan,
    input: &str,
    context: &StepContext,
) -> Result<StepOutput, StepFailure> {
    let mut text = input.to_string();
    let (mut input_tokens, mut output_tokens) = (0, 0);
    let mut position = match &workflow.graph {
        Some(graph) => Some(graph.start),
        None => (!workflow.steps.is_empty()).then_some(0),
    };
    let cap = workflow
        .graph
        .as_ref()
        .and_then(|graph| graph.max_steps)
        .map_or(usize::MAX, |cap| cap as usize);
    let mut visits = 0usize;
    while let Some(index) = position {
        let Some(nested) = workflow.steps.get(index) else {
            break;
        };
        visits += 1;
        if visits > cap {
            return Err(StepFailure {
                kind: "max_steps_exceeded",
                message: format!(
                    "nested workflow {}: more than max_steps={cap} node visits",
                    workflow.name
                ),
            });
        }
        let status = if nested.disabled {
            NodeStatus::Skipped
        } else {
            let nested_context = StepContext {
                step_id: Some(nested.id.clone()),
                ..context.clone()
            };
            let mut attempt_result = Err(StepFailure {
                kind: "step_failed",
                message: String::new(),
            });
            for nested_attempt in 1..=1 + nested.max_retries {
                let attempt_context = StepContext {
                    attempt: nested_attempt,
                    ..nested_context.clone()
                };
                attempt_result =
                    match nested.timeout {
                        Some(limit) => tokio::time::timeout(
                            limit,
                            run_unit(&nested.unit, &text, &attempt_context),
                        )
                        .await
                        .unwrap_or_else(|_| {
                            Err(StepFailure {
                                kind: "step_timeout",
                                message: format!("timed out after {:.3} s", limit.as_secs_f64()),
                            })
                        }),
                        None => run_unit(&nested.unit, &text, &attempt_context).await,
                    };
                if attempt_result.is_ok() {
                    break;
                }
            }
            match (attempt_result, nested.on_error) {
                (Ok(output), _) => {
                    input_tokens += output.input_tokens;
                    output_tokens += output.output_tokens;
                    text = output.text;
                    NodeStatus::Completed
                }
                (Err(_), OnError::Continue) => NodeStatus::Failed,
                (Err(failure), _) => {
                    return Err(StepFailure {
                        kind: failure.kind,
                        message: format!(
                            "nested workflow {}: step {}: {}",
                            workflow.name, nested.id, failure.message
                        ),
                    });
                }
            }
        };
        position = match &workflow.graph {
            Some(graph) => graph.route(index, &text, status).map(|route| route.to),
            None => (index + 1 < workflow.steps.len()).then_some(index + 1),
        };
    }
    Ok(StepOutput {
        text,
        input_tokens,
        output_tokens,
    })
}

/// Where a run pauses: a sequential step by index, or a graph node by id.
#[derive(Debug, Clone, Copy)]
enum PausePosition<'p> {
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

async fn pause_for_human(
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
        TraceEvent::new("human_intervention_requested", &execution.run.id, None)
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

/// How long a run may still take, from its `deadline_at`.
pub fn remaining(run: &RunRecord) -> Option<Duration> {
    let deadline = crate::clock::parse(run.deadline_at.as_deref()?)?;
    Some(
        (deadline - crate::clock::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_snapshots_keep_only_the_newest_list_items() {
        let mut run = RunRecord::new("r".into(), "in".into(), crate::clock::now_text());
        run.visited_steps = (0..500).map(|i| format!("s{i}")).collect();
        let checkpoint = build_checkpoint(
            &run,
            "step_completed",
            Some("s499"),
            7,
            &[],
            json!({}),
            "now",
        );
        let visited = checkpoint["state"]["visited_steps"]
            .as_array()
            .expect("a list");
        assert_eq!(visited.len(), PREVIEW_LIST_ITEMS);
        assert_eq!(
            visited.last(),
            Some(&json!("s499")),
            "the newest items stay"
        );
        assert_eq!(
            checkpoint["state"]["preview"]["max_list_items"],
            PREVIEW_LIST_ITEMS
        );
    }

    #[test]
    fn small_snapshots_are_left_whole() {
        let run = RunRecord::new("r".into(), "in".into(), crate::clock::now_text());
        let checkpoint = build_checkpoint(&run, "run_started", None, 1, &[], json!({}), "now");
        assert!(checkpoint["state"].get("preview").is_none());
    }
}
