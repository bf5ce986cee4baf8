//! The rollback drill: run version "N-1", back it up, "upgrade" to a higher version with a newer
//! migration that is broken in itself, then `rollback plan` names the backup, `rollback run`
//! brings the old version back to a green `/readyz`, and triage calls it healthy (exit 0).

use std::time::{Duration, Instant};

use kneo_testkit::bins::bin_path;
use kneo_testkit::http::{Answer, Api};
use kneo_testkit::server::{KneoServer, ServerOptions, api_keys};
use serde_json::Value;

use super::backup_cli::{make_runs, ops};

const OLD_VERSION: &str = "0.0.9-drill";

/// `GET path` on the server at `url` with the operator key, from this synchronous test.
fn get(url: &str, path: &str) -> Answer {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(Api::new(url).get(path, kneo_testkit::server::OPERATOR_KEY))
}

/// Kills the old version started by the rollback, whatever happens.
struct PidFile(std::path::PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn a_failed_upgrade_is_rolled_back_to_the_verified_backup_of_the_previous_version() {
    let mut server =
        KneoServer::start(ServerOptions::default().env("KNEO_SERV_DRILL_VERSION", OLD_VERSION));
    let (url, dir) = (server.url.clone(), server.dir.clone());
    let state_dir = dir.join(".kneo").display().to_string();
    let kept = make_runs(&url, 3);
    let health = get(&url, "/healthz").body;
    assert_eq!(health["version"], OLD_VERSION);

    let backups = tempfile::tempdir().expect("tempdir");
    let backups_dir = backups.path().display().to_string();
    let archive = backups
        .path()
        .join("before-upgrade.tar.gz")
        .display()
        .to_string();
    assert!(
        ops(&["backup", "--state-dir", &state_dir, "-o", &archive])
            .status
            .success()
    );
    assert!(ops(&["verify", "--deep", &archive]).status.success());

    // The upgrade: the real version, one more migration, and a release broken in itself.
    server.restart_with(&[
        ("KNEO_SERV_DRILL_VERSION", ""),
        ("KNEO_SERV_DRILL_EXTRA_MIGRATION", "true"),
        ("KNEO_SERV_DRILL_BROKEN_RELEASE", "true"),
    ]);
    let health = get(&url, "/healthz").body;
    assert_ne!(health["version"], OLD_VERSION);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = get(&url, "/readyz").status;
        assert_eq!(status, 503);
        let events = get(&url, "/v1/service/events").body;
        let recorded = events["events"].as_array().cloned().unwrap_or_default();
        if recorded
            .iter()
            .any(|e| e["event_type"] == "readiness.changed" && e["details"]["ready"] == false)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the readiness failure was never recorded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let planned = ops(&[
        "rollback",
        "plan",
        "--state-dir",
        &state_dir,
        "--backups",
        &backups_dir,
        "--json",
    ]);
    assert_eq!(
        planned.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let plan: Value = serde_json::from_slice(&planned.stdout).expect("plan JSON");
    assert_eq!(plan["verdict"], "roll_back", "{plan}");
    assert_eq!(plan["deploy"]["previous_version"], OLD_VERSION);
    assert!(
        plan["backup"]["path"]
            .as_str()
            .unwrap_or_default()
            .ends_with("before-upgrade.tar.gz")
    );
    assert_eq!(plan["steps"].as_array().map(Vec::len), Some(4));

    let pid = server.pid().expect("the upgraded server runs");
    // The test process is the server's parent, so the killed server stays a zombie until the
    // test reaps it: wait for it to stop running, not to disappear.
    let stop = format!(
        "kill {pid}; while [ -e /proc/{pid} ] && ! grep -qs zombie /proc/{pid}/status; do sleep 0.1; done"
    );
    let pid_file = dir.join("old.pid");
    let _cleanup = PidFile(pid_file.clone());
    let start = format!(
        "cd {} && KNEO_SERV_DRILL_VERSION={OLD_VERSION} KNEO_SERV_API_KEYS='{}' nohup {} service serve --port {} > old.log 2>&1 < /dev/null & echo $! > {}",
        dir.display(),
        api_keys(),
        bin_path("kneo").display(),
        server.port,
        pid_file.display()
    );
    let log = dir.join("rollback.log").display().to_string();
    let ran = ops(&[
        "rollback",
        "run",
        "--state-dir",
        &state_dir,
        "--backups",
        &backups_dir,
        "--url",
        &url,
        "--stop-cmd",
        &stop,
        "--start-cmd",
        &start,
        "--yes",
        "--step-timeout",
        "30s",
        "--log",
        &log,
    ]);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(ran.status.code(), Some(0), "{output}");
    let status = get(&url, "/readyz").status;
    assert_eq!(status, 200, "the old version is ready");
    let health = get(&url, "/healthz").body;
    assert_eq!(health["version"], OLD_VERSION);
    for id in &kept {
        let status = get(&url, &format!("/v1/runs/{id}")).status;
        assert_eq!(status, 200, "run {id} came back with the backup");
    }
    let logged = std::fs::read_to_string(&log).expect("rollback log");
    for step in ["step 1", "step 2", "step 3", "step 4", "rollback done"] {
        assert!(
            logged.contains(step),
            "{step} missing from the log:\n{logged}"
        );
    }

    // The service after the rollback is healthy: the restarts it took are notes.
    let triaged = std::process::Command::new(bin_path("kneo-ops"))
        .args(["triage", "--url", &url])
        .env_remove("KNEO_SERV_URL")
        .env("KNEO_SERV_API_KEY", kneo_testkit::server::OPERATOR_KEY)
        .env("KNEO_SERV_PROFILES_PATH", dir.join("no-profiles.json"))
        .output()
        .expect("run kneo-ops triage");
    let report = String::from_utf8_lossy(&triaged.stdout);
    assert_eq!(triaged.status.code(), Some(0), "{report}");
    assert!(report.contains("Overall: HEALTHY"), "{report}");
}
