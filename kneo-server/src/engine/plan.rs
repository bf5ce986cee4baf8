//! Compiling a validated spec into an executable plan: every reference resolved, every function,
//! provider and tool built, so execution never looks anything up by name. Nothing is started
//! here (MCP servers are spawned on their first call), so compiling is cheap and offline.

use std::sync::Arc;
use std::time::Duration;

use super::PlanContext;
use super::command::CommandPlan;
use super::functions::StepFunction;
use super::graph::{EdgePlan, GraphPlan};
use super::mcp::McpServerPlan;
use super::providers::{Provider, ToolDefinition, provider_for};
use super::tools::{ToolBacking, ToolPlan};
use crate::spec::model::{
    AgentSpec, HumanSpec, ModelSpec, OnError, Spec, StepKind, StepSpec, ToolPermissions, ToolSpec,
    WorkflowSpec, WorkflowType,
};

/// How deep agents-as-tools and nested workflows may go (validation rejects cycles; this
/// bounds what is left).
const MAX_DEPTH: usize = 8;
/// Provider calls per agent turn when `strategy.max_iterations` is not set.
pub const DEFAULT_MAX_ITERATIONS: u32 = 4;

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
    /// Tools the agent may call, in selection order.
    pub tools: Vec<ToolPlan>,
    /// Provider calls per turn (`strategy.max_iterations`, default 4).
    pub max_iterations: u32,
    pub temperature: Option<f64>,
    /// `policies.tool` (or `tools.permissions`): which tools the agent may call.
    pub tool_policy: Option<ToolPermissions>,
}

#[derive(Clone)]
pub struct WorkflowPlan {
    pub name: String,
    pub description: Option<String>,
    pub kind: WorkflowType,
    /// Sequential steps in order, or graph nodes (sorted by id).
    pub steps: Vec<StepPlan>,
    /// Start, edges and `max_steps` of a graph workflow.
    pub graph: Option<GraphPlan>,
}

impl WorkflowPlan {
    /// The index of the step or node with `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.id == id)
    }
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
    /// A disabled step is not run; its input passes on.
    pub disabled: bool,
}

/// The work of one step.
#[derive(Clone)]
pub enum Unit {
    Agent(Arc<AgentPlan>),
    Function {
        implementation: String,
        function: Arc<dyn StepFunction>,
    },
    /// A `command:` function: JSON on stdin and stdout (docs/extending.md).
    Command {
        reference: String,
        command: CommandPlan,
    },
    Human {
        reference: String,
        spec: HumanSpec,
    },
    /// A nested component workflow, run inline as one step.
    Workflow(Box<WorkflowPlan>),
}

impl Unit {
    /// `agent`, `function`, `human` or `workflow`, as traces report a step's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Unit::Agent(_) => "agent",
            Unit::Function { .. } | Unit::Command { .. } => "function",
            Unit::Human { .. } => "human",
            Unit::Workflow(_) => "workflow",
        }
    }
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

/// Compiles `spec` for `target` (`agent` or `workflow`) with the registries and runtime
/// services of `context` (an [`super::Engine`], or a bare function registry, which uses the
/// process-wide defaults for the rest).
pub fn compile(spec: &Spec, target: &str, context: &dyn PlanContext) -> Result<Plan, CompileError> {
    let compiler = Compiler { spec, context };
    let agent = compiler.agent(&spec.agent, "agent", 0)?;
    let workflow = match (&spec.workflow, target) {
        (Some(workflow), "workflow") => Some(compiler.workflow(workflow, "workflow", 0)?),
        _ => None,
    };
    Ok(Plan { agent, workflow })
}

struct Compiler<'a> {
    spec: &'a Spec,
    context: &'a dyn PlanContext,
}

impl Compiler<'_> {
    fn agent(
        &self,
        agent: &AgentSpec,
        path: &str,
        depth: usize,
    ) -> Result<AgentPlan, CompileError> {
        if depth > MAX_DEPTH {
            return Err(compile_error(
                "E_BUILD_CYCLE",
                path,
                format!(
                    "agents used as tools nest deeper than {MAX_DEPTH} levels at agent {:?}",
                    agent.name
                ),
            ));
        }
        let default_model = ModelSpec {
            provider: "dummy".into(),
            name: "default".into(),
            ..ModelSpec::default()
        };
        let model = agent.model.as_ref().unwrap_or(&default_model);
        let provider = provider_for(model, self.context.runtime()).map_err(|error| {
            compile_error(
                "E_PROVIDER_UNAVAILABLE",
                &format!("{path}.model.provider"),
                error.to_string(),
            )
        })?;
        let mut tools = Vec::new();
        for name in agent.tool_names() {
            tools.push(self.tool(name, &format!("{path}.tools"), depth)?);
        }
        let tool_policy = agent
            .policies
            .as_ref()
            .and_then(|policies| policies.tool.clone())
            .or_else(|| {
                agent
                    .tools
                    .as_ref()
                    .and_then(|selection| selection.permissions().cloned())
            });
        Ok(AgentPlan {
            name: agent.name.clone(),
            system_prompt: agent.system_prompt.clone(),
            provider_name: model.provider.clone(),
            model_name: model.name.clone(),
            provider,
            tools,
            max_iterations: agent
                .strategy
                .as_ref()
                .and_then(|strategy| strategy.max_iterations)
                .unwrap_or(DEFAULT_MAX_ITERATIONS),
            temperature: model.temperature().ok().flatten(),
            tool_policy,
        })
    }

    /// A tool an agent selects: declared in `tools`, or registered in code under that name.
    fn tool(&self, name: &str, path: &str, depth: usize) -> Result<ToolPlan, CompileError> {
        let Some(tool) = self.spec.tools.get(name) else {
            let registered = self.context.tools().get(name).ok_or_else(|| {
                compile_error(
                    "E_TOOL_REF",
                    path,
                    format!("Tool '{name}' is neither declared in tools nor registered (docs/extending.md)."),
                )
            })?;
            return Ok(ToolPlan {
                definition: registered.definition.clone(),
                backing: ToolBacking::Handler(registered.handler.clone()),
            });
        };
        let tool_path = format!("tools.{name}");
        let mut definition = ToolDefinition {
            name: name.to_string(),
            description: tool.description.clone().unwrap_or_default(),
            parameters: tool
                .parameters
                .clone()
                .map(serde_json::Value::Object)
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        };
        let backing = self.tool_backing(name, tool, &tool_path, depth, &mut definition)?;
        Ok(ToolPlan {
            definition,
            backing,
        })
    }

    fn tool_backing(
        &self,
        name: &str,
        tool: &ToolSpec,
        path: &str,
        depth: usize,
        definition: &mut ToolDefinition,
    ) -> Result<ToolBacking, CompileError> {
        if let Some(implementation) = &tool.implementation {
            if let Some(registered) = self.context.tools().get(implementation) {
                if tool.parameters.is_none() {
                    definition.parameters = registered.definition.parameters.clone();
                }
                return Ok(ToolBacking::Handler(registered.handler.clone()));
            }
            if let Some(function) = self.context.functions().build(implementation) {
                return Ok(ToolBacking::Function(function));
            }
            return Err(compile_error(
                "E_TOOL_IMPLEMENTATION_UNKNOWN",
                &format!("{path}.implementation"),
                format!(
                    "Tool '{name}' uses implementation '{implementation}', which this server has not registered (docs/extending.md)."
                ),
            ));
        }
        if let Some(reference) = &tool.mcp {
            let server = self
                .spec
                .mcp_servers
                .get(&reference.server)
                .ok_or_else(|| {
                    compile_error(
                        "E_MCP_SERVER_UNKNOWN",
                        &format!("{path}.mcp.server"),
                        format!(
                            "Tool '{name}' uses MCP server '{}', which is not in mcp_servers.",
                            reference.server
                        ),
                    )
                })?;
            let runtime = self.context.runtime();
            return Ok(ToolBacking::Mcp {
                server: Arc::new(McpServerPlan::new(
                    &reference.server,
                    server,
                    &runtime.mcp_settings,
                )),
                remote_name: reference.name.clone().unwrap_or_else(|| name.to_string()),
                sessions: runtime.mcp.clone(),
            });
        }
        if let Some(agent) = &tool.agent {
            let spec = self.spec.resolve_agent(agent).ok_or_else(|| {
                compile_error(
                    "E_TOOL_AGENT_UNKNOWN",
                    &format!("{path}.agent"),
                    format!(
                        "Tool '{name}' wraps agent '{agent}', which is not in components.agents."
                    ),
                )
            })?;
            if tool.parameters.is_none() {
                definition.parameters = serde_json::json!({
                    "type": "object",
                    "properties": {"input": {"type": "string", "description": format!("What to ask agent {agent}.")}},
                    "required": ["input"],
                });
            }
            let nested = self.agent(spec, &format!("components.agents.{agent}"), depth + 1)?;
            return Ok(ToolBacking::Agent(Arc::new(nested)));
        }
        if let Some(command) = &tool.command {
            return Ok(ToolBacking::Command(CommandPlan {
                argv: command.argv(),
                env: tool.env.clone(),
            }));
        }
        Err(compile_error(
            "E_TOOL_NO_BACKING",
            path,
            format!(
                "Tool '{name}' has no backing: it needs one of 'implementation', 'mcp', 'agent' or 'command'."
            ),
        ))
    }

    fn workflow(
        &self,
        workflow: &WorkflowSpec,
        path: &str,
        depth: usize,
    ) -> Result<WorkflowPlan, CompileError> {
        if depth > MAX_DEPTH {
            return Err(compile_error(
                "E_BUILD_CYCLE",
                path,
                format!("nested workflows go deeper than {MAX_DEPTH} levels"),
            ));
        }
        let steps: Vec<(String, &StepSpec)> = match workflow.workflow_type {
            WorkflowType::Sequential => workflow
                .steps
                .iter()
                .enumerate()
                .map(|(index, step)| (format!("{path}.steps[{index}]"), step))
                .collect(),
            WorkflowType::Graph => workflow
                .nodes
                .iter()
                .map(|(key, node)| (format!("{path}.nodes.{key}"), node))
                .collect(),
            other => {
                return Err(compile_error(
                    "E_WORKFLOW_TYPE_UNSUPPORTED",
                    &format!("{path}.type"),
                    format!(
                        "workflow type {:?} is not supported by this kneo build yet; use a sequential or graph workflow",
                        other.as_str()
                    ),
                ));
            }
        };
        let ids: Vec<&str> = steps.iter().map(|(_, step)| step.id.as_str()).collect();
        let mut compiled = Vec::with_capacity(steps.len());
        for (step_path, step) in &steps {
            compiled.push(self.step(step, step_path, &ids, depth)?);
        }
        let graph = match workflow.workflow_type {
            WorkflowType::Graph => Some(self.graph(workflow, path, &ids)?),
            _ => None,
        };
        Ok(WorkflowPlan {
            name: workflow.name.clone().unwrap_or_else(|| "workflow".into()),
            description: workflow.description.clone(),
            kind: workflow.workflow_type,
            steps: compiled,
            graph,
        })
    }

    fn graph(
        &self,
        workflow: &WorkflowSpec,
        path: &str,
        ids: &[&str],
    ) -> Result<GraphPlan, CompileError> {
        let index_of = |id: &str, field: String| {
            ids.iter()
                .position(|candidate| *candidate == id)
                .ok_or_else(|| {
                    compile_error(
                        "E_GRAPH_EDGE_UNKNOWN_NODE",
                        &field,
                        format!("'{id}' is not a node of graph workflow {path}"),
                    )
                })
        };
        let start_id = workflow.start.as_deref().ok_or_else(|| {
            compile_error(
                "E_GRAPH_START_REQUIRED",
                &format!("{path}.start"),
                format!("graph workflow {path} has no start node"),
            )
        })?;
        let start = index_of(start_id, format!("{path}.start"))?;
        let mut edges = Vec::with_capacity(workflow.edges.len());
        for (position, edge) in workflow.edges.iter().enumerate() {
            edges.push(EdgePlan {
                from: index_of(&edge.from, format!("{path}.edges[{position}].from"))?,
                to: index_of(&edge.to, format!("{path}.edges[{position}].to"))?,
                condition: edge.condition.clone(),
            });
        }
        Ok(GraphPlan {
            start,
            max_steps: workflow.max_steps,
            edges,
        })
    }

    fn step(
        &self,
        step: &StepSpec,
        path: &str,
        ids: &[&str],
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
            StepKind::Agent => {
                let agent = self.spec.resolve_agent(reference).ok_or_else(unresolved)?;
                match agent
                    .as_agent
                    .as_ref()
                    .and_then(|name| self.spec.components.workflows.get(name).map(|w| (name, w)))
                {
                    // Workflow-as-agent: the agent's behaviour is the workflow.
                    Some((name, workflow)) => Unit::Workflow(Box::new(self.workflow(
                        workflow,
                        &format!("components.workflows.{name}"),
                        depth + 1,
                    )?)),
                    None => Unit::Agent(Arc::new(self.agent(agent, path, depth)?)),
                }
            }
            StepKind::Function => {
                let function_spec = self
                    .spec
                    .components
                    .functions
                    .get(reference)
                    .ok_or_else(unresolved)?;
                match (&function_spec.implementation, &function_spec.command) {
                    (_, Some(command)) => Unit::Command {
                        reference: reference.to_string(),
                        command: CommandPlan {
                            argv: command.argv(),
                            env: function_spec.env.clone(),
                        },
                    },
                    (Some(implementation), None) => {
                        let function =
                            self.context.functions().build(implementation).ok_or_else(|| {
                                compile_error(
                                    "E_FUNCTION_UNKNOWN",
                                    &format!("components.functions.{reference}.implementation"),
                                    format!("function implementation {implementation:?} is not registered (docs/extending.md)"),
                                )
                            })?;
                        Unit::Function {
                            implementation: implementation.clone(),
                            function,
                        }
                    }
                    (None, None) => {
                        return Err(compile_error(
                            "E_FUNCTION_NO_BACKING",
                            &format!("components.functions.{reference}"),
                            format!(
                                "Function '{reference}' has neither 'implementation' nor 'command'."
                            ),
                        ));
                    }
                }
            }
            StepKind::Human => Unit::Human {
                reference: reference.to_string(),
                spec: self
                    .spec
                    .components
                    .humans
                    .get(reference)
                    .ok_or_else(unresolved)?
                    .clone(),
            },
            StepKind::Workflow => {
                let nested = self
                    .spec
                    .components
                    .workflows
                    .get(reference)
                    .ok_or_else(unresolved)?;
                Unit::Workflow(Box::new(self.workflow(
                    nested,
                    &format!("components.workflows.{reference}"),
                    depth + 1,
                )?))
            }
        };
        let fallback = step
            .fallback_ref
            .as_ref()
            .and_then(|target| ids.iter().position(|candidate| candidate == target));
        Ok(StepPlan {
            id: step.id.clone(),
            unit,
            on_error: step.on_error,
            fallback,
            max_retries: step.max_retries.unwrap_or(0),
            timeout: step
                .timeout_seconds
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            disabled: step.disabled,
        })
    }
}
