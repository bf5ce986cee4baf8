//! Request `overrides` (`POST /v1/runs`, `POST /v1/specs/validate`) laid over a spec document
//! before it is migrated and validated, as kneo-serv 1.2 lays them: a mapping merges into the
//! mapping it meets, anything else replaces what was there (lists included), and `null` or
//! `{"__delete__": true}` removes the key. A run and a validation of the same spec with the same
//! overrides therefore check and execute the same document.

use serde_json::{Map, Value};

/// The marker that removes a key: `{"__delete__": true}`.
const DELETE_MARKER: &str = "__delete__";

/// `base` with `overrides` merged in. A base that is not a mapping is returned as it is: the
/// validator reports it, and there is nothing to merge into.
pub fn apply(base: Value, overrides: &Map<String, Value>) -> Value {
    match base {
        Value::Object(mapping) => Value::Object(merge(mapping, overrides)),
        other => other,
    }
}

fn removes(value: &Value) -> bool {
    value.is_null() || value.get(DELETE_MARKER) == Some(&Value::Bool(true))
}

fn merge(mut base: Map<String, Value>, overrides: &Map<String, Value>) -> Map<String, Value> {
    for (key, value) in overrides {
        if removes(value) {
            base.remove(key);
            continue;
        }
        let merged = match (base.remove(key), value) {
            (Some(Value::Object(inner)), Value::Object(layer)) => {
                Value::Object(merge(inner, layer))
            }
            (_, value) => value.clone(),
        };
        base.insert(key.clone(), merged);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::apply;
    use serde_json::{Value, json};

    fn layer(value: Value) -> serde_json::Map<String, Value> {
        match value {
            Value::Object(mapping) => mapping,
            _ => panic!("an override layer is a mapping"),
        }
    }

    #[test]
    fn mappings_merge_lists_and_scalars_replace() {
        let base = json!({
            "agent": {"name": "a", "instructions": "old", "tools": {"include": ["x", "y"]}},
            "workflow": {"steps": ["one", "two"]},
        });
        let merged = apply(
            base,
            &layer(json!({
                "agent": {"instructions": "new", "tools": {"include": ["z"]}},
                "workflow": {"steps": ["draft"]},
            })),
        );
        assert_eq!(
            merged,
            json!({
                "agent": {"name": "a", "instructions": "new", "tools": {"include": ["z"]}},
                "workflow": {"steps": ["draft"]},
            })
        );
    }

    #[test]
    fn null_and_the_delete_marker_remove_a_key() {
        let base =
            json!({"agent": {"name": "a", "description": "d", "memory": {"policy": "full"}}});
        let merged = apply(
            base,
            &layer(
                json!({"agent": {"description": null, "memory": {"__delete__": true}, "absent": null}}),
            ),
        );
        assert_eq!(merged, json!({"agent": {"name": "a"}}));
    }

    #[test]
    fn a_mapping_replaces_a_scalar_and_a_scalar_replaces_a_mapping() {
        let merged = apply(
            json!({"agent": {"model": "gpt-4o", "strategy": {"type": "react"}}}),
            &layer(json!({"agent": {"model": {"provider": "dummy"}, "strategy": "simple"}})),
        );
        assert_eq!(
            merged,
            json!({"agent": {"model": {"provider": "dummy"}, "strategy": "simple"}})
        );
    }
}
