//! [`Reply`]: what every call returns, with the wire facts kept beside the typed value.

use std::time::Duration;

use crate::wire::ErrorBody;

/// Why a call produced no usable value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// Nothing answered: connection refused, no route to host, DNS failure, connection reset.
    #[error("{method} {url}: unreachable ({reason}); is the service running there? (runbook § 1)")]
    Unreachable {
        method: String,
        url: String,
        reason: String,
        /// The host answered with a refusal: nothing listens on that port.
        refused: bool,
    },
    /// The connection or the answer took longer than the call's time bound.
    #[error("{method} {url}: {} within {} ms", if *connected { "connected, but no answer" } else { "could not connect" }, after.as_millis())]
    Timeout {
        method: String,
        url: String,
        after: Duration,
        /// The TCP connection was made and the service never answered (a hung process);
        /// false when the connection itself did not complete in time (a path problem).
        connected: bool,
    },
    /// The service answered with an error status; `error` is its envelope when it sent one
    /// (boxed: it is large, and most results are not errors).
    #[error("{method} {url}: HTTP {status}{}", error.as_ref().map(|e| format!(" {}", e.summary())).unwrap_or_default())]
    Status {
        method: String,
        url: String,
        status: u16,
        error: Option<Box<ErrorBody>>,
    },
    /// The service answered, but not with the body this call expects.
    #[error("{method} {url}: HTTP {status} with an unexpected body: {reason}")]
    BadBody {
        method: String,
        url: String,
        status: u16,
        reason: String,
    },
    /// The request could not be built (a malformed header value, for instance).
    #[error("{method} {url}: cannot send the request: {reason}")]
    InvalidRequest {
        method: String,
        url: String,
        reason: String,
    },
}

impl CallError {
    /// The error envelope of an HTTP error status.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            CallError::Status { error, .. } => error.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, when the service answered at all.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } | CallError::BadBody { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether no answer came at all (refused, unreachable or timed out).
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            CallError::Unreachable { .. } | CallError::Timeout { .. }
        )
    }

    /// A short kind name for machine output: `unreachable`, `timeout`, `http_status`, `bad_body`,
    /// `invalid_request`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Unreachable { .. } => "unreachable",
            CallError::Timeout { .. } => "timeout",
            CallError::Status { .. } => "http_status",
            CallError::BadBody { .. } => "bad_body",
            CallError::InvalidRequest { .. } => "invalid_request",
        }
    }
}

/// The outcome of one call: the HTTP status and raw body text when there was an answer, the
/// latency, and either the typed value or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    pub method: String,
    /// The full URL called (without credentials).
    pub url: String,
    pub status: Option<u16>,
    /// The raw body text, exactly as received (before any parsing).
    pub body: Option<String>,
    /// From sending the request to having read the whole body (or giving up).
    pub latency: Duration,
    pub result: Result<T, CallError>,
}

impl<T> Reply<T> {
    /// A reply that carried `value` (for callers that build probes without a network).
    pub fn answered(url: impl Into<String>, status: u16, value: T) -> Reply<T> {
        Reply {
            method: "GET".into(),
            url: url.into(),
            status: Some(status),
            body: None,
            latency: Duration::ZERO,
            result: Ok(value),
        }
    }

    /// A reply that failed with `error`; the status is taken from the error when it has one.
    pub fn failed(error: CallError) -> Reply<T> {
        let url = match &error {
            CallError::Unreachable { url, .. }
            | CallError::Timeout { url, .. }
            | CallError::Status { url, .. }
            | CallError::BadBody { url, .. }
            | CallError::InvalidRequest { url, .. } => url.clone(),
        };
        Reply {
            method: "GET".into(),
            url,
            status: error.http_status(),
            body: None,
            latency: Duration::ZERO,
            result: Err(error),
        }
    }

    pub fn with_latency(mut self, latency: Duration) -> Reply<T> {
        self.latency = latency;
        self
    }

    pub fn with_body(mut self, body: impl Into<String>) -> Reply<T> {
        self.body = Some(body.into());
        self
    }

    pub fn value(&self) -> Option<&T> {
        self.result.as_ref().ok()
    }

    pub fn error(&self) -> Option<&CallError> {
        self.result.as_ref().err()
    }

    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    pub fn into_result(self) -> Result<T, CallError> {
        self.result
    }

    /// Keeps the wire facts and transforms the value.
    pub fn map<U>(self, transform: impl FnOnce(T) -> U) -> Reply<U> {
        Reply {
            method: self.method,
            url: self.url,
            status: self.status,
            body: self.body,
            latency: self.latency,
            result: self.result.map(transform),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_call_and_the_cause() {
        let error = CallError::Status {
            method: "GET".into(),
            url: "http://h/v1/runs".into(),
            status: 401,
            error: ErrorBody::from_text(
                r#"{"detail":{"error":"unauthorized","message":"A valid key is required."}}"#,
            )
            .map(Box::new),
        };
        assert_eq!(
            error.to_string(),
            "GET http://h/v1/runs: HTTP 401 unauthorized: A valid key is required."
        );
        assert_eq!(error.http_status(), Some(401));
        assert_eq!(
            error.error_body().and_then(|e| e.code.as_deref()),
            Some("unauthorized")
        );
        let timeout = CallError::Timeout {
            method: "GET".into(),
            url: "http://h/readyz".into(),
            after: Duration::from_millis(1500),
            connected: true,
        };
        assert_eq!(
            timeout.to_string(),
            "GET http://h/readyz: connected, but no answer within 1500 ms"
        );
        assert!(timeout.is_no_answer());
        assert_eq!(timeout.kind(), "timeout");
    }

    #[test]
    fn built_replies_keep_their_facts() {
        let reply = Reply::answered("http://h/healthz", 200, 7)
            .with_latency(Duration::from_millis(3))
            .map(|v| v * 2);
        assert_eq!(reply.value(), Some(&14));
        assert_eq!(reply.status, Some(200));
        let failed: Reply<()> = Reply::failed(CallError::BadBody {
            method: "GET".into(),
            url: "u".into(),
            status: 200,
            reason: "x".into(),
        });
        assert_eq!(failed.status, Some(200));
        assert!(!failed.is_ok());
    }
}
