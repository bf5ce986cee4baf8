//! Turning Postgres, pool and timeout failures into the store's stable, secret-free error kinds.
//!
//! The kind is what `/readyz` shows unauthenticated callers, so it is decided from SQLSTATE codes
//! and I/O error kinds only. The message keeps the operation and the server's words for the log,
//! passed through the redactor in case a driver message ever quotes the DSN.

use std::error::Error as _;
use std::time::Duration;

use deadpool_postgres::PoolError;

use crate::postgres_client::failure::{TlsFailure, describe, tls_failure};
use crate::redact::redacted_text;
use crate::store::{ErrorKind, StoreError};

/// A failed attempt at an operation: the store error, and whether running the whole transaction
/// again may succeed (a deadlock or serialization failure that Postgres resolved by aborting us).
#[derive(Debug)]
pub(super) struct Failure {
    pub error: StoreError,
    pub retryable: bool,
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure {
            error,
            retryable: false,
        }
    }
}

/// `map_err` adapter: classifies a driver error, naming the operation that failed.
pub(super) fn database(operation: &str) -> impl FnOnce(tokio_postgres::Error) -> Failure + '_ {
    move |error| classify(&error, operation)
}

/// Classifies a driver error.
pub(super) fn classify(error: &tokio_postgres::Error, operation: &str) -> Failure {
    let message = redacted_text(&format!("{operation}: {}", describe(error)));
    let mut retryable = false;
    let tls = tls_failure(error);
    let kind = match error.code().map(|code| code.code()) {
        _ if tls == Some(TlsFailure::Handshake) => ErrorKind::TlsFailed,
        _ if tls == Some(TlsFailure::Certificate) => ErrorKind::CertificateInvalid,
        Some("28P01" | "28000") => ErrorKind::AuthFailed,
        Some("3D000") => ErrorKind::DatabaseMissing,
        // 3F000: the schema in search_path is gone (e.g. `DROP SCHEMA public`), same runbook step.
        Some("42P01" | "3F000") => ErrorKind::SchemaMissing,
        Some("42501") => ErrorKind::PermissionDenied,
        Some("40001" | "40P01") => {
            retryable = true;
            ErrorKind::Internal
        }
        // statement_timeout or a cancelled query.
        Some("57014") => ErrorKind::Timeout,
        // The server is shutting down, crashed, still starting, or out of connection slots: all
        // go away by themselves, so the store is unavailable rather than broken.
        Some("57P01" | "57P02" | "57P03" | "53300") => ErrorKind::Unavailable,
        Some(code) if code.starts_with("08") => ErrorKind::Unavailable,
        Some(_) => ErrorKind::Internal,
        None => classify_transport(error),
    };
    Failure {
        error: StoreError::new(kind, message),
        retryable,
    }
}

/// Errors without a SQLSTATE: the socket, the handshake, or a closed connection.
fn classify_transport(error: &tokio_postgres::Error) -> ErrorKind {
    if let Some(io) = io_source(error) {
        use std::io::ErrorKind as Io;
        return match io.kind() {
            Io::ConnectionRefused
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::AddrNotAvailable => ErrorKind::ConnectionRefused,
            Io::TimedOut => ErrorKind::Timeout,
            // A name that does not resolve is "no route" to the operator, as far as kinds go.
            _ if error.to_string().starts_with("error connecting to server") => {
                ErrorKind::ConnectionRefused
            }
            _ => ErrorKind::Unavailable,
        };
    }
    // The driver's Display is the only public view of its error kind for these cases.
    let text = error.to_string();
    if error.is_closed() {
        ErrorKind::Unavailable
    } else if text.starts_with("authentication error") {
        ErrorKind::AuthFailed
    } else if text.starts_with("error connecting to server") {
        ErrorKind::ConnectionRefused
    } else if text.starts_with("timeout waiting for server") {
        ErrorKind::Timeout
    } else {
        ErrorKind::Internal
    }
}

fn io_source(error: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = current.source();
    }
    None
}

/// Classifies a failure to get a pooled connection.
pub(super) fn pool(error: PoolError, target: &str) -> StoreError {
    match error {
        PoolError::Backend(error) => {
            classify(&error, &format!("connecting to Postgres at {target}")).error
        }
        PoolError::Timeout(stage) => StoreError::new(
            ErrorKind::Timeout,
            format!(
                "connecting to Postgres at {target}: the connection pool timed out ({stage:?}); the server is slow, hanging or out of connections (runbook § 2.2)"
            ),
        ),
        PoolError::Closed => StoreError::new(
            ErrorKind::Unavailable,
            format!("the Postgres connection pool for {target} is closed"),
        ),
        PoolError::NoRuntimeSpecified => {
            StoreError::internal("the Postgres connection pool has no runtime for its timeouts")
        }
        PoolError::PostCreateHook(error) => StoreError::internal(redacted_text(&format!(
            "preparing a new Postgres connection to {target}: {error}"
        ))),
    }
}

/// An operation that did not finish within its time bound.
pub(super) fn timed_out(operation: &str, limit: Duration, target: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Timeout,
        format!(
            "{operation}: Postgres at {target} did not answer within {} ms (runbook § 2.2)",
            limit.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_is_internal_and_keeps_the_operation() {
        let error = "host=/nonexistent port=notanumber"
            .parse::<tokio_postgres::Config>()
            .expect_err("bad port");
        let failure = classify(&error, "reading the URL");
        assert_eq!(failure.error.kind, ErrorKind::Internal);
        assert!(
            failure
                .error
                .message
                .starts_with("reading the URL: invalid connection string"),
            "{}",
            failure.error.message
        );
        assert!(!failure.retryable);
    }

    #[test]
    fn a_pool_timeout_is_a_timeout() {
        let error = pool(
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait),
            "db:5432/kneo",
        );
        assert_eq!(error.kind, ErrorKind::Timeout);
        assert!(error.message.contains("db:5432/kneo"), "{}", error.message);
    }
}
