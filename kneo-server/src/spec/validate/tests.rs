//! Validation rules, one spec per rule, plus the documented examples that must pass.

use super::*;
use crate::spec::model::{OnError, StepKind, WorkflowType};
use crate::spec::parse::{SpecLimits, parse_yaml};
use serde_json::json;

/// Spec 6.1 — the approval workflow recorded in golden 43.
const APPROVAL: &str = r#"
version: v1
agent:
  name: approval-root
  system_prompt: Root approval agent.
  model: {provider: dummy, name: demo-model}
  strategy: {type: simple}
  runtime_preferences: {preferred_mode: bridge, allowed_modes: [bridge]}
workflow:
  type: sequential
  name: approval-workflow
  steps:
    - {id: draft,   kind: function, ref: draft_report}
    - {id: approve, kind: human,    ref: approval-reviewer}
    - {id: publish, kind: function, ref: publish_report}
components:
  functions:
    draft_report:   {implementation: examples.human_functions.draft_report}
    publish_report: {implementation: examples.human_functions.publish_report}
  humans:
    approval-reviewer:
      description: Please approve or edit the draft report.
      assignee: reviewer@example.com
      timeout_seconds: 86400
      on_timeout: escalate
"#;

/// Spec 6.2 — graph with conditional routing over agent nodes.
const GRAPH: &str = r#"
version: v1
agent: {name: graph-root, model: {provider: dummy, name: m}, strategy: {type: simple}}
workflow:
  type: graph
  name: review-graph
  start: retrieve
  max_steps: 10
  nodes:
    retrieve: {id: retrieve, kind: agent, ref: retriever}
    review:   {id: review,   kind: agent, ref: safety-reviewer}
    revise:   {id: revise,   kind: agent, ref: reviser}
    finalize: {id: finalize, kind: agent, ref: finalizer}
  edges:
    - {from: retrieve, to: review}
    - {from: review, to: revise,   condition: {type: output_contains, value: REVISION_REQUIRED}}
    - {from: review, to: finalize, condition: {type: output_contains, value: APPROVED}}
    - {from: revise, to: finalize}
components:
  agents:
    retriever:       {name: retriever,       system_prompt: Retrieve information., model: {provider: dummy, name: m}}
    safety-reviewer: {name: safety-reviewer, system_prompt: Return APPROVED or REVISION_REQUIRED., model: {provider: dummy, name: m}}
    reviser:         {name: reviser,         system_prompt: Revise draft., model: {provider: dummy, name: m}}
    finalizer:       {name: finalizer,       system_prompt: Finalize report., model: {provider: dummy, name: m}}
"#;

/// Spec 6.3 — error-tolerant sequential pipeline.
const RESILIENT: &str = r#"
version: v1
agent: {name: resilient-root, model: {provider: dummy, name: m}, strategy: {type: simple}}
workflow:
  type: sequential
  name: resilient-pipeline
  steps:
    - {id: fetch,  kind: function, ref: flaky_fetch,  on_error: fallback, fallback_ref: cached_fetch}
    - {id: cached_fetch, kind: function, ref: cached_fetch}
    - {id: enrich, kind: function, ref: flaky_enrich, on_error: continue}
    - {id: report, kind: function, ref: build_report}
components:
  functions:
    flaky_fetch:  {implementation: examples.app_functions.flaky_fetch}
    cached_fetch: {implementation: examples.app_functions.cached_fetch}
    flaky_enrich: {implementation: examples.app_functions.flaky_enrich}
    build_report: {implementation: examples.app_functions.build_report}
"#;

fn catalog() -> StaticCatalog {
    StaticCatalog::new(
        [
            "examples.human_functions.draft_report",
            "examples.human_functions.publish_report",
            "examples.app_functions.flaky_fetch",
            "examples.app_functions.cached_fetch",
            "examples.app_functions.flaky_enrich",
            "examples.app_functions.build_report",
            "examples.app_functions.web_search",
        ],
        ["web_search"],
    )
}

fn check_yaml(text: &str) -> Validation {
    let value = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap();
    validate(&value, &catalog())
}

fn check_json(value: Value) -> Validation {
    validate(&value, &catalog())
}

/// `(code, path)` of every finding (see [`findings`]), for compact assertions.
fn found(validation: &Validation) -> Vec<(&str, &str)> {
    findings(validation)
        .into_iter()
        .map(|diagnostic| (diagnostic.code.as_str(), diagnostic.path.as_str()))
        .collect()
}

/// Findings other than notes (`info`) and "this key has no effect" warnings, which have their
/// own tests (`spec::keys`).
fn findings(validation: &Validation) -> Vec<&Diagnostic> {
    validation
        .diagnostics
        .iter()
        .filter(|d| {
            d.severity != crate::spec::Severity::Info && d.code != codes::W_SPEC_KEY_NO_EFFECT
        })
        .collect()
}

fn assert_clean(validation: &Validation) {
    assert!(
        findings(validation).is_empty(),
        "{:#?}",
        validation.diagnostics
    );
    assert!(validation.valid());
    assert!(validation.spec.is_some());
}

/// Asserts `validation` contains exactly one diagnostic with `code`, at `path`, and returns it.
fn expect<'v>(validation: &'v Validation, code: &str, path: &str) -> &'v Diagnostic {
    let matching: Vec<&Diagnostic> = validation
        .diagnostics
        .iter()
        .filter(|d| d.code == code)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {code}, got {:#?}",
        validation.diagnostics
    );
    assert_eq!(matching[0].path, path, "{:#?}", matching[0]);
    matching[0]
}

/// A spec with a root agent and the given extra top-level content.
fn with_agent(extra: Value) -> Value {
    let mut spec = json!({"version": "v1", "agent": {"name": "root", "model": {"provider": "dummy", "name": "m"}}});
    if let (Some(target), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        target.extend(extra);
    }
    spec
}

fn step(id: &str, kind: &str, reference: &str) -> Value {
    json!({"id": id, "kind": kind, "ref": reference})
}

fn functions(names: &[&str]) -> Value {
    let map: serde_json::Map<String, Value> = names
        .iter()
        .map(|name| {
            (
                (*name).to_owned(),
                json!({"implementation": format!("examples.app_functions.{name}")}),
            )
        })
        .collect();
    Value::Object(map)
}

// ---- golden recordings --------------------------------------------------------------------

#[test]
fn golden_43_approval_spec_is_valid_with_no_diagnostics() {
    let validation = check_yaml(APPROVAL);
    assert_clean(&validation);
    let spec = validation.spec.unwrap();
    let workflow = spec.workflow.unwrap();
    assert_eq!(workflow.workflow_type, WorkflowType::Sequential);
    let kinds: Vec<StepKind> = workflow.steps.iter().map(|step| step.kind).collect();
    assert_eq!(
        kinds,
        [StepKind::Function, StepKind::Human, StepKind::Function]
    );
    assert_eq!(
        spec.components.humans["approval-reviewer"].timeout_seconds,
        Some(86_400)
    );
}

#[test]
fn golden_44_output_is_reproduced_exactly() {
    let request_spec = json!({
        "version": "v1",
        "agent": {"name": "x", "model": {"provider": "dummy", "name": "m"}, "tools": {"include": ["missing"]}}
    });
    let expected = json!([
        {
            "code": "E_TOOL_REF",
            "severity": "error",
            "message": "Tool 'missing' is referenced but not defined.",
            "path": "agent.tools",
            "suggestion": null
        },
        {
            "code": "W_TOOL_POLICY_UNRESTRICTED",
            "severity": "warning",
            "message": "Agent tool selection has no explicit permissions policy.",
            "path": "agent.tools.permissions",
            "suggestion": "Declare permissions even when all privileged capabilities are disabled."
        },
        {
            "code": "W_HUMAN_APPROVAL_MISSING",
            "severity": "warning",
            "message": "Spec exposes privileged tools or risky imports without a human approval step.",
            "path": "workflow",
            "suggestion": "Add a human workflow step before deployment or document why the spec is exempt."
        }
    ]);
    let validation = validate(&request_spec, &StaticCatalog::default());
    assert!(!validation.valid());
    assert!(validation.spec.is_none());
    assert_eq!(
        serde_json::to_value(&validation.diagnostics).unwrap(),
        expected
    );
}

// ---- documented examples that must pass ---------------------------------------------------

#[test]
fn graph_example_with_agent_nodes_is_valid() {
    let validation = check_yaml(GRAPH);
    assert_clean(&validation);
    let workflow = validation.spec.unwrap().workflow.unwrap();
    assert_eq!(workflow.start.as_deref(), Some("retrieve"));
    assert_eq!(workflow.edges.len(), 4);
}

#[test]
fn resilient_example_with_catalog_functions_is_valid() {
    let validation = check_yaml(RESILIENT);
    assert_clean(&validation);
    let steps = validation.spec.unwrap().workflow.unwrap().steps;
    assert_eq!(steps[0].on_error, OnError::Fallback);
    assert_eq!(steps[0].fallback_ref.as_deref(), Some("cached_fetch"));
    assert_eq!(steps[1].on_error, OnError::Fail);
}

#[test]
fn section_6_4_valid_cases_pass() {
    let participants = json!([
        step("a", "agent", "a1"),
        step("b", "agent", "a2"),
        step("c", "agent", "a3")
    ]);
    let agents = json!({
        "a1": {"name": "a1"}, "a2": {"name": "a2"}, "a3": {"name": "a3"},
    });
    for workflow in [
        json!({"type": "handoff", "name": "h", "participants": participants, "selector": {"type": "round_robin"}}),
        json!({"type": "handoff", "name": "h", "participants": participants, "selector": {"type": "sequence", "sequence": ["c", "a"]}}),
        json!({"type": "group-chat", "name": "g", "rounds": 2, "participants": participants}),
        json!({"type": "concurrent", "name": "c", "participants": participants}),
    ] {
        assert_clean(&check_json(with_agent(
            json!({"workflow": workflow, "components": {"agents": agents}}),
        )));
    }

    // MCP tool with a declared server, agent-as-tool, permissions and a human step: no findings.
    let spec = json!({
        "version": "v1",
        "agent": {
            "name": "root",
            "tools": {"include": ["search", "ask_analyst"], "permissions": {"network": false, "filesystem": false, "shell": false}},
            "guardrails": {"input": [{"id": "no-secrets", "type": "regex", "action": "block", "config": {"patterns": ["sk-[A-Za-z0-9]{16,}"]}}]},
            "skills": ["code_review"]
        },
        "tools": {
            "search": {"description": "Search.", "mcp": {"server": "research_mcp", "name": "remote_search"}},
            "ask_analyst": {"description": "Ask the analyst.", "agent": "analyst"}
        },
        "mcp_servers": {"research_mcp": {"transport": "http", "url": "https://mcp.example.invalid/api"}},
        "skills": {"code_review": {"source": "examples/skills/code_review", "description": "Review code."}},
        "workflow": {"type": "sequential", "name": "w", "steps": [step("ask", "agent", "root"), step("ok", "human", "reviewer")]},
        "components": {
            "agents": {"analyst": {"name": "analyst"}, "flow-agent": {"name": "flow-agent", "as_agent": "review_flow"}},
            "workflows": {"review_flow": {"type": "sequential", "name": "rf", "steps": [step("a", "agent", "analyst")]}},
            "humans": {"reviewer": {"description": "Pick one.", "request_type": "selection",
                        "options": ["refund", "replace", "escalate-to-legal"], "default_option": "refund"}}
        }
    });
    assert_clean(&check_json(spec));
}

#[test]
fn validated_spec_round_trips_through_serde() {
    for text in [APPROVAL, GRAPH, RESILIENT] {
        let value = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap();
        let spec = validate(&value, &catalog()).spec.unwrap();
        // The serde derive reads the original document to the same model as the validator...
        let derived: Spec = serde_json::from_value(value).unwrap();
        assert_eq!(derived, spec);
        // ...and a stored spec loads back unchanged.
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<Spec>(stored).unwrap(), spec);
    }
}

// ---- schema --------------------------------------------------------------------------------

#[test]
fn unknown_agent_key_is_a_schema_diagnostic_not_a_panic() {
    let validation = check_json(json!({"version": "v1", "agent": {"name": "a", "modle": {}}}));
    let diagnostic = expect(&validation, "E_SCHEMA", "agent.modle");
    assert_eq!(
        diagnostic.suggestion.as_deref(),
        Some("Did you mean 'model'?")
    );
    assert!(validation.spec.is_none());
}

#[test]
fn unsupported_version_is_an_error() {
    let validation = check_json(json!({"version": "v2", "agent": {"name": "a"}}));
    let diagnostic = expect(&validation, "E_SPEC_VERSION", "version");
    assert_eq!(diagnostic.message, "Unsupported spec version: v2");
    assert_eq!(validation.diagnostics.len(), 1);
}

#[test]
fn v0_documents_migrate_silently() {
    // Recordings 355 and 358: root_agent, a list workflow, component_agents, functions.
    let validation = check_json(json!({
        "root_agent": {"name": "legacy", "model": {"provider": "dummy", "name": "m"}},
        "root_workflow": [step("draft", "agent", "writer"), step("stamp", "function", "stamp")],
        "component_agents": {"writer": {"name": "writer"}},
        "functions": {"stamp": {"implementation": "examples.app_functions.build_report"}},
    }));
    assert_clean(&validation);
    let spec = validation.spec.unwrap();
    assert_eq!(spec.version, None);
    assert_eq!(spec.workflow.unwrap().steps.len(), 2);
    let validation =
        check_json(json!({"version": "v0", "agent": {"name": "a"}, "workflow": {"steps": ["a"]}}));
    assert!(validation.valid(), "{:#?}", validation.diagnostics);
}

#[test]
fn missing_agent_is_a_schema_error() {
    let validation =
        check_json(json!({"version": "v1", "workflow": {"type": "sequential", "steps": []}}));
    expect(&validation, "E_SCHEMA", "agent");
}

// ---- references ----------------------------------------------------------------------------

#[test]
fn component_agent_unknown_tool_is_reported_at_its_path() {
    let validation = check_json(with_agent(json!({
        "components": {"agents": {"helper": {"name": "helper", "tools": {"include": ["nope"], "permissions": {}}}}}
    })));
    let diagnostic = expect(&validation, "E_TOOL_REF", "components.agents.helper.tools");
    assert_eq!(
        diagnostic.message,
        "Tool 'nope' is referenced but not defined."
    );
}

#[test]
fn registered_tools_need_no_declaration() {
    let validation = check_json(
        with_agent(json!({}))
            .tap_agent(json!({"tools": {"include": ["web_search"], "permissions": {}}})),
    );
    assert!(
        !found(&validation)
            .iter()
            .any(|(code, _)| *code == "E_TOOL_REF"),
        "{:#?}",
        validation.diagnostics
    );
}

#[test]
fn tool_backing_rules() {
    let validation = check_json(with_agent(json!({"tools": {
        "bare": {"description": "No backing."},
        "double": {"implementation": "examples.app_functions.web_search", "agent": "root"},
    }})));
    expect(&validation, "E_TOOL_NO_BACKING", "tools.bare");
    let diagnostic = expect(&validation, "E_TOOL_MULTIPLE_BACKINGS", "tools.double");
    assert!(
        diagnostic.message.contains("sets implementation, agent;"),
        "{}",
        diagnostic.message
    );
}

#[test]
fn tool_implementation_must_be_registered_and_safe() {
    let validation = check_json(with_agent(json!({"tools": {
        "unknown": {"implementation": "examples.app_functions.nope"},
        "shell": {"implementation": "os.system"},
    }})));
    expect(
        &validation,
        "E_TOOL_IMPLEMENTATION_UNKNOWN",
        "tools.unknown.implementation",
    );
    expect(
        &validation,
        "E_UNSAFE_TOOL_IMPORT",
        "tools.shell.implementation",
    );
}

#[test]
fn unknown_mcp_server_and_agent_tool_targets() {
    let validation = check_json(with_agent(json!({"tools": {
        "search": {"mcp": {"server": "research_mcp"}},
        "ask": {"agent": "analyst"},
    }})));
    expect(
        &validation,
        "E_MCP_UNKNOWN_SERVER",
        "tools.search.mcp.server",
    );
    expect(&validation, "E_AGENT_TOOL_UNKNOWN_AGENT", "tools.ask.agent");
}

#[test]
fn mcp_transport_needs_its_address() {
    let validation = check_json(with_agent(
        json!({"mcp_servers": {"local": {"transport": "stdio"}}}),
    ));
    expect(
        &validation,
        "E_MCP_MISSING_FIELD",
        "mcp_servers.local.command",
    );
}

#[test]
fn unknown_step_ref_after_removing_the_human_component() {
    let text = APPROVAL.replace(
        "  humans:\n    approval-reviewer:",
        "  humans:\n    someone-else:",
    );
    let validation = check_yaml(&text);
    let diagnostic = expect(&validation, "E_STEP_HUMAN_REF", "workflow.steps[1].ref");
    assert_eq!(
        diagnostic.message,
        "Human component 'approval-reviewer' is referenced but not defined."
    );
}

#[test]
fn step_refs_resolve_against_the_map_for_their_kind() {
    // A function step naming a human component does not resolve.
    let validation = check_json(with_agent(json!({
        "workflow": {"type": "sequential", "steps": [step("s", "function", "approver"), step("t", "agent", "root")]},
        "components": {"humans": {"approver": {"description": "d"}}}
    })));
    expect(&validation, "E_STEP_FUNCTION_REF", "workflow.steps[0].ref");
    assert_eq!(found(&validation).len(), 1, "{:#?}", validation.diagnostics);
}

#[test]
fn unregistered_function_names_the_implementation_and_the_docs() {
    let value = parse_yaml(APPROVAL.as_bytes(), &SpecLimits::default()).unwrap();
    let validation = validate(&value, &StaticCatalog::default());
    assert_eq!(
        found(&validation),
        [
            (
                "E_FUNCTION_UNKNOWN",
                "components.functions.draft_report.implementation"
            ),
            (
                "E_FUNCTION_UNKNOWN",
                "components.functions.publish_report.implementation"
            ),
        ]
    );
    let diagnostic = findings(&validation)[0];
    assert!(
        diagnostic
            .message
            .contains("'examples.human_functions.draft_report'")
    );
    assert!(
        diagnostic
            .suggestion
            .as_deref()
            .unwrap()
            .contains("docs/extending.md")
    );
}

#[test]
fn function_command_backing_needs_no_catalog_entry() {
    let value = json!({
        "version": "v1",
        "agent": {"name": "root"},
        "workflow": {"type": "sequential", "steps": [step("s", "function", "shout")]},
        "components": {"functions": {"shout": {"command": ["python3", "shout.py"], "env": {"MODE": "loud", "LEVEL": 3}}}}
    });
    let validation = validate(&value, &StaticCatalog::default());
    assert_clean(&validation);
    let function = &validation.spec.unwrap().components.functions["shout"];
    assert_eq!(function.env["LEVEL"], "3");
}

#[test]
fn function_backing_rules() {
    let validation = check_json(with_agent(json!({"components": {"functions": {
        "both": {"implementation": "examples.app_functions.build_report", "command": "run.sh"},
        "neither": {},
        "empty": {"command": []},
        "dangerous": {"implementation": "subprocess.run"},
    }}})));
    expect(
        &validation,
        "E_FUNCTION_MULTIPLE_BACKINGS",
        "components.functions.both",
    );
    expect(
        &validation,
        "E_FUNCTION_NO_BACKING",
        "components.functions.neither",
    );
    expect(
        &validation,
        "E_COMMAND_EMPTY",
        "components.functions.empty.command",
    );
    expect(
        &validation,
        "E_UNSAFE_FUNCTION_IMPORT",
        "components.functions.dangerous.implementation",
    );
}

#[test]
fn agent_as_tool_cycle_is_a_build_cycle() {
    let validation = check_json(with_agent(json!({
        "tools": {"ask_analyst": {"description": "Ask.", "agent": "analyst"}},
        "components": {"agents": {"analyst": {"name": "analyst", "tools": {"include": ["ask_analyst"], "permissions": {}}}}}
    })));
    let diagnostic = expect(
        &validation,
        "E_BUILD_CYCLE",
        "components.agents.analyst.tools",
    );
    assert_eq!(
        diagnostic.message,
        "Build cycle: agent 'analyst' → tool 'ask_analyst' → agent 'analyst'; none of them can be built first."
    );
}

#[test]
fn workflow_as_agent_cycle_through_the_root_agent_is_a_build_cycle() {
    let validation = check_json(json!({
        "version": "v1",
        "agent": {"name": "root", "as_agent": "flow"},
        "components": {"workflows": {"flow": {"type": "sequential", "steps": [step("again", "agent", "root")]}}}
    }));
    expect(&validation, "E_BUILD_CYCLE", "agent.as_agent");
}

#[test]
fn self_nesting_workflow_is_a_build_cycle() {
    let validation = check_json(with_agent(json!({
        "components": {"workflows": {"loop": {"type": "sequential", "steps": [step("inner", "workflow", "loop")]}}}
    })));
    expect(
        &validation,
        "E_BUILD_CYCLE",
        "components.workflows.loop.steps[0].ref",
    );
    expect(
        &validation,
        "E_STEP_WORKFLOW_SELF_REF",
        "components.workflows.loop.steps[0].ref",
    );
}

#[test]
fn as_agent_rules() {
    let validation = check_json(with_agent(json!({"components": {
        "agents": {
            "reviewer": {"name": "reviewer", "as_agent": "review_flow", "model": {"provider": "dummy", "name": "m"}},
            "ghost": {"name": "ghost", "as_agent": "missing_flow"},
        },
        "workflows": {"review_flow": {"type": "sequential", "steps": [step("s", "agent", "root")]}}
    }})));
    let diagnostic = expect(
        &validation,
        "E_AS_AGENT_FIELDS",
        "components.agents.reviewer",
    );
    assert!(
        diagnostic
            .message
            .contains("model are defined by the workflow")
    );
    expect(
        &validation,
        "E_AS_AGENT_UNKNOWN_WORKFLOW",
        "components.agents.ghost.as_agent",
    );
}

#[test]
fn unknown_skill_is_reported() {
    let validation =
        check_json(with_agent(json!({})).tap_agent(json!({"skills": ["code_review"]})));
    let diagnostic = expect(&validation, "E_SKILL_REF", "agent.skills");
    assert_eq!(
        diagnostic.message,
        "Skill 'code_review' is referenced but not defined."
    );
}

#[test]
fn preferred_mode_must_be_allowed() {
    let validation = check_json(with_agent(json!({})).tap_agent(
        json!({"runtime_preferences": {"preferred_mode": "native", "allowed_modes": ["bridge"]}}),
    ));
    expect(
        &validation,
        "E_RUNTIME_PREFERRED_NOT_ALLOWED",
        "agent.runtime_preferences.preferred_mode",
    );
}

// ---- workflow shape ------------------------------------------------------------------------

#[test]
fn sequential_needs_steps() {
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "sequential", "name": "w", "steps": []}}),
    ));
    expect(&validation, "E_WORKFLOW_STEPS_REQUIRED", "workflow.steps");
}

#[test]
fn step_ids_must_be_unique() {
    let validation = check_json(with_agent(json!({
        "workflow": {"type": "sequential", "steps": [step("s", "agent", "root"), step("s", "agent", "root")]}
    })));
    expect(&validation, "E_STEP_DUPLICATE_ID", "workflow.steps[1].id");
}

#[test]
fn graph_start_and_edges_must_name_nodes() {
    let text = GRAPH.replace("start: retrieve", "start: retreive").replace(
        "{from: revise, to: finalize}",
        "{from: revise, to: publish}",
    );
    let validation = check_yaml(&text);
    let diagnostic = expect(&validation, "E_GRAPH_START_UNKNOWN", "workflow.start");
    assert_eq!(
        diagnostic.suggestion.as_deref(),
        Some("Did you mean 'retrieve'?")
    );
    // kneo-serv reports an undefined start twice, under both its codes.
    expect(&validation, "E_GRAPH_START", "workflow.start");
    let diagnostic = expect(&validation, "E_GRAPH_EDGE_TO", "workflow.edges[3]");
    assert_eq!(
        diagnostic.message,
        "Graph edge target 'publish' is not defined."
    );
}

#[test]
fn graph_cycle_needs_no_explicit_max_steps() {
    // Recording 294: a loop without max_steps is bounded by the default of 50.
    let text = GRAPH
        .replace("  max_steps: 10\n", "")
        .replace("{from: revise, to: finalize}", "{from: revise, to: review}");
    let validation = check_yaml(&text);
    assert_clean(&validation);
    let workflow = validation.spec.unwrap().workflow.unwrap();
    assert_eq!(workflow.max_steps, None);
    assert_eq!(workflow.graph_max_steps(), 50);
    for steps in [0, -1] {
        let capped = check_yaml(&GRAPH.replace("max_steps: 10", &format!("max_steps: {steps}")));
        let diagnostic = expect(&capped, "E_GRAPH_MAX_STEPS", "workflow.max_steps");
        assert_eq!(diagnostic.message, "Graph max_steps must be at least 1.");
    }
}

#[test]
fn graph_structure_rules() {
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "graph", "nodes": {}}}),
    ));
    assert_eq!(
        found(&validation),
        [
            ("E_SCHEMA", "workflow.start"),
            ("E_SCHEMA", "workflow.edges")
        ]
    );

    let validation = check_json(with_agent(json!({"workflow": {
        "type": "graph", "start": "a",
        "nodes": {"a": step("a", "agent", "root"), "b": step("c", "agent", "root")},
        "edges": [{"from": "a", "to": "b"}]
    }})));
    // Recording 299: only a warning; runs know the node by its key.
    expect(
        &validation,
        "W_GRAPH_NODE_ID_MISMATCH",
        "workflow.nodes.b.id",
    );
    assert!(validation.valid());

    let validation = check_json(with_agent(json!({"workflow": {
        "type": "graph", "start": "a",
        "nodes": {"a": {"id": "a", "kind": "agent", "ref": "root", "enabled": false}, "b": step("b", "agent", "root")},
        "edges": [{"from": "b", "to": "zz"}]
    }})));
    expect(&validation, "E_GRAPH_START_DISABLED", "workflow.start");
    expect(&validation, "E_GRAPH_EDGE_TO", "workflow.edges[0]");
}

#[test]
fn unreachable_graph_node_is_a_warning() {
    let text = GRAPH.replace("    - {from: revise, to: finalize}\n", "");
    let validation =
        check_yaml(&text.replace("{from: review, to: revise,", "{from: review, to: finalize,"));
    expect(
        &validation,
        "W_GRAPH_NODE_UNREACHABLE",
        "workflow.nodes.revise",
    );
    assert!(validation.valid());
}

#[test]
fn handoff_selector_entries_must_be_participants() {
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "handoff",
        "participants": [step("a", "agent", "root"), step("b", "agent", "root")],
        "selector": {"type": "sequence", "sequence": ["a", "z"]}
    }})));
    expect(
        &validation,
        "E_HANDOFF_SELECTOR_REF",
        "workflow.selector.sequence[1]",
    );

    // Recording 246: a sequence selector without a sequence runs in declaration order.
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "handoff", "participants": [step("a", "agent", "root")], "selector": {"type": "sequence"}
    }})));
    assert_clean(&validation);
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "handoff", "participants": [step("a", "agent", "root")], "selector": {"type": "round_robin", "sequence": ["a"]}
    }})));
    expect(
        &validation,
        "W_WORKFLOW_FIELD_IGNORED",
        "workflow.selector.sequence",
    );
}

#[test]
fn group_chat_rounds_must_be_at_least_one() {
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "group-chat", "rounds": 0, "participants": [step("a", "agent", "root")]
    }})));
    let diagnostic = expect(&validation, "E_GROUP_CHAT_ROUNDS", "workflow.rounds");
    assert_eq!(diagnostic.message, "Group-chat rounds must be at least 1.");
}

#[test]
fn orchestrations_need_participants_and_at_most_one_concurrent_human() {
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "concurrent", "participants": []}}),
    ));
    expect(
        &validation,
        "E_WORKFLOW_PARTICIPANTS_REQUIRED",
        "workflow.participants",
    );

    let validation = check_json(with_agent(json!({
        "workflow": {"type": "concurrent", "participants": [
            step("a", "agent", "root"), step("h1", "human", "reviewer"), step("h2", "human", "reviewer")
        ]},
        "components": {"humans": {"reviewer": {"description": "d"}}}
    })));
    expect(
        &validation,
        "E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED",
        "workflow.participants",
    );

    // Recording 256: participants cannot fall back.
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "handoff", "participants": [
            {"id": "a", "kind": "agent", "ref": "root", "on_error": "fallback", "fallback_ref": "b"},
            step("b", "agent", "root"),
            step("b", "agent", "root"),
        ]}}),
    ));
    expect(
        &validation,
        "E_PARTICIPANT_FALLBACK_UNSUPPORTED",
        "workflow.participants[0].fallback_ref",
    );
    expect(
        &validation,
        "E_PARTICIPANT_DUPLICATE_ID",
        "workflow.participants[2].id",
    );
}

#[test]
fn fields_for_another_workflow_type_are_schema_errors() {
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "sequential", "rounds": 3, "steps": [step("a", "agent", "root")]
    }})));
    expect(&validation, "E_SCHEMA", "workflow.rounds");
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "handoff", "max_iterations": 1, "participants": [step("a", "agent", "root")]
    }})));
    assert_clean(&validation);
}

#[test]
fn fallback_rules() {
    let workflow = |steps: Value| {
        check_json(with_agent(json!({
            "workflow": {"type": "sequential", "steps": steps},
            "components": {"functions": functions(&["flaky_fetch", "cached_fetch"]), "humans": {"reviewer": {"description": "d"}}}
        })))
    };
    let failing = |fallback: Value| {
        let mut fetch = step("fetch", "function", "flaky_fetch");
        if let (Some(map), Value::Object(extra)) = (fetch.as_object_mut(), fallback) {
            map.extend(extra);
        }
        fetch
    };

    let validation = workflow(json!([
        failing(json!({"on_error": "fallback"})),
        step("cache", "function", "cached_fetch")
    ]));
    expect(
        &validation,
        "E_STEP_FALLBACK_REF",
        "workflow.steps[0].fallback_ref",
    );

    let validation = workflow(json!([
        failing(json!({"on_error": "fallback", "fallback_ref": "cahce"})),
        step("cache", "function", "cached_fetch")
    ]));
    let diagnostic = expect(
        &validation,
        "E_STEP_FALLBACK_UNKNOWN",
        "workflow.steps[0].fallback_ref",
    );
    assert_eq!(
        diagnostic.suggestion.as_deref(),
        Some("Did you mean 'cache'?")
    );

    let validation = workflow(json!([failing(
        json!({"on_error": "fallback", "fallback_ref": "fetch"})
    )]));
    expect(
        &validation,
        "E_STEP_FALLBACK_UNKNOWN",
        "workflow.steps[0].fallback_ref",
    );

    let validation = workflow(json!([
        failing(json!({"on_error": "fallback", "fallback_ref": "ask"})),
        step("ask", "human", "reviewer")
    ]));
    expect(
        &validation,
        "E_STEP_FALLBACK_HUMAN",
        "workflow.steps[0].fallback_ref",
    );

    let validation = workflow(json!([
        failing(json!({"fallback_ref": "cache"})),
        step("cache", "function", "cached_fetch")
    ]));
    expect(
        &validation,
        "W_STEP_FALLBACK_UNUSED",
        "workflow.steps[0].fallback_ref",
    );

    let validation = workflow(json!([failing(json!({"on_error": "retry"}))]));
    expect(
        &validation,
        "W_STEP_RETRY_WITHOUT_BUDGET",
        "workflow.steps[0].max_retries",
    );
}

#[test]
fn fallback_to_a_disabled_graph_node_is_rejected() {
    let validation = check_json(with_agent(json!({"workflow": {
        "type": "graph", "start": "a", "max_steps": 5,
        "nodes": {
            "a": {"id": "a", "kind": "agent", "ref": "root", "on_error": "fallback", "fallback_ref": "b"},
            "b": {"id": "b", "kind": "agent", "ref": "root", "disabled": true}
        },
        "edges": []
    }})));
    expect(
        &validation,
        "E_GRAPH_NODE_FALLBACK_DISABLED",
        "workflow.nodes.a.fallback_ref",
    );
}

#[test]
fn human_step_inside_a_nested_workflow_is_rejected() {
    let text = APPROVAL
        .replace(
            "    - {id: approve, kind: human,    ref: approval-reviewer}",
            "    - {id: approve, kind: workflow, ref: gate}",
        )
        .replace(
            "components:\n",
            "components:\n  workflows:\n    gate:\n      type: sequential\n      steps:\n        - {id: ask, kind: human, ref: approval-reviewer}\n",
        );
    let validation = check_yaml(&text);
    expect(
        &validation,
        "E_STEP_WORKFLOW_NESTED_HUMAN",
        "workflow.steps[1].ref",
    );
}

#[test]
fn step_timeouts_and_retries_must_be_in_range() {
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "sequential", "steps": [
            {"id": "a", "kind": "agent", "ref": "root", "timeout_seconds": 0},
            {"id": "b", "kind": "agent", "ref": "root", "timeout_seconds": -1.5},
            {"id": "c", "kind": "agent", "ref": "root", "max_retries": -1},
        ]}}),
    ));
    assert_eq!(
        found(&validation),
        [
            (
                "E_STEP_TIMEOUT_INVALID",
                "workflow.steps[0].timeout_seconds"
            ),
            (
                "E_STEP_TIMEOUT_INVALID",
                "workflow.steps[1].timeout_seconds"
            ),
            (
                "E_STEP_MAX_RETRIES_INVALID",
                "workflow.steps[2].max_retries"
            ),
        ]
    );
}

// ---- human taxonomy ------------------------------------------------------------------------

#[test]
fn human_taxonomy_rules() {
    let human = |fields: Value| {
        check_json(with_agent(
            json!({"components": {"humans": {"triage": fields}}}),
        ))
    };

    let validation = human(json!({"description": "d", "request_type": "selection",
                                  "options": ["refund", "replace"], "default_option": "other"}));
    expect(
        &validation,
        "E_HUMAN_DEFAULT_OPTION_NOT_IN_OPTIONS",
        "components.humans.triage.default_option",
    );

    let validation = human(json!({"description": "d", "request_type": "selection"}));
    expect(
        &validation,
        "E_HUMAN_SELECTION_REQUIRES_OPTIONS",
        "components.humans.triage.options",
    );

    let validation = human(json!({"description": "d", "options": ["a", "a"]}));
    expect(
        &validation,
        "E_HUMAN_OPTIONS_DUPLICATE",
        "components.humans.triage.options[1]",
    );

    let validation = human(json!({"description": "d", "timeout_seconds": 0}));
    expect(
        &validation,
        "E_HUMAN_TIMEOUT_INVALID",
        "components.humans.triage.timeout_seconds",
    );

    let validation = human(json!({"description": "d", "on_timeout": "retry"}));
    let diagnostic = expect(
        &validation,
        "E_SCHEMA",
        "components.humans.triage.on_timeout",
    );
    assert!(
        diagnostic
            .message
            .contains("'fail', 'continue', 'escalate'"),
        "{}",
        diagnostic.message
    );
}

// ---- agent settings ------------------------------------------------------------------------

#[test]
fn token_budget_must_be_positive() {
    for budget in [0, -5] {
        let validation = check_json(json!({"version": "v1", "agent": {"name": "a",
            "model": {"provider": "dummy", "name": "m", "token_budget": budget}}}));
        expect(&validation, "E_SCHEMA", "agent.model.token_budget");
        assert!(validation.spec.is_none());
    }
}

#[test]
fn memory_requires_a_policy() {
    let validation =
        check_json(with_agent(json!({})).tap_agent(json!({"memory": {"max_messages": 10}})));
    let diagnostic = expect(
        &validation,
        "E_MEMORY_POLICY_REQUIRED",
        "agent.memory.policy",
    );
    assert_eq!(
        diagnostic.message,
        "Agent 'root' declares memory without `policy`."
    );
    let validation = check_json(
        with_agent(json!({})).tap_agent(json!({"memory": {"window": 10, "policy": "full"}})),
    );
    expect(&validation, "E_SCHEMA", "agent.memory.window");
}

#[test]
fn guardrail_rules() {
    let validation = check_json(with_agent(json!({})).tap_agent(json!({"guardrails": {
        "input": [{"id": "no-secrets", "action": "block"}],
        "output": [{"id": "pii", "type": "regex", "action": "redact", "config": {"patterns": ["\\d{3}"]}}],
        "workflow": [{"id": "leak", "type": "keyword", "action": "block"}],
    }})));
    let diagnostic = expect(
        &validation,
        "E_GUARDRAIL_FIELDS",
        "agent.guardrails.input[0].type",
    );
    assert_eq!(
        diagnostic.message,
        "Agent 'root' guardrail input[0] is missing `type`."
    );
    expect(
        &validation,
        "E_GUARDRAIL_ACTION_UNSUPPORTED",
        "agent.guardrails.output[0].action",
    );
    // Recording 238: a check with nothing to match is valid, and says it never matches.
    let validation = check_json(with_agent(json!({})).tap_agent(json!({"guardrails": {
        "workflow": [{"id": "leak", "type": "keyword", "action": "block"}],
    }})));
    expect(
        &validation,
        "W_GUARDRAIL_NEVER_MATCHES",
        "agent.guardrails.workflow[0].config",
    );
    assert!(validation.valid());
}

// ---- governance ----------------------------------------------------------------------------

#[test]
fn short_form_tools_without_policy_warn() {
    let validation = check_json(
        with_agent(json!({
            "workflow": {"type": "sequential", "steps": [step("ok", "human", "reviewer")]},
            "components": {"humans": {"reviewer": {"description": "d"}}}
        }))
        .tap_agent(json!({"tools": ["web_search"]})),
    );
    // kneo-serv expands the short form first, so the warning is the long form's.
    assert_eq!(
        found(&validation),
        [("W_TOOL_POLICY_UNRESTRICTED", "agent.tools.permissions")]
    );
    assert!(validation.valid());
    assert!(
        validation.spec.is_some(),
        "warnings do not withhold the spec"
    );
}

#[test]
fn policies_block_counts_as_restriction() {
    let validation = check_json(
        with_agent(json!({
            "workflow": {"type": "sequential", "steps": [step("ok", "human", "reviewer")]},
            "components": {"humans": {"reviewer": {"description": "d"}}}
        }))
        .tap_agent(
            json!({"tools": ["web_search"], "policies": {"tool": {"allow": ["web_search"]}}}),
        ),
    );
    assert_clean(&validation);
}

#[test]
fn human_step_satisfies_the_approval_warning() {
    let exposed = with_agent(json!({})).tap_agent(json!({"tools": {"include": ["web_search"]}}));
    assert_eq!(
        found(&check_json(exposed.clone())),
        [
            ("W_TOOL_POLICY_UNRESTRICTED", "agent.tools.permissions"),
            ("W_HUMAN_APPROVAL_MISSING", "workflow")
        ]
    );
    // A human step in any workflow, even a component one, is the approval kneo-serv asks for.
    let mut approved = exposed;
    approved["components"] = json!({
        "workflows": {"gate": {"type": "sequential", "steps": [step("ok", "human", "reviewer")]}},
        "humans": {"reviewer": {"description": "d"}}
    });
    assert_eq!(
        found(&check_json(approved)),
        [("W_TOOL_POLICY_UNRESTRICTED", "agent.tools.permissions")]
    );
    // Declared permissions with nothing privileged raise nothing.
    let declared = with_agent(json!({}))
        .tap_agent(json!({"tools": {"include": ["web_search"], "permissions": {"allow_network": true, "allowed_domains": ["example.com"]}}}));
    assert_clean(&check_json(declared));
}

#[test]
fn capability_and_transport_warnings() {
    let validation = check_json(with_agent(json!({
        "tools": {"fetch": {"implementation": "examples.app_functions.web_search", "network": true, "shell": true, "filesystem_write": true}},
        "mcp_servers": {"remote": {"transport": "http", "url": "https://mcp.example.invalid/api", "verify": false,
                                   "client_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}}
    })));
    assert_eq!(
        found(&validation),
        [
            ("W_TOOL_NETWORK_UNRESTRICTED", "tools.fetch.allowed_domains"),
            ("W_TOOL_SHELL_ALLOWED", "tools.fetch.shell"),
            (
                "W_TOOL_FILESYSTEM_WRITE_ALLOWED",
                "tools.fetch.filesystem_write"
            ),
            ("W_MCP_TLS_VERIFY_DISABLED", "mcp_servers.remote.verify"),
            ("W_MCP_INLINE_CLIENT_KEY", "mcp_servers.remote.client_key"),
            ("W_HUMAN_APPROVAL_MISSING", "workflow"),
        ]
    );
}

#[test]
fn schema_errors_stop_before_semantic_checks() {
    // The dangling step ref is not reported while the document has a structural error.
    let validation = check_json(with_agent(json!({
        "workflow": {"type": "sequential", "steps": [step("s", "function", "missing")], "stesp": []}
    })));
    assert_eq!(found(&validation), [("E_SCHEMA", "workflow.stesp")]);
}

/// Merges fields into the root agent of a test spec.
trait TapAgent {
    fn tap_agent(self, fields: Value) -> Value;
}

impl TapAgent for Value {
    fn tap_agent(mut self, fields: Value) -> Value {
        if let (Some(agent), Value::Object(fields)) =
            (self.get_mut("agent").and_then(Value::as_object_mut), fields)
        {
            agent.extend(fields);
        }
        self
    }
}

// ---- robustness ----------------------------------------------------------------------------

/// Every value of `value` replaced, one at a time, by each of `replacements`.
fn mutations(value: &Value, replacements: &[Value]) -> Vec<Value> {
    let mut results = Vec::new();
    for replacement in replacements {
        results.push(replacement.clone());
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                for mutated in mutations(child, replacements) {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), mutated);
                    results.push(Value::Object(copy));
                }
            }
        }
        Value::Array(items) => {
            for (position, child) in items.iter().enumerate() {
                for mutated in mutations(child, replacements) {
                    let mut copy = items.clone();
                    copy[position] = mutated;
                    results.push(Value::Array(copy));
                }
            }
        }
        _ => {}
    }
    results
}

#[test]
fn mutated_examples_give_diagnostics_never_panics() {
    let replacements = [
        json!(null),
        json!(-1),
        json!(0),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!([1]),
    ];
    for text in [APPROVAL, GRAPH, RESILIENT] {
        let value = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap();
        for mutated in mutations(&value, &replacements) {
            let validation = validate(&mutated, &catalog());
            // The invariant callers rely on: a spec is handed out exactly when nothing is an error.
            assert_eq!(validation.spec.is_some(), validation.valid(), "{mutated}");
            if let Some(spec) = validation.spec {
                let stored = serde_json::to_value(&spec).unwrap();
                assert_eq!(serde_json::from_value::<Spec>(stored).unwrap(), spec);
            }
        }
    }
}

// ---- kneo-serv's rules beyond the recorded specs -------------------------------------------

#[test]
fn guardrail_refs_types_and_patterns() {
    let validation = check_json(
        with_agent(json!({"components": {
            "functions": {"guard": {"implementation": "examples.app_functions.build_report"}},
            "agents": {"judge": {"name": "judge", "guardrails": {"workflow": [{"id": "w", "type": "keyword", "config": {"keywords": ["x"]}}]}}}
        }}))
        .tap_agent(json!({"guardrails": {
            "input": [
                {"id": "f", "type": "function"},
                {"id": "g", "type": "function", "ref": "missing"},
                {"id": "h", "type": "agent", "ref": "guard"},
                {"id": "i", "type": "regex", "ref": "guard", "config": {"patterns": ["(unclosed"], "keywords": ["k"]}},
                {"id": "k", "type": "keyword", "mode": "middleware", "target": "input"},
            ],
        }})),
    );
    expect(
        &validation,
        "E_GUARDRAIL_REF_REQUIRED",
        "agent.guardrails.input[0].ref",
    );
    let unknown: Vec<&str> = found(&validation)
        .into_iter()
        .filter(|(code, _)| *code == "E_GUARDRAIL_REF_UNKNOWN")
        .map(|(_, path)| path)
        .collect();
    assert_eq!(
        unknown,
        [
            "agent.guardrails.input[1].ref",
            "agent.guardrails.input[2].ref"
        ]
    );
    expect(
        &validation,
        "E_GUARDRAIL_PATTERN_INVALID",
        "agent.guardrails.input[3].config.patterns[0]",
    );
    let ignored: Vec<&str> = found(&validation)
        .into_iter()
        .filter(|(code, _)| *code == "W_GUARDRAIL_FIELD_IGNORED")
        .map(|(_, path)| path)
        .collect();
    assert_eq!(
        ignored,
        [
            "agent.guardrails.input[3].ref",
            "agent.guardrails.input[3].config.keywords"
        ]
    );
    expect(
        &validation,
        "W_GUARDRAIL_NEVER_MATCHES",
        "agent.guardrails.input[4].config",
    );
    expect(
        &validation,
        "W_GUARDRAIL_STAGE_IGNORED",
        "components.agents.judge.guardrails.workflow",
    );
    // `target` has no effect; `mode: middleware` is the default and says nothing.
    assert!(
        validation
            .diagnostics
            .iter()
            .any(|d| d.code == "W_SPEC_KEY_NO_EFFECT"
                && d.path == "agent.guardrails.input[4].target")
    );
    assert!(
        !validation
            .diagnostics
            .iter()
            .any(|d| d.path.ends_with(".mode"))
    );

    // An item that cannot be read is reported alone: later items are not named by a shifted
    // position.
    let validation = check_json(
        with_agent(json!({})).tap_agent(json!({"guardrails": {"input": [
            {"id": "j", "type": "shell"},
            {"id": "k", "type": "keyword"},
        ]}})),
    );
    assert_eq!(
        found(&validation),
        [(
            "E_GUARDRAIL_TYPE_UNSUPPORTED",
            "agent.guardrails.input[0].type"
        )]
    );
}

#[test]
fn guardrail_actions_follow_each_stage() {
    for (stage, action, honoured) in [
        ("input", "redact", false),
        ("input", "revise", false),
        ("input", "escalate", true),
        ("output", "redact", false),
        ("output", "revise", true),
        ("tool", "redact", true),
        ("workflow", "revise", true),
        ("tool", "explode", false),
    ] {
        let validation = check_json(with_agent(json!({})).tap_agent(json!({"guardrails": {
            stage: [{"id": "g", "type": "regex", "action": action, "config": {"patterns": ["x"]}}]
        }})));
        let refused = found(&validation).contains(&(
            "E_GUARDRAIL_ACTION_UNSUPPORTED",
            &format!("agent.guardrails.{stage}[0].action")[..],
        ));
        assert_eq!(
            refused, !honoured,
            "{stage} {action}: {:#?}",
            validation.diagnostics
        );
    }
    let validation = check_json(with_agent(json!({})).tap_agent(
        json!({"guardrails": {"input": [{"id": "g", "type": "regex", "mode": "runtime", "config": {"patterns": ["x"]}}]}}),
    ));
    expect(
        &validation,
        "E_GUARDRAIL_MODE_UNSUPPORTED",
        "agent.guardrails.input[0].mode",
    );
}

#[test]
fn memory_refs_and_fields() {
    let memory = |block: Value| {
        check_json(
            with_agent(json!({"components": {"functions": {"sum": {"implementation": "examples.app_functions.build_report"}}}}))
                .tap_agent(json!({"memory": block})),
        )
    };
    expect(
        &memory(json!({"policy": "summary"})),
        "E_MEMORY_REF_REQUIRED",
        "agent.memory.summarizer",
    );
    expect(
        &memory(json!({"policy": "retrieval", "retriever": {"ref": "nope"}})),
        "E_MEMORY_REF_UNKNOWN",
        "agent.memory.retriever.ref",
    );
    expect(
        &memory(json!({"policy": "sliding_window", "top_k": 3})),
        "W_MEMORY_FIELD_IGNORED",
        "agent.memory.top_k",
    );
    assert_clean(&memory(
        json!({"policy": "summary", "summarizer": {"ref": "sum"}}),
    ));
    let unknown = memory(json!({"policy": "vector_db"}));
    let diagnostic = expect(&unknown, "E_MEMORY_POLICY_UNKNOWN", "agent.memory.policy");
    assert_eq!(diagnostic.message, "Unknown memory policy: vector_db");
    // `memory: {}` declares nothing.
    assert_clean(&memory(json!({})));
}

#[test]
fn condition_rules_and_graph_fallbacks() {
    let graph = |edges: Value, nodes: Value| {
        check_json(with_agent(
            json!({"workflow": {"type": "graph", "start": "a", "nodes": nodes, "edges": edges}}),
        ))
    };
    let two = json!({"a": step("a", "agent", "root"), "b": step("b", "agent", "root")});
    let validation = graph(
        json!([
            {"from": "a", "to": "b", "condition": {"type": "not"}},
            {"from": "a", "to": "b", "condition": {"type": "always", "value": "x", "case_sensitive": true}},
            {"from": "a", "to": "b", "condition": {"type": "any_of", "conditions": [{"type": "variable_equals", "key": "k"}]}},
        ]),
        two.clone(),
    );
    expect(
        &validation,
        "E_CONDITION_CHILD",
        "workflow.edges[0].condition.condition",
    );
    let ignored: Vec<&str> = found(&validation)
        .into_iter()
        .filter(|(code, _)| *code == "W_CONDITION_FIELD_IGNORED")
        .map(|(_, path)| path)
        .collect();
    assert_eq!(
        ignored,
        [
            "workflow.edges[1].condition.value",
            "workflow.edges[1].condition.case_sensitive"
        ]
    );
    expect(
        &validation,
        "E_CONDITION_VALUE",
        "workflow.edges[2].condition.conditions[0].value",
    );
    expect(
        &validation,
        "W_CONDITION_VARIABLES_UNSET",
        "workflow.edges[2].condition.conditions[0]",
    );

    let validation = graph(
        json!([{"from": "a", "to": "b"}]),
        json!({
            "a": {"id": "a", "kind": "agent", "ref": "root", "on_error": "fallback"},
            "b": {"id": "b", "kind": "agent", "ref": "root", "fallback_ref": "h", "on_error": "fallback"},
            "c": {"id": "c", "kind": "agent", "ref": "root", "fallback_ref": "zz", "on_error": "fallback"},
            "h": {"id": "h", "kind": "human", "ref": "reviewer"},
        }),
    );
    expect(
        &validation,
        "E_GRAPH_NODE_FALLBACK_REF",
        "workflow.nodes.a.fallback_ref",
    );
    expect(
        &validation,
        "E_GRAPH_FALLBACK_HUMAN",
        "workflow.nodes.b.fallback_ref",
    );
    expect(
        &validation,
        "E_GRAPH_NODE_FALLBACK_UNKNOWN",
        "workflow.nodes.c.fallback_ref",
    );
    expect(&validation, "E_STEP_HUMAN_REF", "workflow.nodes.h.ref");
}

#[test]
fn sequential_fallback_to_a_disabled_step_only_warns() {
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "sequential", "steps": [
            {"id": "a", "kind": "agent", "ref": "root", "on_error": "fallback", "fallback_ref": "b"},
            {"id": "b", "kind": "agent", "ref": "root", "enabled": false},
        ]}}),
    ));
    expect(
        &validation,
        "W_STEP_FALLBACK_DISABLED",
        "workflow.steps[0].fallback_ref",
    );
    assert!(validation.valid());
    let validation = check_json(with_agent(
        json!({"workflow": {"type": "sequential", "steps": [
            {"id": "a", "kind": "agent", "ref": "root", "enabled": true, "disabled": true},
        ]}}),
    ));
    expect(&validation, "E_SCHEMA", "workflow.steps[0].disabled");
}

#[test]
fn tools_mcp_and_humans_beyond_the_recordings() {
    let validation = check_json(with_agent(json!({
        "tools": {
            "ask": {"description": "Ask.", "agent": "root", "parameters": {"type": "object"}},
            "remote": {"description": "R.", "mcp": {"name": "x"}},
        },
        "mcp_servers": {"local": {"transport": "stdio", "command": "srv", "url": "http://x", "verify": false}},
        "components": {"humans": {"h": {"response_role": "system"}}},
    })));
    expect(
        &validation,
        "W_AGENT_TOOL_PARAMETERS_IGNORED",
        "tools.ask.parameters",
    );
    expect(&validation, "E_MCP_TOOL_NO_SERVER", "tools.remote.mcp");
    let ignored: Vec<&str> = found(&validation)
        .into_iter()
        .filter(|(code, _)| *code == "W_MCP_FIELD_IGNORED")
        .map(|(_, path)| path)
        .collect();
    assert_eq!(
        ignored,
        ["mcp_servers.local.url", "mcp_servers.local.verify"]
    );
    assert!(
        !found(&validation)
            .iter()
            .any(|(code, _)| *code == "W_MCP_TLS_VERIFY_DISABLED")
    );
    expect(
        &validation,
        "W_HUMAN_RESPONSE_ROLE_SYSTEM",
        "components.humans.h.response_role",
    );

    // kneo's permission spelling and kneo-serv's may not contradict each other.
    let validation = check_json(with_agent(json!({})).tap_agent(
        json!({"tools": {"include": [], "permissions": {"network": true, "allow_network": false}}}),
    ));
    expect(&validation, "E_SCHEMA", "agent.tools.permissions.network");
    let validation = check_json(with_agent(json!({})).tap_agent(
        json!({"tools": {"include": [], "exclude": ["web_search"], "permissions": {"network": true, "allowed_domains": ["example.com"]}}}),
    ));
    let spec = validation.spec.clone().unwrap();
    assert_eq!(
        spec.agent.tools.unwrap().permissions.unwrap().allow_network,
        Some(true)
    );
    assert!(
        validation
            .diagnostics
            .iter()
            .any(|d| d.code == "I_SPEC_KNEO_EXTENSION"
                && d.path == "agent.tools.permissions.network")
    );
    assert!(
        validation
            .diagnostics
            .iter()
            .any(|d| d.code == "W_SPEC_KEY_NO_EFFECT" && d.path == "agent.tools.exclude")
    );
}

#[test]
fn skill_sources_with_traversal_are_schema_errors() {
    for source in ["../outside", "specs/../../etc", "~/skills", "a\\..\\b"] {
        let validation = check_json(with_agent(json!({"skills": {"bad": {"source": source}}})));
        let diagnostic = expect(&validation, "E_SCHEMA", "skills.bad.source");
        assert!(
            diagnostic.message.starts_with("skill source must not"),
            "{}",
            diagnostic.message
        );
    }
    assert_clean(&check_json(with_agent(
        json!({"skills": {"ok": {"source": "/etc"}}}),
    )));
}

#[test]
fn shorthands_read_as_their_long_forms() {
    let validation = check_json(json!({
        "agent": {"name": "root", "model": "gpt-4o", "strategy": "plan-act"},
        "workflow": {"type": "sequential", "steps": ["writer"]},
        "components": {"agents": {"writer": {"name": "writer", "tools": ["web_search"]}}},
    }));
    assert!(validation.valid(), "{:#?}", validation.diagnostics);
    let spec = validation.spec.unwrap();
    assert_eq!(spec.agent.model.as_ref().unwrap().provider, "default");
    assert_eq!(
        spec.agent.strategy_type(),
        crate::spec::model::StrategyType::PlanAct
    );
    assert_eq!(spec.workflow.unwrap().steps[0].reference, "writer");
    assert_eq!(
        spec.components.agents["writer"].tool_names(),
        ["web_search"]
    );
}
