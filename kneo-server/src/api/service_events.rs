//! `GET /v1/service/events`: the service's own history (starts, readiness transitions, 5xx bursts).

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{QueryParams, page_fields};
use crate::app::AppState;
use crate::store::SortOrder;

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("audit:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &["limit", "offset", "sort_by", "sort_order"],
    )?;
    let (page, sort_by) = params.page(&["created_at"], "created_at", SortOrder::Desc)?;
    let listed = state.stores.runs.list_service_events(&page).await?;
    let mut body = serde_json::Map::new();
    body.insert("events".into(), json!(listed.items));
    body.extend(page_fields(
        &page,
        sort_by,
        listed.items.len(),
        listed.total,
    ));
    Ok(Json(Value::Object(body)))
}
