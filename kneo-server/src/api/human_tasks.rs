//! Human tasks: list, get, resume.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{BodyLimits, ObjectReader, PathId, QueryParams, page_fields, read_json_object};
use super::lifecycle::run_owned;
use super::runs::answer;
use crate::app::AppState;
use crate::platform::human::{DECISIONS, Decision, TaskFilter};
use crate::platform::idempotency;
use crate::store::SortOrder;

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("human:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &[
            "run_id",
            "workflow_kind",
            "status",
            "limit",
            "offset",
            "sort_by",
            "sort_order",
        ],
    )?;
    let status = match params.get("status") {
        None | Some("") => None,
        Some(_) => Some(
            params
                .choice("status", &["pending", "escalated"], "pending")?
                .to_string(),
        ),
    };
    let (page, sort_by) = params.page(&["id", "created_at", "expires_at"], "id", SortOrder::Asc)?;
    let filter = TaskFilter {
        run_id: params
            .get("run_id")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        workflow_kind: params
            .get("workflow_kind")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        status,
    };
    let (mut tasks, unreadable) = state.platform.list_tasks(&filter).await?;
    match sort_by {
        "created_at" => tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at)),
        "expires_at" => tasks.sort_by(|a, b| {
            a.expires_at
                .unwrap_or(f64::MAX)
                .total_cmp(&b.expires_at.unwrap_or(f64::MAX))
        }),
        _ => tasks.sort_by(|a, b| a.id.cmp(&b.id)),
    }
    if page.order == SortOrder::Desc {
        tasks.reverse();
    }
    let total = tasks.len();
    let items: Vec<Value> = tasks
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|task| serde_json::to_value(task).unwrap_or(Value::Null))
        .collect();
    let mut body = Map::new();
    body.insert("tasks".into(), json!(items));
    body.extend(page_fields(&page, sort_by, items.len(), total as i64));
    if !unreadable.is_empty() {
        // Reported beside the tasks, never dropped: each is a run that cannot be resumed.
        body.insert("unreadable".into(), json!(unreadable));
        body.insert(
            "warning".into(),
            json!(format!(
                "{} continuation record(s) could not be read; see runbook § 8.3",
                unreadable.len()
            )),
        );
    }
    Ok(Json(Value::Object(body)))
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    PathId(continuation_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("human:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let task = state.platform.get_task(&continuation_id).await?;
    Ok(Json(json!({
        "continuation_id": task.id,
        "run_id": task.run_id,
        "request": task.pending_human_request,
        "messages": task.messages,
        "expires_at": task.expires_at,
        "workflow_name": task.workflow_name,
        "workflow_kind": task.workflow_kind,
    })))
}

fn read_decision(state: &AppState, fields: Map<String, Value>) -> Result<Decision, ApiError> {
    let mut reader = ObjectReader::new(fields);
    let request_id = reader.required_string("request_id", Some(256));
    let decision = reader.optional_choice("decision", &DECISIONS);
    let content =
        reader.optional_string("content", Some(state.config.limits.max_human_content_chars));
    let selected_option = reader.optional_string("selected_option", Some(1_000));
    let metadata = reader
        .optional_object("metadata", Some(state.config.limits.max_metadata_bytes))
        .unwrap_or_default();
    let missing_decision = decision.is_none();
    if missing_decision {
        // A missing decision is its own native 422, like a missing request_id.
        reader.required_string("decision", None);
    }
    reader.finish()?;
    Ok(Decision {
        request_id,
        decision: decision.unwrap_or_default(),
        content,
        selected_option,
        metadata,
    })
}

pub async fn resume(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    PathId(continuation_id): PathId,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require("human:write")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let fields = read_json_object(&headers, body, BodyLimits::of(&state.config)).await?;
    let mut payload = fields.clone();
    payload.insert("continuation_id".into(), json!(continuation_id));
    let decision = read_decision(&state, fields)?;
    let key = idempotency::key_from(&headers)?;
    let payload = Value::Object(payload);
    let platform = state.platform.clone();
    let actor = principal.name.clone();
    run_owned(&state, async move {
        let worker = platform.clone();
        platform
            .idempotently(
                &principal.name,
                "human:resume",
                key,
                &payload,
                move |mark| async move {
                    worker
                        .resume(&continuation_id, decision, &actor, mark.as_ref())
                        .await
                },
            )
            .await
    })
    .await
    .map(answer)
}
