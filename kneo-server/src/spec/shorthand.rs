//! The short forms kneo-serv 1.2 accepts, expanded before the strict reader sees the document
//! (its normaliser's rules, on the same blocks):
//!
//! - on the root agent and every `components.agents` entry: `model: gpt-4o` becomes
//!   `{name: gpt-4o, provider: default}`, `strategy: react` becomes `{type: react}`, and
//!   `tools: [a, b]` becomes `{include: [a, b]}`;
//! - on the root workflow, when it is sequential: a step written as a string `s` becomes
//!   `{id: s, kind: agent, ref: s}`, and missing `steps` become an empty list.
//!
//! Component workflows keep their steps as written, as kneo-serv does.

use serde_json::{Map, Value, json};

/// The provider a string `model` gets.
pub const SHORTHAND_PROVIDER: &str = "default";

/// Expands the short forms of `document` in place.
pub fn expand(document: &mut Value) {
    let Value::Object(map) = document else {
        return;
    };
    if let Some(agent) = map.get_mut("agent") {
        expand_agent(agent);
    }
    if let Some(Value::Object(components)) = map.get_mut("components")
        && let Some(Value::Object(agents)) = components.get_mut("agents")
    {
        for agent in agents.values_mut() {
            expand_agent(agent);
        }
    }
    if let Some(Value::Object(workflow)) = map.get_mut("workflow") {
        expand_root_workflow(workflow);
    }
}

fn expand_agent(agent: &mut Value) {
    let Value::Object(agent) = agent else {
        return;
    };
    if let Some(Value::String(strategy)) = agent.get("strategy") {
        let strategy = json!({"type": strategy});
        agent.insert("strategy".into(), strategy);
    }
    if let Some(Value::Array(tools)) = agent.get("tools") {
        let tools = json!({"include": tools});
        agent.insert("tools".into(), tools);
    }
    if let Some(Value::String(model)) = agent.get("model") {
        let model = json!({"name": model, "provider": SHORTHAND_PROVIDER});
        agent.insert("model".into(), model);
    }
}

fn expand_root_workflow(workflow: &mut Map<String, Value>) {
    if workflow.get("type").and_then(Value::as_str) != Some("sequential") {
        return;
    }
    let steps = match workflow.get("steps") {
        Some(Value::Array(steps)) => steps
            .iter()
            .map(|step| match step {
                Value::String(name) => json!({"id": name, "kind": "agent", "ref": name}),
                other => other.clone(),
            })
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        // Not a list: the reader reports it.
        Some(_) => return,
    };
    workflow.insert("steps".into(), Value::Array(steps));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_short_forms_expand_on_root_and_component_agents() {
        let mut document = json!({
            "agent": {"name": "a", "model": "gpt-4o", "strategy": "react", "tools": ["web_search"]},
            "components": {"agents": {"b": {"name": "b", "strategy": "simple"}}},
        });
        expand(&mut document);
        assert_eq!(
            document["agent"],
            json!({"name": "a", "model": {"name": "gpt-4o", "provider": "default"}, "strategy": {"type": "react"}, "tools": {"include": ["web_search"]}})
        );
        assert_eq!(
            document["components"]["agents"]["b"]["strategy"],
            json!({"type": "simple"})
        );
    }

    #[test]
    fn string_steps_expand_in_the_root_sequential_workflow_only() {
        let mut document = json!({
            "workflow": {"type": "sequential", "steps": ["alpha", {"id": "beta", "kind": "agent", "ref": "b"}]},
            "components": {"workflows": {"inner": {"type": "sequential", "steps": ["x"]}}},
        });
        expand(&mut document);
        assert_eq!(
            document["workflow"]["steps"],
            json!([{"id": "alpha", "kind": "agent", "ref": "alpha"}, {"id": "beta", "kind": "agent", "ref": "b"}])
        );
        assert_eq!(
            document["components"]["workflows"]["inner"]["steps"],
            json!(["x"])
        );
        let mut missing = json!({"workflow": {"type": "sequential"}});
        expand(&mut missing);
        assert_eq!(missing["workflow"]["steps"], json!([]));
    }
}
