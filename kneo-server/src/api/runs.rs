//! Runs: create (sync 200 / async 202), list, get, cancel, continue, trace, checkpoints, recovery.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{ObjectReader, QueryParams, page_fields, parse_json_object, read_body};
use crate::app::AppState;
use crate::engine::executor::expand_checkpoint;
use crate::platform::specs::SpecSource;
use crate::platform::{CreateRun, idempotency, responses};
use crate::store::{CheckpointQuery, RunQuery, RunSort, RunStatus, SortOrder, TraceQuery};

const NO_PARAMETERS: &[&str] = &[];

/// Reads and checks a `RunCreateRequest` body.
fn read_create_request(
    state: &AppState,
    fields: Map<String, Value>,
) -> Result<CreateRun, ApiError> {
    let limits = &state.config.limits;
    let mut reader = ObjectReader::new(fields);
    let input = reader.required_string("input", Some(limits.max_input_chars));
    let spec = reader.optional_object("spec", Some(limits.max_inline_spec_bytes));
    let spec_path = reader.optional_string("spec_path", Some(limits.max_path_chars));
    let target = reader
        .optional_choice("target", &["agent", "workflow"])
        .unwrap_or_else(|| "workflow".into());
    let environment = reader.optional_string("environment", Some(128));
    let overlays = reader.optional_string_list("overlays").unwrap_or_default();
    let overrides = reader
        .optional_object("overrides", Some(limits.max_overrides_bytes))
        .unwrap_or_default();
    let metadata = reader
        .optional_object("metadata", Some(limits.max_metadata_bytes))
        .unwrap_or_default();
    let async_mode = reader.optional_bool("async_mode").unwrap_or(false);
    let skills = reader.optional_value("skills");
    reader.finish()?;
    if !overlays.is_empty() {
        return Err(ApiError::invalid_request(
            "overlays are not supported by this kneo build; merge them into the spec.",
        ));
    }
    let source = match (spec, spec_path) {
        (Some(spec), None) => SpecSource::Inline(Value::Object(spec)),
        (None, Some(path)) => SpecSource::Path(path),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "Give either `spec` or `spec_path`, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid_request(
                "A run needs a spec: give `spec_path` (relative to the spec root) or an inline `spec`.",
            ));
        }
    };
    Ok(CreateRun {
        input,
        source,
        target,
        environment,
        overlays,
        overrides,
        metadata,
        async_mode,
        skills,
    })
}

/// Runs `work` under the request's `Idempotency-Key`, if it sent one.
pub async fn with_idempotency<F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    caller: &str,
    scope: &str,
    payload: &Value,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(key) = idempotency::key_from(headers)? else {
        let (status, body) = work().await?;
        return Ok((status, Json(body)).into_response());
    };
    // Keys belong to their caller: two clients that happen to pick the same key and payload
    // must not receive each other's stored answers.
    let key = format!("{caller}/{key}");
    let store = state.stores.runs.as_ref();
    let admission = match idempotency::admit(
        store,
        scope,
        &key,
        payload,
        state.config.idempotency_lock_ttl,
    )
    .await
    {
        Ok(admission) => admission,
        Err(error) => {
            idempotency::audit_conflict(store, caller, scope, &error).await;
            return Err(error);
        }
    };
    match admission {
        idempotency::Admission::Replay { status, body } => Ok((status, Json(body)).into_response()),
        idempotency::Admission::Proceed => match work().await {
            Ok((status, body)) => {
                idempotency::complete(store, scope, &key, status, &body).await;
                Ok((status, Json(body)).into_response())
            }
            Err(error) => {
                idempotency::abandon(store, scope, &key).await;
                Err(error)
            }
        },
    }
}

async fn create_with_scope(
    state: AppState,
    principal: Principal,
    headers: HeaderMap,
    query: Option<String>,
    body: Body,
    scope: &str,
) -> Result<Response, ApiError> {
    principal.require("runs:write")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let bytes = read_body(body, state.config.limits.max_body_bytes).await?;
    let fields = parse_json_object(&bytes)?;
    let payload = Value::Object(fields.clone());
    let request = read_create_request(&state, fields)?;
    let platform = state.platform.clone();
    let actor = principal.name.clone();
    with_idempotency(
        &state,
        &headers,
        &principal.name,
        scope,
        &payload,
        || async move { platform.create_run(request, &actor).await },
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    create_with_scope(state, principal, headers, query, body, "runs:create").await
}

/// `POST /v1/specs/run`: the same as creating a run (and the same `runs:write` scope).
pub async fn create_from_specs_run(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    create_with_scope(state, principal, headers, query, body, "specs:run").await
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &["status", "limit", "offset", "sort_by", "sort_order"],
    )?;
    let status = match params.get("status") {
        None | Some("") => None,
        // `queued` names the queue record's status; the run row of a queued run is `created`.
        Some("queued") => Some(RunStatus::Created),
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            ApiError::validation(vec![super::error::ValidationIssue {
                kind: "enum",
                loc: vec![json!("query"), json!("status")],
                msg: format!(
                    "Input should be one of {}",
                    RunStatus::ALL.map(RunStatus::as_str).join(", ")
                ),
                input: Some(json!(text)),
            }])
        })?),
    };
    let (page, sort_by) = params.page(&RunSort::NAMES, "updated_at", SortOrder::Desc)?;
    let sort = RunSort::parse(sort_by).unwrap_or(RunSort::UpdatedAt);
    let listed = state
        .stores
        .runs
        .list_runs(&RunQuery {
            page: page.clone(),
            status,
            sort,
        })
        .await?;
    let mut body = Map::new();
    body.insert(
        "runs".into(),
        Value::Array(listed.items.iter().map(responses::run_list_item).collect()),
    );
    body.extend(page_fields(
        &page,
        sort_by,
        listed.items.len(),
        listed.total,
    ));
    Ok(Json(Value::Object(body)))
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(run_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let run = state
        .stores
        .runs
        .get_run(&run_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let trace = state.platform.embedded_trace(&run.id).await;
    Ok(Json(responses::run_status(&run, trace)))
}

pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(run_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:write")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let run = state.platform.cancel(&run_id, &principal.name).await?;
    let trace = state.platform.embedded_trace(&run.id).await;
    Ok(Json(responses::run_status(&run, trace)))
}

pub async fn continue_run(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require("runs:write")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let payload = json!({"run_id": run_id});
    let platform = state.platform.clone();
    let actor = principal.name.clone();
    with_idempotency(
        &state,
        &headers,
        &principal.name,
        "runs:continue",
        &payload,
        || async move { platform.continue_run(&run_id, &actor).await },
    )
    .await
}

pub async fn trace(
    State(state): State<AppState>,
    principal: Principal,
    Path(run_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &["event_type", "limit", "offset", "sort_by", "sort_order"],
    )?;
    let (page, sort_by) = params.page(&["timestamp"], "timestamp", SortOrder::Asc)?;
    let run = state
        .stores
        .runs
        .get_run(&run_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let event_type = params
        .get("event_type")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let listed = state
        .stores
        .runs
        .list_trace(
            &run_id,
            &TraceQuery {
                page: page.clone(),
                event_type,
            },
        )
        .await?;
    let mut body = Map::new();
    body.insert("run_id".into(), json!(run_id));
    body.insert("events".into(), Value::Array(listed.items.clone()));
    body.extend(page_fields(
        &page,
        sort_by,
        listed.items.len(),
        listed.total,
    ));
    body.insert("dropped".into(), json!(run.trace_dropped));
    body.insert("complete".into(), json!(run.trace_dropped == 0));
    Ok(Json(Value::Object(body)))
}

pub async fn checkpoints(
    State(state): State<AppState>,
    principal: Principal,
    Path(run_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &["type", "limit", "offset", "sort_by", "sort_order"],
    )?;
    let (page, sort_by) = params.page(&["sequence"], "sequence", SortOrder::Asc)?;
    let run = state
        .stores
        .runs
        .get_run(&run_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let checkpoint_type = params
        .get("type")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let listed = state
        .stores
        .runs
        .list_checkpoints(
            &run_id,
            &CheckpointQuery {
                page: page.clone(),
                checkpoint_type,
            },
        )
        .await?;
    let mut body = Map::new();
    body.insert("run_id".into(), json!(run_id));
    let frozen_spec = run.metadata.get("frozen_spec");
    let checkpoints: Vec<Value> = listed
        .items
        .iter()
        .map(|checkpoint| expand_checkpoint(checkpoint.clone(), frozen_spec))
        .collect();
    body.insert("checkpoints".into(), Value::Array(checkpoints));
    body.extend(page_fields(
        &page,
        sort_by,
        listed.items.len(),
        listed.total,
    ));
    Ok(Json(Value::Object(body)))
}

/// `GET /v1/runs/{id}/recovery`: where the run stands and whether `/continue` can take it.
pub async fn recovery(
    State(state): State<AppState>,
    principal: Principal,
    Path(run_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:read")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let run = state
        .stores
        .runs
        .get_run(&run_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let queue = state.stores.runs.queue_entry(&run_id).await?;
    let checkpoints = state
        .stores
        .runs
        .list_checkpoints(
            &run_id,
            &CheckpointQuery {
                page: crate::store::PageQuery {
                    limit: 1,
                    ..Default::default()
                },
                checkpoint_type: None,
            },
        )
        .await?;
    let lease_live = queue
        .as_ref()
        .and_then(|q| q.lease_expires_at.as_deref())
        .is_some_and(|expiry| expiry > crate::clock::now_text().as_str());
    let sequential = crate::platform::is_sequential_workflow(&run);
    let can_continue = sequential
        && (run.status == RunStatus::Failed || (run.status == RunStatus::Running && !lease_live));
    let context = run
        .metadata
        .get("execution_context")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "run_id": run.id,
        "status": run.status.as_str(),
        "workflow_name": run.workflow_name,
        "workflow_kind": run.workflow_kind,
        "current_step_index": run.current_step_index,
        "current_node_id": run.current_node_id,
        "visited_steps": run.visited_steps,
        "visited_nodes": run.visited_nodes,
        "checkpoint_count": checkpoints.total,
        "continuation_id": run.continuation_id,
        "pending_human_request": run.pending_human_request,
        "error": run.error,
        "queue": queue,
        "replay_context": {
            "can_continue": can_continue,
            "completed_steps": run.visited_steps,
            "next_step_index": run.current_step_index,
            "resume_input": context.get("next_input"),
            "failed_step": run.error.as_ref().and_then(|e| e.get("step_id")),
            "lease_live": lease_live,
        },
    })))
}
