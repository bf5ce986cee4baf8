//! Reference and consistency checks on the named building blocks: agents, tools, MCP servers,
//! functions and human tasks.

use super::codes;
use super::{Catalog, agents_with_paths};
use crate::spec::diagnostic::{Diagnostic, closest_match, join, quoted_list};
use crate::spec::model::{
    AgentSpec, CommandSpec, FunctionSpec, HumanSpec, McpServerSpec, McpTransport, RequestType,
    Spec, ToolSpec,
};
use std::collections::BTreeSet;

/// Modules whose primitives a tool or function may not wrap directly (upstream's
/// `E_UNSAFE_*_IMPORT` list).
const RISKY_MODULES: &[&str] = &[
    "os",
    "subprocess",
    "shutil",
    "socket",
    "importlib",
    "builtins",
];

/// Where to read about registering functions and tools; named in the fix of unknown ones.
const EXTENDING_DOC: &str = "docs/extending.md";

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

/// Whether an implementation path lives in a module that gives direct OS access.
pub(super) fn is_risky_import(implementation: &str) -> bool {
    let module = implementation.split('.').next().unwrap_or_default();
    RISKY_MODULES.contains(&module)
}

fn check_agent(
    spec: &Spec,
    catalog: &dyn Catalog,
    path: &str,
    agent: &AgentSpec,
    out: &mut Vec<Diagnostic>,
) {
    for name in agent.tool_names() {
        if !spec.tools.contains_key(name) && !catalog.has_tool(name) {
            // Message, path and the null suggestion are kneo-serv 1.2's (golden 44).
            out.push(Diagnostic::error(
                codes::E_TOOL_REF,
                join(path, "tools"),
                format!("Tool '{name}' is referenced but not defined."),
            ));
        }
    }

    for (position, skill) in agent.skills.iter().enumerate() {
        if !spec.skills.contains_key(skill) {
            out.push(
                Diagnostic::error(
                    codes::E_SKILL_UNKNOWN,
                    format!("{path}.skills[{position}]"),
                    format!("Skill '{skill}' is not declared in the top-level 'skills'."),
                )
                .suggest(format!(
                    "Declare skills.{skill} with a 'source', or remove it from {path}.skills."
                )),
            );
        }
    }

    if let Some(workflow) = &agent.as_agent {
        if !spec.components.workflows.contains_key(workflow) {
            out.push(
                Diagnostic::error(
                    codes::E_AS_AGENT_UNKNOWN,
                    join(path, "as_agent"),
                    format!("Agent '{}' is workflow '{workflow}', which is not in components.workflows.", agent.name),
                )
                .suggest(unknown_name_fix(workflow, spec.components.workflows.keys(), "components.workflows")),
            );
        }
        for field in fields_forbidden_with_as_agent(agent) {
            out.push(
                Diagnostic::error(
                    codes::E_AS_AGENT_FIELD_FORBIDDEN,
                    join(path, field),
                    format!(
                        "Agent '{}' is defined by workflow '{workflow}' (as_agent), so it cannot also set '{field}'.",
                        agent.name
                    ),
                )
                .suggest("Remove it; only 'name', 'description' and 'system_prompt' may accompany 'as_agent'."),
            );
        }
    }

    if let Some(preferences) = &agent.runtime_preferences
        && let Some(preferred) = preferences.preferred_mode
        && !preferences.allowed_modes.is_empty()
        && !preferences.allowed_modes.contains(&preferred)
    {
        out.push(
            Diagnostic::error(
                codes::E_RUNTIME_MODE_NOT_ALLOWED,
                format!("{path}.runtime_preferences.preferred_mode"),
                format!(
                    "preferred_mode '{}' is not among the allowed_modes of agent '{}'.",
                    preferred.as_str(),
                    agent.name
                ),
            )
            .suggest("Add it to allowed_modes or pick one of the allowed modes."),
        );
    }
}

/// Fields set on an `as_agent` agent besides `name`, `description`, `system_prompt`.
fn fields_forbidden_with_as_agent(agent: &AgentSpec) -> Vec<&'static str> {
    let set = [
        ("model", agent.model.is_some()),
        ("strategy", agent.strategy.is_some()),
        ("runtime_preferences", agent.runtime_preferences.is_some()),
        ("tools", agent.tools.is_some()),
        ("skills", !agent.skills.is_empty()),
        ("guardrails", agent.guardrails.is_some()),
        ("policies", agent.policies.is_some()),
        ("memory", agent.memory.is_some()),
        ("middleware", agent.middleware.is_some()),
    ];
    set.into_iter()
        .filter(|(_, present)| *present)
        .map(|(field, _)| field)
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
                format!("Tool '{name}' has no backing: it needs one of 'implementation', 'mcp', 'agent' or 'command'."),
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
                    "Tool '{name}' has more than one backing ({}); a tool must have exactly one.",
                    quoted_list(&backings)
                ),
            )
            .suggest("Keep one backing and remove the others."),
        ),
    }

    if let Some(implementation) = &tool.implementation {
        let field = join(&path, "implementation");
        if is_risky_import(implementation) {
            out.push(risky_import(
                codes::E_UNSAFE_TOOL_IMPORT,
                field,
                "Tool",
                name,
                implementation,
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
                codes::E_MCP_SERVER_UNKNOWN,
                format!("{path}.mcp.server"),
                format!(
                    "Tool '{name}' uses MCP server '{}', which is not in mcp_servers.",
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

    if let Some(agent) = &tool.agent
        && spec.resolve_agent(agent).is_none()
    {
        out.push(
            Diagnostic::error(
                codes::E_TOOL_AGENT_UNKNOWN,
                join(&path, "agent"),
                format!("Tool '{name}' wraps agent '{agent}', which is not in components.agents."),
            )
            .suggest(unknown_name_fix(
                agent,
                spec.components.agents.keys(),
                "components.agents",
            )),
        );
    }

    check_command(tool.command.as_ref(), &tool.env, &path, out);
}

fn check_command(
    command: Option<&CommandSpec>,
    env: &std::collections::BTreeMap<String, String>,
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
    let (field, present) = match server.transport {
        McpTransport::Stdio => ("command", server.command.is_some()),
        McpTransport::Http => ("url", server.url.is_some()),
        McpTransport::Sse => ("sse_url", server.sse_url.is_some()),
    };
    if !present {
        let transport = server.transport.as_str();
        out.push(
            Diagnostic::error(
                codes::E_MCP_TRANSPORT_FIELDS,
                format!("mcp_servers.{name}.{field}"),
                format!("MCP server '{name}' uses transport '{transport}' but has no '{field}'."),
            )
            .suggest(format!(
                "Add '{field}' to mcp_servers.{name}; transport '{transport}' needs it to connect."
            )),
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
            if is_risky_import(implementation) {
                out.push(risky_import(codes::E_UNSAFE_FUNCTION_IMPORT, field, "Function", name, implementation));
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
    if human.request_type == RequestType::Selection && human.options.is_empty() {
        out.push(
            Diagnostic::error(
                codes::E_HUMAN_OPTIONS_REQUIRED,
                join(&path, "options"),
                format!("Human task '{name}' has request_type 'selection' but no options to choose from."),
            )
            .suggest("Add options: [choice, ...], or use another request_type."),
        );
    }
    if let Some(default) = &human.default_option
        && !human.options.contains(default)
    {
        out.push(
            Diagnostic::error(
                codes::E_HUMAN_DEFAULT_OPTION_UNKNOWN,
                join(&path, "default_option"),
                format!(
                    "default_option '{default}' of human task '{name}' is not one of its options."
                ),
            )
            .suggest(match closest_match(default, &strs(&human.options)) {
                Some(candidate) => format!("Did you mean '{candidate}'?"),
                None => format!(
                    "Use one of {}, or add '{default}' to options.",
                    quoted_list(&human.options)
                ),
            }),
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
}

fn risky_import(
    code: &str,
    path: String,
    what: &str,
    name: &str,
    implementation: &str,
) -> Diagnostic {
    Diagnostic::error(
        code,
        path,
        format!(
            "{what} '{name}' uses implementation '{implementation}', which calls a risky module ({}) directly.",
            quoted_list(RISKY_MODULES)
        ),
    )
    .suggest("Wrap the operation in a reviewed, registered handler instead of exposing the module directly.")
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
