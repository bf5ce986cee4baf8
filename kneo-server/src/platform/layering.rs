//! Request-level layering of a spec document, in kneo-serv's order: overlay files left to right,
//! then `overrides`, then the `environment` stamp, then the `skills` overlay of the root agent.
//!
//! Merging is kneo-serv's deep merge: mappings merge key by key, anything else (lists included)
//! replaces, and `null` or `{__delete__: true}` removes the key. The result is an ordinary spec
//! document that the validator then checks like any other.

use serde_json::{Map, Value};

/// `skills: {add, disable}` of a run: enables skills the spec declares, disables selected ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkillsOverlay {
    pub add: Vec<String>,
    pub disable: Vec<String>,
}

impl SkillsOverlay {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.disable.is_empty()
    }

    /// `{add, disable}`, as the run metadata and the audit event record it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"add": self.add, "disable": self.disable})
    }

    /// Reads an overlay stored by [`SkillsOverlay::to_json`] (absent or malformed: none).
    pub fn from_json(value: &Value) -> Option<SkillsOverlay> {
        let names = |key: &str| -> Vec<String> {
            value
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        value.is_object().then(|| SkillsOverlay {
            add: names("add"),
            disable: names("disable"),
        })
    }
}

/// Everything a request layers over its base spec.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Parsed overlay documents, in the order they apply.
    pub overlays: Vec<Value>,
    pub overrides: Map<String, Value>,
    pub environment: Option<String>,
    pub skills: Option<SkillsOverlay>,
}

impl Layers {
    /// Whether applying these layers changes nothing.
    pub fn is_empty(&self) -> bool {
        self.overlays.is_empty()
            && self.overrides.is_empty()
            && self.environment.is_none()
            && self.skills.as_ref().is_none_or(SkillsOverlay::is_empty)
    }
}

/// The layers a run was created with, from its metadata: the frozen overlay documents, the
/// recorded `overrides`, `environment` and `skills_overlay`. Recompiling a run (continue,
/// resume, a worker picking it up, its graph or policy report) applies exactly these.
pub fn frozen_layers(metadata: &Map<String, Value>) -> Layers {
    Layers {
        overlays: metadata
            .get("frozen_spec")
            .and_then(|frozen| frozen.get("overlays"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        overrides: metadata
            .get("overrides")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        environment: metadata
            .get("environment")
            .and_then(Value::as_str)
            .map(str::to_string),
        skills: metadata
            .get("skills_overlay")
            .and_then(SkillsOverlay::from_json),
    }
}

/// Why layering failed (the caller's fault: `400 invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("skills overlay 'add' references undeclared skill(s): {}", .0.join(", "))]
    UndeclaredSkills(Vec<String>),
}

/// Merges `overlay` into `base` in place, with the one merge the spec language has
/// ([`crate::spec::overrides::apply`]).
pub fn deep_merge(base: &mut Map<String, Value>, overlay: &Map<String, Value>) {
    let merged = crate::spec::overrides::apply(Value::Object(std::mem::take(base)), overlay);
    if let Value::Object(merged) = merged {
        *base = merged;
    }
}

/// The document a run or a spec route works on: `base` with every layer applied.
pub fn layered(base: &Value, layers: &Layers) -> Result<Value, LayerError> {
    let mut document = base.clone();
    let Some(root) = document.as_object_mut() else {
        // Not a mapping: nothing to merge into; the validator reports what it is.
        return Ok(document);
    };
    for overlay in &layers.overlays {
        if let Some(overlay) = overlay.as_object() {
            deep_merge(root, overlay);
        }
    }
    deep_merge(root, &layers.overrides);
    if let Some(environment) = &layers.environment {
        stamp_environment(root, environment);
    }
    if let Some(skills) = &layers.skills {
        apply_skills_overlay(root, skills)?;
    }
    Ok(document)
}

/// `metadata.environment` of the spec, unless the spec sets one itself.
fn stamp_environment(root: &mut Map<String, Value>, environment: &str) {
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        metadata
            .entry("environment")
            .or_insert_with(|| Value::String(environment.to_string()));
    }
}

/// Adds declared skills to the root agent's selection and removes disabled ones. A request may
/// only enable what the spec declares in `skills`, never bring in a skill of its own.
fn apply_skills_overlay(
    root: &mut Map<String, Value>,
    overlay: &SkillsOverlay,
) -> Result<(), LayerError> {
    if overlay.is_empty() {
        return Ok(());
    }
    let declared: Vec<String> = root
        .get("skills")
        .and_then(Value::as_object)
        .map(|skills| skills.keys().cloned().collect())
        .unwrap_or_default();
    let mut undeclared: Vec<String> = overlay
        .add
        .iter()
        .filter(|name| !declared.contains(name))
        .cloned()
        .collect();
    if !undeclared.is_empty() {
        undeclared.sort();
        undeclared.dedup();
        return Err(LayerError::UndeclaredSkills(undeclared));
    }
    let agent = root
        .entry("agent")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(agent) = agent.as_object_mut() else {
        return Ok(());
    };
    let mut selected: Vec<String> = agent
        .get("skills")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for name in &overlay.add {
        if !selected.contains(name) {
            selected.push(name.clone());
        }
    }
    selected.retain(|name| !overlay.disable.contains(name));
    agent.insert(
        "skills".into(),
        Value::Array(selected.into_iter().map(Value::String).collect()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn mappings_merge_lists_replace_and_null_or_marker_delete() {
        let mut base = object(json!({
            "agent": {"name": "a", "model": {"provider": "dummy", "name": "m"}},
            "workflow": {"steps": [1, 2, 3]},
            "components": {"x": 1},
            "tools": {"t": 1},
        }));
        deep_merge(
            &mut base,
            &object(json!({
                "agent": {"model": {"temperature": 0.2}},
                "workflow": {"steps": [9]},
                "components": null,
                "tools": {"__delete__": true},
            })),
        );
        assert_eq!(
            Value::Object(base),
            json!({
                "agent": {"name": "a", "model": {"provider": "dummy", "name": "m", "temperature": 0.2}},
                "workflow": {"steps": [9]},
            })
        );
    }

    #[test]
    fn overlays_apply_in_order_then_overrides_win() {
        let base = json!({"workflow": {"name": "base", "steps": [1]}});
        let layers = Layers {
            overlays: vec![
                json!({"workflow": {"name": "one", "steps": [2]}}),
                json!({"workflow": {"steps": [3]}}),
            ],
            overrides: object(json!({"workflow": {"name": "override"}})),
            ..Layers::default()
        };
        assert_eq!(
            layered(&base, &layers).expect("layered"),
            json!({"workflow": {"name": "override", "steps": [3]}})
        );
    }

    #[test]
    fn the_environment_is_stamped_unless_the_spec_names_one() {
        let layers = Layers {
            environment: Some("dev".into()),
            ..Layers::default()
        };
        assert_eq!(
            layered(&json!({"agent": {}}), &layers).expect("layered")["metadata"]["environment"],
            "dev"
        );
        let own = json!({"agent": {}, "metadata": {"environment": "prod"}});
        assert_eq!(
            layered(&own, &layers).expect("layered")["metadata"]["environment"],
            "prod"
        );
    }

    #[test]
    fn the_skills_overlay_enables_declared_skills_and_disables_selected_ones() {
        let base = json!({
            "agent": {"name": "a", "skills": ["greeter"]},
            "skills": {"greeter": {}, "notes": {}},
        });
        let layers = Layers {
            skills: Some(SkillsOverlay {
                add: vec!["notes".into()],
                disable: vec!["greeter".into()],
            }),
            ..Layers::default()
        };
        assert_eq!(
            layered(&base, &layers).expect("layered")["agent"]["skills"],
            json!(["notes"])
        );
        let undeclared = Layers {
            skills: Some(SkillsOverlay {
                add: vec!["nope".into()],
                disable: vec![],
            }),
            ..Layers::default()
        };
        assert_eq!(
            layered(&base, &undeclared)
                .expect_err("undeclared")
                .to_string(),
            "skills overlay 'add' references undeclared skill(s): nope"
        );
    }
}
