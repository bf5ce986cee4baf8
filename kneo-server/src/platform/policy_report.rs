//! The policy report of a spec (`POST /v1/specs/policy-report`, `GET /v1/runs/{id}/policy-report`)
//! and what environment policies judge: memory, tool, guardrail and human-review posture per
//! agent, with the validator's diagnostics.
//!
//! The report reads the layered document (not the typed spec), so a spec with semantic errors
//! still gets a full report (kneo-serv's `valid` counts only schema validity); agents are named by
//! their place in the spec (`agent`, `components.agents.<key>`).

use serde_json::{Map, Value, json};

use crate::spec::diagnostic::Diagnostic;

/// Diagnostic codes that call for a human review before deployment. Both the kneo-serv spelling
/// and the older kneo one are listed, so the report does not depend on which the validator uses.
const REVIEW_CODES: [&str; 9] = [
    "E_UNSAFE_TOOL_IMPORT",
    "E_UNSAFE_FUNCTION_IMPORT",
    "W_TOOL_NETWORK_UNRESTRICTED",
    "W_TOOL_SHELL_ALLOWED",
    "W_TOOL_SHELL",
    "W_TOOL_FILESYSTEM_WRITE_ALLOWED",
    "W_TOOL_FILESYSTEM_WRITE",
    "W_TOOL_FILESYSTEM_READ_ALLOWED",
    "W_TOOL_POLICY_UNRESTRICTED",
];

/// Codes of diagnostics that mean the document is not a spec at all (kneo-serv's schema stage).
const SCHEMA_CODES: [&str; 3] = ["E_SCHEMA", "E_SPEC_PARSE", "E_SPEC_VERSION"];

/// Whether the diagnostics say the document failed the schema stage.
pub fn schema_invalid(diagnostics: &[Diagnostic]) -> bool {
    diagnostics
        .iter()
        .any(|d| d.is_error() && SCHEMA_CODES.contains(&d.code.as_ref()))
}

/// The report body: `{valid: false, diagnostics}` for a schema-invalid document, otherwise
/// `{valid: true, version, summary, memory, tools, guardrails, human_review, diagnostics}`.
pub fn report(document: &Value, diagnostics: &[Diagnostic]) -> Value {
    let diagnostics_json = serde_json::to_value(diagnostics).unwrap_or_else(|_| json!([]));
    if schema_invalid(diagnostics) {
        return json!({"valid": false, "diagnostics": diagnostics_json});
    }
    let empty = Map::new();
    let root = document.as_object().unwrap_or(&empty);
    let agents = agents(root);
    let tools = root
        .get("tools")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let components = root
        .get("components")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let humans = components
        .get("humans")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let component_workflows = components
        .get("workflows")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let human_steps = human_workflow_steps(root, component_workflows);
    let requirements = review_requirements(diagnostics, !humans.is_empty());
    let mut declared: Vec<&String> = tools.keys().collect();
    declared.sort();
    let mcp_imports: Vec<Value> = declared
        .iter()
        .filter_map(|name| {
            let mcp = tools.get(*name)?.get("mcp")?;
            truthy(mcp).then(|| json!({"name": name, "config": mcp}))
        })
        .collect();
    let mut reviewers: Vec<&String> = humans.keys().collect();
    reviewers.sort();
    json!({
        "valid": true,
        "version": root.get("version").and_then(Value::as_str).unwrap_or("v1"),
        "summary": {
            "agent_count": agents.len(),
            "workflow_count": usize::from(root.get("workflow").is_some_and(|w| !w.is_null())) + component_workflows.len(),
            "tool_count": tools.len(),
            "mcp_tool_count": mcp_imports.len(),
            "human_reviewer_count": humans.len(),
            "human_review_step_count": human_steps.len(),
            "diagnostic_count": diagnostics.len(),
        },
        "memory": {"agents": agents.iter().map(|(path, agent)| {
            let memory = agent.get("memory").filter(|m| m.is_object());
            json!({
                "agent": path,
                "configured": memory.is_some(),
                "policy": memory.and_then(|m| m.get("policy")).cloned().unwrap_or(Value::Null),
                "config": memory.cloned().unwrap_or_else(|| json!({})),
            })
        }).collect::<Vec<_>>()},
        "tools": {
            "declared": declared,
            "mcp_imports": mcp_imports,
            "agent_policies": agents.iter().map(|(path, agent)| {
                let mut policy = tool_policy(agent.get("tools"));
                policy.insert("agent".into(), json!(path));
                Value::Object(policy)
            }).collect::<Vec<_>>(),
        },
        "guardrails": {"agents": agents.iter().map(|(path, agent)| {
            let stages = guardrail_stages(agent.get("guardrails"));
            json!({"agent": path, "configured": !stages.is_empty(), "stages": stages})
        }).collect::<Vec<_>>()},
        "human_review": {
            "reviewers": reviewers,
            "workflow_steps": human_steps,
            "required": !requirements.is_empty(),
            "requirements": requirements,
            "missing": diagnostics.iter().any(|d| d.code == "W_HUMAN_APPROVAL_MISSING"),
        },
        "diagnostics": diagnostics_json,
    })
}

/// The root agent and the component agents, each with its place in the spec.
fn agents(root: &Map<String, Value>) -> Vec<(String, &Map<String, Value>)> {
    let mut agents = Vec::new();
    if let Some(agent) = root.get("agent").and_then(Value::as_object) {
        agents.push(("agent".to_string(), agent));
    }
    if let Some(components) = root
        .get("components")
        .and_then(|c| c.get("agents"))
        .and_then(Value::as_object)
    {
        for (key, agent) in components {
            if let Some(agent) = agent.as_object() {
                agents.push((format!("components.agents.{key}"), agent));
            }
        }
    }
    agents
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::String(text) => !text.is_empty(),
        Value::Number(_) => true,
    }
}

fn string_list(value: Option<&Value>) -> Vec<Value> {
    value.and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `{include, exclude, permissions, unrestricted}` of an agent's `tools` selection.
fn tool_policy(tools: Option<&Value>) -> Map<String, Value> {
    let (include, exclude, permissions, unrestricted) = match tools {
        Some(Value::Array(names)) if !names.is_empty() => {
            (names.clone(), Vec::new(), Value::Null, true)
        }
        Some(Value::Object(selection)) if !selection.is_empty() => {
            let permissions = selection
                .get("permissions")
                .and_then(Value::as_object)
                .map(full_permissions);
            let unrestricted = match &permissions {
                None => true,
                Some(permissions) => {
                    let flag = |key: &str| permissions.get(key).is_some_and(truthy);
                    flag("allow_shell")
                        || flag("allow_filesystem_write")
                        || flag("allow_filesystem_read")
                        || (flag("allow_network") && !flag("allowed_domains"))
                }
            };
            (
                string_list(selection.get("include")),
                string_list(selection.get("exclude")),
                permissions.map(Value::Object).unwrap_or(Value::Null),
                unrestricted,
            )
        }
        _ => (Vec::new(), Vec::new(), Value::Null, false),
    };
    let mut policy = Map::new();
    policy.insert("include".into(), Value::Array(include));
    policy.insert("exclude".into(), Value::Array(exclude));
    policy.insert("permissions".into(), permissions);
    policy.insert("unrestricted".into(), json!(unrestricted));
    policy
}

/// A permissions block with every key, defaults filled in (as kneo-serv dumps its model).
fn full_permissions(given: &Map<String, Value>) -> Map<String, Value> {
    let mut full = Map::new();
    for flag in [
        "allow_network",
        "allow_filesystem_read",
        "allow_filesystem_write",
        "allow_shell",
    ] {
        full.insert(flag.into(), given.get(flag).cloned().unwrap_or(Value::Null));
    }
    for list in ["allowed_domains", "denied_domains"] {
        full.insert(list.into(), Value::Array(string_list(given.get(list))));
    }
    full
}

/// `{stage: number of checks}` for the stages that have any, by stage name.
fn guardrail_stages(guardrails: Option<&Value>) -> Map<String, Value> {
    let mut stages: Vec<(&String, usize)> = guardrails
        .and_then(Value::as_object)
        .map(|stages| {
            stages
                .iter()
                .filter_map(|(stage, checks)| {
                    let count = checks.as_array().map(Vec::len).unwrap_or(0);
                    (count > 0).then_some((stage, count))
                })
                .collect()
        })
        .unwrap_or_default();
    stages.sort();
    stages
        .into_iter()
        .map(|(stage, count)| (stage.clone(), json!(count)))
        .collect()
}

fn enabled(step: &Value) -> bool {
    step.get("enabled") != Some(&Value::Bool(false))
}

/// Enabled human steps of the root workflow and the component workflows.
fn human_workflow_steps(
    root: &Map<String, Value>,
    component_workflows: &Map<String, Value>,
) -> Vec<Value> {
    let mut steps = Vec::new();
    let mut collect = |workflow: &Value, path: &str| {
        let is_human = |step: &Value| {
            step.get("kind").and_then(Value::as_str) == Some("human") && enabled(step)
        };
        match workflow.get("type").and_then(Value::as_str) {
            Some("sequential") | None => {
                for step in workflow
                    .get("steps")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|step| is_human(step))
                {
                    steps.push(json!({
                        "workflow": path,
                        "step_id": step.get("id").cloned().unwrap_or(Value::Null),
                        "ref": step.get("ref").cloned().unwrap_or(Value::Null),
                    }));
                }
            }
            Some("graph") => {
                for (node_id, node) in workflow
                    .get("nodes")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter(|(_, node)| is_human(node))
                {
                    steps.push(json!({
                        "workflow": path,
                        "step_id": node_id,
                        "ref": node.get("ref").cloned().unwrap_or(Value::Null),
                    }));
                }
            }
            Some(_) => {}
        }
    };
    if let Some(workflow) = root.get("workflow").filter(|w| w.is_object()) {
        collect(workflow, "workflow");
    }
    for (name, workflow) in component_workflows {
        collect(workflow, &format!("components.workflows.{name}"));
    }
    steps
}

/// Why the spec needs a human review: privileged tools or imports, or (when the spec declares
/// reviewers and nothing else calls for one) that reviewers are configured.
fn review_requirements(diagnostics: &[Diagnostic], has_reviewers: bool) -> Vec<Value> {
    let mut requirements: Vec<Value> = diagnostics
        .iter()
        .filter(|d| REVIEW_CODES.contains(&d.code.as_ref()))
        .map(|d| json!({"code": d.code, "path": d.path, "reason": d.message}))
        .collect();
    if has_reviewers && requirements.is_empty() {
        requirements.push(json!({
            "code": "I_HUMAN_REVIEW_CONFIGURED",
            "path": "components.humans",
            "reason": "Human reviewers are configured for this spec.",
        }));
    }
    requirements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_posture_is_reported_per_agent_with_every_permission_key() {
        let document = json!({
            "version": "v1",
            "agent": {"name": "t", "tools": {"include": ["web_search"], "exclude": ["x"],
                      "permissions": {"allow_network": true, "allow_shell": true}}},
            "tools": {"web_search": {"implementation": "f"}},
        });
        let report = report(&document, &[]);
        let policy = &report["tools"]["agent_policies"][0];
        assert_eq!(policy["agent"], "agent");
        assert_eq!(policy["unrestricted"], true);
        assert_eq!(policy["permissions"]["allowed_domains"], json!([]));
        assert_eq!(policy["permissions"]["allow_filesystem_read"], Value::Null);
        assert_eq!(report["summary"]["tool_count"], 1);
        assert_eq!(report["human_review"]["required"], false);
    }

    #[test]
    fn human_steps_and_reviewers_are_found() {
        let document = json!({
            "agent": {"name": "r"},
            "workflow": {"type": "sequential", "steps": [
                {"id": "draft", "kind": "function", "ref": "d"},
                {"id": "approve", "kind": "human", "ref": "boss"},
                {"id": "off", "kind": "human", "ref": "boss", "enabled": false},
            ]},
            "components": {"humans": {"boss": {}}, "agents": {"helper": {"name": "h"}}},
        });
        let report = report(&document, &[]);
        assert_eq!(
            report["human_review"]["workflow_steps"],
            json!([{"workflow": "workflow", "step_id": "approve", "ref": "boss"}])
        );
        assert_eq!(
            report["human_review"]["requirements"][0]["code"],
            "I_HUMAN_REVIEW_CONFIGURED"
        );
        assert_eq!(report["summary"]["agent_count"], 2);
        assert_eq!(
            report["memory"]["agents"][1]["agent"],
            "components.agents.helper"
        );
    }

    #[test]
    fn a_schema_invalid_document_gets_only_its_diagnostics() {
        let diagnostic = Diagnostic::error("E_SCHEMA", "agent.bogus", "unknown key");
        let report = report(&json!({}), &[diagnostic]);
        assert_eq!(report["valid"], false);
        assert!(report.get("summary").is_none());
    }
}
