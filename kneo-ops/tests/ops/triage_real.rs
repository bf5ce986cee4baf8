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
        report.contains("Overall: DOWN") && report.contains("process down or unreachable"),
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
