//! Request ids and the access log: every response carries `X-Request-ID`, and every request
//! leaves one JSON line on `kneo_serv.service` with `event=http_request`. Error answers are also
//! counted by route template, key name and calling tool ([`crate::answers`]).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// The effective request id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    /// The request id of the request the current task serves.
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being served by the current task, if any (audit events record it).
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// Paths whose 5xx answers are verdicts about dependencies, not failures of the service itself.
fn is_health_probe(path: &str) -> bool {
    matches!(
        path,
        "/readyz"
            | "/v1/readyz"
            | "/healthz"
            | "/v1/healthz"
            | "/livez"
            | "/v1/livez"
            | "/health"
            | "/v1/health"
    )
}

/// A client-sent id is kept when it is short, visible ASCII; otherwise a UUID is generated.
fn request_id_from(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crate::clock::new_id)
}

pub async fn request_id_and_log(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request_id_from(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    // The raw path, without the query string (which may carry ids but never keys).
    let path = request.uri().path().to_string();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect::<String>());
    // The template, not the raw path, so the answer counters' labels stay few.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string());
    let presented = super::auth::presented_keys(request.headers());

    // Log lines emitted while serving carry the request id through this span.
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = CURRENT_REQUEST_ID
        .scope(
            request_id.clone(),
            tracing::Instrument::instrument(next.run(request), span),
        )
        .await;

    let status = response.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    state.metrics.http_response(status);
    if status >= 400 {
        count_error_answer(
            &state,
            &response,
            route,
            &method,
            &presented,
            user_agent.as_deref(),
        );
    }
    if status >= 500 && !is_health_probe(&path) {
        state.service_events.note_server_error();
    }
    if state.config.request_logs {
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "kneo_serv.service",
            event = "http_request",
            request_id = %request_id,
            method = %method,
            path = %path,
            status_code = status,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            user_agent = user_agent.as_deref().unwrap_or(""),
        );
    }
    response
}

/// Counts an error answer under its route, status, error code, key name and calling tool.
fn count_error_answer(
    state: &AppState,
    response: &Response,
    route: Option<String>,
    method: &axum::http::Method,
    presented: &[String],
    user_agent: Option<&str>,
) {
    let key = if !state.config.auth_enabled {
        "anonymous".to_string()
    } else if presented.is_empty() {
        "(none)".to_string()
    } else {
        presented
            .iter()
            .find_map(|key| super::auth::find_key(&state.config.api_keys, key))
            .map(|key| key.name.clone())
            .unwrap_or_else(|| "(unknown)".to_string())
    };
    let error = response
        .extensions()
        .get::<super::error::ErrorCode>()
        .map(|code| code.0.to_string())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or_default();
    state.metrics.answers.record(
        crate::answers::AnswerLabels {
            route: route.unwrap_or_else(|| "(unmatched)".to_string()),
            method: method.as_str().to_string(),
            status: response.status().as_u16(),
            error,
            key,
            client: crate::answers::client_of(user_agent),
        },
        now,
    );
}
