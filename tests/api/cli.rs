//! The `kneo` command line: `spec validate` exit codes and output, `human sweep`, and refusals
//! that name what is wrong.

use std::process::Command;

use kneo_testkit::bins::bin_path;
use kneo_testkit::fixtures;
use serde_json::Value;

fn kneo(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("kneo"))
        .args(args)
        .current_dir(dir)
        .env_remove("KNEO_SERV_DATABASE_URL")
        .output()
        .expect("run kneo")
}

#[test]
fn spec_validate_exits_0_valid_1_invalid_2_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixtures::write_specs(dir.path());
    let valid = kneo(
        dir.path(),
        &["spec", "validate", "specs/approval.yaml", "--json"],
    );
    assert_eq!(
        valid.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    let report: Value = serde_json::from_slice(&valid.stdout).expect("JSON");
    assert_eq!(report["valid"], true);
    assert_eq!(report["report"]["workflow_name"], "approval-workflow");

    std::fs::write(
        dir.path().join("specs/bad.yaml"),
        "version: v1\nagent:\n  name: x\n  tools: {include: [missing]}\n",
    )
    .expect("write");
    let invalid = kneo(
        dir.path(),
        &["spec", "validate", "specs/bad.yaml", "--json"],
    );
    assert_eq!(invalid.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&invalid.stdout).expect("JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(report["diagnostics"][0]["code"], "E_TOOL_REF");
    let human = kneo(dir.path(), &["spec", "validate", "specs/bad.yaml"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("E_TOOL_REF") && text.contains("agent.tools") && text.contains("§ 6.1"),
        "{text}"
    );

    let missing = kneo(dir.path(), &["spec", "validate", "specs/nope.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("specs/nope.yaml"));
    std::fs::write(
        dir.path().join("specs/broken.yaml"),
        "version: v1\nagent: [\n",
    )
    .expect("write");
    assert_eq!(
        kneo(dir.path(), &["spec", "validate", "specs/broken.yaml"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable_and_the_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(bin_path("kneo"))
        .args(["service", "serve", "--port", "0"])
        .current_dir(dir.path())
        .env("KNEO_SERV_WORKER_LEASE_SECONDS", "soon")
        .output()
        .expect("run kneo");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("KNEO_SERV_WORKER_LEASE_SECONDS")
            && stderr.contains("\"soon\"")
            && stderr.contains("expected"),
        "{stderr}"
    );

    let output = Command::new(bin_path("kneo"))
        .args(["service", "serve", "--port", "0"])
        .current_dir(dir.path())
        .env("KNEO_SERV_AUTH_ENABLED", "true")
        .output()
        .expect("run kneo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("no API keys are configured")
            && stderr.contains("§ 1.1"),
        "{stderr}"
    );
}

/// A worker process that would claim nothing is refused rather than left running idle.
#[test]
fn a_worker_process_without_workers_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = |flags: &[&str], concurrency: &str| {
        Command::new(bin_path("kneo"))
            .args(["service", "worker"])
            .args(flags)
            .current_dir(dir.path())
            // Never reached: the refusal comes before any connection.
            .env("KNEO_SERV_DATABASE_URL", "postgres://kneo@127.0.0.1:1/kneo")
            .env("KNEO_SERV_WORKER_CONCURRENCY", concurrency)
            .output()
            .expect("run kneo")
    };
    let output = worker(&[], "0");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("KNEO_SERV_WORKER_CONCURRENCY is 0") && stderr.contains("1 or more"),
        "{stderr}"
    );
    let output = worker(&["--concurrency", "0"], "2");
    assert_eq!(output.status.code(), Some(2), "bad usage");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--concurrency"), "{stderr}");
}

#[test]
fn a_second_server_on_the_same_state_directory_is_refused() {
    let server =
        kneo_testkit::server::KneoServer::start(kneo_testkit::server::ServerOptions::default());
    let output = kneo(&server.dir, &["service", "serve", "--port", "0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another kneo process") && stderr.contains("§ 2.6"),
        "{stderr}"
    );
}

#[test]
fn human_sweep_applies_on_timeout_once_from_the_command_line() {
    let mut server = kneo_testkit::server::KneoServer::start(
        kneo_testkit::server::ServerOptions::default()
            .env("KNEO_SERV_SWEEP_INTERVAL_SECONDS", "3600"),
    );
    let spec = fixtures::APPROVAL
        .replace("timeout_seconds: 86400", "timeout_seconds: 1")
        .replace("on_timeout: escalate", "on_timeout: fail");
    super::write_spec(&server.dir, "timed.yaml", &spec);
    let client = blocking::client();
    let run = client(&server.url, "specs/timed.yaml");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.stop();
    let output = kneo(&server.dir, &["human", "sweep", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["human_tasks_processed"], 1);
    let again = kneo(&server.dir, &["human", "sweep", "--json"]);
    let report: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(
        report["human_tasks_processed"], 0,
        "a swept task is not swept twice"
    );
    server.restart();
    let status = blocking::run_status(&server.url, &run);
    assert_eq!(status, "expired");
}

/// Minimal blocking HTTP helpers for the synchronous tests above (a runtime per call).
mod blocking {
    use serde_json::json;

    pub fn client() -> impl Fn(&str, &str) -> String {
        |url: &str, spec_path: &str| {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async {
                let api = kneo_testkit::http::Api::new(url);
                let answer = api
                    .post(
                        "/v1/runs",
                        kneo_testkit::server::OPERATOR_KEY,
                        &json!({"spec_path": spec_path, "input": "x"}),
                    )
                    .await;
                assert_eq!(answer.body["status"], "blocked", "{}", answer.text);
                answer.body["run_id"].as_str().expect("run").to_string()
            })
        }
    }

    pub fn run_status(url: &str, run_id: &str) -> String {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let api = kneo_testkit::http::Api::new(url);
            let run = api
                .get(
                    &format!("/v1/runs/{run_id}"),
                    kneo_testkit::server::OPERATOR_KEY,
                )
                .await;
            run.body["status"].as_str().unwrap_or_default().to_string()
        })
    }
}
