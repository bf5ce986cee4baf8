//! Concurrency at scale: one idempotency key raced 1,000 times, and several API and worker
//! processes sharing one Postgres.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use kneo_tests::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_thousand_concurrent_requests_with_one_key_create_one_run() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let body = json!({"spec_path": "specs/hello.yaml", "input": "once"});
    let requests = (0..1000).map(|_| {
        let (api, body) = (api.clone(), body.clone());
        tokio::spawn(async move {
            api.send(
                "POST",
                "/v1/runs",
                &[
                    ("authorization", "Bearer opskey123"),
                    ("idempotency-key", "race-key"),
                ],
                Some(&body),
            )
            .await
        })
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut run_ids = HashSet::new();
    for answer in answers {
        let answer = answer.expect("request task");
        match answer.status {
            200 => {
                run_ids.insert(answer.body["run_id"].as_str().expect("run id").to_string());
            }
            409 => assert_eq!(
                answer.error_code(),
                Some("idempotency_key_in_progress"),
                "{}",
                answer.text
            ),
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert_eq!(run_ids.len(), 1, "every 200 is the same run: {run_ids:?}");
    let listed = api.get("/v1/runs", OPERATOR_KEY).await;
    assert_eq!(
        listed.body["total"], 1,
        "exactly one run exists: {}",
        listed.text
    );
}

/// Two API processes and two worker processes on one Postgres: 2,000 async runs, each executed
/// exactly once (every step records its invocation in a shared log).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_api_and_two_worker_processes_execute_each_run_once() {
    let url = shared_cluster().create_database();
    let log = tempfile::NamedTempFile::new().expect("log");
    let log_path = log.path().to_str().expect("utf-8").to_string();
    let options = ServerOptions::default()
        .postgres(&url)
        .env("KNEO_INVOCATION_LOG", &log_path)
        .env("KNEO_SERV_WORKER_CONCURRENCY", "2")
        .env("KNEO_SERV_WORKER_POLL_SECONDS", "0.05");
    let first = KneoServer::start(options.clone());
    let second = KneoServer::start(options.clone());
    let workers: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(kneo_testkit::bins::bin_path("kneo"))
                .args(["service", "worker", "--concurrency", "2"])
                .current_dir(&first.dir)
                .env("KNEO_SERV_DATABASE_URL", &url)
                .env("KNEO_INVOCATION_LOG", &log_path)
                .env("KNEO_SERV_WORKER_POLL_SECONDS", "0.05")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    let _reaper = Reaper(workers);
    // Both API processes need the spec: the second one's spec root is its own directory.
    let apis = [Api::new(&first.url), Api::new(&second.url)];
    let body = json!({"spec_path": "specs/counted.yaml", "input": "x", "async_mode": true});
    // Clients submit with bounded concurrency (64 in flight), as a real client pool would.
    let submissions = futures_util::stream::iter(0..2000).map(|index| {
        let (api, body) = (apis[index % 2].clone(), body.clone());
        async move { api.post("/v1/runs", OPERATOR_KEY, &body).await }
    });
    let answers: Vec<kneo_tests::Answer> = submissions.buffer_unordered(64).collect().await;
    let mut accepted = Vec::new();
    for answer in answers {
        assert_eq!(answer.status, 202, "{}", answer.text);
        accepted.push(answer.body["run_id"].as_str().expect("run id").to_string());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let completed = apis[0]
            .get("/v1/runs?status=completed&limit=1", OPERATOR_KEY)
            .await;
        if completed.body["total"] == 2000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all runs completed: {}",
            completed.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let invocations = std::fs::read_to_string(&log_path).expect("log");
    let mut seen = HashSet::new();
    for line in invocations.lines() {
        let mut fields = line.split_whitespace();
        let key = (
            fields.next().unwrap_or_default().to_string(),
            fields.next().unwrap_or_default().to_string(),
        );
        assert!(seen.insert(key.clone()), "step ran twice: {key:?}");
    }
    assert_eq!(seen.len(), 2000 * 3, "every step of every run ran once");
    let accepted: HashSet<String> = accepted.into_iter().collect();
    assert!(seen.iter().all(|(run_id, _)| accepted.contains(run_id)));
}

/// Kills leftover worker processes when a test ends, pass or fail.
struct Reaper(Vec<std::process::Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
