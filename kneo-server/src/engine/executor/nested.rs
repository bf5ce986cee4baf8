//! A nested component workflow, run inline as one step: its steps' retries and `on_error` apply
//! (fallbacks excepted), the root agent's workflow guardrails check each of its steps' outputs,
//! but it has no durable boundaries of its own.

use super::state::{StepFailure, StepOutput};
use super::unit::run_unit;
use crate::engine::agent::StepContext;
use crate::engine::graph::NodeStatus;
use crate::engine::guardrails::{self, GuardrailPlan, Stage};
use crate::engine::plan::WorkflowPlan;
use crate::spec::model::OnError;

pub(super) async fn run_nested_workflow(
    workflow: &WorkflowPlan,
    input: &str,
    context: &StepContext,
    guards: &[GuardrailPlan],
) -> Result<StepOutput, StepFailure> {
    let mut text = input.to_string();
    let (mut input_tokens, mut output_tokens, mut iterations) = (0, 0, 0u32);
    let mut position = match &workflow.graph {
        Some(graph) => Some(graph.start),
        None => (!workflow.steps.is_empty()).then_some(0),
    };
    let cap = workflow
        .graph
        .as_ref()
        .and_then(|graph| graph.max_steps)
        .map_or(usize::MAX, |cap| cap as usize);
    let mut visits = 0usize;
    while let Some(index) = position {
        let Some(nested) = workflow.steps.get(index) else {
            break;
        };
        visits += 1;
        if visits > cap {
            return Err(StepFailure::new(
                "max_iterations",
                format!(
                    "nested workflow {}: more than max_steps={cap} node visits",
                    workflow.name
                ),
            ));
        }
        let status = if nested.disabled {
            NodeStatus::Skipped
        } else {
            let nested_context = StepContext {
                step_id: Some(nested.id.clone()),
                ..context.clone()
            };
            let mut attempt_result = Err(StepFailure::new("step_failed", String::new()));
            for nested_attempt in 1..=1 + nested.max_retries {
                let attempt_context = StepContext {
                    attempt: nested_attempt,
                    ..nested_context.clone()
                };
                attempt_result = match nested.timeout {
                    Some(limit) => tokio::time::timeout(
                        limit,
                        run_unit(&nested.unit, &text, &attempt_context, guards),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(StepFailure::new(
                            "step_timeout",
                            format!("timed out after {:.3} s", limit.as_secs_f64()),
                        ))
                    }),
                    None => run_unit(&nested.unit, &text, &attempt_context, guards).await,
                };
                if attempt_result
                    .as_ref()
                    .map_or_else(guardrails::is_violation, |_| true)
                {
                    break;
                }
            }
            match (attempt_result, nested.on_error) {
                (Ok(output), _) => {
                    input_tokens += output.input_tokens;
                    output_tokens += output.output_tokens;
                    iterations += output.iterations.max(1);
                    text = if guards.is_empty() {
                        output.text
                    } else {
                        guardrails::apply(Stage::Workflow, guards, &output.text, &nested_context)
                            .await?
                            .text
                    };
                    NodeStatus::Completed
                }
                (Err(failure), _) if guardrails::is_violation(&failure) => return Err(failure),
                (Err(_), OnError::Continue) => NodeStatus::Failed,
                (Err(failure), _) => {
                    return Err(StepFailure::new(
                        failure.kind,
                        format!(
                            "nested workflow {}: step {}: {}",
                            workflow.name, nested.id, failure.message
                        ),
                    ));
                }
            }
        };
        position = match &workflow.graph {
            Some(graph) => graph.route(index, &text, status).map(|route| route.to),
            None => (index + 1 < workflow.steps.len()).then_some(index + 1),
        };
    }
    Ok(StepOutput {
        text,
        input_tokens,
        output_tokens,
        iterations: iterations.max(1),
    })
}
