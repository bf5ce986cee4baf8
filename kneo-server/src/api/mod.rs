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
//! - One module per resource: [`health`], [`metrics`], [`runs`] (with [`run_filters`]),
//!   [`run_inspection`], [`human_tasks`], [`audit`], [`specs`] (with [`spec_request`]),
//!   [`skills`], [`security`], [`policies`], [`service_events`].
//! - [`routes`]: the one route list the router and the OpenAPI document ([`openapi`]) come from.

pub mod audit;
pub mod auth;
pub mod error;
pub mod health;
pub mod human_tasks;
pub mod input;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod policies;
pub mod request_log;
pub mod routes;
pub mod run_filters;
pub mod run_inspection;
pub mod runs;
pub mod security;
pub mod service_events;
pub mod skills;
pub mod spec_request;
pub mod specs;

use std::any::Any;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::AppState;
use error::ApiError;

/// The whole application: every route of [`routes::all`] on its trees, and the middleware stack.
pub fn router(state: AppState) -> Router {
    let mut versioned = Router::new();
    let mut app = Router::new();
    for route in routes::all() {
        if route.doc.path == "/metrics" && !state.config.metrics_enabled {
            continue;
        }
        if route.doc.tree == routes::Tree::Both {
            versioned = versioned.route(route.doc.path, route.handler.clone());
        }
        app = app.route(route.doc.path, route.handler);
    }
    app.nest("/v1", versioned)
        .fallback(not_found)
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
