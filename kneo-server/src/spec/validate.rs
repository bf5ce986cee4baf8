//! Spec validation: migration, short forms, schema, references, workflow shape and governance,
//! producing the diagnostic list of `POST /v1/specs/validate` and, when there is no error, the
//! typed [`Spec`].
//!
//! Passes run in this order, and diagnostics keep it (golden 44 depends on it):
//! 1. v0 → v1 migration (`migrate.rs`) and short-form expansion (`shorthand.rs`);
//! 2. schema (`schema/`): keys, types, enums, required fields, local value rules;
//! 3. components (`validate/components.rs`): agents, tools, MCP servers, functions, humans;
//!    then their guardrail and memory blocks (`validate/policy_blocks.rs`);
//! 4. workflows (`validate/workflows.rs`): shape per type, step refs, fallbacks, graphs;
//! 5. build cycles (`validate/cycles.rs`);
//! 6. governance warnings (`validate/governance.rs`).
//!
//! Passes 3–6 need a well-formed model, so they run only when pass 2 found no `E_SCHEMA` error.
//!
//! Diagnostic codes are kneo-serv 1.2's wherever it has one for the same finding (marked *ref*
//! below); kneo's own codes cover what kneo-serv does not check, or checks only when a run
//! fails. None of kneo's earlier names for a kneo-serv finding is kept (docs/service_api.md,
//! "Spec diagnostics", lists the renames).
//!
//! | Code | Severity | Meaning |
//! |---|---|---|
//! | `E_SPEC_VERSION` | error | `version` is neither `v1`, `v0` nor absent. |
//! | `E_SCHEMA` *ref* | error | Unknown key, missing required key, wrong type, a value outside an enum, `model.token_budget` ≤ 0, `..`/`~` in a skill source or MCP path. |
//! | `E_VALUE_RANGE` | error | A number outside its range (`max_iterations`, `max_tokens`, MCP timeouts, memory counts). |
//! | `W_SPEC_KEY_NO_EFFECT` | warning | A key accepted for compatibility that has no effect, and why ([`super::keys`]). |
//! | `I_SPEC_KEY_INFORMATIONAL` | info | A key kept as information only (`metadata`, `policies`). |
//! | `I_SPEC_KNEO_EXTENSION` | info | A kneo-only key that kneo-serv 1.2 refuses, with the portable spelling. |
//! | `E_TOOL_REF` *ref* | error | An agent includes a tool neither declared in `tools` nor registered. |
//! | `E_TOOL_CONFLICT` *ref* | error | A tool is both in `include` and `exclude`. |
//! | `E_SKILL_REF` *ref* | error | An agent lists a skill not declared in top-level `skills`. |
//! | `E_SKILL_SOURCE_CONFINED` | error | A skill `source` outside the spec root (a run answers `422 spec_path_confined`, as kneo-serv's does). |
//! | `E_SKILL_SOURCE_UNREADABLE` | error | A skill `source` that does not exist (a run answers `400 invalid_request`). |
//! | `E_AS_AGENT_FIELDS` *ref* | error | An `as_agent` agent also sets fields its workflow defines. |
//! | `E_AS_AGENT_UNKNOWN_WORKFLOW` *ref* | error | `as_agent` names no `components.workflows` entry. |
//! | `E_RUNTIME_PREFERRED_NOT_ALLOWED` *ref* | error | `preferred_mode` is not among `allowed_modes`. |
//! | `E_RUNTIME_FALLBACK_NOT_ALLOWED` *ref* | error | `fallback_mode` is not among `allowed_modes`. |
//! | `W_RUNTIME_NATIVE_PROVIDER` *ref* | warning | `preferred_mode: native` without `native_provider`. |
//! | `W_RUNTIME_ADAPTER_REF` *ref* | warning | `preferred_mode: adapter` without `adapter_ref`. |
//! | `W_AGENT_MODEL` *ref* | warning | A `react`/`plan-act` agent without a `model`. |
//! | `E_GUARDRAIL_FIELDS` *ref* | error | A guardrail item is not a mapping, or lacks `id` or `type`. |
//! | `E_GUARDRAIL_MODE_UNSUPPORTED` *ref* | error | A guardrail `mode` other than `middleware`. |
//! | `E_GUARDRAIL_ACTION_UNSUPPORTED` *ref* | error | An action the stage does not honour (`redact`/`revise` on input, `redact` on output) or no action at all. |
//! | `E_GUARDRAIL_TYPE_UNSUPPORTED` | error | A guardrail type other than `regex`, `keyword`, `function`, `agent`. |
//! | `E_GUARDRAIL_REF_REQUIRED` | error | A `function` or `agent` guardrail without `ref`. |
//! | `E_GUARDRAIL_REF_UNKNOWN` | error | Its `ref` names no component function (or agent). |
//! | `E_GUARDRAIL_PATTERN_INVALID` | error | A `regex` pattern that does not compile. |
//! | `W_GUARDRAIL_NEVER_MATCHES` | warning | A `regex` without patterns or a `keyword` without keywords. |
//! | `W_GUARDRAIL_FIELD_IGNORED` | warning | A guardrail field its type does not read (`ref` on `regex`, `keywords` on `regex`, ...). |
//! | `W_GUARDRAIL_STAGE_IGNORED` | warning | Workflow-stage guardrails on a component agent: only the root agent's apply. |
//! | `I_GUARDRAIL_AGENT_TARGET_ONLY` | info | Root-agent input/output/tool guardrails in a spec whose workflow does not run the root agent: they apply with `target: agent` only. |
//! | `E_MEMORY_POLICY_REQUIRED` *ref* | error | `memory` without `policy`. |
//! | `E_MEMORY_POLICY_UNKNOWN` | error | A policy other than `full`, `sliding_window`, `summary`, `retrieval`. |
//! | `E_MEMORY_REF_REQUIRED` | error | `summary` without `summarizer`, `retrieval` without `retriever`. |
//! | `E_MEMORY_REF_UNKNOWN` | error | Their `ref` names no component function or agent. |
//! | `W_MEMORY_FIELD_IGNORED` | warning | A memory field the policy does not read. |
//! | `E_TOOL_NO_BACKING` *ref* | error | A tool has none of `implementation`/`mcp`/`agent`/`command`. |
//! | `E_TOOL_MULTIPLE_BACKINGS` *ref* | error | A tool has more than one backing. |
//! | `E_TOOL_IMPLEMENTATION_UNKNOWN` | error | A tool `implementation` that this server has not registered. |
//! | `E_UNSAFE_TOOL_IMPORT` *ref* | error | A tool `implementation` in a module or name that reaches the OS directly (kneo-serv's list). |
//! | `E_AGENT_TOOL_UNKNOWN_AGENT` *ref* | error | Agent-as-tool names no component agent. |
//! | `W_AGENT_TOOL_PARAMETERS_IGNORED` *ref* | warning | An agent-as-tool declares `parameters`; its input is one `input` string. |
//! | `E_COMMAND_EMPTY` | error | A `command` with no program. |
//! | `W_ENV_WITHOUT_COMMAND` | warning | `env` on a tool or function that has no `command` (it is unused). |
//! | `E_MCP_MISSING_FIELD` *ref* | error | An MCP server lacks its transport's address (`command`, `url` or `sse_url`). |
//! | `E_MCP_TOOL_NO_SERVER` *ref* | error | A tool's `mcp` block names no server. |
//! | `E_MCP_UNKNOWN_SERVER` *ref* | error | `tools.<t>.mcp.server` names no `mcp_servers` entry. |
//! | `W_MCP_TLS_VERIFY_DISABLED` *ref* | warning | An http/sse MCP server with `verify: false`. |
//! | `W_MCP_INLINE_CLIENT_KEY` | warning | PEM key material written inline in `client_key`; use `client_key_ref`. |
//! | `W_MCP_FIELD_IGNORED` | warning | A field the server's transport does not read (`url` on stdio, `command` on http, ...). |
//! | `E_FUNCTION_NO_BACKING` | error | A function has neither `implementation` nor `command`. |
//! | `E_FUNCTION_MULTIPLE_BACKINGS` | error | A function has both `implementation` and `command`. |
//! | `E_FUNCTION_UNKNOWN` | error | A function `implementation` this server has not registered (see docs/extending.md). |
//! | `E_UNSAFE_FUNCTION_IMPORT` *ref* | error | A function `implementation` that reaches the OS directly (as for tools). |
//! | `E_HUMAN_TIMEOUT_INVALID` | error | A human task's `timeout_seconds` ≤ 0. |
//! | `E_HUMAN_SELECTION_REQUIRES_OPTIONS` *ref* | error | `request_type: selection` without `options`. |
//! | `E_HUMAN_DEFAULT_OPTION_NOT_IN_OPTIONS` *ref* | error | `default_option` is not one of `options`. |
//! | `E_HUMAN_OPTIONS_DUPLICATE` | error | The same option is listed twice. |
//! | `W_HUMAN_RESPONSE_ROLE_SYSTEM` *ref* | warning | A reviewer's answer would join the thread as a system message. |
//! | `E_WORKFLOW_STEPS_REQUIRED` | error | A sequential workflow without steps. |
//! | `E_WORKFLOW_PARTICIPANTS_REQUIRED` | error | A concurrent, handoff or group-chat workflow without participants. |
//! | `E_STEP_DUPLICATE_ID` *ref* | error | Two steps of a sequential workflow share an id. |
//! | `E_PARTICIPANT_DUPLICATE_ID` *ref* | error | Two participants share an id. |
//! | `E_STEP_AGENT_REF` / `_FUNCTION_REF` / `_HUMAN_REF` / `_WORKFLOW_REF` *ref* | error | A step `ref` names nothing in the component map for its `kind`. |
//! | `E_STEP_WORKFLOW_SELF_REF` *ref* | error | A component workflow runs itself as a step. |
//! | `E_STEP_WORKFLOW_NESTED_HUMAN` *ref* | error | A `kind: workflow` step runs a component workflow that reaches a human step (it cannot pause the outer run). |
//! | `E_STEP_FALLBACK_REF` *ref* | error | `on_error: fallback` without `fallback_ref`. |
//! | `E_STEP_FALLBACK_UNKNOWN` *ref* | error | `fallback_ref` names no other step of the same workflow. |
//! | `E_STEP_FALLBACK_HUMAN` *ref* | error | `fallback_ref` names a human step. |
//! | `W_STEP_FALLBACK_DISABLED` *ref* | warning | `fallback_ref` names a disabled step: the step fails as with `on_error: fail`. |
//! | `W_STEP_FALLBACK_UNUSED` | warning | `fallback_ref` without `on_error: fallback`. |
//! | `W_STEP_RETRY_WITHOUT_BUDGET` | warning | `on_error: retry` with no positive `max_retries`. |
//! | `E_STEP_TIMEOUT_INVALID` | error | A step's `timeout_seconds` ≤ 0. |
//! | `E_STEP_MAX_RETRIES_INVALID` | error | A step's `max_retries` < 0. |
//! | `E_GRAPH_MAX_STEPS` *ref* | error | Graph `max_steps` < 1. |
//! | `E_GRAPH_START` / `E_GRAPH_START_UNKNOWN` *ref* | error | `start` names no node (kneo-serv reports both). |
//! | `E_GRAPH_START_DISABLED` *ref* | error | The start node is disabled. |
//! | `E_GRAPH_EDGE_FROM` / `E_GRAPH_EDGE_TO` *ref* | error | An edge's `from` or `to` names no node. |
//! | `W_GRAPH_NODE_ID_MISMATCH` *ref* | warning | A node's `id` differs from its key; the key is the node's id in runs. |
//! | `W_GRAPH_NODE_UNREACHABLE` *ref* | warning | An enabled node no edge or fallback leads to from `start` over enabled nodes. |
//! | `E_GRAPH_NODE_FALLBACK_REF` / `_UNKNOWN` / `_DISABLED` *ref* | error | A node's fallback is missing, names no node, or names a disabled node. |
//! | `E_GRAPH_FALLBACK_HUMAN` *ref* | error | A node's fallback is a human node. |
//! | `E_CONDITION_VALUE` / `_KEY` / `_CHILDREN` / `_CHILD` *ref* | error | An edge condition lacks what its type needs. |
//! | `W_CONDITION_FIELD_IGNORED` | warning | A condition field its type does not read. |
//! | `W_CONDITION_VARIABLES_UNSET` | warning | `variable_equals`: runs have no variables (no request field sets them), so it never matches. |
//! | `E_PARTICIPANT_FALLBACK_UNSUPPORTED` *ref* | error | A participant declares a fallback, which orchestrations do not honour. |
//! | `E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED` *ref* | error | More than one enabled human participant in a concurrent fan-out. |
//! | `E_HANDOFF_SELECTOR_REF` *ref* | error | A selector entry that is not a participant id. |
//! | `E_GROUP_CHAT_ROUNDS` *ref* | error | Group-chat `rounds` < 1. |
//! | `W_WORKFLOW_FIELD_IGNORED` | warning | A `round_robin` selector with a `sequence` (it is not read). |
//! | `E_BUILD_CYCLE` *ref* | error | Agents, tools, guardrail and memory refs, workflows reference each other in a cycle. |
//! | `W_TOOL_POLICY_UNRESTRICTED` *ref* | warning | An agent's tool selection has no `permissions` (nor kneo's `policies.tool`). |
//! | `W_TOOL_NETWORK_UNRESTRICTED` *ref* | warning | Network access allowed without `allowed_domains`. |
//! | `W_TOOL_SHELL_ALLOWED` *ref* | warning | Shell access allowed. |
//! | `W_TOOL_FILESYSTEM_WRITE_ALLOWED` *ref* | warning | Filesystem writes allowed. |
//! | `W_TOOL_FILESYSTEM_READ_ALLOWED` *ref* | warning | Filesystem reads allowed. |
//! | `W_HUMAN_APPROVAL_MISSING` *ref* | warning | Privileged tools or risky imports, and no enabled human step in any workflow. |
//!
//! The two skill-source codes come from [`super::skill_source`], which needs the spec root; the
//! platform runs it when a spec is validated or a run is created. Compiling for this build adds `E_PROVIDER_UNAVAILABLE`, `E_RUNTIME_UNAVAILABLE`,
//! `E_WORKFLOW_TYPE_UNSUPPORTED` and the runtime notes of `engine/plan.rs`.

mod components;
mod cycles;
mod governance;
mod policy_blocks;
mod workflows;

use super::diagnostic::Diagnostic;
use super::migrate::migrate;
use super::model::Spec;
use super::schema::read_spec;
use serde_json::Value;
use std::collections::BTreeSet;

/// The diagnostic codes, as constants so a typo is a compile error.
pub mod codes {
    pub const E_SPEC_VERSION: &str = "E_SPEC_VERSION";
    pub const E_SCHEMA: &str = "E_SCHEMA";
    pub const E_VALUE_RANGE: &str = "E_VALUE_RANGE";
    pub const W_SPEC_KEY_NO_EFFECT: &str = "W_SPEC_KEY_NO_EFFECT";
    pub const I_SPEC_KEY_INFORMATIONAL: &str = "I_SPEC_KEY_INFORMATIONAL";
    pub const I_SPEC_KNEO_EXTENSION: &str = "I_SPEC_KNEO_EXTENSION";
    pub const E_TOOL_REF: &str = "E_TOOL_REF";
    pub const E_TOOL_CONFLICT: &str = "E_TOOL_CONFLICT";
    pub const E_SKILL_REF: &str = "E_SKILL_REF";
    pub const E_SKILL_SOURCE_CONFINED: &str = "E_SKILL_SOURCE_CONFINED";
    pub const E_SKILL_SOURCE_UNREADABLE: &str = "E_SKILL_SOURCE_UNREADABLE";
    pub const E_AS_AGENT_FIELDS: &str = "E_AS_AGENT_FIELDS";
    pub const E_AS_AGENT_UNKNOWN_WORKFLOW: &str = "E_AS_AGENT_UNKNOWN_WORKFLOW";
    pub const E_RUNTIME_PREFERRED_NOT_ALLOWED: &str = "E_RUNTIME_PREFERRED_NOT_ALLOWED";
    pub const E_RUNTIME_FALLBACK_NOT_ALLOWED: &str = "E_RUNTIME_FALLBACK_NOT_ALLOWED";
    pub const W_RUNTIME_NATIVE_PROVIDER: &str = "W_RUNTIME_NATIVE_PROVIDER";
    pub const W_RUNTIME_ADAPTER_REF: &str = "W_RUNTIME_ADAPTER_REF";
    pub const W_AGENT_MODEL: &str = "W_AGENT_MODEL";
    pub const E_GUARDRAIL_FIELDS: &str = "E_GUARDRAIL_FIELDS";
    pub const E_GUARDRAIL_MODE_UNSUPPORTED: &str = "E_GUARDRAIL_MODE_UNSUPPORTED";
    pub const E_GUARDRAIL_ACTION_UNSUPPORTED: &str = "E_GUARDRAIL_ACTION_UNSUPPORTED";
    pub const E_GUARDRAIL_TYPE_UNSUPPORTED: &str = "E_GUARDRAIL_TYPE_UNSUPPORTED";
    pub const E_GUARDRAIL_REF_REQUIRED: &str = "E_GUARDRAIL_REF_REQUIRED";
    pub const E_GUARDRAIL_REF_UNKNOWN: &str = "E_GUARDRAIL_REF_UNKNOWN";
    pub const E_GUARDRAIL_PATTERN_INVALID: &str = "E_GUARDRAIL_PATTERN_INVALID";
    pub const W_GUARDRAIL_NEVER_MATCHES: &str = "W_GUARDRAIL_NEVER_MATCHES";
    pub const W_GUARDRAIL_FIELD_IGNORED: &str = "W_GUARDRAIL_FIELD_IGNORED";
    pub const W_GUARDRAIL_STAGE_IGNORED: &str = "W_GUARDRAIL_STAGE_IGNORED";
    pub const I_GUARDRAIL_AGENT_TARGET_ONLY: &str = "I_GUARDRAIL_AGENT_TARGET_ONLY";
    pub const E_MEMORY_POLICY_REQUIRED: &str = "E_MEMORY_POLICY_REQUIRED";
    pub const E_MEMORY_POLICY_UNKNOWN: &str = "E_MEMORY_POLICY_UNKNOWN";
    pub const E_MEMORY_REF_REQUIRED: &str = "E_MEMORY_REF_REQUIRED";
    pub const E_MEMORY_REF_UNKNOWN: &str = "E_MEMORY_REF_UNKNOWN";
    pub const W_MEMORY_FIELD_IGNORED: &str = "W_MEMORY_FIELD_IGNORED";
    pub const E_TOOL_NO_BACKING: &str = "E_TOOL_NO_BACKING";
    pub const E_TOOL_MULTIPLE_BACKINGS: &str = "E_TOOL_MULTIPLE_BACKINGS";
    pub const E_TOOL_IMPLEMENTATION_UNKNOWN: &str = "E_TOOL_IMPLEMENTATION_UNKNOWN";
    pub const E_UNSAFE_TOOL_IMPORT: &str = "E_UNSAFE_TOOL_IMPORT";
    pub const E_AGENT_TOOL_UNKNOWN_AGENT: &str = "E_AGENT_TOOL_UNKNOWN_AGENT";
    pub const W_AGENT_TOOL_PARAMETERS_IGNORED: &str = "W_AGENT_TOOL_PARAMETERS_IGNORED";
    pub const E_COMMAND_EMPTY: &str = "E_COMMAND_EMPTY";
    pub const W_ENV_WITHOUT_COMMAND: &str = "W_ENV_WITHOUT_COMMAND";
    pub const E_MCP_MISSING_FIELD: &str = "E_MCP_MISSING_FIELD";
    pub const E_MCP_TOOL_NO_SERVER: &str = "E_MCP_TOOL_NO_SERVER";
    pub const E_MCP_UNKNOWN_SERVER: &str = "E_MCP_UNKNOWN_SERVER";
    pub const W_MCP_TLS_VERIFY_DISABLED: &str = "W_MCP_TLS_VERIFY_DISABLED";
    pub const W_MCP_INLINE_CLIENT_KEY: &str = "W_MCP_INLINE_CLIENT_KEY";
    pub const W_MCP_FIELD_IGNORED: &str = "W_MCP_FIELD_IGNORED";
    pub const E_FUNCTION_NO_BACKING: &str = "E_FUNCTION_NO_BACKING";
    pub const E_FUNCTION_MULTIPLE_BACKINGS: &str = "E_FUNCTION_MULTIPLE_BACKINGS";
    pub const E_FUNCTION_UNKNOWN: &str = "E_FUNCTION_UNKNOWN";
    pub const E_UNSAFE_FUNCTION_IMPORT: &str = "E_UNSAFE_FUNCTION_IMPORT";
    pub const E_HUMAN_TIMEOUT_INVALID: &str = "E_HUMAN_TIMEOUT_INVALID";
    pub const E_HUMAN_SELECTION_REQUIRES_OPTIONS: &str = "E_HUMAN_SELECTION_REQUIRES_OPTIONS";
    pub const E_HUMAN_DEFAULT_OPTION_NOT_IN_OPTIONS: &str = "E_HUMAN_DEFAULT_OPTION_NOT_IN_OPTIONS";
    pub const E_HUMAN_OPTIONS_DUPLICATE: &str = "E_HUMAN_OPTIONS_DUPLICATE";
    pub const W_HUMAN_RESPONSE_ROLE_SYSTEM: &str = "W_HUMAN_RESPONSE_ROLE_SYSTEM";
    pub const E_WORKFLOW_STEPS_REQUIRED: &str = "E_WORKFLOW_STEPS_REQUIRED";
    pub const E_WORKFLOW_PARTICIPANTS_REQUIRED: &str = "E_WORKFLOW_PARTICIPANTS_REQUIRED";
    pub const E_STEP_DUPLICATE_ID: &str = "E_STEP_DUPLICATE_ID";
    pub const E_PARTICIPANT_DUPLICATE_ID: &str = "E_PARTICIPANT_DUPLICATE_ID";
    pub const E_STEP_AGENT_REF: &str = "E_STEP_AGENT_REF";
    pub const E_STEP_FUNCTION_REF: &str = "E_STEP_FUNCTION_REF";
    pub const E_STEP_HUMAN_REF: &str = "E_STEP_HUMAN_REF";
    pub const E_STEP_WORKFLOW_REF: &str = "E_STEP_WORKFLOW_REF";
    pub const E_STEP_WORKFLOW_SELF_REF: &str = "E_STEP_WORKFLOW_SELF_REF";
    pub const E_STEP_WORKFLOW_NESTED_HUMAN: &str = "E_STEP_WORKFLOW_NESTED_HUMAN";
    pub const E_STEP_FALLBACK_REF: &str = "E_STEP_FALLBACK_REF";
    pub const E_STEP_FALLBACK_UNKNOWN: &str = "E_STEP_FALLBACK_UNKNOWN";
    pub const E_STEP_FALLBACK_HUMAN: &str = "E_STEP_FALLBACK_HUMAN";
    pub const W_STEP_FALLBACK_DISABLED: &str = "W_STEP_FALLBACK_DISABLED";
    pub const W_STEP_FALLBACK_UNUSED: &str = "W_STEP_FALLBACK_UNUSED";
    pub const W_STEP_RETRY_WITHOUT_BUDGET: &str = "W_STEP_RETRY_WITHOUT_BUDGET";
    pub const E_STEP_TIMEOUT_INVALID: &str = "E_STEP_TIMEOUT_INVALID";
    pub const E_STEP_MAX_RETRIES_INVALID: &str = "E_STEP_MAX_RETRIES_INVALID";
    pub const E_GRAPH_MAX_STEPS: &str = "E_GRAPH_MAX_STEPS";
    pub const E_GRAPH_START: &str = "E_GRAPH_START";
    pub const E_GRAPH_START_UNKNOWN: &str = "E_GRAPH_START_UNKNOWN";
    pub const E_GRAPH_START_DISABLED: &str = "E_GRAPH_START_DISABLED";
    pub const E_GRAPH_EDGE_FROM: &str = "E_GRAPH_EDGE_FROM";
    pub const E_GRAPH_EDGE_TO: &str = "E_GRAPH_EDGE_TO";
    pub const W_GRAPH_NODE_ID_MISMATCH: &str = "W_GRAPH_NODE_ID_MISMATCH";
    pub const W_GRAPH_NODE_UNREACHABLE: &str = "W_GRAPH_NODE_UNREACHABLE";
    pub const E_GRAPH_NODE_FALLBACK_REF: &str = "E_GRAPH_NODE_FALLBACK_REF";
    pub const E_GRAPH_NODE_FALLBACK_UNKNOWN: &str = "E_GRAPH_NODE_FALLBACK_UNKNOWN";
    pub const E_GRAPH_NODE_FALLBACK_DISABLED: &str = "E_GRAPH_NODE_FALLBACK_DISABLED";
    pub const E_GRAPH_FALLBACK_HUMAN: &str = "E_GRAPH_FALLBACK_HUMAN";
    pub const E_CONDITION_VALUE: &str = "E_CONDITION_VALUE";
    pub const E_CONDITION_KEY: &str = "E_CONDITION_KEY";
    pub const E_CONDITION_CHILDREN: &str = "E_CONDITION_CHILDREN";
    pub const E_CONDITION_CHILD: &str = "E_CONDITION_CHILD";
    pub const W_CONDITION_FIELD_IGNORED: &str = "W_CONDITION_FIELD_IGNORED";
    pub const W_CONDITION_VARIABLES_UNSET: &str = "W_CONDITION_VARIABLES_UNSET";
    pub const E_PARTICIPANT_FALLBACK_UNSUPPORTED: &str = "E_PARTICIPANT_FALLBACK_UNSUPPORTED";
    pub const E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED: &str =
        "E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED";
    pub const E_HANDOFF_SELECTOR_REF: &str = "E_HANDOFF_SELECTOR_REF";
    pub const E_GROUP_CHAT_ROUNDS: &str = "E_GROUP_CHAT_ROUNDS";
    pub const W_WORKFLOW_FIELD_IGNORED: &str = "W_WORKFLOW_FIELD_IGNORED";
    pub const E_BUILD_CYCLE: &str = "E_BUILD_CYCLE";
    pub const W_TOOL_POLICY_UNRESTRICTED: &str = "W_TOOL_POLICY_UNRESTRICTED";
    pub const W_TOOL_NETWORK_UNRESTRICTED: &str = "W_TOOL_NETWORK_UNRESTRICTED";
    pub const W_TOOL_SHELL_ALLOWED: &str = "W_TOOL_SHELL_ALLOWED";
    pub const W_TOOL_FILESYSTEM_WRITE_ALLOWED: &str = "W_TOOL_FILESYSTEM_WRITE_ALLOWED";
    pub const W_TOOL_FILESYSTEM_READ_ALLOWED: &str = "W_TOOL_FILESYSTEM_READ_ALLOWED";
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
    let migrated = match migrate(value) {
        Ok(migrated) => migrated,
        Err(unsupported) => {
            // kneo-serv refuses the document before reading it; so does kneo.
            return Validation {
                diagnostics: vec![
                    Diagnostic::error(codes::E_SPEC_VERSION, "version", unsupported.to_string())
                        .suggest("Write 'version: v1' (or leave it out for a v0 document)."),
                ],
                spec: None,
            };
        }
    };
    let mut document = migrated.document;
    super::shorthand::expand(&mut document);
    let schema = read_spec(&document, migrated.source_version);
    let mut diagnostics = schema.diagnostics;
    let Some(spec) = schema.spec else {
        return Validation {
            diagnostics,
            spec: None,
        };
    };
    components::check(&spec, catalog, &mut diagnostics);
    policy_blocks::check(&spec, !schema.guardrails_incomplete, &mut diagnostics);
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
