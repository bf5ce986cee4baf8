//! Tools agents call: the tool registry (handlers registered in code, the extension point of
//! `docs/extending.md`), and the compiled form of a spec's tool with its backing.
//!
//! A tool's failure comes in two kinds: [`ToolError::Failed`] is the tool's own answer ("no
//! such account") and goes back to the model as the call's result; [`ToolError::Unavailable`]
//! means the tool could not be reached at all (an MCP server that died or went silent) and fails
//! the step, so its `on_error` policy applies.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::command::CommandPlan;
use super::functions::StepFunction;
use super::mcp::{McpServerPlan, McpSessions};
use super::plan::AgentPlan;
use super::providers::ToolDefinition;

/// Why a tool call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The tool ran and reported an error; the model sees it as the result.
    #[error("{0}")]
    Failed(String),
    /// The tool could not be reached; the step fails.
    #[error("{0}")]
    Unavailable(String),
}

/// A tool implemented in Rust: JSON arguments in, text out.
#[async_trait]
pub trait ToolHandler: Send + Sync {
    async fn call(&self, arguments: Value) -> Result<String, ToolError>;
}

/// A plain synchronous tool.
pub type ToolFn = fn(&Value) -> Result<String, String>;

struct PlainTool(ToolFn);

#[async_trait]
impl ToolHandler for PlainTool {
    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        (self.0)(&arguments).map_err(ToolError::Failed)
    }
}

/// A registered tool.
#[derive(Clone)]
pub struct RegisteredTool {
    pub definition: ToolDefinition,
    pub handler: Arc<dyn ToolHandler>,
}

/// Tools registered in code, by name. A spec uses one by selecting its name in
/// `agent.tools`, or by naming it as a declared tool's `implementation`.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, RegisteredTool>,
}

/// `{type: object, properties: {text: {type: string}}, required: [text]}`.
fn text_parameters(description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {"text": {"type": "string", "description": description}},
        "required": ["text"],
    })
}

fn text_argument(arguments: &Value) -> Result<&str, String> {
    arguments
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("expected arguments {{\"text\": \"...\"}}, got {arguments}"))
}

impl ToolRegistry {
    /// Registers `handler` under `definition.name` (replacing an earlier registration).
    pub fn register(&mut self, definition: ToolDefinition, handler: Arc<dyn ToolHandler>) {
        self.tools.insert(
            definition.name.clone(),
            RegisteredTool {
                definition,
                handler,
            },
        );
    }

    /// Registers a plain synchronous tool.
    pub fn register_fn(
        &mut self,
        name: &str,
        description: &str,
        parameters: Value,
        function: ToolFn,
    ) {
        self.register(
            ToolDefinition {
                name: name.into(),
                description: description.into(),
                parameters,
            },
            Arc::new(PlainTool(function)),
        );
    }

    pub fn get(&self, name: &str) -> Option<&RegisteredTool> {
        self.tools.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    /// The registry with kneo's built-in and example tools.
    pub fn with_builtins() -> ToolRegistry {
        let mut registry = ToolRegistry::default();
        registry.register_fn(
            "word_count",
            "Counts the words of a text.",
            text_parameters("The text to count."),
            |arguments| {
                Ok(text_argument(arguments)?
                    .split_whitespace()
                    .count()
                    .to_string())
            },
        );
        registry.register_fn(
            "shout",
            "Returns the text in upper case.",
            text_parameters("The text to shout."),
            |arguments| Ok(text_argument(arguments)?.to_uppercase()),
        );
        registry.register_fn(
            "examples.app_functions.web_search",
            "Searches the web (example: answers with the query).",
            json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
            |arguments| {
                let query = arguments.get("query").and_then(Value::as_str).unwrap_or_default();
                Ok(format!("Search result for: {query}"))
            },
        );
        registry.register_fn(
            "examples.app_functions.lookup_account",
            "Looks an account up (example: returns a record with an SSN, to show tool-stage redaction).",
            json!({"type": "object", "properties": {"account_id": {"type": "string"}}}),
            |arguments| {
                let account = arguments.get("account_id").and_then(Value::as_str).unwrap_or("unknown");
                Ok(format!("Account {account}: status=active SSN=123-45-6789"))
            },
        );
        super::golden_helpers::register_tools(&mut registry);
        registry
    }
}

/// What backs a compiled tool.
#[derive(Clone)]
pub enum ToolBacking {
    /// A handler from the [`ToolRegistry`].
    Handler(Arc<dyn ToolHandler>),
    /// A registered step function: it receives the `text` argument (or the arguments as JSON).
    Function(Arc<dyn StepFunction>),
    /// A remote tool on an MCP server.
    Mcp {
        server: Arc<McpServerPlan>,
        remote_name: String,
        sessions: McpSessions,
    },
    /// Agent-as-tool: the component agent answers the `input` (or `text`) argument.
    Agent(Arc<AgentPlan>),
    /// An external program: the arguments as JSON on stdin, the result as JSON on stdout.
    Command(CommandPlan),
}

/// A tool as an agent sees it: what the model is told, and what runs when it is called.
#[derive(Clone)]
pub struct ToolPlan {
    pub definition: ToolDefinition,
    pub backing: ToolBacking,
    /// kneo's per-tool `allowed_domains`, enforced like the agent's (see [`check_domains`]).
    pub allowed_domains: Vec<String>,
}

impl ToolPlan {
    /// `registry`, `function`, `mcp`, `agent` or `command`, for traces.
    pub fn backing_kind(&self) -> &'static str {
        match self.backing {
            ToolBacking::Handler(_) => "registry",
            ToolBacking::Function(_) => "function",
            ToolBacking::Mcp { .. } => "mcp",
            ToolBacking::Agent(_) => "agent",
            ToolBacking::Command(_) => "command",
        }
    }
}

/// The text a tool that takes text (a function, an agent) gets from JSON arguments: the
/// `text`, `input` or `query` argument, else the arguments as JSON.
pub fn text_from_arguments(arguments: &Value) -> String {
    ["text", "input", "query"]
        .iter()
        .find_map(|key| arguments.get(key).and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| match arguments {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
}

/// A canonical host for domain gating: lower case, no trailing dot (a trailing-dot name is
/// the same host to DNS, so it must not slip past a list written without it).
fn normalize_host(host: &str) -> String {
    host.trim().to_lowercase().trim_end_matches('.').to_string()
}

/// The host of a URL-shaped string, as a URL parser finds its authority: `scheme://host/...`
/// or a scheme-relative `//host/...`; user info and port are dropped. Plain words and paths
/// have none.
fn url_host(text: &str) -> Option<String> {
    let text = text.trim();
    let after_scheme = match text.find(':') {
        Some(colon)
            if colon > 0
                && text[..colon].chars().enumerate().all(|(i, c)| {
                    c.is_ascii_alphabetic()
                        || (i > 0 && (c.is_ascii_alphanumeric() || "+-.".contains(c)))
                }) =>
        {
            &text[colon + 1..]
        }
        _ => text,
    };
    let authority = after_scheme.strip_prefix("//")?;
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = normalize_host(host);
    (!host.is_empty()).then_some(host)
}

/// Every URL host in a tool call's arguments, keys and values, at any depth.
fn argument_hosts(value: &Value, hosts: &mut Vec<String>) {
    match value {
        Value::String(text) => hosts.extend(url_host(text)),
        Value::Array(items) => items.iter().for_each(|item| argument_hosts(item, hosts)),
        Value::Object(map) => {
            for (key, item) in map {
                hosts.extend(url_host(key));
                argument_hosts(item, hosts);
            }
        }
        _ => {}
    }
}

/// Whether `host` is one of `domains` or a subdomain of one.
fn host_in(host: &str, domains: &[String]) -> bool {
    domains.iter().any(|domain| {
        let domain = normalize_host(domain);
        let domain = domain.trim_start_matches('.');
        !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

/// Domain gating of a tool call (`allowed_domains` / `denied_domains`, kneo-serv 1.2's rule):
/// every URL host in the arguments must not be denied and, when an allow list is given, must be
/// on it. Arguments without a URL always pass. `Err` carries kneo-serv's message.
pub fn check_domains(
    tool: &str,
    arguments: &Value,
    allowed: &[String],
    denied: &[String],
) -> Result<(), String> {
    if allowed.is_empty() && denied.is_empty() {
        return Ok(());
    }
    let mut hosts = Vec::new();
    argument_hosts(arguments, &mut hosts);
    for host in hosts {
        if host_in(&host, denied) {
            return Err(format!(
                "Tool '{tool}' call targets denied domain '{host}'."
            ));
        }
        if !allowed.is_empty() && !host_in(&host, allowed) {
            return Err(format!(
                "Tool '{tool}' call targets domain '{host}' that is not in allowed_domains."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builtin_tools_answer() {
        let registry = ToolRegistry::with_builtins();
        let count = registry.get("word_count").expect("registered");
        assert_eq!(
            count.handler.call(json!({"text": "one two  three"})).await,
            Ok("3".into())
        );
        let shout = registry.get("shout").expect("registered");
        assert_eq!(
            shout.handler.call(json!({"text": "hey"})).await,
            Ok("HEY".into())
        );
        assert!(matches!(
            shout.handler.call(json!({})).await,
            Err(ToolError::Failed(_))
        ));
        assert!(registry.names().contains(&"word_count".to_string()));
    }

    #[test]
    fn text_arguments_are_found_by_their_usual_names() {
        assert_eq!(text_from_arguments(&json!({"input": "a"})), "a");
        assert_eq!(text_from_arguments(&json!({"n": 1})), "{\"n\":1}");
    }

    #[test]
    fn domain_gating_follows_kneo_serv() {
        let allowed = vec!["example.com".to_string()];
        let denied = vec!["evil.example".to_string()];
        let check = |query: &str, allowed: &[String], denied: &[String]| {
            check_domains("web_search", &json!({"query": query}), allowed, denied)
        };
        // Recordings 373-379.
        assert_eq!(
            check("https://docs.example.com/search?q=1", &allowed, &[]),
            Ok(())
        );
        assert_eq!(
            check("https://a.b.example.com./search", &allowed, &[]),
            Ok(())
        );
        assert_eq!(
            check("https://evil.org/search", &allowed, &[]),
            Err(
                "Tool 'web_search' call targets domain 'evil.org' that is not in allowed_domains."
                    .into()
            )
        );
        assert!(check("//evil.org/search", &allowed, &[]).is_err());
        assert_eq!(check("search plain words", &allowed, &[]), Ok(()));
        assert_eq!(
            check("https://api.EVIL.example/search", &[], &denied),
            Err("Tool 'web_search' call targets denied domain 'api.evil.example'.".into())
        );
        assert_eq!(check("https://good.example/search", &[], &denied), Ok(()));
        assert!(check("http://user:pw@Evil.Org:8080/x", &allowed, &[]).is_err());
        assert_eq!(check("example.com/not-a-url", &allowed, &[]), Ok(()));
        assert_eq!(check("notexample.com", &allowed, &[]), Ok(()));
        assert!(check("https://notexample.com", &allowed, &[]).is_err());
        let nested = json!({"urls": ["https://ok.example.com"], "https://evil.org/x": 1});
        assert!(check_domains("t", &nested, &allowed, &[]).is_err());
    }
}
