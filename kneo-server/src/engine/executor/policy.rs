//! Step policy: a step's attempts (`1 + max_retries`, each under the step timeout), then its
//! `on_error` (`fail`, `continue`, or a `fallback` step run in its place).

use serde_json::json;

use super::Interrupt;
use super::state::{Execution, StepFailure, StepOutput};
use super::unit::run_unit;
use crate::engine::agent::{EventSink, StepContext};
use crate::engine::plan::{StepPlan, WorkflowPlan};
use crate::spec::model::OnError;

/// What a step came to under its policy.
pub(super) enum StepResult {
    Done(StepOutput),
    /// Failed under `on_error: continue`: the input passes on unchanged.
    Skipped(StepFailure),
    Failed(StepFailure),
}

/// Runs a step under its retries and timeout, then applies its `on_error` policy.
pub(super) async fn run_step_with_policy(
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
                execution
                    .event("step_fallback")
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
                        execution
                            .event("step_retry")
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
