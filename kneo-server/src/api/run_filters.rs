//! The filters of `GET /v1/runs` beside `status`: read from the query string as kneo-serv reads
//! them (strings as given, `has_error` as a boolean, `created_*` as ISO-8601 normalised to UTC).

use axum::http::StatusCode;

use super::error::ApiError;
use super::input::QueryParams;
use crate::store::RunFilter;

/// The query parameters [`read`] takes.
pub const PARAMETERS: [&str; 7] = [
    "workflow_kind",
    "workflow_name",
    "session_id",
    "has_error",
    "created_after",
    "created_before",
    "q",
];

/// Reads the filters; a bad boolean is a native 422, a bad timestamp a 422 `invalid_timestamp`.
pub fn read(params: &QueryParams) -> Result<RunFilter, ApiError> {
    let text = |name: &str| params.get(name).map(str::to_string);
    Ok(RunFilter {
        workflow_kind: text("workflow_kind"),
        workflow_name: text("workflow_name"),
        session_id: text("session_id"),
        has_error: params.boolean("has_error")?,
        created_after: timestamp_bound(params, "created_after")?,
        created_before: timestamp_bound(params, "created_before")?,
        // An empty search is no search.
        q: text("q").filter(|q| !q.is_empty()),
    })
}

/// A `created_*` bound in the stored form, so the store compares like with like.
fn timestamp_bound(params: &QueryParams, name: &str) -> Result<Option<String>, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    match crate::clock::parse_iso(text) {
        Some(at) => Ok(Some(crate::clock::format(at))),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_timestamp",
            format!(
                "Query parameter '{name}' must be an ISO-8601 timestamp; got {text:?}. \
                 Use a form like 2026-12-02T18:15:59Z."
            ),
        )
        .with("param", name)),
    }
}
