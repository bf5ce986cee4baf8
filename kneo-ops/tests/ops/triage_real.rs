//! `kneo-ops triage` against the real kneo server: healthy, degraded, down.

use crate::support::*;

#[test]
fn triage_exit_codes_follow_the_service() {
    let mut server = KneoServer::start(ServerOptions::default());
    let dir = server.dir.clone();
    let (healthy, _) = run_kneo_ops(
        &["triage", "--url", &server.url],
        &[("KNEO_SERV_API_KEY", KEY)],
        &dir,
    );
    let report = text(&healthy.stdout);
    assert_eq!(
        healthy.status.code(),
        Some(0),
        "{report}\n{}",
        text(&healthy.stderr)
    );
    assert!(report.contains("Overall: HEALTHY"), "{report}");
    assert!(
        report.contains("✓ 3 Queue and runs: flowing"),
        "with a key the runs are listed: {report}"
    );

    let (as_json, _) = run_kneo_ops(
        &["triage", "--url", &server.url, "--json"],
        &[("KNEO_SERV_API_KEY", KEY)],
        &dir,
    );
    let document: serde_json::Value =
        serde_json::from_slice(&as_json.stdout).expect("--json prints JSON");
    assert_eq!(document["health"], "healthy");
    assert_eq!(document["stages"].as_array().map(Vec::len), Some(4));

    server.stop();
    let (down, _) = run_kneo_ops(
        &["triage", "--url", &server.url],
        &[("KNEO_SERV_API_KEY", KEY)],
        &dir,
    );
    let report = text(&down.stdout);
    assert_eq!(down.status.code(), Some(2), "{report}");
    assert!(
        report.contains("Overall: DOWN") && report.contains("process down (connection refused)"),
        "{report}"
    );
}

#[test]
fn a_missing_provider_secret_is_degraded_with_section_3_2() {
    let server =
        KneoServer::start(ServerOptions::default().env("KNEO_SERV_HEALTH_PROVIDERS", "openai"));
    let dir = server.dir.clone();
    let (degraded, _) = run_kneo_ops(
        &["triage", "--url", &server.url],
        &[("KNEO_SERV_API_KEY", KEY)],
        &dir,
    );
    let report = text(&degraded.stdout);
    assert_eq!(
        degraded.status.code(),
        Some(1),
        "{report}\n{}",
        text(&degraded.stderr)
    );
    assert!(report.contains("Overall: DEGRADED"), "{report}");
    assert!(report.contains("✗ providers  [§ 3.2]"), "{report}");
    assert!(report.contains("OPENAI_API_KEY"), "{report}");
    drop(server);
}

/// `kneo-ops triage` of a testkit server (its operator key): exit code and the text.
fn triage_of(url: &str, dir: &std::path::Path) -> (Option<i32>, String) {
    let (output, _) = run_kneo_ops(
        &["triage", "--url", url],
        &[("KNEO_SERV_API_KEY", kneo_testkit::server::OPERATOR_KEY)],
        dir,
    );
    (output.status.code(), text(&output.stdout))
}

#[test]
fn a_restart_a_kill_and_a_restore_leave_a_healthy_service_healthy() {
    use kneo_testkit::server::{KneoServer as TestServer, ServerOptions};
    let mut server = TestServer::start(ServerOptions::default());
    let dir = server.dir.clone();
    let (code, report) = triage_of(&server.url, &dir);
    assert_eq!(code, Some(0), "{report}");

    // A deliberate restart (SIGTERM, a clean stop) is a note.
    server.restart();
    let (code, report) = triage_of(&server.url, &dir);
    assert_eq!(code, Some(0), "after a restart:\n{report}");
    assert!(report.contains("· the service started"), "{report}");

    // A kill -9 and a start: one crash is a note too, not a restart loop.
    server.kill();
    server.restart();
    let (code, report) = triage_of(&server.url, &dir);
    assert_eq!(code, Some(0), "after kill -9 and a start:\n{report}");
    assert!(report.contains("Overall: HEALTHY"), "{report}");

    // A backup restored over the store, and the service started on it.
    let state_dir = dir.join(".kneo").display().to_string();
    let archive = dir.join("before.tar.gz").display().to_string();
    let (backup, _) = run_kneo_ops(
        &["backup", "--state-dir", &state_dir, "-o", &archive],
        &[],
        &dir,
    );
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    server.stop();
    let (restored, _) = run_kneo_ops(
        &[
            "restore",
            &archive,
            "--state-dir",
            &state_dir,
            "--force",
            "--url",
            &server.url,
        ],
        &[],
        &dir,
    );
    assert!(
        restored.status.success(),
        "{}{}",
        text(&restored.stdout),
        text(&restored.stderr)
    );
    server.restart();
    let (code, report) = triage_of(&server.url, &dir);
    assert_eq!(code, Some(0), "after a restore:\n{report}");
    assert!(report.contains("Overall: HEALTHY"), "{report}");
}
