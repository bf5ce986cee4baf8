//! `GET /v1/audit-events`: the audit log, newest first by default.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Map, Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{QueryParams, page_fields};
use crate::app::AppState;
use crate::store::{AuditQuery, SortOrder};

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("audit:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &[
            "event_type",
            "run_id",
            "mentions",
            "limit",
            "offset",
            "sort_by",
            "sort_order",
        ],
    )?;
    let (page, sort_by) = params.page(&["created_at"], "created_at", SortOrder::Desc)?;
    let text = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let query = AuditQuery {
        page: page.clone(),
        event_type: text("event_type"),
        run_id: text("run_id"),
        mentions: text("mentions"),
    };
    let listed = state.stores.runs.list_audit(&query).await?;
    let mut body = Map::new();
    body.insert("events".into(), json!(listed.items));
    body.extend(page_fields(
        &page,
        sort_by,
        listed.items.len(),
        listed.total,
    ));
    Ok(Json(Value::Object(body)))
}
