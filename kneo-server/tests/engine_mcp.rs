//! MCP tools over stdio on a real server: an agent calls a tool of the test MCP server
//! (`examples/mcp_test_server.rs`) through the scriptable dummy provider; a server that dies or
//! goes silent mid-call, or is killed with `kill -9`, fails that step (on its death, or at the
//! call timeout when silent), and the worker goes on to the next run, which gets a fresh server.
//!
//! The timeouts and waits are generous for a loaded machine: a call of the test server takes
//! milliseconds, and a test only fails at a bound when something hangs.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::time::{Duration, Instant};

use engine_support::{Client, example_path, write_spec};
use kneo_testkit::server::{KneoServer, ServerOptions};
use serde_json::json;

/// `KNEO_SERV_MCP_TIMEOUT_SECONDS`: what a silent server gets, and what every real call must
/// stay under, so it is no tight bound on a call that takes milliseconds.
const CALL_TIMEOUT_SECONDS: u64 = 10;
/// How long a test waits for a run to end: ten times the call timeout.
const RUN_BOUND: Duration = Duration::from_secs(10 * CALL_TIMEOUT_SECONDS);

/// A spec whose agent calls `remote_tool` on the test server with `arguments`.
fn mcp_spec(server_program: &str, log: &str, remote_tool: &str, arguments: &str) -> String {
    format!(
        r#"version: v1
agent: {{name: root, model: {{provider: dummy, name: m}}}}
workflow:
  type: sequential
  name: mcp-flow
  steps:
    - {{id: ask, kind: agent, ref: assistant}}
components:
  agents:
    assistant:
      name: assistant
      system_prompt: |
        Use the tool.
        CALL_TOOL {remote_tool} {arguments}
      model: {{provider: dummy, name: m}}
      strategy: {{type: react}}
      tools: {{include: [{remote_tool}], permissions: {{network: false, shell: false}}}}
tools:
  {remote_tool}:
    description: A tool of the test MCP server.
    parameters: {{type: object, properties: {{text: {{type: string}}}}}}
    mcp: {{server: test_mcp, name: {remote_tool}}}
mcp_servers:
  test_mcp:
    transport: stdio
    command: {server_program}
    env: {{MCP_TEST_SERVER_LOG: {log}}}
"#
    )
}

fn server_starts(log: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.ends_with(" initialize"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_called_and_a_dead_or_silent_server_fails_only_its_step() {
    let program = example_path("mcp_test_server").display().to_string();
    let log_file = tempfile::NamedTempFile::new().expect("log");
    let log = log_file.path().display().to_string();
    let server = KneoServer::start(
        ServerOptions::default()
            .env(
                "KNEO_SERV_MCP_TIMEOUT_SECONDS",
                &CALL_TIMEOUT_SECONDS.to_string(),
            )
            .env("KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS", "60"),
    );
    let client = Client::new(&server);

    let ready = client.get("/readyz").await;
    let tools = ready.body["metadata"]["checks"]["tool_registry"]["names"].clone();
    assert!(
        tools.as_array().is_some_and(
            |names| names.contains(&json!("word_count")) && names.contains(&json!("shout"))
        ),
        "built-in tools in /readyz: {}",
        ready.text
    );

    let count = write_spec(
        &server,
        "mcp_count.yaml",
        &mcp_spec(&program, &log, "word_count", r#"{"text": "one two three"}"#),
    );
    let result = client.run(&count, "how many words?").await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["output_text"], "Final answer: 3");
    let run_id = result["run_id"].as_str().expect("run id");
    let trace = client.trace(run_id).await;
    let started = trace
        .iter()
        .find(|event| event["type"] == "tool_call_started")
        .expect("tool_call_started");
    assert_eq!(started["tool_name"], "word_count");
    assert!(
        trace
            .iter()
            .any(|event| event["type"] == "tool_call_completed"
                && event["tool_name"] == "word_count")
    );
    // The session is reused: a second run starts no second server.
    let again = client.run(&count, "again").await;
    assert_eq!(again["output_text"], "Final answer: 3");
    assert_eq!(server_starts(&log), 1, "one server for both runs");

    // The server exits in the middle of a call: that run fails on the exit (the message says
    // so, not that the call timed out), naming the server; the worker takes the next run, which
    // gets a new server.
    let crash = write_spec(
        &server,
        "mcp_crash.yaml",
        &mcp_spec(&program, &log, "crash", "{}"),
    );
    let crashed = client.submit(&crash, "crash please", json!({})).await;
    let after = client.submit(&count, "after the crash", json!({})).await;
    let crashed = client.wait_for_end(&crashed, RUN_BOUND).await;
    assert_eq!(crashed["status"], "failed", "{crashed}");
    assert_eq!(crashed["error"]["type"], "tool_unavailable", "{crashed}");
    let message = crashed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MCP server 'test_mcp'"), "{message}");
    assert!(message.contains("exit status 3"), "{message}");
    let after = client.wait_for_end(&after, RUN_BOUND).await;
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["output_text"], "Final answer: 3");
    assert_eq!(server_starts(&log), 2, "the dead server was replaced");

    // The server goes silent (it would answer after 60 s): the call times out after
    // KNEO_SERV_MCP_TIMEOUT_SECONDS and the worker is free for the next run.
    let slow = write_spec(
        &server,
        "mcp_slow.yaml",
        &mcp_spec(&program, &log, "slow", r#"{"seconds": 60}"#),
    );
    let silent = client.submit(&slow, "take your time", json!({})).await;
    let next = client.submit(&count, "next", json!({})).await;
    let silent = client.wait_for_end(&silent, RUN_BOUND).await;
    assert_eq!(silent["status"], "failed", "{silent}");
    let message = silent["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MCP server 'test_mcp'"), "{message}");
    assert!(
        message.contains(&format!("within {CALL_TIMEOUT_SECONDS}.0 s")),
        "{message}"
    );
    assert!(
        message.contains("KNEO_SERV_MCP_TIMEOUT_SECONDS"),
        "{message}"
    );
    let next = client.wait_for_end(&next, RUN_BOUND).await;
    assert_eq!(next["status"], "completed", "{next}");

    // Killed from outside (kill -9) while it works on a call: the step fails on the death, not
    // at the call's timeout, and the worker goes on.
    let calls_before = calls(&log).len();
    let victim = client.submit(&slow, "kill it", json!({})).await;
    let deadline = Instant::now() + RUN_BOUND;
    let pid = loop {
        if let Some(pid) = calls(&log).get(calls_before) {
            break pid.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the call never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
    let after_kill = client.submit(&count, "after the kill", json!({})).await;
    let victim = client.wait_for_end(&victim, RUN_BOUND).await;
    assert_eq!(victim["status"], "failed", "{victim}");
    assert_eq!(victim["error"]["type"], "tool_unavailable", "{victim}");
    let message = victim["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MCP server 'test_mcp'"), "{message}");
    assert!(message.contains("killed by a signal"), "{message}");
    let after_kill = client.wait_for_end(&after_kill, RUN_BOUND).await;
    assert_eq!(after_kill["status"], "completed", "{after_kill}");
}

/// The pids of the test servers that received a `tools/call`, in order.
fn calls(log: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.ends_with(" tools/call"))
        .filter_map(|line| line.split(' ').next().map(str::to_string))
        .collect()
}
