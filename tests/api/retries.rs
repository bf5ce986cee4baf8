//! Clients that retry with their own `Idempotency-Key` through a `kill -9` (issue 12): exactly
//! one run per key, and every client gets its run soon after the restart, on both stores. The
//! kill comes at several points: three times during 1,000 async creates, and once at each step
//! of an idempotent request (fault points: after the key is marked, after the run is written).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kneo_testkit::http::Api;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use serde_json::{Value, json};

use super::scale::WorkerProcess;

/// `KNEO_RETRY_RUNS` overrides the 1,000 async runs of the acceptance line.
fn run_count() -> usize {
    std::env::var("KNEO_RETRY_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

/// The longest a client may wait for its run after a restart before the test fails: ten times
/// the 10 s of the acceptance line (the figure itself is printed, not asserted).
const PATIENCE: Duration = Duration::from_secs(100);

/// One client's story: when it first asked, when it got its 202, and what it met on the way.
#[derive(Debug, Clone)]
struct Outcome {
    key: String,
    run_id: String,
    first_attempt: Instant,
    accepted_at: Instant,
    in_progress_answers: usize,
    failed_attempts: usize,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .expect("an HTTP client")
}

/// Sends `body` with `key` until the service answers `expected` (202 async, 200 sync), through
/// refused connections, timeouts, 409 in progress and 503s; any other answer fails the test.
async fn create_until_answered(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
    expected: u16,
) -> (Value, Outcome) {
    let first_attempt = Instant::now();
    let (mut in_progress_answers, mut failed_attempts) = (0, 0);
    loop {
        assert!(
            first_attempt.elapsed() < PATIENCE * 3,
            "key {key}: no answer after {} attempts",
            in_progress_answers + failed_attempts
        );
        let sent = client
            .post(format!("{base}/v1/runs"))
            .header("authorization", format!("Bearer {OPERATOR_KEY}"))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(_) => {
                failed_attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = match response.text().await {
            Ok(text) => text,
            Err(_) => {
                failed_attempts += 1;
                continue;
            }
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            status if status == expected => {
                let run_id = answer["run_id"].as_str().expect("a run id").to_string();
                let outcome = Outcome {
                    key: key.to_string(),
                    run_id,
                    first_attempt,
                    accepted_at: Instant::now(),
                    in_progress_answers,
                    failed_attempts,
                };
                return (answer, outcome);
            }
            409 if answer["detail"]["error"] == "idempotency_key_in_progress" => {
                in_progress_answers += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            503 => {
                failed_attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("key {key}: unexpected {other}: {text}"),
        }
    }
}

/// 1,000 clients, each with its own key, create async runs (64 at a time) while the API process
/// is killed with SIGKILL and restarted three times.
async fn kill_9_during_async_creates_with_retries(server: KneoServer, label: &str) {
    let runs = run_count();
    let base = server.url.clone();
    let server = Arc::new(Mutex::new(server));
    let accepted = Arc::new(AtomicUsize::new(0));
    let restarts: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let kills = [runs * 15 / 100, runs * 45 / 100, runs * 75 / 100];
    let killer = {
        let (server, accepted, restarts) = (server.clone(), accepted.clone(), restarts.clone());
        tokio::spawn(async move {
            for at in kills {
                while accepted.load(Ordering::Relaxed) < at {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let server = server.clone();
                let times = tokio::task::spawn_blocking(move || {
                    let mut server = server.lock().unwrap_or_else(PoisonError::into_inner);
                    let killed = Instant::now();
                    server.kill();
                    server.restart();
                    (killed, Instant::now())
                })
                .await
                .expect("kill and restart");
                restarts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(times);
            }
        })
    };
    let http = client();
    let submissions = futures_util::stream::iter(0..runs).map(|index| {
        let (http, base, accepted) = (http.clone(), base.clone(), accepted.clone());
        async move {
            let key = format!("crash-{index}");
            let body = json!({"spec_path": "specs/hello.yaml", "input": key, "async_mode": true});
            let (_, outcome) = create_until_answered(&http, &base, &key, &body, 202).await;
            accepted.fetch_add(1, Ordering::Relaxed);
            outcome
        }
    });
    let outcomes: Vec<Outcome> = submissions.buffer_unordered(64).collect().await;
    killer.await.expect("the kills ran");
    let restarts = restarts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(restarts.len(), 3, "three kills during the submissions");

    // Every client got a run, its own, and the store holds no other.
    let api = Api::new(&base);
    let mut runs_of_key: HashMap<String, Vec<String>> = HashMap::new();
    let listed = api.get("/v1/runs?limit=1000", OPERATOR_KEY).await;
    assert_eq!(
        listed.body["total"], runs,
        "one run per key: {}",
        listed.body["total"]
    );
    for run in listed.body["runs"].as_array().expect("runs") {
        runs_of_key
            .entry(run["input_text"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(run["id"].as_str().unwrap_or_default().to_string());
    }
    for outcome in &outcomes {
        assert_eq!(
            runs_of_key.get(&outcome.key),
            Some(&vec![outcome.run_id.clone()]),
            "key {} has exactly the run its client got",
            outcome.key
        );
    }
    // The clients caught by a kill: how long after the restart they got their run.
    let mut waits = Vec::new();
    for (killed, restarted) in &restarts {
        for outcome in &outcomes {
            if outcome.first_attempt < *killed && outcome.accepted_at > *killed {
                waits.push(outcome.accepted_at.saturating_duration_since(*restarted));
            }
        }
    }
    let longest = waits.iter().max().copied().unwrap_or_default();
    let restart_seconds: Vec<String> = restarts
        .iter()
        .map(|(killed, restarted)| format!("{:.2}", (*restarted - *killed).as_secs_f64()))
        .collect();
    println!("kneo-test {label}: kill-to-listening times {restart_seconds:?} s");
    let in_progress: usize = outcomes.iter().map(|o| o.in_progress_answers).sum();
    let failed: usize = outcomes.iter().map(|o| o.failed_attempts).sum();
    println!(
        "kneo-test {label}: {runs} keys, 3 kills; {} clients caught by a kill got their run at most {:.2} s after the restart; {in_progress} answers 409 in progress, {failed} failed attempts",
        waits.len(),
        longest.as_secs_f64()
    );
    assert!(
        longest < PATIENCE,
        "a client waited {longest:?} after the restart"
    );

    // A retry after the fact replays the same run; every run completes.
    let http = client();
    let replays = futures_util::stream::iter(outcomes.clone()).map(|outcome| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body =
                json!({"spec_path": "specs/hello.yaml", "input": outcome.key, "async_mode": true});
            let (_, replay) = create_until_answered(&http, &base, &outcome.key, &body, 202).await;
            assert_eq!(
                replay.run_id, outcome.run_id,
                "key {} replays its run",
                outcome.key
            );
        }
    });
    replays.buffer_unordered(64).collect::<Vec<()>>().await;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let completed = api
            .get("/v1/runs?status=completed&limit=1", OPERATOR_KEY)
            .await;
        if completed.body["total"] == runs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every run completed: {}",
            completed.text
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = api.get("/v1/runs?limit=1", OPERATOR_KEY).await;
    assert_eq!(total.body["total"], runs, "still one run per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_async_creates_with_retries_makes_one_run_per_key() {
    let server = KneoServer::start(ServerOptions::default());
    kill_9_during_async_creates_with_retries(server, "sqlite").await;
}

/// On Postgres, with the runs executed by two `kneo service worker` processes that keep running
/// while the API process is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_async_creates_with_retries_on_postgres_with_two_workers() {
    let url = kneo_testkit::postgres::shared_cluster().create_database();
    let server = KneoServer::start(
        ServerOptions::default()
            .postgres(&url)
            .env("KNEO_SERV_WORKER_CONCURRENCY", "0"),
    );
    let logs = tempfile::tempdir().expect("a directory for worker logs");
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|index| WorkerProcess::start(&url, &server.dir, logs.path(), index))
        .collect();
    for worker in &mut workers {
        worker.wait_until_claiming().await;
    }
    kill_9_during_async_creates_with_retries(server, "postgres").await;
    for worker in &mut workers {
        worker.assert_running();
    }
}

/// The process dies at each step of an idempotent create, sync and async: after the key is
/// marked (nothing written yet) and after the run is written (the answer not sent). A retry
/// with the key after the restart gets the one run, whose steps each ran once.
async fn a_crash_at_each_step_leaves_one_run(options: impl Fn() -> ServerOptions) {
    for point in ["after_idempotency_mark", "after_run_created"] {
        for async_mode in [true, false] {
            let case = format!("{point}, async_mode {async_mode}");
            let invocations = tempfile::NamedTempFile::new().expect("an invocation log");
            let log = invocations.path().to_str().expect("utf-8").to_string();
            let mut server = KneoServer::start(
                options()
                    .env("KNEO_SERV_FAULTS", point)
                    .env("KNEO_INVOCATION_LOG", &log),
            );
            let key = format!("fault-{point}-{async_mode}");
            let body = json!({"spec_path": "specs/counted.yaml", "input": "once", "async_mode": async_mode});
            let first = client()
                .post(format!("{}/v1/runs", server.url))
                .header("authorization", format!("Bearer {OPERATOR_KEY}"))
                .header("idempotency-key", &key)
                .json(&body)
                .send()
                .await;
            assert!(
                first.is_err(),
                "{case}: the process should have died: {first:?}"
            );
            assert!(
                server.wait_for_exit(Duration::from_secs(30)),
                "{case}: the fault point did not end the process"
            );
            server.restart_with(&[("KNEO_SERV_FAULTS", "")]);
            let expected = if async_mode { 202 } else { 200 };
            let (answer, outcome) =
                create_until_answered(&client(), &server.url, &key, &body, expected).await;
            let api = Api::new(&server.url);
            let run = api
                .wait_terminal(&outcome.run_id, OPERATOR_KEY, PATIENCE)
                .await;
            assert_eq!(run["status"], "completed", "{case}: {run}");
            let listed = api.get("/v1/runs?limit=1", OPERATOR_KEY).await;
            assert_eq!(
                listed.body["total"], 1,
                "{case}: one run for the key: {}",
                listed.text
            );
            let (replay, _) =
                create_until_answered(&client(), &server.url, &key, &body, expected).await;
            assert_eq!(
                replay["run_id"], answer["run_id"],
                "{case}: the retry replays"
            );
            let text = std::fs::read_to_string(invocations.path()).expect("read the invocations");
            let steps: Vec<(String, String)> =
                kneo_tests::parse_invocations(invocations.path(), &text);
            assert_eq!(
                steps,
                ["one", "two", "three"]
                    .map(|step| (outcome.run_id.clone(), step.to_string()))
                    .to_vec(),
                "{case}: each step ran once"
            );
            println!(
                "kneo-test {case}: the retry got its run after {} answers 409 in progress and {} failed attempts",
                outcome.in_progress_answers, outcome.failed_attempts
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_step_of_an_idempotent_create_leaves_one_run() {
    a_crash_at_each_step_leaves_one_run(ServerOptions::default).await;
}

/// On Postgres the orphaned sync run returns when its lease expires (kept short here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_step_of_an_idempotent_create_leaves_one_run_on_postgres() {
    a_crash_at_each_step_leaves_one_run(|| {
        let url = kneo_testkit::postgres::shared_cluster().create_database();
        ServerOptions::default()
            .postgres(&url)
            .env("KNEO_SERV_WORKER_LEASE_SECONDS", "3")
    })
    .await;
}
