//! Specs: everything between the bytes a caller sends and the typed spec the engine runs.
//!
//! - [`parse`]: bounded, strict YAML/JSON parsing into a `serde_json::Value` ([`SpecLimits`]).
//! - [`path`]: confinement of `spec_path` (and overlay / skill paths) to the spec root, and the
//!   size-bounded read of a spec file.
//! - [`overrides`]: a request's `overrides` merged over the spec document before anything else.
//! - [`migrate`]: v0 → v1 migration; [`shorthand`]: kneo-serv's short forms, expanded.
//! - [`keys`]: every accepted key, with where it takes effect or why it has none.
//! - [`skill_source`]: skill sources confined to the spec root.
//! - [`model`]: the typed `version: v1` spec ([`Spec`]) the engine executes.
//! - [`validate`]: schema, reference, workflow-shape and governance checks producing
//!   [`Diagnostic`]s and, when there is no error, the [`Spec`]; the full code list is there.
//! - [`diagnostic`]: the diagnostic type, serialized as `POST /v1/specs/validate` returns it.
//! - `schema` (private): the strict reader behind the first validation pass.
//!
//! Typical use: `parse_yaml` (or `read_spec_file` / `parse_json_spec`), then `validate` with the
//! engine's [`Catalog`]; run `validation.spec` when `validation.valid()`.

pub mod diagnostic;
pub mod keys;
pub mod migrate;
pub mod model;
pub mod overrides;
pub mod parse;
pub mod path;
mod schema;
pub mod shorthand;
pub mod skill_source;
pub mod validate;

pub use diagnostic::{Diagnostic, Severity};
pub use model::Spec;
pub use parse::{SpecLimits, SpecParseError, parse_json_spec, parse_yaml};
pub use path::{SpecLoadError, SpecPathError, read_spec_file, resolve_spec_path};
pub use validate::{Catalog, StaticCatalog, Validation, validate};
