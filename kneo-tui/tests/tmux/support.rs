//! A tmux session that is always killed (the guard's `Drop`, also when a test fails), and
//! screen polling with deadlines.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a test waits for a screen it expects: far beyond the seconds a refresh or a start
/// takes, so only a dashboard that never gets there fails. How soon the dashboard shows an
/// outage is a figure the outage tests print (docs/performance.md), not a pass mark.
pub const SCREEN_BOUND: Duration = Duration::from_secs(60);

/// Every session lives on this private tmux server, never on a developer's own.
const SOCKET: &str = "kneo-tui-tests";

/// The `kneo-tui` binary cargo built for these tests.
pub fn kneo_tui() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kneo-tui"))
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-L")
        .arg(SOCKET)
        .arg("-u")
        .args(args)
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap_or_else(|error| panic!("cannot run tmux {args:?}: {error}; is tmux installed?"))
}

/// Quotes a word for `sh -c`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A detached tmux session running one command; killed when dropped.
pub struct Session {
    pub name: String,
}

impl Session {
    /// Starts `command` (a shell command line) in a `width`×`height` session. The command runs
    /// with a clean environment (only PATH, HOME, TERM and LANG), so no `KNEO_SERV_*` variable of
    /// the test process leaks in.
    pub fn start(width: u16, height: u16, command: &str) -> Session {
        Session::start_in(None, width, height, command)
    }

    /// [`Session::start`] in the working directory `dir`.
    pub fn start_in(
        dir: Option<&std::path::Path>,
        width: u16,
        height: u16,
        command: &str,
    ) -> Session {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "kneo-tui-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let wrapped = format!(
            "env -i PATH={} HOME=/tmp TERM=screen-256color LANG=C.UTF-8 {command}",
            shell_quote(&path)
        );
        let (width, height) = (width.to_string(), height.to_string());
        let dir = dir.map(|d| d.display().to_string());
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            &width,
            "-y",
            &height,
        ];
        if let Some(dir) = &dir {
            args.extend(["-c", dir.as_str()]);
        }
        // In the same tmux command queue: the pane stays after its command exits, so a crash
        // stays readable and `command_alive` can tell.
        args.extend([
            wrapped.as_str(),
            ";",
            "set-option",
            "-t",
            &name,
            "remain-on-exit",
            "on",
        ]);
        // A private tmux server exits with its last session; a new session that races that
        // exit sees "server exited unexpectedly", so starting is retried a few times.
        let mut output = tmux(&args);
        for _ in 0..5 {
            if output.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            output = tmux(&args);
        }
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Session { name }
    }

    /// The visible screen, one line per row.
    pub fn screen(&self) -> String {
        let output = tmux(&["capture-pane", "-p", "-t", &self.name]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `wanted` holds, or panics after `limit` with the last screen.
    pub fn wait_for(&self, what: &str, limit: Duration, wanted: impl Fn(&str) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!(
                    "waited {} ms for {what}; the screen is:\n{screen}",
                    limit.as_millis()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.name.as_str()];
        args.extend_from_slice(keys);
        tmux(&args);
    }

    /// Whether the pane's command still runs.
    pub fn command_alive(&self) -> bool {
        let output = tmux(&["display-message", "-p", "-t", &self.name, "#{pane_dead}"]);
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "0"
    }

    /// The PID of the pane's process.
    pub fn pane_pid(&self) -> Option<u32> {
        let output = tmux(&["display-message", "-p", "-t", &self.name, "#{pane_pid}"]);
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.name]);
    }
}

/// `kneo-tui` with `args`, as a shell command line.
pub fn tui_command(args: &[&str]) -> String {
    let mut words = vec![shell_quote(&kneo_tui().display().to_string())];
    words.extend(args.iter().map(|a| shell_quote(a)));
    words.join(" ")
}
