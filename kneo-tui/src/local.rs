//! `--local`: an embedded kneo server for this session. Runs the `kneo` binary found next to
//! kneo-tui (else on PATH) as `kneo service serve --port 0` in the current directory (so its
//! state is `.kneo/` there), with a fresh admin key in `KNEO_SERV_ADMIN_API_KEY`; reads the
//! `listening on http://…` line from its stdout; stops it (SIGTERM, then SIGKILL) when dropped.
//! The server's log goes to `.kneo/kneo-tui-local.log`, never onto the dashboard.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running embedded server.
pub struct LocalServer {
    child: Option<Child>,
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
        // If kneo-tui dies without running its destructors (SIGKILL), the server goes too.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches only the child being set up.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", kneo.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            bail!("the kneo server's stdout was not captured");
        };
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let started = Instant::now();
        let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let mut server = LocalServer {
            child: Some(child),
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
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
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
