//! Shared helpers: the real kneo server in a tempdir, kneo-ops runs, bundle reading.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use serde_json::Value;

/// The operator key every test server accepts.
pub const KEY: &str = "ops-test-key-5f9c2a";

pub const APPROVAL_SPEC: &str = "\
version: v1
agent:
  name: approval-root
  system_prompt: Root approval agent.
  model: {provider: dummy, name: demo-model}
  strategy: {type: simple}
  runtime_preferences: {preferred_mode: bridge, allowed_modes: [bridge]}
workflow:
  type: sequential
  name: approval-workflow
  steps:
    - {id: draft,   kind: function, ref: draft_report}
    - {id: approve, kind: human,    ref: approval-reviewer}
    - {id: publish, kind: function, ref: publish_report}
components:
  functions:
    draft_report:   {implementation: examples.human_functions.draft_report}
    publish_report: {implementation: examples.human_functions.publish_report}
  humans:
    approval-reviewer:
      description: Please approve or edit the draft report.
      assignee: reviewer@example.com
      timeout_seconds: 86400
      on_timeout: escalate
";

pub const FAILING_SPEC: &str = "\
version: v1
agent:
  name: failing-root
  system_prompt: Root agent.
  model: {provider: dummy, name: demo-model}
  strategy: {type: simple}
workflow:
  type: sequential
  name: failing-workflow
  steps:
    - {id: prepare, kind: function, ref: echo}
    - {id: explode, kind: function, ref: fail}
components:
  functions:
    echo: {implementation: kneo.builtin.echo}
    fail: {implementation: kneo.builtin.fail}
";

pub const HELLO_SPEC: &str = "\
version: v1
agent:
  name: hello
  system_prompt: Say hello.
  model: {provider: dummy, name: demo-model}
  strategy: {type: simple}
";

/// The kneo-ops binary under test.
pub fn kneo_ops() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kneo-ops"))
}

/// A loopback port nothing listens on (right now).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Writes the test specs under `<dir>/specs/`.
pub fn write_specs(dir: &Path) {
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).expect("create specs dir");
    for (name, text) in [
        ("approval.yaml", APPROVAL_SPEC),
        ("failing.yaml", FAILING_SPEC),
        ("hello.yaml", HELLO_SPEC),
    ] {
        std::fs::write(specs.join(name), text).expect("write spec");
    }
}

/// The real `kneo service serve`, on a free loopback port, working in `dir`.
pub struct KneoServer {
    child: Option<Child>,
    pub url: String,
    pub dir: PathBuf,
}

impl KneoServer {
    /// Starts the server with `extra_env` and waits for `/healthz`.
    pub fn start(dir: &Path, extra_env: &[(&str, &str)]) -> KneoServer {
        let kneo = kneo_testkit::bins::bin_path("kneo");
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("create server log");
        let mut command = Command::new(kneo);
        command
            .args(["service", "serve", "--port", &port.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        for name in [
            "KNEO_SERV_DATABASE_URL",
            "KNEO_SERV_HEALTH_PROVIDERS",
            "KNEO_SERV_HEALTH_MCP_SECRETS",
            "OPENAI_API_KEY",
            "KNEO_SERV_ADMIN_API_KEY",
        ] {
            command.env_remove(name);
        }
        command.env("KNEO_SERV_API_KEYS", format!("ops:{KEY}:admin"));
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start kneo service serve");
        let server = KneoServer {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        server.wait_until_healthy();
        server
    }

    fn wait_until_healthy(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if http_get_status(&self.url, "/healthz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        panic!(
            "kneo did not answer /healthz at {} within 30 s; its log:\n{log}",
            self.url
        );
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for KneoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bare HTTP/1.0 GET (no client library, so it also works outside a runtime).
pub fn http_get_status(base: &str, path: &str) -> Option<u16> {
    use std::io::Write;
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// `POST url path` with a JSON body and the test key; the status and JSON answer.
pub async fn post_json(base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("POST {path}: {error}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Runs kneo-ops with `args`, a hermetic environment (no profile file, no inherited target)
/// plus `env`; returns the output and how long it took.
pub fn run_kneo_ops(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
) -> (std::process::Output, Duration) {
    let mut command = Command::new(kneo_ops());
    command.args(args).current_dir(cwd).stdin(Stdio::null());
    for name in [
        "KNEO_SERV_URL",
        "KNEO_SERV_API_KEY",
        "KNEO_SERV_DATABASE_URL",
    ] {
        command.env_remove(name);
    }
    command.env("KNEO_SERV_PROFILES_PATH", cwd.join("no-profiles.json"));
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output = command.output().expect("run kneo-ops");
    (output, started.elapsed())
}

/// Async form of [`run_kneo_ops`], for tests whose fake server runs on the test's runtime.
pub async fn run_kneo_ops_async(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
) -> (std::process::Output, Duration) {
    let mut command = tokio::process::Command::new(kneo_ops());
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for name in [
        "KNEO_SERV_URL",
        "KNEO_SERV_API_KEY",
        "KNEO_SERV_DATABASE_URL",
    ] {
        command.env_remove(name);
    }
    command.env("KNEO_SERV_PROFILES_PATH", cwd.join("no-profiles.json"));
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output = command.output().await.expect("run kneo-ops");
    (output, started.elapsed())
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file of a bundle, by path.
pub fn read_bundle(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("entry data");
        files.insert(name, data);
    }
    files
}

/// The bundle's manifest.
pub fn manifest(files: &BTreeMap<String, Vec<u8>>) -> Value {
    serde_json::from_slice(
        files
            .get("manifest.json")
            .expect("manifest.json at the root"),
    )
    .expect("manifest is JSON")
}

/// The manifest entry of `path`.
pub fn item<'a>(manifest: &'a Value, path: &str) -> &'a Value {
    manifest["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["path"] == path))
        .unwrap_or_else(|| panic!("no item {path} in the manifest: {manifest:#}"))
}
