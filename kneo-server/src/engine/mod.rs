//! The run engine: compiles a validated spec into a [`plan::Plan`] and executes it step by step.
//!
//! - [`functions`]: the function registry (an extension point) and the built-in functions;
//!   [`golden_helpers`]: the helpers kneo-serv's extended recordings use, under their names.
//! - [`tools`]: the tool registry (an extension point), built-in tools, compiled tools.
//! - [`providers`]: the provider trait and the scriptable `dummy`; [`openai`]: the
//!   OpenAI-compatible HTTP provider; [`settings`]: their `KNEO_SERV_*` settings.
//! - [`command`]: `command:` functions and tools (JSON on stdin and stdout); [`component`]:
//!   calling a function component (registered or `command:`) in any role.
//! - [`mcp`]: MCP tools over stdio, [`mcp_http`] over http and sse, with sessions shared by the
//!   whole process.
//! - [`agent`]: one agent turn (memory, strategy, tool calls); [`memory`]: agent histories and
//!   memory policies; [`guardrails`]: the checks on input, output, tool results and step outputs.
//! - [`plan`]: spec → plan, with every reference resolved; [`graph`]: graph routing.
//! - [`skills`]: skill bundles, read and frozen when a run is created.
//! - [`executor`]: running a plan with a durable boundary after every step or node.
//! - [`trace`]: trace events in kneo-serv's shape.

pub mod agent;
pub mod command;
pub mod component;
pub mod executor;
pub mod functions;
pub mod golden_helpers;
pub mod graph;
pub mod guardrails;
pub mod mcp;
pub mod mcp_http;
pub mod memory;
pub mod openai;
pub mod plan;
pub mod providers;
pub mod settings;
pub mod skills;
pub mod tools;
pub mod trace;

use std::sync::{Arc, OnceLock};

use functions::FunctionRegistry;
use mcp::McpSessions;
use settings::{McpSettings, ProviderSettings};
use tools::ToolRegistry;

/// What compiling a spec needs: the registries, and the runtime services plans hold on to.
pub trait PlanContext {
    fn functions(&self) -> &FunctionRegistry;
    fn tools(&self) -> &ToolRegistry;
    fn runtime(&self) -> &Arc<RuntimeServices>;
}

/// Long-lived things plans share: the HTTP client of the providers, the MCP sessions, and the
/// settings read from the environment when they were built.
pub struct RuntimeServices {
    pub provider_settings: ProviderSettings,
    pub mcp_settings: McpSettings,
    pub mcp: McpSessions,
    http: Result<reqwest::Client, String>,
}

impl RuntimeServices {
    /// Services with the given settings and a fresh HTTP client and MCP session pool.
    pub fn new(provider_settings: ProviderSettings, mcp_settings: McpSettings) -> RuntimeServices {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("kneo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| error.to_string());
        RuntimeServices {
            provider_settings,
            mcp_settings,
            mcp: McpSessions::default(),
            http,
        }
    }

    /// The process-wide services, with settings from the environment: one HTTP connection
    /// pool and one MCP session per server for every engine of the process.
    pub fn shared() -> &'static Arc<RuntimeServices> {
        static SHARED: OnceLock<Arc<RuntimeServices>> = OnceLock::new();
        SHARED.get_or_init(|| {
            Arc::new(RuntimeServices::new(
                ProviderSettings::from_env(),
                McpSettings::from_env(),
            ))
        })
    }

    /// The providers' HTTP client, or why it could not be built.
    pub fn http_client(&self) -> Result<reqwest::Client, String> {
        self.http.clone()
    }
}

/// The registries a service runs with.
#[derive(Clone)]
pub struct Engine {
    pub functions: FunctionRegistry,
    pub tools: ToolRegistry,
    pub runtime: Arc<RuntimeServices>,
}

impl Engine {
    /// The engine with kneo's built-in functions, tools and providers, and the process-wide
    /// runtime services (settings from the environment).
    pub fn with_builtins() -> Engine {
        Engine {
            functions: FunctionRegistry::with_builtins(),
            tools: ToolRegistry::with_builtins(),
            runtime: RuntimeServices::shared().clone(),
        }
    }

    /// Runtimes as `/readyz` reports them: `bridge` runs the in-process providers, `native` the
    /// HTTP providers.
    pub fn runtime_names(&self) -> Vec<String> {
        vec!["bridge".into(), "native".into()]
    }

    /// Tools registered in code, as `/readyz` `tool_registry` lists them.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools.names()
    }
}

impl PlanContext for Engine {
    fn functions(&self) -> &FunctionRegistry {
        &self.functions
    }

    fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    fn runtime(&self) -> &Arc<RuntimeServices> {
        &self.runtime
    }
}

/// A bare function registry compiles with the built-in tools and the process-wide runtime
/// services.
impl PlanContext for FunctionRegistry {
    fn functions(&self) -> &FunctionRegistry {
        self
    }

    fn tools(&self) -> &ToolRegistry {
        static BUILTIN: OnceLock<ToolRegistry> = OnceLock::new();
        BUILTIN.get_or_init(ToolRegistry::with_builtins)
    }

    fn runtime(&self) -> &Arc<RuntimeServices> {
        RuntimeServices::shared()
    }
}

impl crate::spec::validate::Catalog for Engine {
    fn has_function(&self, implementation: &str) -> bool {
        self.functions.contains(implementation)
    }

    fn has_tool(&self, name: &str) -> bool {
        self.tools.contains(name)
    }
}
