//! Graph workflows: the compiled edges and the routing rule.
//!
//! After a node runs, its outgoing edges are checked in declaration order and the first whose
//! condition matches is followed; an edge without a condition always matches; no match ends
//! the run. `output_contains` matches a substring of the node's output, `status_is` the node's
//! outcome (`completed`, `failed` for a failure continued under `on_error: continue`, or
//! `skipped` for a disabled node).

use crate::spec::model::{EdgeCondition, EdgeConditionType};

/// How a node ended, as `status_is` conditions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Completed,
    /// Failed, and continued under `on_error: continue`.
    Failed,
    /// Disabled: not run; its input passed on.
    Skipped,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Completed => "completed",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<NodeStatus> {
        match text {
            "completed" => Some(NodeStatus::Completed),
            "failed" => Some(NodeStatus::Failed),
            "skipped" => Some(NodeStatus::Skipped),
            _ => None,
        }
    }

    /// Whether a `status_is` value names this status (`success`/`succeeded`/`ok` name
    /// `completed`, `error` names `failed`; case does not matter).
    fn is_named(self, value: &str) -> bool {
        let value = value.trim().to_ascii_lowercase();
        let canonical = match value.as_str() {
            "success" | "succeeded" | "ok" | "complete" => "completed",
            "error" | "failure" => "failed",
            "disabled" => "skipped",
            other => other,
        };
        canonical == self.as_str()
    }
}

/// A compiled edge between node indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgePlan {
    pub from: usize,
    pub to: usize,
    pub condition: Option<EdgeCondition>,
}

impl EdgePlan {
    fn matches(&self, output: &str, status: NodeStatus) -> bool {
        match &self.condition {
            None => true,
            Some(condition) => match condition.condition_type {
                EdgeConditionType::OutputContains => output.contains(&condition.value),
                EdgeConditionType::StatusIs => status.is_named(&condition.value),
            },
        }
    }
}

/// The routing part of a graph workflow; nodes are the workflow's steps, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPlan {
    pub start: usize,
    /// Cap on node visits; `None` only for graphs without cycles (validation requires it
    /// otherwise).
    pub max_steps: Option<u32>,
    pub edges: Vec<EdgePlan>,
}

/// The edge a finished node follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Position of the edge in `edges`.
    pub edge: usize,
    pub to: usize,
}

impl GraphPlan {
    /// The first outgoing edge of `from` that matches, or `None` (the run ends).
    pub fn route(&self, from: usize, output: &str, status: NodeStatus) -> Option<Route> {
        self.edges
            .iter()
            .enumerate()
            .find(|(_, edge)| edge.from == from && edge.matches(output, status))
            .map(|(edge, plan)| Route { edge, to: plan.to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(condition_type: EdgeConditionType, value: &str) -> Option<EdgeCondition> {
        Some(EdgeCondition {
            condition_type,
            value: value.into(),
        })
    }

    /// spec_format.md § 6.2: retrieve → review → (revise →) finalize.
    fn review_graph() -> GraphPlan {
        GraphPlan {
            start: 0,
            max_steps: Some(10),
            edges: vec![
                EdgePlan {
                    from: 0,
                    to: 1,
                    condition: None,
                },
                EdgePlan {
                    from: 1,
                    to: 2,
                    condition: condition(EdgeConditionType::OutputContains, "REVISION_REQUIRED"),
                },
                EdgePlan {
                    from: 1,
                    to: 3,
                    condition: condition(EdgeConditionType::OutputContains, "APPROVED"),
                },
                EdgePlan {
                    from: 2,
                    to: 3,
                    condition: None,
                },
            ],
        }
    }

    #[test]
    fn the_first_matching_edge_in_declaration_order_wins() {
        let graph = review_graph();
        assert_eq!(
            graph.route(1, "APPROVED", NodeStatus::Completed),
            Some(Route { edge: 2, to: 3 })
        );
        assert_eq!(
            graph
                .route(1, "REVISION_REQUIRED, not APPROVED", NodeStatus::Completed)
                .map(|route| route.to),
            Some(2)
        );
        assert_eq!(graph.route(1, "unsure", NodeStatus::Completed), None);
        assert_eq!(graph.route(3, "done", NodeStatus::Completed), None);
    }

    #[test]
    fn status_conditions_see_the_real_outcome() {
        let graph = GraphPlan {
            start: 0,
            max_steps: None,
            edges: vec![
                EdgePlan {
                    from: 0,
                    to: 1,
                    condition: condition(EdgeConditionType::StatusIs, "failed"),
                },
                EdgePlan {
                    from: 0,
                    to: 2,
                    condition: None,
                },
            ],
        };
        assert_eq!(
            graph.route(0, "x", NodeStatus::Failed).map(|r| r.to),
            Some(1)
        );
        assert_eq!(
            graph.route(0, "x", NodeStatus::Completed).map(|r| r.to),
            Some(2)
        );
        assert!(NodeStatus::Completed.is_named("Succeeded"));
    }
}
