//! Which Postgres connection failures are TLS failures, and how to put any of them in one line.
//!
//! Two kinds, because they have different fixes: `certificate_invalid` (a certificate was
//! refused: the server's by kneo, wrong CA, expired, wrong name; or kneo's by the server) and
//! `tls_failed` (no TLS session at all: the server does not offer TLS while sslmode requires it,
//! the handshake broke, or the server requires TLS and kneo connected without it).

use std::error::Error as _;

use rustls::{AlertDescription, CertificateError};

/// A TLS failure's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// `tls_failed`: no TLS session could be set up.
    Handshake,
    /// `certificate_invalid`: a certificate was refused.
    Certificate,
}

/// The TLS failure behind a driver error, if that is what it is.
pub fn tls_failure(error: &tokio_postgres::Error) -> Option<TlsFailure> {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(failure) = rustls_failure(current) {
            return Some(failure);
        }
        // A custom io::Error hides its payload from `source()`; `get_ref` reaches it.
        if let Some(failure) = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| rustls_failure(inner))
        {
            return Some(failure);
        }
        source = current.source();
    }
    // The driver's own TLS errors ("server does not support TLS") carry no typed cause.
    if error.to_string() == "error performing TLS handshake" {
        return Some(TlsFailure::Handshake);
    }
    // A server whose pg_hba.conf only has `hostssl` lines refuses a plain connection with an
    // authorization error that says so.
    if let Some(db) = error.as_db_error()
        && db.code().code() == "28000"
        && db.message().ends_with("no encryption")
    {
        return Some(TlsFailure::Handshake);
    }
    None
}

fn rustls_failure(error: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let error = error.downcast_ref::<rustls::Error>()?;
    Some(match error {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsFailure::Certificate
        }
        // The server refused the certificate kneo sent (or that none was sent).
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired,
        ) => TlsFailure::Certificate,
        _ => TlsFailure::Handshake,
    })
}

/// What is wrong with a refused certificate, in words an operator can act on.
pub fn certificate_problem(error: &tokio_postgres::Error) -> Option<&'static str> {
    let mut source = error.source();
    while let Some(current) = source {
        let rustls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(problem)) = rustls {
            return Some(match problem {
                CertificateError::UnknownIssuer => {
                    "the server's certificate is not signed by a CA in sslrootcert"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired"
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet (check both clocks)"
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "the server's certificate does not name the host in the URL (sslmode=verify-full)"
                }
                _ => "the server's certificate was refused",
            });
        }
        source = current.source();
    }
    None
}

/// The error and its causes on one line (the driver's Display leaves the cause out).
pub fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string().replace('\n', " "));
        source = current.source();
    }
    if let Some(problem) = certificate_problem(error) {
        text.push_str(" (");
        text.push_str(problem);
        text.push(')');
    }
    text
}

/// [`describe`], sending TLS failures to their runbook section: the one-line message for tools
/// (backup, restore, verify) that report a driver error to an operator.
pub fn explain(error: &tokio_postgres::Error) -> String {
    let mut text = crate::redact::redacted_text(&describe(error));
    match tls_failure(error) {
        Some(TlsFailure::Handshake) => text.push_str(
            "; the TLS session failed: check sslmode against the server's ssl setting and pg_hba.conf (runbook § 2.9)",
        ),
        Some(TlsFailure::Certificate) => text.push_str(
            "; a certificate was refused: check sslrootcert, the server's certificate and sslcert/sslkey (runbook § 2.9)",
        ),
        None => {}
    }
    text
}
