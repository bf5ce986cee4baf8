//! The HTTP API: every route on both trees (`/v1/...` and unprefixed), as kneo-serv 1.2 serves it.
//!
//! Handlers are thin: they check the caller's scope, read input strictly and hand over to the
//! [`crate::platform`]. Errors leave through one envelope ([`error`]).
//!
//! **Rule: state-changing work is not owned by the connection.** A handler's future is dropped
//! when its client disconnects, so nothing that writes may run in it: a handler validates, then
//! gives the work to [`lifecycle::run_owned`], a task the server owns and graceful shutdown
//! waits for. The work then ends the same whether the client waits or not ([`lifecycle`]).
//!
//! - [`auth`]: keys, roles, scopes; [`error`]: the envelope; [`input`]: strict bodies and queries;
//!   [`limits`]: head and body caps; [`request_log`]: request ids, the access log, abandoned
//!   requests; [`lifecycle`]: server-owned work.
//! - One module per resource: [`health`], [`metrics`], [`runs`], [`human_tasks`], [`audit`],
//!   [`specs`], [`service_events`].

pub mod audit;
pub mod auth;
pub mod error;
pub mod health;
pub mod human_tasks;
pub mod input;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod request_log;
pub mod runs;
pub mod service_events;
pub mod specs;

use std::any::Any;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::AppState;
use error::ApiError;

/// Routes that exist on both trees.
fn versioned_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/health", get(health::health_detail))
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{run_id}", get(runs::get))
        .route("/runs/{run_id}/cancel", post(runs::cancel))
        .route("/runs/{run_id}/continue", post(runs::continue_run))
        .route("/runs/{run_id}/trace", get(runs::trace))
        .route("/runs/{run_id}/checkpoints", get(runs::checkpoints))
        .route("/runs/{run_id}/recovery", get(runs::recovery))
        .route("/specs/validate", post(specs::validate))
        .route("/specs/run", post(runs::create_from_specs_run))
        .route("/human-tasks", get(human_tasks::list))
        .route("/human-tasks/{continuation_id}", get(human_tasks::get))
        .route(
            "/human-tasks/{continuation_id}/resume",
            post(human_tasks::resume),
        )
        .route("/audit-events", get(audit::list))
        .route("/service/events", get(service_events::list))
}

/// The whole application: both route trees, `/metrics`, and the middleware stack.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .merge(versioned_routes())
        .nest("/v1", versioned_routes());
    if state.config.metrics_enabled {
        app = app.route("/metrics", get(metrics::metrics));
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::body_size_cap,
        ))
        .layer(axum::middleware::from_fn(limits::request_head_cap))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_log::request_id_and_log,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This method is not allowed on this route.",
    )
}

/// A panicking handler answers an opaque 500; the cause goes to the log and the process serves on.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let cause = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(target: "kneo_serv.service", error = "panic", message = %crate::redact::redacted_text(cause), "handler panicked");
    ApiError::internal().into_response()
}
