//! Request limits that apply before any handler runs: the body size cap.
//!
//! A declared `Content-Length` over the cap is refused before any handler sees the request. A
//! body without a length (chunked) is read only up to the cap by [`super::input::read_body`],
//! which answers the same `413 payload_too_large` the moment the cap is passed.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::error::ApiError;
use crate::app::AppState;

/// How much of a refused body is read and thrown away before answering.
///
/// A client that is still sending when the server answers and closes gets a connection reset
/// instead of the 413, so a refused body is drained (never stored) up to this much, for at most
/// [`DRAIN_TIME`]; a larger or slower one is cut off.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

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
        drain(request.into_body()).await;
        let mut response = ApiError::payload_too_large(max).into_response();
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// Reads and discards a body, within the drain budget.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |data| data.len());
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
