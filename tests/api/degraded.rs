//! Starting with nothing configured, and staying up when a store is missing or hangs: the service
//! answers `/healthz`, `/readyz` names the failing check with a stable kind (`timeout` when a
//! probe was cut off by its bound), and readiness comes back by itself.
//!
//! How fast `/readyz` answers while a store hangs is a figure of docs/performance.md
//! ("Readiness while Postgres hangs"), measured with `kneo-load --mode readyz`, not a pass mark
//! here: waits below are bounded only to fail instead of hanging.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kneo_testkit::bins::bin_path;
use kneo_testkit::fixtures;
use kneo_testkit::http::{Answer, Api};
use kneo_testkit::postgres::PgCluster;
use kneo_testkit::server::{self, KneoServer, ServerOptions};
use serde_json::json;

/// The eight checks `/readyz` reports (readiness.rs `CHECK_NAMES`).
const CHECK_NAMES: [&str; 8] = [
    "api",
    "run_state_store",
    "continuation_store",
    "queue",
    "runtime_registry",
    "tool_registry",
    "providers",
    "mcp",
];

/// How long a test waits for a state it expects (started, degraded, recovered): far beyond the
/// seconds each takes, so only a service that never gets there reaches it.
const WAIT_BOUND: Duration = Duration::from_secs(60);

/// A `kneo` process this test spawned itself; killed and reaped however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The URL of the `listening on` line, or a failure naming what kneo printed instead.
fn listening_url(child: &mut Child, stderr_path: &Path) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let line = server::first_line(stdout, Duration::from_secs(20));
    match server::listening_url(&line) {
        Some(url) => url.to_string(),
        None => panic!(
            "kneo did not start (first stdout line {line:?}, exit {:?}); stderr:\n{}",
            child.try_wait(),
            std::fs::read_to_string(stderr_path).unwrap_or_default()
        ),
    }
}

/// Polls unauthenticated `GET path` until it answers `status`, for at most [`WAIT_BOUND`];
/// that answer. `what` says in a failure what the test was waiting for.
async fn wait_for(api: &Api, path: &str, status: u16, what: &str) -> Answer {
    let deadline = Instant::now() + WAIT_BOUND;
    loop {
        let answer = api.send("GET", path, &[], None).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{path} not {status} {what} within {WAIT_BOUND:?}: {} {}",
            answer.status,
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(api: &Api) -> Answer {
    api.send("GET", "/readyz", &[], None).await
}

/// With no environment at all (only `PATH` and `HOME`), `kneo service serve` starts on the
/// embedded store under `./.kneo` (SQLite in WAL mode plus the continuations directory), with auth
/// off on loopback as documented in troubleshooting § 1.1, and every readiness check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_no_environment_serves_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir for the server's stderr");
    let stderr_path = logs.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("create the stderr file");
    let mut command = Command::new(bin_path("kneo"));
    command
        .args(["service", "serve", "--port", "0"])
        .current_dir(dir.path())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    let mut child = ChildGuard(command.spawn().expect("start the kneo binary"));
    let url = listening_url(&mut child.0, &stderr_path);
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "binds loopback by default: {url}"
    );
    let api = Api::new(&url);

    let health = wait_for(&api, "/healthz", 200, "after the start").await;
    assert_eq!(health.body["ok"], true, "{}", health.text);
    assert_eq!(
        health.body["service"], "kneo-serv-platform",
        "{}",
        health.text
    );
    assert_eq!(
        health.body["version"],
        env!("CARGO_PKG_VERSION"),
        "{}",
        health.text
    );
    assert_eq!(
        health.body["metadata"]["status"], "healthy",
        "{}",
        health.text
    );

    let ready = readyz(&api).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["metadata"]["ready"], true, "{}", ready.text);
    let checks = ready.body["metadata"]["checks"]
        .as_object()
        .unwrap_or_else(|| panic!("no metadata.checks: {}", ready.text));
    for name in CHECK_NAMES {
        assert_eq!(checks[name]["ok"], true, "check {name}: {}", ready.text);
    }
    assert_eq!(checks.len(), CHECK_NAMES.len(), "{}", ready.text);
    assert_eq!(checks["continuation_store"]["kind"], "files");

    // Auth is off with no keys: a protected route answers without a key, and the start logged why.
    std::fs::create_dir(dir.path().join("specs")).expect("create specs/");
    std::fs::write(dir.path().join("specs/hello.yaml"), fixtures::HELLO).expect("write a spec");
    let run = api
        .send(
            "POST",
            "/v1/runs",
            &[],
            Some(&json!({"spec_path": "specs/hello.yaml", "input": "no env"})),
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.body["status"], "completed", "{}", run.text);
    let log = std::fs::read_to_string(&stderr_path).expect("read stderr");
    assert!(
        log.contains("auth is disabled (local development only)"),
        "{log}"
    );

    let state = dir.path().join(".kneo");
    let sqlite = state.join("kneo_runs.sqlite");
    assert!(sqlite.is_file(), "{sqlite:?} missing");
    assert!(
        state.join("continuations").is_dir(),
        "continuations/ missing"
    );
    // Bytes 18 and 19 of an SQLite header are the write and read format versions: 2 means WAL.
    let header = std::fs::read(&sqlite).expect("read the SQLite file");
    assert!(
        header.starts_with(b"SQLite format 3\0"),
        "not an SQLite file"
    );
    assert_eq!(
        (header[18], header[19]),
        (2, 2),
        "the embedded store is not in WAL mode"
    );
    assert!(
        state.join("kneo_runs.sqlite-wal").is_file(),
        "no WAL file beside the store after a write"
    );
}

/// Something that accepts TCP connections on loopback and never says a word: a Postgres that
/// hangs. Accepted sockets are kept open until the process ends, so the client only sees silence.
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// A Postgres that accepts connections and never answers does not stop the start (the pool's 2 s
/// connection-create timeout gives up, and the service starts degraded with kind `timeout`) nor
/// hang `/readyz`: each probe is cut off by the 1.5 s readiness bound, so `/readyz` answers 503,
/// every time, with the store checks failing as `timeout` (cut off, not refused) and nothing of
/// the DSN in the public body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_timeout_when_postgres_hangs() {
    let port = silent_listener();
    let url = format!("postgres://kneo:pw@127.0.0.1:{port}/kneo");
    let server = KneoServer::start(ServerOptions::default().postgres(&url));
    let api = Api::new(&server.url);
    // The listening line comes before the start is recorded in the (hanging) store, so the
    // first answer may take a few seconds; it must come.
    let health = wait_for(&api, "/healthz", 200, "after the start").await;
    assert_eq!(health.body["metadata"]["status"], "healthy");

    // Several times: a probe left hanging by one request must not keep the next from answering.
    for attempt in 1..=3 {
        let ready = readyz(&api).await;
        assert_eq!(ready.status, 503, "attempt {attempt}: {}", ready.text);
        assert_eq!(ready.error_code(), Some("not_ready"), "{}", ready.text);
        let checks = &ready.body["detail"]["metadata"]["checks"];
        for name in ["run_state_store", "continuation_store", "queue"] {
            assert_eq!(checks[name]["ok"], false, "{name}: {}", ready.text);
            assert_eq!(checks[name]["error"], "timeout", "{name}: {}", ready.text);
            assert_eq!(checks[name]["runbook"], "§ 2.2", "{name}: {}", ready.text);
        }
        assert_eq!(checks["api"]["ok"], true, "{}", ready.text);
        assert!(
            !ready.text.contains("pw") && !ready.text.contains(&port.to_string()),
            "the public body leaks the DSN: {}",
            ready.text
        );
    }
    let log = server.log();
    let degraded_start = log
        .lines()
        .find(|line| line.contains("Postgres is not usable yet; starting degraded"))
        .unwrap_or_else(|| panic!("no degraded-start line in the log:\n{log}"));
    assert!(
        degraded_start.contains(r#""kind":"timeout""#),
        "{degraded_start}"
    );
    assert!(!log.contains("kneo:pw@"), "the password reached the log");
}

/// The continuation directory vanishing under a running service (an unmounted volume) fails
/// readiness as `continuation_store` `not_found` (kneo does not re-create it, troubleshooting
/// § 2.8), and putting it back makes `/readyz` 200 again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_continuation_directory_fails_readiness_and_recovers_without_restart() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let instance =
        api.send("GET", "/healthz", &[], None).await.body["metadata"]["instance_id"].clone();
    assert!(instance.is_string(), "no instance_id in /healthz");
    let ready = readyz(&api).await;
    assert_eq!(ready.status, 200, "{}", ready.text);

    let directory = server.dir.join(".kneo").join("continuations");
    let moved = server.dir.join("continuations-moved-away");
    std::fs::rename(&directory, &moved).expect("move the continuation directory away");

    let ready = wait_for(&api, "/readyz", 503, "after the directory went away").await;
    assert_eq!(ready.error_code(), Some("not_ready"), "{}", ready.text);
    let checks = &ready.body["detail"]["metadata"]["checks"];
    let continuations = &checks["continuation_store"];
    assert_eq!(continuations["ok"], false, "{}", ready.text);
    assert_eq!(continuations["error"], "not_found", "{}", ready.text);
    assert_eq!(continuations["runbook"], "§ 2.8", "{}", ready.text);
    assert_eq!(checks["run_state_store"]["ok"], true, "{}", ready.text);
    assert!(
        !directory.exists(),
        "the service re-created the continuation directory"
    );

    std::fs::rename(&moved, &directory).expect("put the continuation directory back");
    wait_for(&api, "/readyz", 200, "after the directory returned").await;
    let after = api.send("GET", "/healthz", &[], None).await;
    assert_eq!(
        after.body["metadata"]["instance_id"], instance,
        "the service restarted: {}",
        after.text
    );
}

/// A Postgres that only takes TLS (testkit's `ssl=on` cluster with a throwaway CA): a certificate
/// signed by another CA fails readiness as `certificate_invalid`, plain TCP against it as
/// `tls_failed`, both with runbook § 2.9 and the degraded-start line naming it, and the right CA
/// with `sslmode=verify-full` makes every check pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_postgres_tls_failures_and_passes_over_verify_full() {
    let cluster = PgCluster::start_with_tls(true);
    let database = cluster.create_database();
    let files = cluster
        .certificates()
        .expect("a TLS cluster has certificates");
    let with_ca = |ca: &Path| {
        format!(
            "{database}?sslmode=verify-full&sslrootcert={}",
            ca.display()
        )
    };
    let cases = [
        (with_ca(&files.other_ca_cert()), "certificate_invalid"),
        (format!("{database}?sslmode=disable"), "tls_failed"),
    ];
    for (url, kind) in cases {
        let server = KneoServer::start(ServerOptions::default().postgres(&url));
        let api = Api::new(&server.url);
        let ready = wait_for(&api, "/readyz", 503, "with a refused TLS session").await;
        let checks = &ready.body["detail"]["metadata"]["checks"];
        for name in ["run_state_store", "continuation_store", "queue"] {
            assert_eq!(checks[name]["error"], kind, "{name}: {}", ready.text);
            assert_eq!(checks[name]["runbook"], "§ 2.9", "{name}: {}", ready.text);
        }
        let log = server.log();
        let degraded_start = log
            .lines()
            .find(|line| line.contains("Postgres is not usable yet; starting degraded"))
            .unwrap_or_else(|| panic!("no degraded-start line in the log:\n{log}"));
        assert!(
            degraded_start.contains(&format!(r#""kind":"{kind}""#))
                && degraded_start.contains("§ 2.9"),
            "{degraded_start}"
        );
    }
    // A retention window kneo-serv would act on is not silently ignored: the start names it.
    let server = KneoServer::start(
        ServerOptions::default()
            .postgres(&with_ca(&files.ca_cert()))
            .env("KNEO_SERV_RETENTION_RUNS_DAYS", "30"),
    );
    let api = Api::new(&server.url);
    let ready = wait_for(&api, "/readyz", 200, "over verify-full with the right CA").await;
    assert_eq!(ready.body["metadata"]["ready"], true, "{}", ready.text);
    let log = server.log();
    assert!(
        log.lines()
            .any(|line| line.contains("kneo does not act on them yet")
                && line.contains("KNEO_SERV_RETENTION_RUNS_DAYS")),
        "no warning about the unread variable:\n{log}"
    );
}
