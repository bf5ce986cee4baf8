//! Compiling a validated spec into an executable plan: every reference resolved, every function,
//! provider, tool, guardrail check and memory helper built, the runtime of every agent chosen,
//! disabled steps and graph nodes dropped, so execution never looks anything up by name.
//! Nothing is started here (MCP servers are spawned on their first call), so compiling is
//! cheap and offline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::PlanContext;
use super::command::CommandPlan;
use super::functions::StepFunction;
use super::graph::{ConditionPlan, EdgePlan, GraphPlan};
use super::mcp::McpServerPlan;
use super::providers::{Provider, ToolDefinition, provider_for};
use super::tools::{ToolBacking, ToolPlan};
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::{
    AgentSpec, AppendMode, GuardrailAction, GuardrailSpec, GuardrailStage, GuardrailType,
    HumanSpec, MemoryPolicy, ModelSpec, OnError, RuntimeMode, SelectorType, SkillSpec, Spec,
    StepKind, StepSpec, StrategyType, ToolPermissions, ToolSpec, WorkflowSpec, WorkflowType,
};

/// How deep agents-as-tools, guardrail agents and nested workflows may go (validation rejects
/// cycles; this bounds what is left).
const MAX_DEPTH: usize = 8;
/// Model calls per agent turn when `strategy.max_iterations` is not set (kneo-serv's default).
pub const DEFAULT_MAX_ITERATIONS: u32 = 10;
/// `memory.max_messages` when a sliding window sets none.
pub const DEFAULT_WINDOW_MESSAGES: u64 = 20;
/// `memory.top_k` when retrieval sets none.
pub const DEFAULT_TOP_K: u64 = 5;
/// Providers kneo reaches over HTTP (the OpenAI-compatible client).
const HTTP_PROVIDERS: &[&str] = &["openai", "openai-agents"];
/// The provider of an agent without a `model`.
const DEFAULT_PROVIDER: &str = "dummy";

/// Workflow types the executor runs. A type outside this list compiles to
/// `E_WORKFLOW_TYPE_UNSUPPORTED`, so validation and runs agree until its runner exists.
pub fn executed_by_this_build(workflow_type: WorkflowType) -> bool {
    matches!(
        workflow_type,
        WorkflowType::Sequential
            | WorkflowType::Graph
            | WorkflowType::Concurrent
            | WorkflowType::Handoff
            | WorkflowType::GroupChat
    )
}

/// What a run executes.
#[derive(Clone)]
pub struct Plan {
    pub agent: AgentPlan,
    /// `None` runs the root agent alone (`target: agent`, or a spec without a workflow).
    pub workflow: Option<WorkflowPlan>,
    /// The root agent's `workflow`-stage guardrails, checked on every step output of the root
    /// workflow and of nested workflows.
    pub workflow_guardrails: Arc<Vec<GuardrailPlan>>,
    /// Every declared skill (selected or not), as written; loading and freezing them is the
    /// run's job.
    pub skills: BTreeMap<String, SkillSpec>,
}

impl Plan {
    /// `agent`, or the workflow type (`sequential`, …), as runs report `workflow_kind`.
    pub fn kind(&self) -> &'static str {
        match &self.workflow {
            None => "agent",
            Some(workflow) => workflow.kind.as_str(),
        }
    }
}

#[derive(Clone)]
pub struct AgentPlan {
    pub name: String,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub provider_name: String,
    pub model_name: String,
    pub provider: Arc<dyn Provider>,
    /// The runtime chosen from `runtime_preferences` and `model.provider`.
    pub runtime: RuntimePlan,
    /// `strategy.type`; `simple` when none is set.
    pub strategy: StrategyType,
    /// Tools the agent may call, in selection order (`tools.include`).
    pub tools: Vec<ToolPlan>,
    /// Model calls per turn (`strategy.max_iterations`, default 10).
    pub max_iterations: u32,
    pub temperature: Option<f64>,
    /// Which tools and hosts the agent may call: `tools.permissions` (with `tools.exclude` in
    /// `deny`) merged with kneo's `policies.tool`.
    pub tool_policy: Option<ToolPermissions>,
    /// `model.token_budget`: input+output tokens the run may spend on this agent.
    pub token_budget: Option<u64>,
    /// Input, output and tool-stage guardrails, in order.
    pub guardrails: AgentGuardrails,
    pub memory: Option<MemoryPlan>,
    /// `defaults.append_mode`: what the agent keeps in its history after a turn.
    pub append_mode: AppendMode,
    /// Names of the skills the agent selects (keys of [`Plan::skills`]).
    pub skills: Vec<String>,
    /// The `system_fragment`s of the selected skills, from the copy frozen when the run was
    /// created (empty when compiling outside a run).
    pub skill_fragments: Vec<String>,
    /// Agents with the same key share their history across the steps of a run, as kneo-serv's
    /// compiled agents do: `agent` for the root, `components.agents.<key>` for a component.
    pub history_key: String,
}

impl AgentPlan {
    /// The system prompt the model gets: the spec's, then the agent's skills.
    pub fn full_system_prompt(&self) -> Option<String> {
        if self.skill_fragments.is_empty() {
            return self.system_prompt.clone();
        }
        let prompt = format!(
            "{}\n\n# Skills\n{}",
            self.system_prompt.as_deref().unwrap_or_default(),
            self.skill_fragments.join("\n\n")
        );
        Some(prompt.trim().to_string())
    }
}

/// How an agent's model calls are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePlan {
    /// `bridge` (in process) or `native` (a provider's HTTP API).
    pub mode: RuntimeMode,
    /// `dummy` or `openai`: the client that answers.
    pub implementation: &'static str,
    /// `<strategy>@<implementation>`, as runs report `runtime_name`.
    pub runtime_name: String,
    /// Whether `fallback_mode` was used because the preferred mode cannot run the agent.
    pub fell_back: bool,
}

/// An agent's guardrails by stage.
#[derive(Clone, Default)]
pub struct AgentGuardrails {
    /// The joined user input, before the model is called.
    pub input: Vec<GuardrailPlan>,
    /// The final text.
    pub output: Vec<GuardrailPlan>,
    /// Every tool result, before the model sees it.
    pub tool: Vec<GuardrailPlan>,
}

impl AgentGuardrails {
    pub fn is_empty(&self) -> bool {
        self.input.is_empty() && self.output.is_empty() && self.tool.is_empty()
    }
}

/// One compiled guardrail.
#[derive(Clone)]
pub struct GuardrailPlan {
    pub id: String,
    pub stage: GuardrailStage,
    /// Validated for its stage; `retry`, `escalate` and `human_review` act as `block`.
    pub action: GuardrailAction,
    pub check: GuardrailCheck,
}

/// What a guardrail checks with.
#[derive(Clone)]
pub enum GuardrailCheck {
    /// Fails when any pattern matches (reason: `Regex guardrail matched: [...]`).
    Regex(Vec<regex::Regex>),
    /// Fails when any keyword occurs, without regard to case.
    Keyword(Vec<String>),
    /// A component function: its output is `true`/`false` or
    /// `{"passed", "reason", "revised_text"}` as JSON.
    Function(ComponentCall),
    /// A component agent judging the payload: a verdict starting with the word PASS passes.
    Agent(Arc<AgentPlan>),
}

/// A component called for its answer: a function (registered or `command:`) or an agent.
#[derive(Clone)]
pub enum ComponentCall {
    Function {
        reference: String,
        implementation: String,
        function: Arc<dyn StepFunction>,
    },
    Command {
        reference: String,
        command: CommandPlan,
    },
    Agent(Arc<AgentPlan>),
}

/// A compiled memory policy.
#[derive(Clone)]
pub struct MemoryPlan {
    pub policy: MemoryPolicy,
    /// `sliding_window`: messages kept (default 20).
    pub max_messages: u64,
    /// `sliding_window`: system messages stay outside the window (default true).
    pub preserve_system_messages: bool,
    /// `summary`: who summarizes the earlier turns.
    pub summarizer: Option<ComponentCall>,
    /// `retrieval`: who retrieves notes for the input.
    pub retriever: Option<ComponentCall>,
    /// `retrieval`: notes asked for (default 5).
    pub top_k: u64,
}

#[derive(Clone)]
pub struct WorkflowPlan {
    pub name: String,
    pub description: Option<String>,
    pub kind: WorkflowType,
    /// Sequential steps or orchestration participants in order, or graph nodes (sorted by
    /// key); disabled ones are not here.
    pub steps: Vec<StepPlan>,
    /// Start, edges and `max_steps` of a graph workflow.
    pub graph: Option<GraphPlan>,
    /// Selector, rounds and turn budget of a concurrent, handoff or group-chat workflow.
    pub orchestration: Option<OrchestrationPlan>,
}

impl WorkflowPlan {
    /// The ids of the steps this workflow runs, in run order: its turns for an orchestration,
    /// its steps otherwise.
    pub fn run_order(&self) -> Vec<&str> {
        match &self.orchestration {
            Some(orchestration) => orchestration
                .turns(self.steps.len())
                .into_iter()
                .filter_map(|index| self.steps.get(index))
                .map(|step| step.id.as_str())
                .collect(),
            None => self.steps.iter().map(|step| step.id.as_str()).collect(),
        }
    }

    /// The index of the step or node with `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.id == id)
    }
}

/// How the participants of an orchestration take turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestrationPlan {
    pub selector: Selector,
    /// Group-chat rounds (1 unless set); 1 for the other types.
    pub rounds: u32,
    /// Handoff: turns allowed (`max_iterations`); `None` for no limit beyond the selector.
    pub max_turns: Option<u32>,
}

impl OrchestrationPlan {
    /// Participant indexes in run order, over `participants` participants: handoff follows its
    /// selector (`round_robin`: one turn each), cut to `max_turns`; group-chat gives everyone
    /// a turn per round; concurrent runs everyone once, at the same time.
    pub fn turns(&self, participants: usize) -> Vec<usize> {
        let rotation: Vec<usize> = match &self.selector {
            Selector::Sequence(order) => order.clone(),
            Selector::RoundRobin => (0..participants).collect(),
        };
        let mut turns: Vec<usize> = (0..self.rounds.max(1))
            .flat_map(|_| rotation.iter().copied())
            .filter(|index| *index < participants)
            .collect();
        if let Some(limit) = self.max_turns {
            turns.truncate(limit as usize);
        }
        turns
    }
}

/// Who takes the next handoff turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Participant indexes in turn order (a participant may repeat); the declaration order
    /// when the spec gives no sequence. Concurrent and group-chat use the declaration order.
    Sequence(Vec<usize>),
    /// One turn per participant in declaration order.
    RoundRobin,
}

#[derive(Clone)]
pub struct StepPlan {
    pub id: String,
    pub unit: Unit,
    pub on_error: OnError,
    /// Index of the step run in place of this one when it fails (`on_error: fallback`).
    pub fallback: Option<usize>,
    pub max_retries: u32,
    pub timeout: Option<Duration>,
    /// Always `false`: disabled steps are dropped when the plan is compiled.
    pub disabled: bool,
}

/// The work of one step.
#[derive(Clone)]
pub enum Unit {
    Agent(Arc<AgentPlan>),
    Function {
        implementation: String,
        function: Arc<dyn StepFunction>,
    },
    /// A `command:` function: JSON on stdin and stdout (docs/extending.md).
    Command {
        reference: String,
        command: CommandPlan,
    },
    Human {
        reference: String,
        spec: HumanSpec,
    },
    /// A nested component workflow, run inline as one step.
    Workflow(Box<WorkflowPlan>),
}

impl Unit {
    /// `agent`, `function`, `human` or `workflow`, as traces report a step's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Unit::Agent(_) => "agent",
            Unit::Function { .. } | Unit::Command { .. } => "function",
            Unit::Human { .. } => "human",
            Unit::Workflow(_) => "workflow",
        }
    }
}

/// Why a validated spec still cannot run on this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

fn compile_error(code: &'static str, path: &str, message: String) -> CompileError {
    CompileError {
        code,
        path: path.to_string(),
        message,
    }
}

/// Compiles `spec` for `target` (`agent` or `workflow`) with the registries and runtime
/// services of `context` (an [`super::Engine`], or a bare function registry, which uses the
/// process-wide defaults for the rest).
pub fn compile(spec: &Spec, target: &str, context: &dyn PlanContext) -> Result<Plan, CompileError> {
    compile_run(spec, target, context, None)
}

/// Compiles `spec` for a run whose skills were frozen when it was created
/// (`metadata.frozen_spec.skills`, see [`super::skills`]): agents get their skills' fragments.
pub fn compile_run(
    spec: &Spec,
    target: &str,
    context: &dyn PlanContext,
    frozen_skills: Option<&Map<String, Value>>,
) -> Result<Plan, CompileError> {
    let compiler = Compiler {
        spec,
        context,
        frozen_skills,
    };
    let agent = compiler.agent(&spec.agent, "agent", 0)?;
    let workflow_guardrails = compiler.guardrails(
        &spec.agent,
        GuardrailStage::Workflow,
        "agent.guardrails.workflow",
        0,
    )?;
    let workflow = match (&spec.workflow, target) {
        (Some(workflow), "workflow") => Some(compiler.workflow(workflow, "workflow", 0)?),
        _ => None,
    };
    Ok(Plan {
        agent,
        workflow,
        workflow_guardrails: Arc::new(workflow_guardrails),
        skills: spec.skills.clone(),
    })
}

/// The runtime `agent` runs on: `runtime_preferences.preferred_mode` (default `bridge`), then
/// `fallback_mode` when the preferred mode cannot run it.
///
/// kneo-serv 1.2's bridge answers every provider from an in-process dummy; kneo's bridge does
/// so for providers it has no client for, and calls the OpenAI-compatible endpoint for
/// `openai` / `openai-agents` in any mode (see [`runtime_notes`]). `native` needs an HTTP
/// provider; no `adapter` factory is registered.
pub fn runtime_for(agent: &AgentSpec, path: &str) -> Result<RuntimePlan, CompileError> {
    let provider = agent
        .model
        .as_ref()
        .map_or(DEFAULT_PROVIDER, |model| model.provider.as_str());
    let preferences = agent.runtime_preferences.clone().unwrap_or_default();
    let strategy = agent.strategy_type();
    let choose = |mode: RuntimeMode| -> Result<&'static str, String> {
        match mode {
            RuntimeMode::Bridge if HTTP_PROVIDERS.contains(&provider) => Ok("openai"),
            RuntimeMode::Bridge => Ok("dummy"),
            RuntimeMode::Native => {
                let native = preferences.native_provider.as_deref().unwrap_or(provider);
                if HTTP_PROVIDERS.contains(&native) {
                    Ok("openai")
                } else {
                    Err(format!(
                        "Unsupported native provider: {native}. The native runtime speaks to {}; use preferred_mode: bridge for '{native}', or add fallback_mode: bridge.",
                        HTTP_PROVIDERS.join(" or ")
                    ))
                }
            }
            RuntimeMode::Adapter => Err(format!(
                "No adapter factory is registered for adapter_ref {:?}: this build has none. Use preferred_mode: bridge or native, or add fallback_mode: bridge.",
                preferences.adapter_ref.as_deref().unwrap_or("")
            )),
        }
    };
    let preferred = preferences.preferred();
    let (mode, implementation, fell_back) = match choose(preferred) {
        Ok(implementation) => (preferred, implementation, false),
        Err(reason) => match preferences
            .fallback_mode
            .filter(|fallback| *fallback != preferred)
        {
            Some(fallback) => match choose(fallback) {
                Ok(implementation) => (fallback, implementation, true),
                Err(fallback_reason) => {
                    return Err(compile_error(
                        "E_RUNTIME_UNAVAILABLE",
                        &format!("{path}.runtime_preferences.fallback_mode"),
                        format!(
                            "Agent '{}': {reason} The fallback cannot run it either: {fallback_reason}",
                            agent.name
                        ),
                    ));
                }
            },
            None => {
                return Err(compile_error(
                    "E_RUNTIME_UNAVAILABLE",
                    &format!("{path}.runtime_preferences.preferred_mode"),
                    format!("Agent '{}': {reason}", agent.name),
                ));
            }
        },
    };
    // kneo reports the runtime it really uses: the HTTP client is the native runtime.
    let mode = if implementation == "openai" {
        RuntimeMode::Native
    } else {
        mode
    };
    Ok(RuntimePlan {
        mode,
        implementation,
        runtime_name: format!("{strategy}@{implementation}"),
        fell_back,
    })
}

/// Warnings and notes about the runtimes `spec`'s agents get, where kneo differs from
/// kneo-serv 1.2 or a provider has no client here.
pub fn runtime_notes(spec: &Spec) -> Vec<Diagnostic> {
    let mut notes = Vec::new();
    let agents = std::iter::once(("agent".to_owned(), &spec.agent)).chain(
        spec.components
            .agents
            .iter()
            .map(|(key, agent)| (format!("components.agents.{key}"), agent)),
    );
    for (path, agent) in agents {
        if agent.as_agent.is_some() {
            continue;
        }
        let Ok(runtime) = runtime_for(agent, &path) else {
            continue;
        };
        let provider = agent
            .model
            .as_ref()
            .map_or(DEFAULT_PROVIDER, |model| model.provider.as_str());
        let field = format!("{path}.model.provider");
        if runtime.implementation == "dummy" && provider != DEFAULT_PROVIDER {
            notes.push(
                Diagnostic::warning(
                    "W_PROVIDER_RUNS_ON_DUMMY",
                    field,
                    format!("Provider '{provider}' has no client in this build: agent '{}' answers from the in-process dummy, as kneo-serv 1.2's bridge runtime does.", agent.name),
                )
                .suggest("Use provider: openai (any OpenAI-compatible endpoint via model.extra.base_url) for real model calls, or dummy to say what runs."),
            );
        } else if runtime.implementation == "openai"
            && agent
                .runtime_preferences
                .as_ref()
                .is_none_or(|preferences| preferences.preferred() == RuntimeMode::Bridge)
        {
            notes.push(
                Diagnostic::info(
                    "I_RUNTIME_PROVIDER_CALLED",
                    field,
                    format!("Agent '{}' calls the OpenAI-compatible endpoint of provider '{provider}'; kneo-serv 1.2's bridge runtime would answer from its in-process dummy instead.", agent.name),
                )
                .suggest("Nothing to do on kneo; docs/service_api.md lists this difference."),
            );
        }
    }
    notes
}

struct Compiler<'a> {
    spec: &'a Spec,
    context: &'a dyn PlanContext,
    frozen_skills: Option<&'a Map<String, Value>>,
}

/// The description an agent-as-tool offers the model: the tool's, else the agent's.
fn agent_tool_description(tool: &ToolSpec, agent: &AgentSpec) -> String {
    tool.description
        .clone()
        .or_else(|| agent.description.clone())
        .unwrap_or_default()
}

/// The tool policy of an agent: `tools.permissions` and kneo's `policies.tool` merged, with
/// `tools.exclude` added to `deny`.
fn tool_policy(agent: &AgentSpec) -> Option<ToolPermissions> {
    let permissions = agent
        .tools
        .as_ref()
        .and_then(|tools| tools.permissions.clone());
    let kneo = agent
        .policies
        .as_ref()
        .and_then(|policies| policies.tool.clone());
    let exclude = agent
        .tools
        .as_ref()
        .map(|tools| tools.exclude.clone())
        .unwrap_or_default();
    if permissions.is_none() && kneo.is_none() && exclude.is_empty() {
        return None;
    }
    let mut merged = permissions.unwrap_or_default();
    if let Some(kneo) = kneo {
        merged.allow.extend(kneo.allow);
        merged.deny.extend(kneo.deny);
        merged.allowed_domains.extend(kneo.allowed_domains);
        merged.denied_domains.extend(kneo.denied_domains);
        merged.allow_network = merged.allow_network.or(kneo.allow_network);
        merged.allow_filesystem_read = merged.allow_filesystem_read.or(kneo.allow_filesystem_read);
        merged.allow_filesystem_write = merged
            .allow_filesystem_write
            .or(kneo.allow_filesystem_write);
        merged.allow_shell = merged.allow_shell.or(kneo.allow_shell);
    }
    merged.deny.extend(exclude);
    Some(merged)
}

/// The result metadata a graph node reports to `metadata_equals` when it completes.
fn node_metadata(unit: &Unit) -> Map<String, Value> {
    let mut metadata = Map::new();
    match unit {
        Unit::Agent(agent) => {
            metadata.insert("agent_name".into(), json!(agent.name));
            metadata.insert("runtime_mode".into(), json!(agent.runtime.mode.as_str()));
            metadata.insert("runtime_name".into(), json!(agent.runtime.runtime_name));
        }
        other => {
            metadata.insert("node_kind".into(), json!(other.kind()));
        }
    }
    metadata
}

impl Compiler<'_> {
    fn agent(
        &self,
        agent: &AgentSpec,
        path: &str,
        depth: usize,
    ) -> Result<AgentPlan, CompileError> {
        if depth > MAX_DEPTH {
            return Err(compile_error(
                "E_BUILD_CYCLE",
                path,
                format!(
                    "agents used as tools, guardrails or memory helpers nest deeper than {MAX_DEPTH} levels at agent {:?}",
                    agent.name
                ),
            ));
        }
        let runtime = runtime_for(agent, path)?;
        let default_model = ModelSpec {
            provider: DEFAULT_PROVIDER.into(),
            name: "default".into(),
            ..ModelSpec::default()
        };
        let model = agent.model.as_ref().unwrap_or(&default_model);
        let client = ModelSpec {
            provider: runtime.implementation.to_string(),
            ..model.clone()
        };
        let provider = provider_for(&client, self.context.runtime()).map_err(|error| {
            compile_error(
                "E_PROVIDER_UNAVAILABLE",
                &format!("{path}.model.provider"),
                error.to_string(),
            )
        })?;
        let mut tools = Vec::new();
        for name in agent.tool_names() {
            tools.push(self.tool(name, &format!("{path}.tools"), depth)?);
        }
        let guardrails = AgentGuardrails {
            input: self.guardrails(agent, GuardrailStage::Input, path, depth)?,
            output: self.guardrails(agent, GuardrailStage::Output, path, depth)?,
            tool: self.guardrails(agent, GuardrailStage::Tool, path, depth)?,
        };
        let memory = match &agent.memory {
            None => None,
            Some(memory) => {
                let memory_path = format!("{path}.memory");
                let call = |reference: &Option<crate::spec::model::ComponentRef>, field: &str| {
                    reference
                        .as_ref()
                        .map(|component| {
                            self.component(
                                &component.reference,
                                &format!("{memory_path}.{field}.ref"),
                                depth,
                            )
                        })
                        .transpose()
                };
                Some(MemoryPlan {
                    policy: memory.policy,
                    max_messages: memory.max_messages.unwrap_or(DEFAULT_WINDOW_MESSAGES),
                    preserve_system_messages: memory.preserve_system_messages.unwrap_or(true),
                    summarizer: call(&memory.summarizer, "summarizer")?,
                    retriever: call(&memory.retriever, "retriever")?,
                    top_k: memory.top_k.unwrap_or(DEFAULT_TOP_K),
                })
            }
        };
        Ok(AgentPlan {
            name: agent.name.clone(),
            description: agent.description.clone(),
            system_prompt: agent.system_prompt.clone(),
            provider_name: model.provider.clone(),
            model_name: model.name.clone(),
            provider,
            runtime,
            strategy: agent.strategy_type(),
            tools,
            max_iterations: agent
                .strategy
                .as_ref()
                .and_then(|strategy| strategy.max_iterations)
                .unwrap_or(DEFAULT_MAX_ITERATIONS),
            temperature: model.temperature().ok().flatten(),
            tool_policy: tool_policy(agent),
            token_budget: model.token_budget.or(self
                .context
                .runtime()
                .provider_settings
                .token_budget),
            guardrails,
            memory,
            append_mode: agent.defaults.append_mode.unwrap_or_default(),
            skills: agent.skills.clone(),
            skill_fragments: self
                .frozen_skills
                .map(|frozen| super::skills::fragments(frozen, &agent.skills))
                .unwrap_or_default(),
            history_key: path.to_string(),
        })
    }

    /// The guardrails of one stage of `agent`.
    fn guardrails(
        &self,
        agent: &AgentSpec,
        stage: GuardrailStage,
        path: &str,
        depth: usize,
    ) -> Result<Vec<GuardrailPlan>, CompileError> {
        let Some(guardrails) = &agent.guardrails else {
            return Ok(Vec::new());
        };
        guardrails
            .stage(stage)
            .iter()
            .enumerate()
            .map(|(position, guardrail)| {
                let item_path = format!("{path}.guardrails.{}[{position}]", stage.as_str());
                self.guardrail(guardrail, stage, &item_path, depth)
            })
            .collect()
    }

    fn guardrail(
        &self,
        guardrail: &GuardrailSpec,
        stage: GuardrailStage,
        path: &str,
        depth: usize,
    ) -> Result<GuardrailPlan, CompileError> {
        let reference = || {
            guardrail.reference.clone().ok_or_else(|| {
                compile_error(
                    "E_GUARDRAIL_REF_REQUIRED",
                    &format!("{path}.ref"),
                    format!("Guardrail '{}' names no component in ref.", guardrail.id),
                )
            })
        };
        let check = match guardrail.guardrail_type {
            GuardrailType::Regex => {
                let mut patterns = Vec::with_capacity(guardrail.config.patterns.len());
                for (position, pattern) in guardrail.config.patterns.iter().enumerate() {
                    patterns.push(regex::Regex::new(pattern).map_err(|error| {
                        compile_error(
                            "E_GUARDRAIL_PATTERN_INVALID",
                            &format!("{path}.config.patterns[{position}]"),
                            format!("Guardrail '{}' pattern {pattern:?}: {error}", guardrail.id),
                        )
                    })?);
                }
                GuardrailCheck::Regex(patterns)
            }
            GuardrailType::Keyword => GuardrailCheck::Keyword(guardrail.config.keywords.clone()),
            GuardrailType::Function => {
                let reference = reference()?;
                GuardrailCheck::Function(self.function_call(&reference, &format!("{path}.ref"))?)
            }
            GuardrailType::Agent => {
                let reference = reference()?;
                let judge = self.spec.components.agents.get(&reference).ok_or_else(|| {
                    compile_error(
                        "E_GUARDRAIL_REF_UNKNOWN",
                        &format!("{path}.ref"),
                        format!("Guardrail '{}' refers to agent '{reference}', which is not in components.agents.", guardrail.id),
                    )
                })?;
                GuardrailCheck::Agent(Arc::new(self.agent(
                    judge,
                    &format!("components.agents.{reference}"),
                    depth + 1,
                )?))
            }
        };
        Ok(GuardrailPlan {
            id: guardrail.id.clone(),
            stage,
            action: guardrail.action,
            check,
        })
    }

    /// A component named by a memory `ref`: a component function, else a component agent.
    fn component(
        &self,
        reference: &str,
        path: &str,
        depth: usize,
    ) -> Result<ComponentCall, CompileError> {
        if self.spec.components.functions.contains_key(reference) {
            return self.function_call(reference, path);
        }
        let agent = self.spec.components.agents.get(reference).ok_or_else(|| {
            compile_error(
                "E_MEMORY_REF_UNKNOWN",
                path,
                format!(
                    "'{reference}' is neither a components.functions nor a components.agents key."
                ),
            )
        })?;
        Ok(ComponentCall::Agent(Arc::new(self.agent(
            agent,
            &format!("components.agents.{reference}"),
            depth + 1,
        )?)))
    }

    /// `components.functions.<reference>`, built.
    fn function_call(&self, reference: &str, path: &str) -> Result<ComponentCall, CompileError> {
        let function_spec = self
            .spec
            .components
            .functions
            .get(reference)
            .ok_or_else(|| {
                compile_error(
                    "E_STEP_FUNCTION_REF",
                    path,
                    format!("Function component '{reference}' is referenced but not defined."),
                )
            })?;
        match (&function_spec.implementation, &function_spec.command) {
            (_, Some(command)) => Ok(ComponentCall::Command {
                reference: reference.to_string(),
                command: CommandPlan {
                    argv: command.argv(),
                    env: function_spec.env.clone(),
                },
            }),
            (Some(implementation), None) => {
                let function = self.context.functions().build(implementation).ok_or_else(|| {
                    compile_error(
                        "E_FUNCTION_UNKNOWN",
                        &format!("components.functions.{reference}.implementation"),
                        format!("function implementation {implementation:?} is not registered (docs/extending.md)"),
                    )
                })?;
                Ok(ComponentCall::Function {
                    reference: reference.to_string(),
                    implementation: implementation.clone(),
                    function,
                })
            }
            (None, None) => Err(compile_error(
                "E_FUNCTION_NO_BACKING",
                &format!("components.functions.{reference}"),
                format!("Function '{reference}' has neither 'implementation' nor 'command'."),
            )),
        }
    }

    /// A tool an agent selects: declared in `tools`, or registered in code under that name.
    fn tool(&self, name: &str, path: &str, depth: usize) -> Result<ToolPlan, CompileError> {
        let Some(tool) = self.spec.tools.get(name) else {
            let registered = self.context.tools().get(name).ok_or_else(|| {
                compile_error(
                    "E_TOOL_REF",
                    path,
                    format!("Tool '{name}' is neither declared in tools nor registered (docs/extending.md)."),
                )
            })?;
            return Ok(ToolPlan {
                definition: registered.definition.clone(),
                backing: ToolBacking::Handler(registered.handler.clone()),
                allowed_domains: Vec::new(),
            });
        };
        let tool_path = format!("tools.{name}");
        let tool_description = tool.description.clone().unwrap_or_default();
        let mut definition = ToolDefinition {
            name: name.to_string(),
            description: tool_description,
            parameters: tool
                .parameters
                .clone()
                .filter(|parameters| !parameters.is_empty())
                .map(serde_json::Value::Object)
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        };
        let backing = self.tool_backing(name, tool, &tool_path, depth, &mut definition)?;
        Ok(ToolPlan {
            definition,
            backing,
            allowed_domains: tool.allowed_domains.clone(),
        })
    }

    fn tool_backing(
        &self,
        name: &str,
        tool: &ToolSpec,
        path: &str,
        depth: usize,
        definition: &mut ToolDefinition,
    ) -> Result<ToolBacking, CompileError> {
        if let Some(implementation) = &tool.implementation {
            if let Some(registered) = self.context.tools().get(implementation) {
                if tool.parameters.as_ref().is_none_or(Map::is_empty) {
                    definition.parameters = registered.definition.parameters.clone();
                }
                return Ok(ToolBacking::Handler(registered.handler.clone()));
            }
            if let Some(function) = self.context.functions().build(implementation) {
                return Ok(ToolBacking::Function(function));
            }
            return Err(compile_error(
                "E_TOOL_IMPLEMENTATION_UNKNOWN",
                &format!("{path}.implementation"),
                format!(
                    "Tool '{name}' uses implementation '{implementation}', which this server has not registered (docs/extending.md)."
                ),
            ));
        }
        if let Some(reference) = &tool.mcp {
            let server = self
                .spec
                .mcp_servers
                .get(&reference.server)
                .ok_or_else(|| {
                    compile_error(
                        "E_MCP_UNKNOWN_SERVER",
                        &format!("{path}.mcp.server"),
                        format!(
                            "MCP tool '{name}' references server '{}', which is not defined under mcp_servers.",
                            reference.server
                        ),
                    )
                })?;
            let runtime = self.context.runtime();
            let remote_name = reference.name.clone().unwrap_or_else(|| name.to_string());
            return Ok(ToolBacking::Mcp {
                server: Arc::new(McpServerPlan::new(
                    &reference.server,
                    server,
                    &runtime.mcp_settings,
                )),
                remote_name,
                sessions: runtime.mcp.clone(),
            });
        }
        if let Some(agent) = &tool.agent {
            let spec = self.spec.resolve_agent(agent).ok_or_else(|| {
                compile_error(
                    "E_AGENT_TOOL_UNKNOWN_AGENT",
                    &format!("{path}.agent"),
                    format!(
                        "Tool '{name}' references agent '{agent}', which is not defined under components.agents."
                    ),
                )
            })?;
            // As in kneo-serv, an agent-as-tool takes one `input` string.
            definition.description = agent_tool_description(tool, spec);
            definition.parameters = serde_json::json!({
                "type": "object",
                "properties": {"input": {"type": "string", "description": format!("What to ask agent {agent}.")}},
                "required": ["input"],
            });
            let nested = self.agent(spec, &format!("components.agents.{agent}"), depth + 1)?;
            return Ok(ToolBacking::Agent(Arc::new(nested)));
        }
        if let Some(command) = &tool.command {
            return Ok(ToolBacking::Command(CommandPlan {
                argv: command.argv(),
                env: tool.env.clone(),
            }));
        }
        Err(compile_error(
            "E_TOOL_NO_BACKING",
            path,
            format!(
                "Tool '{name}' has no backing: it needs one of 'implementation', 'mcp', 'agent' or 'command'."
            ),
        ))
    }

    fn workflow(
        &self,
        workflow: &WorkflowSpec,
        path: &str,
        depth: usize,
    ) -> Result<WorkflowPlan, CompileError> {
        if depth > MAX_DEPTH {
            return Err(compile_error(
                "E_BUILD_CYCLE",
                path,
                format!("nested workflows go deeper than {MAX_DEPTH} levels"),
            ));
        }
        let workflow_type = workflow.workflow_type;
        if !executed_by_this_build(workflow_type) {
            return Err(compile_error(
                "E_WORKFLOW_TYPE_UNSUPPORTED",
                &format!("{path}.type"),
                format!(
                    "workflow type {:?} validates but this kneo build does not execute it yet; use a sequential or graph workflow",
                    workflow_type.as_str()
                ),
            ));
        }
        // Disabled steps, nodes and participants are dropped here, with a graph node's edges.
        let declared: Vec<(String, String, &StepSpec)> = match workflow_type {
            WorkflowType::Sequential => workflow
                .steps
                .iter()
                .enumerate()
                .map(|(index, step)| (format!("{path}.steps[{index}]"), step.id.clone(), step))
                .collect(),
            WorkflowType::Graph => workflow
                .nodes
                .iter()
                .map(|(key, node)| (format!("{path}.nodes.{key}"), key.clone(), node))
                .collect(),
            WorkflowType::Concurrent | WorkflowType::Handoff | WorkflowType::GroupChat => workflow
                .participants
                .iter()
                .enumerate()
                .map(|(index, step)| {
                    (
                        format!("{path}.participants[{index}]"),
                        step.id.clone(),
                        step,
                    )
                })
                .collect(),
        };
        let enabled: Vec<&(String, String, &StepSpec)> = declared
            .iter()
            .filter(|(_, _, step)| step.enabled)
            .collect();
        let ids: Vec<&str> = enabled.iter().map(|(_, id, _)| id.as_str()).collect();
        let mut compiled = Vec::with_capacity(enabled.len());
        for (step_path, id, step) in &enabled {
            compiled.push(self.step(step, id, step_path, &ids, depth)?);
        }
        let graph = match workflow_type {
            WorkflowType::Graph => Some(self.graph(workflow, path, &ids, &compiled)?),
            _ => None,
        };
        let orchestration = workflow_type
            .is_orchestration()
            .then(|| orchestration(workflow, &ids));
        Ok(WorkflowPlan {
            name: workflow.name.clone().unwrap_or_else(|| "workflow".into()),
            description: workflow.description.clone(),
            kind: workflow_type,
            steps: compiled,
            graph,
            orchestration,
        })
    }

    fn graph(
        &self,
        workflow: &WorkflowSpec,
        path: &str,
        ids: &[&str],
        nodes: &[StepPlan],
    ) -> Result<GraphPlan, CompileError> {
        let index_of = |id: &str| ids.iter().position(|candidate| *candidate == id);
        let start_id = workflow.start.as_deref().unwrap_or_default();
        let start = index_of(start_id).ok_or_else(|| {
            compile_error(
                "E_GRAPH_START_DISABLED",
                &format!("{path}.start"),
                format!("Graph start node '{start_id}' is disabled or undefined."),
            )
        })?;
        let edges = workflow
            .edges
            .iter()
            .filter_map(|edge| {
                Some(EdgePlan {
                    from: index_of(&edge.from)?,
                    to: index_of(&edge.to)?,
                    condition: edge.condition.as_ref().map(ConditionPlan::compile),
                    label: edge.label.clone(),
                })
            })
            .collect();
        Ok(GraphPlan {
            start,
            max_steps: Some(workflow.graph_max_steps()),
            edges,
            node_metadata: nodes.iter().map(|node| node_metadata(&node.unit)).collect(),
            node_kinds: nodes.iter().map(|node| node.unit.kind()).collect(),
        })
    }

    fn step(
        &self,
        step: &StepSpec,
        id: &str,
        path: &str,
        ids: &[&str],
        depth: usize,
    ) -> Result<StepPlan, CompileError> {
        let reference = step.reference.as_str();
        let unresolved = || {
            compile_error(
                "E_STEP_AGENT_REF",
                &format!("{path}.ref"),
                format!(
                    "step {:?} refers to unknown {} {reference:?}",
                    step.id,
                    step.kind.as_str()
                ),
            )
        };
        let unit = match step.kind {
            StepKind::Agent | StepKind::Guardrail => {
                let agent = self.spec.resolve_agent(reference).ok_or_else(unresolved)?;
                match agent
                    .as_agent
                    .as_ref()
                    .and_then(|name| self.spec.components.workflows.get(name).map(|w| (name, w)))
                {
                    // Workflow-as-agent: the agent's behaviour is the workflow.
                    Some((name, workflow)) => Unit::Workflow(Box::new(self.workflow(
                        workflow,
                        &format!("components.workflows.{name}"),
                        depth + 1,
                    )?)),
                    None => {
                        let mut plan = self.agent(agent, path, depth)?;
                        // Every step running this component agent shares its history.
                        plan.history_key = format!("components.agents.{reference}");
                        Unit::Agent(Arc::new(plan))
                    }
                }
            }
            StepKind::Function => match self.function_call(reference, &format!("{path}.ref"))? {
                ComponentCall::Command { reference, command } => {
                    Unit::Command { reference, command }
                }
                ComponentCall::Function {
                    implementation,
                    function,
                    ..
                } => Unit::Function {
                    implementation,
                    function,
                },
                ComponentCall::Agent(agent) => Unit::Agent(agent),
            },
            StepKind::Human => Unit::Human {
                reference: reference.to_string(),
                spec: self
                    .spec
                    .components
                    .humans
                    .get(reference)
                    .ok_or_else(unresolved)?
                    .clone(),
            },
            StepKind::Workflow => {
                let nested = self
                    .spec
                    .components
                    .workflows
                    .get(reference)
                    .ok_or_else(unresolved)?;
                Unit::Workflow(Box::new(self.workflow(
                    nested,
                    &format!("components.workflows.{reference}"),
                    depth + 1,
                )?))
            }
        };
        // A fallback to a disabled step is gone with that step: the step then fails as with
        // `on_error: fail` (W_STEP_FALLBACK_DISABLED says so at validation).
        let fallback = step
            .fallback_ref
            .as_ref()
            .and_then(|target| ids.iter().position(|candidate| candidate == target));
        Ok(StepPlan {
            id: id.to_string(),
            unit,
            on_error: step.on_error,
            fallback,
            max_retries: step.max_retries.unwrap_or(0),
            timeout: step
                .timeout_seconds
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            disabled: false,
        })
    }
}

/// Selector, rounds and turn budget of an orchestration, over the enabled participants `ids`.
fn orchestration(workflow: &WorkflowSpec, ids: &[&str]) -> OrchestrationPlan {
    let declaration_order = || Selector::Sequence((0..ids.len()).collect());
    let selector_spec = workflow.selector.clone().unwrap_or_default();
    let selector = match (workflow.workflow_type, selector_spec.selector_type) {
        (WorkflowType::Handoff, SelectorType::RoundRobin) => Selector::RoundRobin,
        (WorkflowType::Handoff, SelectorType::Sequence) if !selector_spec.sequence.is_empty() => {
            Selector::Sequence(
                selector_spec
                    .sequence
                    .iter()
                    .filter_map(|entry| ids.iter().position(|id| id == entry))
                    .collect(),
            )
        }
        _ => declaration_order(),
    };
    let max_turns = (workflow.workflow_type == WorkflowType::Handoff)
        .then_some(workflow.max_iterations)
        .flatten();
    OrchestrationPlan {
        selector,
        rounds: if workflow.workflow_type == WorkflowType::GroupChat {
            workflow.group_chat_rounds()
        } else {
            1
        },
        max_turns,
    }
}

#[cfg(test)]
mod tests;
