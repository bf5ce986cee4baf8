//! Compiling a validated spec into an executable plan: every reference resolved, every function
//! and provider built, so execution never looks anything up by name.

use std::sync::Arc;
use std::time::Duration;

use super::functions::{FunctionRegistry, StepFunction};
use super::providers::{Provider, provider_for};
use crate::spec::model::{
    AgentSpec, HumanSpec, OnError, Spec, StepKind, StepSpec, WorkflowSpec, WorkflowType,
};

/// What a run executes.
#[derive(Clone)]
pub struct Plan {
    pub agent: AgentPlan,
    /// `None` runs the root agent alone (`target: agent`, or a spec without a workflow).
    pub workflow: Option<WorkflowPlan>,
}

impl Plan {
    /// `agent`, or the workflow type (`sequential`, …), as runs report `workflow_kind`.
    pub fn kind(&self) -> &'static str {
        match &self.workflow {
            None => "agent",
            Some(workflow) => workflow.kind.as_str(),
        }
    }
}

#[derive(Clone)]
pub struct AgentPlan {
    pub name: String,
    pub system_prompt: Option<String>,
    pub provider_name: String,
    pub model_name: String,
    pub provider: Arc<dyn Provider>,
}

#[derive(Clone)]
pub struct WorkflowPlan {
    pub name: String,
    pub description: Option<String>,
    pub kind: WorkflowType,
    pub steps: Vec<StepPlan>,
}

#[derive(Clone)]
pub struct StepPlan {
    pub id: String,
    pub unit: Unit,
    pub on_error: OnError,
    /// Index of the step run in place of this one when it fails (`on_error: fallback`).
    pub fallback: Option<usize>,
    pub max_retries: u32,
    pub timeout: Option<Duration>,
}

/// The work of one step.
#[derive(Clone)]
pub enum Unit {
    Agent(AgentPlan),
    Function {
        implementation: String,
        function: Arc<dyn StepFunction>,
    },
    Human {
        reference: String,
        spec: HumanSpec,
    },
    /// A nested component workflow, run inline as one step.
    Workflow(Box<WorkflowPlan>),
}

/// Why a validated spec still cannot run on this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

fn compile_error(code: &'static str, path: &str, message: String) -> CompileError {
    CompileError {
        code,
        path: path.to_string(),
        message,
    }
}

fn compile_agent(agent: &AgentSpec, path: &str) -> Result<AgentPlan, CompileError> {
    let (provider_name, model_name) = match &agent.model {
        Some(model) => (model.provider.clone(), model.name.clone()),
        None => ("dummy".to_string(), "default".to_string()),
    };
    let provider = provider_for(&provider_name).map_err(|error| {
        compile_error(
            "E_PROVIDER_UNAVAILABLE",
            &format!("{path}.model.provider"),
            error.to_string(),
        )
    })?;
    Ok(AgentPlan {
        name: agent.name.clone(),
        system_prompt: agent.system_prompt.clone(),
        provider_name,
        model_name,
        provider,
    })
}

fn compile_workflow(
    spec: &Spec,
    workflow: &WorkflowSpec,
    path: &str,
    functions: &FunctionRegistry,
    depth: usize,
) -> Result<WorkflowPlan, CompileError> {
    if workflow.workflow_type != WorkflowType::Sequential {
        return Err(compile_error(
            "E_WORKFLOW_TYPE_UNSUPPORTED",
            &format!("{path}.type"),
            format!(
                "workflow type {:?} is not supported by this kneo build yet; use a sequential workflow",
                workflow.workflow_type.as_str()
            ),
        ));
    }
    if depth > 8 {
        return Err(compile_error(
            "E_BUILD_CYCLE",
            path,
            "nested workflows go deeper than 8 levels".into(),
        ));
    }
    let mut steps = Vec::with_capacity(workflow.steps.len());
    for (index, step) in workflow.steps.iter().enumerate() {
        steps.push(compile_step(
            spec,
            workflow,
            step,
            &format!("{path}.steps[{index}]"),
            functions,
            depth,
        )?);
    }
    Ok(WorkflowPlan {
        name: workflow.name.clone().unwrap_or_else(|| "workflow".into()),
        description: workflow.description.clone(),
        kind: workflow.workflow_type,
        steps,
    })
}

fn compile_step(
    spec: &Spec,
    workflow: &WorkflowSpec,
    step: &StepSpec,
    path: &str,
    functions: &FunctionRegistry,
    depth: usize,
) -> Result<StepPlan, CompileError> {
    let reference = step.reference.as_str();
    let unresolved = || {
        compile_error(
            "E_WORKFLOW_REF_UNKNOWN",
            &format!("{path}.ref"),
            format!(
                "step {:?} refers to unknown {} {reference:?}",
                step.id,
                step.kind.as_str()
            ),
        )
    };
    let unit = match step.kind {
        StepKind::Agent => Unit::Agent(compile_agent(
            spec.resolve_agent(reference).ok_or_else(unresolved)?,
            path,
        )?),
        StepKind::Function => {
            let function_spec = spec
                .components
                .functions
                .get(reference)
                .ok_or_else(unresolved)?;
            let implementation = function_spec.implementation.clone().unwrap_or_default();
            let function = functions.build(&implementation).ok_or_else(|| {
                compile_error(
                    "E_FUNCTION_UNKNOWN",
                    &format!("components.functions.{reference}.implementation"),
                    format!("function implementation {implementation:?} is not registered (docs/extending.md)"),
                )
            })?;
            Unit::Function {
                implementation,
                function,
            }
        }
        StepKind::Human => Unit::Human {
            reference: reference.to_string(),
            spec: spec
                .components
                .humans
                .get(reference)
                .ok_or_else(unresolved)?
                .clone(),
        },
        StepKind::Workflow => {
            let nested = spec
                .components
                .workflows
                .get(reference)
                .ok_or_else(unresolved)?;
            Unit::Workflow(Box::new(compile_workflow(
                spec,
                nested,
                &format!("components.workflows.{reference}"),
                functions,
                depth + 1,
            )?))
        }
    };
    let fallback = step.fallback_ref.as_ref().and_then(|target| {
        workflow
            .steps
            .iter()
            .position(|candidate| &candidate.id == target)
    });
    Ok(StepPlan {
        id: step.id.clone(),
        unit,
        on_error: step.on_error,
        fallback,
        max_retries: step.max_retries.unwrap_or(0),
        timeout: step
            .timeout_seconds
            .filter(|s| *s > 0.0 && s.is_finite())
            .map(Duration::from_secs_f64),
    })
}

/// Compiles `spec` for `target` (`agent` or `workflow`).
pub fn compile(
    spec: &Spec,
    target: &str,
    functions: &FunctionRegistry,
) -> Result<Plan, CompileError> {
    let agent = compile_agent(&spec.agent, "agent")?;
    let workflow = match (&spec.workflow, target) {
        (Some(workflow), "workflow") => {
            Some(compile_workflow(spec, workflow, "workflow", functions, 0)?)
        }
        _ => None,
    };
    Ok(Plan { agent, workflow })
}
