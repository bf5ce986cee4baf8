//! Executing a graph workflow: run a node, route along the first matching edge, write a durable
//! boundary, repeat until no edge matches or `max_steps` node visits are spent.
//!
//! The run row says where the graph stands: `current_node_id` is the node to run next,
//! `execution_context.next_input` its input, and `execution_context.graph` the visit count and,
//! after a human node was answered, the output still to be routed (the resume itself knows no
//! edges). A run taken over after a crash therefore continues after its last completed node.

use serde_json::{Value, json};

use super::human::{PausePosition, pause_for_human};
use super::policy::{StepResult, run_step_with_policy};
use super::state::{Execution, StepFailure, message};
use super::{Interrupt, Outcome};
use crate::engine::graph::{GraphPlan, NodeStatus};
use crate::engine::plan::{Plan, Unit, WorkflowPlan};

/// A node whose output has not been routed yet (a human node answered since the pause).
#[derive(Debug, Clone, PartialEq)]
struct PendingRoute {
    node_id: String,
    output: String,
    status: NodeStatus,
}

/// Where a graph run stands; stored as `execution_context.graph`.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    /// The node to run next; `None` once routing found no edge (the run is done).
    next_node: Option<String>,
    next_input: String,
    /// Node visits so far, checked against `max_steps`.
    visits: u32,
    route_from: Option<PendingRoute>,
}

impl Cursor {
    fn to_json(&self) -> Value {
        json!({
            "next_node_id": self.next_node,
            "visits": self.visits,
            "finished": self.next_node.is_none() && self.route_from.is_none(),
            "route_from": self.route_from.as_ref().map(|route| json!({
                "node_id": route.node_id,
                "output": route.output,
                "status": route.status.as_str(),
            })),
        })
    }

    /// The cursor a stored run resumes from, or `None` for a run that has not started.
    fn from_context(context: &Value) -> Option<Cursor> {
        let graph = context.get("graph")?;
        let route_from = graph
            .get("route_from")
            .filter(|route| route.is_object())
            .map(|route| PendingRoute {
                node_id: text(route, "node_id"),
                output: text(route, "output"),
                status: route
                    .get("status")
                    .and_then(Value::as_str)
                    .and_then(NodeStatus::parse)
                    .unwrap_or(NodeStatus::Completed),
            });
        Some(Cursor {
            next_node: graph
                .get("next_node_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            next_input: text(context, "next_input"),
            visits: graph
                .get("visits")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(u64::from(u32::MAX)) as u32,
            route_from,
        })
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Follows the first matching edge out of `node` and points the cursor at its target.
fn route(
    graph: &GraphPlan,
    workflow: &WorkflowPlan,
    node: &str,
    output: &str,
    status: NodeStatus,
    cursor: &mut Cursor,
) -> Option<usize> {
    let taken = workflow
        .position(node)
        .and_then(|index| graph.route(index, output, status));
    cursor.next_node =
        taken.and_then(|route| workflow.steps.get(route.to).map(|step| step.id.clone()));
    cursor.next_input = output.to_string();
    cursor.route_from = None;
    taken.map(|route| route.edge)
}

impl Execution<'_> {
    fn save_cursor(&mut self, cursor: &Cursor) {
        self.graph_state = Some(cursor.to_json());
        self.run.current_node_id = cursor.next_node.clone();
    }
}

pub(super) async fn run_graph(
    execution: &mut Execution<'_>,
    plan: &Plan,
    workflow: &WorkflowPlan,
) -> Result<Outcome, Interrupt> {
    let Some(graph) = workflow.graph.as_ref() else {
        let failure = StepFailure::new(
            "graph_invalid",
            format!("workflow {} is not a graph", workflow.name),
        );
        execution.fail_run(&plan.agent, None, &failure).await?;
        return Ok(Outcome::Finished(execution.run.clone()));
    };
    let input = execution.run.input_text.clone().unwrap_or_default();
    let saved = execution
        .run
        .metadata
        .get("execution_context")
        .and_then(Cursor::from_context);
    let mut cursor = match saved {
        Some(cursor) => {
            execution.emit(
                execution
                    .event("workflow_resumed")
                    .with("workflow_name", workflow.name.clone())
                    .with("current_node_id", json!(cursor.next_node))
                    .input(&cursor.next_input)
                    .metadata(json!({"visits": cursor.visits, "node_count": workflow.steps.len()})),
            );
            cursor
        }
        None => {
            let start = workflow.steps.get(graph.start).map(|step| step.id.clone());
            let cursor = Cursor {
                next_node: start,
                next_input: input.clone(),
                visits: 0,
                route_from: None,
            };
            execution.save_cursor(&cursor);
            let started = execution
                .event("workflow_started")
                .with("workflow_name", workflow.name.clone())
                .with("current_node_id", json!(cursor.next_node))
                .input(&input)
                .metadata(json!({"start": cursor.next_node, "max_steps": graph.max_steps, "node_count": workflow.steps.len()}));
            execution.begin_workflow(started, &input);
            cursor
        }
    };

    if let Some(pending) = cursor.route_from.clone() {
        // A human node was answered: its output routes now.
        let edge = route(
            graph,
            workflow,
            &pending.node_id,
            &pending.output,
            pending.status,
            &mut cursor,
        );
        execution.emit(
            execution.event("node_completed")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", pending.node_id.clone())
                .with("current_node_id", pending.node_id.clone())
                .output(&pending.output)
                .metadata(json!({"kind": "human", "status": pending.status.as_str(), "edge": edge, "next_node_id": cursor.next_node})),
        );
        execution.save_cursor(&cursor);
    }

    while let Some(node_id) = cursor.next_node.clone() {
        if execution.cancel.is_cancelled() {
            return Err(Interrupt::Cancelled);
        }
        let Some(step) = workflow
            .position(&node_id)
            .and_then(|index| workflow.steps.get(index))
        else {
            let failure = StepFailure::new(
                "graph_node_unknown",
                format!(
                    "graph workflow {} has no node {node_id:?} to continue with",
                    workflow.name
                ),
            );
            execution
                .fail_run(&plan.agent, Some(&node_id), &failure)
                .await?;
            return Ok(Outcome::Finished(execution.run.clone()));
        };
        if let Some(cap) = graph.max_steps
            && cursor.visits >= cap
        {
            let path = execution.run.visited_nodes.join(" → ");
            // kneo-serv's error type and message, then what happened and the fix.
            let failure = StepFailure::new(
                "max_iterations",
                format!(
                    "Run stopped after reaching max iterations: graph workflow {} used all \
                     max_steps={cap} node visits before it finished (visited {path}; next was \
                     {node_id}); raise workflow.max_steps or give the loop an exit edge that matches",
                    workflow.name
                ),
            );
            execution.termination = Some("max_steps");
            execution.run.output_text = Some(crate::redact::redacted_text(&cursor.next_input));
            execution.emit(
                execution
                    .event("node_failed")
                    .with("workflow_name", workflow.name.clone())
                    .with("step_id", node_id.clone())
                    .with("current_node_id", node_id.clone())
                    .error(failure.kind, &failure.message),
            );
            execution
                .fail_run(&plan.agent, Some(&node_id), &failure)
                .await?;
            return Ok(Outcome::Finished(execution.run.clone()));
        }
        cursor.visits += 1;
        execution.current_node = Some(node_id.clone());
        let node_input = cursor.next_input.clone();

        if step.disabled {
            let edge = route(
                graph,
                workflow,
                &node_id,
                &node_input,
                NodeStatus::Skipped,
                &mut cursor,
            );
            execution.emit(
                execution.event("node_skipped")
                    .with("workflow_name", workflow.name.clone())
                    .with("step_id", node_id.clone())
                    .with("current_node_id", node_id.clone())
                    .metadata(json!({"reason": "disabled", "edge": edge, "next_node_id": cursor.next_node})),
            );
            execution.save_cursor(&cursor);
            continue;
        }

        if let Unit::Human { reference, spec } = &step.unit {
            // The pause records this node as the one to answer; the resume routes its output.
            cursor.next_node = Some(node_id.clone());
            execution.save_cursor(&cursor);
            return pause_for_human(
                execution,
                workflow,
                PausePosition::Node(&node_id),
                step,
                reference,
                spec,
                &node_input,
            )
            .await;
        }

        execution.run.current_node_id = Some(node_id.clone());
        execution.emit(
            execution
                .event("node_started")
                .with("workflow_name", workflow.name.clone())
                .with("step_id", node_id.clone())
                .with("current_node_id", node_id.clone())
                .input(&node_input)
                .metadata(json!({"kind": step.unit.kind(), "visit": cursor.visits})),
        );
        let result = run_step_with_policy(execution, workflow, step, &node_input).await?;
        match result {
            StepResult::Done(output) => {
                execution.add_usage(&output);
                execution.run.visited_nodes.push(node_id.clone());
                execution.count_iteration(&node_id);
                execution
                    .run
                    .messages
                    .push(message("assistant", &output.text, Some(&node_id)));
                let edge = route(
                    graph,
                    workflow,
                    &node_id,
                    &output.text,
                    NodeStatus::Completed,
                    &mut cursor,
                );
                execution.emit(
                    execution.event("node_completed")
                        .with("workflow_name", workflow.name.clone())
                        .with("step_id", node_id.clone())
                        .with("current_node_id", node_id.clone())
                        .output(&output.text)
                        .metadata(json!({"status": "completed", "edge": edge, "next_node_id": cursor.next_node})),
                );
                execution.save_cursor(&cursor);
                execution.set_context(
                    "node_completed",
                    Some(&node_id),
                    &node_input,
                    Some(&output.text),
                    &cursor.next_input,
                );
                let metadata = json!({
                    "workflow_type": workflow.kind.as_str(),
                    "node_id": node_id,
                    "input_text": node_input,
                    "output_text": output.text,
                    "status": "completed",
                    "next_node_id": cursor.next_node,
                    "error": null,
                    "iteration": 1,
                });
                execution
                    .checkpoint("step_completed", Some(&node_id), metadata, false)
                    .await?;
            }
            StepResult::Skipped(failure) => {
                // on_error: continue: the input passes on, and edges see the failure.
                execution.run.visited_nodes.push(node_id.clone());
                let edge = route(
                    graph,
                    workflow,
                    &node_id,
                    &node_input,
                    NodeStatus::Failed,
                    &mut cursor,
                );
                execution.emit(
                    execution.event("node_failed")
                        .with("workflow_name", workflow.name.clone())
                        .with("step_id", node_id.clone())
                        .with("current_node_id", node_id.clone())
                        .metadata(json!({"on_error": "continue", "status": "failed", "edge": edge, "next_node_id": cursor.next_node}))
                        .error(failure.kind, &failure.message),
                );
                execution.save_cursor(&cursor);
                execution.set_context(
                    "step_failed",
                    Some(&node_id),
                    &node_input,
                    None,
                    &cursor.next_input,
                );
                let metadata = json!({
                    "workflow_type": workflow.kind.as_str(),
                    "node_id": node_id,
                    "input_text": node_input,
                    "status": "failed",
                    "next_node_id": cursor.next_node,
                    "error": {"type": failure.kind, "message": failure.message},
                    "continued": true,
                });
                execution
                    .checkpoint("step_failed", Some(&node_id), metadata, false)
                    .await?;
            }
            StepResult::Failed(failure) => {
                execution.emit(
                    execution
                        .event("node_failed")
                        .with("workflow_name", workflow.name.clone())
                        .with("step_id", node_id.clone())
                        .with("current_node_id", node_id.clone())
                        .metadata(json!({"status": "failed"}))
                        .error(failure.kind, &failure.message),
                );
                execution.set_context(
                    "step_failed",
                    Some(&node_id),
                    &node_input,
                    None,
                    &node_input,
                );
                execution
                    .fail_run(&plan.agent, Some(&node_id), &failure)
                    .await?;
                return Ok(Outcome::Finished(execution.run.clone()));
            }
        }
    }

    execution.current_node = None;
    execution.run.current_node_id = None;
    // kneo-serv reports `no_matching_edge` even at a node without edges; kneo tells them apart.
    let last = execution
        .run
        .visited_nodes
        .last()
        .and_then(|node| workflow.position(node));
    let has_edges = last.is_some_and(|index| graph.edges.iter().any(|edge| edge.from == index));
    let termination = if has_edges {
        "no_matching_edge"
    } else {
        "terminal_node"
    };
    execution.termination = Some(termination);
    let metadata = json!({"visited_nodes": execution.run.visited_nodes, "visits": cursor.visits, "termination": termination});
    execution
        .complete_workflow(&plan.agent, workflow, &cursor.next_input, metadata)
        .await?;
    Ok(Outcome::Finished(execution.run.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_the_run_row() {
        let cursor = Cursor {
            next_node: Some("review".into()),
            next_input: "draft".into(),
            visits: 2,
            route_from: Some(PendingRoute {
                node_id: "approve".into(),
                output: "Rejected by human reviewer".into(),
                status: NodeStatus::Completed,
            }),
        };
        let context = json!({"next_input": "draft", "graph": cursor.to_json()});
        assert_eq!(Cursor::from_context(&context), Some(cursor));
        assert_eq!(Cursor::from_context(&json!({"next_input": "x"})), None);
    }
}
