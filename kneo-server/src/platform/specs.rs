//! Loading specs for runs and validation: from a confined `spec_path` or inline JSON, parsed off
//! the async runtime (a hostile document can cost CPU, never a request thread), then validated.

use axum::http::StatusCode;
use serde_json::{Value, json};

use std::sync::Arc;

use super::Platform;
use super::spec_cache::{CachedSpec, FileStamp};
use crate::api::error::ApiError;
use crate::engine::plan::CompileError;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::Spec;
use crate::spec::parse::{SpecLimits, parse_json_spec};
use crate::spec::path::{SpecLoadError, SpecPathError, read_spec_file, resolve_spec_path};
use crate::spec::validate::{Validation, validate};

/// Where a spec comes from.
#[derive(Debug, Clone)]
pub enum SpecSource {
    /// A path relative to `KNEO_SERV_SPEC_ROOT`.
    Path(String),
    /// A spec object sent in the request.
    Inline(Value),
}

/// A spec that parsed and validated.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub value: Value,
    pub spec: Spec,
    /// The path as the caller gave it (never the server's absolute path).
    pub spec_path: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// `400 spec_invalid` carrying the diagnostics (runbook § 6.1).
pub fn spec_invalid(diagnostics: Vec<Diagnostic>) -> ApiError {
    let first = diagnostics
        .iter()
        .find(|d| d.is_error())
        .map(|d| format!(" First error: {} at {}: {}", d.code, d.path, d.message))
        .unwrap_or_default();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "spec_invalid",
        format!("The spec is invalid (runbook § 6.1).{first}"),
    )
    .with("diagnostics", json!(diagnostics))
}

/// A diagnostic for a spec that validated but cannot be compiled on this build.
pub fn compile_diagnostic(error: &CompileError) -> Diagnostic {
    Diagnostic::error(error.code, error.path.clone(), error.message.clone())
}

/// Validates `value` and, when it is valid, also compiles it for both targets: a spec this build
/// cannot run (an unavailable provider, an unsupported workflow type) must not be reported valid.
pub fn validate_for_this_build(value: &Value, engine: &crate::engine::Engine) -> Validation {
    let mut validation = validate(value, engine);
    if let Some(spec) = &validation.spec {
        let mut problems = Vec::new();
        for target in ["workflow", "agent"] {
            if let Err(error) = crate::engine::plan::compile(spec, target, engine) {
                let diagnostic = compile_diagnostic(&error);
                if !problems.contains(&diagnostic) {
                    problems.push(diagnostic);
                }
            }
        }
        if !problems.is_empty() {
            validation.diagnostics.extend(problems);
            validation.spec = None;
        }
    }
    validation
}

/// A document that is not a parseable spec, as a diagnostic.
fn parse_diagnostic(message: String) -> Diagnostic {
    Diagnostic::error("E_SPEC_PARSE", "", message).suggest(
        "Fix the document so it is a single YAML mapping within the size and nesting limits.",
    )
}

/// Why a spec document could not be read.
enum DocumentError {
    Confined,
    /// The path as the caller gave it, and the configured root it is read under: both are the
    /// caller's or the operator's own words, so naming them tells nothing about the host.
    NotReadable {
        requested: String,
        root: std::path::PathBuf,
    },
    /// The bytes are not a usable spec document (size, encoding, YAML, nesting, aliases).
    Parse(String),
    Internal,
}

impl DocumentError {
    fn into_api_error(self) -> ApiError {
        match self {
            DocumentError::Confined => ApiError::spec_path_confined(),
            DocumentError::NotReadable { requested, root } => ApiError::invalid_request(format!(
                "A referenced file could not be read: spec_path {requested:?} under the spec root {} \
                 (KNEO_SERV_SPEC_ROOT; unset: the working directory); check that the file exists there and the service may read it (runbook § 6.4).",
                root.display()
            )),
            DocumentError::Parse(message) => spec_invalid(vec![parse_diagnostic(message)]),
            DocumentError::Internal => ApiError::internal(),
        }
    }
}

impl Platform {
    fn spec_limits(&self) -> SpecLimits {
        SpecLimits {
            max_bytes: self.config.limits.max_inline_spec_bytes,
            ..SpecLimits::default()
        }
    }

    /// Reads and parses a spec document without validating it.
    async fn read_document(&self, source: &SpecSource) -> Result<Value, DocumentError> {
        let limits = self.spec_limits();
        let root = self.config.spec_root.clone();
        let max_path_chars = self.config.limits.max_path_chars;
        let source = source.clone();
        tokio::task::spawn_blocking(move || match &source {
            SpecSource::Path(path) if path.chars().count() > max_path_chars => {
                Err(DocumentError::Confined)
            }
            SpecSource::Path(path) => read_spec_file(&root, path, &limits)
                .map(|(value, _)| value)
                .map_err(|error| match error {
                    SpecLoadError::Path(SpecPathError::Confined) => DocumentError::Confined,
                    SpecLoadError::Path(SpecPathError::NotReadable) => DocumentError::NotReadable {
                        requested: path.clone(),
                        root: root.clone(),
                    },
                    SpecLoadError::Parse(parse) => DocumentError::Parse(parse.to_string()),
                }),
            SpecSource::Inline(value) => parse_json_spec(value, &limits)
                .map_err(|parse| DocumentError::Parse(parse.to_string())),
        })
        .await
        .unwrap_or(Err(DocumentError::Internal))
    }

    /// Validates a spec for `POST /v1/specs/validate`: problems with the document come back as
    /// diagnostics; only an unreadable or confined path is an HTTP error.
    pub async fn validate_spec(&self, source: &SpecSource) -> Result<Validation, ApiError> {
        match self.read_document(source).await {
            Ok(value) => {
                let engine = self.engine.clone();
                tokio::task::spawn_blocking(move || validate_for_this_build(&value, &engine))
                    .await
                    .map_err(|_| ApiError::internal())
            }
            Err(DocumentError::Parse(message)) => Ok(Validation {
                diagnostics: vec![parse_diagnostic(message)],
                spec: None,
            }),
            Err(error) => Err(error.into_api_error()),
        }
    }

    /// Loads a spec a run will execute: any error-severity diagnostic is `400 spec_invalid`.
    /// Spec files are served from the [`super::spec_cache`] while unchanged.
    pub async fn load_run_spec(&self, source: &SpecSource) -> Result<LoadedSpec, ApiError> {
        let SpecSource::Path(requested) = source else {
            let value = self
                .read_document(source)
                .await
                .map_err(DocumentError::into_api_error)?;
            let validated = self.validated(value).await?;
            return Ok(LoadedSpec {
                value: validated.value.clone(),
                spec: validated.spec.clone(),
                spec_path: None,
                diagnostics: validated.diagnostics.clone(),
            });
        };
        let loaded = match self.spec_cache.fresh(requested) {
            Some(cached) => cached,
            None => self.load_spec_file(requested).await?,
        };
        Ok(LoadedSpec {
            value: loaded.value.clone(),
            spec: loaded.spec.clone(),
            spec_path: Some(requested.clone()),
            diagnostics: loaded.diagnostics.clone(),
        })
    }

    /// Checks the file behind `requested` and reads, parses and validates it unless the cache
    /// already holds it unchanged.
    async fn load_spec_file(&self, requested: &str) -> Result<Arc<CachedSpec>, ApiError> {
        let root = self.config.spec_root.clone();
        let max_path_chars = self.config.limits.max_path_chars;
        let path = requested.to_string();
        let stamp = tokio::task::spawn_blocking(move || -> Result<FileStamp, DocumentError> {
            let not_readable = || DocumentError::NotReadable {
                requested: path.clone(),
                root: root.clone(),
            };
            let canonical =
                resolve_spec_path(&root, &path, max_path_chars).map_err(|error| match error {
                    SpecPathError::Confined => DocumentError::Confined,
                    SpecPathError::NotReadable => not_readable(),
                })?;
            let metadata = std::fs::metadata(&canonical).map_err(|_| not_readable())?;
            Ok(FileStamp {
                canonical,
                len: metadata.len(),
                modified: metadata.modified().ok(),
            })
        })
        .await
        .unwrap_or(Err(DocumentError::Internal));
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(error) => {
                self.spec_cache.remove(requested);
                return Err(error.into_api_error());
            }
        };
        if let Some(cached) = self.spec_cache.unchanged(requested, &stamp) {
            return Ok(cached);
        }
        let value = self
            .read_document(&SpecSource::Path(requested.to_string()))
            .await
            .map_err(DocumentError::into_api_error)?;
        let validated = self.validated(value).await?;
        self.spec_cache.insert(requested, stamp, validated.clone());
        Ok(validated)
    }

    /// Validates a parsed document off the async runtime.
    async fn validated(&self, value: Value) -> Result<Arc<CachedSpec>, ApiError> {
        let engine = self.engine.clone();
        let checked = value.clone();
        let validation = tokio::task::spawn_blocking(move || validate(&checked, engine.as_ref()))
            .await
            .map_err(|_| ApiError::internal())?;
        let Some(spec) = validation.spec else {
            return Err(spec_invalid(validation.diagnostics));
        };
        Ok(Arc::new(CachedSpec {
            value,
            spec,
            diagnostics: validation.diagnostics,
        }))
    }
}
