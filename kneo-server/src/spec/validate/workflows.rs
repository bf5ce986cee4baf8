//! Workflow shape checks (per `type`), step reference resolution, and the fallback and
//! human-placement rules, for the root workflow and every component workflow.

use super::codes;
use super::components::unknown_name_fix;
use crate::spec::diagnostic::{Diagnostic, closest_match, join};
use crate::spec::model::{
    OnError, SelectorType, Spec, StepKind, StepSpec, WorkflowSpec, WorkflowType,
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
    check_ignored_fields(workflow, path, out);
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
        }
        WorkflowType::Graph => check_graph(workflow, path, out),
        WorkflowType::Concurrent | WorkflowType::Handoff | WorkflowType::GroupChat => {
            check_orchestration(workflow, path, out);
        }
    }

    let steps = workflow.all_steps();
    let mut seen_ids = BTreeSet::new();
    for (suffix, step) in &steps {
        let step_path = join(path, suffix);
        if !seen_ids.insert(step.id.as_str()) {
            out.push(
                Diagnostic::error(
                    codes::E_WORKFLOW_DUPLICATE_ID,
                    join(&step_path, "id"),
                    format!(
                        "Id '{}' is used by more than one step of {}.",
                        step.id,
                        label(workflow, path)
                    ),
                )
                .suggest("Give every step a unique id."),
            );
        }
        check_step_ref(spec, step, &step_path, out);
        check_fallback(workflow, &steps, step, &step_path, out);
        if let Some(component) = component
            && step.kind == StepKind::Human
        {
            out.push(
                Diagnostic::error(
                    codes::E_STEP_WORKFLOW_NESTED_HUMAN,
                    step_path.clone(),
                    format!(
                        "Component workflow '{component}' contains human step '{}', but a nested workflow cannot pause the run that calls it.",
                        step.id
                    ),
                )
                .suggest("Move the human step into the root workflow, before or after the nested workflow step."),
            );
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

fn check_ignored_fields(workflow: &WorkflowSpec, path: &str, out: &mut Vec<Diagnostic>) {
    let kind = workflow.workflow_type;
    let uses = |field: &str| -> bool {
        match field {
            "steps" => kind == WorkflowType::Sequential,
            "start" | "max_steps" | "nodes" | "edges" => kind == WorkflowType::Graph,
            "participants" => matches!(
                kind,
                WorkflowType::Concurrent | WorkflowType::Handoff | WorkflowType::GroupChat
            ),
            "selector" => kind == WorkflowType::Handoff,
            "rounds" => kind == WorkflowType::GroupChat,
            _ => true,
        }
    };
    let present = [
        ("steps", !workflow.steps.is_empty()),
        ("start", workflow.start.is_some()),
        ("max_steps", workflow.max_steps.is_some()),
        ("nodes", !workflow.nodes.is_empty()),
        ("edges", !workflow.edges.is_empty()),
        ("participants", !workflow.participants.is_empty()),
        ("selector", workflow.selector.is_some()),
        ("rounds", workflow.rounds.is_some()),
    ];
    for (field, is_set) in present {
        if is_set && !uses(field) {
            out.push(
                Diagnostic::warning(
                    codes::W_WORKFLOW_FIELD_IGNORED,
                    join(path, field),
                    format!("'{field}' is ignored by a '{}' workflow.", kind.as_str()),
                )
                .suggest("Remove it, or change 'type' to a workflow kind that uses it."),
            );
        }
    }
}

fn check_step_ref(spec: &Spec, step: &StepSpec, step_path: &str, out: &mut Vec<Diagnostic>) {
    if spec.resolves(step.kind, &step.reference) {
        return;
    }
    let (map_name, keys): (&str, Vec<&String>) = match step.kind {
        StepKind::Agent => ("components.agents", spec.components.agents.keys().collect()),
        StepKind::Function => (
            "components.functions",
            spec.components.functions.keys().collect(),
        ),
        StepKind::Human => ("components.humans", spec.components.humans.keys().collect()),
        StepKind::Workflow => (
            "components.workflows",
            spec.components.workflows.keys().collect(),
        ),
    };
    let also_root = if step.kind == StepKind::Agent {
        format!(" and is not the root agent's name '{}'", spec.agent.name)
    } else {
        String::new()
    };
    out.push(
        Diagnostic::error(
            codes::E_WORKFLOW_REF_UNKNOWN,
            join(step_path, "ref"),
            format!(
                "Step '{}' refers to {} '{}', which is not defined in {map_name}{also_root}.",
                step.id,
                step.kind.as_str(),
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

fn check_fallback(
    workflow: &WorkflowSpec,
    steps: &[(String, &StepSpec)],
    step: &StepSpec,
    step_path: &str,
    out: &mut Vec<Diagnostic>,
) {
    let field = join(step_path, "fallback_ref");
    match (&step.fallback_ref, step.on_error) {
        (None, OnError::Fallback) => {
            out.push(
                Diagnostic::error(
                    codes::E_STEP_FALLBACK_REQUIRED,
                    field,
                    format!("Step '{}' has on_error: fallback but no fallback_ref.", step.id),
                )
                .suggest("Set fallback_ref to the id of another step of this workflow, or choose another on_error policy."),
            );
            return;
        }
        (None, OnError::Retry) if step.max_retries.unwrap_or(0) == 0 => {
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
            return;
        }
        (None, _) => return,
        (Some(_), OnError::Fallback) => {}
        (Some(_), _) => {
            out.push(
                Diagnostic::warning(
                    codes::W_STEP_FALLBACK_UNUSED,
                    field.clone(),
                    format!("Step '{}' has a fallback_ref but its on_error is not 'fallback', so it never runs.", step.id),
                )
                .suggest("Set on_error: fallback, or remove fallback_ref."),
            );
        }
    }
    let Some(target) = &step.fallback_ref else {
        return;
    };
    if *target == step.id {
        out.push(
            Diagnostic::error(
                codes::E_STEP_FALLBACK_UNKNOWN,
                field,
                format!("Step '{}' names itself as its fallback.", step.id),
            )
            .suggest("Point fallback_ref at a different step of this workflow."),
        );
        return;
    }
    // Graph nodes are addressed by key; elsewhere by id.
    let found = match workflow.workflow_type {
        WorkflowType::Graph => workflow.nodes.get(target),
        _ => steps
            .iter()
            .map(|(_, candidate)| *candidate)
            .find(|candidate| candidate.id == *target),
    };
    let Some(fallback) = found else {
        let ids: Vec<&str> = steps
            .iter()
            .map(|(_, candidate)| candidate.id.as_str())
            .filter(|id| *id != step.id)
            .collect();
        let suggestion = match closest_match(target, &ids) {
            Some(candidate) => format!("Did you mean '{candidate}'?"),
            None => "Set fallback_ref to the id of another step of this same workflow.".to_owned(),
        };
        out.push(
            Diagnostic::error(
                codes::E_STEP_FALLBACK_UNKNOWN,
                field,
                format!(
                    "fallback_ref '{target}' of step '{}' is not a step of this workflow.",
                    step.id
                ),
            )
            .suggest(suggestion),
        );
        return;
    };
    if fallback.kind == StepKind::Human {
        out.push(
            Diagnostic::error(
                codes::E_STEP_FALLBACK_HUMAN,
                field.clone(),
                format!("fallback_ref '{target}' of step '{}' is a human step.", step.id),
            )
            .suggest("A failure cannot be answered by pausing for a human; fall back to an agent or function step."),
        );
    }
    if fallback.disabled {
        out.push(
            Diagnostic::error(
                codes::E_GRAPH_NODE_FALLBACK_DISABLED,
                field,
                format!("fallback_ref '{target}' of step '{}' is disabled.", step.id),
            )
            .suggest("Enable that step or fall back to another one."),
        );
    }
}

fn check_graph(workflow: &WorkflowSpec, path: &str, out: &mut Vec<Diagnostic>) {
    if workflow.nodes.is_empty() {
        out.push(
            Diagnostic::error(
                codes::E_GRAPH_NODES_REQUIRED,
                join(path, "nodes"),
                format!("Graph workflow {} has no nodes.", label(workflow, path)),
            )
            .suggest("Add nodes: {<id>: {id: <id>, kind, ref}, ...}."),
        );
    }
    for (key, node) in &workflow.nodes {
        if node.id != *key {
            out.push(
                Diagnostic::error(
                    codes::E_GRAPH_NODE_ID_MISMATCH,
                    format!("{path}.nodes.{key}.id"),
                    format!(
                        "Node '{key}' has id '{}'; a node's id must equal its key.",
                        node.id
                    ),
                )
                .suggest(format!("Set id: {key}.")),
            );
        }
    }
    let node_keys: Vec<&str> = workflow.nodes.keys().map(String::as_str).collect();
    let node_fix = |name: &str| match closest_match(name, &node_keys) {
        Some(candidate) => format!("Did you mean '{candidate}'?"),
        None => "Use the key of a node in 'nodes'.".to_owned(),
    };
    let start_is_valid = match &workflow.start {
        None => {
            out.push(
                Diagnostic::error(
                    codes::E_GRAPH_START_REQUIRED,
                    join(path, "start"),
                    format!(
                        "Graph workflow {} has no 'start' node.",
                        label(workflow, path)
                    ),
                )
                .suggest("Set start to the id of the first node to run."),
            );
            false
        }
        Some(start) if !workflow.nodes.contains_key(start) => {
            out.push(
                Diagnostic::error(
                    codes::E_GRAPH_START_UNKNOWN,
                    join(path, "start"),
                    format!(
                        "start '{start}' is not a node of graph workflow {}.",
                        label(workflow, path)
                    ),
                )
                .suggest(node_fix(start)),
            );
            false
        }
        Some(_) => true,
    };
    for (position, edge) in workflow.edges.iter().enumerate() {
        for (end, name) in [("from", &edge.from), ("to", &edge.to)] {
            if !workflow.nodes.contains_key(name) {
                out.push(
                    Diagnostic::error(
                        codes::E_GRAPH_EDGE_UNKNOWN_NODE,
                        format!("{path}.edges[{position}].{end}"),
                        format!("Edge {position} goes {end} '{name}', which is not a node of this graph."),
                    )
                    .suggest(node_fix(name)),
                );
            }
        }
    }

    let successors = graph_successors(workflow);
    if workflow.max_steps.is_none()
        && let Some(cycle) = workflow
            .nodes
            .keys()
            .find_map(|node| cycle_through(node, &successors))
    {
        out.push(
            Diagnostic::error(
                codes::E_GRAPH_CYCLE_UNBOUNDED,
                join(path, "max_steps"),
                format!(
                    "Graph workflow {} can loop ({}) and has no max_steps, so a run might never end.",
                    label(workflow, path),
                    cycle.join(" → ")
                ),
            )
            .suggest("Set max_steps to cap the number of node executions."),
        );
    }

    if start_is_valid && let Some(start) = &workflow.start {
        let reachable = reachable_from(start, &successors);
        for key in workflow.nodes.keys() {
            if !reachable.contains(key.as_str()) {
                out.push(
                    Diagnostic::warning(
                        codes::W_GRAPH_NODE_UNREACHABLE,
                        format!("{path}.nodes.{key}"),
                        format!(
                            "Node '{key}' cannot be reached from start '{start}'; it never runs."
                        ),
                    )
                    .suggest("Add an edge to it, or remove the node."),
                );
            }
        }
    }
}

/// Node → nodes it can lead to, by edge or by fallback.
fn graph_successors(workflow: &WorkflowSpec) -> BTreeMap<&str, Vec<&str>> {
    let mut successors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in &workflow.edges {
        if workflow.nodes.contains_key(&edge.to) {
            successors
                .entry(edge.from.as_str())
                .or_default()
                .push(edge.to.as_str());
        }
    }
    for (key, node) in &workflow.nodes {
        if let Some(fallback) = &node.fallback_ref
            && workflow.nodes.contains_key(fallback)
        {
            successors
                .entry(key.as_str())
                .or_default()
                .push(fallback.as_str());
        }
    }
    successors
}

/// The shortest path from `start` back to itself, if any (breadth-first, so the reported
/// cycle is the tightest one).
fn cycle_through<'n>(
    start: &'n str,
    successors: &BTreeMap<&'n str, Vec<&'n str>>,
) -> Option<Vec<&'n str>> {
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in successors.get(node).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                let mut path = vec![start];
                let mut cursor = node;
                while cursor != start {
                    path.push(cursor);
                    cursor = previous.get(cursor).copied().unwrap_or(start);
                }
                path.push(start);
                let last = path.len() - 1;
                path[1..last].reverse();
                return Some(path);
            }
            if !previous.contains_key(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

fn reachable_from<'n>(
    start: &'n str,
    successors: &BTreeMap<&'n str, Vec<&'n str>>,
) -> BTreeSet<&'n str> {
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in successors.get(node).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    seen
}

fn check_orchestration(workflow: &WorkflowSpec, path: &str, out: &mut Vec<Diagnostic>) {
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
    if workflow.workflow_type == WorkflowType::Concurrent {
        let humans = workflow
            .participants
            .iter()
            .enumerate()
            .filter(|(_, participant)| participant.kind == StepKind::Human);
        for (position, participant) in humans.skip(1) {
            out.push(
                Diagnostic::error(
                    codes::E_ORCHESTRATION_MULTI_HUMAN_UNSUPPORTED,
                    format!("{path}.participants[{position}]"),
                    format!(
                        "Participant '{}' is a second human participant; a concurrent fan-out can wait for only one human.",
                        participant.id
                    ),
                )
                .suggest("Keep one human participant, or gather the other answer in a later sequential step."),
            );
        }
    }
    if workflow.workflow_type == WorkflowType::Handoff
        && let Some(selector) = &workflow.selector
    {
        let selector_path = join(path, "selector");
        match selector.selector_type {
            SelectorType::Sequence if selector.sequence.is_empty() => out.push(
                Diagnostic::error(
                    codes::E_WORKFLOW_SELECTOR_SEQUENCE_REQUIRED,
                    join(&selector_path, "sequence"),
                    "A 'sequence' selector needs a sequence of participant ids.",
                )
                .suggest("Add sequence: [<participant id>, ...], or use type: round_robin."),
            ),
            SelectorType::RoundRobin if !selector.sequence.is_empty() => out.push(
                Diagnostic::warning(
                    codes::W_WORKFLOW_FIELD_IGNORED,
                    join(&selector_path, "sequence"),
                    "A 'round_robin' selector ignores 'sequence'.",
                )
                .suggest("Remove 'sequence', or set type: sequence."),
            ),
            _ => {}
        }
        let ids: Vec<&str> = workflow
            .participants
            .iter()
            .map(|participant| participant.id.as_str())
            .collect();
        for (position, entry) in selector.sequence.iter().enumerate() {
            if !ids.contains(&entry.as_str()) {
                out.push(
                    Diagnostic::error(
                        codes::E_WORKFLOW_SELECTOR_UNKNOWN_PARTICIPANT,
                        format!("{selector_path}.sequence[{position}]"),
                        format!("Selector entry '{entry}' is not the id of a participant."),
                    )
                    .suggest(match closest_match(entry, &ids) {
                        Some(candidate) => format!("Did you mean '{candidate}'?"),
                        None => "Use participant ids only.".to_owned(),
                    }),
                );
            }
        }
    }
}
