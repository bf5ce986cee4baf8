//! `GET /v1/security/credentials`: the credential inventory (`credentials:read`); names, sources
//! and presence, never a value.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::QueryParams;
use crate::app::AppState;
use crate::platform::credentials::InventoryRequest;

pub async fn credentials(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require("credentials:read")?;
    let params = QueryParams::parse(
        query.as_deref(),
        &["providers", "extras", "include_service_tokens"],
    )?;
    let repeated = |name: &str| {
        let values = params.all(name);
        (!values.is_empty()).then(|| values.into_iter().map(str::to_string).collect())
    };
    let request = InventoryRequest {
        providers: repeated("providers"),
        extras: repeated("extras"),
        include_service_tokens: params.boolean("include_service_tokens")?.unwrap_or(true),
    };
    let inventory = state
        .platform
        .credential_inventory(&request, &principal.name)
        .await;
    Ok(Json(json!({"inventory": inventory})))
}
