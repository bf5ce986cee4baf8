//! Benchmark (not a timed test): `kneo-ops capture` of a run with ~1,000 trace events on a real
//! local kneo server (DESIGN.md § 8 target: < 2 s).
//!
//! Run: `cargo bench -p kneo-ops --bench capture`. It builds and starts the release `kneo`
//! (or the one named by `KNEO_BENCH_KNEO_BIN`),
//! creates one sequential run of 500 `kneo.builtin.echo` steps, then times the `kneo-ops
//! capture --run-id` command end to end, several times, and prints the figures.

// A benchmark: it runs only under `cargo bench`, where a failed unwrap stops the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "bench-key-0a1b2c3d";
const STEPS: usize = 500;
const ROUNDS: usize = 7;

fn spec_text() -> String {
    let mut text = String::from(
        "version: v1\nagent:\n  name: bench-root\n  system_prompt: Bench.\n  model: {provider: dummy, name: demo-model}\n  strategy: {type: simple}\n\
         workflow:\n  type: sequential\n  name: echo-500\n  steps:\n",
    );
    for index in 0..STEPS {
        text.push_str(&format!(
            "    - {{id: s{index:03}, kind: function, ref: echo}}\n"
        ));
    }
    text.push_str("components:\n  functions:\n    echo: {implementation: kneo.builtin.echo}\n");
    text
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path) -> (Server, String) {
    // KNEO_BENCH_KNEO_BIN points at an already built `kneo` (e.g. while the workspace is mid-edit).
    let kneo = std::env::var_os("KNEO_BENCH_KNEO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| kneo_testkit::bins::bin_path("kneo"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let log =
        std::fs::File::create(dir.join("server.log")).unwrap_or_else(|e| panic!("server log: {e}"));
    let child = Command::new(kneo)
        .args(["service", "serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env("KNEO_SERV_API_KEYS", format!("ops:{KEY}:admin"))
        .env("KNEO_SERV_REQUEST_LOGS", "false")
        .env_remove("KNEO_SERV_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .unwrap_or_else(|e| panic!("log handle: {e}")),
        )
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start kneo: {e}"));
    (Server(child), format!("http://127.0.0.1:{port}"))
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::create_dir_all(dir.path().join("specs")).unwrap_or_else(|e| panic!("specs dir: {e}"));
    std::fs::write(dir.path().join("specs/echo500.yaml"), spec_text())
        .unwrap_or_else(|e| panic!("spec: {e}"));
    let (_server, url) = start_server(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let run_id = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        let started = Instant::now();
        loop {
            if http.get(format!("{url}/healthz")).send().await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "kneo did not start; see {}/server.log",
                dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = Instant::now();
        let response = http
            .post(format!("{url}/v1/runs"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"spec_path": "specs/echo500.yaml", "input": "bench"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create run: {e}"));
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("run body: {e}"));
        let run_id = body["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run id in {body}"))
            .to_string();
        let trace: serde_json::Value = http
            .get(format!("{url}/v1/runs/{run_id}/trace?limit=1"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("trace: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("trace body: {e}"));
        println!(
            "run {run_id}: status {}, {} trace events (created in {:?})",
            body["status"],
            trace["total"],
            created.elapsed()
        );
        run_id
    });

    let kneo_ops = PathBuf::from(env!("CARGO_BIN_EXE_kneo-ops"));
    let mut timings = Vec::new();
    for round in 0..ROUNDS {
        let output = dir.path().join(format!("bench-{round}.tar.gz"));
        let started = Instant::now();
        let result = Command::new(&kneo_ops)
            .args([
                "capture",
                "--url",
                &url,
                "--run-id",
                &run_id,
                "--state-dir",
                ".kneo",
                "-o",
            ])
            .arg(&output)
            .current_dir(dir.path())
            .env("KNEO_SERV_API_KEY", KEY)
            .env("KNEO_SERV_PROFILES_PATH", dir.path().join("none.json"))
            .arg("--json")
            .stderr(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run kneo-ops: {e}"));
        let elapsed = started.elapsed();
        assert_eq!(
            result.status.code(),
            Some(0),
            "capture round {round} did not collect every item:\n{}",
            String::from_utf8_lossy(&result.stdout)
        );
        let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
        println!(
            "capture round {round}: {:>7.1} ms, bundle {size} bytes",
            elapsed.as_secs_f64() * 1000.0
        );
        timings.push(elapsed);
    }
    timings.sort();
    let median = timings[timings.len() / 2];
    println!(
        "kneo-ops capture of a run with ~{} trace events: median {:.1} ms, min {:.1} ms, max {:.1} ms over {ROUNDS} rounds (target < 2000 ms)",
        STEPS * 2,
        median.as_secs_f64() * 1000.0,
        timings[0].as_secs_f64() * 1000.0,
        timings[timings.len() - 1].as_secs_f64() * 1000.0
    );
}
