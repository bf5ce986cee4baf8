//! `--local`: an embedded kneo server for this session. Runs the `kneo` binary found next to
//! kneo-tui (else on PATH) as `kneo service serve --port 0` in the current directory (so its
//! state is `.kneo/` there), with a fresh admin key in `KNEO_SERV_ADMIN_API_KEY`; reads the
//! `listening on http://…` line from its stdout; stops it (SIGTERM, then SIGKILL) when dropped.
//! The server's log goes to `.kneo/kneo-tui-local.log`, never onto the dashboard.
//!
//! A kneo-tui killed outright (SIGKILL runs no destructor) must not leave the server behind: a
//! watchdog process sends it SIGTERM as soon as kneo-tui is gone, however it ended.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kneo_process::Watchdog;

/// A running embedded server.
pub struct LocalServer {
    child: Option<Child>,
    /// Stops the server if kneo-tui dies without stopping it; disarmed by [`LocalServer::stop`].
    watchdog: Option<Watchdog>,
    pub url: String,
    /// The admin key generated for this session.
    pub api_key: String,
    pub log_path: PathBuf,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("url", &self.url)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl LocalServer {
    /// Starts `kneo service serve --port 0` in `dir`.
    pub fn start(kneo: &Path, dir: &Path) -> anyhow::Result<LocalServer> {
        let state = dir.join(".kneo");
        std::fs::create_dir_all(&state)
            .with_context(|| format!("cannot create the state directory {}", state.display()))?;
        let log_path = state.join("kneo-tui-local.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open the server log {}", log_path.display()))?;
        let api_key = generate_key()?;
        let mut command = Command::new(kneo);
        command
            .args(["service", "serve", "--host", "127.0.0.1", "--port", "0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .env("KNEO_SERV_ADMIN_API_KEY", &api_key);
        // The session's server must not pick up a production database by accident.
        command.env_remove("KNEO_SERV_DATABASE_URL");
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", kneo.display()))?;
        let watchdog = match Watchdog::arm(&stop_on_exit(child.id())) {
            Ok(watchdog) => watchdog,
            Err(error) => {
                kneo_process::server::stop(&mut child, STOP_GRACE);
                return Err(error).context(
                    "cannot start the watchdog that stops the embedded server if kneo-tui dies (it runs `sh`)",
                );
            }
        };
        let Some(stdout) = child.stdout.take() else {
            watchdog.disarm();
            kneo_process::server::stop(&mut child, STOP_GRACE);
            bail!("the kneo server's stdout was not captured");
        };
        let started = Instant::now();
        let line = kneo_process::server::first_line(stdout, START_TIMEOUT);
        let mut server = LocalServer {
            child: Some(child),
            watchdog: Some(watchdog),
            url: String::new(),
            api_key,
            log_path,
        };
        match listening_url(&line) {
            Some(url) => {
                server.url = url;
                Ok(server)
            }
            None => {
                server.stop();
                let tail = std::fs::read_to_string(&server.log_path)
                    .map(|log| {
                        log.lines()
                            .rev()
                            .take(5)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                bail!(
                    "the embedded kneo server did not start within {} s (first stdout line {:?}); its log {} ends with:\n{tail}",
                    started.elapsed().as_secs(),
                    line.trim(),
                    server.log_path.display()
                )
            }
        }
    }

    /// SIGTERM, a few seconds' grace, then SIGKILL.
    pub fn stop(&mut self) {
        // The watchdog goes first: once the server is reaped, its pid may be another process's.
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        if let Some(mut child) = self.child.take() {
            kneo_process::server::stop(&mut child, STOP_GRACE);
        }
    }
}

/// What the watchdog runs when kneo-tui is gone: SIGTERM to the server `pid`, as a `stop` would.
fn stop_on_exit(pid: u32) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", r#"kill -TERM "$0""#, &pid.to_string()]);
    command
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URL in `kneo 0.1.0 listening on http://127.0.0.1:43121`.
pub fn listening_url(line: &str) -> Option<String> {
    line.split_whitespace()
        .find(|word| word.starts_with("http://") || word.starts_with("https://"))
        .map(|url| url.trim_end_matches('/').to_string())
}

/// 32 random hex characters from the kernel's generator.
fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the session's admin key")?;
    Ok(format!(
        "kneo-tui-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_url() {
        assert_eq!(
            listening_url("kneo 0.1.0 listening on http://127.0.0.1:43121\n").as_deref(),
            Some("http://127.0.0.1:43121")
        );
        assert_eq!(listening_url("error: port in use"), None);
    }

    #[test]
    fn keys_are_fresh() {
        let a = generate_key().expect("key");
        let b = generate_key().expect("key");
        assert_ne!(a, b);
        assert_eq!(a.len(), "kneo-tui-".len() + 32);
    }
}
