//! A small MCP server over stdio (JSON-RPC 2.0, one message per line) for tests and demos.
//!
//! Tools: `word_count(text)` → the number of words, `shout(text)` → the text upper-cased,
//! `slow(seconds)` → sleeps, then answers `slept <seconds>`, and `crash()` → exits with status 3
//! in the middle of the call. Every request is appended to the file named by
//! `MCP_TEST_SERVER_LOG`, when set, so tests can see how often a server was started.
//!
//! Run it by hand: `cargo run -p kneo-server --example mcp_test_server`, then type
//! `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`.

use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::{Value, json};

fn tools() -> Value {
    let text =
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
    json!([
        {"name": "word_count", "description": "Counts the words of a text.", "inputSchema": text},
        {"name": "shout", "description": "Returns the text in upper case.", "inputSchema": text},
        {"name": "slow", "description": "Sleeps for `seconds`, then answers.",
         "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
        {"name": "crash", "description": "Exits in the middle of the call.",
         "inputSchema": {"type": "object", "properties": {}}},
    ])
}

fn text_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

fn call(name: &str, arguments: &Value) -> Result<Value, String> {
    let text = || {
        arguments
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{name} needs a string argument `text`"))
    };
    match name {
        "word_count" => Ok(text_result(text()?.split_whitespace().count().to_string())),
        "shout" => Ok(text_result(text()?.to_uppercase())),
        "slow" => {
            let seconds = arguments
                .get("seconds")
                .and_then(Value::as_f64)
                .unwrap_or(60.0);
            std::thread::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
            Ok(text_result(format!("slept {seconds}")))
        }
        "crash" => {
            eprintln!("mcp_test_server: crashing on purpose in the middle of tools/call");
            std::process::exit(3);
        }
        other => Err(format!("unknown tool {other}")),
    }
}

fn answer(request: &Value) -> Option<Value> {
    let id = request.get("id")?.clone();
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => Ok(json!({
            "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-03-26")),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "kneo-mcp-test-server", "version": "1"},
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools()})),
        "tools/call" => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
            match call(name, &arguments) {
                Ok(result) => Ok(result),
                Err(message) => {
                    Ok(json!({"content": [{"type": "text", "text": message}], "isError": true}))
                }
            }
        }
        other => Err(json!({"code": -32601, "message": format!("method {other} not found")})),
    };
    Some(match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    })
}

fn log(line: &str) {
    if let Some(path) = std::env::var_os("MCP_TEST_SERVER_LOG")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{} {line}", std::process::id());
    }
}

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            eprintln!("mcp_test_server: ignoring a line that is not JSON");
            continue;
        };
        log(request
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("response"));
        if let Some(reply) = answer(&request)
            && (writeln!(stdout, "{reply}").is_err() || stdout.flush().is_err())
        {
            break;
        }
    }
}
