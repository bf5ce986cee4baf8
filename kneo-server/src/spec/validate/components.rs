//! Reference and consistency checks on the named building blocks: agents, tools, MCP servers,
//! functions and human tasks.

use super::codes;
use super::{Catalog, agents_with_paths};
use crate::spec::diagnostic::{Diagnostic, closest_match, join, quoted_list};
use crate::spec::model::{
    AgentSpec, CommandSpec, FunctionSpec, HumanSpec, McpServerSpec, McpTransport, RequestType,
    ResponseRole, RuntimeMode, Spec, StrategyType, ToolSpec,
};
use std::collections::{BTreeMap, BTreeSet};

/// Module prefixes whose members reach the OS, processes, FFI or dynamic import directly: a
/// tool or function implementation must be a reviewed application function instead
/// (kneo-serv 1.2's list).
const DANGEROUS_PREFIXES: &[&str] = &[
    "builtins.",
    "code.",
    "codeop.",
    "ctypes.",
    "fcntl.",
    "importlib.",
    "marshal.",
    "mmap.",
    "multiprocessing.",
    "nt.",
    "os.",
    "pathlib.",
    "pdb.",
    "pickle.",
    "platform.",
    "posix.",
    "pty.",
    "runpy.",
    "shutil.",
    "signal.",
    "socket.",
    "subprocess.",
    "sys.",
    "tty.",
];

/// Bare names that are dangerous on their own (kneo-serv 1.2's list).
const DANGEROUS_SYMBOLS: &[&str] = &[
    "eval",
    "exec",
    "open",
    "compile",
    "__import__",
    "breakpoint",
];

/// Where to read about registering functions and tools; named in the fix of unknown ones.
const EXTENDING_DOC: &str = "docs/extending.md";

/// Fields a workflow-backed agent (`as_agent`) may not set: its workflow defines them.
const FIELDS_DEFINED_BY_THE_WORKFLOW: &[&str] = &[
    "model",
    "strategy",
    "runtime_preferences",
    "tools",
    "skills",
    "memory",
    "guardrails",
    "history",
    "middleware",
    "defaults",
    "policies",
];

pub(super) fn check(spec: &Spec, catalog: &dyn Catalog, out: &mut Vec<Diagnostic>) {
    for (path, agent) in agents_with_paths(spec) {
        check_agent(spec, catalog, &path, agent, out);
    }
    for (name, tool) in &spec.tools {
        check_tool(spec, catalog, name, tool, out);
    }
    for (name, server) in &spec.mcp_servers {
        check_mcp_server(name, server, out);
    }
    for (name, function) in &spec.components.functions {
        check_function(catalog, name, function, out);
    }
    for (name, human) in &spec.components.humans {
        check_human(name, human, out);
    }
}

/// Whether an implementation path reaches the OS directly.
pub(super) fn is_dangerous_import(implementation: &str) -> bool {
    DANGEROUS_SYMBOLS.contains(&implementation)
        || DANGEROUS_PREFIXES
            .iter()
            .any(|prefix| implementation.starts_with(prefix))
}

fn check_agent(
    spec: &Spec,
    catalog: &dyn Catalog,
    path: &str,
    agent: &AgentSpec,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(tools) = &agent.tools {
        let tools_path = join(path, "tools");
        let excluded: BTreeSet<&String> = tools.exclude.iter().collect();
        let conflicts: BTreeSet<&String> = tools
            .include
            .iter()
            .filter(|name| excluded.contains(name))
            .collect();
        for name in conflicts {
            out.push(
                Diagnostic::error(
                    codes::E_TOOL_CONFLICT,
                    tools_path.clone(),
                    format!("Tool '{name}' appears in both include and exclude."),
                )
                .suggest("Keep the tool in one of the two lists."),
            );
        }
        for name in &tools.include {
            if !spec.tools.contains_key(name) && !catalog.has_tool(name) {
                // Message, path and the null suggestion are kneo-serv 1.2's (golden 44).
                out.push(Diagnostic::error(
                    codes::E_TOOL_REF,
                    tools_path.clone(),
                    format!("Tool '{name}' is referenced but not defined."),
                ));
            }
        }
    }

    for skill in &agent.skills {
        if !spec.skills.contains_key(skill) {
            out.push(
                Diagnostic::error(
                    codes::E_SKILL_REF,
                    join(path, "skills"),
                    format!("Skill '{skill}' is referenced but not defined."),
                )
                .suggest(format!(
                    "Declare skills.{skill} with a 'source', or remove it from {path}.skills."
                )),
            );
        }
    }

    if let Some(workflow) = &agent.as_agent {
        let present = fields_defined_by_the_workflow(agent);
        if !present.is_empty() {
            out.push(
                Diagnostic::error(
                    codes::E_AS_AGENT_FIELDS,
                    path,
                    format!(
                        "Agent '{}' is backed by workflow '{workflow}' (as_agent); {} are defined by the workflow and not allowed on the agent.",
                        agent.name,
                        present.join(", ")
                    ),
                )
                .suggest("Remove these fields, or drop as_agent and define the agent directly."),
            );
        }
        if !spec.components.workflows.contains_key(workflow) {
            out.push(
                Diagnostic::error(
                    codes::E_AS_AGENT_UNKNOWN_WORKFLOW,
                    join(path, "as_agent"),
                    format!(
                        "Agent '{}' references workflow '{workflow}', which is not defined under components.workflows.",
                        agent.name
                    ),
                )
                .suggest(unknown_name_fix(
                    workflow,
                    spec.components.workflows.keys(),
                    "components.workflows",
                )),
            );
        }
    }

    check_runtime_preferences(path, agent, out);

    if matches!(
        agent.strategy_type(),
        StrategyType::React | StrategyType::PlanAct
    ) && agent.model.is_none()
    {
        out.push(
            Diagnostic::warning(
                codes::W_AGENT_MODEL,
                join(path, "model"),
                "Agent has a loop strategy but no explicit model.",
            )
            .suggest(
                "Add model: {provider, name}; without one the agent runs on the dummy provider.",
            ),
        );
    }
}

fn check_runtime_preferences(path: &str, agent: &AgentSpec, out: &mut Vec<Diagnostic>) {
    let Some(preferences) = &agent.runtime_preferences else {
        return;
    };
    let base = join(path, "runtime_preferences");
    let allowed = quoted_list(preferences.allowed_modes.iter().map(|mode| mode.as_str()));
    if let Some(preferred) = preferences.preferred_mode
        && !preferences.allows(preferred)
    {
        out.push(
            Diagnostic::error(
                codes::E_RUNTIME_PREFERRED_NOT_ALLOWED,
                join(&base, "preferred_mode"),
                format!("preferred_mode '{preferred}' is not in allowed_modes."),
            )
            .suggest(format!(
                "Add '{preferred}' to allowed_modes ({allowed}), or prefer one of them."
            )),
        );
    }
    if let Some(fallback) = preferences.fallback_mode
        && !preferences.allows(fallback)
    {
        out.push(
            Diagnostic::error(
                codes::E_RUNTIME_FALLBACK_NOT_ALLOWED,
                join(&base, "fallback_mode"),
                format!("fallback_mode '{fallback}' is not in allowed_modes."),
            )
            .suggest(format!(
                "Add '{fallback}' to allowed_modes ({allowed}), or fall back to one of them."
            )),
        );
    }
    if preferences.preferred_mode == Some(RuntimeMode::Native)
        && preferences.native_provider.is_none()
    {
        out.push(
            Diagnostic::warning(
                codes::W_RUNTIME_NATIVE_PROVIDER,
                join(&base, "native_provider"),
                "native preferred_mode is set without native_provider.",
            )
            .suggest("Set native_provider (openai); without it model.provider is used."),
        );
    }
    if preferences.preferred_mode == Some(RuntimeMode::Adapter) && preferences.adapter_ref.is_none()
    {
        out.push(
            Diagnostic::warning(
                codes::W_RUNTIME_ADAPTER_REF,
                join(&base, "adapter_ref"),
                "adapter preferred_mode is set without adapter_ref.",
            )
            .suggest("Set adapter_ref to the adapter factory to use."),
        );
    }
}

/// Fields set on an `as_agent` agent besides `name`, `description`, `system_prompt`.
fn fields_defined_by_the_workflow(agent: &AgentSpec) -> Vec<&'static str> {
    let present = |field: &str| match field {
        "model" => agent.model.is_some(),
        "strategy" => agent.strategy.is_some(),
        "runtime_preferences" => agent.runtime_preferences.is_some(),
        "tools" => agent.tools.is_some(),
        "skills" => !agent.skills.is_empty(),
        "memory" => agent.memory.is_some(),
        "guardrails" => agent.guardrails.as_ref().is_some_and(|g| !g.is_empty()),
        "history" => agent.history.as_ref().is_some_and(|h| !h.is_empty()),
        "middleware" => !agent.middleware.is_empty(),
        "defaults" => !agent.defaults.is_empty(),
        "policies" => agent.policies.is_some(),
        _ => false,
    };
    FIELDS_DEFINED_BY_THE_WORKFLOW
        .iter()
        .copied()
        .filter(|field| present(field))
        .collect()
}

fn check_tool(
    spec: &Spec,
    catalog: &dyn Catalog,
    name: &str,
    tool: &ToolSpec,
    out: &mut Vec<Diagnostic>,
) {
    let path = format!("tools.{name}");
    let backings: Vec<&str> = [
        ("implementation", tool.implementation.is_some()),
        ("mcp", tool.mcp.is_some()),
        ("agent", tool.agent.is_some()),
        ("command", tool.command.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(backing, _)| backing)
    .collect();
    match backings.len() {
        0 => out.push(
            Diagnostic::error(
                codes::E_TOOL_NO_BACKING,
                path.clone(),
                format!("Tool '{name}' sets none of implementation / mcp / agent / command; a tool is backed by exactly one of them."),
            )
            .suggest(
                "Add 'implementation: <registered handler>', 'mcp: {server: <mcp_servers key>}', \
                 'agent: <component agent>' or 'command: [program, args...]'.",
            ),
        ),
        1 => {}
        _ => out.push(
            Diagnostic::error(
                codes::E_TOOL_MULTIPLE_BACKINGS,
                path.clone(),
                format!(
                    "Tool '{name}' sets {}; a tool is backed by exactly one of implementation / mcp / agent / command.",
                    backings.join(", ")
                ),
            )
            .suggest("Keep only one backing on the tool."),
        ),
    }

    if let Some(implementation) = &tool.implementation {
        let field = join(&path, "implementation");
        if is_dangerous_import(implementation) {
            out.push(dangerous_import(
                codes::E_UNSAFE_TOOL_IMPORT,
                field,
                format!("Tool '{name}' uses a risky implementation import."),
            ));
        } else if !catalog.has_tool(implementation) && !catalog.has_function(implementation) {
            out.push(
                Diagnostic::error(
                    codes::E_TOOL_IMPLEMENTATION_UNKNOWN,
                    field,
                    format!("Tool '{name}' uses implementation '{implementation}', which this server has not registered."),
                )
                .suggest(format!(
                    "Register a handler under that name (see {EXTENDING_DOC}), or back the tool with \
                     'command: [program, args...]' (JSON on stdin and stdout)."
                )),
            );
        }
    }

    if let Some(mcp) = &tool.mcp
        && !spec.mcp_servers.contains_key(&mcp.server)
    {
        out.push(
            Diagnostic::error(
                codes::E_MCP_UNKNOWN_SERVER,
                format!("{path}.mcp.server"),
                format!(
                    "MCP tool '{name}' references server '{}', which is not defined under mcp_servers.",
                    mcp.server
                ),
            )
            .suggest(unknown_name_fix(
                &mcp.server,
                spec.mcp_servers.keys(),
                "mcp_servers",
            )),
        );
    }

    if let Some(agent) = &tool.agent {
        if spec.resolve_agent(agent).is_none() {
            out.push(
                Diagnostic::error(
                    codes::E_AGENT_TOOL_UNKNOWN_AGENT,
                    join(&path, "agent"),
                    format!(
                        "Tool '{name}' references agent '{agent}', which is not defined under components.agents."
                    ),
                )
                .suggest(unknown_name_fix(
                    agent,
                    spec.components.agents.keys(),
                    "components.agents",
                )),
            );
        }
        if tool.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            out.push(
                Diagnostic::warning(
                    codes::W_AGENT_TOOL_PARAMETERS_IGNORED,
                    join(&path, "parameters"),
                    format!(
                        "Tool '{name}' is agent-backed; its declared parameters are ignored — an agent-as-tool's input schema is fixed to a single 'input' string."
                    ),
                )
                .suggest("Remove parameters from the agent-backed tool."),
            );
        }
    }

    check_command(tool.command.as_ref(), &tool.env, &path, out);
}

fn check_command(
    command: Option<&CommandSpec>,
    env: &BTreeMap<String, String>,
    path: &str,
    out: &mut Vec<Diagnostic>,
) {
    match command {
        Some(command)
            if command
                .argv()
                .first()
                .is_none_or(|program| program.trim().is_empty()) =>
        {
            out.push(
                Diagnostic::error(
                    codes::E_COMMAND_EMPTY,
                    join(path, "command"),
                    format!("{path}.command names no program."),
                )
                .suggest("Write command: [program, args...] with the program first."),
            );
        }
        Some(_) => {}
        None if !env.is_empty() => out.push(
            Diagnostic::warning(
                codes::W_ENV_WITHOUT_COMMAND,
                join(path, "env"),
                format!("{path}.env is set but there is no 'command' to run with it."),
            )
            .suggest("Remove 'env', or back this with a 'command'."),
        ),
        None => {}
    }
}

fn check_mcp_server(name: &str, server: &McpServerSpec, out: &mut Vec<Diagnostic>) {
    let path = format!("mcp_servers.{name}");
    let transport = server.transport.as_str();
    let (required, present) = match server.transport {
        McpTransport::Stdio => ("command", server.command.is_some()),
        McpTransport::Http => ("url", server.url.is_some()),
        McpTransport::Sse => ("sse_url", server.sse_url.is_some()),
    };
    if !present {
        out.push(
            Diagnostic::error(
                codes::E_MCP_MISSING_FIELD,
                join(&path, required),
                format!("MCP server '{name}' (transport '{transport}') requires '{required}'."),
            )
            .suggest(format!("Set '{required}' on the '{transport}' MCP server.")),
        );
    }
    let stdio = server.transport == McpTransport::Stdio;
    let unread: Vec<&str> = [
        ("command", !stdio && server.command.is_some()),
        ("args", !stdio && !server.args.is_empty()),
        ("env", !stdio && !server.env.is_empty()),
        ("cwd", !stdio && server.cwd.is_some()),
        (
            "url",
            server.transport != McpTransport::Http && server.url.is_some(),
        ),
        (
            "sse_url",
            server.transport != McpTransport::Sse && server.sse_url.is_some(),
        ),
        (
            "message_url",
            server.transport != McpTransport::Sse && server.message_url.is_some(),
        ),
        ("headers", stdio && !server.headers.is_empty()),
        (
            "sse_read_timeout",
            stdio && server.sse_read_timeout.is_some(),
        ),
        ("verify", stdio && server.verify.is_some()),
        ("ca_bundle", stdio && server.ca_bundle.is_some()),
        ("client_cert", stdio && server.client_cert.is_some()),
        ("client_key", stdio && server.client_key.is_some()),
        ("client_key_ref", stdio && server.client_key_ref.is_some()),
    ]
    .into_iter()
    .filter(|(_, unread)| *unread)
    .map(|(field, _)| field)
    .collect();
    for field in unread {
        out.push(
            Diagnostic::warning(
                codes::W_MCP_FIELD_IGNORED,
                join(&path, field),
                format!("MCP server '{name}' uses transport '{transport}', which does not read '{field}'."),
            )
            .suggest(format!("Remove '{field}', or change the transport.")),
        );
    }
}

fn check_function(
    catalog: &dyn Catalog,
    name: &str,
    function: &FunctionSpec,
    out: &mut Vec<Diagnostic>,
) {
    let path = format!("components.functions.{name}");
    match (&function.implementation, &function.command) {
        (Some(_), Some(_)) => out.push(
            Diagnostic::error(
                codes::E_FUNCTION_MULTIPLE_BACKINGS,
                path.clone(),
                format!("Function '{name}' has both 'implementation' and 'command'; it must have exactly one."),
            )
            .suggest("Keep one of them."),
        ),
        (None, None) => out.push(
            Diagnostic::error(
                codes::E_FUNCTION_NO_BACKING,
                path.clone(),
                format!("Function '{name}' has neither 'implementation' nor 'command'."),
            )
            .suggest("Add 'implementation: <registered function>' or 'command: [program, args...]'."),
        ),
        (Some(implementation), None) => {
            let field = join(&path, "implementation");
            if is_dangerous_import(implementation) {
                out.push(dangerous_import(
                    codes::E_UNSAFE_FUNCTION_IMPORT,
                    field,
                    format!("Function component '{name}' uses a risky implementation import."),
                ));
            } else if !catalog.has_function(implementation) {
                out.push(
                    Diagnostic::error(
                        codes::E_FUNCTION_UNKNOWN,
                        field,
                        format!(
                            "Function '{name}' uses implementation '{implementation}', which this server has not registered."
                        ),
                    )
                    .suggest(format!(
                        "Register the function with the server's function registry (see {EXTENDING_DOC}), or run it as \
                         an external program with 'command: [program, args...]' (JSON on stdin and stdout)."
                    )),
                );
            }
        }
        (None, Some(_)) => {}
    }
    check_command(function.command.as_ref(), &function.env, &path, out);
}

fn check_human(name: &str, human: &HumanSpec, out: &mut Vec<Diagnostic>) {
    let path = format!("components.humans.{name}");
    if let Some(default) = &human.default_option
        && !human.options.contains(default)
    {
        out.push(
            Diagnostic::error(
                codes::E_HUMAN_DEFAULT_OPTION_NOT_IN_OPTIONS,
                join(&path, "default_option"),
                format!(
                    "Human component '{name}' default_option '{default}' is not one of its options."
                ),
            )
            .suggest(match closest_match(default, &strs(&human.options)) {
                Some(candidate) => format!("Did you mean '{candidate}'?"),
                None => "Set default_option to one of the listed options, or remove it.".to_owned(),
            }),
        );
    }
    if human.request_type == RequestType::Selection && human.options.is_empty() {
        out.push(
            Diagnostic::error(
                codes::E_HUMAN_SELECTION_REQUIRES_OPTIONS,
                join(&path, "options"),
                format!("Human component '{name}' uses request_type 'selection' without any options to select from."),
            )
            .suggest("Provide a non-empty options list for a selection request."),
        );
    }
    let mut seen = BTreeSet::new();
    for (position, option) in human.options.iter().enumerate() {
        if !seen.insert(option) {
            out.push(
                Diagnostic::error(
                    codes::E_HUMAN_OPTIONS_DUPLICATE,
                    format!("{path}.options[{position}]"),
                    format!("Option '{option}' of human task '{name}' is listed more than once."),
                )
                .suggest("List each option once."),
            );
        }
    }
    if human.response_role == Some(ResponseRole::System) {
        out.push(
            Diagnostic::warning(
                codes::W_HUMAN_RESPONSE_ROLE_SYSTEM,
                join(&path, "response_role"),
                format!(
                    "Human component '{name}' folds the reviewer's reply into the resumed thread as a 'system' message, so reviewer-supplied text becomes a system-level instruction to later model steps."
                ),
            )
            .suggest("Use response_role 'user' (or 'assistant') unless reviewer input is meant to act as a system directive."),
        );
    }
}

fn dangerous_import(code: &str, path: String, message: String) -> Diagnostic {
    Diagnostic::error(code, path, message).suggest(
        "Reference an application function module instead of direct system, process, or import primitives.",
    )
}

/// "Did you mean" for a dangling name, or the list of what exists.
pub(super) fn unknown_name_fix<'k>(
    name: &str,
    known: impl Iterator<Item = &'k String>,
    map: &str,
) -> String {
    let known: Vec<&str> = known.map(String::as_str).collect();
    match closest_match(name, &known) {
        Some(candidate) => format!("Did you mean '{candidate}'?"),
        None if known.is_empty() => format!("Define '{name}' under {map}."),
        None => format!(
            "Define '{name}' under {map}, or use one of {}.",
            quoted_list(&known)
        ),
    }
}

fn strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}
