//! Request limits that apply before any handler runs: the size of the request head (URI and
//! headers) and the body size cap.
//!
//! The head limits answer `414 uri_too_long` and `431 request_header_fields_too_large` in the
//! envelope. They sit well below hyper's own parser limits (a URI of 65,534 bytes, 500 headers,
//! a head of about 400 KiB), past which hyper refuses the request itself with a bodyless answer
//! and closes the connection.
//!
//! A declared `Content-Length` over the cap is refused before any handler sees the request. A
//! body without a length (chunked) is read only up to the cap by [`super::input::read_body`],
//! which answers the same `413 payload_too_large` the moment the cap is passed.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
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

/// Longest request target (path and query) kneo serves.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header names and values in one request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Refuses a request whose target or headers pass the limits above.
pub async fn request_head_cap(request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("The request target is {uri_bytes} bytes; the limit is {MAX_URI_BYTES}. Send long input in the body."),
        )
        .with("max_uri_bytes", MAX_URI_BYTES)
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!(
                "The request has {} header fields of {header_bytes} bytes; the limits are {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes.",
                headers.len()
            ),
        )
        .with("max_headers", MAX_HEADERS)
        .with("max_header_bytes", MAX_HEADER_BYTES)
        .into_response();
    }
    next.run(request).await
}

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
