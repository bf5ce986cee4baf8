//! Looking at a spec without running it: compile, explain, graph and policy report, for a spec
//! in a request (`/v1/specs/...`) or the one a run was started with (`/v1/runs/{id}/...`).
//!
//! Every route layers the spec as a run would ([`super::layering`]); compile, explain and graph
//! are gated by the environment's policy like a run, validate and the policy report are not.

use serde_json::{Map, Value, json};

use super::error::PlatformError;
use super::specs::{LayeredDocument, SpecRequest, validate_for_this_build};
use super::{Platform, audit, layering, policy_report};
use crate::api::error::ApiError;
use crate::engine::plan::Plan;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::WorkflowType;
use crate::spec::validate::Validation;
use crate::store::RunRecord;

/// What `POST /v1/specs/compile` reports.
#[derive(Debug, Clone)]
pub struct CompileOutcome {
    /// Errors only when `strict` was off.
    pub diagnostics: Vec<Diagnostic>,
    pub ok: bool,
    pub has_root_agent: bool,
    pub has_root_workflow: bool,
    pub component_agents: Vec<String>,
}

/// What `POST /v1/specs/explain` reports.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub root_agent: Option<String>,
    pub root_workflow: Option<String>,
    pub component_agents: Vec<String>,
}

/// A workflow's static structure, as the graph routes return it.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// `graph`, `sequential`, or `None` for shapes without a DAG (and agent-only specs).
    pub workflow_kind: Option<&'static str>,
    pub workflow_name: Option<String>,
    pub start: Option<String>,
    pub max_steps: Option<u32>,
    /// `{id, kind, name, on_error, fallback_node, max_retries, timeout_seconds}`.
    pub nodes: Vec<Value>,
    /// `{source, target, label, conditional, priority}`.
    pub edges: Vec<Value>,
}

/// A run's topology with its live position.
#[derive(Debug, Clone)]
pub struct RunGraph {
    pub run: RunRecord,
    pub topology: Topology,
    pub current: Option<String>,
    pub visited: Vec<String>,
}

/// The component agents in build order (by key).
fn component_agents(document: &Value) -> Vec<String> {
    let mut names: Vec<String> = document
        .get("components")
        .and_then(|c| c.get("agents"))
        .and_then(Value::as_object)
        .map(|agents| agents.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// The audit metadata kneo-serv records for validate, compile and the policy report.
fn spec_audit_metadata(request: &SpecRequest, valid: bool) -> Value {
    json!({
        "spec_path": request.spec_path(),
        "inline_spec": request.spec_path().is_none(),
        "environment": request.environment,
        "overlays": request.overlays,
        "valid": valid,
    })
}

/// The static structure of `plan`'s workflow.
pub fn topology(plan: &Plan) -> Topology {
    let Some(workflow) = &plan.workflow else {
        return Topology::default();
    };
    let id_of = |index: usize| workflow.steps.get(index).map(|step| step.id.clone());
    match (&workflow.kind, &workflow.graph) {
        (WorkflowType::Graph, Some(graph)) => Topology {
            workflow_kind: Some("graph"),
            workflow_name: Some(workflow.name.clone()),
            start: id_of(graph.start),
            max_steps: graph.max_steps,
            nodes: workflow
                .steps
                .iter()
                .map(|step| {
                    json!({
                        "id": step.id,
                        "kind": step.unit.kind(),
                        "name": step.id,
                        "on_error": step.on_error.as_str(),
                        "fallback_node": step.fallback.and_then(id_of),
                        "max_retries": step.max_retries,
                        "timeout_seconds": step.timeout.map(|t| t.as_secs_f64()),
                    })
                })
                .collect(),
            edges: graph
                .edges
                .iter()
                .map(|edge| {
                    json!({
                        "source": id_of(edge.from),
                        "target": id_of(edge.to),
                        "label": null,
                        "conditional": edge.condition.is_some(),
                        "priority": 0,
                    })
                })
                .collect(),
        },
        (WorkflowType::Sequential, _) => {
            let ids: Vec<&str> = workflow.steps.iter().map(|step| step.id.as_str()).collect();
            Topology {
                workflow_kind: Some("sequential"),
                workflow_name: Some(workflow.name.clone()),
                start: ids.first().map(|id| id.to_string()),
                max_steps: None,
                nodes: ids
                    .iter()
                    .map(|id| {
                        json!({
                            "id": id, "kind": null, "name": id, "on_error": null,
                            "fallback_node": null, "max_retries": 0, "timeout_seconds": null,
                        })
                    })
                    .collect(),
                edges: ids
                    .windows(2)
                    .map(|pair| {
                        json!({
                            "source": pair[0], "target": pair[1], "label": null,
                            "conditional": false, "priority": 0,
                        })
                    })
                    .collect(),
            }
        }
        _ => Topology {
            workflow_name: Some(workflow.name.clone()),
            ..Topology::default()
        },
    }
}

impl Topology {
    /// The topology fields of a graph response.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("workflow_name".into(), json!(self.workflow_name));
        fields.insert("workflow_kind".into(), json!(self.workflow_kind));
        fields.insert("start".into(), json!(self.start));
        fields.insert("max_steps".into(), json!(self.max_steps));
        fields.insert("nodes".into(), Value::Array(self.nodes.clone()));
        fields.insert("edges".into(), Value::Array(self.edges.clone()));
        fields
    }
}

impl Platform {
    /// Validates a layered document off the async runtime, as `/specs/validate` does.
    async fn validate_document(&self, document: &Value) -> Result<Validation, ApiError> {
        let engine = self.engine.clone();
        let document = document.clone();
        let root = self.config.spec_root.clone();
        tokio::task::spawn_blocking(move || {
            validate_for_this_build(&document, &engine, Some(&root))
        })
        .await
        .map_err(|_| PlatformError::Internal("the spec validation task stopped".into()).into())
    }

    /// Layers, validates and gates a spec for the compile routes: the layered document and its
    /// diagnostics; with `strict`, any error is `400 spec_invalid`, without it only a document
    /// that is not a spec is.
    async fn checked_spec(
        &self,
        request: &SpecRequest,
        strict: bool,
    ) -> Result<(LayeredDocument, Validation), ApiError> {
        let layered = self.layered_document(request, None).await?;
        let validation = self.validate_document(&layered.document).await?;
        self.enforce_environment_policy(
            request.environment.as_deref(),
            &layered.document,
            &validation.diagnostics,
        )
        .await?;
        let refuse = if strict {
            has_errors(&validation.diagnostics)
        } else {
            policy_report::schema_invalid(&validation.diagnostics)
        };
        if refuse {
            return Err(PlatformError::SpecInvalid(validation.diagnostics).into());
        }
        Ok((layered, validation))
    }

    /// `POST /v1/specs/validate`, audited as `spec.validated`.
    pub async fn validate_spec_request(
        &self,
        request: &SpecRequest,
        actor: &str,
    ) -> Result<Validation, ApiError> {
        let validation = self.validate_spec(request).await?;
        self.audit_spec(
            "spec.validated",
            actor,
            None,
            spec_audit_metadata(request, validation.valid()),
        )
        .await;
        Ok(validation)
    }

    /// `POST /v1/specs/compile`, audited as `spec.compiled`.
    pub async fn compile_spec(
        &self,
        request: &SpecRequest,
        strict: bool,
        actor: &str,
    ) -> Result<CompileOutcome, ApiError> {
        let (layered, validation) = self.checked_spec(request, strict).await?;
        let document = &layered.document;
        let outcome = CompileOutcome {
            ok: !has_errors(&validation.diagnostics),
            diagnostics: validation.diagnostics,
            has_root_agent: document.get("agent").is_some_and(Value::is_object),
            has_root_workflow: document.get("workflow").is_some_and(|w| !w.is_null()),
            component_agents: component_agents(document),
        };
        self.audit_spec(
            "spec.compiled",
            actor,
            None,
            spec_audit_metadata(request, true),
        )
        .await;
        Ok(outcome)
    }

    /// `POST /v1/specs/explain`, audited as `spec.explained`.
    pub async fn explain_spec(
        &self,
        request: &SpecRequest,
        actor: &str,
    ) -> Result<Explanation, ApiError> {
        let (layered, _) = self.checked_spec(request, true).await?;
        let document = &layered.document;
        let name = |key: &str| {
            document
                .get(key)
                .and_then(|block| block.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let explanation = Explanation {
            root_agent: name("agent"),
            root_workflow: name("workflow"),
            component_agents: component_agents(document),
        };
        self.audit_spec(
            "spec.explained",
            actor,
            None,
            json!({"spec_path": request.spec_path(), "inline_spec": request.spec_path().is_none()}),
        )
        .await;
        Ok(explanation)
    }

    /// `POST /v1/specs/graph`, audited as `spec.graph`.
    pub async fn graph_spec(
        &self,
        request: &SpecRequest,
        actor: &str,
    ) -> Result<Topology, ApiError> {
        let (_, validation) = self.checked_spec(request, true).await?;
        let spec = validation.spec.ok_or_else(|| {
            PlatformError::Internal("a spec without errors has no typed form".into())
        })?;
        let plan = crate::engine::plan::compile(&spec, "workflow", self.engine.as_ref()).map_err(
            |error| PlatformError::SpecInvalid(vec![super::specs::compile_diagnostic(&error)]),
        )?;
        let topology = topology(&plan);
        self.audit_spec(
            "spec.graph",
            actor,
            None,
            json!({
                "spec_path": request.spec_path(),
                "inline_spec": request.spec_path().is_none(),
                "workflow_kind": topology.workflow_kind,
            }),
        )
        .await;
        Ok(topology)
    }

    /// `POST /v1/specs/policy-report` (not gated), audited as `spec.policy_reported`.
    pub async fn policy_report_for_spec(
        &self,
        request: &SpecRequest,
        actor: &str,
    ) -> Result<Value, ApiError> {
        // The report judges the spec itself: the environment is accepted but not stamped.
        let unstamped = SpecRequest {
            environment: None,
            ..request.clone()
        };
        let layered = self.layered_document(&unstamped, None).await?;
        let validation = self.validate_document(&layered.document).await?;
        let report = policy_report::report(&layered.document, &validation.diagnostics);
        let valid = report["valid"] == json!(true);
        self.audit_spec(
            "spec.policy_reported",
            actor,
            None,
            spec_audit_metadata(request, valid),
        )
        .await;
        Ok(report)
    }

    /// `GET /v1/runs/{id}/policy-report`: the report of the spec the run was started with (its
    /// frozen snapshot and layers), audited as `spec.policy_reported` with `source: run`.
    pub async fn policy_report_for_run(
        &self,
        run_id: &str,
        actor: &str,
    ) -> Result<Value, ApiError> {
        let run = self
            .stores
            .runs
            .get_run(run_id)
            .await?
            .ok_or(PlatformError::NotFound)?;
        let document = frozen_document(&run)?;
        let validation = self.validate_document(&document).await?;
        let report = policy_report::report(&document, &validation.diagnostics);
        let valid = report["valid"] == json!(true);
        self.audit_spec(
            "spec.policy_reported",
            actor,
            Some(run_id),
            json!({"valid": valid, "source": "run"}),
        )
        .await;
        Ok(report)
    }

    /// `GET /v1/runs/{id}/graph`: the workflow of the run's frozen spec and where the run is.
    pub async fn run_graph(&self, run_id: &str) -> Result<RunGraph, ApiError> {
        let run = self
            .stores
            .runs
            .get_run(run_id)
            .await?
            .ok_or(PlatformError::NotFound)?;
        let plan = self
            .plan_for_target(&run, "workflow")
            .map_err(PlatformError::InvalidRequest)?;
        let topology = topology(&plan);
        let (current, visited) = if topology.workflow_kind == Some("sequential") {
            (last_completed_step(&run), run.visited_steps.clone())
        } else {
            (
                run.current_node_id
                    .clone()
                    .or_else(|| run.visited_nodes.last().cloned()),
                run.visited_nodes.clone(),
            )
        };
        Ok(RunGraph {
            run,
            topology,
            current,
            visited,
        })
    }

    /// Spec audit events are best effort: a failed write is logged, the answer still goes out.
    async fn audit_spec(
        &self,
        event_type: &str,
        actor: &str,
        run_id: Option<&str>,
        metadata: Value,
    ) {
        let event = audit::event(event_type, actor, run_id, None, metadata);
        if let Err(error) = self.stores.runs.record_audit(&[event]).await {
            tracing::warn!(target: "kneo_serv.platform", %error, event_type, "recording a spec audit event failed");
        }
    }
}

/// The step a sequential run last completed (not a step it is paused at).
fn last_completed_step(run: &RunRecord) -> Option<String> {
    run.visited_steps
        .last()
        .cloned()
        .or_else(|| run.current_step_id.clone())
}

/// The document a run was started with: its frozen base with its recorded layers.
pub fn frozen_document(run: &RunRecord) -> Result<Value, ApiError> {
    let base = run
        .metadata
        .get("frozen_spec")
        .and_then(|frozen| frozen.get("base"))
        .ok_or_else(|| {
            PlatformError::InvalidRequest(format!(
                "Run {} carries no frozen spec; it was created by a kneo that did not record one.",
                run.id
            ))
        })?;
    layering::layered(base, &layering::frozen_layers(&run.metadata))
        .map_err(|error| PlatformError::InvalidRequest(error.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    fn plan_of(document: Value) -> Plan {
        let engine = Engine::with_builtins();
        let validation = crate::spec::validate::validate(&document, &engine);
        let spec = validation.spec.expect("a valid spec");
        crate::engine::plan::compile(&spec, "workflow", &engine).expect("compiles")
    }

    #[test]
    fn a_sequential_workflow_is_a_chain() {
        let plan = plan_of(json!({
            "version": "v1",
            "agent": {"name": "r", "model": {"provider": "dummy", "name": "m"}},
            "workflow": {"type": "sequential", "name": "w", "steps": [
                {"id": "a", "kind": "function", "ref": "echo"},
                {"id": "b", "kind": "function", "ref": "echo"},
                {"id": "c", "kind": "human", "ref": "boss"},
            ]},
            "components": {
                "functions": {"echo": {"implementation": "kneo.builtin.echo"}},
                "humans": {"boss": {"description": "Approve."}},
            },
        }));
        let topology = topology(&plan);
        assert_eq!(topology.workflow_kind, Some("sequential"));
        assert_eq!(topology.start.as_deref(), Some("a"));
        assert_eq!(topology.nodes.len(), 3);
        assert_eq!(topology.edges.len(), 2);
        assert_eq!(topology.edges[1]["target"], "c");
        assert_eq!(topology.nodes[0]["kind"], Value::Null);
    }

    #[test]
    fn an_agent_only_spec_has_no_topology() {
        let plan = plan_of(json!({
            "version": "v1",
            "agent": {"name": "hello", "model": {"provider": "dummy", "name": "m"}},
        }));
        let topology = topology(&plan);
        assert_eq!(topology.workflow_kind, None);
        assert!(topology.nodes.is_empty());
    }
}
