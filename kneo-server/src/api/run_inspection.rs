//! Read-only views of one run: `replay`, `recovery`, `graph`, `policy-report` and
//! `checkpoints/diff` (all `runs:read`).

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{PathId, QueryParams};
use crate::app::AppState;

/// `GET /v1/runs/{id}/replay`: a timeline of the run's checkpoints and its replay context.
pub async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    Ok(Json(state.platform.replay_view(&run_id).await?))
}

/// `GET /v1/runs/{id}/recovery`: where the run stands and whether `/continue` can take it.
pub async fn recovery(
    State(state): State<AppState>,
    principal: Principal,
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    Ok(Json(state.platform.recovery_view(&run_id).await?))
}

/// `GET /v1/runs/{id}/graph`: the workflow of the run's spec with its current and visited nodes.
pub async fn graph(
    State(state): State<AppState>,
    principal: Principal,
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let graph = state.platform.run_graph(&run_id).await?;
    let mut body = serde_json::Map::new();
    body.insert("run_id".into(), json!(graph.run.id));
    body.insert("status".into(), json!(graph.run.status.as_str()));
    body.extend(graph.topology.to_json());
    body.insert("current".into(), json!(graph.current));
    body.insert("visited".into(), json!(graph.visited));
    Ok(Json(Value::Object(body)))
}

/// `GET /v1/runs/{id}/policy-report`: the policy report of the spec the run was started with.
pub async fn policy_report(
    State(state): State<AppState>,
    principal: Principal,
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let report = state
        .platform
        .policy_report_for_run(&run_id, &principal.name)
        .await?;
    Ok(Json(json!({"valid": report["valid"], "report": report})))
}

/// `GET /v1/runs/{id}/checkpoints/diff?from_sequence=&to_sequence=`.
pub async fn checkpoints_diff(
    State(state): State<AppState>,
    principal: Principal,
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    let params = QueryParams::parse(query.as_deref(), &["from_sequence", "to_sequence"])?;
    let from = params.optional_integer("from_sequence", 1)?;
    let to = params.optional_integer("to_sequence", 1)?;
    Ok(Json(
        state.platform.checkpoint_diff(&run_id, from, to).await?,
    ))
}
