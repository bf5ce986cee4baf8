//! Executing a concurrent workflow: every participant gets the run's input and they run at the
//! same time; each one's result is a durable boundary of its own as soon as it is in, so a run
//! taken over after a crash runs only the participants that had not finished. The output is the
//! last participant's (in declaration order), as kneo-serv merges their transcripts; a failure
//! fails the run once every participant has settled, the first one in declaration order.
//!
//! A human participant (at most one; validation says so) is asked once the others are done,
//! with the run's input; its answer joins the others on resume, nobody runs again.
//!
//! The results so far live in `execution_context.orchestration.outputs` (participant id →
//! output), beside `current_step_index` (0 once the run started).

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value, json};

use super::human::{PausePosition, pause_for_human};
use super::policy::{StepResult, police};
use super::state::{Execution, StepFailure};
use super::steps::{completed_metadata, continued_metadata};
use super::{Interrupt, Outcome};
use crate::engine::plan::{Plan, Unit, WorkflowPlan};

impl Execution<'_> {
    /// The participants' results so far, as the run row keeps them.
    fn concurrent_outputs(&self) -> Map<String, Value> {
        self.run
            .metadata
            .get("execution_context")
            .and_then(|context| context.pointer("/orchestration/outputs"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets the execution context and keeps the results in it.
    fn concurrent_context(
        &mut self,
        event: &str,
        step_id: Option<&str>,
        input: &str,
        output: Option<&str>,
        outputs: &Map<String, Value>,
    ) {
        self.set_context(event, step_id, input, output, input);
        if let Some(context) = self
            .run
            .metadata
            .get_mut("execution_context")
            .and_then(Value::as_object_mut)
        {
            context.insert(
                "orchestration".into(),
                json!({"outputs": crate::redact::redacted(&Value::Object(outputs.clone()))}),
            );
        }
    }
}

pub(super) async fn run_concurrent(
    execution: &mut Execution<'_>,
    plan: &Plan,
    workflow: &WorkflowPlan,
) -> Result<Outcome, Interrupt> {
    let input = execution.run.input_text.clone().unwrap_or_default();
    let mut outputs = execution.concurrent_outputs();
    let shape =
        json!({"workflow_type": workflow.kind.as_str(), "participant_count": workflow.steps.len()});
    if execution.run.current_step_index.is_some() {
        let context = execution.run.metadata.get("execution_context");
        let field = |key: &str| {
            context
                .and_then(|context| context.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        // A human participant was answered since the pause: its answer is its result.
        if field("last_event_type").as_deref() == Some("human_intervention_resumed")
            && let (Some(step_id), Some(answer)) = (field("current_step_id"), field("next_input"))
        {
            outputs.insert(step_id, json!(answer));
        }
        execution.emit(
            execution
                .event("workflow_resumed")
                .with("workflow_name", workflow.name.clone())
                .input(&input)
                .metadata(shape.clone()),
        );
    } else {
        execution.run.current_step_index = Some(0);
        let started = execution
            .event("workflow_started")
            .with("workflow_name", workflow.name.clone())
            .input(&input)
            .metadata(shape);
        execution.begin_workflow(started, &input);
    }

    let site = execution.site();
    let mut running = FuturesUnordered::new();
    for (index, step) in workflow.steps.iter().enumerate() {
        if step.disabled
            || matches!(step.unit, Unit::Human { .. })
            || outputs.contains_key(&step.id)
        {
            continue;
        }
        execution.emit(
            execution
                .event("step_started")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", step.id.clone())
                .input(&input)
                .metadata(json!({"index": index, "kind": step.unit.kind()})),
        );
        let site = &site;
        let input = input.as_str();
        running.push(async move { (index, police(site, workflow, step, input).await) });
    }
    let mut failures: Vec<(usize, StepFailure)> = Vec::new();
    loop {
        let next = tokio::select! {
            _ = execution.cancel.cancelled() => return Err(Interrupt::Cancelled),
            next = running.next() => next,
        };
        let Some((index, policed)) = next else {
            break;
        };
        let step = &workflow.steps[index];
        for event in policed.events {
            execution.emit(event);
        }
        match policed.result {
            StepResult::Done(output) => {
                execution.record_step_done(workflow, step, &output);
                outputs.insert(step.id.clone(), json!(output.text));
                execution.concurrent_context(
                    "step_completed",
                    Some(&step.id),
                    &input,
                    Some(&output.text),
                    &outputs,
                );
                let metadata = completed_metadata(workflow, &input, &output.text);
                execution
                    .checkpoint("step_completed", Some(&step.id), metadata, false)
                    .await?;
            }
            StepResult::Skipped(failure) => {
                // on_error: continue: the participant contributes nothing.
                execution.record_step_continued(workflow, step, &failure);
                outputs.insert(step.id.clone(), Value::Null);
                execution.concurrent_context("step_failed", Some(&step.id), &input, None, &outputs);
                let metadata = continued_metadata(workflow, &input, &failure);
                execution
                    .checkpoint("step_failed", Some(&step.id), metadata, false)
                    .await?;
            }
            StepResult::Failed(failure) => failures.push((index, failure)),
        }
    }
    drop(running);
    if let Some((index, failure)) = failures.into_iter().min_by_key(|(index, _)| *index) {
        let step_id = workflow.steps[index].id.clone();
        execution.emit(
            execution
                .event("step_failed")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", step_id.clone())
                .with("guardrail_id", json!(failure.guardrail))
                .error(failure.kind, &failure.message),
        );
        execution.concurrent_context("step_failed", Some(&step_id), &input, None, &outputs);
        execution
            .fail_run(&plan.agent, Some(&step_id), &failure)
            .await?;
        return Ok(Outcome::Finished(execution.run.clone()));
    }

    let waiting = workflow.steps.iter().enumerate().find(|(_, step)| {
        !step.disabled && matches!(step.unit, Unit::Human { .. }) && !outputs.contains_key(&step.id)
    });
    if let Some((index, step)) = waiting
        && let Unit::Human { reference, spec } = &step.unit
    {
        execution.concurrent_context("step_completed", None, &input, None, &outputs);
        return pause_for_human(
            execution,
            workflow,
            PausePosition::Step(index),
            step,
            reference,
            spec,
            &input,
        )
        .await;
    }

    // Declaration order, whatever order they finished in; the last one with a result speaks.
    let ran: Vec<&str> = workflow
        .steps
        .iter()
        .filter(|step| outputs.contains_key(&step.id))
        .map(|step| step.id.as_str())
        .collect();
    let output = ran
        .iter()
        .rev()
        .find_map(|id| outputs.get(*id).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    execution.run.visited_steps = ran.iter().map(|id| id.to_string()).collect();
    execution.run.current_step_index = None;
    let metadata = json!({"visited_steps": ran, "workflow_type": workflow.kind.as_str()});
    execution
        .complete_workflow(&plan.agent, workflow, &output, metadata)
        .await?;
    Ok(Outcome::Finished(execution.run.clone()))
}
