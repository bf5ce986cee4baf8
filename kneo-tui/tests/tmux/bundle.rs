//! `--bundle`: a bundle captured by the real `kneo-ops capture` opens offline and walks the
//! same tree: healthy while the server ran, down once it was killed.

use std::path::Path;
use std::process::Command;

use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};

use crate::support::{SCREEN_BOUND, Session, tui_command};

fn capture(url: &str, output: &Path) {
    let status = Command::new(kneo_testkit::bins::bin_path("kneo-ops"))
        .args(["capture", "--url", url, "--budget", "10s", "--output"])
        .arg(output)
        .env("KNEO_SERV_API_KEY", OPERATOR_KEY)
        .output()
        .expect("run kneo-ops capture");
    // 0: every item ok; 1: bundle written with failed items (a dead service).
    assert!(
        matches!(status.status.code(), Some(0 | 1)),
        "kneo-ops capture failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(output.is_file());
}

#[test]
fn bundles_of_a_live_and_a_dead_service_walk_the_same_tree_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = KneoServer::start(ServerOptions::default());
    let live = dir.path().join("live.tar.gz");
    capture(&server.url, &live);
    server.kill();
    let dead = dir.path().join("dead.tar.gz");
    capture(&server.url, &dead);

    let tui = Session::start(
        100,
        30,
        &tui_command(&["--bundle", &live.display().to_string()]),
    );
    tui.wait_for("the live bundle's verdicts", SCREEN_BOUND, |s| {
        s.contains("BUNDLE") && s.contains("HEALTHY") && s.contains("/healthz: alive")
    });
    tui.send_keys(&["6"]);
    tui.wait_for("the recorded service events", SCREEN_BOUND, |s| {
        s.contains("service.started")
    });
    drop(tui);

    let tui = Session::start(
        100,
        30,
        &tui_command(&["--bundle", &dead.display().to_string()]),
    );
    tui.wait_for("the dead bundle's verdicts", SCREEN_BOUND, |s| {
        s.contains("BUNDLE")
            && s.contains("DOWN")
            && s.contains("process down (connection refused)")
    });
    // Actions need the service; the bundle refuses them.
    tui.send_keys(&["3", "x"]);
    tui.wait_for("the offline refusal", SCREEN_BOUND, |s| {
        s.contains("not available when reading a bundle") || s.contains("select a run first")
    });
}
