//! Compares a real JSON response with a golden one by structure, for conformance tests.
//!
//! Values differ between runs (ids, timestamps, durations), so only the shape is compared:
//!
//! - Every key of a golden object must be in the actual object; extra actual keys are fine.
//! - Types must match: null, bool, number, string, array, object. Integers and floats are
//!   both "number".
//! - A golden `null` matches anything: the recording could not show the field's real type.
//! - An actual `null` where the golden value is not null is reported by
//!   [`shape_mismatches`]; [`shape_mismatches_lenient`] accepts it.
//! - Array elements are records that may be of different kinds (a `run_started` and a
//!   `run_completed` trace event fill different fields). An actual element is compared with the
//!   golden element of the same `type` when there is one; otherwise with the keys that every
//!   golden element has (nested objects only as "an object": what an unrecorded kind keeps
//!   inside them cannot be known; a key whose golden values differ in type is not type-checked).
//!   Inside array elements an actual `null` always matches, since the
//!   recording cannot say which fields each kind may leave empty. An empty golden or actual
//!   array has nothing to compare.
//! - An object whose keys are all UUIDs is a map keyed by dynamic ids: its keys are not
//!   required, and every actual value is compared with the first golden value.
//!
//! Mismatches read like `$.metadata.checks.queue.durable: golden bool, got string` or
//! `$.runs[0].status: missing`.

use serde_json::{Map, Value};

/// Beyond this, printed bodies are cut so a failing test stays readable.
const MAX_PRINTED_BODY_CHARS: usize = 4000;

/// Where `actual` does not have the shape of `golden`, reporting an actual `null` for a
/// non-null golden value. An empty result means the shapes match.
pub fn shape_mismatches(golden: &Value, actual: &Value) -> Vec<String> {
    compare(golden, actual, ActualNull::IsMismatch)
}

/// Like [`shape_mismatches`], but an actual `null` matches any golden type.
pub fn shape_mismatches_lenient(golden: &Value, actual: &Value) -> Vec<String> {
    compare(golden, actual, ActualNull::MatchesAnything)
}

/// Panics, listing every [`shape_mismatches`] and printing both bodies, unless the shapes
/// match. `context` names the exchange, e.g. the golden file name.
pub fn assert_shape(context: &str, golden: &Value, actual: &Value) {
    let mismatches = shape_mismatches(golden, actual);
    if mismatches.is_empty() {
        return;
    }
    panic!(
        "{context}: response does not have the golden shape ({count} mismatches):\n  {list}\n\
         --- golden body ---\n{golden}\n--- actual body ---\n{actual}",
        count = mismatches.len(),
        list = mismatches.join("\n  "),
        golden = printable(golden),
        actual = printable(actual),
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ActualNull {
    IsMismatch,
    MatchesAnything,
}

fn compare(golden: &Value, actual: &Value, actual_null: ActualNull) -> Vec<String> {
    let mut walker = Walker {
        actual_null,
        mismatches: Vec::new(),
    };
    walker.value("$", golden, actual);
    walker.mismatches
}

struct Walker {
    actual_null: ActualNull,
    mismatches: Vec<String>,
}

impl Walker {
    fn value(&mut self, path: &str, golden: &Value, actual: &Value) {
        match (golden, actual) {
            (Value::Null, _) => {}
            (_, Value::Null) if self.actual_null == ActualNull::MatchesAnything => {}
            (Value::Object(golden), Value::Object(actual)) => self.object(path, golden, actual),
            (Value::Array(golden), Value::Array(actual)) => self.array(path, golden, actual),
            _ if kind(golden) == kind(actual) => {}
            _ => self.mismatches.push(format!(
                "{path}: golden {}, got {}",
                kind(golden),
                kind(actual)
            )),
        }
    }

    fn object(&mut self, path: &str, golden: &Map<String, Value>, actual: &Map<String, Value>) {
        if is_keyed_by_ids(golden) {
            self.id_map(path, golden, actual);
            return;
        }
        for (key, golden_value) in golden {
            let child = child_path(path, key);
            match actual.get(key) {
                Some(actual_value) => self.value(&child, golden_value, actual_value),
                None => self.mismatches.push(format!("{child}: missing")),
            }
        }
    }

    fn id_map(&mut self, path: &str, golden: &Map<String, Value>, actual: &Map<String, Value>) {
        let Some(template) = golden.values().next() else {
            return;
        };
        for (key, actual_value) in actual {
            self.value(&child_path(path, key), template, actual_value);
        }
    }

    fn array(&mut self, path: &str, golden: &[Value], actual: &[Value]) {
        if golden.is_empty() {
            return;
        }
        let common = common_keys(golden);
        let outer = self.actual_null;
        self.actual_null = ActualNull::MatchesAnything;
        for (index, actual_value) in actual.iter().enumerate() {
            let template = same_type(golden, actual_value).unwrap_or(&common);
            self.value(&format!("{path}[{index}]"), template, actual_value);
        }
        self.actual_null = outer;
    }
}

/// The golden element whose `type` field equals the actual element's.
fn same_type<'a>(golden: &'a [Value], actual: &Value) -> Option<&'a Value> {
    let wanted = actual.get("type")?.as_str()?;
    golden
        .iter()
        .find(|element| element.get("type").and_then(Value::as_str) == Some(wanted))
}

/// An element with only the keys every golden element has, nested objects reduced to empty
/// objects (so only their type is checked), or the first element itself when the elements are
/// not all objects.
fn common_keys(golden: &[Value]) -> Value {
    let objects: Vec<&Map<String, Value>> = golden.iter().filter_map(Value::as_object).collect();
    if objects.len() != golden.len() {
        return golden[0].clone();
    }
    let shared = objects[0]
        .iter()
        .filter(|(key, _)| objects.iter().all(|object| object.contains_key(*key)))
        .map(|(key, first)| {
            let same_kind = objects
                .iter()
                .all(|object| object.get(key).map(kind) == Some(kind(first)));
            let value = if !same_kind {
                // The recording shows this field with several types: any of them is fine.
                Value::Null
            } else if first.is_object() {
                Value::Object(Map::new())
            } else {
                first.clone()
            };
            (key.clone(), value)
        })
        .collect();
    Value::Object(shared)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_keyed_by_ids(object: &Map<String, Value>) -> bool {
    !object.is_empty() && object.keys().all(|key| uuid::Uuid::parse_str(key).is_ok())
}

/// `$.a.b` for identifier-like keys, `$.a["odd key"]` otherwise, so every path is unambiguous.
fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", Value::String(key.to_string()))
    }
}

fn printable(value: &Value) -> String {
    let pretty = serde_json::to_string_pretty(value)
        .unwrap_or_else(|error| format!("<cannot print body: {error}>"));
    truncate(pretty, MAX_PRINTED_BODY_CHARS)
}

fn truncate(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}\n… ({} more bytes)", &text[..cut], text.len() - cut),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID_A: &str = "f8a73a28-be8e-44a6-b053-e286f21c121e";
    const ID_B: &str = "54bb7a0e-18c7-443d-8181-1dac8f9d3bd4";

    #[test]
    fn identical_values_match() {
        let body = json!({"ok": true, "runs": [{"id": ID_A, "n": 1}], "x": null});
        assert_eq!(shape_mismatches(&body, &body), Vec::<String>::new());
    }

    #[test]
    fn different_values_of_the_same_types_match() {
        let golden = json!({"status": "completed", "duration_ms": 0.03, "ok": true});
        let actual = json!({"status": "failed", "duration_ms": 12, "ok": false});
        assert!(shape_mismatches(&golden, &actual).is_empty());
    }

    #[test]
    fn extra_actual_keys_are_allowed() {
        let golden = json!({"a": 1});
        let actual = json!({"a": 2, "b": "extra"});
        assert!(shape_mismatches(&golden, &actual).is_empty());
    }

    #[test]
    fn missing_keys_are_reported_with_their_path() {
        let golden = json!({"runs": [{"status": "queued", "id": ID_A}]});
        let actual = json!({"runs": [{"id": ID_B}]});
        assert_eq!(
            shape_mismatches(&golden, &actual),
            ["$.runs[0].status: missing"]
        );
    }

    #[test]
    fn type_changes_are_reported_with_both_types() {
        let golden = json!({"metadata": {"checks": {"queue": {"durable": true}}}});
        let actual = json!({"metadata": {"checks": {"queue": {"durable": "yes"}}}});
        assert_eq!(
            shape_mismatches(&golden, &actual),
            ["$.metadata.checks.queue.durable: golden bool, got string"]
        );
    }

    #[test]
    fn root_type_change_is_reported() {
        assert_eq!(
            shape_mismatches(&json!({"a": 1}), &json!([1])),
            ["$: golden object, got array"]
        );
    }

    #[test]
    fn golden_null_matches_anything() {
        let golden = json!({"continuation_id": null});
        for actual in [
            json!("abc"),
            json!(3),
            json!({"k": 1}),
            json!([]),
            json!(null),
        ] {
            let actual = json!({"continuation_id": actual});
            assert!(shape_mismatches(&golden, &actual).is_empty(), "{actual}");
        }
    }

    #[test]
    fn golden_null_still_requires_the_key() {
        assert_eq!(
            shape_mismatches(&json!({"error": null}), &json!({})),
            ["$.error: missing"]
        );
    }

    #[test]
    fn actual_null_for_a_typed_golden_value_is_reported() {
        assert_eq!(
            shape_mismatches(&json!({"output_text": "x"}), &json!({"output_text": null})),
            ["$.output_text: golden string, got null"]
        );
    }

    #[test]
    fn lenient_mode_accepts_actual_null() {
        let golden = json!({"output_text": "x", "n": 1});
        let actual = json!({"output_text": null, "n": "one"});
        assert_eq!(
            shape_mismatches_lenient(&golden, &actual),
            ["$.n: golden number, got string"]
        );
    }

    #[test]
    fn every_array_element_is_checked_against_the_first_golden_element() {
        let golden = json!({"events": [{"type": "run_started", "seq": 1}]});
        let actual = json!({"events": [
            {"type": "a", "seq": 1},
            {"type": "b", "seq": 2},
            {"type": "c", "seq": "3"},
            {"seq": 4},
        ]});
        assert_eq!(
            shape_mismatches(&golden, &actual),
            [
                "$.events[2].seq: golden number, got string",
                "$.events[3].type: missing"
            ]
        );
    }

    #[test]
    fn empty_arrays_have_nothing_to_compare() {
        assert!(shape_mismatches(&json!({"names": []}), &json!({"names": [1, "x"]})).is_empty());
        assert!(shape_mismatches(&json!({"names": ["a"]}), &json!({"names": []})).is_empty());
    }

    #[test]
    fn array_against_non_array_is_reported() {
        assert_eq!(
            shape_mismatches(&json!({"names": []}), &json!({"names": {}})),
            ["$.names: golden array, got object"]
        );
    }

    #[test]
    fn id_keyed_objects_are_compared_by_value_shape_only() {
        let golden = json!({"by_run": {ID_A: {"status": "completed"}}});
        let same_shape = json!({"by_run": {ID_B: {"status": "queued"}}});
        assert!(shape_mismatches(&golden, &same_shape).is_empty());

        let wrong_shape = json!({"by_run": {ID_B: {"status": 7}}});
        assert_eq!(
            shape_mismatches(&golden, &wrong_shape),
            [format!(
                "$.by_run[\"{ID_B}\"].status: golden string, got number"
            )]
        );
    }

    #[test]
    fn objects_with_ordinary_keys_still_require_them() {
        let golden = json!({"checks": {"api": {"ok": true}}});
        assert_eq!(
            shape_mismatches(&golden, &json!({"checks": {ID_B: {"ok": true}}})),
            ["$.checks.api: missing"]
        );
    }

    #[test]
    fn unusual_keys_are_quoted_in_paths() {
        assert_eq!(
            shape_mismatches(&json!({"content-type": "x"}), &json!({})),
            ["$[\"content-type\"]: missing"]
        );
    }

    #[test]
    fn assert_shape_accepts_matching_shapes() {
        assert_shape(
            "healthz",
            &json!({"ok": true}),
            &json!({"ok": false, "more": 1}),
        );
    }

    #[test]
    #[should_panic(expected = "healthz: response does not have the golden shape (2 mismatches)")]
    fn assert_shape_lists_every_mismatch() {
        assert_shape(
            "healthz",
            &json!({"ok": true, "service": "kneo"}),
            &json!({"ok": "true"}),
        );
    }

    #[test]
    fn printed_bodies_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(10);
        assert_eq!(truncate(long.clone(), 20), long);
        assert_eq!(truncate(long, 3), "ééé\n… (14 more bytes)");
    }
}
