//! `kneo spec validate` (the real binary) on what the engine now runs: graph workflows,
//! `command:` functions and MCP tools validate, and broken graphs and tools are reported with
//! their codes.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn validate(text: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, text).expect("write the spec");
    let output = Command::new(kneo_testkit::bins::bin_path("kneo"))
        .args(["spec", "validate"])
        .arg(&path)
        .arg("--json")
        .current_dir(dir.path())
        .output()
        .expect("run kneo spec validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

fn codes(report: &Value) -> Vec<(String, String)> {
    report["diagnostics"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|d| d["severity"] == "error")
                .map(|d| {
                    (
                        d["code"].as_str().unwrap_or_default().to_string(),
                        d["path"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const RUNNABLE: &str = r#"version: v1
agent:
  name: root
  model: {provider: openai, name: gpt-4o-mini}
  tools: {include: [count_words, word_count], permissions: {network: false}}
workflow:
  type: graph
  name: runnable
  start: fetch
  max_steps: 5
  nodes:
    fetch:   {id: fetch,   kind: function, ref: fetch}
    approve: {id: approve, kind: human,    ref: reviewer}
    publish: {id: publish, kind: agent,    ref: root}
  edges:
    - {from: fetch, to: approve}
    - {from: approve, to: publish, condition: {type: output_contains, value: ok}}
components:
  functions:
    fetch: {command: [sh, -c, "echo '\"fetched\"'"], env: {MODE: test}}
  humans:
    reviewer: {description: Check it.}
tools:
  count_words:
    description: Counts words.
    parameters: {type: object, properties: {text: {type: string}}}
    mcp: {server: words, name: word_count}
mcp_servers:
  words: {transport: stdio, command: mcp-words, args: [--stdio]}
"#;

#[test]
fn runnable_graph_command_and_mcp_specs_are_valid() {
    let (status, report) = validate(RUNNABLE);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(status, 0);
}

#[test]
fn broken_graphs_and_tools_are_reported_with_their_codes() {
    let broken = r#"version: v1
agent:
  name: root
  model: {provider: dummy, name: m}
  tools: {include: [nothing_behind], permissions: {network: false}}
workflow:
  type: graph
  name: broken
  start: missing_start
  nodes:
    a: {id: a, kind: function, ref: echo}
    b: {id: b, kind: function, ref: echo}
  edges:
    - {from: a, to: b}
    - {from: b, to: a}
    - {from: b, to: nowhere}
components:
  functions:
    echo: {implementation: kneo.builtin.echo}
tools:
  nothing_behind: {description: A tool with no backing.}
"#;
    let (status, report) = validate(broken);
    assert_eq!(report["valid"], false, "{report}");
    assert_ne!(status, 0);
    let found = codes(&report);
    for (code, path) in [
        ("E_GRAPH_START", "workflow.start"),
        ("E_GRAPH_START_UNKNOWN", "workflow.start"),
        ("E_GRAPH_EDGE_TO", "workflow.edges[2]"),
        ("E_TOOL_NO_BACKING", "tools.nothing_behind"),
    ] {
        assert!(
            found.contains(&(code.to_string(), path.to_string())),
            "{code} at {path} missing from {found:?}"
        );
    }
}

#[test]
fn every_workflow_type_of_kneo_serv_validates() {
    for workflow in [
        "{type: concurrent, name: fan-out, participants: [{id: a, kind: agent, ref: helper}, {id: b, kind: function, ref: echo}]}",
        "{type: handoff, name: relay, participants: [{id: a, kind: agent, ref: helper}], selector: {type: round_robin}}",
        "{type: group-chat, name: chat, rounds: 2, participants: [{id: a, kind: agent, ref: helper}]}",
    ] {
        let spec = format!(
            "version: v1\nagent: {{name: root, model: {{provider: dummy, name: m}}}}\nworkflow: {workflow}\n\
             components:\n  agents: {{helper: {{name: helper, model: {{provider: dummy, name: m}}}}}}\n  \
             functions: {{echo: {{implementation: kneo.builtin.echo}}}}\n"
        );
        let (status, report) = validate(&spec);
        assert_eq!(report["valid"], true, "{workflow}: {report}");
        assert_eq!(status, 0);
    }
}
