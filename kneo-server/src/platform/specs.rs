//! Loading specs for runs and validation: from a confined `spec_path` or inline JSON, parsed off
//! the async runtime (a hostile document can cost CPU, never a request thread), then validated.

use serde_json::{Map, Value};

use std::sync::Arc;

use super::Platform;
use super::error::PlatformError;
use super::layering::{self, Layers, SkillsOverlay};
use super::spec_cache::{CachedSpec, FileStamp};
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

/// A spec with the layers a request puts over it (`environment`, `overlays`, `overrides`).
#[derive(Debug, Clone)]
pub struct SpecRequest {
    pub source: SpecSource,
    pub environment: Option<String>,
    /// Overlay files, relative to the spec root, applied left to right.
    pub overlays: Vec<String>,
    pub overrides: Map<String, Value>,
}

impl SpecRequest {
    /// A spec with no layers.
    pub fn plain(source: SpecSource) -> SpecRequest {
        SpecRequest {
            source,
            environment: None,
            overlays: Vec::new(),
            overrides: Map::new(),
        }
    }

    /// The path as the caller gave it, for metadata and audit events.
    pub fn spec_path(&self) -> Option<&str> {
        match &self.source {
            SpecSource::Path(path) => Some(path),
            SpecSource::Inline(_) => None,
        }
    }
}

/// A request's spec read and layered, not yet validated.
#[derive(Debug, Clone)]
pub struct LayeredDocument {
    /// The base document as read (what a run freezes).
    pub base: Value,
    /// The overlay documents as read, in order.
    pub overlays: Vec<Value>,
    /// The base with every layer applied: what is validated and run.
    pub document: Value,
}

/// A spec that parsed and validated.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The base document as read (a run freezes it with `overlays`).
    pub value: Value,
    /// The overlay documents as read, in order.
    pub overlays: Vec<Value>,
    /// The layered document the spec was validated from.
    pub document: Value,
    pub spec: Spec,
    /// The path as the caller gave it (never the server's absolute path).
    pub spec_path: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
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

/// Why a spec document could not be read.
enum DocumentError {
    Confined,
    NotReadable,
    /// The bytes are not a usable spec document (size, encoding, YAML, nesting, aliases).
    Parse(String),
    Internal,
}

impl DocumentError {
    /// The failure for a document named `what` (`spec_path` or `overlay path`).
    fn into_platform_error(self, what: &'static str) -> PlatformError {
        match self {
            DocumentError::Confined => PlatformError::PathConfined { what },
            DocumentError::NotReadable => PlatformError::FileNotReadable,
            DocumentError::Parse(message) => PlatformError::unparseable(message),
            DocumentError::Internal => {
                PlatformError::Internal("the spec reader task stopped".into())
            }
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
                    SpecLoadError::Path(SpecPathError::NotReadable) => DocumentError::NotReadable,
                    SpecLoadError::Parse(parse) => DocumentError::Parse(parse.to_string()),
                }),
            SpecSource::Inline(value) => parse_json_spec(value, &limits)
                .map_err(|parse| DocumentError::Parse(parse.to_string())),
        })
        .await
        .unwrap_or(Err(DocumentError::Internal))
    }

    /// Reads the overlay files of a request, in order.
    async fn read_overlays(&self, paths: &[String]) -> Result<Vec<Value>, PlatformError> {
        let mut overlays = Vec::with_capacity(paths.len());
        for path in paths {
            let overlay = self
                .read_document(&SpecSource::Path(path.clone()))
                .await
                .map_err(|error| error.into_platform_error("overlay path"))?;
            overlays.push(overlay);
        }
        Ok(overlays)
    }

    /// Reads a request's spec and overlays and layers them (`skills` applies to runs only).
    /// A document that does not parse is `Err(Ok(message))`, for routes that report it as a
    /// diagnostic; everything else that stops the read is the API error.
    async fn read_layered(
        &self,
        request: &SpecRequest,
        skills: Option<&SkillsOverlay>,
    ) -> Result<LayeredDocument, Result<String, PlatformError>> {
        let base = match self.read_document(&request.source).await {
            Ok(base) => base,
            Err(DocumentError::Parse(message)) => return Err(Ok(message)),
            Err(error) => return Err(Err(error.into_platform_error("spec_path"))),
        };
        let overlays = self.read_overlays(&request.overlays).await.map_err(Err)?;
        let layers = Layers {
            overlays: overlays.clone(),
            overrides: request.overrides.clone(),
            environment: request.environment.clone(),
            skills: skills.cloned(),
        };
        let document = layering::layered(&base, &layers)
            .map_err(|error| Err(PlatformError::InvalidRequest(error.to_string())))?;
        Ok(LayeredDocument {
            base,
            overlays,
            document,
        })
    }

    /// A request's spec layered, for routes that need the document itself (the policy report,
    /// the environment gate); an unparseable document is `400 spec_invalid`.
    pub async fn layered_document(
        &self,
        request: &SpecRequest,
        skills: Option<&SkillsOverlay>,
    ) -> Result<LayeredDocument, PlatformError> {
        self.read_layered(request, skills).await.map_err(|error| {
            error
                .map(PlatformError::unparseable)
                .unwrap_or_else(|error| error)
        })
    }

    /// Validates a spec for `POST /v1/specs/validate`: problems with the document come back as
    /// diagnostics; only an unreadable or confined path is an HTTP error.
    pub async fn validate_spec(&self, request: &SpecRequest) -> Result<Validation, PlatformError> {
        match self.read_layered(request, None).await {
            Ok(layered) => {
                let engine = self.engine.clone();
                let document = layered.document;
                tokio::task::spawn_blocking(move || validate_for_this_build(&document, &engine))
                    .await
                    .map_err(|_| PlatformError::Internal("the spec validation task stopped".into()))
            }
            Err(Ok(message)) => Ok(Validation {
                diagnostics: vec![super::error::parse_diagnostic(message)],
                spec: None,
            }),
            Err(Err(error)) => Err(error),
        }
    }

    /// Loads a spec a run will execute: any error-severity diagnostic is `400 spec_invalid`.
    /// A spec file without layers is served from the [`super::spec_cache`] while unchanged.
    pub async fn load_run_spec(
        &self,
        request: &SpecRequest,
        skills: Option<&SkillsOverlay>,
    ) -> Result<LoadedSpec, PlatformError> {
        let plain = request.overlays.is_empty()
            && request.overrides.is_empty()
            && request.environment.is_none()
            && skills.is_none_or(SkillsOverlay::is_empty);
        if let (true, SpecSource::Path(requested)) = (plain, &request.source) {
            let loaded = match self.spec_cache.fresh(requested) {
                Some(cached) => cached,
                None => self.load_spec_file(requested).await?,
            };
            return Ok(LoadedSpec {
                value: loaded.value.clone(),
                overlays: Vec::new(),
                document: loaded.value.clone(),
                spec: loaded.spec.clone(),
                spec_path: Some(requested.clone()),
                diagnostics: loaded.diagnostics.clone(),
            });
        }
        if let SpecSource::Path(requested) = &request.source {
            // Confinement and readability answer first, as for a plain file.
            self.check_spec_file(requested).await?;
        }
        let layered = self.layered_document(request, skills).await?;
        let validated = self.validated(layered.document.clone()).await?;
        Ok(LoadedSpec {
            value: layered.base,
            overlays: layered.overlays,
            document: layered.document,
            spec: validated.spec.clone(),
            spec_path: request.spec_path().map(str::to_string),
            diagnostics: validated.diagnostics.clone(),
        })
    }

    /// Confinement and readability of a spec file, as the API reports them.
    async fn check_spec_file(&self, requested: &str) -> Result<(), PlatformError> {
        self.file_stamp(requested).await.map(|_| ())
    }

    /// Checks the file behind `requested` and reads, parses and validates it unless the cache
    /// already holds it unchanged.
    async fn load_spec_file(&self, requested: &str) -> Result<Arc<CachedSpec>, PlatformError> {
        let stamp = match self.file_stamp(requested).await {
            Ok(stamp) => stamp,
            Err(error) => {
                self.spec_cache.remove(requested);
                return Err(error);
            }
        };
        if let Some(cached) = self.spec_cache.unchanged(requested, &stamp) {
            return Ok(cached);
        }
        let value = self
            .read_document(&SpecSource::Path(requested.to_string()))
            .await
            .map_err(|error| error.into_platform_error("spec_path"))?;
        let validated = self.validated(value).await?;
        self.spec_cache.insert(requested, stamp, validated.clone());
        Ok(validated)
    }

    /// What identifies the content of the confined file behind `requested`.
    async fn file_stamp(&self, requested: &str) -> Result<FileStamp, PlatformError> {
        let root = self.config.spec_root.clone();
        let max_path_chars = self.config.limits.max_path_chars;
        let path = requested.to_string();
        let stamp = tokio::task::spawn_blocking(move || -> Result<FileStamp, DocumentError> {
            let canonical =
                resolve_spec_path(&root, &path, max_path_chars).map_err(|error| match error {
                    SpecPathError::Confined => DocumentError::Confined,
                    SpecPathError::NotReadable => DocumentError::NotReadable,
                })?;
            let metadata = std::fs::metadata(&canonical).map_err(|_| DocumentError::NotReadable)?;
            Ok(FileStamp {
                canonical,
                len: metadata.len(),
                modified: metadata.modified().ok(),
            })
        })
        .await
        .unwrap_or(Err(DocumentError::Internal));
        stamp.map_err(|error| error.into_platform_error("spec_path"))
    }

    /// Validates a parsed document off the async runtime.
    pub(super) async fn validated(&self, value: Value) -> Result<Arc<CachedSpec>, PlatformError> {
        let engine = self.engine.clone();
        let checked = value.clone();
        let validation = tokio::task::spawn_blocking(move || validate(&checked, engine.as_ref()))
            .await
            .map_err(|_| PlatformError::Internal("the spec validation task stopped".into()))?;
        let Some(spec) = validation.spec else {
            return Err(PlatformError::SpecInvalid(validation.diagnostics));
        };
        Ok(Arc::new(CachedSpec {
            value,
            spec,
            diagnostics: validation.diagnostics,
        }))
    }
}
