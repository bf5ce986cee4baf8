//! The work of one attempt of a step, whatever its kind: an agent turn, a registered function, a
//! `command:` function, or a nested workflow.

use std::future::Future;
use std::pin::Pin;

use super::command_step::run_command_function;
use super::nested::run_nested_workflow;
use super::state::{StepFailure, StepOutput};
use crate::engine::agent::StepContext;
use crate::engine::functions::FunctionInput;
use crate::engine::plan::Unit;

pub(super) type UnitFuture<'u> =
    Pin<Box<dyn Future<Output = Result<StepOutput, StepFailure>> + Send + 'u>>;

/// The work of one attempt.
pub(super) fn run_unit<'u>(
    unit: &'u Unit,
    input: &'u str,
    context: &'u StepContext,
) -> UnitFuture<'u> {
    Box::pin(async move {
        match unit {
            Unit::Agent(agent) => crate::engine::agent::run_agent(agent, input, context)
                .await
                .map(|answer| StepOutput {
                    text: answer.text,
                    input_tokens: answer.input_tokens,
                    output_tokens: answer.output_tokens,
                }),
            Unit::Function {
                implementation,
                function,
            } => function
                .call(FunctionInput {
                    text: input.to_string(),
                    run_id: context.run_id.clone(),
                    step_id: context.step_id.clone().unwrap_or_default(),
                    attempt: context.attempt,
                })
                .await
                .map(StepOutput::text)
                .map_err(|error| StepFailure {
                    kind: "function_error",
                    message: format!("{implementation}: {error}"),
                }),
            Unit::Command { reference, command } => {
                run_command_function(reference, command, input, context).await
            }
            Unit::Workflow(workflow) => run_nested_workflow(workflow, input, context).await,
            Unit::Human { .. } => Err(StepFailure {
                kind: "human_step_unsupported",
                message: "a human step cannot run inside a nested workflow (E_STEP_WORKFLOW_NESTED_HUMAN)".into(),
            }),
        }
    })
}
