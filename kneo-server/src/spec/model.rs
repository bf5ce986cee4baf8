//! The typed `version: v1` spec the engine executes: kneo-serv 1.2's spec language plus kneo's
//! extensions (tool and function `command`s, `policies.tool`, `allow`/`deny`).
//!
//! Values of these types come out of [`super::validate::validate`], which reads the untyped
//! document with a diagnostic for every problem; the serde derives exist so a validated spec can
//! be stored and loaded again (they are strict too: `deny_unknown_fields` everywhere except the
//! few blocks upstream leaves open). Defaults that upstream documents (`on_error: fail`,
//! `request_type: approval`, ...) are filled in, so the engine never re-derives them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A closed set of spellings read from the spec, with the list the validator quotes back.
pub trait SpecEnum: Sized + Copy + 'static {
    /// Canonical spellings, in documentation order.
    const VARIANTS: &'static [&'static str];
    /// Parses a spelling, including accepted aliases such as `group_chat`.
    fn from_name(name: &str) -> Option<Self>;
    /// The canonical spelling.
    fn as_str(self) -> &'static str;
}

/// Declares a string enum: serde names, accepted aliases and [`SpecEnum`] from one list, so
/// the validator and the serde derive cannot disagree on spellings.
macro_rules! spec_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:literal $(| $alias:literal)*),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text $(, alias = $alias)*)] $variant),+
        }

        impl SpecEnum for $name {
            const VARIANTS: &'static [&'static str] = &[$($text),+];

            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text $(| $alias)* => Some(Self::$variant),)+
                    _ => None,
                }
            }

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl $name {
            /// The canonical spelling, as written in specs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spec_enum! {
    /// `agent.strategy.type`: how an agent turn uses the model and its tools.
    StrategyType { #[default] Simple = "simple", React = "react", PlanAct = "plan-act" }
}

spec_enum! {
    /// `agent.runtime_preferences` modes: `bridge` runs in process, `native` speaks to a
    /// provider's own API, `adapter` asks a registered adapter factory.
    RuntimeMode { #[default] Bridge = "bridge", Native = "native", Adapter = "adapter" }
}

spec_enum! {
    /// `workflow.type`; `group_chat` is accepted as an alias of `group-chat`.
    WorkflowType {
        #[default] Sequential = "sequential",
        Graph = "graph",
        Concurrent = "concurrent",
        Handoff = "handoff",
        GroupChat = "group-chat" | "group_chat",
    }
}

impl WorkflowType {
    /// Concurrent, handoff and group-chat: workflows over `participants`.
    pub fn is_orchestration(self) -> bool {
        matches!(self, Self::Concurrent | Self::Handoff | Self::GroupChat)
    }
}

spec_enum! {
    /// What a step's `ref` names, and therefore which component map it resolves against.
    /// `guardrail` runs a component agent, like `agent` (kneo-serv's spelling for a reviewing step).
    StepKind {
        #[default] Agent = "agent",
        Function = "function",
        Human = "human",
        Workflow = "workflow",
        Guardrail = "guardrail",
    }
}

impl StepKind {
    /// Whether the step's `ref` names a component agent.
    pub fn runs_an_agent(self) -> bool {
        matches!(self, Self::Agent | Self::Guardrail)
    }
}

spec_enum! {
    /// A step's failure policy, applied after `max_retries` is spent.
    OnError { #[default] Fail = "fail", Retry = "retry", Continue = "continue", Fallback = "fallback" }
}

spec_enum! {
    /// What happens when a human task's `timeout_seconds` passes.
    OnTimeout { #[default] Fail = "fail", Continue = "continue", Escalate = "escalate" }
}

spec_enum! {
    /// The kind of answer a human task asks for.
    RequestType {
        #[default] Approval = "approval",
        Review = "review",
        Correction = "correction",
        Selection = "selection",
        Freeform = "freeform",
    }
}

spec_enum! {
    /// The role a reviewer's provided or edited answer takes in the resumed thread.
    ResponseRole { #[default] User = "user", Assistant = "assistant", System = "system" }
}

spec_enum! {
    /// `edges[].condition.type` in a graph workflow (kneo-serv's ten predicates).
    EdgeConditionType {
        #[default] Always = "always",
        Never = "never",
        OutputContains = "output_contains",
        OutputEquals = "output_equals",
        MetadataEquals = "metadata_equals",
        VariableEquals = "variable_equals",
        StatusIs = "status_is",
        AllOf = "all_of",
        AnyOf = "any_of",
        Not = "not",
    }
}

spec_enum! {
    /// `selector.type` in a handoff workflow; `sequence` is the default.
    SelectorType { #[default] Sequence = "sequence", RoundRobin = "round_robin" }
}

spec_enum! {
    /// `guardrails.<stage>[].type`: `function` and `agent` name a component with `ref`.
    GuardrailType {
        #[default] Regex = "regex",
        Keyword = "keyword",
        Function = "function",
        Agent = "agent",
    }
}

impl GuardrailType {
    /// Whether this type checks with a component named by `ref`.
    pub fn needs_ref(self) -> bool {
        matches!(self, Self::Function | Self::Agent)
    }
}

spec_enum! {
    /// `guardrails.<stage>[].action`: what a failed check does. `retry`, `escalate` and
    /// `human_review` act as `block` (as in kneo-serv 1.2).
    GuardrailAction {
        #[default] Block = "block",
        Warn = "warn",
        Redact = "redact",
        Revise = "revise",
        Retry = "retry",
        Escalate = "escalate",
        HumanReview = "human_review",
    }
}

spec_enum! {
    /// The four places a guardrail checks text.
    GuardrailStage {
        #[default] Input = "input",
        Output = "output",
        Tool = "tool",
        Workflow = "workflow",
    }
}

impl GuardrailStage {
    /// The actions this stage honours (kneo-serv 1.2's per-stage rules): `redact` and `revise`
    /// cannot rewrite a user's input, and the final output cannot be redacted.
    pub fn honours(self, action: GuardrailAction) -> bool {
        use GuardrailAction::{Redact, Revise};
        match self {
            Self::Input => !matches!(action, Redact | Revise),
            Self::Output => action != Redact,
            Self::Tool | Self::Workflow => true,
        }
    }
}

spec_enum! {
    /// `memory.policy`: what of an agent's history reaches the model.
    MemoryPolicy {
        #[default] Full = "full",
        SlidingWindow = "sliding_window",
        Summary = "summary",
        Retrieval = "retrieval",
    }
}

spec_enum! {
    /// `defaults.append_mode`: what an agent keeps in its history after a turn.
    AppendMode {
        #[default] Auto = "auto",
        Never = "never",
        UserOnly = "user_only",
        AssistantOnly = "assistant_only",
    }
}

spec_enum! {
    /// `mcp_servers.<name>.transport`.
    McpTransport { #[default] Stdio = "stdio", Http = "http", Sse = "sse" }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_true(value: &bool) -> bool {
    *value
}

fn yes() -> bool {
    true
}

/// The version a `version: v1` document has after migration.
pub const CURRENT_VERSION: &str = "v1";

/// Node visits a graph may take when it sets no `max_steps` (kneo-serv's default).
pub const DEFAULT_GRAPH_MAX_STEPS: u32 = 50;

/// A whole spec document, after v0 migration and shorthand expansion.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The version as written before migration: `v1`, `v0`, or `None` (read as v0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free information about the spec; kept, never acted on.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The root agent, run by `target: agent` and addressable from steps by its name.
    pub agent: AgentSpec,
    /// The root workflow, run by `target: workflow` (the default target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSpec>,
    #[serde(default, skip_serializing_if = "Components::is_empty")]
    pub components: Components,
    /// Tools agents select by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_servers: BTreeMap<String, McpServerSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skills: BTreeMap<String, SkillSpec>,
    /// Free policy information (kneo-serv's CLI writes `project_defaults` here); never acted on.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub policies: Map<String, Value>,
}

impl Spec {
    /// The agent a `kind: agent` step's `ref` names: a `components.agents` key first, then the
    /// root agent by its `name` (the tutorial's `ref: directory-agent`).
    pub fn resolve_agent(&self, reference: &str) -> Option<&AgentSpec> {
        self.components
            .agents
            .get(reference)
            .or_else(|| (self.agent.name == reference).then_some(&self.agent))
    }

    /// Whether a step of `kind` with this `ref` names something defined in this spec.
    pub fn resolves(&self, kind: StepKind, reference: &str) -> bool {
        match kind {
            StepKind::Agent | StepKind::Guardrail => self.resolve_agent(reference).is_some(),
            StepKind::Function => self.components.functions.contains_key(reference),
            StepKind::Human => self.components.humans.contains_key(reference),
            StepKind::Workflow => self.components.workflows.contains_key(reference),
        }
    }
}

/// `components`: named building blocks that workflow steps reference by key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Components {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, AgentSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workflows: BTreeMap<String, WorkflowSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub functions: BTreeMap<String, FunctionSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub humans: BTreeMap<String, HumanSpec>,
}

impl Components {
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
            && self.workflows.is_empty()
            && self.functions.is_empty()
            && self.humans.is_empty()
    }
}

/// The root `agent` or a `components.agents.<key>` entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// `model: gpt-4o` (a string) reads as `{name: gpt-4o, provider: default}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// `strategy: react` (a string) reads as `{type: react}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_preferences: Option<RuntimePreferences>,
    /// `tools: [a, b]` (a list) reads as `{include: [a, b]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolSelection>,
    /// Keys of the top-level `skills` map, composed into the system prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Guardrails>,
    /// kneo extension: `policies.tool`, the tool allow/deny lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Policies>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySpec>,
    /// Open history settings; kneo-serv reads none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Map<String, Value>>,
    /// Middleware names; kneo-serv never imports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware: Vec<String>,
    #[serde(default, skip_serializing_if = "AgentDefaults::is_empty")]
    pub defaults: AgentDefaults,
    /// Workflow-as-agent: this agent's behaviour is `components.workflows.<as_agent>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_agent: Option<String>,
}

impl AgentSpec {
    /// Tool names this agent selects (`tools.include`).
    pub fn tool_names(&self) -> &[String] {
        self.tools.as_ref().map_or(&[], |tools| &tools.include)
    }

    /// The strategy type, `simple` when none is set.
    pub fn strategy_type(&self) -> StrategyType {
        self.strategy
            .as_ref()
            .map_or(StrategyType::Simple, |strategy| strategy.strategy_type)
    }
}

/// `agent.defaults`: an open map of which only `append_mode` is read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_mode: Option<AppendMode>,
    /// Every other key, kept as written (the validator warns that they do nothing).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl AgentDefaults {
    pub fn is_empty(&self) -> bool {
        self.append_mode.is_none() && self.other.is_empty()
    }
}

/// `agent.model`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub provider: String,
    pub name: String,
    /// A finite number once validated (kneo-serv also reads numeric strings and booleans, and
    /// the reader turns them into numbers); see [`ModelSpec::temperature`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Value>,
    /// Output tokens per provider call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Per-run ceiling on input+output tokens; always > 0 once validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// Seconds one provider call may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Provider-specific settings (`base_url`, `api_key_ref`, `api_key`, ...); open because
    /// providers differ. The documented keys are type-checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

impl ModelSpec {
    /// The temperature as a finite number, or `Err` naming what was written instead, for the
    /// run-time `invalid_request` check.
    pub fn temperature(&self) -> Result<Option<f64>, String> {
        match &self.temperature {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(value) if value.is_finite() => Ok(Some(value)),
                _ => Err(format!("model.temperature {number} is not a finite number")),
            },
            Some(other) => Err(format!("model.temperature must be a number, got {other}")),
        }
    }
}

/// `agent.strategy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    #[serde(rename = "type")]
    pub strategy_type: StrategyType,
    /// Model calls per agent turn; kneo-serv's default is 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_on_tool_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
}

/// `agent.runtime_preferences`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimePreferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_mode: Option<RuntimeMode>,
    /// Empty means every mode is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_modes: Vec<RuntimeMode>,
    /// Tried when the preferred mode cannot run the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_mode: Option<RuntimeMode>,
    /// The provider a `native` runtime speaks to (`openai`, `openai-agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_provider: Option<String>,
    /// The adapter factory an `adapter` runtime asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_ref: Option<String>,
    /// Read by nothing in kneo-serv 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_provider: Option<String>,
}

impl RuntimePreferences {
    /// `preferred_mode`, `bridge` when none is set.
    pub fn preferred(&self) -> RuntimeMode {
        self.preferred_mode.unwrap_or_default()
    }

    /// Whether `allowed_modes` admits `mode` (an empty list admits all).
    pub fn allows(&self, mode: RuntimeMode) -> bool {
        self.allowed_modes.is_empty() || self.allowed_modes.contains(&mode)
    }
}

/// `agent.tools`: the tools an agent sees (`include`), the ones it may never call
/// (`exclude`), and the permissions it declares.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSelection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<ToolPermissions>,
}

impl ToolSelection {
    pub fn names(&self) -> &[String] {
        &self.include
    }

    pub fn permissions(&self) -> Option<&ToolPermissions> {
        self.permissions.as_ref()
    }
}

/// Tool permissions, used for `agent.tools.permissions` and kneo's `agent.policies.tool`.
///
/// The capability flags declare a governance posture: they drive the `W_TOOL_*_ALLOWED`
/// warnings; kneo does not sandbox tool code. `allowed_domains` / `denied_domains` are enforced
/// on every URL in a tool call's arguments. `allow` / `deny` (kneo) are enforced by name.
/// kneo's older spellings `network`, `filesystem`, `shell` are read into the `allow_*` flags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_network: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_filesystem_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_filesystem_write: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_shell: Option<bool>,
    /// Hosts (and their subdomains) URL arguments may name; empty allows any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// Hosts (and their subdomains) URL arguments may never name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_domains: Vec<String>,
    /// kneo: when non-empty, every tool not listed is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// kneo: tools that are always refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl ToolPermissions {
    /// Whether the name lists let `tool` be called.
    pub fn permits(&self, tool: &str) -> bool {
        let listed = |names: &[String]| names.iter().any(|name| name == tool);
        !listed(&self.deny) && (self.allow.is_empty() || listed(&self.allow))
    }
}

/// `agent.policies` (kneo extension).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolPermissions>,
}

/// `agent.guardrails`: one list per stage, checked in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// The joined user input, before the model is called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<GuardrailSpec>,
    /// The agent's final text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<GuardrailSpec>,
    /// Every tool result, before the model sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool: Vec<GuardrailSpec>,
    /// Every step output of the root workflow and of nested workflows (root agent only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow: Vec<GuardrailSpec>,
}

impl Guardrails {
    /// The checks of `stage`, in order.
    pub fn stage(&self, stage: GuardrailStage) -> &[GuardrailSpec] {
        match stage {
            GuardrailStage::Input => &self.input,
            GuardrailStage::Output => &self.output,
            GuardrailStage::Tool => &self.tool,
            GuardrailStage::Workflow => &self.workflow,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
            && self.output.is_empty()
            && self.tool.is_empty()
            && self.workflow.is_empty()
    }
}

/// One guardrail check.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    pub id: String,
    #[serde(rename = "type")]
    pub guardrail_type: GuardrailType,
    #[serde(default)]
    pub action: GuardrailAction,
    /// For `function` (a `components.functions` key) and `agent` (a `components.agents` key).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Read by nothing in kneo-serv 1.2 (the validator says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub config: GuardrailConfig,
}

/// `config` of a guardrail: `patterns` for `regex`, `keywords` for `keyword` (matched without
/// regard to case).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// `agent.memory`: what of the agent's history the model sees.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    pub policy: MemoryPolicy,
    /// `sliding_window`: messages kept (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
    /// `sliding_window`: keep system messages outside the window (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_system_messages: Option<bool>,
    /// `summary`: the component (function or agent) that summarizes earlier turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarizer: Option<ComponentRef>,
    /// `retrieval`: the component (function or agent) that retrieves notes for the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retriever: Option<ComponentRef>,
    /// `retrieval`: how many notes to ask for (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
}

/// `{ref: <component key>}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    #[serde(rename = "ref")]
    pub reference: String,
}

/// `tools.<name>`. Exactly one backing: `implementation`, `mcp`, `agent`, or kneo's `command`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (`{type: object, properties, required}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// A registered handler name (dotted path upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpToolRef>,
    /// Agent-as-tool: a component agent called with the tool input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// kneo extension: an external program that reads the arguments as JSON on stdin and
    /// writes the result as JSON on stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// kneo: environment for `command`, added to a cleared environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// kneo: hosts this tool's URL arguments may name (enforced like the agent's list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// kneo capability flags: they drive governance warnings only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub network: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub shell: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub filesystem_write: bool,
}

/// `tools.<name>.mcp`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpToolRef {
    /// Key of `mcp_servers`.
    pub server: String,
    /// Remote tool name; defaults to the tool's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A kneo `command`: `[program, args...]`, or one string split on whitespace (no shell, no
/// quoting; use the list form for arguments containing spaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    Argv(Vec<String>),
    Line(String),
}

impl CommandSpec {
    /// Program followed by its arguments; empty only for an invalid spec.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Self::Argv(argv) => argv.clone(),
            Self::Line(line) => line.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// `components.functions.<key>`: `f(text) -> text`, backed by a registered implementation or a
/// kneo `command` (JSON on stdin/stdout).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Read by nothing in kneo-serv 1.2 (the validator says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Map<String, Value>>,
    /// Read by nothing in kneo-serv 1.2 (the validator says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Map<String, Value>>,
}

/// Title and prompt of a human task whose spec has no `description` (kneo-serv's texts).
pub const DEFAULT_HUMAN_TITLE: &str = "Human review required";
pub const DEFAULT_HUMAN_PROMPT: &str = "Please review this item.";

/// `components.humans.<key>`: a task that pauses the run until a reviewer answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanSpec {
    /// Shown to the reviewer as the request title and prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Metadata only; nobody is notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// When set, `expires_at = pause time + timeout_seconds`; always > 0 once validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    #[serde(default)]
    pub request_type: RequestType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_option: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    /// When set, the reviewer's content is appended to the thread with this role on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_role: Option<ResponseRole>,
}

impl HumanSpec {
    /// The request title: the description, or kneo-serv's default.
    pub fn title(&self) -> &str {
        self.description.as_deref().unwrap_or(DEFAULT_HUMAN_TITLE)
    }

    /// The request prompt: the description, or kneo-serv's default.
    pub fn prompt(&self) -> &str {
        self.description.as_deref().unwrap_or(DEFAULT_HUMAN_PROMPT)
    }
}

/// `mcp_servers.<name>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    pub transport: McpTransport,
    /// stdio: the program to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// http: the endpoint JSON-RPC requests are posted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Sent with every http/sse request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Seconds per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// sse: the event stream to open (also accepted on http, where it is not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_url: Option<String>,
    /// sse: where messages are posted when the server's `endpoint` event names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_url: Option<String>,
    /// sse: seconds the stream may stay silent while a call waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_read_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// http/sse: `false` turns TLS certificate checks off (the validator warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// http/sse: PEM file of extra trusted CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// http/sse: PEM client certificate (mTLS), with `client_key` or `client_key_ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// A PEM key file path; inline keys end up in stored run metadata, so prefer the `_ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// Name of the environment variable holding the PEM client key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_ref: Option<String>,
}

/// `skills.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillSpec {
    /// Skill directory or file; never contains `..` or starts with `~` (checked at
    /// validation), and must resolve inside the spec root when it is loaded.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The root `workflow` or a `components.workflows.<key>` entry. Which fields apply depends on
/// `type`: `steps` (sequential); `start`, `max_steps`, `nodes`, `edges` (graph); `participants`
/// and `max_iterations` (concurrent, handoff, group-chat); `selector` (handoff); `rounds`
/// (group-chat). The reader refuses fields of another type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    #[serde(rename = "type")]
    pub workflow_type: WorkflowType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSpec>,
    /// Id of the first graph node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Cap on graph node visits; [`DEFAULT_GRAPH_MAX_STEPS`] when not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Graph nodes by key (a node whose `id` differs from its key is known by its key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, StepSpec>,
    /// Graph edges; after a node runs, the first matching edge in this order is followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<StepSpec>,
    /// Handoff: who takes the next turn; `sequence` over declaration order when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,
    /// Group-chat rounds; each round gives every participant one turn. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// Orchestrations: a turn budget (read by handoff only, as in kneo-serv 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
}

impl WorkflowSpec {
    /// Every step, node and participant of this workflow with its diagnostic path suffix
    /// (`steps[0]`, `nodes.review`, `participants[2]`), in declaration order.
    pub fn all_steps(&self) -> Vec<(String, &StepSpec)> {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| (format!("steps[{i}]"), step));
        let nodes = self
            .nodes
            .iter()
            .map(|(key, step)| (format!("nodes.{key}"), step));
        let participants = self
            .participants
            .iter()
            .enumerate()
            .map(|(i, step)| (format!("participants[{i}]"), step));
        steps.chain(nodes).chain(participants).collect()
    }

    /// Whether any enabled step of this workflow (not of nested ones) is a human task.
    pub fn has_human_step(&self) -> bool {
        self.all_steps()
            .iter()
            .any(|(_, step)| step.enabled && step.kind == StepKind::Human)
    }

    /// `max_steps`, or the default of 50.
    pub fn graph_max_steps(&self) -> u32 {
        self.max_steps.unwrap_or(DEFAULT_GRAPH_MAX_STEPS)
    }

    /// Group-chat `rounds`, or 1.
    pub fn group_chat_rounds(&self) -> u32 {
        self.rounds.unwrap_or(1)
    }
}

/// A sequential step, graph node, or orchestration participant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    pub kind: StepKind,
    /// Resolved against the component map for `kind` (see [`Spec::resolves`]).
    #[serde(rename = "ref")]
    pub reference: String,
    /// `enabled: false` (or kneo's `disabled: true`) drops the step, or the node with its
    /// edges, when the spec is compiled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default)]
    pub on_error: OnError,
    /// Id of another step of the same workflow, run in place of this one when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_ref: Option<String>,
    /// Retries spent before `on_error` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Per-attempt timeout; always > 0 once validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

/// A graph edge.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    pub from: String,
    pub to: String,
    /// No condition: the edge always matches (a default route when listed last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<EdgeCondition>,
    /// Shown in traces and graph views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A graph edge's predicate: a leaf (`output_contains`, `metadata_equals`, ...) or a
/// combinator (`all_of`, `any_of` over `conditions`, `not` over `condition`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeCondition {
    #[serde(rename = "type")]
    pub condition_type: EdgeConditionType,
    /// Text for `output_*`, status for `status_is`, any JSON value for `*_equals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The metadata or variable name for `metadata_equals` / `variable_equals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `output_contains` / `output_equals` compare without regard to case unless this is true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub case_sensitive: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<EdgeCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Box<EdgeCondition>>,
}

/// A handoff selector.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    #[serde(rename = "type", default)]
    pub selector_type: SelectorType,
    /// Participant ids in run order (a participant may repeat), for `type: sequence`; empty
    /// means declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequence: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_accept_aliases_and_serialize_canonically() {
        assert_eq!(
            WorkflowType::from_name("group_chat"),
            Some(WorkflowType::GroupChat)
        );
        assert_eq!(
            WorkflowType::from_name("group-chat"),
            Some(WorkflowType::GroupChat)
        );
        let parsed: WorkflowType = serde_json::from_value(serde_json::json!("group_chat")).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), "group-chat");
        assert_eq!(
            GuardrailAction::from_name("human_review"),
            Some(GuardrailAction::HumanReview)
        );
        assert_eq!(StrategyType::PlanAct.as_str(), "plan-act");
    }

    #[test]
    fn command_forms_give_argv() {
        assert_eq!(
            CommandSpec::Line("python3  fn.py --fast".into()).argv(),
            vec!["python3", "fn.py", "--fast"]
        );
        assert_eq!(CommandSpec::Argv(vec!["a b".into()]).argv(), vec!["a b"]);
    }

    #[test]
    fn temperature_is_checked_on_demand() {
        let mut model = ModelSpec {
            temperature: Some(serde_json::json!(0.2)),
            ..ModelSpec::default()
        };
        assert_eq!(model.temperature(), Ok(Some(0.2)));
        model.temperature = Some(serde_json::json!("hot"));
        assert!(model.temperature().is_err());
        model.temperature = None;
        assert_eq!(model.temperature(), Ok(None));
    }

    #[test]
    fn agent_refs_resolve_by_component_key_then_root_name() {
        let mut spec = Spec::default();
        spec.agent.name = "root".into();
        spec.components
            .agents
            .insert("helper".into(), AgentSpec::default());
        assert!(spec.resolves(StepKind::Agent, "helper"));
        assert!(spec.resolves(StepKind::Agent, "root"));
        assert!(!spec.resolves(StepKind::Agent, "other"));
        assert!(!spec.resolves(StepKind::Function, "helper"));
    }
}
