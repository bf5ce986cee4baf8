//! `GET /metrics`: Prometheus text, unauthenticated, root path only.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    // The gauges come from the store; a slow store must not hang the scrape.
    let queue = tokio::time::timeout(
        state.config.health_probe_timeout,
        state.stores.runs.queue_counts(),
    )
    .await
    .ok()
    .and_then(Result::ok);
    let body = state.metrics.render(queue.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
