//! The bookkeeping of a run while it executes: the run row being built, the trace events not yet
//! written, token counts, and the run-level metadata kneo-serv reports.

use std::time::Instant;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ExecutionSettings, Recorder};
use crate::engine::agent::{AgentOutput, EventSink, Failure};
use crate::engine::memory::AgentHistories;
use crate::engine::plan::{AgentPlan, Plan, WorkflowPlan};
use crate::engine::providers::Message;
use crate::engine::trace::TraceEvent;
use crate::spec::model::WorkflowType;
use crate::store::{RunRecord, RunStatus};

/// A step's failure, after its retries.
pub(super) type StepFailure = Failure;

/// What one step produced.
pub(super) struct StepOutput {
    pub(super) text: String,
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    /// Model calls (an agent's turn), or 1 for work without a model.
    pub(super) iterations: u32,
}

impl StepOutput {
    /// Output of work that used no model.
    pub(super) fn text(text: String) -> StepOutput {
        StepOutput {
            text,
            input_tokens: 0,
            output_tokens: 0,
            iterations: 1,
        }
    }
}

/// The mutable state of a run while it executes.
pub(super) struct Execution<'a> {
    pub(super) plan: &'a Plan,
    pub(super) run: RunRecord,
    pub(super) recorder: &'a dyn Recorder,
    pub(super) cancel: &'a CancellationToken,
    pub(super) settings: &'a ExecutionSettings,
    pub(super) pending: Vec<Value>,
    /// Checkpoints built but not yet written: they go out with the next boundary.
    pub(super) deferred: Vec<Value>,
    pub(super) last_event_id: Option<String>,
    pub(super) started: Instant,
    /// The step this leg of execution started at (0, or the step after a resume).
    pub(super) leg_start: usize,
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    /// The graph node the next checkpoint belongs to (its `node_id`).
    pub(super) current_node: Option<String>,
    /// A graph run's routing state, kept in `execution_context.graph` (see `graph_run`).
    pub(super) graph_state: Option<Value>,
    /// The run's agent histories, kept in `execution_context.agent_histories`.
    pub(super) histories: AgentHistories,
    /// Model calls and steps of this leg, reported as `metadata.iterations`.
    pub(super) iterations: u64,
    /// Why a graph stopped (`terminal_node`, `no_matching_edge`, `max_steps`), as
    /// `metadata.workflow.termination` reports it.
    pub(super) termination: Option<&'static str>,
}

impl<'a> Execution<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        run: RunRecord,
        recorder: &'a dyn Recorder,
        cancel: &'a CancellationToken,
        settings: &'a ExecutionSettings,
    ) -> Execution<'a> {
        let histories = AgentHistories::from_context(run.metadata.get("execution_context"));
        Execution {
            plan,
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
            histories,
            iterations: 0,
            termination: None,
        }
    }

    /// Emits the events a unit of work collected (tool calls, command output).
    pub(super) fn emit_collected(&mut self, sink: &EventSink) {
        for event in sink.drain() {
            self.emit(event);
        }
    }

    pub(super) fn emit(&mut self, event: TraceEvent) {
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

    /// A trace event of this run, not yet emitted.
    pub(super) fn event(&self, event_type: &str) -> TraceEvent {
        TraceEvent::new(event_type, &self.run.id, None)
    }

    /// Adds what a step used to the run's token and iteration counts.
    pub(super) fn add_usage(&mut self, output: &StepOutput) {
        self.input_tokens += output.input_tokens;
        self.output_tokens += output.output_tokens;
        self.iterations += u64::from(output.iterations.max(1));
    }

    pub(super) fn set_context(
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
        let histories = (!self.histories.is_empty()).then(|| self.histories.to_json());
        if let Some(context) = self
            .run
            .metadata
            .get_mut("execution_context")
            .and_then(Value::as_object_mut)
        {
            if let Some(state) = &self.graph_state {
                context.insert("graph".into(), state.clone());
            }
            if let Some(histories) = histories {
                context.insert("agent_histories".into(), histories);
            }
        }
    }

    /// What the root agent's turn reports in the run's metadata (kneo-serv's names).
    pub(super) fn agent_output_metadata(&mut self, output: &AgentOutput) {
        self.iterations += u64::from(output.iterations.max(1));
        let metadata = &mut self.run.metadata;
        if let Some(memory) = &output.memory {
            metadata.insert("memory".into(), memory.clone());
        }
        if let Some(plan) = &output.plan {
            metadata.insert("plan".into(), json!(crate::redact::redacted_text(plan)));
        }
        if !output.revised_by.is_empty() {
            let revisions: Vec<Value> = output
                .revised_by
                .iter()
                .map(|id| json!({"id": id, "action": "revise"}))
                .collect();
            metadata.insert("guardrails".into(), Value::Array(revisions));
        }
    }

    pub(super) fn finish_metadata(&mut self, agent: &AgentPlan) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let metadata = &mut self.run.metadata;
        metadata.insert("sdk".into(), json!("kneo_agent"));
        metadata.insert("iterations".into(), json!(self.iterations.max(1)));
        metadata.insert("duration_ms".into(), json!(duration_ms));
        metadata.insert("runtime_mode".into(), json!(agent.runtime.mode.as_str()));
        metadata.insert("runtime_name".into(), json!(agent.runtime.runtime_name));
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
    pub(super) fn leg_metadata(
        &mut self,
        workflow: &WorkflowPlan,
        start_index: usize,
        pending_step: Option<&str>,
    ) {
        let order = workflow.run_order();
        let leg: Vec<&str> = if workflow.graph.is_some() {
            // A graph's steps are the nodes it visited, in visit order.
            self.run.visited_nodes.iter().map(String::as_str).collect()
        } else {
            order[start_index.min(order.len())..].to_vec()
        };
        let leg = json!(leg);
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let mut summary = json!({"name": workflow.name, "type": workflow.kind.as_str()});
        if workflow.graph.is_some() {
            summary["visited_nodes"] = json!(self.run.visited_nodes);
            summary["current_node_id"] = json!(self.run.current_node_id);
            if let Some(termination) = self.termination {
                summary["termination"] = json!(termination);
            }
            if let Some(step) = pending_step {
                summary["pending_node_id"] = json!(step);
            }
        } else {
            summary["visited_steps"] = json!(self.run.visited_steps);
        }
        let metadata = &mut self.run.metadata;
        if let Some(orchestration) = &workflow.orchestration {
            let rounds = (workflow.kind == WorkflowType::GroupChat).then_some(orchestration.rounds);
            summary["rounds"] = json!(rounds);
            if let Some(rounds) = rounds {
                metadata.insert("workflow_rounds".into(), json!(rounds));
            }
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
        metadata.insert("iterations".into(), json!(self.iterations.max(1)));
        metadata.insert("duration_ms".into(), json!(duration_ms));
        metadata.entry("variables").or_insert_with(|| json!({}));
    }

    /// Counts one more completed iteration of `step_id` (kneo-serv's `step_iteration_counts`).
    pub(super) fn count_iteration(&mut self, step_id: &str) {
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

    pub(super) fn mark_finished(&mut self, status: RunStatus) {
        let now = crate::clock::now_text();
        self.run.status = status;
        self.run.completed_at = Some(now.clone());
        self.run.updated_at = now;
    }
}

/// A message of the run's thread, redacted as stored.
pub(super) fn message(role: &str, content: &str, name: Option<&str>) -> Value {
    let mut message = Message::new(role, &crate::redact::redacted_text(content));
    message.name = name.map(str::to_string);
    message.to_json()
}
