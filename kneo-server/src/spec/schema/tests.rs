//! Reader tests: one problem per test, at its exact path.

use super::*;
use crate::spec::{migrate, shorthand};
use serde_json::json;

/// Reads `value` the way `validate` does: migrated, short forms expanded.
fn read(value: Value) -> SchemaOutcome {
    let migrated = migrate::migrate(&value).unwrap();
    let mut document = migrated.document;
    shorthand::expand(&mut document);
    read_spec(&document, migrated.source_version)
}

fn only(outcome: &SchemaOutcome) -> &Diagnostic {
    assert_eq!(outcome.diagnostics.len(), 1, "{:#?}", outcome.diagnostics);
    &outcome.diagnostics[0]
}

#[test]
fn minimal_spec_reads_cleanly() {
    let outcome = read(json!({"version": "v1", "agent": {"name": "a"}}));
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    assert_eq!(outcome.spec.unwrap().agent.name, "a");
}

#[test]
fn unknown_key_names_the_path_and_the_closest_key() {
    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a", "modle": {"provider": "dummy", "name": "m"}}}),
    );
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.code, "E_SCHEMA");
    assert_eq!(diagnostic.path, "agent.modle");
    assert_eq!(diagnostic.message, "Unknown key 'modle' in agent.");
    assert_eq!(
        diagnostic.suggestion.as_deref(),
        Some("Did you mean 'model'?")
    );
    assert!(outcome.spec.is_none());
}

#[test]
fn unknown_key_without_a_close_match_lists_the_allowed_keys() {
    let outcome = read(json!({"version": "v1", "agent": {"name": "a"}, "zzzzzzzzzz": 1}));
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.path, "zzzzzzzzzz");
    assert_eq!(diagnostic.message, "Unknown key 'zzzzzzzzzz' in the spec.");
    assert!(
        diagnostic
            .suggestion
            .as_deref()
            .unwrap()
            .contains("'policies'")
    );
}

#[test]
fn unknown_keys_are_found_at_every_level() {
    let outcome = read(json!({
        "version": "v1",
        "agent": {"name": "a", "tools": {"include": [], "permisions": {}}},
        "workflow": {"type": "sequential", "steps": [{"id": "s", "kind": "agent", "ref": "a", "retries": 1}]},
        "components": {"humans": {"h": {"description": "d", "optoins": []}}},
        "tools": {"t": {"implementation": "x", "mcp": {"server": "s", "tool": "y"}}},
    }));
    let paths: Vec<&str> = outcome
        .diagnostics
        .iter()
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(
        paths,
        vec![
            "agent.tools.permisions",
            "workflow.steps[0].retries",
            "components.humans.h.optoins",
            "tools.t.mcp.tool"
        ]
    );
    assert!(outcome.diagnostics.iter().all(|d| d.code == "E_SCHEMA"));
}

#[test]
fn missing_required_fields_are_reported() {
    let outcome = read(json!({"version": "v1"}));
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.path, "agent");
    assert_eq!(
        diagnostic.message,
        "The spec is missing the required key 'agent'."
    );

    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a"}, "workflow": {"type": "sequential", "steps": [{"id": "s", "kind": "agent"}]}}),
    );
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.path, "workflow.steps[0].ref");
    assert_eq!(
        diagnostic.message,
        "workflow.steps[0] is missing the required key 'ref'."
    );
}

#[test]
fn wrong_types_are_reported_with_what_was_found() {
    let outcome = read(json!({"version": "v1", "agent": {"name": 3}}));
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.path, "agent.name");
    assert_eq!(
        diagnostic.message,
        "agent.name must be a string, but it is the number 3."
    );
}

#[test]
fn bad_enum_values_suggest_the_closest_spelling() {
    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a"}, "workflow": {"type": "sequental", "steps": []}}),
    );
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.path, "workflow.type");
    assert!(
        diagnostic
            .message
            .starts_with("workflow.type is 'sequental', which is not one of 'sequential'")
    );
    assert_eq!(
        diagnostic.suggestion.as_deref(),
        Some("Did you mean 'sequential'?")
    );
}

#[test]
fn version_rules() {
    // No version reads as v0, silently (recording 360); the reader keeps what was written.
    let outcome = read(json!({"agent": {"name": "a"}}));
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    assert_eq!(outcome.spec.unwrap().version, None);
    let outcome = read(json!({"version": "v0", "agent": {"name": "a"}}));
    assert_eq!(outcome.spec.unwrap().version.as_deref(), Some("v0"));
    // v0 keys are unknown in a v1 document.
    let outcome = read(json!({"version": "v1", "agent": {"name": "a"}, "root_agent": {}}));
    assert_eq!(only(&outcome).path, "root_agent");
}

#[test]
fn nulls_read_as_absent_for_optional_fields() {
    let outcome =
        read(json!({"version": "v1", "agent": {"name": "a", "description": null, "tools": null}}));
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
}

#[test]
fn range_errors_are_not_structural() {
    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a"}, "workflow": {
            "type": "graph", "start": "a", "max_steps": 0, "nodes": {}, "edges": []
        }}),
    );
    let diagnostic = only(&outcome);
    assert_eq!(diagnostic.code, "E_GRAPH_MAX_STEPS");
    assert_eq!(diagnostic.path, "workflow.max_steps");
    assert!(outcome.spec.is_some());
    // kneo-serv's token budget check is a schema error.
    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a", "model": {"provider": "dummy", "name": "m", "token_budget": 0}}}),
    );
    let errors: Vec<&Diagnostic> = outcome
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "E_SCHEMA");
    assert_eq!(
        errors[0].message,
        "agent.model.token_budget is 0; it must be greater than 0."
    );
    assert!(outcome.spec.is_none());
}

#[test]
fn both_tool_selection_forms_read() {
    let outcome = read(json!({"version": "v1", "agent": {"name": "a", "tools": ["x", "y"]}}));
    assert_eq!(outcome.spec.unwrap().agent.tool_names(), ["x", "y"]);
    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a", "tools": {"include": ["x"], "permissions": {"network": false}}}}),
    );
    let spec = outcome.spec.unwrap();
    assert_eq!(spec.agent.tool_names(), ["x"]);
    assert_eq!(
        spec.agent
            .tools
            .unwrap()
            .permissions()
            .unwrap()
            .allow_network,
        Some(false)
    );
    let outcome = read(json!({"version": "v1", "agent": {"name": "a", "tools": "x"}}));
    assert_eq!(only(&outcome).path, "agent.tools");
}

#[test]
fn group_chat_alias_is_accepted() {
    let outcome = read(
        json!({"version": "v1", "agent": {"name": "a"}, "workflow": {"type": "group_chat", "rounds": 2, "participants": []}}),
    );
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
}
