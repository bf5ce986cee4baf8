//! What the run lifecycle can refuse or fail with, independent of HTTP. The API maps each case to
//! kneo-serv's envelope in one place (`api::error`), so the rules here never pick status codes.

use crate::spec::diagnostic::Diagnostic;
use crate::store::StoreError;

/// A failure of a [`super::Platform`] operation.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The run, task or other resource named does not exist.
    #[error("the requested resource was not found")]
    NotFound,
    /// The request cannot be served as given; the message says why and what to change.
    #[error("{0}")]
    InvalidRequest(String),
    /// The spec has error-severity diagnostics (runbook § 6.1).
    #[error("the spec is invalid")]
    SpecInvalid(Vec<Diagnostic>),
    /// A spec or overlay path leaves the spec root.
    #[error("{what} resolves outside the configured spec root")]
    PathConfined {
        /// `spec_path` or `overlay path`, as the answer names it.
        what: &'static str,
    },
    /// A referenced spec, overlay or skill file could not be read.
    #[error("a referenced file could not be read")]
    FileNotReadable,
    /// The stored policy of the run's environment blocks it.
    #[error("{message}")]
    EnvironmentPolicyBlocked {
        /// One line per blocking finding: `ERROR <code>: <message>`.
        message: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// Another request holds the named lock; retry when it is done (runbook § 8.1).
    #[error("another request holds the lock on {0}")]
    Locked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an environment problem; the cause is logged, the caller gets an opaque 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PlatformError {
    /// `400 spec_invalid` for a document that did not parse (size, encoding, YAML, nesting).
    pub fn unparseable(message: String) -> PlatformError {
        PlatformError::SpecInvalid(vec![parse_diagnostic(message)])
    }
}

/// A document that is not a parseable spec, as a diagnostic.
pub fn parse_diagnostic(message: String) -> Diagnostic {
    Diagnostic::error("E_SPEC_PARSE", "", message).suggest(
        "Fix the document so it is a single YAML mapping within the size and nesting limits.",
    )
}
