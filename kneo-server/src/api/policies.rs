//! Environment policies: list, get, put (`policies:write`) and preview a candidate
//! (`/v1/policies/environment[/{environment}[/preview]]`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::{ApiError, ValidationIssue};
use super::input::{BodyLimits, ObjectReader, QueryParams, read_json_object};
use super::spec_request::MAX_ENVIRONMENT_CHARS;
use crate::app::AppState;
use crate::platform::environment_policy::EnvironmentPolicy;

/// The `{environment}` path segment: 1 to 128 characters.
fn environment_name(environment: String) -> Result<String, ApiError> {
    let length = environment.chars().count();
    if length == 0 || length > MAX_ENVIRONMENT_CHARS {
        let (kind, msg, ctx) = if length == 0 {
            (
                "string_too_short",
                "String should have at least 1 character".to_string(),
                json!({"min_length": 1}),
            )
        } else {
            (
                "string_too_long",
                format!("String should have at most {MAX_ENVIRONMENT_CHARS} characters"),
                json!({"max_length": MAX_ENVIRONMENT_CHARS}),
            )
        };
        return Err(ApiError::validation(vec![ValidationIssue {
            kind,
            loc: vec![json!("path"), json!("environment")],
            msg,
            input: Some(json!(environment)),
            ctx: Some(ctx),
        }]));
    }
    Ok(environment)
}

/// Reads an `EnvironmentPolicyRequest`: the seven fields, each optional, nothing else.
async fn read_policy(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<EnvironmentPolicy, ApiError> {
    let fields = read_json_object(headers, body, BodyLimits::of(&state.config)).await?;
    let mut reader = ObjectReader::new(fields);
    let defaults = EnvironmentPolicy::default();
    let flag = |reader: &mut ObjectReader, name: &str, default: bool| {
        reader.optional_bool(name).unwrap_or(default)
    };
    let policy = EnvironmentPolicy {
        enabled: flag(&mut reader, "enabled", defaults.enabled),
        fail_on_warnings: flag(&mut reader, "fail_on_warnings", defaults.fail_on_warnings),
        blocked_diagnostic_codes: reader
            .optional_string_list("blocked_diagnostic_codes")
            .unwrap_or_default(),
        require_human_review: flag(&mut reader, "require_human_review", false),
        require_tool_permissions: flag(&mut reader, "require_tool_permissions", false),
        deny_unrestricted_tools: flag(&mut reader, "deny_unrestricted_tools", false),
        require_guardrails: flag(&mut reader, "require_guardrails", false),
    };
    reader.finish()?;
    Ok(policy)
}

/// `GET /v1/policies/environment`: `{policies: {environment: policy}, count}`.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("policies:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let policies = state.platform.environment_policies().await?;
    Ok(Json(json!({"count": policies.len(), "policies": policies})))
}

/// `GET /v1/policies/environment/{environment}`: the stored policy, `null` when there is none.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(environment): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("policies:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let environment = environment_name(environment)?;
    let policy = state.platform.environment_policy(&environment).await?;
    Ok(Json(json!({
        "environment": environment,
        "policy": policy.as_ref().map(EnvironmentPolicy::to_json),
        "previous_policy": null,
    })))
}

/// `PUT /v1/policies/environment/{environment}`: stores the policy, audited as `policy.changed`.
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    Path(environment): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require("policies:write")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let environment = environment_name(environment)?;
    let policy = read_policy(&state, &headers, body).await?;
    let change = state
        .platform
        .put_environment_policy(&environment, &policy, &principal.name)
        .await?;
    Ok(Json(json!({
        "environment": environment,
        "policy": change.current,
        "previous_policy": change.previous,
    })))
}

/// `POST /v1/policies/environment/{environment}/preview`: what the candidate would change.
pub async fn preview(
    State(state): State<AppState>,
    principal: Principal,
    Path(environment): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require("policies:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let environment = environment_name(environment)?;
    let candidate = read_policy(&state, &headers, body).await?;
    let preview = state
        .platform
        .preview_environment_policy(&environment, &candidate)
        .await?;
    Ok(Json(json!({
        "environment": environment,
        "diff": preview.diff,
        "affected_run_ids": preview.affected_run_ids,
        "newly_blocking": preview.newly_blocking,
        "runs_evaluated": preview.runs_evaluated,
    })))
}
