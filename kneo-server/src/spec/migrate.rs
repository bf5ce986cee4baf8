//! v0 → v1 migration of a spec document, as kneo-serv 1.2 does it before validation: a spec
//! with `version: v0` or no `version` is read as v0, silently; `v1` passes unchanged; any other
//! version is refused.
//!
//! v0 shapes: `root_agent` / `root_workflow` for `agent` / `workflow`; top-level
//! `component_agents`, `component_workflows`, `functions` and `humans` for the `components`
//! maps; a workflow written as a bare list of steps (sequential); a workflow with `steps` and no
//! `type` (sequential). The stored document stays as the caller wrote it; only the reader sees
//! the migrated form.

use serde_json::{Map, Value, json};

use super::model::CURRENT_VERSION;

/// A `version` this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unsupported spec version: {0}")]
pub struct UnsupportedVersion(pub String);

/// The document in v1 form, and the version it was written in (`None`: no version).
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    pub document: Value,
    pub source_version: Option<String>,
}

/// Migrates `document` (a mapping; anything else passes through for the reader to refuse).
pub fn migrate(document: &Value) -> Result<Migrated, UnsupportedVersion> {
    let Value::Object(map) = document else {
        return Ok(Migrated {
            document: document.clone(),
            source_version: None,
        });
    };
    let source_version = match map.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(version)) if version == "v0" || version == CURRENT_VERSION => {
            Some(version.clone())
        }
        Some(Value::String(other)) => return Err(UnsupportedVersion(other.clone())),
        Some(other) => return Err(UnsupportedVersion(other.to_string())),
    };
    if source_version.as_deref() == Some(CURRENT_VERSION) {
        return Ok(Migrated {
            document: document.clone(),
            source_version,
        });
    }
    let mut data = map.clone();
    data.insert("version".into(), json!(CURRENT_VERSION));
    rename(&mut data, "root_agent", "agent");
    rename(&mut data, "root_workflow", "workflow");
    move_components(&mut data);
    sequential_from_v0(&mut data, "workflow");
    if let Some(Value::Object(components)) = data.get_mut("components")
        && let Some(Value::Object(workflows)) = components.get_mut("workflows")
    {
        let names: Vec<String> = workflows.keys().cloned().collect();
        for name in names {
            sequential_from_v0(workflows, &name);
        }
    }
    Ok(Migrated {
        document: Value::Object(data),
        source_version,
    })
}

fn rename(data: &mut Map<String, Value>, old: &str, new: &str) {
    if data.contains_key(old)
        && !data.contains_key(new)
        && let Some(value) = data.remove(old)
    {
        data.insert(new.into(), value);
    }
}

/// Moves the top-level v0 component maps under `components`, keeping entries already there.
fn move_components(data: &mut Map<String, Value>) {
    const MOVES: [(&str, &str); 4] = [
        ("component_agents", "agents"),
        ("component_workflows", "workflows"),
        ("functions", "functions"),
        ("humans", "humans"),
    ];
    for (old, new) in MOVES {
        let Some(moved) = data.remove(old) else {
            continue;
        };
        let empty = match &moved {
            Value::Null => true,
            Value::Object(entries) => entries.is_empty(),
            _ => false,
        };
        if empty {
            continue;
        }
        let components = data
            .entry("components")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(components) = components else {
            // A malformed `components` is the reader's to report; keep the v0 key visible.
            data.insert(old.into(), moved);
            continue;
        };
        match (components.get_mut(new), moved) {
            (Some(Value::Object(existing)), Value::Object(entries)) => existing.extend(entries),
            (None, moved) => {
                components.insert(new.into(), moved);
            }
            (Some(_), moved) => {
                // Both forms, and not both mappings: the v1 entry wins; the reader reports it.
                let _ = moved;
            }
        }
    }
}

/// A v0 workflow: a bare list of steps, or steps without a `type`, is sequential.
fn sequential_from_v0(container: &mut Map<String, Value>, key: &str) {
    match container.get_mut(key) {
        Some(Value::Array(steps)) => {
            let steps = std::mem::take(steps);
            container.insert(key.into(), json!({"type": "sequential", "steps": steps}));
        }
        Some(Value::Object(workflow))
            if !workflow.contains_key("type") && workflow.contains_key("steps") =>
        {
            workflow.insert("type".into(), json!("sequential"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_passes_unchanged() {
        let document = json!({"version": "v1", "agent": {"name": "a"}, "root_agent": 1});
        let migrated = migrate(&document).unwrap();
        assert_eq!(migrated.document, document);
        assert_eq!(migrated.source_version.as_deref(), Some("v1"));
    }

    #[test]
    fn other_versions_are_refused_with_kneo_serv_text() {
        let error = migrate(&json!({"version": "v2"})).unwrap_err();
        assert_eq!(error.to_string(), "Unsupported spec version: v2");
        let error = migrate(&json!({"version": 1})).unwrap_err();
        assert_eq!(error.to_string(), "Unsupported spec version: 1");
    }

    #[test]
    fn v0_shapes_move_to_v1_places() {
        let document = json!({
            "root_agent": {"name": "legacy"},
            "root_workflow": [{"id": "draft", "kind": "agent", "ref": "writer"}],
            "component_agents": {"writer": {"name": "writer"}},
            "functions": {"stamp": {"implementation": "x.y"}},
            "humans": {},
            "components": {"workflows": {"inner": {"steps": []}}},
        });
        let migrated = migrate(&document).unwrap();
        assert_eq!(migrated.source_version, None);
        assert_eq!(
            migrated.document,
            json!({
                "version": "v1",
                "agent": {"name": "legacy"},
                "workflow": {"type": "sequential", "steps": [{"id": "draft", "kind": "agent", "ref": "writer"}]},
                "components": {
                    "workflows": {"inner": {"steps": [], "type": "sequential"}},
                    "agents": {"writer": {"name": "writer"}},
                    "functions": {"stamp": {"implementation": "x.y"}},
                },
            })
        );
    }

    #[test]
    fn v0_with_a_v1_key_keeps_the_v1_key() {
        let migrated = migrate(
            &json!({"version": "v0", "agent": {"name": "new"}, "root_agent": {"name": "old"}}),
        )
        .unwrap();
        assert_eq!(migrated.document["agent"]["name"], "new");
        assert_eq!(migrated.document["root_agent"]["name"], "old");
        assert_eq!(migrated.source_version.as_deref(), Some("v0"));
    }
}
