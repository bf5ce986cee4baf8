//! Governance warnings: tool capabilities, MCP transport security, tool permission policies and
//! human approval. None of them makes a spec invalid; environment policies can promote them.

use super::components::is_risky_import;
use super::{agents_with_paths, codes};
use crate::spec::diagnostic::{Diagnostic, join};
use crate::spec::model::{Spec, ToolSelection};

pub(super) fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    for (name, tool) in &spec.tools {
        let path = format!("tools.{name}");
        if tool.network && tool.allowed_domains.is_empty() {
            out.push(
                Diagnostic::warning(
                    codes::W_TOOL_NETWORK_UNRESTRICTED,
                    join(&path, "allowed_domains"),
                    format!("Network tool '{name}' may reach any host: it has no allowed_domains."),
                )
                .suggest("List the hosts it needs in allowed_domains."),
            );
        }
        if tool.shell {
            out.push(
                Diagnostic::warning(
                    codes::W_TOOL_SHELL,
                    join(&path, "shell"),
                    format!("Tool '{name}' can run shell commands."),
                )
                .suggest("Prefer a narrow handler; if a shell is required, gate the tool behind a human step."),
            );
        }
        if tool.filesystem_write {
            out.push(
                Diagnostic::warning(
                    codes::W_TOOL_FILESYSTEM_WRITE,
                    join(&path, "filesystem_write"),
                    format!("Tool '{name}' can write to the filesystem."),
                )
                .suggest("Restrict it to a dedicated directory, or gate it behind a human step."),
            );
        }
    }

    for (name, server) in &spec.mcp_servers {
        let path = format!("mcp_servers.{name}");
        if server.verify == Some(false) {
            out.push(
                Diagnostic::warning(
                    codes::W_MCP_TLS_VERIFY_DISABLED,
                    join(&path, "verify"),
                    format!("MCP server '{name}' has TLS certificate verification turned off."),
                )
                .suggest("Remove 'verify: false'; point ca_bundle at the server's CA instead."),
            );
        }
        if server.client_key.is_some() {
            out.push(
                Diagnostic::warning(
                    codes::W_MCP_INLINE_CLIENT_KEY,
                    join(&path, "client_key"),
                    format!("MCP server '{name}' has an inline client_key, which is stored unredacted in run metadata."),
                )
                .suggest("Use client_key_ref to name a secret resolved from the environment."),
            );
        }
    }

    for (path, agent) in agents_with_paths(spec) {
        let Some(selection) = &agent.tools else {
            continue;
        };
        let restricted = selection.permissions().is_some()
            || agent
                .policies
                .as_ref()
                .is_some_and(|policies| policies.tool.is_some());
        if selection.names().is_empty() || restricted {
            continue;
        }
        // Message and suggestion of the long form are kneo-serv 1.2's (golden 44).
        let diagnostic = match selection {
            ToolSelection::Long(_) => Diagnostic::warning(
                codes::W_TOOL_POLICY_UNRESTRICTED,
                format!("{path}.tools.permissions"),
                "Agent tool selection has no explicit permissions policy.",
            )
            .suggest("Declare permissions even when all privileged capabilities are disabled."),
            ToolSelection::Short(_) => Diagnostic::warning(
                codes::W_TOOL_POLICY_UNRESTRICTED,
                format!("{path}.tools"),
                "Agent tool selection uses the short form, which cannot declare permissions.",
            )
            .suggest("Write tools: {include: [...], permissions: {...}}, or add policies.tool."),
        };
        out.push(diagnostic);
    }

    let exposes_tools = agents_with_paths(spec)
        .iter()
        .any(|(_, agent)| !agent.tool_names().is_empty());
    let risky_imports = spec
        .tools
        .values()
        .filter_map(|tool| tool.implementation.as_deref())
        .chain(
            spec.components
                .functions
                .values()
                .filter_map(|function| function.implementation.as_deref()),
        )
        .any(is_risky_import);
    let has_human_step = spec
        .workflow
        .as_ref()
        .is_some_and(|workflow| workflow.has_human_step());
    if (exposes_tools || risky_imports) && !has_human_step {
        // Text is kneo-serv 1.2's (golden 44).
        out.push(
            Diagnostic::warning(
                codes::W_HUMAN_APPROVAL_MISSING,
                "workflow",
                "Spec exposes privileged tools or risky imports without a human approval step.",
            )
            .suggest(
                "Add a human workflow step before deployment or document why the spec is exempt.",
            ),
        );
    }
}
