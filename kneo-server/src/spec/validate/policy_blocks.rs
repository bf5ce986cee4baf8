//! The guardrail and memory blocks of every agent: references resolve, patterns compile, and
//! every field that a guardrail's type or a memory policy does not read draws a warning.
//!
//! kneo-serv 1.2 resolves guardrail and memory refs only when a run builds the agent (a missing
//! one answers 404 there); kneo reports them here, so validation and runs agree.

use super::{agents_with_paths, codes};
use crate::spec::diagnostic::{Diagnostic, index, join};
use crate::spec::model::{
    AgentSpec, GuardrailSpec, GuardrailStage, GuardrailType, MemoryPolicy, MemorySpec, Spec,
    SpecEnum,
};

/// `guardrails_complete` is false when the reader dropped a guardrail item it could not read:
/// the guardrail checks, which name items by position, are skipped then.
pub(super) fn check(spec: &Spec, guardrails_complete: bool, out: &mut Vec<Diagnostic>) {
    for (path, agent) in agents_with_paths(spec) {
        let root = path == "agent";
        if let Some(guardrails) = agent.guardrails.as_ref().filter(|_| guardrails_complete) {
            for stage in GuardrailStage::VARIANTS
                .iter()
                .filter_map(|name| GuardrailStage::from_name(name))
            {
                let stage_path = format!("{path}.guardrails.{}", stage.as_str());
                for (position, guardrail) in guardrails.stage(stage).iter().enumerate() {
                    check_guardrail(spec, guardrail, &index(&stage_path, position), out);
                }
            }
            check_reach(spec, root, &path, agent, out);
        }
        if let Some(memory) = &agent.memory {
            check_memory(spec, memory, &join(&path, "memory"), out);
        }
    }
}

fn check_guardrail(spec: &Spec, guardrail: &GuardrailSpec, path: &str, out: &mut Vec<Diagnostic>) {
    let id = &guardrail.id;
    let kind = guardrail.guardrail_type;
    match (kind, &guardrail.reference) {
        (GuardrailType::Function | GuardrailType::Agent, None) => out.push(
            Diagnostic::error(
                codes::E_GUARDRAIL_REF_REQUIRED,
                join(path, "ref"),
                format!("Guardrail '{id}' has type '{kind}' but no ref naming the component that checks."),
            )
            .suggest(match kind {
                GuardrailType::Agent => "Add ref: <a components.agents key>.",
                _ => "Add ref: <a components.functions key>.",
            }),
        ),
        (GuardrailType::Function, Some(reference))
            if !spec.components.functions.contains_key(reference) =>
        {
            out.push(unknown_ref(
                codes::E_GUARDRAIL_REF_UNKNOWN,
                join(path, "ref"),
                format!("Guardrail '{id}' refers to function '{reference}', which is not defined under components.functions."),
                "Define it under components.functions (implementation or command), or fix the ref.",
            ));
        }
        (GuardrailType::Agent, Some(reference))
            if !spec.components.agents.contains_key(reference) =>
        {
            out.push(unknown_ref(
                codes::E_GUARDRAIL_REF_UNKNOWN,
                join(path, "ref"),
                format!("Guardrail '{id}' refers to agent '{reference}', which is not defined under components.agents."),
                "Define it under components.agents, or fix the ref.",
            ));
        }
        (GuardrailType::Regex | GuardrailType::Keyword, Some(_)) => {
            out.push(field_ignored(path, "ref", id, kind));
        }
        _ => {}
    }
    let config = &guardrail.config;
    if kind != GuardrailType::Regex && !config.patterns.is_empty() {
        out.push(field_ignored(path, "config.patterns", id, kind));
    }
    if kind != GuardrailType::Keyword && !config.keywords.is_empty() {
        out.push(field_ignored(path, "config.keywords", id, kind));
    }
    let never = match kind {
        GuardrailType::Regex => config.patterns.is_empty().then_some("patterns"),
        GuardrailType::Keyword => config.keywords.is_empty().then_some("keywords"),
        _ => None,
    };
    if let Some(list) = never {
        out.push(
            Diagnostic::warning(
                codes::W_GUARDRAIL_NEVER_MATCHES,
                join(path, "config"),
                format!(
                    "Guardrail '{id}' has type '{kind}' and no config.{list}, so it never matches."
                ),
            )
            .suggest(format!(
                "Add config: {{{list}: [...]}}, or remove the guardrail."
            )),
        );
    }
    if kind == GuardrailType::Regex {
        for (position, pattern) in config.patterns.iter().enumerate() {
            if let Err(error) = regex::Regex::new(pattern) {
                out.push(
                    Diagnostic::error(
                        codes::E_GUARDRAIL_PATTERN_INVALID,
                        index(&join(path, "config.patterns"), position),
                        format!("Guardrail '{id}' pattern '{pattern}' is not a valid regular expression: {}", error_summary(&error.to_string())),
                    )
                    .suggest("Fix the pattern (Rust regex syntax: no look-around or backreferences)."),
                );
            }
        }
    }
}

/// Stages that no run reaches: workflow-stage guardrails of a component agent (only the root
/// agent's are applied), and the root agent's own stages in a spec whose workflow never runs
/// the root agent (they apply with `target: agent`).
fn check_reach(spec: &Spec, root: bool, path: &str, agent: &AgentSpec, out: &mut Vec<Diagnostic>) {
    let Some(guardrails) = &agent.guardrails else {
        return;
    };
    if !root && !guardrails.workflow.is_empty() {
        out.push(
            Diagnostic::warning(
                codes::W_GUARDRAIL_STAGE_IGNORED,
                format!("{path}.guardrails.workflow"),
                format!("Agent '{}' is a component agent; workflow-stage guardrails are read from the root agent only.", agent.name),
            )
            .suggest("Move them to agent.guardrails.workflow."),
        );
    }
    let own_stages = !guardrails.input.is_empty()
        || !guardrails.output.is_empty()
        || !guardrails.tool.is_empty();
    if root && own_stages && spec.workflow.is_some() && !root_agent_reachable(spec) {
        out.push(
            Diagnostic::info(
                codes::I_GUARDRAIL_AGENT_TARGET_ONLY,
                format!("{path}.guardrails"),
                "The root agent's input, output and tool guardrails apply when the root agent runs: with target: agent. A run of the workflow (the default target) does not run the root agent.",
            )
            .suggest("Put the guardrails on the component agents the workflow runs, or run with target: agent."),
        );
    }
}

/// Whether a workflow step or tool reaches the root agent by its name (a kneo extension).
fn root_agent_reachable(spec: &Spec) -> bool {
    let name = spec.agent.name.as_str();
    if spec.components.agents.contains_key(name) {
        return false;
    }
    let in_workflow = |workflow: &crate::spec::model::WorkflowSpec| {
        workflow
            .all_steps()
            .iter()
            .any(|(_, step)| step.kind.runs_an_agent() && step.reference == name)
    };
    spec.workflow.as_ref().is_some_and(in_workflow)
        || spec.components.workflows.values().any(in_workflow)
        || spec
            .tools
            .values()
            .any(|tool| tool.agent.as_deref() == Some(name))
}

fn check_memory(spec: &Spec, memory: &MemorySpec, path: &str, out: &mut Vec<Diagnostic>) {
    let policy = memory.policy;
    let (needed, reference) = match policy {
        MemoryPolicy::Summary => (Some("summarizer"), memory.summarizer.as_ref()),
        MemoryPolicy::Retrieval => (Some("retriever"), memory.retriever.as_ref()),
        MemoryPolicy::Full | MemoryPolicy::SlidingWindow => (None, None),
    };
    if let Some(field) = needed {
        match reference {
            None => out.push(
                Diagnostic::error(
                    codes::E_MEMORY_REF_REQUIRED,
                    join(path, field),
                    format!("Memory policy '{policy}' needs {field}: {{ref: <component>}}."),
                )
                .suggest(format!(
                    "Add {field}: {{ref: <a components.functions or components.agents key>}}."
                )),
            ),
            Some(component)
                if !spec.components.functions.contains_key(&component.reference)
                    && !spec.components.agents.contains_key(&component.reference) =>
            {
                out.push(unknown_ref(
                    codes::E_MEMORY_REF_UNKNOWN,
                    format!("{path}.{field}.ref"),
                    format!(
                        "Memory {field} '{}' is neither a components.functions nor a components.agents key.",
                        component.reference
                    ),
                    "Define the component, or fix the ref.",
                ));
            }
            Some(_) => {}
        }
    }
    let reads = |field: &str| match field {
        "max_messages" | "preserve_system_messages" => policy == MemoryPolicy::SlidingWindow,
        "summarizer" => policy == MemoryPolicy::Summary,
        "retriever" | "top_k" => policy == MemoryPolicy::Retrieval,
        _ => true,
    };
    let present = [
        ("max_messages", memory.max_messages.is_some()),
        (
            "preserve_system_messages",
            memory.preserve_system_messages.is_some(),
        ),
        ("summarizer", memory.summarizer.is_some()),
        ("retriever", memory.retriever.is_some()),
        ("top_k", memory.top_k.is_some()),
    ];
    for (field, _) in present
        .into_iter()
        .filter(|(field, present)| *present && !reads(field))
    {
        out.push(
            Diagnostic::warning(
                codes::W_MEMORY_FIELD_IGNORED,
                join(path, field),
                format!("Memory policy '{policy}' does not read {field}."),
            )
            .suggest(format!("Remove {field}, or use the policy that reads it.")),
        );
    }
}

fn field_ignored(path: &str, field: &str, id: &str, kind: GuardrailType) -> Diagnostic {
    Diagnostic::warning(
        codes::W_GUARDRAIL_FIELD_IGNORED,
        join(path, field),
        format!("Guardrail '{id}' has type '{kind}', which does not read {field}."),
    )
    .suggest(format!("Remove {field}, or use the type that reads it."))
}

fn unknown_ref(code: &str, path: String, message: String, fix: &str) -> Diagnostic {
    Diagnostic::error(code, path, message).suggest(fix)
}

/// The regex crate's message ends with the line that says what is wrong.
fn error_summary(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}
