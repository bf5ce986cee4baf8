//! `--local`: the dashboard starts its own embedded server, watches it, and stops it on quit.

use std::time::Duration;

use crate::support::{SCREEN_BOUND, Session, tui_command};

#[test]
fn local_mode_serves_a_healthy_dashboard_and_stops_its_server_on_quit() {
    // `kneo` must sit next to kneo-tui for --local to find it.
    let kneo = kneo_testkit::bins::bin_path("kneo");
    assert_eq!(
        kneo.parent(),
        crate::support::kneo_tui().parent(),
        "kneo and kneo-tui are built into the same directory"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let tui = Session::start_in(
        Some(dir.path()),
        80,
        24,
        &tui_command(&["--local", "--refresh", "1s"]),
    );
    tui.wait_for(
        "a healthy local service, with the admin key it made",
        SCREEN_BOUND,
        |screen| {
            screen.contains("HEALTHY")
                && screen.contains("LOCAL")
                && screen.contains("admin (rw)")
                && screen.contains("its admin key: kneo-tui-")
        },
    );
    tui.send_keys(&["L"]);
    tui.wait_for("the admin key in the action log", SCREEN_BOUND, |screen| {
        screen.contains("Action log")
            && screen.contains("its admin key:")
            && screen.contains("  kneo-tui-")
    });
    tui.send_keys(&["Escape"]);
    let log = dir.path().join(".kneo").join("kneo-tui-local.log");
    assert!(log.is_file(), "the embedded server logs to {log:?}");
    let server_pid = find_server_pid(dir.path()).expect("the embedded server runs");

    tui.send_keys(&["q"]);
    let started = std::time::Instant::now();
    while tui.command_alive() && started.elapsed() < SCREEN_BOUND {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tui.command_alive(), "q quits");
    assert!(
        kneo_testkit::process::wait_until_stopped(server_pid, SCREEN_BOUND),
        "the embedded server stops with the dashboard"
    );
}

/// The `kneo service serve` process whose working directory is `dir`.
fn find_server_pid(dir: &std::path::Path) -> Option<u32> {
    let wanted = std::fs::canonicalize(dir).ok()?;
    let deadline = std::time::Instant::now() + SCREEN_BOUND;
    while std::time::Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            if cmdline.contains("service serve") && cwd.as_deref() == Some(wanted.as_path()) {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
