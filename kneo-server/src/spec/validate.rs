//! Spec validation: schema, references, workflow shape and governance, producing the diagnostic
//! list of `POST /v1/specs/validate` and, when there is no error, the typed [`Spec`].
//!
//! Passes run in this order, and diagnostics keep it (golden 44 depends on it):
//! 1. schema (`schema.rs`): keys, types, enums, required fields, local value ranges;
//! 2. components (`validate/components.rs`): agents, tools, MCP servers, functions, humans;
//! 3. workflows (`validate/workflows.rs`): shape per type, step refs, fallbacks;
//! 4. build cycles (`validate/cycles.rs`);
//! 5. governance warnings (`validate/governance.rs`).
//!
//! Passes 2–5 need a well-formed model, so they run only when pass 1 found no `E_SCHEMA` error.
//!
//! Diagnostic codes. Codes named by the upstream docs or golden recordings keep their names;
//! the rest follow the `E_WORKFLOW_*` / `E_HUMAN_*` / `E_GRAPH_*` scheme the docs suggest.
//! Upstream's docs call the unknown-tool code `E_UNKNOWN_TOOL` (path `agent.tools[0]`), but the
//! 1.2 service answers `E_TOOL_REF` at `agent.tools` (golden 44), which is what we emit.
//!
//! | Code | Severity | Meaning |
//! |---|---|---|
//! | `E_SCHEMA` | error | Unknown key, missing required key, wrong type, or value outside an enum. |
//! | `E_SPEC_VERSION` | error | `version` is something other than `v1`. |
//! | `W_SPEC_VERSION_MISSING` | warning | No `version`; the spec is read as `v1`. |
//! | `E_VALUE_RANGE` | error | A number outside its range (`max_iterations`, MCP timeouts, `max_response_bytes`). |
//! | `E_MODEL_TOKEN_BUDGET_INVALID` | error | `model.token_budget` ≤ 0. |
//! | `E_HUMAN_TIMEOUT_INVALID` | error | A human task's `timeout_seconds` ≤ 0. |
//! | `E_STEP_TIMEOUT_INVALID` | error | A step's `timeout_seconds` ≤ 0. |
//! | `E_STEP_MAX_RETRIES_INVALID` | error | A step's `max_retries` < 0. |
//! | `E_WORKFLOW_ROUNDS_INVALID` | error | Group-chat `rounds` < 1. |
//! | `E_GRAPH_MAX_STEPS_INVALID` | error | Graph `max_steps` < 1. |
//! | `E_GUARDRAIL_FIELDS` | error | A guardrail item lacks `id` or `type`. |
//! | `E_GUARDRAIL_CONFIG` | error | A `regex` guardrail without `config.patterns`, or `keyword` without `config.keywords`. |
//! | `W_GUARDRAIL_ACTION_IGNORED` | warning | An output-stage action other than `warn`/`block`/`revise` (not honoured there). |
//! | `E_MEMORY_POLICY_REQUIRED` | error | `memory` without `policy`. |
//! | `E_TOOL_REF` | error | An agent selects a tool neither declared in `tools` nor registered. |
//! | `E_SKILL_UNKNOWN` | error | An agent lists a skill not declared in top-level `skills`. |
//! | `E_AS_AGENT_UNKNOWN` | error | `as_agent` names no `components.workflows` entry. |
//! | `E_AS_AGENT_FIELD_FORBIDDEN` | error | An `as_agent` agent also sets a field other than `name`/`description`/`system_prompt`. |
//! | `E_RUNTIME_MODE_NOT_ALLOWED` | error | `preferred_mode` is not among the listed `allowed_modes`. |
//! | `E_TOOL_NO_BACKING` | error | A tool has none of `implementation`/`mcp`/`agent`/`command`. |
//! | `E_TOOL_MULTIPLE_BACKINGS` | error | A tool has more than one backing. |
//! | `E_TOOL_IMPLEMENTATION_UNKNOWN` | error | A tool `implementation` that this server has not registered. |
//! | `E_UNSAFE_TOOL_IMPORT` | error | A tool `implementation` inside `os`/`subprocess`/`shutil`/`socket`/`importlib`/`builtins`. |
//! | `E_MCP_SERVER_UNKNOWN` | error | `tools.<t>.mcp.server` names no `mcp_servers` entry. |
//! | `E_TOOL_AGENT_UNKNOWN` | error | Agent-as-tool names no component agent. |
//! | `E_COMMAND_EMPTY` | error | A `command` with no program. |
//! | `W_ENV_WITHOUT_COMMAND` | warning | `env` on a tool or function that has no `command` (it is unused). |
//! | `E_MCP_TRANSPORT_FIELDS` | error | An MCP server lacks its transport's address (`command`, `url` or `sse_url`). |
//! | `E_FUNCTION_NO_BACKING` | error | A function has neither `implementation` nor `command`. |
//! | `E_FUNCTION_MULTIPLE_BACKINGS` | error | A function has both `implementation` and `command`. |
//! | `E_FUNCTION_UNKNOWN` | error | A function `implementation` this server has not registered (see docs/extending.md). |
//! | `E_UNSAFE_FUNCTION_IMPORT` | error | A function `implementation` inside a risky module (as for tools). |
//! | `E_HUMAN_OPTIONS_REQUIRED` | error | `request_type: selection` without `options`. |
//! | `E_HUMAN_DEFAULT_OPTION_UNKNOWN` | error | `default_option` is not one of `options`. |
//! | `E_HUMAN_OPTIONS_DUPLICATE` | error | The same option is listed twice. |
//! | `E_WORKFLOW_STEPS_REQUIRED` | error | A sequential workflow without steps. |
//! | `E_WORKFLOW_PARTICIPANTS_REQUIRED` | error | A concurrent, handoff or group-chat workflow without participants. |
//! | `E_WORKFLOW_DUPLICATE_ID` | error | Two steps/nodes/participants of one workflow share an id. |
//! | `E_WORKFLOW_REF_UNKNOWN` | error | A step `ref` names nothing in the component map for its `kind`. |
//! | `E_WORKFLOW_SELECTOR_SEQUENCE_REQUIRED` | error | A `sequence` selector without a `sequence` list. |
//! | `E_WORKFLOW_SELECTOR_UNKNOWN_PARTICIPANT` | error | A selector entry that is not a participant id. |
//! | `W_WORKFLOW_FIELD_IGNORED` | warning | A workflow field that the workflow's `type` does not use. |
//! | `E_GRAPH_NODES_REQUIRED` | error | A graph without nodes. |
//! | `E_GRAPH_START_REQUIRED` | error | A graph without `start`. |
//! | `E_GRAPH_START_UNKNOWN` | error | `start` names no node. |
//! | `E_GRAPH_NODE_ID_MISMATCH` | error | A node's `id` differs from its key in `nodes`. |
//! | `E_GRAPH_EDGE_UNKNOWN_NODE` | error | An edge's `from` or `to` names no node. |
//! | `E_GRAPH_CYCLE_UNBOUNDED` | error | The graph has a cycle and no `max_steps`. |
//! | `W_GRAPH_NODE_UNREACHABLE` | warning | A node no edge or fallback leads to from `start`. |
//! | `E_GRAPH_NODE_FALLBACK_DISABLED` | error | `fallback_ref` names a disabled node or step. |
//! | `E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED` | error | More than one human participant in a concurrent fan-out. |
//! | `E_STEP_FALLBACK_REQUIRED` | error | `on_error: fallback` without `fallback_ref`. |
//! | `E_STEP_FALLBACK_UNKNOWN` | error | `fallback_ref` names no other step of the same workflow. |
//! | `E_STEP_FALLBACK_HUMAN` | error | `fallback_ref` names a human step. |
//! | `W_STEP_FALLBACK_UNUSED` | warning | `fallback_ref` without `on_error: fallback`. |
//! | `W_STEP_RETRY_WITHOUT_BUDGET` | warning | `on_error: retry` with no positive `max_retries`. |
//! | `E_STEP_WORKFLOW_NESTED_HUMAN` | error | A human step inside a component workflow (it cannot pause the outer run). |
//! | `E_BUILD_CYCLE` | error | Agents, agent-as-tool, workflow-as-agent and workflow steps reference each other in a cycle. |
//! | `W_TOOL_NETWORK_UNRESTRICTED` | warning | A `network` tool without `allowed_domains`. |
//! | `W_TOOL_SHELL` | warning | A `shell`-capable tool. |
//! | `W_TOOL_FILESYSTEM_WRITE` | warning | A tool with `filesystem_write`. |
//! | `W_MCP_TLS_VERIFY_DISABLED` | warning | An MCP server with `verify: false`. |
//! | `W_MCP_INLINE_CLIENT_KEY` | warning | An inline MCP `client_key` (stored unredacted); use `client_key_ref`. |
//! | `W_TOOL_POLICY_UNRESTRICTED` | warning | An agent selects tools without `permissions` or `policies.tool`. |
//! | `W_HUMAN_APPROVAL_MISSING` | warning | Tools or risky imports are exposed and the root workflow has no human step. |

mod components;
mod cycles;
mod governance;
mod workflows;

use super::diagnostic::Diagnostic;
use super::model::Spec;
use super::schema::read_spec;
use serde_json::Value;
use std::collections::BTreeSet;

/// The diagnostic codes, as constants so a typo is a compile error.
pub mod codes {
    pub const E_SCHEMA: &str = "E_SCHEMA";
    pub const E_SPEC_VERSION: &str = "E_SPEC_VERSION";
    pub const W_SPEC_VERSION_MISSING: &str = "W_SPEC_VERSION_MISSING";
    pub const E_VALUE_RANGE: &str = "E_VALUE_RANGE";
    pub const E_MODEL_TOKEN_BUDGET_INVALID: &str = "E_MODEL_TOKEN_BUDGET_INVALID";
    pub const E_HUMAN_TIMEOUT_INVALID: &str = "E_HUMAN_TIMEOUT_INVALID";
    pub const E_STEP_TIMEOUT_INVALID: &str = "E_STEP_TIMEOUT_INVALID";
    pub const E_STEP_MAX_RETRIES_INVALID: &str = "E_STEP_MAX_RETRIES_INVALID";
    pub const E_WORKFLOW_ROUNDS_INVALID: &str = "E_WORKFLOW_ROUNDS_INVALID";
    pub const E_GRAPH_MAX_STEPS_INVALID: &str = "E_GRAPH_MAX_STEPS_INVALID";
    pub const E_GUARDRAIL_FIELDS: &str = "E_GUARDRAIL_FIELDS";
    pub const E_GUARDRAIL_CONFIG: &str = "E_GUARDRAIL_CONFIG";
    pub const W_GUARDRAIL_ACTION_IGNORED: &str = "W_GUARDRAIL_ACTION_IGNORED";
    pub const E_MEMORY_POLICY_REQUIRED: &str = "E_MEMORY_POLICY_REQUIRED";
    pub const E_TOOL_REF: &str = "E_TOOL_REF";
    pub const E_SKILL_UNKNOWN: &str = "E_SKILL_UNKNOWN";
    pub const E_AS_AGENT_UNKNOWN: &str = "E_AS_AGENT_UNKNOWN";
    pub const E_AS_AGENT_FIELD_FORBIDDEN: &str = "E_AS_AGENT_FIELD_FORBIDDEN";
    pub const E_RUNTIME_MODE_NOT_ALLOWED: &str = "E_RUNTIME_MODE_NOT_ALLOWED";
    pub const E_TOOL_NO_BACKING: &str = "E_TOOL_NO_BACKING";
    pub const E_TOOL_MULTIPLE_BACKINGS: &str = "E_TOOL_MULTIPLE_BACKINGS";
    pub const E_TOOL_IMPLEMENTATION_UNKNOWN: &str = "E_TOOL_IMPLEMENTATION_UNKNOWN";
    pub const E_UNSAFE_TOOL_IMPORT: &str = "E_UNSAFE_TOOL_IMPORT";
    pub const E_MCP_SERVER_UNKNOWN: &str = "E_MCP_SERVER_UNKNOWN";
    pub const E_TOOL_AGENT_UNKNOWN: &str = "E_TOOL_AGENT_UNKNOWN";
    pub const E_COMMAND_EMPTY: &str = "E_COMMAND_EMPTY";
    pub const W_ENV_WITHOUT_COMMAND: &str = "W_ENV_WITHOUT_COMMAND";
    pub const E_MCP_TRANSPORT_FIELDS: &str = "E_MCP_TRANSPORT_FIELDS";
    pub const E_FUNCTION_NO_BACKING: &str = "E_FUNCTION_NO_BACKING";
    pub const E_FUNCTION_MULTIPLE_BACKINGS: &str = "E_FUNCTION_MULTIPLE_BACKINGS";
    pub const E_FUNCTION_UNKNOWN: &str = "E_FUNCTION_UNKNOWN";
    pub const E_UNSAFE_FUNCTION_IMPORT: &str = "E_UNSAFE_FUNCTION_IMPORT";
    pub const E_HUMAN_OPTIONS_REQUIRED: &str = "E_HUMAN_OPTIONS_REQUIRED";
    pub const E_HUMAN_DEFAULT_OPTION_UNKNOWN: &str = "E_HUMAN_DEFAULT_OPTION_UNKNOWN";
    pub const E_HUMAN_OPTIONS_DUPLICATE: &str = "E_HUMAN_OPTIONS_DUPLICATE";
    pub const E_WORKFLOW_STEPS_REQUIRED: &str = "E_WORKFLOW_STEPS_REQUIRED";
    pub const E_WORKFLOW_PARTICIPANTS_REQUIRED: &str = "E_WORKFLOW_PARTICIPANTS_REQUIRED";
    pub const E_WORKFLOW_DUPLICATE_ID: &str = "E_WORKFLOW_DUPLICATE_ID";
    pub const E_WORKFLOW_REF_UNKNOWN: &str = "E_WORKFLOW_REF_UNKNOWN";
    pub const E_WORKFLOW_SELECTOR_SEQUENCE_REQUIRED: &str = "E_WORKFLOW_SELECTOR_SEQUENCE_REQUIRED";
    pub const E_WORKFLOW_SELECTOR_UNKNOWN_PARTICIPANT: &str =
        "E_WORKFLOW_SELECTOR_UNKNOWN_PARTICIPANT";
    pub const W_WORKFLOW_FIELD_IGNORED: &str = "W_WORKFLOW_FIELD_IGNORED";
    pub const E_GRAPH_NODES_REQUIRED: &str = "E_GRAPH_NODES_REQUIRED";
    pub const E_GRAPH_START_REQUIRED: &str = "E_GRAPH_START_REQUIRED";
    pub const E_GRAPH_START_UNKNOWN: &str = "E_GRAPH_START_UNKNOWN";
    pub const E_GRAPH_NODE_ID_MISMATCH: &str = "E_GRAPH_NODE_ID_MISMATCH";
    pub const E_GRAPH_EDGE_UNKNOWN_NODE: &str = "E_GRAPH_EDGE_UNKNOWN_NODE";
    pub const E_GRAPH_CYCLE_UNBOUNDED: &str = "E_GRAPH_CYCLE_UNBOUNDED";
    pub const W_GRAPH_NODE_UNREACHABLE: &str = "W_GRAPH_NODE_UNREACHABLE";
    pub const E_GRAPH_NODE_FALLBACK_DISABLED: &str = "E_GRAPH_NODE_FALLBACK_DISABLED";
    pub const E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED: &str =
        "E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED";
    pub const E_STEP_FALLBACK_REQUIRED: &str = "E_STEP_FALLBACK_REQUIRED";
    pub const E_STEP_FALLBACK_UNKNOWN: &str = "E_STEP_FALLBACK_UNKNOWN";
    pub const E_STEP_FALLBACK_HUMAN: &str = "E_STEP_FALLBACK_HUMAN";
    pub const W_STEP_FALLBACK_UNUSED: &str = "W_STEP_FALLBACK_UNUSED";
    pub const W_STEP_RETRY_WITHOUT_BUDGET: &str = "W_STEP_RETRY_WITHOUT_BUDGET";
    pub const E_STEP_WORKFLOW_NESTED_HUMAN: &str = "E_STEP_WORKFLOW_NESTED_HUMAN";
    pub const E_BUILD_CYCLE: &str = "E_BUILD_CYCLE";
    pub const W_TOOL_NETWORK_UNRESTRICTED: &str = "W_TOOL_NETWORK_UNRESTRICTED";
    pub const W_TOOL_SHELL: &str = "W_TOOL_SHELL";
    pub const W_TOOL_FILESYSTEM_WRITE: &str = "W_TOOL_FILESYSTEM_WRITE";
    pub const W_MCP_TLS_VERIFY_DISABLED: &str = "W_MCP_TLS_VERIFY_DISABLED";
    pub const W_MCP_INLINE_CLIENT_KEY: &str = "W_MCP_INLINE_CLIENT_KEY";
    pub const W_TOOL_POLICY_UNRESTRICTED: &str = "W_TOOL_POLICY_UNRESTRICTED";
    pub const W_HUMAN_APPROVAL_MISSING: &str = "W_HUMAN_APPROVAL_MISSING";
}

/// What the server can execute, so references to it can be checked at validation time.
/// The engine's registries implement this.
pub trait Catalog {
    /// Whether a function implementation (e.g. `examples.human_functions.draft_report`) is
    /// registered. Asked for `components.functions.<f>.implementation`, and for a tool's
    /// `implementation` that [`Catalog::has_tool`] does not know.
    fn has_function(&self, implementation: &str) -> bool;
    /// Whether a built-in tool is registered under `name`. Asked for tool names an agent
    /// selects without declaring them in `tools`, and for declared tools' `implementation`.
    fn has_tool(&self, name: &str) -> bool;
}

/// A fixed catalog: for tests, and for validating without an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticCatalog {
    pub functions: BTreeSet<String>,
    pub tools: BTreeSet<String>,
}

impl StaticCatalog {
    pub fn new<F, T>(functions: F, tools: T) -> Self
    where
        F: IntoIterator,
        F::Item: Into<String>,
        T: IntoIterator,
        T::Item: Into<String>,
    {
        Self {
            functions: functions.into_iter().map(Into::into).collect(),
            tools: tools.into_iter().map(Into::into).collect(),
        }
    }
}

impl Catalog for StaticCatalog {
    fn has_function(&self, implementation: &str) -> bool {
        self.functions.contains(implementation)
    }

    fn has_tool(&self, name: &str) -> bool {
        self.tools.contains(name)
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone)]
pub struct Validation {
    /// Every finding, in pass order.
    pub diagnostics: Vec<Diagnostic>,
    /// The typed spec; `Some` exactly when no diagnostic is an error.
    pub spec: Option<Spec>,
}

impl Validation {
    /// No error-severity diagnostic (warnings do not make a spec invalid).
    pub fn valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
    }
}

/// Validates a parsed spec document (from [`super::parse::parse_yaml`] or
/// [`super::parse::parse_json_spec`]) against the schema and against what `catalog` can run.
pub fn validate(value: &Value, catalog: &dyn Catalog) -> Validation {
    let schema = read_spec(value);
    let mut diagnostics = schema.diagnostics;
    let Some(spec) = schema.spec else {
        return Validation {
            diagnostics,
            spec: None,
        };
    };
    components::check(&spec, catalog, &mut diagnostics);
    workflows::check(&spec, &mut diagnostics);
    cycles::check(&spec, &mut diagnostics);
    governance::check(&spec, &mut diagnostics);
    let valid = !diagnostics.iter().any(Diagnostic::is_error);
    Validation {
        diagnostics,
        spec: valid.then_some(spec),
    }
}

/// The root agent and every component agent, with their diagnostic paths, in report order.
fn agents_with_paths(spec: &Spec) -> Vec<(String, &super::model::AgentSpec)> {
    std::iter::once(("agent".to_owned(), &spec.agent))
        .chain(
            spec.components
                .agents
                .iter()
                .map(|(key, agent)| (format!("components.agents.{key}"), agent)),
        )
        .collect()
}

#[cfg(test)]
mod tests;
