//! The typed `version: v1` spec the engine executes (spec_format.md § 1–2).
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
    /// `agent.strategy.type`.
    StrategyType { #[default] Simple = "simple", React = "react", PlanAct = "plan-act" }
}

spec_enum! {
    /// `agent.runtime_preferences.preferred_mode` / `allowed_modes[]`.
    RuntimeMode { #[default] Bridge = "bridge", Native = "native" }
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

spec_enum! {
    /// What a step's `ref` names, and therefore which component map it resolves against.
    StepKind { #[default] Agent = "agent", Function = "function", Human = "human", Workflow = "workflow" }
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
    /// `edges[].condition.type` in a graph workflow.
    EdgeConditionType { #[default] OutputContains = "output_contains", StatusIs = "status_is" }
}

spec_enum! {
    /// `selector.type` in a handoff workflow.
    SelectorType { #[default] RoundRobin = "round_robin", Sequence = "sequence" }
}

spec_enum! {
    /// `guardrails.<stage>[].type`.
    GuardrailType { #[default] Regex = "regex", Keyword = "keyword" }
}

spec_enum! {
    /// `guardrails.<stage>[].action`.
    GuardrailAction {
        #[default] Block = "block",
        Warn = "warn",
        Redact = "redact",
        Revise = "revise",
        Escalate = "escalate",
        HumanReview = "human_review",
        Retry = "retry",
    }
}

spec_enum! {
    /// `mcp_servers.<name>.transport`.
    McpTransport { #[default] Stdio = "stdio", Http = "http", Sse = "sse" }
}

spec_enum! {
    /// `policy_defaults.checkpointing.mode`.
    CheckpointMode { #[default] Step = "step" }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A whole spec document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `v1`; absent only in old or overlay-style documents (the validator warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_defaults: Option<PolicyDefaults>,
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
            StepKind::Agent => self.resolve_agent(reference).is_some(),
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_preferences: Option<RuntimePreferences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolSelection>,
    /// Keys of the top-level `skills` map, composed into the system prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Guardrails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Policies>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySpec>,
    /// Upstream leaves the shape undocumented, so it is carried through unread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middleware: Option<Value>,
    /// Workflow-as-agent: this agent's behaviour is `components.workflows.<as_agent>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_agent: Option<String>,
}

impl AgentSpec {
    /// Tool names this agent selects, in either selection form.
    pub fn tool_names(&self) -> &[String] {
        self.tools.as_ref().map_or(&[], ToolSelection::names)
    }
}

/// `agent.model`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub provider: String,
    pub name: String,
    /// Kept as written: kneo-serv accepts any value at validation and rejects a non-numeric
    /// temperature when the run starts (`400 invalid_request`); see [`ModelSpec::temperature`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Value>,
    /// Per-run ceiling on input+output tokens; always > 0 once validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
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
    /// Absent in overlays that only tune `max_iterations`; the engine treats absence as `simple`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<StrategyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
}

/// `agent.runtime_preferences`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimePreferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_mode: Option<RuntimeMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_modes: Vec<RuntimeMode>,
}

/// `agent.tools`: the short form is a bare list of names; the long form can carry permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolSelection {
    Short(Vec<String>),
    Long(ToolInclude),
}

impl ToolSelection {
    pub fn names(&self) -> &[String] {
        match self {
            Self::Short(names) => names,
            Self::Long(include) => &include.include,
        }
    }

    pub fn permissions(&self) -> Option<&ToolPermissions> {
        match self {
            Self::Short(_) => None,
            Self::Long(include) => include.permissions.as_ref(),
        }
    }
}

/// The long form `agent.tools: {include: [...], permissions: {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInclude {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<ToolPermissions>,
}

/// Tool permissions, used both for `agent.tools.permissions` and `agent.policies.tool`.
/// Upstream documents these fields for `policies.tool`; `permissions` is undocumented, so kneo
/// reads it with the same shape. Declaring the block at all, even with every capability off,
/// is what governance asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPermissions {
    /// When non-empty, the guarded registry blocks every tool not listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
}

/// `agent.policies`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolPermissions>,
}

/// `agent.guardrails`: one list per stage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<GuardrailSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<GuardrailSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool: Vec<GuardrailSpec>,
    /// Checked on every step output of the root workflow and of nested workflows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow: Vec<GuardrailSpec>,
}

/// One guardrail.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    pub id: String,
    #[serde(rename = "type")]
    pub guardrail_type: GuardrailType,
    #[serde(default)]
    pub action: GuardrailAction,
    #[serde(default)]
    pub config: GuardrailConfig,
}

/// `config` of a guardrail: `patterns` for `regex`, `keywords` for `keyword`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// `agent.memory`. Only `policy` is documented (and required); the other settings are carried
/// through for the memory backend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemorySpec {
    pub policy: Value,
    #[serde(flatten)]
    pub settings: Map<String, Value>,
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
    /// Environment for `command`, added to a cleared environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Hosts a network tool may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// Capability flags (upstream leaves the names undocumented; these are kneo's). They only
    /// drive governance warnings.
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
}

/// `components.humans.<key>`: a task that pauses the run until a reviewer answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanSpec {
    /// Shown to the reviewer as the request prompt.
    pub description: String,
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
    pub response_role: Option<String>,
}

/// `mcp_servers.<name>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    pub transport: McpTransport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_read_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// Inline key: persisted unredacted in run metadata, so the validator warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_ref: Option<String>,
}

/// `skills.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillSpec {
    /// Skill directory or file; must resolve inside the spec root (`resolve_spec_path`).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `policy_defaults`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpointing: Option<CheckpointingDefaults>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingDefaults>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointingDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CheckpointMode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The root `workflow` or a `components.workflows.<key>` entry. Which fields apply depends on
/// `type`: `steps` (sequential); `start`, `max_steps`, `nodes`, `edges` (graph); `participants`
/// (concurrent, handoff, group-chat); `selector` (handoff); `rounds` (group-chat).
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
    /// Cap on graph node executions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Graph nodes by id (each node's `id` equals its key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, StepSpec>,
    /// Graph edges; after a node runs, the first matching edge in this order is followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<StepSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,
    /// Group-chat rounds; each round gives every participant one turn. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
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

    /// Whether any step of this workflow (not of nested ones) is a human task.
    pub fn has_human_step(&self) -> bool {
        self.all_steps()
            .iter()
            .any(|(_, step)| step.kind == StepKind::Human)
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
    /// A disabled step or node is skipped and may not be a fallback target.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// A graph edge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    pub from: String,
    pub to: String,
    /// No condition: the edge always matches (a default route when listed last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<EdgeCondition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeCondition {
    #[serde(rename = "type")]
    pub condition_type: EdgeConditionType,
    /// Substring for `output_contains`; step status (e.g. `failed`) for `status_is`.
    pub value: String,
}

/// A handoff selector.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    #[serde(rename = "type")]
    pub selector_type: SelectorType,
    /// Participant ids in run order, for `type: sequence`.
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
