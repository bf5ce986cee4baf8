//! Running the root agent alone (`target: agent`, or a spec without a workflow): one agent turn
//! between the `run_started` and `run_completed` events.

use serde_json::json;

use super::state::{Execution, message};
use super::{Interrupt, Outcome};
use crate::engine::agent::StepContext;
use crate::engine::plan::AgentPlan;
use crate::store::RunStatus;

pub(super) async fn run_agent(
    execution: &mut Execution<'_>,
    agent: &AgentPlan,
) -> Result<Outcome, Interrupt> {
    let input = execution.run.input_text.clone().unwrap_or_default();
    if execution.run.messages.is_empty() {
        execution.run.messages.push(message("user", &input, None));
    }
    execution.emit(
        execution
            .event("run_started")
            .with("agent_name", agent.name.clone())
            .input(&input)
            .metadata(json!({"message_count": execution.run.messages.len()})),
    );
    execution.defer_start_checkpoint();

    let mut context = StepContext::new(&execution.run.id, None, 1);
    context.histories = Some(execution.histories.clone());
    let answer = tokio::select! {
        _ = execution.cancel.cancelled() => return Err(Interrupt::Cancelled),
        answer = crate::engine::agent::run_agent(agent, &input, &context) => answer,
    };
    execution.emit_collected(&context.events);
    match answer {
        Ok(output) => {
            execution.input_tokens += output.input_tokens;
            execution.output_tokens += output.output_tokens;
            execution.agent_output_metadata(&output);
            execution
                .run
                .messages
                .push(message("assistant", &output.text, None));
            execution.emit(
                execution
                    .event("run_completed")
                    .with("agent_name", agent.name.clone())
                    .output(&output.text)
                    .metadata(json!({"message_count": output.message_count})),
            );
            execution.run.output_text = Some(crate::redact::redacted_text(&output.text));
            execution.finish_metadata(agent);
            execution.mark_finished(RunStatus::Completed);
            let metadata = json!({"output_text": execution.run.output_text});
            execution
                .checkpoint("run_completed", None, metadata, true)
                .await?;
        }
        Err(failure) => execution.fail_run(agent, None, &failure).await?,
    }
    Ok(Outcome::Finished(execution.run.clone()))
}
