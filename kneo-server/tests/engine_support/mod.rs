//! Helpers shared by the `engine_*` test binaries: a small HTTP client for a real kneo server,
//! spec files, and the example programs (the MCP test server) built next to the tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kneo_testkit::server::{KneoServer, OPERATOR_KEY};
use serde_json::{Value, json};

/// Writes `text` as `specs/<name>` in the server's spec root; returns the `spec_path`.
pub fn write_spec(server: &KneoServer, name: &str, text: &str) -> String {
    std::fs::write(server.dir.join("specs").join(name), text).expect("write a spec file");
    format!("specs/{name}")
}

/// One HTTP exchange: status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &KneoServer) -> Client {
        Client {
            base: server.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        self.send_as(OPERATOR_KEY, method, path, body).await
    }

    pub async fn send_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Kneo-Api-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Runs `spec_path` synchronously and returns the response body.
    pub async fn run(&self, spec_path: &str, input: &str) -> Value {
        let reply = self
            .post("/v1/runs", json!({"spec_path": spec_path, "input": input}))
            .await;
        assert_eq!(reply.status, 200, "run {spec_path}: {}", reply.text);
        reply.body
    }

    /// Queues `spec_path` and returns the run id.
    pub async fn submit(&self, spec_path: &str, input: &str, metadata: Value) -> String {
        let reply = self
            .post(
                "/v1/runs",
                json!({"spec_path": spec_path, "input": input, "async_mode": true, "metadata": metadata}),
            )
            .await;
        assert_eq!(reply.status, 202, "submit {spec_path}: {}", reply.text);
        reply.body["run_id"].as_str().expect("a run id").to_string()
    }

    /// The stored run.
    pub async fn run_state(&self, run_id: &str) -> Value {
        let reply = self.get(&format!("/v1/runs/{run_id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }

    /// Polls until the run is terminal (or blocked), within `limit`.
    pub async fn wait_for_end(&self, run_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let run = self.run_state(run_id).await;
            let status = run["status"].as_str().unwrap_or_default().to_string();
            if [
                "completed",
                "failed",
                "cancelled",
                "timed_out",
                "expired",
                "blocked",
            ]
            .contains(&status.as_str())
            {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} still {status} after {limit:?}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The run's trace events.
    pub async fn trace(&self, run_id: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/v1/runs/{run_id}/trace?limit=1000"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["events"]
            .as_array()
            .or_else(|| reply.body["items"].as_array())
            .cloned()
            .unwrap_or_default()
    }

    /// The run's checkpoints.
    pub async fn checkpoints(&self, run_id: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/v1/runs/{run_id}/checkpoints?limit=1000"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["checkpoints"]
            .as_array()
            .or_else(|| reply.body["items"].as_array())
            .cloned()
            .unwrap_or_default()
    }
}

/// The path of an example program of this package, built if cargo has not built it yet
/// (`cargo test` builds examples; `cargo test --test X` may not).
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join("examples").join(name);
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !path.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target_dir = profile_dir.parent().expect("the target dir");
        let status = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "-p",
                "kneo-server",
                "--example",
                name,
                "--target-dir",
            ])
            .arg(target_dir)
            .status()
            .expect("run cargo build --example");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(path.is_file(), "{path:?} was not built");
    path
}

/// Path of a small shell script written into the server's directory; it prints `text` as a
/// `command:` function answer.
pub fn fixed_answer_script(server: &KneoServer, name: &str, text: &str) -> String {
    let path = server.dir.join(format!("{name}.sh"));
    let answer = serde_json::to_string(&json!({"text": text})).expect("json");
    std::fs::write(
        &path,
        format!("#!/bin/sh\ncat >/dev/null\nprintf '%s\\n' '{answer}'\n"),
    )
    .expect("write a script");
    path.display().to_string()
}

/// Event types of a trace, in order.
pub fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| event["type"].as_str().map(str::to_string))
        .collect()
}
