//! How a run begins and ends, the same for every runner: the `run_started` prologue and
//! checkpoint, the completed epilogue, and a failure recorded as the run's final state.

use serde_json::{Value, json};

use super::Interrupt;
use super::state::{Execution, StepFailure, message};
use crate::engine::plan::{AgentPlan, WorkflowPlan};
use crate::engine::trace::TraceEvent;
use crate::store::RunStatus;

impl Execution<'_> {
    /// The `run_started` checkpoint, deferred to the first boundary: what the run was started
    /// with (target, environment, deadline).
    pub(super) fn defer_start_checkpoint(&mut self) {
        let context = json!({
            "target": self.run.metadata.get("target"),
            "environment": self.run.metadata.get("environment"),
            "timeout_seconds": self.run.metadata.get("timeout_seconds"),
            "deadline_at": self.run.deadline_at,
        });
        self.defer_checkpoint("run_started", None, context);
    }

    /// Starts a fresh workflow run: the user's message, the runner's `started` event, empty
    /// iteration counts, the execution context and the `run_started` checkpoint. The runner
    /// sets where the run stands (step index, graph cursor) before calling this.
    pub(super) fn begin_workflow(&mut self, started: TraceEvent, input: &str) {
        self.run.messages.push(message("user", input, None));
        self.emit(started);
        self.run
            .metadata
            .insert("step_iteration_counts".into(), json!({}));
        self.set_context("workflow_started", None, input, None, input);
        self.defer_start_checkpoint();
    }

    /// Ends a workflow run as completed with `output`: the `workflow_completed` event (with the
    /// runner's `metadata`), the result metadata of this leg and the final boundary.
    pub(super) async fn complete_workflow(
        &mut self,
        agent: &AgentPlan,
        workflow: &WorkflowPlan,
        output: &str,
        metadata: Value,
    ) -> Result<(), Interrupt> {
        self.emit(
            self.event("workflow_completed")
                .with("workflow_name", workflow.name.clone())
                .output(output)
                .metadata(metadata),
        );
        self.run.output_text = Some(crate::redact::redacted_text(output));
        self.run.pending_human_request = None;
        self.finish_metadata(agent);
        let leg_start = self.leg_start;
        self.leg_metadata(workflow, leg_start, None);
        self.mark_finished(RunStatus::Completed);
        let metadata = json!({"output_text": self.run.output_text});
        self.checkpoint("run_completed", None, metadata, true).await
    }

    /// Records a failure as the run's final state.
    pub(super) async fn fail_run(
        &mut self,
        agent: &AgentPlan,
        step_id: Option<&str>,
        failure: &StepFailure,
    ) -> Result<(), Interrupt> {
        let message = crate::redact::redacted_text(&failure.message);
        let mut error = json!({"type": failure.kind, "message": message, "step_id": step_id});
        if let Some(guardrail) = &failure.guardrail {
            error["guardrail_id"] = json!(guardrail);
        }
        let event_type = if self.run.workflow_name.is_some() {
            "workflow_failed"
        } else {
            "run_failed"
        };
        self.emit(
            self.event(event_type)
                .with("agent_name", agent.name.clone())
                .with("workflow_name", json!(self.run.workflow_name))
                .with("step_id", json!(step_id))
                .with("guardrail_id", json!(failure.guardrail))
                .error(failure.kind, &message),
        );
        self.run.error = Some(error.clone());
        self.finish_metadata(agent);
        if let Some(workflow) = &self.plan.workflow {
            let leg_start = self.leg_start;
            self.leg_metadata(workflow, leg_start, None);
        }
        self.mark_finished(RunStatus::Failed);
        self.checkpoint("run_failed", step_id, json!({"error": error}), true)
            .await
    }
}
