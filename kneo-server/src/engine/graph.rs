//! Graph workflows: the compiled edges, their conditions and the routing rule.
//!
//! After a node runs, its outgoing edges are checked in declaration order and the first whose
//! condition matches is followed; an edge without a condition always matches; no match ends
//! the run. Conditions are kneo-serv 1.2's ten predicates: `always`, `never`,
//! `output_contains` / `output_equals` (without regard to case unless `case_sensitive`),
//! `metadata_equals` (the node result's metadata: `node_kind` for function, human and workflow
//! nodes, `agent_name` and the runtime for agent nodes, `node_failed` for a failure continued
//! under `on_error: continue`), `variable_equals` (runs have no variables, so it never matches),
//! `status_is` (`completed`, `failed` for a continued failure, `skipped`), and the combinators
//! `all_of`, `any_of`, `not`.

use serde_json::{Map, Value, json};

use crate::spec::model::{EdgeCondition, EdgeConditionType};

/// How a node ended, as `status_is` conditions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Completed,
    /// Failed, and continued under `on_error: continue`.
    Failed,
    /// Not run; its input passed on.
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
        let value = value.trim().to_lowercase();
        let canonical = match value.as_str() {
            "success" | "succeeded" | "ok" | "complete" => "completed",
            "error" | "failure" => "failed",
            "disabled" => "skipped",
            other => other,
        };
        canonical == self.as_str()
    }
}

/// What a condition is checked against.
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    pub output: &'a str,
    pub status: NodeStatus,
    /// The node result's metadata.
    pub metadata: &'a Map<String, Value>,
    /// The run's variables (always empty: no request field sets them, as in kneo-serv 1.2).
    pub variables: &'a Map<String, Value>,
}

/// A compiled edge condition.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionPlan {
    Always,
    Never,
    OutputContains { text: String, case_sensitive: bool },
    OutputEquals { text: String, case_sensitive: bool },
    MetadataEquals { key: String, value: Value },
    VariableEquals { key: String, value: Value },
    StatusIs(String),
    AllOf(Vec<ConditionPlan>),
    AnyOf(Vec<ConditionPlan>),
    Not(Box<ConditionPlan>),
}

/// The text a condition `value` compares: strings as written, other scalars as JSON text.
fn value_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

impl ConditionPlan {
    /// Compiles a validated condition (validation guarantees what each type needs).
    pub fn compile(condition: &EdgeCondition) -> ConditionPlan {
        let text = || value_text(condition.value.as_ref());
        let value = || condition.value.clone().unwrap_or(Value::Null);
        let key = || condition.key.clone().unwrap_or_default();
        match condition.condition_type {
            EdgeConditionType::Always => ConditionPlan::Always,
            EdgeConditionType::Never => ConditionPlan::Never,
            EdgeConditionType::OutputContains => ConditionPlan::OutputContains {
                text: text(),
                case_sensitive: condition.case_sensitive,
            },
            EdgeConditionType::OutputEquals => ConditionPlan::OutputEquals {
                text: text(),
                case_sensitive: condition.case_sensitive,
            },
            EdgeConditionType::MetadataEquals => ConditionPlan::MetadataEquals {
                key: key(),
                value: value(),
            },
            EdgeConditionType::VariableEquals => ConditionPlan::VariableEquals {
                key: key(),
                value: value(),
            },
            EdgeConditionType::StatusIs => ConditionPlan::StatusIs(text()),
            EdgeConditionType::AllOf => {
                ConditionPlan::AllOf(condition.conditions.iter().map(Self::compile).collect())
            }
            EdgeConditionType::AnyOf => {
                ConditionPlan::AnyOf(condition.conditions.iter().map(Self::compile).collect())
            }
            EdgeConditionType::Not => ConditionPlan::Not(Box::new(
                condition
                    .condition
                    .as_deref()
                    .map_or(ConditionPlan::Never, Self::compile),
            )),
        }
    }

    pub fn matches(&self, context: &RouteContext<'_>) -> bool {
        let fold = |text: &str, case_sensitive: bool| {
            if case_sensitive {
                text.to_owned()
            } else {
                text.to_lowercase()
            }
        };
        match self {
            ConditionPlan::Always => true,
            ConditionPlan::Never => false,
            ConditionPlan::OutputContains {
                text,
                case_sensitive,
            } => fold(context.output, *case_sensitive).contains(&fold(text, *case_sensitive)),
            ConditionPlan::OutputEquals {
                text,
                case_sensitive,
            } => fold(context.output, *case_sensitive) == fold(text, *case_sensitive),
            ConditionPlan::MetadataEquals { key, value } => {
                context.metadata.get(key) == Some(value)
            }
            ConditionPlan::VariableEquals { key, value } => {
                context.variables.get(key) == Some(value)
            }
            ConditionPlan::StatusIs(status) => context.status.is_named(status),
            ConditionPlan::AllOf(children) => children.iter().all(|child| child.matches(context)),
            ConditionPlan::AnyOf(children) => children.iter().any(|child| child.matches(context)),
            ConditionPlan::Not(child) => !child.matches(context),
        }
    }
}

/// A compiled edge between node indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePlan {
    pub from: usize,
    pub to: usize,
    pub condition: Option<ConditionPlan>,
    /// The edge's `label`, reported with the route that takes it.
    pub label: Option<String>,
}

impl EdgePlan {
    fn matches(&self, context: &RouteContext<'_>) -> bool {
        self.condition
            .as_ref()
            .is_none_or(|condition| condition.matches(context))
    }
}

/// The routing part of a graph workflow; nodes are the workflow's steps, by index. Disabled
/// nodes and their edges are not here: compiling drops them.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphPlan {
    pub start: usize,
    /// Cap on node visits (`max_steps`, 50 by default); always set.
    pub max_steps: Option<u32>,
    pub edges: Vec<EdgePlan>,
    /// Per node (by index), the result metadata conditions see when the node completes:
    /// `{node_kind}` for function, human and workflow nodes, `{agent_name, runtime_mode,
    /// runtime_name}` for agent nodes.
    pub node_metadata: Vec<Map<String, Value>>,
    /// Per node, its kind (`agent`, `function`, `human`, `workflow`).
    pub node_kinds: Vec<&'static str>,
}

/// The edge a finished node follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Position of the edge in `edges`.
    pub edge: usize,
    pub to: usize,
}

impl GraphPlan {
    /// The first outgoing edge of `from` that matches, or `None` (the run ends), with the
    /// node result metadata this plan knows for `from`.
    pub fn route(&self, from: usize, output: &str, status: NodeStatus) -> Option<Route> {
        let metadata = self.outcome_metadata(from, status);
        let variables = Map::new();
        self.route_with(
            from,
            &RouteContext {
                output,
                status,
                metadata: &metadata,
                variables: &variables,
            },
        )
    }

    /// The first outgoing edge of `from` that matches `context`.
    pub fn route_with(&self, from: usize, context: &RouteContext<'_>) -> Option<Route> {
        self.edges
            .iter()
            .enumerate()
            .find(|(_, edge)| edge.from == from && edge.matches(context))
            .map(|(edge, plan)| Route { edge, to: plan.to })
    }

    /// The label of edge `edge`, if it has one.
    pub fn label(&self, edge: usize) -> Option<&str> {
        self.edges.get(edge).and_then(|plan| plan.label.as_deref())
    }

    /// The node result metadata of node `node` ending with `status`: a failure continued
    /// under `on_error: continue` reports `node_failed` the way kneo-serv does.
    pub fn outcome_metadata(&self, node: usize, status: NodeStatus) -> Map<String, Value> {
        if status == NodeStatus::Failed {
            let kind = self.node_kinds.get(node).copied().unwrap_or("agent");
            let mut metadata = Map::new();
            metadata.insert("node_kind".into(), json!(kind));
            metadata.insert("node_failed".into(), json!(true));
            metadata.insert("on_error".into(), json!("continue"));
            return metadata;
        }
        self.node_metadata.get(node).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(spec: Value) -> ConditionPlan {
        ConditionPlan::compile(&serde_json::from_value(spec).unwrap())
    }

    fn edge(from: usize, to: usize, spec: Option<Value>) -> EdgePlan {
        EdgePlan {
            from,
            to,
            condition: spec.map(condition),
            label: None,
        }
    }

    fn graph(edges: Vec<EdgePlan>) -> GraphPlan {
        GraphPlan {
            start: 0,
            max_steps: Some(10),
            edges,
            node_metadata: vec![
                serde_json::from_value(json!({"agent_name": "echo"})).unwrap(),
                serde_json::from_value(json!({"node_kind": "function"})).unwrap(),
            ],
            node_kinds: vec!["agent", "function"],
        }
    }

    /// spec_format.md § 6.2: retrieve → review → (revise →) finalize.
    fn review_graph() -> GraphPlan {
        graph(vec![
            edge(0, 1, None),
            edge(
                1,
                2,
                Some(json!({"type": "output_contains", "value": "REVISION_REQUIRED"})),
            ),
            edge(
                1,
                3,
                Some(json!({"type": "output_contains", "value": "APPROVED"})),
            ),
            edge(2, 3, None),
        ])
    }

    fn matches(spec: Value, output: &str) -> bool {
        let metadata = serde_json::from_value(json!({"agent_name": "echo", "count": 2})).unwrap();
        let variables = Map::new();
        condition(spec).matches(&RouteContext {
            output,
            status: NodeStatus::Completed,
            metadata: &metadata,
            variables: &variables,
        })
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
    fn output_conditions_ignore_case_unless_told_otherwise() {
        // Recordings 268-272: "please approve" matches APPROVE; "ok" equals OK.
        assert!(matches(
            json!({"type": "output_contains", "value": "APPROVE"}),
            "please approve"
        ));
        assert!(!matches(
            json!({"type": "output_contains", "value": "APPROVE", "case_sensitive": true}),
            "please approve"
        ));
        assert!(matches(
            json!({"type": "output_equals", "value": "OK"}),
            "ok"
        ));
        assert!(!matches(
            json!({"type": "output_equals", "value": "OK", "case_sensitive": true}),
            "ok"
        ));
        assert!(!matches(
            json!({"type": "output_equals", "value": "ok"}),
            "ok then"
        ));
        assert!(matches(
            json!({"type": "output_contains", "value": "ÄPFEL"}),
            "äpfel"
        ));
    }

    #[test]
    fn leaf_and_combinator_conditions() {
        assert!(matches(json!({"type": "always"}), "x"));
        assert!(!matches(json!({"type": "never"}), "x"));
        assert!(matches(
            json!({"type": "metadata_equals", "key": "agent_name", "value": "echo"}),
            "x"
        ));
        assert!(matches(
            json!({"type": "metadata_equals", "key": "count", "value": 2}),
            "x"
        ));
        assert!(!matches(
            json!({"type": "metadata_equals", "key": "count", "value": "2"}),
            "x"
        ));
        assert!(!matches(
            json!({"type": "variable_equals", "key": "lang", "value": "en"}),
            "x"
        ));
        assert!(matches(
            json!({"type": "status_is", "value": "completed"}),
            "x"
        ));
        let red = json!({"type": "output_contains", "value": "red"});
        let blue = json!({"type": "output_contains", "value": "blue"});
        let green = json!({"type": "output_contains", "value": "green"});
        assert!(matches(
            json!({"type": "all_of", "conditions": [red, blue]}),
            "red and blue"
        ));
        assert!(!matches(
            json!({"type": "all_of", "conditions": [red, green]}),
            "red and blue"
        ));
        assert!(matches(
            json!({"type": "any_of", "conditions": [green, blue]}),
            "red and blue"
        ));
        assert!(matches(
            json!({"type": "not", "condition": green}),
            "red and blue"
        ));
        assert!(matches(
            json!({"type": "not", "condition": {"type": "output_contains", "value": "RED", "case_sensitive": true}}),
            "red and blue"
        ));
    }

    #[test]
    fn node_metadata_reaches_conditions() {
        let graph = graph(vec![
            edge(
                1,
                0,
                Some(json!({"type": "metadata_equals", "key": "node_kind", "value": "function"})),
            ),
            edge(
                0,
                1,
                Some(json!({"type": "metadata_equals", "key": "agent_name", "value": "echo"})),
            ),
        ]);
        assert_eq!(
            graph.route(1, "x", NodeStatus::Completed).map(|r| r.to),
            Some(0)
        );
        assert_eq!(
            graph.route(0, "x", NodeStatus::Completed).map(|r| r.to),
            Some(1)
        );
        let failed = graph.outcome_metadata(0, NodeStatus::Failed);
        assert_eq!(failed.get("node_kind"), Some(&json!("agent")));
        assert_eq!(failed.get("node_failed"), Some(&json!(true)));
        assert_eq!(graph.route(0, "x", NodeStatus::Failed), None);
    }

    #[test]
    fn status_conditions_see_the_real_outcome() {
        let graph = graph(vec![
            edge(0, 1, Some(json!({"type": "status_is", "value": "failed"}))),
            edge(0, 2, None),
        ]);
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
