//! What a workflow runner records about one step (or participant, or turn) that finished: the
//! run's visited steps, messages and counts, the `step_completed` / `step_failed` event, and the
//! metadata of its checkpoint. Runners decide where the run goes next; this is the rest.

use serde_json::{Value, json};

use super::state::{Execution, StepFailure, StepOutput, message};
use crate::engine::plan::{StepPlan, WorkflowPlan};

impl Execution<'_> {
    /// A step that produced `output`: counted, visited, in the thread and the trace.
    pub(super) fn record_step_done(
        &mut self,
        workflow: &WorkflowPlan,
        step: &StepPlan,
        output: &StepOutput,
    ) {
        self.add_usage(output);
        self.run.visited_steps.push(step.id.clone());
        self.count_iteration(&step.id);
        self.run
            .messages
            .push(message("assistant", &output.text, Some(&step.id)));
        self.emit(
            self.event("step_completed")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", step.id.clone())
                .output(&output.text),
        );
    }

    /// A step that failed under `on_error: continue`: visited, and traced as failed.
    pub(super) fn record_step_continued(
        &mut self,
        workflow: &WorkflowPlan,
        step: &StepPlan,
        failure: &StepFailure,
    ) {
        self.run.visited_steps.push(step.id.clone());
        self.emit(
            self.event("step_failed")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", step.id.clone())
                .metadata(json!({"on_error": "continue"}))
                .error(failure.kind, &failure.message),
        );
    }
}

/// The metadata of a `step_completed` checkpoint.
pub(super) fn completed_metadata(workflow: &WorkflowPlan, input: &str, output: &str) -> Value {
    json!({
        "workflow_type": workflow.kind.as_str(),
        "input_text": input,
        "output_text": output,
        "error": null,
        "iteration": 1,
    })
}

/// The metadata of the `step_failed` checkpoint of a step continued past.
pub(super) fn continued_metadata(
    workflow: &WorkflowPlan,
    input: &str,
    failure: &StepFailure,
) -> Value {
    json!({
        "workflow_type": workflow.kind.as_str(),
        "input_text": input,
        "error": {"type": failure.kind, "message": failure.message},
        "continued": true,
    })
}
