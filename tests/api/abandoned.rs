//! Clients that give up on a request (issue 21): what the request started ends the same whether
//! the client waits or not. 200 sync creates and a batch of resumes are each abandoned by their
//! client at a point between 0 and 20 ms; afterwards every run is terminal long before the lease
//! would have handed it to a worker, each ran once, nothing is left running, no lock or key is
//! held, and a retry with the same `Idempotency-Key` returns the same run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kneo_testkit::http::Api;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// How long this test waits for abandoned work to settle before failing: far below the
/// default 300 s lease, which is when a stranded run would come back.
const SETTLE: Duration = Duration::from_secs(60);

/// The moment, in microseconds after sending, at which request `index` is abandoned: spread
/// over 0–20 ms (a fixed pseudo-random order, so a failure can be replayed).
fn abandon_after(index: usize) -> Duration {
    Duration::from_micros(((index as u64).wrapping_mul(7_919) ^ 0x5bd1) % 20_001)
}

/// Sends one HTTP request on a new connection and closes it `after` the bytes went out, without
/// reading the answer (as a client whose timeout fired would).
async fn send_and_abandon(address: &str, request: String, after: Duration) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        panic!("cannot connect to {address}");
    };
    let _ = stream.write_all(request.as_bytes()).await;
    tokio::time::sleep(after).await;
    drop(stream);
}

fn post(path: &str, key: &str, idempotency_key: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nIdempotency-Key: {idempotency_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Waits until no request is in flight but the one asking (the gauge counts it) and no work of
/// an abandoned request is still running.
async fn wait_until_quiet(api: &Api) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let metrics = api.send("GET", "/metrics", &[], None).await.text;
        let gauge = |name: &str| -> i64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name} ")))
                .and_then(|n| n.trim().parse().ok())
                // A service without the gauge is judged by its runs alone.
                .unwrap_or(0)
        };
        let in_flight = gauge("kneo_http_requests_in_flight");
        let abandoned_work = gauge("kneo_http_abandoned_work_running");
        assert!(
            abandoned_work >= 0,
            "a gauge of running work went to {abandoned_work}"
        );
        if in_flight <= 1 && abandoned_work == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "requests still in flight: {in_flight}, abandoned work running: {abandoned_work}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every run of the store, by its input text.
async fn runs_by_input(api: &Api) -> HashMap<String, Vec<Value>> {
    let listed = api.get("/v1/runs?limit=1000", OPERATOR_KEY).await;
    let mut runs: HashMap<String, Vec<Value>> = HashMap::new();
    for run in listed.body["runs"].as_array().expect("runs") {
        runs.entry(run["input_text"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(run.clone());
    }
    runs
}

/// Waits until every run in the store is terminal (or blocked, when `blocked_is_settled`).
async fn wait_until_settled(api: &Api, blocked_is_settled: bool) -> Vec<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let runs: Vec<Value> = runs_by_input(api).await.into_values().flatten().collect();
        let unsettled: Vec<&Value> = runs
            .iter()
            .filter(|run| {
                let status = run["status"].as_str().unwrap_or_default();
                !(["completed", "failed", "cancelled", "timed_out", "expired"].contains(&status)
                    || (blocked_is_settled && status == "blocked"))
            })
            .collect();
        if unsettled.is_empty() {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{} runs still not settled after {SETTLE:?}, e.g. {}",
            unsettled.len(),
            unsettled[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Attempt 1 on the queue record, and one `run_started` in the trace.
async fn assert_executed_once(api: &Api, run_id: &str) {
    let recovery = api
        .get(&format!("/v1/runs/{run_id}/recovery"), OPERATOR_KEY)
        .await;
    assert_eq!(
        recovery.body["queue"]["attempts"], 1,
        "run {run_id} was claimed again: {}",
        recovery.text
    );
    let trace = api
        .get(&format!("/v1/runs/{run_id}/trace?limit=1000"), OPERATOR_KEY)
        .await;
    let started = trace.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["type"] == "run_started")
        .count();
    assert_eq!(
        started, 1,
        "run {run_id} started {started} times: {}",
        trace.text
    );
}

async fn readyz_running(api: &Api) -> Value {
    let ready = api.send("GET", "/readyz", &[], None).await;
    ready.body["metadata"]["checks"]["queue"]["running"].clone()
}

/// The `kneo_http_requests_abandoned_total` samples by route.
async fn abandoned_by_route(api: &Api) -> HashMap<String, u64> {
    let metrics = api.send("GET", "/metrics", &[], None).await.text;
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("kneo_http_requests_abandoned_total{route=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(route, count)| (route.to_string(), count.trim().parse().unwrap_or(0)))
        .collect()
}

async fn abandoned_sync_creates(options: ServerOptions) {
    const CREATES: usize = 200;
    let server = KneoServer::start(options);
    let address = server.url.trim_start_matches("http://").to_string();
    let api = Api::new(&server.url);
    let body = |index: usize| json!({"spec_path": "specs/hello.yaml", "input": format!("abandoned {index}")});
    let abandoned = futures_util::stream::iter(0..CREATES).map(|index| {
        let request = post(
            "/v1/runs",
            OPERATOR_KEY,
            &format!("abandon-{index}"),
            &body(index),
        );
        let address = address.clone();
        async move { send_and_abandon(&address, request, abandon_after(index)).await }
    });
    abandoned.buffer_unordered(32).collect::<Vec<()>>().await;
    wait_until_quiet(&api).await;
    let runs = wait_until_settled(&api, false).await;
    for run in &runs {
        assert_eq!(run["status"], "completed", "{run}");
        assert_executed_once(&api, run["id"].as_str().expect("id")).await;
    }
    assert_eq!(readyz_running(&api).await, 0, "nothing left running");
    let created = runs.len();

    // Each retry with its key returns the run its abandoned request made (or makes the one run
    // of a request that never got far enough to make it).
    let before = runs_by_input(&api).await;
    for index in 0..CREATES {
        let retry = api
            .send(
                "POST",
                "/v1/runs",
                &[
                    ("authorization", &format!("Bearer {OPERATOR_KEY}")),
                    ("idempotency-key", &format!("abandon-{index}")),
                ],
                Some(&body(index)),
            )
            .await;
        assert_eq!(retry.status, 200, "retry {index}: {}", retry.text);
        let input = format!("abandoned {index}");
        if let Some(existing) = before.get(&input) {
            assert_eq!(
                retry.body["run_id"], existing[0]["id"],
                "retry {index} returns the run its abandoned request made"
            );
        }
    }
    let after = runs_by_input(&api).await;
    assert_eq!(after.len(), CREATES, "one run per key");
    assert!(
        after.values().all(|runs| runs.len() == 1),
        "no key has a second run"
    );
    let counted = abandoned_by_route(&api).await;
    let log = server.log();
    let logged = log
        .lines()
        .filter(|line| line.contains("\"event\":\"http_request_abandoned\""))
        .count();
    println!(
        "kneo-test: {CREATES} sync creates abandoned at 0-20 ms: {created} runs made, all completed once; abandoned requests counted {counted:?}, logged {logged}"
    );
    assert!(
        counted.get("/v1/runs").copied().unwrap_or(0) > 0,
        "abandoned creates are counted by route: {counted:?}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("\"event\":\"http_request_abandoned\"")
                && line.contains("\"request_id\"")
                && line.contains("\"run_id\":\"")
                && !line.contains("\"run_id\":\"\"")),
        "an abandoned create is logged with its request id and run id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sync_creates_finish_once_and_their_keys_return_their_runs() {
    abandoned_sync_creates(ServerOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sync_creates_finish_once_on_postgres() {
    let url = kneo_testkit::postgres::shared_cluster().create_database();
    abandoned_sync_creates(ServerOptions::default().postgres(&url)).await;
}

async fn abandoned_resumes(options: ServerOptions) {
    const TASKS: usize = 40;
    let server = KneoServer::start(options);
    let address = server.url.trim_start_matches("http://").to_string();
    let api = Api::new(&server.url);
    let mut tasks = Vec::new();
    for index in 0..TASKS {
        let blocked = api
            .post(
                "/v1/runs",
                OPERATOR_KEY,
                &json!({"spec_path": "specs/approval.yaml", "input": format!("draft {index}")}),
            )
            .await;
        assert_eq!(blocked.body["status"], "blocked", "{}", blocked.text);
        let continuation_id = blocked.body["continuation_id"]
            .as_str()
            .expect("task")
            .to_string();
        let task = api
            .get(&format!("/v1/human-tasks/{continuation_id}"), REVIEWER_KEY)
            .await;
        let request_id = task.body["request"]["id"].as_str().expect("id").to_string();
        let run_id = blocked.body["run_id"].as_str().expect("run").to_string();
        tasks.push((run_id, continuation_id, request_id));
    }
    let abandoned = futures_util::stream::iter(tasks.clone().into_iter().enumerate()).map(
        |(index, (_, continuation_id, request_id))| {
            let request = post(
                &format!("/v1/human-tasks/{continuation_id}/resume"),
                REVIEWER_KEY,
                &format!("resume-{index}"),
                &json!({"request_id": request_id, "decision": "approved"}),
            );
            let address = address.clone();
            async move { send_and_abandon(&address, request, abandon_after(index)).await }
        },
    );
    abandoned.buffer_unordered(16).collect::<Vec<()>>().await;
    wait_until_quiet(&api).await;
    wait_until_settled(&api, true).await;
    assert_eq!(readyz_running(&api).await, 0, "nothing left running");

    let (mut resumed, mut untouched) = (0, 0);
    for (index, (run_id, continuation_id, request_id)) in tasks.iter().enumerate() {
        let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
        let decision = json!({"request_id": request_id, "decision": "approved"});
        let path = format!("/v1/human-tasks/{continuation_id}/resume");
        // A second resume without the key: the lock is gone, so it meets the task's state only.
        let second = api.post(&path, REVIEWER_KEY, &decision).await;
        match run.body["status"].as_str() {
            Some("completed") => {
                resumed += 1;
                let trace = api
                    .get(&format!("/v1/runs/{run_id}/trace?limit=1000"), OPERATOR_KEY)
                    .await;
                let resumes = trace.body["events"]
                    .as_array()
                    .expect("events")
                    .iter()
                    .filter(|event| event["type"] == "human_intervention_resumed")
                    .count();
                assert_eq!(resumes, 1, "run {run_id} continued once: {}", trace.text);
                // kneo-serv answers a resume of an answered task with 404.
                assert_eq!(second.status, 404, "{}", second.text);
                let retry = api
                    .send(
                        "POST",
                        &path,
                        &[
                            ("authorization", &format!("Bearer {REVIEWER_KEY}")),
                            ("idempotency-key", &format!("resume-{index}")),
                        ],
                        Some(&decision),
                    )
                    .await;
                assert_eq!(
                    retry.status, 200,
                    "the key returns the resume: {}",
                    retry.text
                );
                assert_eq!(retry.body["run_id"], json!(run_id), "{}", retry.text);
                assert_eq!(retry.body["status"], "completed", "{}", retry.text);
            }
            Some("blocked") => {
                // The abandoned resume never arrived whole: the task is simply still open.
                untouched += 1;
                assert_eq!(second.status, 200, "{}", second.text);
            }
            other => panic!("run {run_id} ended {other:?}: {}", run.text),
        }
    }
    let counted = abandoned_by_route(&api).await;
    println!(
        "kneo-test: {TASKS} resumes abandoned at 0-20 ms: {resumed} took effect (each once), {untouched} never arrived; counted {counted:?}"
    );
    assert!(resumed > 0, "some abandoned resumes must have arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_resumes_continue_their_runs_once_and_release_the_lock() {
    abandoned_resumes(ServerOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_resumes_continue_their_runs_once_on_postgres() {
    let url = kneo_testkit::postgres::shared_cluster().create_database();
    abandoned_resumes(ServerOptions::default().postgres(&url)).await;
}
