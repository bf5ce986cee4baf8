//! `GET /v1/skills`: the skills catalog, paged (`specs:read`).

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Map, Value, json};

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
    principal.require("specs:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &["limit", "offset", "sort_by", "sort_order"],
    )?;
    let (page, sort_by) = params.page(&["name", "description", "path"], "name", SortOrder::Asc)?;
    let mut entries = state.platform.skills_catalog().await?;
    entries.sort_by(|a, b| {
        let key = |entry: &crate::platform::skills_catalog::CatalogEntry| match sort_by {
            "description" => entry.description.clone(),
            "path" => entry.path.clone(),
            _ => entry.name.clone(),
        };
        key(a).cmp(&key(b))
    });
    if page.order == SortOrder::Desc {
        entries.reverse();
    }
    let total = entries.len();
    let items: Vec<Value> = entries
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|entry| json!({"name": entry.name, "description": entry.description, "path": entry.path}))
        .collect();
    let mut body = Map::new();
    body.extend(page_fields(&page, sort_by, items.len(), total as i64));
    body.insert("skills".into(), Value::Array(items));
    Ok(Json(Value::Object(body)))
}
