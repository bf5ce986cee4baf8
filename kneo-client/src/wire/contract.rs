//! The request and response bodies of every route, named as kneo-serv 1.2's OpenAPI document
//! names them (`RunCreateRequest`, `SpecCompileResponse`, …), so the server's own document
//! (`GET /openapi.json`, built from these types with the `openapi` feature) describes the same
//! contract field for field.
//!
//! Free-form parts (run metadata, checkpoint states, policy reports) are JSON objects here, as
//! they are in kneo-serv's document; the typed readers of this crate ([`super::runs`], …) parse
//! the parts a client looks into.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Declares wire structs with serde and, with the `openapi` feature, `ToSchema`.
macro_rules! wire {
    ($($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* })*) => {
        $(
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
            $(#[$meta])*
            pub struct $name { $($body)* }
        )*
    };
}

fn workflow_target() -> String {
    "workflow".into()
}

fn yes() -> bool {
    true
}

wire! {
    /// `skills` of a run: enable declared skills, disable selected ones.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct SkillsOverlay {
        #[serde(default)]
        pub add: Vec<String>,
        #[serde(default)]
        pub disable: Vec<String>,
    }

    /// `POST /v1/runs` and `POST /v1/specs/run`.
    #[serde(deny_unknown_fields)]
    pub struct RunCreateRequest {
        pub input: String,
        #[serde(default)]
        pub spec_path: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub spec: Option<Map<String, Value>>,
        /// `agent` or `workflow`.
        #[serde(default = "workflow_target")]
        pub target: String,
        #[serde(default)]
        pub environment: Option<String>,
        #[serde(default)]
        pub overlays: Vec<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub overrides: Map<String, Value>,
        #[serde(default)]
        pub skills: Option<SkillsOverlay>,
        #[serde(default)]
        pub async_mode: bool,
        #[serde(default)]
        pub session_id: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub metadata: Map<String, Value>,
    }

    /// The answer of a create, a continue or a resume that ran the run.
    pub struct RunCreateResponse {
        pub run_id: Option<String>,
        pub status: String,
        #[serde(default)]
        pub output_text: Option<String>,
        #[serde(default)]
        pub human_intervention_required: bool,
        #[serde(default)]
        pub continuation_id: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub metadata: Map<String, Value>,
    }

    /// Token usage of a run.
    pub struct RunUsage {
        pub input_tokens: u64,
        pub output_tokens: u64,
        pub total_tokens: u64,
    }

    /// `GET /v1/runs/{id}`, `POST /v1/runs/{id}/cancel`.
    pub struct RunStatusResponse {
        pub run_id: String,
        pub status: String,
        pub agent_name: Option<String>,
        pub workflow_name: Option<String>,
        pub workflow_kind: Option<String>,
        pub session_id: Option<String>,
        pub input_text: Option<String>,
        pub output_text: Option<String>,
        pub current_step_index: Option<i64>,
        pub current_node_id: Option<String>,
        pub visited_steps: Vec<String>,
        pub visited_nodes: Vec<String>,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub pending_human_request: Option<Value>,
        pub continuation_id: Option<String>,
        pub trace_event_count: i64,
        /// kneo: events cut by `KNEO_SERV_TRACE_MAX_EVENTS`.
        pub trace_dropped: i64,
        pub usage: Option<RunUsage>,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub metadata: Map<String, Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub error: Option<Value>,
        pub created_at: Option<String>,
        pub updated_at: Option<String>,
        pub started_at: Option<String>,
        pub completed_at: Option<String>,
        pub deadline_at: Option<String>,
    }

    /// `GET /v1/runs`.
    pub struct RunListResponse {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub runs: Vec<Value>,
        pub count: u64,
        pub total: u64,
        pub window: Option<u64>,
        pub limit: u64,
        pub offset: u64,
        pub sort_by: Option<String>,
        pub sort_order: String,
    }

    /// `GET /v1/runs/{id}/trace`.
    pub struct TraceResponse {
        pub run_id: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub events: Vec<Value>,
        pub count: u64,
        pub total: u64,
        pub window: Option<u64>,
        pub limit: u64,
        pub offset: u64,
        pub sort_by: Option<String>,
        pub sort_order: String,
        pub dropped: i64,
        pub complete: bool,
    }

    /// `GET /v1/runs/{id}/checkpoints`.
    pub struct CheckpointListResponse {
        pub run_id: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub checkpoints: Vec<Value>,
        pub count: u64,
        pub total: u64,
        pub window: Option<u64>,
        pub limit: u64,
        pub offset: u64,
        pub sort_by: Option<String>,
        pub sort_order: String,
    }

    /// `GET /v1/runs/{id}/checkpoints/diff`.
    pub struct CheckpointDiffResponse {
        pub run_id: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub from_checkpoint: Value,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub to_checkpoint: Value,
        pub change_count: u64,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub added: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub removed: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub changed: Vec<Value>,
        pub truncated: bool,
    }

    /// `GET /v1/runs/{id}/recovery`.
    pub struct RunRecoveryResponse {
        pub run_id: String,
        pub status: String,
        pub workflow_name: Option<String>,
        pub workflow_kind: Option<String>,
        pub current_step_index: Option<i64>,
        pub current_node_id: Option<String>,
        pub visited_steps: Vec<String>,
        pub visited_nodes: Vec<String>,
        pub checkpoint_count: u64,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub pending_human_request: Option<Value>,
        pub continuation_id: Option<String>,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub error: Option<Value>,
        /// kneo: the run's queue record.
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub queue: Option<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub replay_context: Value,
    }

    /// `GET /v1/runs/{id}/replay`.
    pub struct RunReplayResponse {
        pub run_id: String,
        pub status: String,
        pub workflow_name: Option<String>,
        pub workflow_kind: Option<String>,
        pub agent_name: Option<String>,
        pub checkpoint_count: u64,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub timeline: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub replay_context: Value,
    }

    /// `GET /v1/runs/{id}/graph`.
    pub struct RunGraphResponse {
        pub run_id: String,
        pub status: String,
        pub workflow_name: Option<String>,
        pub workflow_kind: Option<String>,
        pub start: Option<String>,
        pub max_steps: Option<u64>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub nodes: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub edges: Vec<Value>,
        pub current: Option<String>,
        pub visited: Vec<String>,
    }

    /// `POST /v1/specs/validate`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct SpecValidateRequest {
        #[serde(default)]
        pub spec_path: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub spec: Option<Map<String, Value>>,
        #[serde(default)]
        pub environment: Option<String>,
        #[serde(default)]
        pub overlays: Vec<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub overrides: Map<String, Value>,
    }

    /// `POST /v1/specs/validate` answer.
    pub struct SpecValidateResponse {
        pub valid: bool,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub diagnostics: Vec<Value>,
    }

    /// `POST /v1/specs/compile`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct SpecCompileRequest {
        #[serde(default)]
        pub spec_path: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub spec: Option<Map<String, Value>>,
        #[serde(default)]
        pub environment: Option<String>,
        #[serde(default)]
        pub overlays: Vec<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub overrides: Map<String, Value>,
        /// Off: semantic errors are reported (`ok: false`) instead of refused.
        #[serde(default = "yes")]
        pub strict: bool,
    }

    /// `POST /v1/specs/compile` answer.
    pub struct SpecCompileResponse {
        pub ok: bool,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub diagnostics: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub summary: Value,
    }

    /// `POST /v1/specs/explain`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct SpecExplainRequest {
        #[serde(default)]
        pub spec_path: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub spec: Option<Map<String, Value>>,
        #[serde(default)]
        pub environment: Option<String>,
        #[serde(default)]
        pub overlays: Vec<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub overrides: Map<String, Value>,
    }

    /// `POST /v1/specs/explain` answer.
    pub struct SpecExplainResponse {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub summary: Value,
    }

    /// `POST /v1/specs/graph`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct SpecGraphRequest {
        #[serde(default)]
        pub spec_path: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub spec: Option<Map<String, Value>>,
        #[serde(default)]
        pub environment: Option<String>,
        #[serde(default)]
        pub overlays: Vec<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub overrides: Map<String, Value>,
    }

    /// `POST /v1/specs/graph` answer.
    pub struct SpecGraphResponse {
        pub workflow_name: Option<String>,
        pub workflow_kind: Option<String>,
        pub start: Option<String>,
        pub max_steps: Option<u64>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub nodes: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub edges: Vec<Value>,
    }

    /// `POST /v1/specs/policy-report`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct SpecPolicyReportRequest {
        #[serde(default)]
        pub spec_path: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub spec: Option<Map<String, Value>>,
        /// Accepted and not used: the report judges the spec itself.
        #[serde(default)]
        pub environment: Option<String>,
        #[serde(default)]
        pub overlays: Vec<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub overrides: Map<String, Value>,
    }

    /// The policy report of a spec or of a run's spec.
    pub struct SpecPolicyReportResponse {
        pub valid: bool,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub report: Value,
    }

    /// `GET /v1/skills`.
    pub struct SkillsListResponse {
        pub skills: Vec<SkillEntry>,
        pub count: u64,
        pub total: u64,
        pub window: Option<u64>,
        pub limit: u64,
        pub offset: u64,
        pub sort_by: Option<String>,
        pub sort_order: String,
    }

    /// One bundle of the skills catalog.
    pub struct SkillEntry {
        pub name: String,
        pub description: String,
        /// Relative to the root it was found under.
        pub path: String,
    }

    /// One secret of the credential inventory: never its value.
    pub struct CredentialEntry {
        pub name: String,
        pub env_var: String,
        pub present: bool,
        /// `[REDACTED]` when present, `null` when missing.
        pub value: Option<String>,
        /// `present` or `missing`.
        pub status: String,
        pub expires_at: Option<String>,
        pub last_checked: Option<String>,
    }

    /// The sections of the credential inventory.
    #[derive(Default)]
    pub struct CredentialInventory {
        #[serde(default)]
        pub providers: BTreeMap<String, CredentialEntry>,
        #[serde(default)]
        pub extra: BTreeMap<String, CredentialEntry>,
        #[serde(default)]
        pub service_tokens: BTreeMap<String, CredentialEntry>,
    }

    /// `GET /v1/security/credentials`.
    pub struct CredentialInventoryResponse {
        pub inventory: CredentialInventory,
    }

    /// `PUT` and `POST .../preview` of `/v1/policies/environment/{environment}`.
    #[serde(deny_unknown_fields)]
    pub struct EnvironmentPolicyRequest {
        #[serde(default = "yes")]
        pub enabled: bool,
        #[serde(default)]
        pub fail_on_warnings: bool,
        #[serde(default)]
        pub blocked_diagnostic_codes: Vec<String>,
        #[serde(default)]
        pub require_human_review: bool,
        #[serde(default)]
        pub require_tool_permissions: bool,
        #[serde(default)]
        pub deny_unrestricted_tools: bool,
        #[serde(default)]
        pub require_guardrails: bool,
    }

    /// One environment's policy (and, after a `PUT`, the one it replaced).
    pub struct EnvironmentPolicyResponse {
        pub environment: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub policy: Option<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub previous_policy: Option<Value>,
    }

    /// `GET /v1/policies/environment`.
    pub struct EnvironmentPolicyListResponse {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub policies: Map<String, Value>,
        pub count: u64,
    }

    /// `POST /v1/policies/environment/{environment}/preview`.
    pub struct EnvironmentPolicyPreviewResponse {
        pub environment: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub diff: Map<String, Value>,
        pub affected_run_ids: Vec<String>,
        pub newly_blocking: Vec<String>,
        pub runs_evaluated: u64,
    }

    /// `POST /v1/human-tasks/{id}/resume`.
    pub struct HumanResumeRequest {
        pub request_id: String,
        pub decision: String,
        #[serde(default)]
        pub content: Option<String>,
        #[serde(default)]
        pub selected_option: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub metadata: Map<String, Value>,
    }

    /// `POST /v1/human-tasks/{id}/resume` answer.
    pub struct HumanResumeResponse {
        pub run_id: Option<String>,
        pub status: String,
        pub output_text: Option<String>,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub metadata: Map<String, Value>,
    }

    /// `GET /v1/human-tasks`.
    pub struct HumanTaskListResponse {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub tasks: Vec<Value>,
        pub count: u64,
        pub total: u64,
        pub window: Option<u64>,
        pub limit: u64,
        pub offset: u64,
        pub sort_by: Option<String>,
        pub sort_order: String,
    }

    /// `GET /v1/human-tasks/{id}`.
    pub struct HumanTaskResponse {
        pub continuation_id: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub request: Option<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
        pub messages: Option<Vec<Value>>,
    }

    /// `GET /v1/audit-events`.
    pub struct AuditEventListResponse {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub events: Vec<Value>,
        pub count: u64,
        pub total: u64,
        pub window: Option<u64>,
        pub limit: u64,
        pub offset: u64,
        pub sort_by: Option<String>,
        pub sort_order: String,
    }

    /// `/healthz`, `/livez`, `/readyz`.
    pub struct HealthResponse {
        pub ok: bool,
        pub service: String,
        pub version: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub metadata: Value,
    }

    /// The `detail` of an error: a stable `error` code, a `message`, and context keys.
    pub struct ErrorDetail {
        pub error: String,
        pub message: String,
        /// Context keys beside `error` and `message` (`required_scope`, `run_id`, …); the
        /// schema leaves additional properties open for them.
        #[serde(flatten)]
        #[cfg_attr(feature = "openapi", schema(ignore))]
        pub context: Map<String, Value>,
    }

    /// Every error but request-shape problems.
    pub struct ErrorResponse {
        pub detail: ErrorDetail,
    }

    /// One problem of a request's shape.
    pub struct ValidationError {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub loc: Vec<Value>,
        pub msg: String,
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub input: Option<Value>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub ctx: Option<Value>,
    }

    /// A request whose shape is wrong (`422` with a list).
    #[allow(clippy::upper_case_acronyms)]
    pub struct HTTPValidationError {
        pub detail: Vec<ValidationError>,
    }
}
