//! The skills catalog (`GET /v1/skills`): skill bundles found in the service's own default
//! locations (`.agents/skills` and `.claude/skills` under the spec root and the service account's
//! home), by name and description. Nothing is loaded or compiled, no caller-given path is read,
//! and a bundle's path is reported relative to its scan root, never as a server path.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::spec::parse::{SpecLimits, parse_yaml};

/// Where bundles are looked for, under each root.
const DISCOVERY_DIRS: [&str; 2] = [".agents/skills", ".claude/skills"];

/// How deep below a discovery directory a `SKILL.md` may sit.
const MAX_DEPTH: usize = 4;

/// Directories never walked into.
const SKIPPED_DIRS: [&str; 3] = [".git", "node_modules", "__pycache__"];

/// One discovered bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: String,
    pub description: String,
    /// The bundle's directory, relative to the root it was found under.
    pub path: String,
}

/// Every bundle under the roots, one per name (a later root's bundle replaces an earlier one).
pub fn discover(roots: &[PathBuf]) -> Vec<CatalogEntry> {
    let mut entries: Vec<CatalogEntry> = Vec::new();
    for root in roots {
        for dir in DISCOVERY_DIRS {
            let mut files = Vec::new();
            skill_files(&root.join(dir), 0, &mut files);
            files.sort();
            for file in files {
                match read_entry(root, &file) {
                    Ok(entry) => {
                        entries.retain(|known| known.name != entry.name);
                        entries.push(entry);
                    }
                    Err(problem) => {
                        tracing::warn!(target: "kneo_serv.platform", path = %file.display(), problem, "skipping an unreadable skill bundle");
                    }
                }
            }
        }
    }
    entries
}

fn skill_files(dir: &Path, depth: usize, into: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            let skipped = entry
                .file_name()
                .to_str()
                .is_some_and(|name| SKIPPED_DIRS.contains(&name));
            if !skipped {
                skill_files(&path, depth + 1, into);
            }
        } else if kind.is_file() && entry.file_name() == "SKILL.md" {
            into.push(path);
        }
    }
}

/// A bundle's name and description from its `SKILL.md` front matter.
fn read_entry(root: &Path, file: &Path) -> Result<CatalogEntry, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read it: {e}"))?;
    let front_matter = text
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---"))
        .map(|(front, _)| front)
        .ok_or("it does not start with front matter between '---' lines")?;
    let limits = SpecLimits::default();
    let fields: Value = parse_yaml(front_matter.as_bytes(), &limits).map_err(|e| e.to_string())?;
    let text_field = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(format!("its front matter has no `{key}`"))
    };
    let directory = file.parent().unwrap_or(file);
    let path = directory
        .strip_prefix(root)
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| {
            directory
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    Ok(CatalogEntry {
        name: text_field("name")?,
        description: text_field("description")?,
        path,
    })
}

impl super::Platform {
    /// The catalog of the spec root and the service account's home, read off the runtime.
    pub async fn skills_catalog(&self) -> Result<Vec<CatalogEntry>, super::error::PlatformError> {
        let mut roots = vec![self.config.spec_root.clone()];
        if let Some(home) = std::env::var_os("HOME") {
            roots.push(PathBuf::from(home));
        }
        tokio::task::spawn_blocking(move || discover(&roots))
            .await
            .map_err(|_| super::error::PlatformError::Internal("the skills scan stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_found_with_paths_relative_to_their_root() {
        let root = tempfile::tempdir().expect("temp dir");
        let bundle = root.path().join(".agents/skills/notes");
        std::fs::create_dir_all(&bundle).expect("dirs");
        std::fs::write(
            bundle.join("SKILL.md"),
            "---\nname: notes\ndescription: Take notes.\n---\nBody.\n",
        )
        .expect("write");
        let broken = root.path().join(".agents/skills/broken");
        std::fs::create_dir_all(&broken).expect("dirs");
        std::fs::write(broken.join("SKILL.md"), "no front matter").expect("write");
        let entries = discover(&[root.path().to_path_buf()]);
        assert_eq!(
            entries,
            [CatalogEntry {
                name: "notes".into(),
                description: "Take notes.".into(),
                path: ".agents/skills/notes".into(),
            }]
        );
    }
}
