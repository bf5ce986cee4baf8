//! Build-order cycles: the compiler builds a referenced agent or workflow before whatever uses
//! it, so agent → tool (agent-as-tool) → agent, agent → workflow (`as_agent`) → step → agent,
//! agent → guardrail or memory agent → agent, and workflow → `kind: workflow` step → workflow
//! chains must not loop (`E_BUILD_CYCLE`).

use super::codes;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::{GuardrailType, Spec, StepKind};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Something the compiler builds. The root agent is separate from component agents because it
/// is addressed by name rather than by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Node<'s> {
    RootAgent,
    Agent(&'s str),
    Tool(&'s str),
    Workflow(&'s str),
}

impl Node<'_> {
    fn describe(&self, spec: &Spec) -> String {
        match self {
            Self::RootAgent => format!("agent '{}'", spec.agent.name),
            Self::Agent(key) => format!("agent '{key}'"),
            Self::Tool(name) => format!("tool '{name}'"),
            Self::Workflow(key) => format!("workflow '{key}'"),
        }
    }
}

/// Node → (referenced node, path of the reference), in spec order.
type Edges<'s> = BTreeMap<Node<'s>, Vec<(Node<'s>, String)>>;

pub(super) fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let edges = build_edges(spec);
    let mut reported: BTreeSet<Node<'_>> = BTreeSet::new();
    for &start in edges.keys() {
        if reported.contains(&start) {
            continue;
        }
        let Some((cycle, first_reference)) = shortest_cycle(start, &edges) else {
            continue;
        };
        reported.extend(cycle.iter().copied());
        let chain: Vec<String> = cycle.iter().map(|node| node.describe(spec)).collect();
        out.push(
            Diagnostic::error(
                codes::E_BUILD_CYCLE,
                first_reference,
                format!("Build cycle: {}; none of them can be built first.", chain.join(" → ")),
            )
            .suggest("Break the cycle: an agent cannot use itself, directly or through tools and workflows."),
        );
    }
}

fn resolve_agent<'s>(spec: &'s Spec, reference: &'s str) -> Option<Node<'s>> {
    if let Some((key, _)) = spec.components.agents.get_key_value(reference) {
        Some(Node::Agent(key))
    } else if spec.agent.name == reference {
        Some(Node::RootAgent)
    } else {
        None
    }
}

fn build_edges(spec: &Spec) -> Edges<'_> {
    let mut edges: Edges<'_> = BTreeMap::new();
    let component_agents = spec
        .components
        .agents
        .iter()
        .map(|(key, agent)| (Node::Agent(key), format!("components.agents.{key}"), agent));
    let agents =
        std::iter::once((Node::RootAgent, "agent".to_owned(), &spec.agent)).chain(component_agents);
    for (from, path, agent) in agents {
        for name in agent.tool_names() {
            if let Some((tool, _)) = spec.tools.get_key_value(name) {
                edges
                    .entry(from)
                    .or_default()
                    .push((Node::Tool(tool), format!("{path}.tools")));
            }
        }
        // Agents a guardrail or a memory policy of this agent runs are built with it.
        let judges = agent
            .guardrails
            .iter()
            .flat_map(|guardrails| {
                [
                    &guardrails.input,
                    &guardrails.output,
                    &guardrails.tool,
                    &guardrails.workflow,
                ]
            })
            .flatten()
            .filter(|guardrail| guardrail.guardrail_type == GuardrailType::Agent)
            .filter_map(|guardrail| guardrail.reference.as_deref());
        let helpers = agent
            .memory
            .iter()
            .flat_map(|memory| [&memory.summarizer, &memory.retriever])
            .flatten()
            .map(|component| component.reference.as_str());
        for reference in judges.chain(helpers) {
            if let Some((key, _)) = spec.components.agents.get_key_value(reference) {
                edges
                    .entry(from)
                    .or_default()
                    .push((Node::Agent(key), format!("{path}.guardrails")));
            }
        }
        if let Some(workflow) = &agent.as_agent
            && let Some((key, _)) = spec.components.workflows.get_key_value(workflow)
        {
            edges
                .entry(from)
                .or_default()
                .push((Node::Workflow(key), format!("{path}.as_agent")));
        }
    }
    for (name, tool) in &spec.tools {
        if let Some(agent) = &tool.agent
            && let Some(target) = resolve_agent(spec, agent)
        {
            edges
                .entry(Node::Tool(name))
                .or_default()
                .push((target, format!("tools.{name}.agent")));
        }
    }
    for (key, workflow) in &spec.components.workflows {
        for (suffix, step) in workflow.all_steps() {
            let reference_path = format!("components.workflows.{key}.{suffix}.ref");
            let target = match step.kind {
                StepKind::Agent | StepKind::Guardrail => resolve_agent(spec, &step.reference),
                StepKind::Workflow => spec
                    .components
                    .workflows
                    .get_key_value(&step.reference)
                    .map(|(target, _)| Node::Workflow(target)),
                StepKind::Function | StepKind::Human => None,
            };
            if let Some(target) = target {
                edges
                    .entry(Node::Workflow(key))
                    .or_default()
                    .push((target, reference_path));
            }
        }
    }
    edges
}

/// The shortest cycle through `start` (breadth-first) as `[start, ..., start]`, with the path
/// of the reference leaving `start`, which is where the user closed the loop.
fn shortest_cycle<'s>(start: Node<'s>, edges: &Edges<'s>) -> Option<(Vec<Node<'s>>, String)> {
    let mut previous: BTreeMap<Node<'_>, Node<'_>> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for (next, _) in edges.get(&node).map(Vec::as_slice).unwrap_or_default() {
            if *next == start {
                let mut cycle = vec![start];
                let mut cursor = node;
                while cursor != start {
                    cycle.push(cursor);
                    cursor = previous.get(&cursor).copied().unwrap_or(start);
                }
                cycle.push(start);
                let last = cycle.len() - 1;
                cycle[1..last].reverse();
                let first = cycle.get(1).copied().unwrap_or(start);
                let reference = edges
                    .get(&start)
                    .and_then(|out| out.iter().find(|(target, _)| *target == first))
                    .map(|(_, path)| path.clone())
                    .unwrap_or_default();
                return Some((cycle, reference));
            }
            if !previous.contains_key(next) {
                previous.insert(*next, node);
                queue.push_back(*next);
            }
        }
    }
    None
}
