//! Runs: create (sync 200 / async 202), list, get, cancel, continue, trace, checkpoints. The
//! read-only views of one run are in [`super::run_inspection`].

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{BodyLimits, ObjectReader, PathId, QueryParams, page_fields, read_json_object};
use super::lifecycle::run_owned;
use super::spec_request::{SpecFields, read_skills_overlay};
use crate::app::AppState;
use crate::engine::executor::expand_checkpoint;
use crate::platform::{CreateRun, MAX_RUN_TIMEOUT_SECONDS, idempotency, responses};
use crate::store::{CheckpointQuery, RunQuery, RunSort, RunStatus, SortOrder, TraceQuery};

const NO_PARAMETERS: &[&str] = &[];

/// Reads and checks a `RunCreateRequest` body.
fn read_create_request(
    state: &AppState,
    fields: Map<String, Value>,
    via_specs_run: bool,
) -> Result<CreateRun, ApiError> {
    let limits = &state.config.limits;
    let mut reader = ObjectReader::new(fields);
    let input = reader.required_string("input", Some(limits.max_input_chars));
    let spec = SpecFields::read(&mut reader, limits);
    let target = reader
        .optional_choice("target", &["agent", "workflow"])
        .unwrap_or_else(|| "workflow".into());
    let metadata = reader
        .optional_object("metadata", Some(limits.max_metadata_bytes))
        .unwrap_or_default();
    let async_mode = reader.optional_bool("async_mode").unwrap_or(false);
    let skills = read_skills_overlay(&mut reader);
    let session_id = reader.optional_string("session_id", Some(limits.max_path_chars));
    reader.finish()?;
    let timeout_seconds = run_timeout_seconds(&metadata)?;
    let spec = spec.into_request(
        "A run needs a spec: give `spec_path` (relative to the spec root) or an inline `spec`.",
    )?;
    Ok(CreateRun {
        input,
        spec,
        target,
        metadata,
        async_mode,
        skills,
        session_id,
        via_specs_run,
        timeout_seconds,
    })
}

/// `metadata.timeout_seconds`, when given: a number of seconds in `(0, MAX_RUN_TIMEOUT_SECONDS]`.
fn run_timeout_seconds(metadata: &Map<String, Value>) -> Result<Option<f64>, ApiError> {
    let issue = |kind: &'static str, msg: String, input: &Value| {
        ApiError::validation(vec![super::error::ValidationIssue {
            kind,
            loc: vec![json!("body"), json!("metadata"), json!("timeout_seconds")],
            msg,
            input: Some(input.clone()),
            ctx: None,
        }])
    };
    match metadata.get("timeout_seconds") {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Number(number)) => match number.as_f64() {
            Some(seconds) if seconds > 0.0 && seconds <= MAX_RUN_TIMEOUT_SECONDS => {
                Ok(Some(seconds))
            }
            Some(seconds) if seconds <= 0.0 => Err(issue(
                "greater_than",
                "Input should be greater than 0 (seconds until the run's deadline)".into(),
                value,
            )),
            _ => Err(issue(
                "less_than_equal",
                format!(
                    "Input should be less than or equal to {MAX_RUN_TIMEOUT_SECONDS} (seconds until the run's deadline)"
                ),
                value,
            )),
        },
        Some(other) => Err(issue(
            "float_type",
            "Input should be a valid number (seconds until the run's deadline)".into(),
            other,
        )),
    }
}

/// Answers an idempotent platform call: `(status, body)` as JSON.
pub fn answer((status, body): (StatusCode, Value)) -> Response {
    (status, Json(body)).into_response()
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
    let fields = read_json_object(&headers, body, BodyLimits::of(&state.config)).await?;
    let payload = Value::Object(fields.clone());
    let request = read_create_request(&state, fields, scope == "specs:run")?;
    let key = idempotency::key_from(&headers)?;
    let platform = state.platform.clone();
    let actor = principal.name.clone();
    let scope = scope.to_string();
    run_owned(&state, async move {
        let worker = platform.clone();
        platform
            .idempotently(
                &principal.name,
                &scope,
                key,
                &payload,
                move |mark| async move { worker.create_run(request, &actor, mark.as_ref()).await },
            )
            .await
    })
    .await
    .map(answer)
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
    let mut allowed = vec!["status", "limit", "offset", "sort_by", "sort_order"];
    allowed.extend(super::run_filters::PARAMETERS);
    let params = QueryParams::parse(query.as_deref(), &allowed)?;
    let filter = super::run_filters::read(&params)?;
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
                ctx: None,
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
            filter,
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
    PathId(run_id): PathId,
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
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("runs:write")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let platform = state.platform.clone();
    let actor = principal.name.clone();
    run_owned(&state, async move {
        let run = platform.cancel(&run_id, &actor).await?;
        let trace = platform.embedded_trace(&run.id).await;
        Ok(Json(responses::run_status(&run, trace)))
    })
    .await
}

pub async fn continue_run(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    PathId(run_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require("runs:write")?;
    QueryParams::parse(query.as_deref(), NO_PARAMETERS)?;
    let payload = json!({"run_id": run_id});
    let key = idempotency::key_from(&headers)?;
    let platform = state.platform.clone();
    let actor = principal.name.clone();
    run_owned(&state, async move {
        let worker = platform.clone();
        platform
            .idempotently(&principal.name, "runs:continue", key, &payload, move |mark| async move {
                worker.continue_run(&run_id, &actor, mark.as_ref()).await
            })
            .await
    })
    .await
    .map(answer)
}

pub async fn trace(
    State(state): State<AppState>,
    principal: Principal,
    PathId(run_id): PathId,
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
    PathId(run_id): PathId,
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
