//! Where a skill's `source` is, confined to the spec root as kneo-serv 1.2 confines it: a
//! relative source resolves against the root, an absolute one must lie inside it, symlinks are
//! followed before the check. Every declared skill is checked (a run freezes them all, selected
//! or not), when a spec is validated or a run is created; never when a frozen run resumes.

use std::path::{Path, PathBuf};

use super::diagnostic::Diagnostic;
use super::model::Spec;
use super::path::SpecPathError;
use super::validate::codes;

/// kneo-serv's message for a source outside the root.
pub const CONFINED_MESSAGE: &str = "skill source resolves outside the configured spec root.";

/// The canonical path of `source` under `root`, or why there is none.
pub fn resolve_skill_source(root: &Path, source: &str) -> Result<PathBuf, SpecPathError> {
    if source.contains('\0') || source.starts_with('~') {
        return Err(SpecPathError::Confined);
    }
    let canonical_root = root
        .canonicalize()
        .map_err(|_| SpecPathError::NotReadable)?;
    let requested = Path::new(source);
    let joined = if requested.is_absolute() {
        requested.to_path_buf()
    } else {
        canonical_root.join(requested)
    };
    // A source that does not exist cannot be canonicalized; judge its lexical form then, so a
    // missing file outside the root is still "outside".
    let resolved = match joined.canonicalize() {
        Ok(resolved) => resolved,
        Err(_) => {
            let lexical = lexical_normal(&joined);
            if !lexical.starts_with(&canonical_root) {
                return Err(SpecPathError::Confined);
            }
            return Err(SpecPathError::NotReadable);
        }
    };
    if !resolved.starts_with(&canonical_root) {
        return Err(SpecPathError::Confined);
    }
    Ok(resolved)
}

/// `path` with `.` and `..` folded away, without touching the filesystem.
fn lexical_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// `E_SKILL_SOURCE_CONFINED` / `E_SKILL_SOURCE_UNREADABLE` for every declared skill whose source
/// the spec root does not hold.
pub fn check_skill_sources(spec: &Spec, root: &Path) -> Vec<Diagnostic> {
    spec.skills
        .iter()
        .filter_map(|(name, skill)| {
            let path = format!("skills.{name}.source");
            match resolve_skill_source(root, &skill.source) {
                Ok(_) => None,
                Err(SpecPathError::Confined) => Some(
                    Diagnostic::error(codes::E_SKILL_SOURCE_CONFINED, path, CONFINED_MESSAGE)
                        .suggest("Keep skill bundles inside the spec root (KNEO_SERV_SPEC_ROOT, else the service's working directory) and write the source relative to it."),
                ),
                Err(SpecPathError::NotReadable) => Some(
                    Diagnostic::error(
                        codes::E_SKILL_SOURCE_UNREADABLE,
                        path,
                        format!("Skill '{name}': a referenced file could not be read (source '{}').", skill.source),
                    )
                    .suggest("Point source at the skill's directory (with SKILL.md or skill.yaml) or file, relative to the spec root."),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_resolve_inside_the_root_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("skills/greeter")).unwrap();
        let canonical = root.path().canonicalize().unwrap();
        assert_eq!(
            resolve_skill_source(root.path(), "skills/greeter"),
            Ok(canonical.join("skills/greeter"))
        );
        let absolute = canonical.join("skills/greeter");
        assert!(resolve_skill_source(root.path(), absolute.to_str().unwrap()).is_ok());
        assert_eq!(
            resolve_skill_source(root.path(), "/etc"),
            Err(SpecPathError::Confined)
        );
        assert_eq!(
            resolve_skill_source(root.path(), "skills/../../nowhere"),
            Err(SpecPathError::Confined)
        );
        assert_eq!(
            resolve_skill_source(root.path(), "skills/does-not-exist"),
            Err(SpecPathError::NotReadable)
        );
        std::os::unix::fs::symlink("/etc", root.path().join("skills/escape")).unwrap();
        assert_eq!(
            resolve_skill_source(root.path(), "skills/escape"),
            Err(SpecPathError::Confined)
        );
    }
}
