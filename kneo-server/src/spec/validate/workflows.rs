//! Workflow checks, for the root workflow and every component workflow: step references, ids,
//! fallbacks and human placement per type; graph start, edges and reachability over enabled
//! nodes; orchestration participants, selectors and rounds.

use super::codes;
use super::components::unknown_name_fix;
use crate::spec::diagnostic::{Diagnostic, closest_match, join};
use crate::spec::model::{
    EdgeCondition, EdgeConditionType, OnError, SelectorType, Spec, StepKind, StepSpec,
    WorkflowSpec, WorkflowType,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub(super) fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    if let Some(workflow) = &spec.workflow {
        check_workflow(spec, workflow, "workflow", None, out);
    }
    for (key, workflow) in &spec.components.workflows {
        check_workflow(
            spec,
            workflow,
            &format!("components.workflows.{key}"),
            Some(key),
            out,
        );
    }
}

/// `component` is the component key for nested workflows, `None` for the root workflow.
fn check_workflow(
    spec: &Spec,
    workflow: &WorkflowSpec,
    path: &str,
    component: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    match workflow.workflow_type {
        WorkflowType::Sequential => {
            if workflow.steps.is_empty() {
                out.push(
                    Diagnostic::error(
                        codes::E_WORKFLOW_STEPS_REQUIRED,
                        join(path, "steps"),
                        format!(
                            "Sequential workflow {} has no steps.",
                            label(workflow, path)
                        ),
                    )
                    .suggest("Add steps: [{id, kind, ref}, ...]."),
                );
            }
            check_sequential(spec, workflow, path, component, out);
        }
        WorkflowType::Graph => check_graph(spec, workflow, path, component, out),
        WorkflowType::Concurrent | WorkflowType::Handoff | WorkflowType::GroupChat => {
            check_orchestration(spec, workflow, path, component, out);
        }
    }
}

/// Names a workflow in messages: by `name` when it has one, else by path.
fn label(workflow: &WorkflowSpec, path: &str) -> String {
    match &workflow.name {
        Some(name) => format!("'{name}'"),
        None => format!("'{path}'"),
    }
}

/// The reference checks every step, node and participant gets (kneo-serv's `check_step`).
fn check_step_ref(
    spec: &Spec,
    step: &StepSpec,
    ref_path: &str,
    component: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    if !spec.resolves(step.kind, &step.reference) {
        let (code, noun, map_name, keys): (&str, &str, &str, Vec<&String>) = match step.kind {
            StepKind::Agent | StepKind::Guardrail => (
                codes::E_STEP_AGENT_REF,
                "Agent",
                "components.agents",
                spec.components.agents.keys().collect(),
            ),
            StepKind::Function => (
                codes::E_STEP_FUNCTION_REF,
                "Function",
                "components.functions",
                spec.components.functions.keys().collect(),
            ),
            StepKind::Human => (
                codes::E_STEP_HUMAN_REF,
                "Human",
                "components.humans",
                spec.components.humans.keys().collect(),
            ),
            StepKind::Workflow => (
                codes::E_STEP_WORKFLOW_REF,
                "Workflow",
                "components.workflows",
                spec.components.workflows.keys().collect(),
            ),
        };
        out.push(
            Diagnostic::error(
                code,
                ref_path,
                format!(
                    "{noun} component '{}' is referenced but not defined.",
                    step.reference
                ),
            )
            .suggest(unknown_name_fix(
                &step.reference,
                keys.into_iter(),
                map_name,
            )),
        );
    }
    if step.kind == StepKind::Workflow && component == Some(step.reference.as_str()) {
        out.push(
            Diagnostic::error(
                codes::E_STEP_WORKFLOW_SELF_REF,
                ref_path,
                format!("Workflow component '{}' references itself.", step.reference),
            )
            .suggest("A workflow cannot run itself as a step; reference another workflow."),
        );
    }
    if step.kind == StepKind::Workflow
        && step.enabled
        && let Some(nested) = spec.components.workflows.get(&step.reference)
        && reaches_human(spec, nested, &mut BTreeSet::from([step.reference.as_str()]))
    {
        out.push(
            Diagnostic::error(
                codes::E_STEP_WORKFLOW_NESTED_HUMAN,
                ref_path,
                format!(
                    "Workflow step references component workflow '{}', which contains a human-approval step. A human step inside a nested kind=workflow step cannot pause the run, so its unapproved output would flow downstream as if completed.",
                    step.reference
                ),
            )
            .suggest("Declare the human step in the top-level workflow rather than inside a kind=workflow component."),
        );
    }
}

/// Whether `workflow` has an enabled human step, directly or through nested workflow steps.
fn reaches_human<'s>(
    spec: &'s Spec,
    workflow: &'s WorkflowSpec,
    seen: &mut BTreeSet<&'s str>,
) -> bool {
    for (_, step) in workflow.all_steps() {
        if !step.enabled {
            continue;
        }
        if step.kind == StepKind::Human {
            return true;
        }
        if step.kind == StepKind::Workflow
            && let Some((key, nested)) = spec.components.workflows.get_key_value(&step.reference)
            && seen.insert(key.as_str())
            && reaches_human(spec, nested, seen)
        {
            return true;
        }
    }
    false
}

fn retry_budget(step: &StepSpec, step_path: &str, out: &mut Vec<Diagnostic>) {
    if step.on_error == OnError::Retry && step.max_retries.unwrap_or(0) == 0 {
        out.push(
            Diagnostic::warning(
                codes::W_STEP_RETRY_WITHOUT_BUDGET,
                join(step_path, "max_retries"),
                format!(
                    "Step '{}' has on_error: retry but no max_retries, so it is never retried.",
                    step.id
                ),
            )
            .suggest("Set max_retries to the number of retries to allow."),
        );
    }
}

fn fallback_unused(step: &StepSpec, field: &str, out: &mut Vec<Diagnostic>) {
    if step.fallback_ref.is_some() && step.on_error != OnError::Fallback {
        out.push(
            Diagnostic::warning(
                codes::W_STEP_FALLBACK_UNUSED,
                field,
                format!("Step '{}' has a fallback_ref but its on_error is not 'fallback', so it never runs.", step.id),
            )
            .suggest("Set on_error: fallback, or remove fallback_ref."),
        );
    }
}

fn check_sequential(
    spec: &Spec,
    workflow: &WorkflowSpec,
    path: &str,
    component: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen = BTreeSet::new();
    for (position, step) in workflow.steps.iter().enumerate() {
        let step_path = format!("{path}.steps[{position}]");
        if !seen.insert(step.id.as_str()) {
            out.push(
                Diagnostic::error(
                    codes::E_STEP_DUPLICATE_ID,
                    join(&step_path, "id"),
                    format!("Step id '{}' is duplicated.", step.id),
                )
                .suggest("Give every step a unique id."),
            );
        }
        let field = join(&step_path, "fallback_ref");
        if step.on_error == OnError::Fallback && step.fallback_ref.is_none() {
            out.push(
                Diagnostic::error(
                    codes::E_STEP_FALLBACK_REF,
                    field.clone(),
                    format!("Step '{}' uses on_error=fallback but has no fallback_ref.", step.id),
                )
                .suggest("Set fallback_ref to the id of another step of this workflow, or choose another on_error policy."),
            );
        }
        fallback_unused(step, &field, out);
        retry_budget(step, &step_path, out);
        if let Some(target) = &step.fallback_ref {
            let ids: Vec<&str> = workflow
                .steps
                .iter()
                .map(|candidate| candidate.id.as_str())
                .filter(|id| *id != step.id)
                .collect();
            match workflow
                .steps
                .iter()
                .find(|candidate| candidate.id == *target && candidate.id != step.id)
            {
                None => out.push(
                    Diagnostic::error(
                        codes::E_STEP_FALLBACK_UNKNOWN,
                        field.clone(),
                        format!(
                            "Step '{}' fallback_ref '{target}' is not a step in this workflow.",
                            step.id
                        ),
                    )
                    .suggest(match closest_match(target, &ids) {
                        Some(candidate) => format!("Did you mean '{candidate}'?"),
                        None => "Set fallback_ref to the id of another step of this same workflow."
                            .to_owned(),
                    }),
                ),
                Some(fallback) => {
                    if fallback.kind == StepKind::Human {
                        out.push(
                            Diagnostic::error(
                                codes::E_STEP_FALLBACK_HUMAN,
                                field.clone(),
                                format!("Step '{}' fallback_ref '{target}' is a human step — fallbacks cannot pause for human input; keep human steps in the main chain.", step.id),
                            )
                            .suggest("Fall back to an agent or function step."),
                        );
                    }
                    if !fallback.enabled {
                        out.push(
                            Diagnostic::warning(
                                codes::W_STEP_FALLBACK_DISABLED,
                                field.clone(),
                                format!("Step '{}' fallback_ref '{target}' is disabled: the fallback stays unresolved and the step degrades to on_error=fail.", step.id),
                            )
                            .suggest("Enable that step, or fall back to another one."),
                        );
                    }
                }
            }
        }
        check_step_ref(spec, step, &join(&step_path, "ref"), component, out);
    }
}

fn check_graph(
    spec: &Spec,
    workflow: &WorkflowSpec,
    path: &str,
    component: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let node_keys: Vec<&str> = workflow.nodes.keys().map(String::as_str).collect();
    let node_fix = |name: &str| match closest_match(name, &node_keys) {
        Some(candidate) => format!("Did you mean '{candidate}'?"),
        None => "Use the key of a node in 'nodes'.".to_owned(),
    };
    let start = workflow.start.clone().unwrap_or_default();
    if !workflow.nodes.contains_key(&start) {
        out.push(
            Diagnostic::error(
                codes::E_GRAPH_START,
                join(path, "start"),
                format!("Graph start node '{start}' is not defined."),
            )
            .suggest(node_fix(&start)),
        );
    }
    for (position, edge) in workflow.edges.iter().enumerate() {
        let edge_path = format!("{path}.edges[{position}]");
        if !workflow.nodes.contains_key(&edge.from) {
            out.push(
                Diagnostic::error(
                    codes::E_GRAPH_EDGE_FROM,
                    edge_path.clone(),
                    format!("Graph edge source '{}' is not defined.", edge.from),
                )
                .suggest(node_fix(&edge.from)),
            );
        }
        if !workflow.nodes.contains_key(&edge.to) {
            out.push(
                Diagnostic::error(
                    codes::E_GRAPH_EDGE_TO,
                    edge_path.clone(),
                    format!("Graph edge target '{}' is not defined.", edge.to),
                )
                .suggest(node_fix(&edge.to)),
            );
        }
        if let Some(condition) = &edge.condition {
            warn_unset_variables(condition, &join(&edge_path, "condition"), out);
        }
    }
    for (key, node) in &workflow.nodes {
        let node_path = format!("{path}.nodes.{key}");
        if node.id != *key {
            out.push(
                Diagnostic::warning(
                    codes::W_GRAPH_NODE_ID_MISMATCH,
                    join(&node_path, "id"),
                    format!("Graph node key '{key}' differs from step id '{}'.", node.id),
                )
                .suggest(format!(
                    "Runs know the node as '{key}' (its key); set id: {key} to say so."
                )),
            );
        }
        let field = join(&node_path, "fallback_ref");
        if node.on_error == OnError::Fallback && node.fallback_ref.is_none() {
            out.push(
                Diagnostic::error(
                    codes::E_GRAPH_NODE_FALLBACK_REF,
                    field.clone(),
                    format!("Node '{key}' uses on_error=fallback but has no fallback_ref."),
                )
                .suggest("Set fallback_ref to the key of another node."),
            );
        }
        fallback_unused(node, &field, out);
        retry_budget(node, &node_path, out);
        if let Some(target) = &node.fallback_ref {
            match workflow.nodes.get(target) {
                None => out.push(
                    Diagnostic::error(
                        codes::E_GRAPH_NODE_FALLBACK_UNKNOWN,
                        field.clone(),
                        format!("Node '{key}' fallback_ref '{target}' is not a graph node."),
                    )
                    .suggest(node_fix(target)),
                ),
                Some(fallback) => {
                    if !fallback.enabled {
                        out.push(
                            Diagnostic::error(
                                codes::E_GRAPH_NODE_FALLBACK_DISABLED,
                                field.clone(),
                                format!("Node '{key}' fallback_ref '{target}' is a disabled node — it is dropped at build, so the fallback cannot execute."),
                            )
                            .suggest("Enable that node, or fall back to another one."),
                        );
                    }
                    if fallback.kind == StepKind::Human {
                        out.push(
                            Diagnostic::error(
                                codes::E_GRAPH_FALLBACK_HUMAN,
                                field.clone(),
                                format!("Node '{key}' fallback_ref '{target}' is a human node — fallbacks cannot pause for human input; keep human nodes on the main graph path."),
                            )
                            .suggest("Fall back to an agent or function node."),
                        );
                    }
                }
            }
        }
        check_step_ref(spec, node, &join(&node_path, "ref"), component, out);
    }
    match workflow.nodes.get(&start) {
        None => out.push(
            Diagnostic::error(
                codes::E_GRAPH_START_UNKNOWN,
                join(path, "start"),
                format!("Graph start node '{start}' is not defined among the graph nodes."),
            )
            .suggest(node_fix(&start)),
        ),
        Some(node) if !node.enabled => out.push(
            Diagnostic::error(
                codes::E_GRAPH_START_DISABLED,
                join(path, "start"),
                format!("Graph start node '{start}' is disabled — it is dropped at build, so the workflow has no entry point."),
            )
            .suggest("Enable the start node, or start at another node."),
        ),
        Some(_) => warn_unreachable(workflow, &start, path, out),
    }
}

/// Enabled nodes no path over enabled nodes (edges and fallbacks) reaches from `start`.
fn warn_unreachable(workflow: &WorkflowSpec, start: &str, path: &str, out: &mut Vec<Diagnostic>) {
    let enabled: BTreeSet<&str> = workflow
        .nodes
        .iter()
        .filter(|(_, node)| node.enabled)
        .map(|(key, _)| key.as_str())
        .collect();
    let mut successors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in &workflow.edges {
        if enabled.contains(edge.from.as_str()) && enabled.contains(edge.to.as_str()) {
            successors
                .entry(edge.from.as_str())
                .or_default()
                .push(edge.to.as_str());
        }
    }
    for key in &enabled {
        if let Some(fallback) = workflow
            .nodes
            .get(*key)
            .and_then(|node| node.fallback_ref.as_deref())
            && enabled.contains(fallback)
        {
            successors.entry(key).or_default().push(fallback);
        }
    }
    let mut reachable = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in successors.get(node).map(Vec::as_slice).unwrap_or_default() {
            if reachable.insert(next) {
                queue.push_back(next);
            }
        }
    }
    for key in enabled.difference(&reachable) {
        out.push(
            Diagnostic::warning(
                codes::W_GRAPH_NODE_UNREACHABLE,
                format!("{path}.nodes.{key}"),
                format!("Node '{key}' is unreachable from start '{start}' over enabled nodes — a disabled upstream node orphans its subgraph."),
            )
            .suggest("Add an edge to it, enable the node before it, or remove it."),
        );
    }
}

/// `variable_equals` never matches: runs have no variables (no request field sets them).
fn warn_unset_variables(condition: &EdgeCondition, path: &str, out: &mut Vec<Diagnostic>) {
    if condition.condition_type == EdgeConditionType::VariableEquals {
        out.push(
            Diagnostic::warning(
                codes::W_CONDITION_VARIABLES_UNSET,
                path,
                "variable_equals never matches: runs have no variables (no request field sets them, in kneo-serv 1.2 as here).",
            )
            .suggest("Route on output_contains, output_equals, metadata_equals or status_is instead."),
        );
    }
    for (position, child) in condition.conditions.iter().enumerate() {
        warn_unset_variables(child, &format!("{path}.conditions[{position}]"), out);
    }
    if let Some(child) = &condition.condition {
        warn_unset_variables(child, &join(path, "condition"), out);
    }
}

fn check_orchestration(
    spec: &Spec,
    workflow: &WorkflowSpec,
    path: &str,
    component: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let kind = workflow.workflow_type.as_str();
    if workflow.participants.is_empty() {
        out.push(
            Diagnostic::error(
                codes::E_WORKFLOW_PARTICIPANTS_REQUIRED,
                join(path, "participants"),
                format!(
                    "The '{kind}' workflow {} has no participants.",
                    label(workflow, path)
                ),
            )
            .suggest("Add participants: [{id, kind, ref}, ...]."),
        );
    }
    let mut ids = BTreeSet::new();
    for (position, participant) in workflow.participants.iter().enumerate() {
        let participant_path = format!("{path}.participants[{position}]");
        if !ids.insert(participant.id.as_str()) {
            out.push(
                Diagnostic::error(
                    codes::E_PARTICIPANT_DUPLICATE_ID,
                    join(&participant_path, "id"),
                    format!("Participant id '{}' is duplicated.", participant.id),
                )
                .suggest("Give every participant a unique id."),
            );
        }
        check_step_ref(
            spec,
            participant,
            &join(&participant_path, "ref"),
            component,
            out,
        );
        if participant.on_error == OnError::Fallback || participant.fallback_ref.is_some() {
            out.push(
                Diagnostic::error(
                    codes::E_PARTICIPANT_FALLBACK_UNSUPPORTED,
                    join(&participant_path, "fallback_ref"),
                    format!(
                        "Participant '{}' declares a fallback (on_error=fallback / fallback_ref), but participant fallback is not honored in concurrent / handoff / group-chat workflows — it would be silently ignored.",
                        participant.id
                    ),
                )
                .suggest("Remove the participant fallback, or use a sequential / graph workflow where fallback is enforced."),
            );
        }
        retry_budget(participant, &participant_path, out);
    }
    if workflow.workflow_type == WorkflowType::Concurrent {
        let humans: Vec<&str> = workflow
            .participants
            .iter()
            .filter(|participant| participant.kind == StepKind::Human && participant.enabled)
            .map(|participant| participant.id.as_str())
            .collect();
        if humans.len() > 1 {
            out.push(
                Diagnostic::error(
                    codes::E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED,
                    join(path, "participants"),
                    format!(
                        "A concurrent workflow has more than one human participant ({}), but a concurrent fan-out can pause on only one human gate per round.",
                        humans.join(", ")
                    ),
                )
                .suggest("Keep at most one human participant, or use a handoff, group-chat or sequential workflow."),
            );
        }
    }
    if workflow.workflow_type == WorkflowType::Handoff
        && let Some(selector) = &workflow.selector
    {
        let selector_path = join(path, "selector");
        let participant_ids: Vec<&str> = ids.iter().copied().collect();
        for (position, entry) in selector.sequence.iter().enumerate() {
            if !ids.contains(entry.as_str()) {
                out.push(
                    Diagnostic::error(
                        codes::E_HANDOFF_SELECTOR_REF,
                        format!("{selector_path}.sequence[{position}]"),
                        format!("Handoff selector references unknown participant '{entry}'."),
                    )
                    .suggest(match closest_match(entry, &participant_ids) {
                        Some(candidate) => format!("Did you mean '{candidate}'?"),
                        None => "Use participant ids only.".to_owned(),
                    }),
                );
            }
        }
        if selector.selector_type == SelectorType::RoundRobin && !selector.sequence.is_empty() {
            out.push(
                Diagnostic::warning(
                    codes::W_WORKFLOW_FIELD_IGNORED,
                    join(&selector_path, "sequence"),
                    "A 'round_robin' selector ignores 'sequence': every participant takes one turn in declaration order.",
                )
                .suggest("Remove 'sequence', or set type: sequence."),
            );
        }
    }
}
