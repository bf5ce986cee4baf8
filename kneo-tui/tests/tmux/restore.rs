//! The terminal is always restored: after `q`, after SIGTERM, and after a panic, the shell that
//! started kneo-tui is back in cooked mode (`icanon echo`) on its normal screen.

use crate::support::{SCREEN_BOUND, Session, tui_command};

/// Runs kneo-tui from a shell, then prints the shell's terminal modes once it is back.
fn start_in_shell(extra_env: &str) -> Session {
    let shell = Session::start(80, 24, "sh");
    shell.wait_for("the shell prompt", SCREEN_BOUND, |s| {
        s.contains('$') || s.contains('#')
    });
    // Nothing listens on port 1: the dashboard shows a down service at once.
    let line = format!(
        "{extra_env} {} ; stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '; echo END",
        tui_command(&["--url", "http://127.0.0.1:1", "--refresh", "1s"])
    );
    shell.send_keys(&[&line, "Enter"]);
    shell.wait_for("the dashboard", SCREEN_BOUND, |s| {
        s.contains("DOWN") && s.contains("process down (connection refused)")
    });
    shell
}

fn assert_restored(shell: &Session) {
    shell.wait_for("the shell back in cooked mode", SCREEN_BOUND, |s| {
        s.contains("icanon echo END")
    });
    let screen = shell.screen();
    assert!(
        !screen.contains("Triage tree"),
        "the alternate screen is gone:\n{screen}"
    );
}

/// The kneo-tui process started by the pane's shell.
fn tui_pid(shell: &Session) -> u32 {
    let parent = shell.pane_pid().expect("pane pid");
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "kneo-tui")
        })
        .expect("kneo-tui runs under the shell")
}

#[test]
fn quitting_restores_the_terminal() {
    let shell = start_in_shell("");
    shell.send_keys(&["q"]);
    assert_restored(&shell);
}

#[test]
fn sigterm_restores_the_terminal() {
    let shell = start_in_shell("");
    let pid = tui_pid(&shell);
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a pid");
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .unwrap_or_else(|error| panic!("kill -TERM {pid}: {error}"));
    assert_restored(&shell);
}

#[test]
fn a_panic_restores_the_terminal_and_prints_the_report() {
    let shell = start_in_shell("KNEO_TUI_FAULT=panic");
    assert_restored(&shell);
    let screen = shell.screen();
    assert!(
        screen.contains("panicked") && screen.contains("KNEO_TUI_FAULT"),
        "the panic report prints on the restored screen:\n{screen}"
    );
}
