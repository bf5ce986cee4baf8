//! Skill bundles: read once when a run is created, confined to the spec root, and frozen into
//! the run (`metadata.frozen_spec.skills`), so a resumed or taken-over run composes the prompt it
//! started with whatever happens to the bundle afterwards.
//!
//! A bundle is a directory or a single file. A directory with a `SKILL.md` that starts with YAML
//! frontmatter (`name`, `description`, …) is read the Agent Skills way; otherwise the
//! instructions come from `SKILL.md`, `skill.md` or `README.md` and the metadata from
//! `skill.yaml`, `skill.yml` or `skill.json`. A file is its own instructions. Every declared
//! skill is frozen, selected or not; an agent's selected skills are appended to its system
//! prompt (see [`super::plan::AgentPlan::full_system_prompt`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::spec::model::SkillSpec;
use crate::spec::parse::{SpecLimits, parse_yaml};
use crate::spec::path::SpecPathError;
use crate::spec::skill_source::resolve_skill_source;

/// Largest bundle file read (instructions or metadata).
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Files of a bundle that are not resources.
const BUNDLE_FILES: [&str; 6] = [
    "SKILL.md",
    "skill.md",
    "README.md",
    "skill.yaml",
    "skill.yml",
    "skill.json",
];

/// Why the skills of a spec could not be frozen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkillError {
    /// HTTP 422 `spec_path_confined`: the source (or a file of the bundle) resolves outside the
    /// spec root. The message never names the path.
    #[error("skill source resolves outside the configured spec root.")]
    Confined,
    /// HTTP 400 `invalid_request`: the source does not exist or cannot be read.
    #[error("A referenced file could not be read.")]
    NotReadable,
    /// HTTP 400: a bundle file is not what it claims to be (bad frontmatter, bad metadata).
    #[error("skill {skill}: {problem}")]
    Invalid { skill: String, problem: String },
}

/// Resolves a skill `source` inside `root` (see [`crate::spec::skill_source`]).
fn confine(root: &Path, source: &str) -> Result<PathBuf, SkillError> {
    resolve_skill_source(root, source).map_err(|error| match error {
        SpecPathError::Confined => SkillError::Confined,
        SpecPathError::NotReadable => SkillError::NotReadable,
    })
}

/// Reads a bundle file, checking again that it stays inside the root (a symlink in the bundle).
fn read_text(root: &Path, path: &Path) -> Result<String, SkillError> {
    let canonical = path.canonicalize().map_err(|_| SkillError::NotReadable)?;
    if !canonical.starts_with(root) {
        return Err(SkillError::Confined);
    }
    let file = std::fs::File::open(&canonical).map_err(|_| SkillError::NotReadable)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|_| SkillError::NotReadable)?;
    Ok(text)
}

fn yaml_map(text: &str, skill: &str, what: &str) -> Result<Map<String, Value>, SkillError> {
    let invalid = |problem: String| SkillError::Invalid {
        skill: skill.to_string(),
        problem,
    };
    match parse_yaml(text.as_bytes(), &SpecLimits::default()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(invalid(format!("{what} must be a mapping"))),
        Err(error) => Err(invalid(format!("{what} is not valid YAML: {error}"))),
    }
}

/// `---\n<yaml>\n---\n<body>`: the frontmatter and the trimmed body, or `None` without one.
fn split_frontmatter(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("---\n")?;
    let (frontmatter, body) = rest.split_once("\n---\n")?;
    Some((frontmatter, body.trim()))
}

/// Files under `references/`, `scripts/` and `assets/` of a bundle, as Agent Skills lists them.
fn agent_skill_resources(directory: &Path) -> Vec<String> {
    let mut resources = Vec::new();
    for folder in ["references", "scripts", "assets"] {
        let mut stack = vec![directory.join(folder)];
        while let Some(current) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&current) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(relative) = path.strip_prefix(directory) {
                    resources.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    resources.sort();
    resources
}

/// The files of a fallback bundle other than its instructions and metadata.
fn bundle_resources(directory: &Path) -> Vec<String> {
    let mut resources = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if !BUNDLE_FILES.contains(&name.as_str())
                && let Ok(relative) = path.strip_prefix(directory)
            {
                resources.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    resources.sort();
    resources
}

/// The activation text of a skill, as the agent's system prompt carries it.
fn fragment(
    name: &str,
    instructions: &str,
    directory: Option<&Path>,
    resources: &[String],
) -> String {
    let mut lines = vec![
        format!("<skill_content name=\"{name}\">"),
        instructions.to_string(),
    ];
    if let Some(directory) = directory {
        lines.push(String::new());
        lines.push(format!("Skill directory: {}", directory.display()));
        lines.push("Relative paths in this skill are relative to the skill directory.".into());
    }
    if !resources.is_empty() {
        lines.push(String::new());
        lines.push("<skill_resources>".into());
        lines.extend(
            resources
                .iter()
                .map(|resource| format!("  <file>{resource}</file>")),
        );
        lines.push("</skill_resources>".into());
    }
    lines.push("</skill_content>".into());
    lines.join("\n").trim().to_string()
}

fn text_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

fn object_field(map: &Map<String, Value>, key: &str) -> Value {
    map.get(key)
        .filter(|value| value.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}))
}

fn list_field(map: &Map<String, Value>, key: &str) -> Value {
    map.get(key)
        .filter(|value| value.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]))
}

/// A skill as read from its bundle.
struct Loaded {
    name: String,
    instructions: String,
    metadata: Value,
    tools: Value,
    resources: Vec<String>,
    system_fragment: String,
    description: String,
    /// The fields the Agent Skills format defines (frontmatter or metadata file).
    fields: Map<String, Value>,
}

impl Loaded {
    /// The frozen record (kneo-serv's shape).
    fn frozen(self, source: &Path) -> Value {
        let fields = &self.fields;
        json!({
            "name": self.name,
            "source": source.display().to_string(),
            "instructions": self.instructions,
            "metadata": self.metadata,
            "tools": self.tools,
            "resources": self.resources,
            "system_fragment": self.system_fragment,
            "sdk_fields": {
                "description": self.description,
                "defaults": object_field(fields, "defaults"),
                "extra": object_field(fields, "extra"),
                "tags": list_field(fields, "tags"),
                "license": fields.get("license").cloned().unwrap_or(Value::Null),
                "compatibility": fields.get("compatibility").cloned().unwrap_or(Value::Null),
                "allowed_tools": fields.get("allowed-tools").cloned().unwrap_or(Value::Null),
                "metadata": object_field(fields, "metadata"),
            },
        })
    }
}

/// Loads the skill `key` from `source` under `root`.
pub fn load(root: &Path, key: &str, source: &str) -> Result<Value, SkillError> {
    let canonical_root = root.canonicalize().map_err(|_| SkillError::NotReadable)?;
    let path = confine(root, source)?;
    if path.is_file() {
        let instructions = read_text(&canonical_root, &path)?;
        let system_fragment = fragment(key, &instructions, path.parent(), &[]);
        let loaded = Loaded {
            name: key.to_string(),
            instructions,
            metadata: json!({}),
            tools: json!([]),
            resources: Vec::new(),
            system_fragment,
            description: key.to_string(),
            fields: Map::new(),
        };
        return Ok(loaded.frozen(&path));
    }
    let skill_md = path.join("SKILL.md");
    if skill_md.is_file() {
        let text = read_text(&canonical_root, &skill_md)?;
        if let Some((frontmatter, body)) = split_frontmatter(&text) {
            let fields = yaml_map(frontmatter, key, "the SKILL.md frontmatter")?;
            let name = text_field(&fields, "name").unwrap_or_else(|| key.to_string());
            let description = text_field(&fields, "description").unwrap_or_else(|| name.clone());
            let resources = agent_skill_resources(&path);
            let system_fragment = fragment(&name, body, Some(&path), &resources);
            let loaded = Loaded {
                name,
                instructions: body.to_string(),
                metadata: object_field(&fields, "metadata"),
                tools: list_field(&fields, "tools"),
                resources,
                system_fragment,
                description,
                fields,
            };
            return Ok(loaded.frozen(&path));
        }
    }
    let mut instructions = String::new();
    for candidate in ["SKILL.md", "skill.md", "README.md"] {
        let file = path.join(candidate);
        if file.is_file() {
            instructions = read_text(&canonical_root, &file)?;
            break;
        }
    }
    let mut metadata = Map::new();
    for candidate in ["skill.yaml", "skill.yml"] {
        let file = path.join(candidate);
        if file.is_file() {
            metadata = yaml_map(&read_text(&canonical_root, &file)?, key, candidate)?;
            break;
        }
    }
    let json_file = path.join("skill.json");
    if metadata.is_empty() && json_file.is_file() {
        metadata = match serde_json::from_str(&read_text(&canonical_root, &json_file)?) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(SkillError::Invalid {
                    skill: key.to_string(),
                    problem: "skill.json must be a JSON object".into(),
                });
            }
        };
    }
    let name = text_field(&metadata, "name").unwrap_or_else(|| key.to_string());
    let description = text_field(&metadata, "description").unwrap_or_else(|| key.to_string());
    let directory = skill_md.is_file().then_some(path.as_path());
    let system_fragment = fragment(&name, &instructions, directory, &[]);
    let loaded = Loaded {
        name: key.to_string(),
        instructions,
        tools: list_field(&metadata, "tools"),
        resources: bundle_resources(&path),
        system_fragment,
        description,
        metadata: Value::Object(metadata.clone()),
        fields: metadata,
    };
    Ok(loaded.frozen(&path))
}

/// Loads every declared skill (selected by an agent or not), in key order.
pub fn freeze(
    root: &Path,
    skills: &BTreeMap<String, SkillSpec>,
) -> Result<Map<String, Value>, SkillError> {
    skills
        .iter()
        .map(|(key, skill)| load(root, key, &skill.source).map(|frozen| (key.clone(), frozen)))
        .collect()
}

/// The system fragments of `selected` skills from a frozen map, in selection order.
pub fn fragments(frozen: &Map<String, Value>, selected: &[String]) -> Vec<String> {
    selected
        .iter()
        .filter_map(|key| frozen.get(key))
        .filter_map(|skill| skill.get("system_fragment").and_then(Value::as_str))
        .filter(|fragment| !fragment.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        let greeter = root.path().join("skills/greeter");
        std::fs::create_dir_all(&greeter).expect("dir");
        std::fs::write(
            greeter.join("SKILL.md"),
            "---\nname: greeter\ndescription: Greets.\n---\nSay \"Hello!\" first.\n",
        )
        .expect("write");
        std::fs::write(greeter.join("phrases.txt"), "hello\n").expect("write");
        let legacy = root.path().join("skills/legacy-notes");
        std::fs::create_dir_all(&legacy).expect("dir");
        std::fs::write(legacy.join("README.md"), "Take short notes.\n").expect("write");
        std::fs::write(
            legacy.join("skill.yaml"),
            "name: legacy-notes\ndescription: Legacy.\ntags: [legacy]\n",
        )
        .expect("write");
        root
    }

    #[test]
    fn agent_skills_and_fallback_bundles_freeze_as_kneo_serv_does() {
        let root = bundle_root();
        let canonical = root.path().canonicalize().expect("canonical");
        let greeter = load(root.path(), "greeter", "skills/greeter").expect("loads");
        assert_eq!(greeter["name"], "greeter");
        assert_eq!(greeter["instructions"], "Say \"Hello!\" first.");
        assert_eq!(greeter["resources"], json!([]));
        assert_eq!(
            greeter["system_fragment"],
            format!(
                "<skill_content name=\"greeter\">\nSay \"Hello!\" first.\n\nSkill directory: {}\n\
                 Relative paths in this skill are relative to the skill directory.\n</skill_content>",
                canonical.join("skills/greeter").display()
            )
        );
        assert_eq!(greeter["sdk_fields"]["description"], "Greets.");
        let notes = load(root.path(), "notes", "skills/legacy-notes").expect("loads");
        assert_eq!(notes["name"], "notes");
        assert_eq!(notes["metadata"]["name"], "legacy-notes");
        assert_eq!(
            notes["system_fragment"],
            "<skill_content name=\"legacy-notes\">\nTake short notes.\n\n</skill_content>"
        );
        assert_eq!(notes["sdk_fields"]["tags"], json!(["legacy"]));
    }

    #[test]
    fn sources_stay_inside_the_root() {
        let root = bundle_root();
        assert_eq!(load(root.path(), "bad", "/etc"), Err(SkillError::Confined));
        assert_eq!(
            load(root.path(), "bad", "skills/../../etc"),
            Err(SkillError::Confined)
        );
        assert_eq!(load(root.path(), "bad", "~/x"), Err(SkillError::Confined));
        assert_eq!(
            load(root.path(), "gone", "skills/missing"),
            Err(SkillError::NotReadable)
        );
        let absolute = root.path().join("skills/greeter").display().to_string();
        assert!(load(root.path(), "greeter", &absolute).is_ok());
        std::os::unix::fs::symlink("/etc", root.path().join("skills/escape")).expect("symlink");
        assert_eq!(
            load(root.path(), "escape", "skills/escape"),
            Err(SkillError::Confined)
        );
    }

    #[test]
    fn fragments_follow_the_selection() {
        let mut frozen = Map::new();
        frozen.insert("a".into(), json!({"system_fragment": "A"}));
        frozen.insert("b".into(), json!({"system_fragment": "B"}));
        assert_eq!(fragments(&frozen, &["b".into(), "a".into()]), ["B", "A"]);
        assert!(fragments(&frozen, &[]).is_empty());
    }
}
