//! A real `kneo service serve` process for black-box tests: started in its own directory on a
//! free loopback port, with the spec fixtures written beside it, stopped (or `kill -9`ed) on
//! demand, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first line a child prints within a limit, the rest drained (shared with kneo-tui).
pub use kneo_process::server::first_line;

use crate::bins::bin_path;
use crate::fixtures;

/// Keys every test server accepts, named like the golden recordings' keys.
pub const OPERATOR_KEY: &str = "opskey123";
pub const REVIEWER_KEY: &str = "revkey123";
pub const VIEWER_KEY: &str = "viewkey123";
pub const ADMIN_KEY: &str = "adminkey123";

/// `KNEO_SERV_API_KEYS` for the keys above.
pub fn api_keys() -> String {
    format!(
        "ops:{OPERATOR_KEY}:operator;rev:{REVIEWER_KEY}:reviewer;view:{VIEWER_KEY}:viewer;root:{ADMIN_KEY}:admin"
    )
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra environment (added after the defaults, so it can override them).
    pub env: Vec<(String, String)>,
    /// Postgres URL; `None` for the embedded store.
    pub database_url: Option<String>,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// `(soft, hard)` RLIMIT_NOFILE of the server process (set with `prlimit` as it starts).
    pub open_file_limit: Option<(u64, u64)>,
    /// Also lay out the spec root of the ext recordings ([`fixtures::write_golden_ext_specs`]).
    pub golden_ext_specs: bool,
}

impl ServerOptions {
    pub fn env(mut self, key: &str, value: &str) -> ServerOptions {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the server under this open-file limit instead of the test process's own.
    pub fn open_file_limit(mut self, soft: u64, hard: u64) -> ServerOptions {
        self.open_file_limit = Some((soft, hard));
        self
    }

    pub fn postgres(mut self, url: &str) -> ServerOptions {
        self.database_url = Some(url.to_string());
        self
    }

    /// Serves from the spec root the ext recordings were made in.
    pub fn golden_ext_specs(mut self) -> ServerOptions {
        self.golden_ext_specs = true;
        self
    }
}

/// A running kneo server.
pub struct KneoServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    /// The working directory: spec root and `.kneo/` state.
    pub dir: PathBuf,
    options: ServerOptions,
    _tempdir: Option<tempfile::TempDir>,
}

impl KneoServer {
    /// Starts a server in a fresh temporary directory holding the spec fixtures.
    pub fn start(options: ServerOptions) -> KneoServer {
        let tempdir = tempfile::Builder::new()
            .prefix("kneo-server-")
            .tempdir()
            .unwrap_or_else(|error| {
                panic!("cannot create a temp dir for the kneo server: {error}")
            });
        let dir = tempdir.path().to_path_buf();
        fixtures::write_specs(&dir);
        if options.golden_ext_specs {
            fixtures::write_golden_ext_specs(&dir);
        }
        let mut server = KneoServer {
            child: None,
            url: String::new(),
            port: options.port,
            dir,
            options,
            _tempdir: Some(tempdir),
        };
        server.spawn();
        server
    }

    /// Starts a server in an existing directory (its specs and state are used as they are).
    pub fn start_in(dir: &Path, options: ServerOptions) -> KneoServer {
        let mut server = KneoServer {
            child: None,
            url: String::new(),
            port: options.port,
            dir: dir.to_path_buf(),
            options,
            _tempdir: None,
        };
        server.spawn();
        server
    }

    /// The server's stderr (its JSON log).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|error| {
                panic!("cannot open the server log {:?}: {error}", self.log_path())
            });
        let mut command = match self.options.open_file_limit {
            // prlimit sets the limit and then executes kneo in the same process.
            Some((soft, hard)) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(bin_path("kneo"));
                command
            }
            None => Command::new(bin_path("kneo")),
        };
        command
            .args([
                "service",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // The parent's kneo settings must not leak into a test server.
        for (key, _) in std::env::vars() {
            if key.starts_with("KNEO_SERV_") || key.ends_with("_API_KEY") {
                command.env_remove(&key);
            }
        }
        command
            .env("KNEO_SERV_API_KEYS", api_keys())
            .env("KNEO_SERV_SWEEP_INTERVAL_SECONDS", "1");
        if let Some(url) = &self.options.database_url {
            command.env("KNEO_SERV_DATABASE_URL", url);
        }
        for (key, value) in &self.options.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {:?}: {error}", bin_path("kneo")));
        let line = match child.stdout.take() {
            Some(stdout) => first_line(stdout, Duration::from_secs(30)),
            None => String::new(),
        };
        let Some(url) = listening_url(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kneo did not start (first stdout line {line:?}); its log:\n{}",
                self.log()
            );
        };
        let Some(port) = url.rsplit(':').next().and_then(|p| p.parse().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kneo's listening line {line:?} names no port");
        };
        self.url = url.to_string();
        self.port = port;
        self.child = Some(child);
    }

    /// Stops the server with SIGTERM and waits for it (SIGKILL if it takes more than 20 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kneo_process::server::stop(&mut child, Duration::from_secs(20));
        }
    }

    /// Kills the server like `kill -9` would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited (e.g. at a fault point).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
        }
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_for_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exited() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Starts the server again in the same directory, on the same port, with extra environment.
    pub fn restart_with(&mut self, extra_env: &[(&str, &str)]) {
        self.stop();
        let mut options = self.options.clone();
        options.port = self.port;
        options
            .env
            .retain(|(key, _)| !extra_env.iter().any(|(k, _)| k == key));
        options.env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        self.options = options;
        self.spawn();
    }

    /// Starts the server again with its original options on the same port.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for KneoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The URL in kneo's first line, `kneo <version> listening on http://ADDR`.
pub fn listening_url(line: &str) -> Option<&str> {
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
}
