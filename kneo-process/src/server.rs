//! Children that run until told to stop (a kneo server under test, or under `kneo-tui --local`):
//! the first line they print, waited for within a limit, and a stop that asks before it kills.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::group::{ask_to_stop, pid_of};

/// How often [`stop`] looks whether the child has exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// The first line `stdout` prints within `limit`, or an empty string when none came (the
/// child is slow, silent or dead: the caller says which, with its log).
///
/// A thread keeps reading the rest of the stream and throws it away, so the child never blocks
/// on a full pipe however much it prints later.
pub fn first_line(stdout: impl Read + Send + 'static, limit: Duration) -> String {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = sender.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    receiver.recv_timeout(limit).unwrap_or_default()
}

/// Stops `child`: SIGTERM, up to `grace` for it to exit by itself, then SIGKILL. Returns how it
/// ended, or `None` when it could not be waited for.
pub fn stop(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    // Until it is reaped (which `try_wait` does once it has exited), its pid stays ours.
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Some(pid) = pid_of(child.id()) {
        ask_to_stop(pid);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(EXIT_POLL),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    fn spawn(script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn the_first_line_comes_and_the_rest_is_drained() {
        // Far more than a pipe holds after the first line: the child only ends if it is read.
        let mut child = spawn("echo 'listening on http://127.0.0.1:1'; head -c 5000000 /dev/zero");
        let line = first_line(child.stdout.take().unwrap(), Duration::from_secs(30));
        assert_eq!(line, "listening on http://127.0.0.1:1\n");
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn a_silent_child_gives_an_empty_line_at_the_limit() {
        let mut child = spawn("exec sleep 60");
        let line = first_line(child.stdout.take().unwrap(), Duration::from_millis(100));
        assert_eq!(line, "");
        let status = stop(&mut child, Duration::from_secs(30)).unwrap();
        assert_eq!(status.signal(), Some(15), "sleep ends on SIGTERM: {status}");
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut child = spawn("trap '' TERM; echo ready; while :; do sleep 1; done");
        let line = first_line(child.stdout.take().unwrap(), Duration::from_secs(30));
        assert_eq!(line, "ready\n", "the trap is set before the line");
        let status = stop(&mut child, Duration::from_millis(200)).unwrap();
        assert_eq!(status.signal(), Some(9), "killed: {status}");
    }

    #[test]
    fn stopping_a_child_that_already_exited_returns_its_status() {
        let mut child = spawn("exit 7");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "sh -c 'exit 7' did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        // A second look after it was reaped still answers, and signals nobody.
        assert_eq!(
            stop(&mut child, Duration::from_secs(1)).unwrap().code(),
            Some(7)
        );
    }
}
