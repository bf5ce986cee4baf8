//! Executing a plan: one step at a time, each followed by a durable boundary (the run's new
//! state, its trace events and a checkpoint, written in one transaction by the [`Recorder`]).
//!
//! The run row always says where to go next (`current_step_index`, or `current_node_id` in a
//! graph, and `metadata.execution_context.next_input`), so a run whose worker died continues
//! after its last completed step and never runs a completed step again.
//!
//! One runner per kind of plan:
//! - [`agent_run`]: the root agent alone; [`sequential`]: sequential workflows and the turns of
//!   handoff and group-chat workflows; [`graph_run`]: graph workflows; [`concurrent`]:
//!   concurrent workflows.
//!
//! What the runners share:
//! - [`state`]: the bookkeeping of a running run (trace events, metadata, token counts);
//!   [`steps`]: what a runner records about a finished step;
//! - [`checkpoint`]: checkpoint documents and the one function that writes a boundary;
//! - [`lifecycle`]: the `run_started` prologue, completion and failure;
//! - [`policy`]: retries, timeouts and `on_error` of a step; [`unit`]: the work of one attempt,
//!   with [`nested`] (nested workflows);
//! - [`human`]: pausing for a person.

mod agent_run;
mod checkpoint;
mod concurrent;
mod graph_run;
mod human;
mod lifecycle;
mod nested;
mod policy;
mod sequential;
mod state;
mod steps;
mod unit;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{build_checkpoint, expand_checkpoint};
pub use human::human_request;

use super::plan::Plan;
use crate::spec::model::WorkflowType;
use crate::store::{Continuation, RunRecord, RunStatus, StoreError};
use state::Execution;

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

/// Executes `plan` for `run` from where the run row says it stands.
pub async fn execute(
    plan: &Plan,
    run: RunRecord,
    recorder: &dyn Recorder,
    cancel: &CancellationToken,
    settings: &ExecutionSettings,
) -> Outcome {
    let mut execution = Execution::new(plan, run, recorder, cancel, settings);
    let result = match &plan.workflow {
        None => agent_run::run_agent(&mut execution, &plan.agent).await,
        Some(workflow) => match workflow.kind {
            WorkflowType::Graph => graph_run::run_graph(&mut execution, plan, workflow).await,
            WorkflowType::Concurrent => {
                concurrent::run_concurrent(&mut execution, plan, workflow).await
            }
            WorkflowType::Sequential | WorkflowType::Handoff | WorkflowType::GroupChat => {
                sequential::run_sequential(&mut execution, plan, workflow).await
            }
        },
    };
    match result {
        Ok(outcome) => outcome,
        Err(interrupt) => Outcome::Interrupted(interrupt),
    }
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
