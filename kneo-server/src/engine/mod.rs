//! The run engine: compiles a validated spec into a [`plan::Plan`] and executes it step by step.
//!
//! - [`functions`]: the function registry (the extension point) and the built-in functions.
//! - [`providers`]: model providers (`dummy`).
//! - [`plan`]: spec → plan, with every reference resolved.
//! - [`executor`]: running a plan with a durable boundary after every step.
//! - [`trace`]: trace events in kneo-serv's shape.

pub mod executor;
pub mod functions;
pub mod plan;
pub mod providers;
pub mod trace;

use functions::FunctionRegistry;

/// The registries a service runs with.
#[derive(Clone)]
pub struct Engine {
    pub functions: FunctionRegistry,
    /// Tool names registered in code (none are built in yet; specs declare their own tools).
    tools: Vec<String>,
}

impl Engine {
    /// The engine with kneo's built-in functions and providers.
    pub fn with_builtins() -> Engine {
        Engine {
            functions: FunctionRegistry::with_builtins(),
            tools: Vec::new(),
        }
    }

    /// Runtimes as `/readyz` reports them: `bridge` runs the in-process providers, `native` the
    /// HTTP providers.
    pub fn runtime_names(&self) -> Vec<String> {
        vec!["bridge".into(), "native".into()]
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.tools.clone()
    }
}

impl crate::spec::validate::Catalog for Engine {
    fn has_function(&self, implementation: &str) -> bool {
        self.functions.contains(implementation)
    }

    fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|tool| tool == name)
    }
}
