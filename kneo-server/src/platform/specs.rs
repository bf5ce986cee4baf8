//! Loading specs for runs and validation: from a confined `spec_path` or inline JSON, parsed off
//! the async runtime (a hostile document can cost CPU, never a request thread), then validated.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Platform;
use super::error::PlatformError;
use super::layering::{self, Layers, SkillsOverlay};
use super::spec_cache::{CachedSpec, FileStamp};
use crate::api::error::ApiError;
use crate::engine::plan::CompileError;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::Spec;
use crate::spec::parse::{SpecLimits, parse_json_spec};
use crate::spec::path::{SpecLoadError, SpecPathError, read_resolved_spec, resolve_spec_path};
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

/// The error a run answers for an invalid spec: `400 invalid_request` for a version this build
/// cannot read (kneo-serv's answer), `400 spec_invalid` with the diagnostics otherwise.
///
/// Skill sources are refused as kneo-serv refuses them when a run freezes its skills: `422
/// spec_path_confined` for one outside the spec root (or with `..` / `~`), `400 invalid_request`
/// for one that does not exist.
pub fn refusal(diagnostics: Vec<Diagnostic>) -> ApiError {
    use crate::spec::validate::codes;
    let is_skill_source = |diagnostic: &Diagnostic| {
        diagnostic.path.starts_with("skills.") && diagnostic.path.ends_with(".source")
    };
    if let Some(version) = diagnostics.iter().find(|d| d.code == codes::E_SPEC_VERSION) {
        return ApiError::invalid_request(version.message.clone());
    }
    if diagnostics.iter().any(|d| {
        is_skill_source(d)
            && (d.code == codes::E_SKILL_SOURCE_CONFINED || d.code == codes::E_SCHEMA)
    }) {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "spec_path_confined",
            crate::spec::skill_source::CONFINED_MESSAGE,
        );
    }
    if diagnostics
        .iter()
        .any(|d| d.code == codes::E_SKILL_SOURCE_UNREADABLE)
    {
        return ApiError::invalid_request("A referenced file could not be read.");
    }
    spec_invalid(diagnostics)
}

/// A diagnostic for a spec that validated but cannot be compiled on this build.
pub fn compile_diagnostic(error: &CompileError) -> Diagnostic {
    Diagnostic::error(error.code, error.path.clone(), error.message.clone())
}

/// Validates `value` and, when it is valid, also compiles it for both targets: a spec this build
/// cannot run (an unavailable provider, an unsupported workflow type) must not be reported valid.
///
/// `kneo spec validate`, `POST /v1/specs/validate`, runs and continuations all take this one
/// path, so they give one verdict for one spec.
///
/// `skill_root` is the spec root skill sources must lie in; `None` skips that check (a frozen
/// run resumes with the skills it froze, whatever the disk holds now).
pub fn validate_for_this_build(
    value: &Value,
    engine: &crate::engine::Engine,
    skill_root: Option<&Path>,
) -> Validation {
    let mut validation = validate(value, engine);
    if let (Some(spec), Some(root)) = (&validation.spec, skill_root) {
        let problems = crate::spec::skill_source::check_skill_sources(spec, root);
        if !problems.is_empty() {
            validation.diagnostics.extend(problems);
            validation.spec = None;
        }
    }
    if let Some(spec) = &validation.spec {
        validation
            .diagnostics
            .extend(crate::engine::plan::runtime_notes(spec));
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
        self.into_api_error_for("spec_path")
    }

    /// The failure for a document named `what` (`spec_path` or `overlay path`).
    fn into_api_error_for(self, what: &'static str) -> ApiError {
        match self {
            DocumentError::Confined if what == "spec_path" => ApiError::spec_path_confined(),
            DocumentError::Confined => PlatformError::PathConfined { what }.into(),
            DocumentError::NotReadable { requested, root } => ApiError::invalid_request(format!(
                "A referenced file could not be read: {what} {requested:?} under the spec root {} \
                 (KNEO_SERV_SPEC_ROOT; unset: the working directory); check that the file exists there and the service may read it (runbook § 6.4).",
                root.display()
            )),
            DocumentError::Parse(message) => {
                spec_invalid(vec![super::error::parse_diagnostic(message)])
            }
            DocumentError::Internal => ApiError::internal(),
        }
    }
}

/// Where caller-named spec files may come from: inside the spec root, never inside the
/// service's own state directory (which the default spec root, the working directory, holds).
struct Confinement {
    root: PathBuf,
    state_dir: PathBuf,
    max_path_chars: usize,
}

impl Confinement {
    /// The canonical path of `requested`, or why it may not be read.
    fn resolve(&self, requested: &str) -> Result<PathBuf, DocumentError> {
        if requested.chars().count() > self.max_path_chars {
            return Err(DocumentError::Confined);
        }
        let canonical =
            resolve_spec_path(&self.root, requested, self.max_path_chars).map_err(|error| {
                match error {
                    SpecPathError::Confined => DocumentError::Confined,
                    SpecPathError::NotReadable => DocumentError::NotReadable {
                        requested: requested.to_string(),
                        root: self.root.clone(),
                    },
                }
            })?;
        // A state directory that does not exist holds nothing to protect.
        if let Ok(state_dir) = self.state_dir.canonicalize()
            && canonical.starts_with(&state_dir)
        {
            return Err(DocumentError::Confined);
        }
        Ok(canonical)
    }
}

impl Platform {
    fn confinement(&self) -> Confinement {
        Confinement {
            root: self.config.spec_root.clone(),
            state_dir: self.config.state_dir.clone(),
            max_path_chars: self.config.limits.max_path_chars,
        }
    }

    fn spec_limits(&self) -> SpecLimits {
        SpecLimits {
            max_bytes: self.config.limits.max_inline_spec_bytes,
            ..SpecLimits::default()
        }
    }

    /// Reads and parses a spec document without validating it.
    async fn read_document(&self, source: &SpecSource) -> Result<Value, DocumentError> {
        let limits = self.spec_limits();
        let confinement = self.confinement();
        let source = source.clone();
        tokio::task::spawn_blocking(move || match &source {
            SpecSource::Path(path) => {
                let resolved = confinement.resolve(path)?;
                read_resolved_spec(&resolved, &limits).map_err(|error| match error {
                    SpecLoadError::Path(SpecPathError::Confined) => DocumentError::Confined,
                    SpecLoadError::Path(SpecPathError::NotReadable) => DocumentError::NotReadable {
                        requested: path.clone(),
                        root: confinement.root.clone(),
                    },
                    SpecLoadError::Parse(parse) => DocumentError::Parse(parse.to_string()),
                })
            }
            SpecSource::Inline(value) => parse_json_spec(value, &limits)
                .map_err(|parse| DocumentError::Parse(parse.to_string())),
        })
        .await
        .unwrap_or(Err(DocumentError::Internal))
    }

    /// Reads the overlay files of a request, in order.
    async fn read_overlays(&self, paths: &[String]) -> Result<Vec<Value>, ApiError> {
        let mut overlays = Vec::with_capacity(paths.len());
        for path in paths {
            let overlay = self
                .read_document(&SpecSource::Path(path.clone()))
                .await
                .map_err(|error| error.into_api_error_for("overlay path"))?;
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
    ) -> Result<LayeredDocument, Result<String, ApiError>> {
        let base = match self.read_document(&request.source).await {
            Ok(base) => base,
            Err(DocumentError::Parse(message)) => return Err(Ok(message)),
            Err(error) => return Err(Err(error.into_api_error())),
        };
        let overlays = self.read_overlays(&request.overlays).await.map_err(Err)?;
        let layers = Layers {
            overlays: overlays.clone(),
            overrides: request.overrides.clone(),
            environment: request.environment.clone(),
            skills: skills.cloned(),
        };
        let document = layering::layered(&base, &layers)
            .map_err(|error| Err(ApiError::invalid_request(error.to_string())))?;
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
    ) -> Result<LayeredDocument, ApiError> {
        self.read_layered(request, skills).await.map_err(|error| {
            error
                .map(|message| spec_invalid(vec![super::error::parse_diagnostic(message)]))
                .unwrap_or_else(|error| error)
        })
    }

    /// Validates a spec for `POST /v1/specs/validate`: problems with the document come back as
    /// diagnostics; only an unreadable or confined path is an HTTP error. The request's layers
    /// (overlays, `overrides`, environment) are applied first, as a run with them would be.
    pub async fn validate_spec(&self, request: &SpecRequest) -> Result<Validation, ApiError> {
        match self.read_layered(request, None).await {
            Ok(layered) => {
                let engine = self.engine.clone();
                let root = self.config.spec_root.clone();
                let document = layered.document;
                tokio::task::spawn_blocking(move || {
                    validate_for_this_build(&document, &engine, Some(&root))
                })
                .await
                .map_err(|_| ApiError::internal())
            }
            Err(Ok(message)) => Ok(Validation {
                diagnostics: vec![super::error::parse_diagnostic(message)],
                spec: None,
            }),
            Err(Err(error)) => Err(error),
        }
    }

    /// Loads a spec a run will execute: any error-severity diagnostic is `400 spec_invalid`.
    /// A spec file without layers is served from the [`super::spec_cache`] while unchanged
    /// (the cache holds files as written, so a layered file is read and checked afresh); the
    /// layered document is what the run validates and executes.
    pub async fn load_run_spec(
        &self,
        request: &SpecRequest,
        skills: Option<&SkillsOverlay>,
    ) -> Result<LoadedSpec, ApiError> {
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

    /// Checks the file behind `requested` and reads, parses and validates it unless the cache
    /// already holds it unchanged.
    async fn load_spec_file(&self, requested: &str) -> Result<Arc<CachedSpec>, ApiError> {
        let confinement = self.confinement();
        let path = requested.to_string();
        let stamp = tokio::task::spawn_blocking(move || -> Result<FileStamp, DocumentError> {
            let canonical = confinement.resolve(&path)?;
            let metadata =
                std::fs::metadata(&canonical).map_err(|_| DocumentError::NotReadable {
                    requested: path.clone(),
                    root: confinement.root.clone(),
                })?;
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

    /// Validates a parsed document off the async runtime, as `POST /v1/specs/validate` does.
    pub(super) async fn validated(&self, value: Value) -> Result<Arc<CachedSpec>, ApiError> {
        let engine = self.engine.clone();
        let checked = value.clone();
        let root = self.config.spec_root.clone();
        let validation = tokio::task::spawn_blocking(move || {
            validate_for_this_build(&checked, engine.as_ref(), Some(&root))
        })
        .await
        .map_err(|_| ApiError::internal())?;
        let Some(spec) = validation.spec else {
            return Err(refusal(validation.diagnostics));
        };
        Ok(Arc::new(CachedSpec {
            value,
            spec,
            diagnostics: validation.diagnostics,
        }))
    }
}
