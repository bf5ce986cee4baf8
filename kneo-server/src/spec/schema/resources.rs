//! Reading the named resources: tools, MCP servers, functions, humans and skills.

use super::{Expected, Object, Reader, get};
use crate::spec::diagnostic::{Diagnostic, join};
use crate::spec::keys;
use crate::spec::model::{
    CommandSpec, FunctionSpec, HumanSpec, McpServerSpec, McpToolRef, SkillSpec, ToolSpec,
};
use crate::spec::validate::codes;
use serde_json::Value;

impl Reader {
    fn command(&mut self, map: &Object, path: &str) -> Option<CommandSpec> {
        let field = join(path, "command");
        match get(map, "command")? {
            Value::String(line) => Some(CommandSpec::Line(line.clone())),
            Value::Array(items) => {
                let items: Vec<&Value> = items.iter().collect();
                Some(CommandSpec::Argv(self.strings_of(&items, &field)))
            }
            other => {
                self.wrong_type(&field, other, Expected::Command);
                None
            }
        }
    }

    pub(super) fn tool(&mut self, value: &Value, path: &str) -> Option<ToolSpec> {
        let map = self.mapping(value, path, &keys::TOOL)?;
        Some(ToolSpec {
            description: self.string(map, path, "description"),
            parameters: self.open_mapping(map, path, "parameters").cloned(),
            implementation: self.string(map, path, "implementation"),
            mcp: get(map, "mcp").and_then(|mcp| self.mcp_ref(mcp, &join(path, "mcp"), path)),
            agent: self.string(map, path, "agent"),
            command: self.command(map, path),
            env: self.string_map(map, path, "env"),
            allowed_domains: self.string_list(map, path, "allowed_domains"),
            network: self.boolean(map, path, "network").unwrap_or(false),
            shell: self.boolean(map, path, "shell").unwrap_or(false),
            filesystem_write: self.boolean(map, path, "filesystem_write").unwrap_or(false),
        })
    }

    fn mcp_ref(&mut self, value: &Value, path: &str, tool_path: &str) -> Option<McpToolRef> {
        let map = self.mapping(value, path, &keys::MCP_REF)?;
        let name = self.string(map, path, "name");
        let Some(server) = self.string(map, path, "server").filter(|s| !s.is_empty()) else {
            let tool = tool_path.rsplit('.').next().unwrap_or(tool_path);
            self.diagnostics.push(
                Diagnostic::error(
                    codes::E_MCP_TOOL_NO_SERVER,
                    path,
                    format!(
                        "MCP tool '{tool}' must set mcp.server to a declared mcp_servers entry."
                    ),
                )
                .suggest("Add mcp: {server: <name>, name?: <remote-tool>}."),
            );
            return None;
        };
        Some(McpToolRef { server, name })
    }

    pub(super) fn function(&mut self, value: &Value, path: &str) -> Option<FunctionSpec> {
        let map = self.mapping(value, path, &keys::FUNCTION)?;
        Some(FunctionSpec {
            implementation: self.string(map, path, "implementation"),
            command: self.command(map, path),
            env: self.string_map(map, path, "env"),
            input_schema: self.open_mapping(map, path, "input_schema").cloned(),
            output_schema: self.open_mapping(map, path, "output_schema").cloned(),
        })
    }

    pub(super) fn human(&mut self, value: &Value, path: &str) -> Option<HumanSpec> {
        let map = self.mapping(value, path, &keys::HUMAN)?;
        Some(HumanSpec {
            description: self.string(map, path, "description"),
            assignee: self.string(map, path, "assignee"),
            timeout_seconds: self.positive_u64(
                map,
                path,
                "timeout_seconds",
                codes::E_HUMAN_TIMEOUT_INVALID,
                "Set timeout_seconds to a positive number of seconds, or remove it for no deadline.",
            ),
            on_timeout: self.enumeration(map, path, "on_timeout").unwrap_or_default(),
            request_type: self.enumeration(map, path, "request_type").unwrap_or_default(),
            options: self.string_list(map, path, "options"),
            default_option: self.string(map, path, "default_option"),
            context: self.open_mapping(map, path, "context").cloned().unwrap_or_default(),
            response_role: self.enumeration(map, path, "response_role"),
        })
    }

    pub(super) fn mcp_server(&mut self, value: &Value, path: &str) -> Option<McpServerSpec> {
        let map = self.mapping(value, path, &keys::MCP_SERVER)?;
        let timeout_fix = "Use a positive number of seconds, or remove it for the default.";
        let label = "MCP server path";
        Some(McpServerSpec {
            transport: self.required_enumeration(map, path, "transport"),
            command: self.string(map, path, "command"),
            args: self.string_list(map, path, "args"),
            env: self.string_map(map, path, "env"),
            cwd: self.confined_path(map, path, "cwd", label),
            url: self.string(map, path, "url"),
            headers: self.string_map(map, path, "headers"),
            timeout: self.positive_number(map, path, "timeout", codes::E_VALUE_RANGE, timeout_fix),
            sse_url: self.string(map, path, "sse_url"),
            message_url: self.string(map, path, "message_url"),
            sse_read_timeout: self.positive_number(
                map,
                path,
                "sse_read_timeout",
                codes::E_VALUE_RANGE,
                timeout_fix,
            ),
            max_response_bytes: self.positive_u64(
                map,
                path,
                "max_response_bytes",
                codes::E_VALUE_RANGE,
                "Use a positive byte count such as 1048576.",
            ),
            verify: self.boolean(map, path, "verify"),
            ca_bundle: self.confined_path(map, path, "ca_bundle", label),
            client_cert: self.confined_path(map, path, "client_cert", label),
            client_key: self.confined_path(map, path, "client_key", label),
            client_key_ref: self.string(map, path, "client_key_ref"),
        })
    }

    pub(super) fn skill(&mut self, value: &Value, path: &str) -> Option<SkillSpec> {
        let map = self.mapping(value, path, &keys::SKILL)?;
        let source = if get(map, "source").is_none() {
            self.missing(path, "source", Expected::String);
            String::new()
        } else {
            self.confined_path(map, path, "source", "skill source")
                .unwrap_or_default()
        };
        Some(SkillSpec {
            source,
            description: self.string(map, path, "description"),
        })
    }
}
