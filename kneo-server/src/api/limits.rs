//! Request limits that apply before any handler runs: the body size cap.
//!
//! A declared `Content-Length` over the cap is refused at once, without reading a byte. A body
//! without a length (chunked) is read only up to the cap by [`super::input::read_body`], which
//! answers the same `413 payload_too_large` the moment the cap is passed.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::app::AppState;

/// Refuses a request whose declared body is larger than `KNEO_SERV_MAX_BODY_BYTES`.
pub async fn body_size_cap(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let max = state.config.limits.max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return ApiError::payload_too_large(max).into_response();
    }
    next.run(request).await
}
