//! Watching a process the code under test started (a step's grandchild, a server a hook
//! started), by pid: tests prove a kill reached it by its state, not by how long they waited.

use std::path::Path;
use std::time::{Duration, Instant};

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// Whether `pid` no longer runs: it is gone, or it is a zombie waiting for its parent to reap it.
pub fn has_stopped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state letter follows the command name, which is in parentheses and may itself
        // contain spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits up to `limit` for `pid` to stop running; whether it did.
pub fn wait_until_stopped(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if has_stopped(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits up to `limit` for `path` to hold a pid, as a shell's `echo $$ > path` writes it.
pub fn wait_for_pid_file(path: &Path, limit: Duration) -> Option<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let written = std::fs::read_to_string(path).unwrap_or_default();
        // Only a full line: the shell may be between writing the digits and the newline.
        if let Some((pid, _)) = written.split_once('\n')
            && let Ok(pid) = pid.trim().parse()
        {
            return Some(pid);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_killed_child_has_stopped_and_a_running_one_has_not() {
        let mut child = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("start sleep");
        assert!(!has_stopped(child.id()));
        child.kill().expect("kill sleep");
        // Not reaped yet: a zombie counts as stopped.
        assert!(wait_until_stopped(child.id(), Duration::from_secs(30)));
        child.wait().expect("reap sleep");
        assert!(has_stopped(child.id()));
    }

    #[test]
    fn a_pid_file_is_read_once_its_line_is_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("child.pid");
        assert_eq!(wait_for_pid_file(&path, Duration::from_millis(50)), None);
        std::fs::write(&path, "123").expect("write");
        assert_eq!(wait_for_pid_file(&path, Duration::from_millis(50)), None);
        std::fs::write(&path, "123\n").expect("write");
        assert_eq!(wait_for_pid_file(&path, Duration::from_secs(30)), Some(123));
    }
}
