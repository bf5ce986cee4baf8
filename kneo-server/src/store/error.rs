//! Store errors and their stable, secret-free kinds.
//!
//! `/readyz` shows only the [`ErrorKind`] (safe to expose unauthenticated); the full message,
//! which may name a host or a file, is for the log and for authenticated `GET /v1/health`.

use std::fmt;

/// A stable classification of a store failure, shown by `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ConnectionRefused,
    AuthFailed,
    Timeout,
    SchemaMissing,
    SchemaTooNew,
    PermissionDenied,
    NotFound,
    DatabaseMissing,
    Corrupt,
    Locked,
    Io,
    Unavailable,
    /// No TLS session with Postgres: not offered while required, a broken handshake, or a
    /// server that requires TLS reached without it.
    TlsFailed,
    /// A certificate was refused: the server's by kneo (wrong CA, expired, wrong name), or
    /// kneo's client certificate by the server.
    CertificateInvalid,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectionRefused => "connection_refused",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::SchemaMissing => "schema_missing",
            ErrorKind::SchemaTooNew => "schema_too_new",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::DatabaseMissing => "database_missing",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Locked => "locked",
            ErrorKind::Io => "io_error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::TlsFailed => "tls_failed",
            ErrorKind::CertificateInvalid => "certificate_invalid",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed store operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: ErrorKind,
    /// What failed, with the operation and input; may name hosts or files, so never sent to
    /// unauthenticated callers.
    pub message: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> StoreError {
        StoreError::new(ErrorKind::Internal, message)
    }

    pub fn corrupt(message: impl Into<String>) -> StoreError {
        StoreError::new(ErrorKind::Corrupt, message)
    }

    /// `Some(kind)` when the store as a whole is unreachable or unusable (answer 503, retry later)
    /// rather than one operation having failed.
    pub fn unavailable_kind(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::Internal | ErrorKind::Corrupt | ErrorKind::NotFound => None,
            kind => Some(kind.as_str()),
        }
    }

    /// Classifies an I/O error from the continuation files or the SQLite file.
    pub fn from_io(context: &str, error: &std::io::Error) -> StoreError {
        let kind = match error.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        };
        StoreError::new(kind, format!("{context}: {error}"))
    }
}
