//! One agent turn, as kneo-serv's compiled agents run it.
//!
//! The thread is the agent's history in this run plus the new user message; the agent's memory
//! policy transforms it ([`super::memory`]), the input guardrails check it, the strategy runs
//! the model, and the output guardrails check the final text:
//! - `simple`: one model call; tool calls it asks for are not run;
//! - `react`: model calls until one asks for no tool, running the tools in between, at most
//!   `strategy.max_iterations` (default 10) calls;
//! - `plan-act`: one planning call without tools, then the `react` loop.
//!
//! Tool calls are traced (`tool_call_started` / `tool_call_completed`, arguments and results
//! redacted) and every result passes the tool guardrails before the model sees it. Events go to
//! the step's [`EventSink`], which the executor writes with the step's boundary. A turn that
//! spends more tokens than the agent's budget (`model.token_budget`, else
//! `KNEO_SERV_TOKEN_BUDGET`) fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::{Value, json};

use super::command::CommandPlan;
use super::functions::FunctionInput;
use super::guardrails::{self, Stage};
use super::memory::AgentHistories;
use super::plan::AgentPlan;
use super::providers::{Completion, Message, ProviderError, ToolCall, ToolDefinition};
use super::tools::{ToolBacking, ToolError, ToolPlan, check_domains, text_from_arguments};
use super::trace::TraceEvent;
use crate::spec::model::StrategyType;

/// Appended to the system prompt of a `plan-act` agent's planning call.
const PLANNING_SUFFIX: &str = "\n\nBefore acting, output a numbered list of the steps you will take. \
     Do NOT execute any steps yet — plan only.";

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

    pub fn extend(&self, events: Vec<TraceEvent>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(events);
    }

    pub fn drain(&self) -> Vec<TraceEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Where a unit of work runs: which run, step and attempt, where its events go, and the run's
/// agent histories.
#[derive(Clone)]
pub struct StepContext {
    pub run_id: String,
    /// The step or node id; `None` for a run of the root agent alone.
    pub step_id: Option<String>,
    pub attempt: u32,
    pub events: EventSink,
    /// The run's agent histories; `None` for an agent that answers on its own (an agent used as
    /// a tool, a guardrail's judge, a memory helper).
    pub histories: Option<AgentHistories>,
    /// Whether agent turns trace `run_started` / `run_completed` (workflow steps do; the root
    /// agent's run traces them itself).
    pub announce_turns: bool,
}

impl StepContext {
    /// A context without histories and without turn events.
    pub fn new(run_id: &str, step_id: Option<String>, attempt: u32) -> StepContext {
        StepContext {
            run_id: run_id.to_string(),
            step_id,
            attempt,
            events: EventSink::default(),
            histories: None,
            announce_turns: false,
        }
    }

    /// This context for a workflow step: agents keep their history in `histories` and trace
    /// their turns.
    pub fn in_workflow(mut self, histories: AgentHistories) -> StepContext {
        self.histories = Some(histories);
        self.announce_turns = true;
        self
    }

    /// A context for work done on the side (a judge, a helper): same run and step, its own
    /// events, no history.
    pub fn detached(&self) -> StepContext {
        StepContext::new(&self.run_id, self.step_id.clone(), self.attempt)
    }

    fn event(&self, event_type: &str) -> TraceEvent {
        TraceEvent::new(event_type, &self.run_id, None).with("step_id", json!(self.step_id))
    }
}

/// Why a unit of work failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `provider_error`, `provider_timeout`, `missing_secret`, `max_iterations`,
    /// `tool_unavailable`, `function_error`, `step_timeout`, `GuardrailViolation`, …
    pub kind: &'static str,
    pub message: String,
    /// The guardrail whose verdict this is: such a failure ends the run whatever the step's
    /// retries and `on_error` say.
    pub guardrail: Option<String>,
}

impl Failure {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            guardrail: None,
        }
    }
}

/// What an agent answered, with what the turn cost and did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentOutput {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Model calls made (the planning call of `plan-act` counts).
    pub iterations: u32,
    /// Messages of the thread at the end (the system prompt not counted).
    pub message_count: usize,
    /// kneo-serv's `metadata.memory`: the policy and the thread length before and after it.
    pub memory: Option<Value>,
    /// The plan of a `plan-act` turn.
    pub plan: Option<String>,
    /// Output guardrails that revised the text (kneo-serv's `metadata.guardrails`).
    pub revised_by: Vec<String>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn provider_failure(agent: &AgentPlan, error: ProviderError) -> Failure {
    let kind = match error {
        ProviderError::MissingSecret { .. } => "missing_secret",
        ProviderError::Timeout(_) => "provider_timeout",
        ProviderError::Failed(_) => "provider_error",
    };
    Failure::new(kind, format!("agent {}: {error}", agent.name))
}

/// Whether `policies.tool` / `tools.permissions` (with `tools.exclude`) let the agent call
/// `name`.
fn allowed(agent: &AgentPlan, name: &str) -> bool {
    agent
        .tool_policy
        .as_ref()
        .is_none_or(|policy| policy.permits(name))
}

/// Domain gating of a call: the agent's `allowed_domains` / `denied_domains`, then the tool's
/// own `allowed_domains` (kneo). `Err` is kneo-serv's message.
fn gate_domains(agent: &AgentPlan, tool: &ToolPlan, call: &ToolCall) -> Result<(), String> {
    let (allowed, denied) = agent
        .tool_policy
        .as_ref()
        .map_or((&[][..], &[][..]), |policy| {
            (&policy.allowed_domains[..], &policy.denied_domains[..])
        });
    check_domains(&call.name, &call.arguments, allowed, denied)
        .and_then(|()| check_domains(&call.name, &call.arguments, &tool.allowed_domains, &[]))
}

fn joined_user_text(thread: &[Message]) -> String {
    thread
        .iter()
        .filter(|message| message.role == "user")
        .map(|message| message.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `agent` on `input` to a final answer.
pub fn run_agent<'a>(
    agent: &'a AgentPlan,
    input: &'a str,
    context: &'a StepContext,
) -> BoxFuture<'a, Result<AgentOutput, Failure>> {
    Box::pin(async move {
        let mut thread = context
            .histories
            .as_ref()
            .map(|histories| histories.get(&agent.history_key))
            .unwrap_or_default();
        thread.push(Message::new("user", input));
        let traced = |event_type: &str| {
            context
                .event(event_type)
                .with("agent_name", agent.name.clone())
        };
        if context.announce_turns {
            context.events.push(
                traced("run_started")
                    .input(&joined_user_text(&thread))
                    .metadata(json!({"message_count": thread.len()})),
            );
        }
        let result = turn(agent, thread, context).await;
        match &result {
            Ok(output) => {
                if context.announce_turns {
                    context.events.push(
                        traced("run_completed")
                            .output(&output.text)
                            .metadata(json!({"message_count": output.message_count})),
                    );
                }
                if let Some(histories) = &context.histories {
                    histories.record_turn(
                        &agent.history_key,
                        agent.append_mode,
                        input,
                        &output.text,
                    );
                }
            }
            Err(failure) if context.announce_turns => context.events.push(
                traced("run_failed")
                    .with("guardrail_id", json!(failure.guardrail))
                    .error(failure.kind, &failure.message),
            ),
            Err(_) => {}
        }
        result
    })
}

/// The turn itself: memory, input guardrails, the strategy, output guardrails.
async fn turn(
    agent: &AgentPlan,
    thread: Vec<Message>,
    context: &StepContext,
) -> Result<AgentOutput, Failure> {
    let before = thread.len();
    let mut thread = match &agent.memory {
        Some(memory) => memory.apply(thread, context).await?,
        None => thread,
    };
    let mut output = AgentOutput {
        memory: agent.memory.as_ref().map(|memory| {
            json!({"policy": memory.policy.as_str(), "before_message_count": before, "after_message_count": thread.len()})
        }),
        ..AgentOutput::default()
    };
    if !agent.guardrails.input.is_empty() {
        guardrails::apply(
            Stage::Input,
            &agent.guardrails.input,
            &joined_user_text(&thread),
            context,
        )
        .await?;
    }
    let mut loop_state = Loop {
        agent,
        context,
        output: &mut output,
        system_prompt: agent.full_system_prompt(),
        definitions: agent
            .tools
            .iter()
            .map(|tool| tool.definition.clone())
            .collect(),
    };
    let text = match agent.strategy {
        StrategyType::Simple => loop_state.simple(&mut thread).await?,
        StrategyType::React => loop_state.react(&mut thread, 0).await?,
        StrategyType::PlanAct => {
            let plan = loop_state
                .call(&thread, loop_state.planning_prompt(), Vec::new())
                .await?
                .text;
            thread.push(Message::new("assistant", &format!("Plan:\n{plan}")));
            loop_state.output.plan = Some(plan);
            loop_state.react(&mut thread, 1).await?
        }
    };
    output.message_count = thread.len();
    output.text = text;
    if !agent.guardrails.output.is_empty() {
        let applied = guardrails::apply(
            Stage::Output,
            &agent.guardrails.output,
            &output.text,
            context,
        )
        .await?;
        output.text = applied.text;
        output.revised_by = applied.revised_by;
    }
    Ok(output)
}

/// The model-calling part of a turn.
struct Loop<'a> {
    agent: &'a AgentPlan,
    context: &'a StepContext,
    output: &'a mut AgentOutput,
    system_prompt: Option<String>,
    definitions: Vec<ToolDefinition>,
}

impl Loop<'_> {
    fn planning_prompt(&self) -> Option<String> {
        Some(format!(
            "{}{PLANNING_SUFFIX}",
            self.system_prompt.as_deref().unwrap_or_default()
        ))
    }

    /// One model call, counted against the iterations and the token budget.
    async fn call(
        &mut self,
        thread: &[Message],
        system_prompt: Option<String>,
        tools: Vec<ToolDefinition>,
    ) -> Result<super::providers::Answer, Failure> {
        let agent = self.agent;
        let request = Completion {
            model: agent.model_name.clone(),
            system_prompt,
            messages: thread.to_vec(),
            tools,
            temperature: agent.temperature,
        };
        let answer = agent
            .provider
            .complete(request)
            .await
            .map_err(|error| provider_failure(agent, error))?;
        self.output.iterations += 1;
        self.output.input_tokens += answer.input_tokens;
        self.output.output_tokens += answer.output_tokens;
        let used = self.output.input_tokens + self.output.output_tokens;
        // Usage 0 means the provider reports none (the dummy): the budget cannot apply.
        if let Some(limit) = agent.token_budget
            && used > limit
        {
            return Err(Failure::new(
                "TokenBudgetExceeded",
                format!(
                    "TokenBudgetMiddleware: per_run usage {used} exceeded limit {limit} \
                     (agent {}; model.token_budget or KNEO_SERV_TOKEN_BUDGET)",
                    agent.name
                ),
            ));
        }
        Ok(answer)
    }

    async fn simple(&mut self, thread: &mut Vec<Message>) -> Result<String, Failure> {
        let tools = self.definitions.clone();
        let answer = self.call(thread, self.system_prompt.clone(), tools).await?;
        thread.push(Message::new("assistant", &answer.text));
        Ok(answer.text)
    }

    /// Model calls until one asks for no tool; `planned` calls were made before the loop.
    async fn react(&mut self, thread: &mut Vec<Message>, planned: u32) -> Result<String, Failure> {
        let agent = self.agent;
        let limit = agent.max_iterations.max(1);
        for iteration in 1..=limit {
            let tools = self.definitions.clone();
            let answer = self.call(thread, self.system_prompt.clone(), tools).await?;
            let mut assistant = Message::new("assistant", &answer.text);
            assistant.tool_calls = answer.tool_calls.clone();
            thread.push(assistant);
            if answer.tool_calls.is_empty() {
                return Ok(answer.text);
            }
            for call in &answer.tool_calls {
                let result = call_tool(agent, call, iteration, self.context).await?;
                let mut reply = Message::new("tool", &result);
                reply.name = Some(call.name.clone());
                reply.tool_call_id = Some(call.id.clone());
                thread.push(reply);
            }
        }
        Err(Failure::new(
            "max_iterations",
            format!(
                "Run stopped after reaching max iterations: agent {} made {} model calls without a \
                 final answer (strategy.max_iterations={limit}); raise max_iterations or make the \
                 tools' results conclusive",
                agent.name,
                limit + planned
            ),
        ))
    }
}

/// Runs one tool call and returns the text the model gets back. A tool that reports an error
/// gives the model that error; a tool that cannot be reached fails the step; a tool guardrail
/// that blocks ends the run.
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
    if let Err(message) = gate_domains(agent, tool, call) {
        // A call to a host the permissions refuse never reaches the tool and ends the run
        // (kneo-serv: 422 ToolMiddlewareViolation).
        let failure = Failure::new(guardrails::TOOL_MIDDLEWARE_VIOLATION, message);
        context.events.push(
            traced("tool_policy_denied")
                .metadata(json!({"call_id": call.id, "iteration": iteration}))
                .error(failure.kind, &failure.message),
        );
        return Err(failure);
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
    let outcome = invoke(tool, &call.arguments, context).await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let metadata = json!({"call_id": call.id, "iteration": iteration, "duration_ms": duration_ms});
    match outcome {
        Ok(text) => {
            let text = if agent.guardrails.tool.is_empty() {
                text
            } else {
                guardrails::apply(Stage::Tool, &agent.guardrails.tool, &text, context)
                    .await
                    .inspect_err(|failure| {
                        context.events.push(
                            traced("tool_call_completed")
                                .metadata(metadata.clone())
                                .with("guardrail_id", json!(failure.guardrail))
                                .error(failure.kind, &failure.message),
                        );
                    })?
                    .text
            };
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
            Err(Failure::new(
                "tool_unavailable",
                format!("agent {} tool {}: {message}", agent.name, call.name),
            ))
        }
    }
}

/// Calls the tool's backing. The outer `Err` is a guardrail verdict inside an agent used as a
/// tool: it ends the run instead of becoming the tool's answer.
async fn invoke(
    tool: &ToolPlan,
    arguments: &Value,
    context: &StepContext,
) -> Result<Result<String, ToolError>, Failure> {
    Ok(match &tool.backing {
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
            let nested_context = context.detached();
            let answer = run_agent(nested, &input, &nested_context).await;
            context.events.extend(nested_context.events.drain());
            match answer {
                Ok(output) => Ok(output.text),
                Err(failure) if guardrails::is_violation(&failure) => return Err(failure),
                Err(failure) => Err(match failure.kind {
                    "tool_unavailable" | "missing_secret" | "provider_timeout" => {
                        ToolError::Unavailable(failure.message)
                    }
                    _ => ToolError::Failed(failure.message),
                }),
            }
        }
        ToolBacking::Command(command) => run_command_tool(command, arguments).await,
    })
}

async fn run_command_tool(command: &CommandPlan, arguments: &Value) -> Result<String, ToolError> {
    command
        .run(arguments)
        .await
        .map(|output| output.text)
        .map_err(|error| ToolError::Failed(error.message))
}
