//! The deterministic helpers kneo-serv 1.2's extended recordings run, registered under their
//! Python names (`specs.ext.ext_functions.<name>`) so those specs validate and run here the
//! same way (docs/extending.md, "Built-in functions").
//!
//! Function guardrails (`guard_*`) answer a verdict as JSON text: `true`/`false`, or
//! `{"passed", "reason", "revised_text"}`. The retriever (`retrieve_notes`) takes its query as
//! text, or `{"query", "top_k"}` as JSON.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::{Value, json};

use super::functions::{FunctionError, FunctionRegistry};
use super::tools::ToolRegistry;

/// The module the recordings' helpers live in.
pub const MODULE: &str = "specs.ext.ext_functions";

fn name(function: &str) -> String {
    format!("{MODULE}.{function}")
}

/// A helper: text in, text out.
type TextFunction = fn(&str) -> Result<String, FunctionError>;

/// Registers the text functions, guardrail functions and memory helpers.
pub fn register_functions(registry: &mut FunctionRegistry) {
    let plain: [(&str, TextFunction); 11] = [
        ("identity", |text| Ok(text.to_string())),
        ("shout", |text| Ok(text.to_uppercase())),
        ("leak_secret", |text| {
            Ok(format!("secret-token-123 for {text}"))
        }),
        ("approve", |text| Ok(format!("APPROVED: {text}"))),
        ("needs_revision", |text| {
            Ok(format!("Review says revision_required for {text}"))
        }),
        ("boom", |_| {
            Err(FunctionError("boom: deliberate function failure".into()))
        }),
        ("say_pass", |_| Ok("PASS - looks fine".into())),
        ("guard_no_forbidden", guard_no_forbidden),
        ("guard_no_secret", |text| {
            Ok((!text.to_lowercase().contains("secret")).to_string())
        }),
        ("summarize_history", |text| {
            let lines = text.lines().filter(|line| !line.trim().is_empty()).count();
            Ok(format!("{lines} earlier message(s) summarized"))
        }),
        ("retrieve_notes", retrieve_notes),
    ];
    for (function, body) in plain {
        registry.register_fn(&name(function), body);
    }
    registry.register_fn(&name("flaky_once"), flaky_once);
}

/// Registers the tool handlers.
pub fn register_tools(registry: &mut ToolRegistry) {
    let query = json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]});
    registry.register_fn(
        &name("web_search"),
        "Searches the web (recording helper: answers 'results for <query>').",
        query.clone(),
        |arguments| Ok(format!("results for {}", query_of(arguments))),
    );
    registry.register_fn(
        &name("web_search_secret"),
        "Searches the web (recording helper: answers with a planted secret).",
        query,
        |arguments| {
            Ok(format!(
                "secret-token-123 found for {}",
                query_of(arguments)
            ))
        },
    );
}

/// Python's `args.get('query')` as text: `None` when absent.
fn query_of(arguments: &Value) -> String {
    match arguments.get("query") {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// Fails when the payload mentions "forbidden", offering a revision.
fn guard_no_forbidden(text: &str) -> Result<String, FunctionError> {
    let lower = text.to_lowercase();
    if lower.contains("forbidden") {
        return Ok(json!({
            "passed": false,
            "reason": "payload mentions a forbidden word",
            "revised_text": lower.replace("forbidden", "[revised]"),
        })
        .to_string());
    }
    Ok(json!({"passed": true}).to_string())
}

fn retrieve_notes(text: &str) -> Result<String, FunctionError> {
    let request: Option<Value> = serde_json::from_str(text).ok().filter(Value::is_object);
    let (query, top_k) = match &request {
        Some(request) => (
            request
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            request.get("top_k").and_then(Value::as_u64).unwrap_or(5),
        ),
        None => (text.to_string(), 5),
    };
    Ok(format!("top_{top_k} notes for: {query}"))
}

/// Fails the first time it sees an input in this process, then passes.
fn flaky_once(text: &str) -> Result<String, FunctionError> {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let first = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(text.to_string());
    if first {
        return Err(FunctionError("flaky_once: first attempt fails".into()));
    }
    Ok(format!("recovered: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::functions::FunctionInput;

    async fn call(function: &str, text: &str) -> Result<String, FunctionError> {
        let registry = FunctionRegistry::with_builtins();
        let function = registry.build(&name(function)).unwrap();
        function
            .call(FunctionInput {
                text: text.into(),
                run_id: "r".into(),
                step_id: "s".into(),
                attempt: 1,
            })
            .await
    }

    #[tokio::test]
    async fn helpers_answer_as_the_python_ones() {
        assert_eq!(call("shout", "hello team").await.unwrap(), "HELLO TEAM");
        assert_eq!(call("approve", "x").await.unwrap(), "APPROVED: x");
        assert!(call("boom", "x").await.is_err());
        let verdict: Value = serde_json::from_str(
            &call("guard_no_forbidden", "say Forbidden words")
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(verdict["passed"], false);
        assert_eq!(verdict["revised_text"], "say [revised] words");
        assert_eq!(call("guard_no_secret", "a SECRET").await.unwrap(), "false");
        assert_eq!(
            call("retrieve_notes", r#"{"query": "q", "top_k": 2}"#)
                .await
                .unwrap(),
            "top_2 notes for: q"
        );
        assert_eq!(
            call("retrieve_notes", "q").await.unwrap(),
            "top_5 notes for: q"
        );
        assert!(call("flaky_once", "CONTINUE ME once").await.is_err());
        assert_eq!(
            call("flaky_once", "CONTINUE ME once").await.unwrap(),
            "recovered: CONTINUE ME once"
        );
    }

    #[tokio::test]
    async fn web_search_tool_answers_with_the_query() {
        let registry = ToolRegistry::with_builtins();
        let tool = registry.get(&name("web_search")).unwrap();
        assert_eq!(
            tool.handler.call(json!({"query": "rust"})).await,
            Ok("results for rust".into())
        );
    }
}
