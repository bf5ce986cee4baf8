//! A `command:` function step: the step input as JSON on stdin, the answer's `text` from
//! stdout; its stderr goes into the trace (redacted, bounded).

use serde_json::{Value, json};

use super::state::{StepFailure, StepOutput};
use crate::engine::agent::StepContext;
use crate::engine::command::CommandPlan;
use crate::engine::trace::TraceEvent;

pub(super) async fn run_command_function(
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
            Ok(StepOutput::text(output.text))
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
