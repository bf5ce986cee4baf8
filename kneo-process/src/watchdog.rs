//! Runs a command once this process is gone, however it ended: a clean exit, a panic, or a
//! SIGKILL that runs no destructor and no exit hook.
//!
//! The watchdog is a small `sh` holding the read end of a pipe whose only write end we keep.
//! The kernel closes that end when our process ends, for any reason; the shell then reads end
//! of file and runs the command. It leads a process group of its own, so the terminal's Ctrl-C,
//! which ends us, does not end it before it has done its job.

use std::ffi::OsStr;
use std::io;
use std::process::{Child, ChildStdin, Command, Stdio};

/// Waits for end of file on stdin (the lifeline), then runs the command given as arguments.
const WAIT_THEN_RUN: &str = r#"while read -r _; do :; done; exec "$@""#;

/// A command armed to run when this process is gone; see the module documentation.
///
/// Dropping the `Watchdog` closes the lifeline too, so the command runs then: keep it for as
/// long as the command must wait (a `static` keeps it for the life of the process), or
/// [`disarm`](Watchdog::disarm) it.
#[derive(Debug)]
pub struct Watchdog {
    shell: Child,
    /// Never written to: only its closing means something.
    _lifeline: ChildStdin,
}

impl Watchdog {
    /// Arms a watchdog that runs `command` (its program, arguments, working directory and the
    /// variables set or removed on it; its standard streams are `/dev/null`).
    pub fn arm(command: &Command) -> io::Result<Watchdog> {
        let mut shell = Command::new("sh");
        shell
            .args([OsStr::new("-c"), OsStr::new(WAIT_THEN_RUN)])
            .arg("kneo-watchdog")
            .arg(command.get_program())
            .args(command.get_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut shell, 0);
        if let Some(dir) = command.get_current_dir() {
            shell.current_dir(dir);
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => shell.env(key, value),
                None => shell.env_remove(key),
            };
        }
        let mut shell = shell.spawn()?;
        let Some(lifeline) = shell.stdin.take() else {
            let _ = shell.kill();
            let _ = shell.wait();
            return Err(io::Error::other(
                "the watchdog shell was started without the pipe it watches",
            ));
        };
        Ok(Watchdog {
            shell,
            _lifeline: lifeline,
        })
    }

    /// The watchdog's own process id.
    pub fn id(&self) -> u32 {
        self.shell.id()
    }

    /// Stops the watchdog without running its command (the thing it guarded was cleaned up
    /// already, by the usual path).
    pub fn disarm(mut self) {
        // SIGKILL, so the shell cannot run the command: it has not seen end of file yet,
        // because `self` still holds the lifeline.
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Waits for `path` to exist; the bound only keeps a broken watchdog from hanging the test.
    fn appears(path: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if path.exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn touch(dir: &Path, name: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo \"$MARK\" > \"$0\"", name])
            .current_dir(dir)
            .env("MARK", "fired");
        command
    }

    #[test]
    fn the_command_runs_when_the_process_holding_the_lifeline_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in for "this process", which a test cannot SIGKILL: a shell that becomes
        // `sleep` holding the only write end of the watchdog's lifeline (a named pipe here).
        let mut holder = Command::new("sh")
            .args([
                "-c",
                "mkfifo lifeline; sh -c \"$0\" kneo-watchdog sh -c 'echo fired > marker' < lifeline & \
                 exec sleep 60 > lifeline",
                WAIT_THEN_RUN,
            ])
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        // Opening the pipe for writing waits for the reader, and only then does `exec` run.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read(format!("/proc/{}/cmdline", holder.id()))
            .is_ok_and(|cmdline| cmdline.starts_with(b"sleep"))
        {
            assert!(
                Instant::now() < deadline,
                "the holder never held the lifeline"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!dir.path().join("marker").exists(), "fired too early");
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert!(
            appears(&dir.path().join("marker")),
            "the watchdog did not fire"
        );
    }

    #[test]
    fn dropping_the_watchdog_fires_it_with_its_directory_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let watchdog = Watchdog::arm(&touch(dir.path(), "dropped")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!dir.path().join("dropped").exists(), "fired too early");
        drop(watchdog);
        let marker = dir.path().join("dropped");
        assert!(appears(&marker), "the watchdog did not fire");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&marker).unwrap_or_default() != "fired\n" {
            assert!(
                Instant::now() < deadline,
                "the marker was not written whole"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_disarmed_watchdog_never_fires() {
        let dir = tempfile::tempdir().unwrap();
        let watchdog = Watchdog::arm(&touch(dir.path(), "disarmed")).unwrap();
        let pid = watchdog.id();
        watchdog.disarm();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| !stat.contains("kneo-watchdog")),
            "the watchdog {pid} still runs"
        );
        assert!(
            !dir.path().join("disarmed").exists(),
            "a disarmed watchdog fired"
        );
    }
}
