//! Specs: `validate`, `compile`, `explain`, `graph` and `policy-report` for a spec given inline or
//! by path (with `environment`, `overlays` and `overrides`). `POST /v1/specs/run` is in
//! [`super::runs`], since it creates a run.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{BodyLimits, ObjectReader, QueryParams, read_json_object};
use super::spec_request::SpecFields;
use crate::app::AppState;
use crate::platform::specs::SpecRequest;

/// The message validate and the policy report give when no spec was sent.
const NO_SPEC_VALIDATE: &str = "Either spec or spec_path is required.";
/// The message compile, explain and graph give when no spec was sent.
const NO_SPEC_COMPILE: &str = "Either spec_path or spec must be provided.";

/// Checks the scope and the query, and reads the body's object.
async fn read_request(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<ObjectReader, ApiError> {
    principal.require("specs:read")?;
    QueryParams::parse(query, &[])?;
    let fields = read_json_object(headers, body, BodyLimits::of(&state.config)).await?;
    Ok(ObjectReader::new(fields))
}

/// Reads a body of only the shared spec fields.
fn spec_only(
    state: &AppState,
    mut reader: ObjectReader,
    missing: &str,
) -> Result<SpecRequest, ApiError> {
    let fields = SpecFields::read(&mut reader, &state.config.limits);
    reader.finish()?;
    fields.into_request(missing)
}

/// `POST /v1/specs/validate`: `{valid, diagnostics}`; never gated by an environment policy.
pub async fn validate(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let reader = read_request(&state, &principal, &headers, query.as_deref(), body).await?;
    let request = spec_only(&state, reader, NO_SPEC_VALIDATE)?;
    let validation = state
        .platform
        .validate_spec_request(&request, &principal.name)
        .await?;
    Ok(Json(
        json!({"valid": validation.valid(), "diagnostics": validation.diagnostics}),
    ))
}

/// `POST /v1/specs/compile`: `{ok, diagnostics, summary}`; `strict: false` reports semantic
/// errors instead of refusing.
pub async fn compile(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let mut reader = read_request(&state, &principal, &headers, query.as_deref(), body).await?;
    let fields = SpecFields::read(&mut reader, &state.config.limits);
    let strict = reader.optional_bool("strict").unwrap_or(true);
    reader.finish()?;
    let request = fields.into_request(NO_SPEC_COMPILE)?;
    let outcome = state
        .platform
        .compile_spec(&request, strict, &principal.name)
        .await?;
    Ok(Json(json!({
        "ok": outcome.ok,
        "diagnostics": outcome.diagnostics,
        "summary": {
            "has_root_agent": outcome.has_root_agent,
            "has_root_workflow": outcome.has_root_workflow,
            "component_agents": outcome.component_agents,
        },
    })))
}

/// `POST /v1/specs/explain`: the root agent, root workflow and component agents.
pub async fn explain(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let reader = read_request(&state, &principal, &headers, query.as_deref(), body).await?;
    let request = spec_only(&state, reader, NO_SPEC_COMPILE)?;
    let explanation = state
        .platform
        .explain_spec(&request, &principal.name)
        .await?;
    Ok(Json(json!({
        "summary": {
            "root_agent": explanation.root_agent,
            "root_workflow": explanation.root_workflow,
            "component_agents": explanation.component_agents,
        },
    })))
}

/// `POST /v1/specs/graph`: the workflow's nodes and edges.
pub async fn graph(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let reader = read_request(&state, &principal, &headers, query.as_deref(), body).await?;
    let request = spec_only(&state, reader, NO_SPEC_COMPILE)?;
    let topology = state.platform.graph_spec(&request, &principal.name).await?;
    Ok(Json(Value::Object(topology.to_json())))
}

/// `POST /v1/specs/policy-report`: `{valid, report}`; `valid` is schema validity only.
pub async fn policy_report(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let reader = read_request(&state, &principal, &headers, query.as_deref(), body).await?;
    let request = spec_only(&state, reader, NO_SPEC_VALIDATE)?;
    let report = state
        .platform
        .policy_report_for_spec(&request, &principal.name)
        .await?;
    Ok(Json(json!({"valid": report["valid"], "report": report})))
}
