//! Durability under `kill -9` and dependency outages: nothing accepted is lost, nothing that
//! completed runs twice, and the service recovers by itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kneo_testkit::postgres::PgCluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use kneo_tests::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_survives_kill_9_and_a_restart() {
    let mut server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let mut ids = Vec::new();
    for index in 0..20 {
        let answer = api
            .post(
                "/v1/runs",
                OPERATOR_KEY,
                &json!({"spec_path": "specs/hello.yaml", "input": format!("keep {index}")}),
            )
            .await;
        assert_eq!(answer.status, 200);
        ids.push(answer.body["run_id"].as_str().expect("id").to_string());
    }
    server.kill();
    server.restart();
    let api = Api::new(&server.url);
    for (index, id) in ids.iter().enumerate() {
        let run = api.get(&format!("/v1/runs/{id}"), OPERATOR_KEY).await;
        assert_eq!(run.status, 200, "run {id} lost after kill -9");
        assert_eq!(
            run.body["output_text"],
            format!("Final answer: keep {index}")
        );
        let trace = api.get(&format!("/v1/runs/{id}/trace"), OPERATOR_KEY).await;
        assert_eq!(trace.body["total"], 2);
    }
}

/// `kill -9` while 500 accepted async runs are queued or running: after a restart every one of
/// them ends terminal, and no step that completed before the kill ran again. (A step that was
/// executing at the kill may run again: it never completed. At most one per worker.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_500_async_runs_loses_nothing_and_repeats_no_completed_step() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let log_path = log.path().to_str().expect("utf-8").to_string();
    let options = ServerOptions::default()
        .env("KNEO_INVOCATION_LOG", &log_path)
        .env("KNEO_SERV_WORKER_CONCURRENCY", "2");
    let mut server = KneoServer::start(options);
    let api = Api::new(&server.url);
    let body = json!({"spec_path": "specs/counted.yaml", "input": "x", "async_mode": true});
    let mut accepted = Vec::new();
    for _ in 0..500 {
        let answer = api.post("/v1/runs", OPERATOR_KEY, &body).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        accepted.push(answer.body["run_id"].as_str().expect("id").to_string());
    }
    // Let the workers get going, then kill the process mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&log_path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 150
    {
        assert!(Instant::now() < deadline, "the workers never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let before_restart = std::fs::read_to_string(&log_path).expect("log");
    server.restart();
    let api = Api::new(&server.url);
    for id in &accepted {
        let run = api
            .wait_terminal(id, OPERATOR_KEY, Duration::from_secs(120))
            .await;
        assert_eq!(run["status"], "completed", "run {id}: {run}");
    }
    let mut runs_per_step: HashMap<(String, String), usize> = HashMap::new();
    for line in std::fs::read_to_string(&log_path).expect("log").lines() {
        let mut fields = line.split_whitespace();
        let key = (
            fields.next().unwrap_or_default().to_string(),
            fields.next().unwrap_or_default().to_string(),
        );
        *runs_per_step.entry(key).or_default() += 1;
    }
    assert_eq!(
        runs_per_step.len(),
        500 * 3,
        "every step of every accepted run ran"
    );
    let repeated: Vec<_> = runs_per_step
        .iter()
        .filter(|(_, count)| **count > 1)
        .collect();
    assert!(
        repeated.len() <= 2,
        "only steps in flight at the kill may repeat (2 workers): {repeated:?}"
    );
    for ((run_id, step), _) in &repeated {
        // A repeated step had not completed before the kill: its run did not move past it.
        let checkpoints_before = before_restart
            .lines()
            .filter(|l| l.starts_with(run_id.as_str()))
            .count();
        assert!(checkpoints_before >= 1, "{run_id}/{step}");
    }
}

/// Postgres down at start: the service starts, `/readyz` answers 503 fast naming
/// `run_state_store` with a stable error kind, and it turns 200 by itself once Postgres is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgres_gives_a_degraded_start_that_recovers_without_restart() {
    let cluster = PgCluster::start_new();
    let url = cluster.create_database();
    cluster.stop();
    let secret_url = url.replace("postgres@", "postgres:hunter2secret@");
    let server = KneoServer::start(ServerOptions::default().postgres(&secret_url));
    let api = Api::new(&server.url);
    assert_eq!(api.send("GET", "/healthz", &[], None).await.status, 200);
    let started = Instant::now();
    let ready = api.send("GET", "/readyz", &[], None).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "/readyz took {:?}",
        started.elapsed()
    );
    assert_eq!(ready.status, 503, "{}", ready.text);
    let check = &ready.body["detail"]["metadata"]["checks"]["run_state_store"];
    assert_eq!(check["ok"], false);
    assert_eq!(check["error"], "connection_refused", "{}", ready.text);
    assert!(
        !ready.text.contains("hunter2secret") && !ready.text.contains("127.0.0.1"),
        "no DSN details: {}",
        ready.text
    );
    let detail = api.get("/v1/health", OPERATOR_KEY).await;
    assert!(detail.text.contains("run_state_store"), "{}", detail.text);
    assert!(!detail.text.contains("hunter2secret"), "{}", detail.text);

    cluster.start();
    let recovered_by = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = api.send("GET", "/readyz", &[], None).await;
        if ready.status == 200 {
            break;
        }
        assert!(
            Instant::now() < recovered_by,
            "not ready 5 s after Postgres returned: {}",
            ready.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "back"}),
        )
        .await;
    assert_eq!(run.body["status"], "completed", "{}", run.text);
    assert!(
        !server.log().contains("hunter2secret"),
        "the password reached the log"
    );
}

/// Postgres stopped under a running service: 503 naming the store within 2 s, 200 again within
/// 5 s of its return, and runs accepted before the outage are not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_a_running_service_fails_readiness_then_recovers() {
    let cluster = PgCluster::start_new();
    let url = cluster.create_database();
    let server = KneoServer::start(ServerOptions::default().postgres(&url));
    let api = Api::new(&server.url);
    let before = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "before"}),
        )
        .await;
    let run_id = before.body["run_id"].as_str().expect("id").to_string();
    cluster.stop();
    let started = Instant::now();
    let ready = api.send("GET", "/readyz", &[], None).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body["detail"]["metadata"]["checks"]["run_state_store"]["ok"],
        false
    );
    let refused = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "during"}),
        )
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.error_code(), Some("store_unavailable"));
    cluster.start();
    let recovered_by = Instant::now() + Duration::from_secs(5);
    while api.send("GET", "/readyz", &[], None).await.status != 200 {
        assert!(
            Instant::now() < recovered_by,
            "not ready within 5 s of Postgres returning"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
    assert_eq!(run.body["status"], "completed");
}

/// A database written by a newer kneo is refused at start, naming both schema versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_at_start_naming_both_versions() {
    let cluster = kneo_testkit::postgres::shared_cluster();
    let url = cluster.create_database();
    let mut server = KneoServer::start(ServerOptions::default().postgres(&url));
    server.stop();
    cluster.psql(&url, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (42, 'from the future', now())");
    let output = std::process::Command::new(kneo_testkit::bins::bin_path("kneo"))
        .args(["service", "serve", "--port", "0"])
        .env("KNEO_SERV_DATABASE_URL", &url)
        .output()
        .expect("run kneo");
    assert!(
        !output.status.success(),
        "a newer schema must stop the service"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("version 42") && stderr.contains("up to 1"),
        "{stderr}"
    );
    assert!(stderr.contains("schema_too_new"), "{stderr}");
}
