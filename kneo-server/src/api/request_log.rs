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

/// What the service knows about the request a task serves: its id, its route, the run it
/// touched, and whether its client gave up waiting for the answer.
#[derive(Debug)]
pub struct RequestScope {
    pub request_id: String,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The matched route (`/v1/runs/{run_id}`), or `unmatched`.
    pub route: String,
    run_id: std::sync::OnceLock<String>,
    lifecycle: std::sync::Mutex<Lifecycle>,
}

/// Where a request stands, for the one log line an abandoned request leaves.
#[derive(Debug, Default)]
struct Lifecycle {
    /// Its state-changing work runs in a task the server owns ([`super::lifecycle`]).
    owned_work: bool,
    work_finished: bool,
    /// Its outcome, once the work finished (`200`, `409 idempotency_key_in_progress`, …).
    outcome: Option<String>,
    abandoned: bool,
}

impl RequestScope {
    pub(super) fn new(
        request_id: String,
        route: String,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> RequestScope {
        RequestScope {
            request_id,
            metrics,
            route,
            run_id: std::sync::OnceLock::new(),
            lifecycle: std::sync::Mutex::new(Lifecycle::default()),
        }
    }

    fn lifecycle(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.lifecycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The request's state-changing work was handed to a task the server owns.
    pub fn work_started(&self) {
        self.lifecycle().owned_work = true;
    }

    /// The owned work ended with `outcome`; logs now if the client already gave up.
    pub fn work_finished(&self, outcome: String) {
        let mut lifecycle = self.lifecycle();
        lifecycle.work_finished = true;
        lifecycle.outcome = Some(outcome);
        if lifecycle.abandoned {
            self.metrics
                .http_abandoned_work_running
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.log_abandoned(&lifecycle);
        }
    }

    /// The client went away before the answer; logs now unless owned work is still running
    /// (its end logs, with the run it made).
    pub(super) fn abandoned(&self) {
        let mut lifecycle = self.lifecycle();
        lifecycle.abandoned = true;
        self.metrics.http_request_abandoned(&self.route);
        if !lifecycle.owned_work || lifecycle.work_finished {
            self.log_abandoned(&lifecycle);
        } else {
            self.metrics
                .http_abandoned_work_running
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn log_abandoned(&self, lifecycle: &Lifecycle) {
        let run_id = self.run_id.get().map(String::as_str).unwrap_or("");
        let outcome = lifecycle.outcome.as_deref().unwrap_or("");
        tracing::info!(target: "kneo_serv.service", event = "http_request_abandoned",
            request_id = %self.request_id, route = %self.route, run_id, outcome,
            "the client gave up before the answer; what the request started ran to its end (runbook § 5.8)");
    }
}

tokio::task_local! {
    /// The request the current task serves.
    static CURRENT_REQUEST: std::sync::Arc<RequestScope>;
}

/// The request the current task serves, if any (to carry it into an owned task).
pub fn current_request() -> Option<std::sync::Arc<RequestScope>> {
    CURRENT_REQUEST.try_with(Clone::clone).ok()
}

/// Runs `work` as part of `scope`'s request (request id in audit events and log lines).
pub async fn within<F: std::future::Future>(
    scope: std::sync::Arc<RequestScope>,
    work: F,
) -> F::Output {
    CURRENT_REQUEST.scope(scope, work).await
}

/// The id of the request being served by the current task, if any (audit events record it).
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST
        .try_with(|scope| scope.request_id.clone())
        .ok()
}

/// Records the run the current request created or changed (for the abandoned-request log).
pub fn note_run_id(run_id: &str) {
    let _ = CURRENT_REQUEST.try_with(|scope| {
        let _ = scope.run_id.set(run_id.to_string());
    });
}

/// Counts and logs a request whose client went away before its answer was ready: dropped with
/// the request's future while still armed.
struct AbandonGuard {
    scope: std::sync::Arc<RequestScope>,
    armed: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if self.armed {
            self.scope.abandoned();
        }
    }
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
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(
            || "unmatched".to_string(),
            |matched| matched.as_str().to_string(),
        );
    let scope = std::sync::Arc::new(RequestScope::new(
        request_id.clone(),
        route,
        state.metrics.clone(),
    ));
    let mut guard = AbandonGuard {
        scope: scope.clone(),
        armed: true,
    };
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
    let presented = super::auth::presented_key(request.headers());

    // Log lines emitted while serving carry the request id through this span.
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = CURRENT_REQUEST
        .scope(
            scope,
            tracing::Instrument::instrument(next.run(request), span),
        )
        .await;
    guard.armed = false;

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
            presented.as_deref(),
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
    presented: Option<&str>,
    user_agent: Option<&str>,
) {
    let key = if !state.config.auth_enabled {
        "anonymous".to_string()
    } else if let Some(presented) = presented {
        // The one key auth looked at (the Bearer token wins), so the label names the caller auth saw.
        super::auth::find_key(&state.config.api_keys, presented)
            .map(|key| key.name.clone())
            .unwrap_or_else(|| "(unknown)".to_string())
    } else {
        "(none)".to_string()
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
