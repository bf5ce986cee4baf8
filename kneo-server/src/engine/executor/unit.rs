//! The work of one attempt of a step, whatever its kind: an agent turn, a function component
//! (registered or `command:`), or a nested workflow.

use std::future::Future;
use std::pin::Pin;

use super::nested::run_nested_workflow;
use super::state::{StepFailure, StepOutput};
use crate::engine::agent::StepContext;
use crate::engine::component::FunctionRef;
use crate::engine::guardrails::GuardrailPlan;
use crate::engine::plan::Unit;

pub(super) type UnitFuture<'u> =
    Pin<Box<dyn Future<Output = Result<StepOutput, StepFailure>> + Send + 'u>>;

/// The work of one attempt. `guards` are the workflow-stage guardrails, which a nested workflow
/// applies to its own steps' outputs.
pub(super) fn run_unit<'u>(
    unit: &'u Unit,
    input: &'u str,
    context: &'u StepContext,
    guards: &'u [GuardrailPlan],
) -> UnitFuture<'u> {
    Box::pin(async move {
        match unit {
            Unit::Agent(agent) => crate::engine::agent::run_agent(agent, input, context)
                .await
                .map(|answer| StepOutput {
                    text: answer.text,
                    input_tokens: answer.input_tokens,
                    output_tokens: answer.output_tokens,
                    iterations: answer.iterations,
                }),
            Unit::Function {
                implementation,
                function,
            } => FunctionRef::Registered {
                implementation,
                function,
            }
            .call(input, context)
            .await
            .map(StepOutput::text),
            Unit::Command { reference, command } => FunctionRef::Command { reference, command }
                .call(input, context)
                .await
                .map(StepOutput::text),
            Unit::Workflow(workflow) => run_nested_workflow(workflow, input, context, guards).await,
            Unit::Human { .. } => Err(StepFailure::new(
                "human_step_unsupported",
                "a human step cannot run inside a nested workflow (E_STEP_WORKFLOW_NESTED_HUMAN)",
            )),
        }
    })
}
