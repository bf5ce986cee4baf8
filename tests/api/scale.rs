//! Concurrency at scale: one idempotency key raced 1,000 times, and several API and worker
//! processes sharing one Postgres.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use kneo_testkit::http::Api;
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
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

/// Two API processes and two `kneo service worker` processes on one Postgres: 2,000 async runs,
/// each executed exactly once, and only by the worker processes. The API processes have no
/// in-process workers (`KNEO_SERV_WORKER_CONCURRENCY=0`), and every process writes its own
/// invocation log, so a logged step names the process that ran it: both worker processes take a
/// share, the API processes run nothing, and both workers are still up at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_api_and_two_worker_processes_execute_each_run_once() {
    const RUNS: usize = 2000;
    // specs/counted.yaml: steps `one`, `two` and `three`, each logging its invocation.
    const STEPS_PER_RUN: usize = 3;
    let url = shared_cluster().create_database();
    let logs = tempfile::tempdir().expect("a directory for the invocation logs");
    let api_invocations = logs.path().join("api-invocations.log");
    let options = ServerOptions::default()
        .postgres(&url)
        .env("KNEO_INVOCATION_LOG", path_text(&api_invocations))
        .env("KNEO_SERV_WORKER_CONCURRENCY", "0");
    let first = KneoServer::start(options.clone());
    let second = KneoServer::start(options);
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|index| WorkerProcess::start(&url, &first.dir, logs.path(), index))
        .collect();
    for worker in &mut workers {
        worker.wait_until_claiming().await;
    }
    // Both API processes need the spec: the second one's spec root is its own directory.
    let apis = [Api::new(&first.url), Api::new(&second.url)];
    let body = json!({"spec_path": "specs/counted.yaml", "input": "x", "async_mode": true});
    // Clients submit with bounded concurrency (64 in flight), as a real client pool would.
    let submissions = futures_util::stream::iter(0..RUNS).map(|index| {
        let (api, body) = (apis[index % 2].clone(), body.clone());
        async move { api.post("/v1/runs", OPERATOR_KEY, &body).await }
    });
    let answers: Vec<kneo_testkit::http::Answer> = submissions.buffer_unordered(64).collect().await;
    let mut accepted = HashSet::new();
    for answer in answers {
        assert_eq!(answer.status, 202, "{}", answer.text);
        accepted.insert(answer.body["run_id"].as_str().expect("run id").to_string());
    }
    assert_eq!(accepted.len(), RUNS, "every submission created its own run");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let completed = apis[0]
            .get("/v1/runs?status=completed&limit=1", OPERATOR_KEY)
            .await;
        if completed.body["total"] == RUNS {
            break;
        }
        for worker in &mut workers {
            worker.assert_running();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all runs completed: {}",
            completed.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let listed = apis[1].get("/v1/runs?limit=1", OPERATOR_KEY).await;
    assert_eq!(listed.body["total"], RUNS, "no other runs: {}", listed.text);

    // Which process ran each step, and how often.
    let mut executor_of_step: HashMap<(String, String), usize> = HashMap::new();
    let mut executors_of_run: HashMap<String, HashSet<usize>> = HashMap::new();
    let mut runs_per_worker = Vec::new();
    for (index, worker) in workers.iter().enumerate() {
        let steps = invocations(&worker.invocations);
        let mut runs = HashSet::new();
        for (run_id, step_id) in steps {
            assert!(
                accepted.contains(&run_id),
                "worker {index} ran a step of unknown run {run_id}"
            );
            runs.insert(run_id.clone());
            executors_of_run
                .entry(run_id.clone())
                .or_default()
                .insert(index);
            let key = (run_id, step_id);
            if let Some(earlier) = executor_of_step.insert(key.clone(), index) {
                panic!("step {key:?} ran twice: in worker process {earlier} and {index}");
            }
        }
        runs_per_worker.push(runs.len());
    }
    assert_eq!(
        executor_of_step.len(),
        RUNS * STEPS_PER_RUN,
        "every step of every run ran once"
    );
    assert!(
        runs_per_worker.iter().all(|&runs| runs > 0),
        "both worker processes executed runs (runs per worker process: {runs_per_worker:?})"
    );
    let split: Vec<_> = executors_of_run
        .iter()
        .filter(|(_, executors)| executors.len() > 1)
        .collect();
    assert!(
        split.is_empty(),
        "each run was executed by one worker process: {split:?}"
    );
    assert!(
        invocations(&api_invocations).is_empty(),
        "the API processes have no workers, yet ran steps"
    );
    for worker in &mut workers {
        worker.assert_running();
    }
}

/// The text of a path handed to a child process's environment.
fn path_text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// The `(run_id, step_id)` of each line of an invocation log (`run_id step_id attempt`), in
/// order; none when the log was never written.
fn invocations(log: &Path) -> Vec<(String, String)> {
    let text = match std::fs::read_to_string(log) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => panic!("cannot read the invocation log {log:?}: {error}"),
    };
    kneo_tests::parse_invocations(log, &text)
}

/// A `kneo service worker` process with its own invocation log and its output kept in files;
/// killed when dropped, pass or fail.
pub(crate) struct WorkerProcess {
    index: usize,
    child: Child,
    /// The steps this process ran (its `KNEO_INVOCATION_LOG`).
    invocations: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl WorkerProcess {
    pub(crate) fn start(
        database_url: &str,
        dir: &Path,
        logs: &Path,
        index: usize,
    ) -> WorkerProcess {
        let invocations = logs.join(format!("worker-{index}-invocations.log"));
        let stdout = logs.join(format!("worker-{index}.stdout"));
        let stderr = logs.join(format!("worker-{index}.stderr"));
        let create =
            |path: &Path| std::fs::File::create(path).expect("create a worker output file");
        let mut command = Command::new(kneo_testkit::bins::bin_path("kneo"));
        command
            .args(["service", "worker", "--concurrency", "2"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr));
        // The parent's kneo settings must not leak into a test process (as for the servers).
        for (key, _) in std::env::vars() {
            if key.starts_with("KNEO_SERV_") {
                command.env_remove(&key);
            }
        }
        let child = command
            .env("KNEO_SERV_DATABASE_URL", database_url)
            .env("KNEO_INVOCATION_LOG", path_text(&invocations))
            .env("KNEO_SERV_WORKER_POLL_SECONDS", "0.05")
            .spawn()
            .expect("start a worker process");
        WorkerProcess {
            index,
            child,
            invocations,
            stdout,
            stderr,
        }
    }

    /// Waits for the process to announce its workers (`kneo worker: 2 worker(s) claiming runs`).
    pub(crate) async fn wait_until_claiming(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if stdout.contains("2 worker(s) claiming runs") {
                return;
            }
            self.assert_running();
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker process {} did not start within 30 s: {}",
                self.index,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn assert_running(&mut self) {
        let state = self.child.try_wait();
        assert!(
            matches!(state, Ok(None)),
            "worker process {} is not running ({state:?}): {}",
            self.index,
            self.output()
        );
    }

    fn output(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
