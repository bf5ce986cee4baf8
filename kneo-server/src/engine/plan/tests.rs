//! Compiling specs: what each new spec shape becomes in the plan.

use super::*;
use crate::engine::Engine;
use crate::spec::validate::validate;
use serde_json::{Value, json};

fn spec(document: Value) -> Spec {
    let validation = validate(&document, &Engine::with_builtins());
    validation
        .spec
        .unwrap_or_else(|| panic!("invalid: {:#?}", validation.diagnostics))
}

fn compiled(document: Value) -> Plan {
    match compile(&spec(document), "workflow", &Engine::with_builtins()) {
        Ok(plan) => plan,
        Err(error) => panic!("does not compile: {error:?}"),
    }
}

fn agent(extra: Value) -> Value {
    let mut agent = json!({"name": "a", "model": {"provider": "dummy", "name": "m"}});
    if let (Some(agent), Value::Object(extra)) = (agent.as_object_mut(), extra) {
        agent.extend(extra);
    }
    agent
}

#[test]
fn runtimes_follow_preferences_and_kneo_s_providers() {
    let choose = |agent_fields: Value| {
        runtime_for(
            &spec(json!({"version": "v1", "agent": agent(agent_fields)})).agent,
            "agent",
        )
    };
    let bridge = choose(json!({})).unwrap();
    assert_eq!(
        (bridge.mode, bridge.implementation),
        (RuntimeMode::Bridge, "dummy")
    );
    assert_eq!(bridge.runtime_name, "simple@dummy");
    // Recordings 316/328: a provider without a client runs on the dummy under the bridge.
    let anthropic =
        choose(json!({"model": {"provider": "anthropic", "name": "c"}, "strategy": "react"}))
            .unwrap();
    assert_eq!(
        (anthropic.implementation, anthropic.runtime_name.as_str()),
        ("dummy", "react@dummy")
    );
    // openai is called over HTTP in every mode.
    let openai = choose(json!({"model": {"provider": "openai", "name": "g"}})).unwrap();
    assert_eq!(
        (openai.mode, openai.implementation),
        (RuntimeMode::Native, "openai")
    );
    // Native needs an HTTP provider; a bridge fallback rescues (recording 331's spec).
    let native = choose(json!({"runtime_preferences": {"preferred_mode": "native"}})).unwrap_err();
    assert_eq!(native.code, "E_RUNTIME_UNAVAILABLE");
    assert!(
        native
            .message
            .contains("Unsupported native provider: dummy"),
        "{}",
        native.message
    );
    let rescued = choose(
        json!({"runtime_preferences": {"preferred_mode": "native", "fallback_mode": "bridge"}}),
    )
    .unwrap();
    assert!(rescued.fell_back);
    assert_eq!(rescued.implementation, "dummy");
    let adapter =
        choose(json!({"runtime_preferences": {"preferred_mode": "adapter"}})).unwrap_err();
    assert_eq!(adapter.path, "agent.runtime_preferences.preferred_mode");
    let native_openai = choose(
        json!({"runtime_preferences": {"preferred_mode": "native", "native_provider": "openai"}}),
    )
    .unwrap();
    assert_eq!(native_openai.implementation, "openai");
}

#[test]
fn runtime_notes_say_where_kneo_differs() {
    let notes = runtime_notes(&spec(
        json!({"version": "v1", "agent": agent(json!({"model": "gpt-4o"}))}),
    ));
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].code, "W_PROVIDER_RUNS_ON_DUMMY");
    let notes = runtime_notes(&spec(
        json!({"version": "v1", "agent": agent(json!({"model": {"provider": "openai", "name": "g"}}))}),
    ));
    assert_eq!(notes[0].code, "I_RUNTIME_PROVIDER_CALLED");
    assert!(runtime_notes(&spec(json!({"version": "v1", "agent": agent(json!({}))}))).is_empty());
}

#[test]
fn disabled_steps_and_nodes_are_dropped_with_their_edges() {
    let plan = compiled(json!({
        "version": "v1", "agent": agent(json!({})),
        "workflow": {"type": "sequential", "steps": [
            {"id": "a", "kind": "agent", "ref": "echo"},
            {"id": "b", "kind": "agent", "ref": "echo", "enabled": false},
            {"id": "c", "kind": "agent", "ref": "echo", "on_error": "fallback", "fallback_ref": "b"},
        ]},
        "components": {"agents": {"echo": agent(json!({"name": "echo"}))}},
    }));
    let workflow = plan.workflow.unwrap();
    let ids: Vec<&str> = workflow.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    // The fallback named a dropped step: the step fails as with on_error: fail.
    assert_eq!(workflow.steps[1].fallback, None);

    let plan = compiled(json!({
        "version": "v1", "agent": agent(json!({})),
        "workflow": {"type": "graph", "start": "classify", "nodes": {
            "classify": {"id": "classify", "kind": "function", "ref": "identity"},
            "matched": {"id": "matched", "kind": "function", "ref": "identity", "enabled": false},
            "renamed": {"id": "fallback-id", "kind": "function", "ref": "identity"},
        }, "edges": [
            {"from": "classify", "to": "matched", "condition": {"type": "always"}, "label": "condition"},
            {"from": "classify", "to": "renamed", "label": "otherwise"},
        ]},
        "components": {"functions": {"identity": {"implementation": "specs.ext.ext_functions.identity"}}},
    }));
    let workflow = plan.workflow.unwrap();
    let graph = workflow.graph.as_ref().unwrap();
    let ids: Vec<&str> = workflow.steps.iter().map(|step| step.id.as_str()).collect();
    // Nodes are known by their keys (recording 300).
    assert_eq!(ids, ["classify", "renamed"]);
    assert_eq!(graph.edges.len(), 1);
    assert_eq!(graph.label(0), Some("otherwise"));
    assert_eq!(graph.max_steps, Some(50));
    let route = graph.route(0, "anything", crate::engine::graph::NodeStatus::Completed);
    assert_eq!(route.map(|route| route.to), Some(1));
    assert_eq!(
        graph.node_metadata[0].get("node_kind"),
        Some(&json!("function"))
    );
}

#[test]
fn guardrails_memory_and_tool_policy_compile() {
    let plan = compiled(json!({
        "version": "v1",
        "agent": agent(json!({
            "tools": {"include": ["web_search"], "exclude": ["other"], "permissions": {"allowed_domains": ["example.com"]}},
            "policies": {"tool": {"deny": ["shout"]}},
            "guardrails": {
                "input": [{"id": "r", "type": "regex", "config": {"patterns": ["forb[a-z]+en"]}}],
                "output": [{"id": "f", "type": "function", "ref": "guard", "action": "revise"}],
                "tool": [{"id": "j", "type": "agent", "ref": "judge", "action": "redact"}],
                "workflow": [{"id": "k", "type": "keyword", "config": {"keywords": ["secret"]}}],
            },
            "memory": {"policy": "retrieval", "retriever": {"ref": "notes"}, "top_k": 2},
            "model": {"provider": "dummy", "name": "m", "token_budget": 100},
            "defaults": {"append_mode": "never"},
        })),
        "tools": {"web_search": {"description": "Search.", "implementation": "specs.ext.ext_functions.web_search"}},
        "components": {
            "agents": {"judge": agent(json!({"name": "judge"}))},
            "functions": {
                "guard": {"implementation": "specs.ext.ext_functions.guard_no_forbidden"},
                "notes": {"implementation": "specs.ext.ext_functions.retrieve_notes"},
            },
        },
    }));
    let agent = &plan.agent;
    assert_eq!(agent.max_iterations, DEFAULT_MAX_ITERATIONS);
    assert_eq!(agent.token_budget, Some(100));
    assert_eq!(agent.append_mode, AppendMode::Never);
    let policy = agent.tool_policy.as_ref().unwrap();
    assert_eq!(policy.deny, ["shout", "other"]);
    assert_eq!(policy.allowed_domains, ["example.com"]);
    assert!(
        matches!(&agent.guardrails.input[0].check, GuardrailCheck::Regex(patterns) if patterns[0].is_match("forbidden"))
    );
    assert_eq!(agent.guardrails.output[0].action, GuardrailAction::Revise);
    assert!(
        matches!(&agent.guardrails.output[0].check, GuardrailCheck::Function(ComponentCall::Function { reference, .. }) if reference == "guard")
    );
    assert!(
        matches!(&agent.guardrails.tool[0].check, GuardrailCheck::Agent(judge) if judge.name == "judge")
    );
    assert_eq!(plan.workflow_guardrails.len(), 1);
    let memory = agent.memory.as_ref().unwrap();
    assert_eq!(
        (memory.policy, memory.top_k, memory.max_messages),
        (MemoryPolicy::Retrieval, 2, 20)
    );
    assert!(
        matches!(&memory.retriever, Some(ComponentCall::Function { implementation, .. }) if implementation.ends_with("retrieve_notes"))
    );
}

#[test]
fn orchestrations_compile_their_selectors_and_wait_for_their_runners() {
    let document = |workflow: Value| {
        json!({
            "version": "v1", "agent": agent(json!({})),
            "workflow": workflow,
            "components": {"agents": {"alice": agent(json!({"name": "alice"})), "bob": agent(json!({"name": "bob"}))}},
        })
    };
    let participants = json!([
        {"id": "alice", "kind": "agent", "ref": "alice"},
        {"id": "bob", "kind": "agent", "ref": "bob"},
    ]);
    let handoff = spec(document(
        json!({"type": "handoff", "participants": participants,
        "selector": {"type": "sequence", "sequence": ["bob", "alice", "bob"]}, "max_iterations": 2}),
    ));
    let workflow = handoff.workflow.as_ref().unwrap();
    let ids = ["alice", "bob"];
    let plan = orchestration(workflow, &ids);
    assert_eq!(plan.selector, Selector::Sequence(vec![1, 0, 1]));
    assert_eq!(plan.max_turns, Some(2));
    let group = spec(document(
        json!({"type": "group_chat", "participants": participants, "rounds": 2}),
    ));
    let plan = orchestration(group.workflow.as_ref().unwrap(), &ids);
    assert_eq!(
        (plan.selector, plan.rounds),
        (Selector::Sequence(vec![0, 1]), 2)
    );
    let robin = spec(document(
        json!({"type": "handoff", "participants": participants, "selector": {"type": "round_robin"}}),
    ));
    assert_eq!(
        orchestration(robin.workflow.as_ref().unwrap(), &ids).selector,
        Selector::RoundRobin
    );
    if !executed_by_this_build(WorkflowType::Handoff) {
        let error = compile(&handoff, "workflow", &Engine::with_builtins())
            .err()
            .unwrap();
        assert_eq!(error.code, "E_WORKFLOW_TYPE_UNSUPPORTED");
    }
}
