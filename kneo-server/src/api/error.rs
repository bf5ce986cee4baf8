//! The error envelope: every failure leaves the service as `{"detail": {"error", "message", …}}`.
//!
//! Request-shape problems use the native validation list instead (`{"detail": [{type, loc, msg,
//! input}]}`), exactly as kneo-serv 1.2 clients expect. A 500 is always opaque: the cause goes to
//! the log, never to the caller.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::platform::error::PlatformError;
use crate::store::StoreError;

/// One entry of a native 422 validation list.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationIssue {
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Option<Value>,
    /// The constraint that failed (`{"ge": 1}`, `{"max_length": 128}`), as kneo-serv reports it.
    pub ctx: Option<Value>,
}

impl ValidationIssue {
    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("type".into(), json!(self.kind));
        entry.insert("loc".into(), Value::Array(self.loc.clone()));
        entry.insert("msg".into(), json!(self.msg));
        if let Some(input) = &self.input {
            entry.insert("input".into(), input.clone());
        }
        if let Some(ctx) = &self.ctx {
            entry.insert("ctx".into(), ctx.clone());
        }
        Value::Object(entry)
    }
}

/// An error the API answers with (boxed: errors travel through every `Result` of the API, and
/// the common path should stay small).
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorParts>);

#[derive(Debug, Clone)]
struct ErrorParts {
    status: StatusCode,
    body: ErrorBody,
    retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
enum ErrorBody {
    Envelope {
        code: &'static str,
        message: String,
        extra: Map<String, Value>,
    },
    Validation(Vec<ValidationIssue>),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(Box::new(ErrorParts {
            status,
            body: ErrorBody::Envelope {
                code,
                message: message.into(),
                extra: Map::new(),
            },
            retry_after_seconds: None,
        }))
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// Adds an extra key beside `error` and `message` (e.g. `required_scope`).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        if let ErrorBody::Envelope { extra, .. } = &mut self.0.body {
            extra.insert(key.to_string(), value.into());
        }
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.0.retry_after_seconds = Some(seconds);
        self
    }

    /// The machine-readable code (`validation` for a native 422 list).
    pub fn code(&self) -> &'static str {
        match &self.0.body {
            ErrorBody::Envelope { code, .. } => code,
            ErrorBody::Validation(_) => "validation",
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid Kneo service API key is required.",
        )
    }

    pub fn forbidden(scope: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("Missing required scope: {scope}"),
        )
        .with("required_scope", scope)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource was not found.",
        )
    }

    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn run_state_conflict(message: impl Into<String>, status: &str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "run_state_conflict", message).with("status", status)
    }

    pub fn resource_locked(resource: &str) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "resource_locked",
            format!("Another request holds the lock on {resource}; wait for it to finish (runbook § 8.1)."),
        )
        .with("resource", resource)
    }

    pub fn payload_too_large(max_body_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body exceeds maximum size of {max_body_bytes} bytes."),
        )
        .with("max_body_bytes", max_body_bytes)
    }

    pub fn unknown_query_parameters(unknown: Vec<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_query_parameters",
            format!(
                "Unrecognized query parameter(s): {}. (0.11.0 breaking change: unknown query params are now rejected; \
                 through 0.10.x they were silently ignored.)",
                unknown.join(", ")
            ),
        )
        .with("unknown", unknown)
    }

    pub fn spec_path_confined() -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "spec_path_confined",
            "spec_path resolves outside the configured spec root.",
        )
    }

    pub fn validation(issues: Vec<ValidationIssue>) -> ApiError {
        ApiError(Box::new(ErrorParts {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody::Validation(issues),
            retry_after_seconds: None,
        }))
    }

    pub fn store_unavailable(kind: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            // Runs and continuations share this answer: it names no store it cannot be sure of.
            format!(
                "A store the service needs is unavailable ({kind}); retry shortly (runbook § 2)."
            ),
        )
        .with("kind", kind)
        .retry_after(2)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An internal error occurred.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.body {
            ErrorBody::Envelope { code, message, .. } => {
                write!(f, "{} {code}: {message}", self.0.status.as_u16())
            }
            ErrorBody::Validation(issues) => {
                let details: Vec<String> = issues
                    .iter()
                    .map(|issue| format!("{:?}: {}", issue.loc, issue.msg))
                    .collect();
                write!(
                    f,
                    "{} validation: {}",
                    self.0.status.as_u16(),
                    details.join("; ")
                )
            }
        }
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error.unavailable_kind() {
            Some(kind) => {
                tracing::warn!(target: "kneo_serv.service", error = %error, "store unavailable");
                ApiError::store_unavailable(kind)
            }
            None => {
                tracing::error!(target: "kneo_serv.service", error = %error, "store error");
                ApiError::internal()
            }
        }
    }
}

/// The one mapping of platform failures to the envelope.
impl From<PlatformError> for ApiError {
    fn from(error: PlatformError) -> ApiError {
        match error {
            PlatformError::NotFound => ApiError::not_found(),
            PlatformError::InvalidRequest(message) => ApiError::invalid_request(message),
            PlatformError::SpecInvalid(diagnostics) => crate::platform::specs::refusal(diagnostics),
            PlatformError::PathConfined { what } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "spec_path_confined",
                format!("{what} resolves outside the configured spec root."),
            ),
            PlatformError::FileNotReadable => {
                ApiError::invalid_request("A referenced file could not be read.")
            }
            PlatformError::EnvironmentPolicyBlocked {
                message,
                diagnostics,
            } => ApiError::new(StatusCode::FORBIDDEN, "environment_policy_blocked", message)
                .with("diagnostics", json!(diagnostics)),
            PlatformError::Locked(resource) => ApiError::resource_locked(&resource),
            PlatformError::Store(error) => error.into(),
            PlatformError::Internal(cause) => {
                tracing::error!(target: "kneo_serv.service", error = %crate::redact::redacted_text(&cause), "internal error");
                ApiError::internal()
            }
        }
    }
}

/// `400 spec_invalid` carrying the diagnostics (runbook § 6.1).
pub use crate::platform::specs::spec_invalid;

/// The envelope's `error` code of an answer, kept in the response's extensions for the access
/// log and the answer counters ([`crate::answers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = ErrorCode(self.code());
        let ErrorParts {
            status,
            body,
            retry_after_seconds,
        } = *self.0;
        let body = match body {
            ErrorBody::Envelope {
                code,
                message,
                extra,
            } => {
                let mut detail = Map::new();
                detail.insert("error".into(), json!(code));
                detail.insert("message".into(), json!(message));
                detail.extend(extra);
                json!({ "detail": detail })
            }
            ErrorBody::Validation(issues) => {
                json!({ "detail": issues.iter().map(ValidationIssue::to_json).collect::<Vec<_>>() })
            }
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(code);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
