//! One agent turn: ask the provider, run the tools it calls, hand the results back, until it
//! gives a final answer or `strategy.max_iterations` (default 10) provider calls are spent.
//!
//! Tool calls are traced (`tool_call_started` / `tool_call_completed`, arguments and results
//! redacted) into the step's [`EventSink`], which the executor writes with the step's boundary.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::{Value, json};

use super::command::CommandPlan;
use super::functions::FunctionInput;
use super::plan::AgentPlan;
use super::providers::{Completion, Message, ProviderError, ToolCall};
use super::tools::{ToolBacking, ToolError, ToolPlan, check_domains, text_from_arguments};
use super::trace::TraceEvent;

/// Trace events produced inside a step (tool calls, command output), collected so the
/// executor can write them with the step's boundary, even when the step timed out.
#[derive(Clone, Default)]
pub struct EventSink(Arc<Mutex<Vec<TraceEvent>>>);

impl EventSink {
    pub fn push(&self, event: TraceEvent) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    pub fn drain(&self) -> Vec<TraceEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Where a unit of work runs: which run, step and attempt, and where its events go.
#[derive(Clone)]
pub struct StepContext {
    pub run_id: String,
    /// The step or node id; `None` for a run of the root agent alone.
    pub step_id: Option<String>,
    pub attempt: u32,
    pub events: EventSink,
}

impl StepContext {
    fn event(&self, event_type: &str) -> TraceEvent {
        TraceEvent::new(event_type, &self.run_id, None).with("step_id", json!(self.step_id))
    }
}

/// Why a unit of work failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `provider_error`, `provider_timeout`, `missing_secret`, `max_iterations`,
    /// `tool_unavailable`, `function_error`, `step_timeout`, …
    pub kind: &'static str,
    pub message: String,
}

/// What an agent answered, with the tokens it used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentOutput {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn provider_failure(agent: &AgentPlan, error: ProviderError) -> Failure {
    let kind = match error {
        ProviderError::MissingSecret { .. } => "missing_secret",
        ProviderError::Timeout(_) => "provider_timeout",
        ProviderError::Failed(_) => "provider_error",
    };
    Failure {
        kind,
        message: format!("agent {}: {error}", agent.name),
    }
}

/// Whether `policies.tool` / `tools.permissions` let the agent call `name`.
fn allowed(agent: &AgentPlan, name: &str) -> bool {
    agent
        .tool_policy
        .as_ref()
        .is_none_or(|policy| policy.permits(name))
}

/// Runs `agent` on `input` to a final answer.
pub fn run_agent<'a>(
    agent: &'a AgentPlan,
    input: &'a str,
    context: &'a StepContext,
) -> BoxFuture<'a, Result<AgentOutput, Failure>> {
    Box::pin(async move {
        let definitions: Vec<_> = agent
            .tools
            .iter()
            .map(|tool| tool.definition.clone())
            .collect();
        let mut messages = vec![Message::new("user", input)];
        let mut usage = AgentOutput::default();
        for iteration in 1..=agent.max_iterations.max(1) {
            let request = Completion {
                model: agent.model_name.clone(),
                system_prompt: agent.system_prompt.clone(),
                messages: messages.clone(),
                tools: definitions.clone(),
                temperature: agent.temperature,
            };
            let answer = agent
                .provider
                .complete(request)
                .await
                .map_err(|error| provider_failure(agent, error))?;
            usage.input_tokens += answer.input_tokens;
            usage.output_tokens += answer.output_tokens;
            if answer.tool_calls.is_empty() {
                usage.text = answer.text;
                return Ok(usage);
            }
            let mut assistant = Message::new("assistant", &answer.text);
            assistant.tool_calls = answer.tool_calls.clone();
            messages.push(assistant);
            for call in &answer.tool_calls {
                let result = call_tool(agent, call, iteration, context).await?;
                let mut reply = Message::new("tool", &result);
                reply.name = Some(call.name.clone());
                reply.tool_call_id = Some(call.id.clone());
                messages.push(reply);
            }
        }
        Err(Failure {
            kind: "max_iterations",
            message: format!(
                "agent {} made {} provider calls without a final answer (strategy.max_iterations); \
                 raise max_iterations or make the tools' results conclusive",
                agent.name,
                agent.max_iterations.max(1)
            ),
        })
    })
}

/// Runs one tool call and returns the text the model gets back. A tool that reports an error
/// gives the model that error; a tool that cannot be reached fails the step.
async fn call_tool(
    agent: &AgentPlan,
    call: &ToolCall,
    iteration: u32,
    context: &StepContext,
) -> Result<String, Failure> {
    let traced = |event_type: &str| {
        context
            .event(event_type)
            .with("agent_name", agent.name.clone())
            .with("tool_name", call.name.clone())
    };
    if !allowed(agent, &call.name) {
        context.events.push(
            traced("tool_policy_denied")
                .metadata(json!({"call_id": call.id, "iteration": iteration}))
                .error(
                    "tool_policy_denied",
                    &format!("tool {} is not allowed by policies.tool", call.name),
                ),
        );
        return Ok(format!(
            "Error: tool '{}' is not allowed for this agent (policies.tool).",
            call.name
        ));
    }
    let Some(tool) = agent
        .tools
        .iter()
        .find(|tool| tool.definition.name == call.name)
    else {
        return Ok(format!(
            "Error: there is no tool named '{}'; available tools: {}.",
            call.name,
            agent
                .tools
                .iter()
                .map(|tool| tool.definition.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let agent_domains = agent
        .tool_policy
        .as_ref()
        .map_or((&[][..], &[][..]), |policy| {
            (&policy.allowed_domains[..], &policy.denied_domains[..])
        });
    let gate = check_domains(
        &call.name,
        &call.arguments,
        agent_domains.0,
        agent_domains.1,
    )
    .and_then(|()| check_domains(&call.name, &call.arguments, &tool.allowed_domains, &[]));
    if let Err(message) = gate {
        // A call to a host the permissions refuse ends the step (kneo-serv: 422
        // ToolMiddlewareViolation); it never reaches the tool.
        context.events.push(
            traced("tool_policy_denied")
                .metadata(json!({"call_id": call.id, "iteration": iteration}))
                .error("tool_domain_denied", &message),
        );
        return Err(Failure {
            kind: "tool_domain_denied",
            message,
        });
    }
    context.events.push(
        traced("tool_call_started")
            .input(&call.arguments.to_string())
            .metadata(json!({
                "call_id": call.id,
                "iteration": iteration,
                "backing": tool.backing_kind(),
                "arguments": call.arguments,
            })),
    );
    let started = Instant::now();
    let outcome = invoke(tool, &call.arguments, context).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let metadata = json!({"call_id": call.id, "iteration": iteration, "duration_ms": duration_ms});
    match outcome {
        Ok(text) => {
            context.events.push(
                traced("tool_call_completed")
                    .output(&text)
                    .metadata(metadata),
            );
            Ok(text)
        }
        Err(ToolError::Failed(message)) => {
            context.events.push(
                traced("tool_call_completed")
                    .metadata(metadata)
                    .error("tool_error", &message),
            );
            Ok(format!("Error: {message}"))
        }
        Err(ToolError::Unavailable(message)) => {
            context.events.push(
                traced("tool_call_completed")
                    .metadata(metadata)
                    .error("tool_unavailable", &message),
            );
            Err(Failure {
                kind: "tool_unavailable",
                message: format!("agent {} tool {}: {message}", agent.name, call.name),
            })
        }
    }
}

async fn invoke(
    tool: &ToolPlan,
    arguments: &Value,
    context: &StepContext,
) -> Result<String, ToolError> {
    match &tool.backing {
        ToolBacking::Handler(handler) => handler.call(arguments.clone()).await,
        ToolBacking::Function(function) => function
            .call(FunctionInput {
                text: text_from_arguments(arguments),
                run_id: context.run_id.clone(),
                step_id: context.step_id.clone().unwrap_or_default(),
                attempt: context.attempt,
            })
            .await
            .map_err(|error| ToolError::Failed(error.0)),
        ToolBacking::Mcp {
            server,
            remote_name,
            sessions,
        } => sessions.call_tool(server, remote_name, arguments).await,
        ToolBacking::Agent(nested) => {
            let input = text_from_arguments(arguments);
            run_agent(nested, &input, context)
                .await
                .map(|output| output.text)
                .map_err(|failure| match failure.kind {
                    "tool_unavailable" | "missing_secret" | "provider_timeout" => {
                        ToolError::Unavailable(failure.message)
                    }
                    _ => ToolError::Failed(failure.message),
                })
        }
        ToolBacking::Command(command) => run_command_tool(command, arguments).await,
    }
}

async fn run_command_tool(command: &CommandPlan, arguments: &Value) -> Result<String, ToolError> {
    command
        .run(arguments)
        .await
        .map(|output| output.text)
        .map_err(|error| ToolError::Failed(error.message))
}
