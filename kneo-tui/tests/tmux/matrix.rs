//! The fault matrix (issue 13): for every fault, `kneo-ops triage --json` names the runbook
//! section and exits with the code the fault calls for, and kneo-tui in tmux at 80×24 shows the
//! same "Start with" line. Black-box: the real `kneo`, `kneo-ops` and `kneo-tui` binaries, real
//! Postgres where the fault needs it.
//!
//! The cases are independent, so they run in parallel threads (a few at a time: the machine is
//! shared), each with its own server; the Postgres ones share one cluster (one database each),
//! except Postgres stopped, which needs a cluster of its own. Every wait polls against a
//! generous bound; nothing asserts a duration.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kneo_testkit::postgres::{PgCluster, shared_cluster};
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions, VIEWER_KEY};
use serde_json::{Value, json};

use crate::support::{SCREEN_BOUND, Session, tui_command};

/// How the dashboard polls: "two refresh intervals" is 2 s; the bound on seeing a line
/// (`SCREEN_BOUND`) is generous, because the machine is shared.
const REFRESH: &str = "1s";
/// How long a fault may take to show in triage (a lease to expire, Postgres to stop).
const FAULT_BOUND: Duration = Duration::from_secs(90);
/// Cases running at once.
const PARALLEL: usize = 4;

/// What a case expects.
struct Expect {
    exit: u8,
    /// `None` for the healthy case (no finding at all).
    start_with: Option<String>,
}

/// One set-up fault: what to point the tools at, and the things that keep it alive.
struct Fault {
    url: String,
    key: Option<String>,
    /// Flags for both `kneo-ops triage` and kneo-tui (the thresholds).
    flags: Vec<String>,
    expect: Expect,
    /// Dropped after the checks (servers, stopped processes, clusters).
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

fn expect(exit: u8, start_with: &str) -> Expect {
    Expect {
        exit,
        start_with: Some(start_with.to_string()),
    }
}

/// A process stopped with SIGSTOP; continued (SIGCONT) when dropped, pass or fail.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal("STOP", pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("CONT", self.0);
    }
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// A child killed when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bare HTTP/1.0 request (no client library): the status and the JSON body.
fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to the test server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = response
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `kneo-ops triage --json` against the fault: exit code and the report.
fn triage(fault: &Fault) -> (Option<i32>, Value) {
    let mut command = Command::new(kneo_testkit::bins::bin_path("kneo-ops"));
    command
        .args(["triage", "--json", "--url", &fault.url])
        .args(&fault.flags)
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("KNEO_SERV_") {
            command.env_remove(&name);
        }
    }
    command.env("KNEO_SERV_PROFILES_PATH", "/nonexistent/kneo-profiles.json");
    if let Some(key) = &fault.key {
        command.env("KNEO_SERV_API_KEY", key);
    }
    let output = command.output().expect("run kneo-ops triage");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        json!({"unparsed": String::from_utf8_lossy(&output.stdout), "stderr": String::from_utf8_lossy(&output.stderr)})
    });
    (output.status.code(), report)
}

/// The "Start with" line of a screen, joined when it wraps onto a second row.
fn start_line(screen: &str) -> Option<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let index = lines
        .iter()
        .position(|l| l.trim_start().starts_with("Start with:"))?;
    let mut line = lines[index].trim().to_string();
    if let Some(next) = lines.get(index + 1).filter(|l| !l.starts_with('┌')) {
        line.push(' ');
        line.push_str(next.trim());
    }
    Some(line)
}

/// Both tools agree on the fault: triage's exit code and first finding, and the dashboard's
/// "Start with" line.
fn check(name: &str, fault: &Fault) {
    let started = Instant::now();
    let (code, report) = loop {
        let (code, report) = triage(fault);
        let settled = code == Some(i32::from(fault.expect.exit))
            && report["start_with"].as_str() == fault.expect.start_with.as_deref();
        if settled || started.elapsed() > FAULT_BOUND {
            break (code, report);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        (code, report["start_with"].as_str()),
        (
            Some(i32::from(fault.expect.exit)),
            fault.expect.start_with.as_deref()
        ),
        "{name}: kneo-ops triage --json:\n{report:#}"
    );

    let mut args: Vec<String> = vec![
        "--url".into(),
        fault.url.clone(),
        "--refresh".into(),
        REFRESH.into(),
    ];
    if let Some(key) = &fault.key {
        args.extend(["--api-key".into(), key.clone()]);
    }
    args.extend(fault.flags.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tui = Session::start(80, 24, &tui_command(&args));
    match &fault.expect.start_with {
        Some(line) => {
            let wanted = format!("Start with: {line}");
            tui.wait_for(&format!("{name}: {wanted:?}"), SCREEN_BOUND, |screen| {
                start_line(screen).as_deref() == Some(wanted.as_str())
            });
        }
        None => {
            tui.wait_for(
                &format!("{name}: a healthy screen"),
                SCREEN_BOUND,
                |screen| screen.contains("HEALTHY") && screen.contains("Every check is ok."),
            );
            let screen = tui.screen();
            assert!(
                !screen.contains('!') && !screen.contains('✗'),
                "{name}: no warning anywhere:\n{screen}"
            );
        }
    }
    assert!(tui.command_alive(), "{name}: the dashboard keeps running");
}

fn server(options: ServerOptions) -> KneoServer {
    KneoServer::start(options)
}

fn operator(server: KneoServer, flags: &[&str], expect: Expect) -> Fault {
    Fault {
        url: server.url.clone(),
        key: Some(OPERATOR_KEY.into()),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        expect,
        _keep: vec![Box::new(server)],
    }
}

/// Waits until `probe` holds, or panics naming `what`.
fn wait_until(what: &str, probe: impl Fn() -> bool) {
    let started = Instant::now();
    while !probe() {
        assert!(started.elapsed() < FAULT_BOUND, "waited for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A database owned by a login role of its own (so grants can be taken away), and its URL.
fn owned_database(cluster: &PgCluster, role: &str) -> String {
    let admin = cluster.url("postgres");
    let name = format!("kneo_matrix_{role}");
    cluster.psql(&admin, &format!("CREATE ROLE {role} LOGIN"));
    cluster.psql(&admin, &format!("CREATE DATABASE {name} OWNER {role}"));
    format!(
        "postgres://{role}@{}:{}/{name}",
        cluster.host(),
        cluster.port()
    )
}

// ---- the cases ----

fn healthy() -> Fault {
    operator(
        server(ServerOptions::default()),
        &[],
        Expect {
            exit: 0,
            start_with: None,
        },
    )
}

fn process_down() -> Fault {
    let mut server = server(ServerOptions::default());
    let url = server.url.clone();
    server.kill();
    Fault {
        url,
        key: Some(OPERATOR_KEY.into()),
        flags: Vec::new(),
        expect: expect(2, "/healthz: process down (connection refused) (§ 1.3)"),
        _keep: vec![Box::new(server)],
    }
}

fn hung() -> Fault {
    let server = server(ServerOptions::default());
    let stopped = Stopped::new(server.pid().expect("server pid"));
    Fault {
        url: server.url.clone(),
        key: Some(OPERATOR_KEY.into()),
        flags: vec!["--timeout".into(), "2s".into()],
        expect: expect(2, "/healthz: hung (connects, never answers) (§ 1.5)"),
        // Continued before it is killed: the order of the fields of `_keep` is drop order.
        _keep: vec![Box::new(stopped), Box::new(server)],
    }
}

fn postgres_stopped() -> Fault {
    let cluster = PgCluster::start_new();
    let database = cluster.create_database();
    let server = server(ServerOptions::default().postgres(&database));
    cluster.stop();
    Fault {
        url: server.url.clone(),
        key: Some(OPERATOR_KEY.into()),
        flags: Vec::new(),
        expect: expect(1, "run_state_store (§ 2.2)"),
        _keep: vec![Box::new(server), Box::new(cluster)],
    }
}

fn schema_missing() -> Fault {
    let cluster = shared_cluster();
    let database = cluster.create_database();
    let server = server(ServerOptions::default().postgres(&database));
    cluster.psql(&database, "DROP TABLE runs CASCADE");
    operator(server, &[], expect(1, "run_state_store (§ 2.4)"))
}

fn continuation_store_unusable() -> Fault {
    let server = server(ServerOptions::default());
    let directory = server.dir.join(".kneo").join("continuations");
    std::fs::rename(&directory, server.dir.join("continuations-moved"))
        .expect("move the continuation directory away");
    operator(server, &[], expect(1, "continuation_store (§ 2.8)"))
}

fn provider_secret_missing() -> Fault {
    let server = server(ServerOptions::default().env("KNEO_SERV_HEALTH_PROVIDERS", "openai"));
    operator(server, &[], expect(1, "providers (§ 3.2)"))
}

fn mcp_secret_missing() -> Fault {
    let server = server(
        ServerOptions::default().env("KNEO_SERV_HEALTH_MCP_SECRETS", "KNEO_MATRIX_MCP_TOKEN"),
    );
    operator(server, &[], expect(1, "mcp (§ 3.2)"))
}

fn zero_workers_with_a_backlog() -> Fault {
    let server = server(ServerOptions::default().env("KNEO_SERV_WORKER_CONCURRENCY", "0"));
    let (status, body) = http(
        &server.url,
        "POST",
        "/v1/runs",
        &[("Authorization", &bearer(OPERATOR_KEY))],
        &json!({"spec_path": "specs/hello.yaml", "input": "waits", "async_mode": true}),
    );
    assert_eq!(status, 202, "{body}");
    operator(
        server,
        &["--queued-max-age", "1s"],
        expect(1, "1 queued run(s) waiting over 1 s and no worker (§ 5.1)"),
    )
}

const LONG_NAP: &str = "version: v1
agent: {name: napping-root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: napping-workflow
  steps:
    - {id: nap, kind: function, ref: sleep}
components:
  functions:
    sleep: {implementation: kneo.builtin.sleep}
";

fn an_expired_lease_of_a_killed_worker() -> Fault {
    let cluster = shared_cluster();
    let database = cluster.create_database();
    // The API process runs no worker: only the separate one below claims runs.
    let server = server(
        ServerOptions::default()
            .postgres(&database)
            .env("KNEO_SERV_WORKER_CONCURRENCY", "0"),
    );
    std::fs::write(server.dir.join("specs").join("nap.yaml"), LONG_NAP).expect("write a spec");
    let worker = start_worker(&database, &server.dir);
    let (status, body) = http(
        &server.url,
        "POST",
        "/v1/runs",
        &[("Authorization", &bearer(OPERATOR_KEY))],
        &json!({"spec_path": "specs/nap.yaml", "input": "600", "async_mode": true}),
    );
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().expect("run id").to_string();
    wait_until("the worker to claim the run", || {
        http(
            &server.url,
            "GET",
            &format!("/v1/runs/{run_id}"),
            &[("Authorization", &bearer(OPERATOR_KEY))],
            &Value::Null,
        )
        .1["status"]
            == "running"
    });
    drop(worker); // killed (SIGKILL) while it holds the lease
    operator(
        server,
        &[],
        expect(1, &format!("run {run_id}: lease expired (§ 5.1)")),
    )
}

/// A `kneo service worker` on `database` with a 2 s lease.
fn start_worker(database: &str, dir: &Path) -> Reaped {
    let mut command = Command::new(kneo_testkit::bins::bin_path("kneo"));
    command
        .args(["service", "worker", "--concurrency", "1"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("KNEO_SERV_") {
            command.env_remove(&name);
        }
    }
    command
        .env("KNEO_SERV_DATABASE_URL", database)
        .env("KNEO_SERV_WORKER_LEASE_SECONDS", "2")
        .env("KNEO_SERV_WORKER_POLL_SECONDS", "0.1");
    Reaped(command.spawn().expect("start kneo service worker"))
}

const QUICK_APPROVAL: &str = "version: v1
agent:
  name: quick-approval-root
  model: {provider: dummy, name: m}
workflow:
  type: sequential
  name: quick-approval
  steps:
    - {id: approve, kind: human, ref: reviewer}
components:
  humans:
    reviewer:
      description: Approve within a second.
      timeout_seconds: 1
      on_timeout: fail
";

fn an_overdue_human_task() -> Fault {
    // The sweep that would expire the task runs once an hour here.
    let server = server(ServerOptions::default().env("KNEO_SERV_SWEEP_INTERVAL_SECONDS", "3600"));
    std::fs::write(server.dir.join("specs").join("quick.yaml"), QUICK_APPROVAL)
        .expect("write a spec");
    let (status, body) = http(
        &server.url,
        "POST",
        "/v1/runs",
        &[("Authorization", &bearer(OPERATOR_KEY))],
        &json!({"spec_path": "specs/quick.yaml", "input": "please"}),
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("blocked")),
        "{body}"
    );
    let run_id = body["run_id"].as_str().expect("run id").to_string();
    operator(
        server,
        &["--blocked-grace", "1s"],
        expect(
            1,
            &format!("run {run_id}: human task past its deadline, still pending (§ 8.5)"),
        ),
    )
}

fn a_wrong_key_given_to_the_tool() -> Fault {
    let server = server(ServerOptions::default());
    Fault {
        url: server.url.clone(),
        key: Some("not-a-configured-key".into()),
        flags: Vec::new(),
        expect: expect(3, "the tool's API key was rejected (401) (§ 4.1)"),
        _keep: vec![Box::new(server)],
    }
}

fn a_key_without_the_scope() -> Fault {
    let keys = format!(
        "{};narrow:narrowkey123:runs:read",
        kneo_testkit::server::api_keys()
    );
    let server = server(ServerOptions::default().env("KNEO_SERV_API_KEYS", &keys));
    Fault {
        url: server.url.clone(),
        key: Some("narrowkey123".into()),
        flags: Vec::new(),
        expect: expect(3, "the tool's key (narrow) lacks audit:read (§ 4.2)"),
        _keep: vec![Box::new(server)],
    }
}

fn a_clients_403s() -> Fault {
    let server = server(ServerOptions::default());
    for _ in 0..2 {
        let (status, _) = http(
            &server.url,
            "POST",
            "/v1/runs",
            &[("Authorization", &bearer(VIEWER_KEY))],
            &json!({"spec_path": "specs/hello.yaml", "input": "not allowed"}),
        );
        assert_eq!(status, 403);
    }
    operator(
        server,
        &[],
        expect(
            1,
            "key view got HTTP 403 forbidden on POST /v1/runs (§ 4.2)",
        ),
    )
}

fn a_clients_idempotency_conflicts() -> Fault {
    let server = server(ServerOptions::default());
    let statuses: Vec<u16> = ["first", "second"]
        .into_iter()
        .map(|input| {
            http(
                &server.url,
                "POST",
                "/v1/runs",
                &[
                    ("Authorization", &bearer(OPERATOR_KEY)),
                    ("Idempotency-Key", "matrix-key-1"),
                ],
                &json!({"spec_path": "specs/hello.yaml", "input": input}),
            )
            .0
        })
        .collect();
    assert_eq!(statuses, [200, 409]);
    operator(
        server,
        &[],
        expect(
            1,
            "key ops got HTTP 409 idempotency_key_conflict on POST /v1/runs (§ 5.4)",
        ),
    )
}

fn postgres_rights_revoked() -> Fault {
    let cluster = shared_cluster();
    let database = owned_database(cluster, "kneo_revoked");
    let server = server(ServerOptions::default().postgres(&database));
    cluster.psql(
        &cluster.url("kneo_matrix_kneo_revoked"),
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM kneo_revoked",
    );
    operator(server, &[], expect(1, "run_state_store (§ 2.2)"))
}

#[test]
fn every_fault_names_its_section_and_exit_code_in_both_tools() {
    type Case = (&'static str, fn() -> Fault);
    let cases: [Case; 16] = [
        ("healthy", healthy),
        ("process down", process_down),
        ("hung", hung),
        ("Postgres stopped", postgres_stopped),
        ("schema missing", schema_missing),
        ("continuation store unusable", continuation_store_unusable),
        ("provider secret missing", provider_secret_missing),
        ("MCP secret missing", mcp_secret_missing),
        ("zero workers with a backlog", zero_workers_with_a_backlog),
        (
            "an expired lease of a killed worker",
            an_expired_lease_of_a_killed_worker,
        ),
        ("an overdue human task", an_overdue_human_task),
        (
            "a wrong key given to the tool",
            a_wrong_key_given_to_the_tool,
        ),
        ("a key without the scope", a_key_without_the_scope),
        ("a client's 403s", a_clients_403s),
        (
            "a client's idempotency conflicts",
            a_clients_idempotency_conflicts,
        ),
        ("Postgres rights revoked", postgres_rights_revoked),
    ];
    // The binaries are built once, before the threads need them.
    for name in ["kneo", "kneo-ops"] {
        kneo_testkit::bins::bin_path(name);
    }
    let mut failures = Vec::new();
    for batch in cases.chunks(PARALLEL) {
        std::thread::scope(|scope| {
            let running: Vec<_> = batch
                .iter()
                .map(|(name, setup)| {
                    (
                        *name,
                        scope.spawn(move || {
                            let started = Instant::now();
                            let fault = setup();
                            let set_up = started.elapsed();
                            check(name, &fault);
                            eprintln!(
                                "matrix: {name}: set up in {} ms, checked in {} ms",
                                set_up.as_millis(),
                                (started.elapsed() - set_up).as_millis()
                            );
                        }),
                    )
                })
                .collect();
            for (name, handle) in running {
                if let Err(panic) = handle.join() {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{name}: {message}"));
                }
            }
        });
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
