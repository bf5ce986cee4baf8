//! Step policy: a step's attempts (`1 + max_retries`, each under the step timeout), then its
//! `on_error` (`fail`, `continue`, or a `fallback` step run in its place), then the workflow
//! guardrails on its output. A guardrail's verdict is never retried nor continued past.
//!
//! [`police`] needs nothing of the running run but a [`StepSite`], so several steps can be
//! policed at once (a concurrent workflow's participants); it hands back the trace events the
//! step produced, in order, for the runner to emit.

use serde_json::json;

use super::Interrupt;
use super::state::{Execution, StepFailure, StepOutput};
use super::unit::run_unit;
use crate::engine::agent::StepContext;
use crate::engine::guardrails::{self, GuardrailPlan, Stage};
use crate::engine::memory::AgentHistories;
use crate::engine::plan::{StepPlan, WorkflowPlan};
use crate::engine::trace::TraceEvent;
use crate::spec::model::OnError;

/// What a step came to under its policy.
pub(super) enum StepResult {
    Done(StepOutput),
    /// Failed under `on_error: continue`: the input passes on unchanged.
    Skipped(StepFailure),
    Failed(StepFailure),
}

/// What a step's work needs of its run.
#[derive(Clone)]
pub(super) struct StepSite<'a> {
    pub(super) run_id: String,
    pub(super) histories: AgentHistories,
    /// The root agent's workflow-stage guardrails.
    pub(super) guards: &'a [GuardrailPlan],
}

impl StepSite<'_> {
    fn context(&self, step_id: &str, attempt: u32) -> StepContext {
        StepContext::new(&self.run_id, Some(step_id.to_string()), attempt)
            .in_workflow(self.histories.clone())
    }

    fn event(&self, event_type: &str) -> TraceEvent {
        TraceEvent::new(event_type, &self.run_id, None)
    }
}

impl<'a> Execution<'a> {
    pub(super) fn site(&self) -> StepSite<'a> {
        StepSite {
            run_id: self.run.id.clone(),
            histories: self.histories.clone(),
            guards: &self.plan.workflow_guardrails,
        }
    }
}

/// A step's result with the events its work traced.
pub(super) struct Policed {
    pub(super) result: StepResult,
    pub(super) events: Vec<TraceEvent>,
}

/// Runs a step under its policy (see the module doc), stopping at cancellation, and emits the
/// events it traced.
pub(super) async fn run_step_with_policy(
    execution: &mut Execution<'_>,
    workflow: &WorkflowPlan,
    step: &StepPlan,
    input: &str,
) -> Result<StepResult, Interrupt> {
    let site = execution.site();
    let policed = tokio::select! {
        _ = execution.cancel.cancelled() => return Err(Interrupt::Cancelled),
        policed = police(&site, workflow, step, input) => policed,
    };
    for event in policed.events {
        execution.emit(event);
    }
    Ok(policed.result)
}

/// A step under its retries, timeout and `on_error`, then the workflow guardrails on its output.
pub(super) async fn police(
    site: &StepSite<'_>,
    workflow: &WorkflowPlan,
    step: &StepPlan,
    input: &str,
) -> Policed {
    let mut events = Vec::new();
    let result = match under_on_error(site, workflow, step, input, &mut events).await {
        StepResult::Done(output) => guard_output(site, step, output, &mut events).await,
        other => other,
    };
    Policed { result, events }
}

/// The workflow-stage guardrails (declared on the root agent) over a step's output.
async fn guard_output(
    site: &StepSite<'_>,
    step: &StepPlan,
    mut output: StepOutput,
    events: &mut Vec<TraceEvent>,
) -> StepResult {
    if site.guards.is_empty() {
        return StepResult::Done(output);
    }
    let context = site.context(&step.id, 1);
    let applied = guardrails::apply(Stage::Workflow, site.guards, &output.text, &context).await;
    events.extend(context.events.drain());
    match applied {
        Ok(applied) => {
            output.text = applied.text;
            StepResult::Done(output)
        }
        Err(failure) => StepResult::Failed(failure),
    }
}

async fn under_on_error(
    site: &StepSite<'_>,
    workflow: &WorkflowPlan,
    step: &StepPlan,
    input: &str,
    events: &mut Vec<TraceEvent>,
) -> StepResult {
    let failure = match with_retries(site, step, input, events).await {
        Ok(output) => return StepResult::Done(output),
        Err(failure) if guardrails::is_violation(&failure) => return StepResult::Failed(failure),
        Err(failure) => failure,
    };
    match step.on_error {
        OnError::Fail | OnError::Retry => StepResult::Failed(failure),
        OnError::Continue => StepResult::Skipped(failure),
        OnError::Fallback => {
            let Some(fallback) = step.fallback.and_then(|index| workflow.steps.get(index)) else {
                return StepResult::Failed(failure);
            };
            events.push(
                site.event("step_fallback")
                    .with("workflow_name", workflow.name.clone())
                    .with("step_id", step.id.clone())
                    .metadata(json!({"fallback_step_id": fallback.id}))
                    .error(failure.kind, &failure.message),
            );
            // The fallback runs under its own retries and timeout, never its own on_error.
            match with_retries(site, fallback, input, events).await {
                Ok(output) => StepResult::Done(output),
                Err(fallback_failure) if guardrails::is_violation(&fallback_failure) => {
                    StepResult::Failed(fallback_failure)
                }
                Err(fallback_failure) => StepResult::Failed(StepFailure::new(
                    fallback_failure.kind,
                    format!(
                        "{} (after fallback {} also failed: {})",
                        failure.message, fallback.id, fallback_failure.message
                    ),
                )),
            }
        }
    }
}

/// One step's attempts: `1 + max_retries`, each under the step timeout. A timed-out attempt is
/// not retried (as in kneo-serv 0.9+), since the work it started may still be running somewhere.
async fn with_retries(
    site: &StepSite<'_>,
    step: &StepPlan,
    input: &str,
    events: &mut Vec<TraceEvent>,
) -> Result<StepOutput, StepFailure> {
    let attempts = 1 + step.max_retries;
    let mut last_failure = None;
    for attempt in 1..=attempts {
        let context = site.context(&step.id, attempt);
        let work = run_unit(&step.unit, input, &context, site.guards);
        let result = match step.timeout {
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(StepFailure::new(
                    "step_timeout",
                    format!(
                        "step {} timed out after {:.3} s (runbook § 5.3)",
                        step.id,
                        limit.as_secs_f64()
                    ),
                ))
            }),
            None => work.await,
        };
        // Events of a timed-out attempt stay in the sink: they are written all the same.
        events.extend(context.events.drain());
        match result {
            Ok(output) => return Ok(output),
            Err(failure) if guardrails::is_violation(&failure) => return Err(failure),
            Err(failure) => {
                let timed_out = matches!(failure.kind, "step_timeout" | "provider_timeout");
                if attempt < attempts && !timed_out {
                    events.push(
                        site.event("step_retry")
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
    Err(last_failure.unwrap_or(StepFailure::new(
        "step_failed",
        format!("step {} failed", step.id),
    )))
}
