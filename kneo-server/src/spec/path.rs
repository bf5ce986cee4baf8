//! Confinement of caller-supplied spec paths (`spec_path`, overlays, skill sources) to the
//! configured spec root, and the size-bounded read of a confined spec file.
//!
//! The errors' Display texts are the exact kneo-serv 1.2 messages and never include a server
//! path: a caller must not learn the layout of the host from a rejected request.

use super::parse::{SpecLimits, SpecParseError, parse_yaml};
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

/// Default for `KNEO_SERV_MAX_PATH_CHARS`, used by [`read_spec_file`].
pub const DEFAULT_MAX_PATH_CHARS: usize = 4096;

/// Why a requested spec path was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecPathError {
    /// HTTP 422 `spec_path_confined`: absolute, `..`, `~`, NUL, over-long, or a symlink that
    /// leaves the root.
    #[error("spec_path resolves outside the configured spec root.")]
    Confined,
    /// HTTP 400 `invalid_request`: the file is missing, is not a regular file, or cannot be
    /// opened.
    #[error("A referenced file could not be read.")]
    NotReadable,
}

/// Why a spec file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecLoadError {
    #[error(transparent)]
    Path(#[from] SpecPathError),
    #[error(transparent)]
    Parse(#[from] SpecParseError),
}

/// Resolves `requested` (relative to `root`) to a canonical path inside the canonical root.
///
/// Lexical checks come first so that hostile paths are refused without touching the
/// filesystem; the canonical-prefix check then catches symlinks that point outside the root.
pub fn resolve_spec_path(
    root: &Path,
    requested: &str,
    max_chars: usize,
) -> Result<PathBuf, SpecPathError> {
    if requested.chars().count() > max_chars
        || requested.contains('\0')
        || requested.starts_with('~')
    {
        return Err(SpecPathError::Confined);
    }
    let relative = Path::new(requested);
    let lexically_confined = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
    if !lexically_confined {
        // Absolute paths start with RootDir; traversal contains ParentDir.
        return Err(SpecPathError::Confined);
    }
    if requested.trim().is_empty() {
        return Err(SpecPathError::NotReadable);
    }
    let canonical_root = root
        .canonicalize()
        .map_err(|_| SpecPathError::NotReadable)?;
    let canonical = canonical_root
        .join(relative)
        .canonicalize()
        .map_err(|_| SpecPathError::NotReadable)?;
    if !canonical.starts_with(&canonical_root) {
        return Err(SpecPathError::Confined);
    }
    // Only a regular file is a spec: opening a FIFO or a device would block or read forever.
    // The metadata call follows the (already canonical) path without opening it.
    let metadata = std::fs::metadata(&canonical).map_err(|_| SpecPathError::NotReadable)?;
    if !metadata.is_file() {
        return Err(SpecPathError::NotReadable);
    }
    Ok(canonical)
}

/// Confines `requested` under `root` (with [`DEFAULT_MAX_PATH_CHARS`]), reads it with a size
/// bound, and parses it. Returns the parsed spec and the canonical path it came from (for
/// audit records; never echo it to callers).
pub fn read_spec_file(
    root: &Path,
    requested: &str,
    limits: &SpecLimits,
) -> Result<(Value, PathBuf), SpecLoadError> {
    let path = resolve_spec_path(root, requested, DEFAULT_MAX_PATH_CHARS)?;
    let value = read_resolved_spec(&path, limits)?;
    Ok((value, path))
}

/// Reads and parses a spec at a path already returned by [`resolve_spec_path`]; for callers
/// that apply their own `KNEO_SERV_MAX_PATH_CHARS`.
pub fn read_resolved_spec(path: &Path, limits: &SpecLimits) -> Result<Value, SpecLoadError> {
    // Non-blocking, so a file swapped for a FIFO after the check cannot hang the open; the
    // flag does not change how a regular file reads.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|_| SpecPathError::NotReadable)?;
    let metadata = file.metadata().map_err(|_| SpecPathError::NotReadable)?;
    if !metadata.is_file() {
        return Err(SpecPathError::NotReadable.into());
    }
    // Read at most one byte past the limit: enough to know the file is too large without
    // buffering an arbitrarily large (or growing) file.
    let read_cap = limits.max_bytes.saturating_add(1);
    let mut bytes = Vec::with_capacity(
        usize::try_from(metadata.len())
            .unwrap_or(read_cap)
            .min(read_cap),
    );
    file.take(read_cap as u64)
        .read_to_end(&mut bytes)
        .map_err(|_| SpecPathError::NotReadable)?;
    if bytes.len() > limits.max_bytes {
        let size = usize::try_from(metadata.len())
            .unwrap_or(usize::MAX)
            .max(bytes.len());
        return Err(SpecParseError::TooLarge {
            size,
            max: limits.max_bytes,
        }
        .into());
    }
    Ok(parse_yaml(&bytes, limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root_with_spec() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("specs")).unwrap();
        fs::write(
            dir.path().join("specs/approval.yaml"),
            "version: v1\nagent: {name: a}\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn relative_path_inside_the_root_resolves() {
        let root = root_with_spec();
        let path = resolve_spec_path(root.path(), "specs/approval.yaml", 4096).unwrap();
        assert!(path.ends_with("specs/approval.yaml"));
        assert!(path.starts_with(root.path().canonicalize().unwrap()));
        let path = resolve_spec_path(root.path(), "./specs/./approval.yaml", 4096).unwrap();
        assert!(path.ends_with("specs/approval.yaml"));
    }

    #[test]
    fn absolute_paths_are_confined() {
        let root = root_with_spec();
        let inside = root.path().join("specs/approval.yaml");
        for requested in ["/etc/passwd", inside.to_str().unwrap()] {
            assert_eq!(
                resolve_spec_path(root.path(), requested, 4096),
                Err(SpecPathError::Confined)
            );
        }
    }

    #[test]
    fn parent_traversal_is_confined_even_when_it_would_land_inside() {
        let root = root_with_spec();
        for requested in [
            "../etc/passwd",
            "specs/../specs/approval.yaml",
            "specs/../../x.yaml",
        ] {
            assert_eq!(
                resolve_spec_path(root.path(), requested, 4096),
                Err(SpecPathError::Confined),
                "{requested}"
            );
        }
    }

    #[test]
    fn nul_tilde_and_over_long_paths_are_confined() {
        let root = root_with_spec();
        assert_eq!(
            resolve_spec_path(root.path(), "specs/a\0.yaml", 4096),
            Err(SpecPathError::Confined)
        );
        assert_eq!(
            resolve_spec_path(root.path(), "~/spec.yaml", 4096),
            Err(SpecPathError::Confined)
        );
        let long = "a/".repeat(20) + "spec.yaml";
        assert_eq!(
            resolve_spec_path(root.path(), &long, 16),
            Err(SpecPathError::Confined)
        );
    }

    #[test]
    fn symlink_escaping_the_root_is_confined() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.yaml"), "version: v1\n").unwrap();
        let root = root_with_spec();
        std::os::unix::fs::symlink(
            outside.path().join("secret.yaml"),
            root.path().join("specs/link.yaml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        assert_eq!(
            resolve_spec_path(root.path(), "specs/link.yaml", 4096),
            Err(SpecPathError::Confined)
        );
        assert_eq!(
            resolve_spec_path(root.path(), "out/secret.yaml", 4096),
            Err(SpecPathError::Confined)
        );
    }

    #[test]
    fn symlink_staying_inside_the_root_resolves() {
        let root = root_with_spec();
        std::os::unix::fs::symlink(
            root.path().join("specs/approval.yaml"),
            root.path().join("alias.yaml"),
        )
        .unwrap();
        let path = resolve_spec_path(root.path(), "alias.yaml", 4096).unwrap();
        assert!(path.ends_with("specs/approval.yaml"));
    }

    #[test]
    fn missing_file_is_not_readable() {
        let root = root_with_spec();
        assert_eq!(
            resolve_spec_path(root.path(), "specs/missing.yaml", 4096),
            Err(SpecPathError::NotReadable)
        );
        assert_eq!(
            resolve_spec_path(root.path(), "", 4096),
            Err(SpecPathError::NotReadable)
        );
    }

    #[test]
    fn error_texts_are_the_upstream_messages_without_paths() {
        assert_eq!(
            SpecPathError::Confined.to_string(),
            "spec_path resolves outside the configured spec root."
        );
        assert_eq!(
            SpecPathError::NotReadable.to_string(),
            "A referenced file could not be read."
        );
        let root = root_with_spec();
        let error =
            read_spec_file(root.path(), "specs/missing.yaml", &SpecLimits::default()).unwrap_err();
        assert!(!error.to_string().contains(root.path().to_str().unwrap()));
    }

    #[test]
    fn read_spec_file_parses_a_confined_file() {
        let root = root_with_spec();
        let (value, path) =
            read_spec_file(root.path(), "specs/approval.yaml", &SpecLimits::default()).unwrap();
        assert_eq!(value["agent"]["name"], "a");
        assert!(path.ends_with("specs/approval.yaml"));
    }

    #[test]
    fn read_spec_file_rejects_directories_and_oversized_files() {
        let root = root_with_spec();
        assert_eq!(
            read_spec_file(root.path(), "specs", &SpecLimits::default()).unwrap_err(),
            SpecLoadError::Path(SpecPathError::NotReadable)
        );
        fs::write(root.path().join("big.yaml"), vec![b'#'; 300 * 1024]).unwrap();
        let error = read_spec_file(root.path(), "big.yaml", &SpecLimits::default()).unwrap_err();
        assert_eq!(
            error,
            SpecLoadError::Parse(SpecParseError::TooLarge {
                size: 300 * 1024,
                max: 262_144
            })
        );
    }

    #[test]
    fn read_spec_file_reports_parse_errors() {
        let root = root_with_spec();
        fs::write(root.path().join("dup.yaml"), "a: 1\na: 2\n").unwrap();
        let error = read_spec_file(root.path(), "dup.yaml", &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                SpecLoadError::Parse(SpecParseError::DuplicateKey { .. })
            ),
            "{error:?}"
        );
    }
}
