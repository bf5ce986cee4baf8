//! Calling a component for its answer: a function (`components.functions.<key>`, a registered
//! Rust function or a `command:` program) or an agent. Steps, function guardrails, memory
//! summarizers and retrievers all call functions this one way, so a `command:` function behaves
//! the same in every role.

use std::sync::Arc;

use serde_json::{Value, json};

use super::agent::{Failure, StepContext};
use super::command::CommandPlan;
use super::functions::{FunctionInput, StepFunction};
use super::plan::ComponentCall;
use super::trace::TraceEvent;

/// A function component without ownership: what a step's unit or a [`ComponentFunction`] lends.
#[derive(Clone, Copy)]
pub enum FunctionRef<'a> {
    Registered {
        implementation: &'a str,
        function: &'a Arc<dyn StepFunction>,
    },
    Command {
        reference: &'a str,
        command: &'a CommandPlan,
    },
}

/// The function of a component call, lent; `None` for an agent.
fn function_of(call: &ComponentCall) -> Option<FunctionRef<'_>> {
    match call {
        ComponentCall::Function {
            implementation,
            function,
            ..
        } => Some(FunctionRef::Registered {
            implementation,
            function,
        }),
        ComponentCall::Command { reference, command } => {
            Some(FunctionRef::Command { reference, command })
        }
        ComponentCall::Agent(_) => None,
    }
}

/// What a component is known by in messages: its key, or the agent's name.
pub fn name(call: &ComponentCall) -> &str {
    match call {
        ComponentCall::Function { reference, .. } | ComponentCall::Command { reference, .. } => {
            reference
        }
        ComponentCall::Agent(agent) => &agent.name,
    }
}

/// Calls a component (a guardrail's function, a memory helper) with `text` for its answer. An
/// agent answers on its own, without the run's histories; its events join the context's.
pub async fn call(
    call: &ComponentCall,
    text: &str,
    context: &StepContext,
) -> Result<String, Failure> {
    match (function_of(call), call) {
        (Some(function), _) => function.call(text, context).await,
        (None, ComponentCall::Agent(agent)) => {
            let helper = context.detached();
            let answer = super::agent::run_agent(agent, text, &helper).await;
            context.events.extend(helper.events.drain());
            answer.map(|output| output.text)
        }
        (None, _) => Err(Failure::new(
            "function_error",
            format!("component {} cannot be called", name(call)),
        )),
    }
}

impl FunctionRef<'_> {
    /// The implementation name or the component key, for messages.
    pub fn name(&self) -> &str {
        match self {
            FunctionRef::Registered { implementation, .. } => implementation,
            FunctionRef::Command { reference, .. } => reference,
        }
    }

    /// Calls the function. A `command:` function's run is traced (`command_completed`, with its
    /// redacted, bounded stderr) into the context's events.
    pub async fn call(self, text: &str, context: &StepContext) -> Result<String, Failure> {
        let step_id = context.step_id.clone().unwrap_or_default();
        match self {
            FunctionRef::Registered {
                implementation,
                function,
            } => function
                .call(FunctionInput {
                    text: text.to_string(),
                    run_id: context.run_id.clone(),
                    step_id,
                    attempt: context.attempt,
                })
                .await
                .map_err(|error| {
                    Failure::new("function_error", format!("{implementation}: {error}"))
                }),
            FunctionRef::Command { reference, command } => {
                let document =
                    CommandPlan::function_input(text, &context.run_id, &step_id, context.attempt);
                let result = command.run(&document).await;
                let event = TraceEvent::new("command_completed", &context.run_id, None)
                    .with("step_id", step_id)
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
                        Ok(output.text)
                    }
                    Err(error) => {
                        context.events.push(
                            event
                                .metadata(json!({"function": reference, "program": command.program(), "stderr": error.stderr}))
                                .error("function_error", &error.message),
                        );
                        Err(Failure::new(
                            "function_error",
                            format!("function {reference}: {}", error.message),
                        ))
                    }
                }
            }
        }
    }
}
