//! A profile written by `kneo config profile set` is what `kneo-ops triage --profile` and
//! `kneo-tui --profile` connect with: the real three binaries and a real server on port 0. The
//! profile names the variable holding the key, so the file (0600) holds no key at all.

use std::process::Command;

use kneo_testkit::bins::bin_path;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use serde_json::Value;

use crate::support::{SCREEN_BOUND, Session, shell_quote, tui_command};

const KEY_VARIABLE: &str = "KNEO_PROD_TEST_KEY";

#[test]
fn a_profile_set_by_kneo_drives_kneo_ops_triage_and_the_dashboard() {
    let server = KneoServer::start(ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("home/profiles.json");
    let with_profiles = |program: &str| {
        let mut command = Command::new(bin_path(program));
        command
            .env("KNEO_SERV_PROFILES_PATH", &profiles)
            .env_remove("KNEO_SERV_URL")
            .env_remove("KNEO_SERV_API_KEY");
        command
    };

    let set = with_profiles("kneo")
        .args(["config", "profile", "set", "prod", "--url", &server.url])
        .args(["--api-key-env", KEY_VARIABLE, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let shown: Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(shown["name"], "prod");
    assert_eq!(shown["service_url"], server.url.trim_end_matches('/'));
    assert_eq!(shown["authenticated"], true);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&profiles).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the profile file is private");
    }
    let file = std::fs::read_to_string(&profiles).unwrap();
    assert!(!file.contains(OPERATOR_KEY), "no key on disk: {file}");

    let listed = with_profiles("kneo")
        .args(["config", "profile", "list", "--json"])
        .output()
        .unwrap();
    let listing: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listing["active"], "prod");
    assert_eq!(listing["profiles"][0]["name"], "prod");

    let triage = with_profiles("kneo-ops")
        .args(["triage", "--profile", "prod", "--json"])
        .env(KEY_VARIABLE, OPERATOR_KEY)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&triage.stdout).unwrap_or_else(|error| {
        panic!(
            "triage --json ({error}): {}",
            String::from_utf8_lossy(&triage.stderr)
        )
    });
    assert!(
        matches!(triage.status.code(), Some(0 | 1)),
        "the profile's service answers: {report}"
    );
    assert_eq!(report["health"], "healthy", "{report}");
    assert!(
        report["target"]
            .as_str()
            .is_some_and(|t| t.starts_with(server.url.trim_end_matches('/'))),
        "{report}"
    );

    let tui = Session::start(
        100,
        30,
        &format!(
            "env KNEO_SERV_PROFILES_PATH={} {KEY_VARIABLE}={} {}",
            shell_quote(&profiles.display().to_string()),
            shell_quote(OPERATOR_KEY),
            tui_command(&["--profile", "prod", "--refresh", "1s"])
        ),
    );
    tui.wait_for("the profile's service, healthy", SCREEN_BOUND, |screen| {
        screen.contains("HEALTHY") && screen.contains("ops (rw)")
    });

    let deleted = with_profiles("kneo")
        .args(["config", "profile", "delete", "prod"])
        .output()
        .unwrap();
    assert_eq!(deleted.status.code(), Some(0));
    let gone = with_profiles("kneo-ops")
        .args(["triage", "--profile", "prod"])
        .output()
        .unwrap();
    assert_eq!(
        gone.status.code(),
        Some(3),
        "an unknown profile: triage cannot judge"
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("kneo config profile set prod"));
}
