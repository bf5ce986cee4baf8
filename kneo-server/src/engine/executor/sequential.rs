//! Executing a sequential workflow, and the turns of a handoff or group-chat workflow: each
//! step's (or turn's) output is the next one's input, with a durable boundary after every one.
//! `current_step_index` (the position in the run order) and `execution_context.next_input` say
//! where a resumed or taken-over run continues.

use serde_json::{Value, json};

use super::human::{PausePosition, pause_for_human};
use super::policy::{StepResult, run_step_with_policy};
use super::state::Execution;
use super::steps::{completed_metadata, continued_metadata};
use super::{Interrupt, Outcome};
use crate::engine::plan::{Plan, Unit, WorkflowPlan};

pub(super) async fn run_sequential(
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
    let order: Vec<usize> = match &workflow.orchestration {
        Some(orchestration) => orchestration.turns(workflow.steps.len()),
        None => (0..workflow.steps.len()).collect(),
    };
    let step_count = order.len();
    let shape = |start: usize| match &workflow.orchestration {
        Some(_) => json!({
            "workflow_type": workflow.kind.as_str(),
            "participant_count": workflow.steps.len(),
            "start_index": start,
            "turn_count": step_count,
        }),
        None => json!({"start_index": start, "step_count": step_count}),
    };
    execution.leg_start = start_index;
    if resuming {
        execution.emit(
            execution
                .event("workflow_resumed")
                .with("workflow_name", workflow.name.clone())
                .input(&current_input)
                .metadata(shape(start_index)),
        );
    } else {
        execution.run.current_step_index = Some(0);
        let started = execution
            .event("workflow_started")
            .with("workflow_name", workflow.name.clone())
            .input(&input)
            .metadata(shape(0));
        execution.begin_workflow(started, &input);
    }

    for (index, step_index) in order.iter().enumerate().skip(start_index) {
        let Some(step) = workflow.steps.get(*step_index) else {
            break;
        };
        if execution.cancel.is_cancelled() {
            return Err(Interrupt::Cancelled);
        }
        if step.disabled {
            execution.emit(
                execution
                    .event("step_skipped")
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
            execution
                .event("step_started")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", step.id.clone())
                .input(&current_input)
                .metadata(json!({"index": index, "kind": step.unit.kind()})),
        );
        let result = run_step_with_policy(execution, workflow, step, &current_input).await?;
        match result {
            StepResult::Done(output) => {
                execution.record_step_done(workflow, step, &output);
                let previous_input = std::mem::replace(&mut current_input, output.text.clone());
                execution.run.current_step_index = Some(index as i64 + 1);
                execution.set_context(
                    "step_completed",
                    Some(&step.id),
                    &previous_input,
                    Some(&output.text),
                    &current_input,
                );
                let metadata = completed_metadata(workflow, &previous_input, &output.text);
                execution
                    .checkpoint("step_completed", Some(&step.id), metadata, false)
                    .await?;
            }
            StepResult::Skipped(failure) => {
                execution.record_step_continued(workflow, step, &failure);
                execution.run.current_step_index = Some(index as i64 + 1);
                execution.set_context(
                    "step_failed",
                    Some(&step.id),
                    &current_input,
                    None,
                    &current_input,
                );
                let metadata = continued_metadata(workflow, &current_input, &failure);
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
                execution
                    .fail_run(&plan.agent, Some(&step.id), &failure)
                    .await?;
                return Ok(Outcome::Finished(execution.run.clone()));
            }
        }
    }

    execution.run.current_step_index = None;
    let metadata = json!({"visited_steps": execution.run.visited_steps});
    execution
        .complete_workflow(&plan.agent, workflow, &current_input, metadata)
        .await?;
    Ok(Outcome::Finished(execution.run.clone()))
}
