//! `POST /v1/specs/validate`: `{valid, diagnostics}` for a spec given inline or by path.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::ApiError;
use super::input::{BodyLimits, ObjectReader, QueryParams, read_json_object};
use crate::app::AppState;
use crate::platform::specs::SpecSource;

pub async fn validate(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require("specs:read")?;
    QueryParams::parse(query.as_deref(), &[])?;
    let fields = read_json_object(&headers, body, BodyLimits::of(&state.config)).await?;
    let mut reader = ObjectReader::new(fields);
    let limits = &state.config.limits;
    let spec = reader.optional_object("spec", Some(limits.max_inline_spec_bytes));
    let spec_path = reader.optional_string("spec_path", Some(limits.max_path_chars));
    reader.optional_string("environment", Some(128));
    let overlays = reader.optional_string_list("overlays").unwrap_or_default();
    let overrides = reader
        .optional_object("overrides", Some(limits.max_overrides_bytes))
        .unwrap_or_default();
    reader.finish()?;
    if !overlays.is_empty() {
        return Err(ApiError::invalid_request(
            "overlays are not supported by this kneo build; merge them into the spec.",
        ));
    }
    let source = match (spec, spec_path) {
        (Some(spec), None) => SpecSource::Inline(Value::Object(spec)),
        (None, Some(path)) => SpecSource::Path(path),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "Give either `spec` or `spec_path`, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid_request(
                "Give the spec to validate: `spec_path` or an inline `spec`.",
            ));
        }
    };
    let validation = state.platform.validate_spec(&source, &overrides).await?;
    Ok(Json(
        json!({"valid": validation.valid(), "diagnostics": validation.diagnostics}),
    ))
}
