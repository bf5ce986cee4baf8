//! `/healthz`, `/livez`, `/readyz` (unauthenticated) and `GET /v1/health` (authenticated detail).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::ApiError;
use crate::SERVICE_NAME;
use crate::app::AppState;
use crate::drill::version;
use crate::readiness::{self, Readiness};

fn health_body(metadata: Value) -> Value {
    json!({"ok": true, "service": SERVICE_NAME, "version": version(), "metadata": metadata})
}

/// Lightweight API health: the process answers.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(health_body(json!({
        "status": "healthy",
        "commit": crate::app::COMMIT,
        "started_at": state.instance.started_at,
        "instance_id": state.instance.id,
    })))
}

/// Process liveness.
pub async fn livez() -> Json<Value> {
    Json(health_body(json!({"status": "alive"})))
}

fn readiness_metadata(readiness: &Readiness) -> Value {
    json!({"ready": readiness.ready, "manager": "PlatformManager", "checks": readiness.checks})
}

/// Readiness: 200 with every check, or 503 `not_ready` naming the failing ones.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = readiness::evaluate(&state).await;
    state.service_events.observe_readiness(&readiness);
    if readiness.ready {
        Json(health_body(readiness_metadata(&readiness))).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "One or more readiness checks failed.",
        )
        .with("metadata", readiness_metadata(&readiness))
        .into_response()
    }
}

/// The same checks with each failure's full message, for operators holding `runs:read`.
pub async fn health_detail(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require("runs:read")?;
    let readiness = readiness::evaluate(&state).await;
    state.service_events.observe_readiness(&readiness);
    let mut metadata = readiness_metadata(&readiness);
    metadata["details"] = Value::Object(readiness.details.clone());
    metadata["store_kind"] = json!(state.stores.runs.kind().as_str());
    metadata["instance"] = json!({
        "id": state.instance.id,
        "host": state.instance.host,
        "pid": state.instance.pid,
        "started_at": state.instance.started_at,
    });
    metadata["identity"] = json!({"name": principal.name, "scopes": principal.scopes()});
    let body = json!({"ok": readiness.ready, "service": SERVICE_NAME, "version": version(), "metadata": metadata});
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}
