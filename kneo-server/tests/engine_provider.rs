//! The OpenAI-compatible provider against a fake chat-completions server on 127.0.0.1: a normal
//! answer (with a tool call and token usage), a hanging one (the run ends `timed_out` at its
//! `timeout_seconds` while `/readyz` keeps answering), 429 then 200 (retried), 500 forever (fails
//! after the retries naming the status), and a missing key (`MissingSecretError`).

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use engine_support::{Client, write_spec};
use kneo_testkit::server::{KneoServer, ServerOptions};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn calls(&self, mode: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(mode)
            .copied()
            .unwrap_or(0)
    }
}

fn completion(message: Value) -> Response {
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }))
    .into_response()
}

async fn chat(
    State(fake): State<Fake>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let call = {
        let mut calls = fake.calls.lock().expect("lock");
        let count = calls.entry(mode.clone()).or_default();
        *count += 1;
        *count
    };
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        fake.authorizations
            .lock()
            .expect("lock")
            .push(value.to_string());
    }
    match mode.as_str() {
        "hang" => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        "flaky" if call == 1 => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        _ => {
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            if let Some(result) = messages.iter().find(|m| m["role"] == "tool") {
                return completion(
                    json!({"role": "assistant", "content": format!("Final: {}", result["content"].as_str().unwrap_or_default())}),
                );
            }
            if body["tools"]
                .as_array()
                .is_some_and(|tools| !tools.is_empty())
            {
                return completion(json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "shout", "arguments": "{\"text\": \"hi\"}"}}
                ]}));
            }
            let system = messages
                .first()
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default()
                .to_string();
            completion(
                json!({"role": "assistant", "content": format!("Hello from the fake model ({system})")}),
            )
        }
    }
}

async fn start_fake() -> (String, Fake) {
    let fake = Fake::default();
    let app = axum::Router::new()
        .route("/{mode}/v1/chat/completions", axum::routing::post(chat))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake provider");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), fake)
}

fn agent_spec(base: &str, mode: &str, key_variable: &str, tools: &str) -> String {
    format!(
        r#"version: v1
agent:
  name: remote-agent
  system_prompt: Be brief.
  model:
    provider: openai
    name: gpt-test
    extra: {{base_url: "{base}/{mode}/v1", api_key_ref: {key_variable}}}
{tools}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_provider_answers_retries_times_out_and_names_missing_secrets() {
    let (base, fake) = start_fake().await;
    let server = KneoServer::start(
        ServerOptions::default()
            .env("KNEO_TEST_PROVIDER_KEY", "test-key-123")
            .env("KNEO_SERV_PROVIDER_RETRIES", "2")
            .env("KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS", "0.05")
            // One answer of the fake costs 18 tokens: one call fits, two do not.
            .env("KNEO_SERV_TOKEN_BUDGET", "30"),
    );
    let client = Client::new(&server);
    let key = "KNEO_TEST_PROVIDER_KEY";

    // A normal answer, with its tokens counted.
    let normal = write_spec(
        &server,
        "normal.yaml",
        &agent_spec(&base, "normal", key, ""),
    );
    let result = client.run(&normal, "hello").await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(
        result["output_text"],
        "Hello from the fake model (Be brief.)"
    );
    let run = client
        .run_state(result["run_id"].as_str().expect("run id"))
        .await;
    assert_eq!(run["usage"]["input_tokens"], 11, "{run}");
    assert_eq!(run["usage"]["output_tokens"], 7);
    assert!(
        fake.authorizations
            .lock()
            .expect("lock")
            .iter()
            .all(|value| value == "Bearer test-key-123")
    );
    assert!(
        !run.to_string().contains("test-key-123"),
        "the key leaked into the run"
    );
    let metrics = client.get("/metrics").await;
    assert!(
        metrics.text.contains("kneo_tokens_input_total 11"),
        "{}",
        metrics.text
    );

    // A tool call through the provider's protocol: two model calls, 36 tokens, more than
    // KNEO_SERV_TOKEN_BUDGET allows; the spec's own model.token_budget wins over it.
    let tools =
        "  strategy: {type: react}\n  tools: {include: [shout], permissions: {network: false}}\n";
    let over_budget = write_spec(
        &server,
        "over_budget.yaml",
        &agent_spec(&base, "tools", key, tools),
    );
    let result = client.run(&over_budget, "shout hi").await;
    assert_eq!(result["status"], "failed", "{result}");
    let run = client
        .run_state(result["run_id"].as_str().expect("run id"))
        .await;
    assert_eq!(run["error"]["type"], "TokenBudgetExceeded", "{run}");
    let message = run["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("usage 36 exceeded limit 30"), "{message}");
    let with_tools = write_spec(
        &server,
        "tools.yaml",
        &agent_spec(&base, "tools", key, tools)
            .replace("name: gpt-test", "name: gpt-test\n    token_budget: 100"),
    );
    let result = client.run(&with_tools, "shout hi").await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["output_text"], "Final: HI");
    assert_eq!(fake.calls("tools"), 4);

    // 429, then 200: retried.
    let flaky = write_spec(&server, "flaky.yaml", &agent_spec(&base, "flaky", key, ""));
    let result = client.run(&flaky, "hello").await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(fake.calls("flaky"), 2);

    // 500 forever: fails after 1 + 2 attempts, naming the status.
    let broken = write_spec(
        &server,
        "broken.yaml",
        &agent_spec(&base, "broken", key, ""),
    );
    let result = client.run(&broken, "hello").await;
    assert_eq!(result["status"], "failed", "{result}");
    let run = client
        .run_state(result["run_id"].as_str().expect("run id"))
        .await;
    let message = run["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(message.contains("after 3 attempts"), "{message}");
    assert_eq!(fake.calls("broken"), 3);

    // No key: MissingSecretError naming the variable and the runbook section.
    let keyless = write_spec(
        &server,
        "keyless.yaml",
        &agent_spec(&base, "normal", "KNEO_TEST_UNSET_KEY", ""),
    );
    let result = client.run(&keyless, "hello").await;
    assert_eq!(result["status"], "failed", "{result}");
    let run = client
        .run_state(result["run_id"].as_str().expect("run id"))
        .await;
    let message = run["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MissingSecretError"), "{message}");
    assert!(message.contains("KNEO_TEST_UNSET_KEY"), "{message}");
    assert!(message.contains("§ 3.1"), "{message}");

    // A provider that hangs (600 s): the run ends timed_out at its timeout_seconds, and /readyz
    // keeps answering while the provider call is in flight.
    let hang = write_spec(&server, "hang.yaml", &agent_spec(&base, "hang", key, ""));
    let started = Instant::now();
    let run_id = client
        .submit(&hang, "hello", json!({"timeout_seconds": 2}))
        .await;
    let mut ready_while_running = 0;
    let run = loop {
        let ready = client.get("/readyz").await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        let run = client.run_state(&run_id).await;
        if run["status"] == "running" {
            ready_while_running += 1;
        } else if run["status"] != "created" {
            break run;
        }
        // Bounded only to fail instead of hanging (the provider would answer after 600 s).
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still running: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["status"], "timed_out", "{run}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "ended before its deadline"
    );
    assert!(
        ready_while_running > 0,
        "/readyz never answered while the provider hung"
    );
    assert_eq!(fake.calls("hang"), 1);
}
