//! Governance warnings, as kneo-serv 1.2 raises them: tool selections without permissions,
//! privileged permissions, MCP transport security, and human approval when a spec exposes a
//! privileged surface. None of them makes a spec invalid; environment policies can promote them.

use super::components::is_dangerous_import;
use super::{agents_with_paths, codes};
use crate::spec::diagnostic::{Diagnostic, join};
use crate::spec::model::{McpTransport, Spec, ToolPermissions};

pub(super) fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let mut privileged = spec
        .tools
        .values()
        .filter_map(|tool| tool.implementation.as_deref())
        .chain(
            spec.components
                .functions
                .values()
                .filter_map(|function| function.implementation.as_deref()),
        )
        .any(is_dangerous_import);

    for (path, agent) in agents_with_paths(spec) {
        let Some(selection) = &agent.tools else {
            continue;
        };
        let kneo_policy = agent
            .policies
            .as_ref()
            .and_then(|policies| policies.tool.as_ref());
        let declared = selection
            .permissions()
            .map(|permissions| (permissions, format!("{path}.tools.permissions")))
            .or_else(|| kneo_policy.map(|policy| (policy, format!("{path}.policies.tool"))));
        let Some((permissions, permissions_path)) = declared else {
            // Message and suggestion are kneo-serv 1.2's (golden 44).
            out.push(
                Diagnostic::warning(
                    codes::W_TOOL_POLICY_UNRESTRICTED,
                    format!("{path}.tools.permissions"),
                    "Agent tool selection has no explicit permissions policy.",
                )
                .suggest("Declare permissions even when all privileged capabilities are disabled."),
            );
            privileged = true;
            continue;
        };
        privileged |= permission_warnings(permissions, &permissions_path, out);
    }

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
            privileged = true;
        }
        if tool.shell {
            out.push(
                Diagnostic::warning(
                    codes::W_TOOL_SHELL_ALLOWED,
                    join(&path, "shell"),
                    format!("Tool '{name}' can run shell commands."),
                )
                .suggest("Require review and human approval for shell-capable workflows."),
            );
            privileged = true;
        }
        if tool.filesystem_write {
            out.push(
                Diagnostic::warning(
                    codes::W_TOOL_FILESYSTEM_WRITE_ALLOWED,
                    join(&path, "filesystem_write"),
                    format!("Tool '{name}' can write to the filesystem."),
                )
                .suggest("Require review and human approval for write-capable workflows."),
            );
            privileged = true;
        }
    }

    for (name, server) in &spec.mcp_servers {
        let path = format!("mcp_servers.{name}");
        if server.transport != McpTransport::Stdio && server.verify == Some(false) {
            out.push(
                Diagnostic::warning(
                    codes::W_MCP_TLS_VERIFY_DISABLED,
                    join(&path, "verify"),
                    format!("MCP server '{name}' sets verify: false, disabling TLS certificate verification — the connection is exposed to man-in-the-middle attacks."),
                )
                .suggest("Remove verify: false, or set ca_bundle to trust a private CA."),
            );
        }
        if server
            .client_key
            .as_deref()
            .is_some_and(|key| key.contains("-----BEGIN"))
        {
            out.push(
                Diagnostic::warning(
                    codes::W_MCP_INLINE_CLIENT_KEY,
                    join(&path, "client_key"),
                    format!("MCP server '{name}' has an inline client key, which is stored unredacted with every run's spec."),
                )
                .suggest("Use client_key_ref to name an environment variable that holds the key, or point client_key at a key file."),
            );
        }
    }

    let has_human_step = spec
        .workflow
        .iter()
        .chain(spec.components.workflows.values())
        .any(|workflow| workflow.has_human_step());
    if privileged && !has_human_step {
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

/// The warnings privileged permissions raise; `true` when any was raised.
fn permission_warnings(
    permissions: &ToolPermissions,
    path: &str,
    out: &mut Vec<Diagnostic>,
) -> bool {
    let mut raised = false;
    if permissions.allow_network == Some(true) && permissions.allowed_domains.is_empty() {
        out.push(
            Diagnostic::warning(
                codes::W_TOOL_NETWORK_UNRESTRICTED,
                join(path, "allowed_domains"),
                "Agent allows network tool access without an allowed_domains list.",
            )
            .suggest("Restrict network tools to approved domains."),
        );
        raised = true;
    }
    let flags = [
        (
            permissions.allow_shell,
            codes::W_TOOL_SHELL_ALLOWED,
            "allow_shell",
            "Agent allows shell-capable tools.",
            "Require review and human approval for shell-capable workflows.",
        ),
        (
            permissions.allow_filesystem_write,
            codes::W_TOOL_FILESYSTEM_WRITE_ALLOWED,
            "allow_filesystem_write",
            "Agent allows filesystem write access.",
            "Require review and human approval for write-capable workflows.",
        ),
        (
            permissions.allow_filesystem_read,
            codes::W_TOOL_FILESYSTEM_READ_ALLOWED,
            "allow_filesystem_read",
            "Agent allows filesystem read access.",
            "Require review and human approval for read-capable workflows.",
        ),
    ];
    for (flag, code, field, message, fix) in flags {
        if flag == Some(true) {
            out.push(Diagnostic::warning(code, join(path, field), message).suggest(fix));
            raised = true;
        }
    }
    raised
}
