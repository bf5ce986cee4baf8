//! Shared helpers: kneo-ops runs and bundle reading. The real kneo server is testkit's
//! ([`kneo_testkit::server::KneoServer`]: it binds port 0 and reports the port) and so is the
//! HTTP client ([`kneo_testkit::http::Api`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
pub use kneo_testkit::http::Api;
pub use kneo_testkit::server::{KneoServer, ServerOptions};
use serde_json::Value;

/// The key the tests give kneo-ops: the admin key of testkit's servers (every route, so a
/// capture or triage is never cut short by a scope).
pub const KEY: &str = kneo_testkit::server::ADMIN_KEY;

/// A loopback port nothing listens on: port 1 (tcpmux) is not served on a test machine, and,
/// unlike a port bound and released, no parallel test can take it in the meantime.
pub const CLOSED_PORT: u16 = 1;

/// The kneo-ops binary under test.
pub fn kneo_ops() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kneo-ops"))
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
