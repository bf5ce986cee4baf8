//! Throwaway PostgreSQL clusters for tests, run from the machine's own server binaries.
//!
//! Most tests should call [`shared_cluster`] once and then [`PgCluster::create_database`]
//! for a fresh database of their own: starting a cluster takes about a second, a database
//! takes milliseconds. Tests that stop and restart PostgreSQL under a running service need
//! a cluster of their own from [`PgCluster::start_new`].
//!
//! The cluster trades durability for speed (`fsync=off`, `synchronous_commit=off`,
//! `full_page_writes=off`), listens only on `127.0.0.1` and trusts every local connection,
//! so URLs need no password.
//!
//! `initdb` and `pg_ctl` refuse to run as root. When the tests run as root, they are run
//! through `runuser -u postgres --` and the cluster directory is handed to that user.
//!
//! If the server binaries are missing the harness panics instead of skipping, because a
//! silently skipped database test looks exactly like a passing one.

use std::ffi::OsStr;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kneo_process::Watchdog;
use tempfile::TempDir;

pub use crate::certificates::{CLIENT_CERT_ROLE, TestCertificates};

const MISSING_BINARIES: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found in `pg_config --bindir`, \
     /usr/lib/postgresql/*/bin or PATH; \
     install the `postgresql` package (apt-get install -y postgresql)";
const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
/// Another process can grab the port between our probe and the postmaster's bind.
const START_ATTEMPTS: usize = 5;
const START_TIMEOUT_SECS: &str = "60";
const LOG_TAIL_LINES: usize = 40;

/// A PostgreSQL cluster in a temporary directory, listening on `127.0.0.1:<port()>`.
///
/// Dropping it stops the server (`pg_ctl stop -m immediate`) and deletes the directory.
#[derive(Debug)]
pub struct PgCluster {
    dir: TempDir,
    port: u16,
    bin_dir: PathBuf,
    run_as: RunAs,
    /// The certificates of a cluster with `ssl=on`.
    tls: Option<TestCertificates>,
}

/// The role that logs in with a password over TLS (`scram-sha-256`, so with channel binding).
pub const SCRAM_ROLE: &str = "kneo_scram";
/// [`SCRAM_ROLE`]'s password.
pub const SCRAM_PASSWORD: &str = "scram-test-password-1";

/// Who runs `initdb` and `pg_ctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAs {
    CurrentUser,
    /// We are root, which `initdb` and `pg_ctl` refuse, so they run via `runuser`.
    PostgresUser,
}

/// The cluster shared by every test in this process, started on first use.
///
/// Statics are never dropped, so the first call also arms a [`Watchdog`]: a small process that
/// stops the server and removes its directory once the test process is gone, however it ended
/// (all tests done, a panic outside a test, Ctrl-C, or `kill -9`).
pub fn shared_cluster() -> &'static PgCluster {
    /// The cluster and the watchdog that cleans it up; neither is ever dropped.
    struct Shared {
        cluster: PgCluster,
        _cleanup: Option<Watchdog>,
    }
    static SHARED: OnceLock<Shared> = OnceLock::new();

    &SHARED
        .get_or_init(|| {
            let cluster = PgCluster::start_new();
            let cleanup = Watchdog::arm(&cluster.cleanup_command())
                .map_err(|error| {
                    eprintln!(
                        "kneo-testkit: could not start the cleanup watchdog ({error}); the shared \
                         PostgreSQL cluster in {:?} will keep running after the tests \
                         (`pg_ctl -D <dir>/data stop` stops it)",
                        cluster.dir.path()
                    );
                })
                .ok();
            Shared {
                cluster,
                _cleanup: cleanup,
            }
        })
        .cluster
}

/// The directory holding `initdb`, `pg_ctl`, `psql`, `pg_dump` and friends.
///
/// `pg_config --bindir` wins when it points at a directory with the server binaries (it may
/// come from libpq-dev alone); otherwise the newest `/usr/lib/postgresql/<version>/bin`.
pub fn server_bin_dir() -> PathBuf {
    locate_bin_dir().unwrap_or_else(|message| panic!("{message}"))
}

impl PgCluster {
    /// Creates and starts a cluster of its own on a free port.
    ///
    /// Prefer [`shared_cluster`] unless the test needs to [`stop`](Self::stop) the server.
    pub fn start_new() -> PgCluster {
        Self::try_start_new().unwrap_or_else(|message| panic!("{message}"))
    }

    /// Creates and starts a cluster of its own with `ssl=on`, using fresh [`TestCertificates`].
    ///
    /// Over TCP, the superuser is trusted, [`CLIENT_CERT_ROLE`] must present the client
    /// certificate (`cert`) and [`SCRAM_ROLE`] its password (`scram-sha-256`). With
    /// `require_tls`, pg_hba.conf has `hostssl` lines only, so a plain connection is refused.
    pub fn start_with_tls(require_tls: bool) -> PgCluster {
        Self::try_start_new_with(Some(require_tls)).unwrap_or_else(|message| panic!("{message}"))
    }

    /// The certificates of a cluster started with [`start_with_tls`](Self::start_with_tls).
    pub fn certificates(&self) -> Option<&TestCertificates> {
        self.tls.as_ref()
    }

    /// The TCP port the server listens on; it stays the same across `stop`/`start`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// A libpq URL for `dbname`, e.g. `postgres://postgres@127.0.0.1:54321/app`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://{SUPERUSER}@{HOST}:{}/{dbname}", self.port)
    }

    /// The directory with this cluster's server binaries, e.g. for `pg_dump` in tests.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates a database with a unique name and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("kneo_test_{}", uuid::Uuid::new_v4().simple());
        self.psql(
            &self.url("postgres"),
            &format!("CREATE DATABASE \"{name}\""),
        );
        self.url(&name)
    }

    /// Runs `sql` with this cluster's `psql` against `url` and returns the unaligned,
    /// tuples-only output with surrounding whitespace trimmed (`select 1` gives `"1"`).
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let mut command = Command::new(self.bin_dir.join("psql"));
        // -X: a developer's ~/.psqlrc must not change what tests see.
        command
            .arg(url)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let output = run(&mut command)
            .unwrap_or_else(|message| panic!("psql against {url} failed for `{sql}`: {message}"));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`); does nothing if it is not running.
    ///
    /// Clients see their connections closed, as they would in a real database outage.
    pub fn stop(&self) {
        if !self.is_running() {
            return;
        }
        let mut command = self.pg_ctl(["stop", "-w", "-m", "fast"]);
        if let Err(message) = run(&mut command) {
            panic!(
                "could not stop PostgreSQL on {HOST}:{}: {message}{}",
                self.port,
                self.log_tail()
            );
        }
    }

    /// Starts the server again on the same port with the same data; does nothing if running.
    pub fn start(&self) {
        if self.is_running() {
            return;
        }
        self.try_start()
            .unwrap_or_else(|message| panic!("{message}"));
    }

    /// Whether the postmaster is up (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        let mut command = self.pg_ctl(["status"]);
        match command.output() {
            Ok(output) => output.status.success(),
            Err(error) => panic!("could not run pg_ctl status: {error}"),
        }
    }

    fn try_start_new() -> Result<PgCluster, String> {
        Self::try_start_new_with(None)
    }

    fn try_start_new_with(require_tls: Option<bool>) -> Result<PgCluster, String> {
        let bin_dir = locate_bin_dir()?;
        let run_as = RunAs::for_current_user();
        let dir = tempfile::Builder::new()
            .prefix("kneo-pg-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|error| format!("could not create a temp dir for PostgreSQL: {error}"))?;
        run_as.hand_over(dir.path())?;
        let mut cluster = PgCluster {
            dir,
            port: 0,
            bin_dir,
            run_as,
            tls: None,
        };
        cluster.init_data_dir()?;
        if let Some(require_tls) = require_tls {
            cluster.tls = Some(cluster.set_up_tls(require_tls)?);
        }
        cluster.start_on_free_port()?;
        if cluster.tls.is_some() {
            cluster.psql(
                &cluster.url("postgres"),
                &format!(
                    "CREATE ROLE {CLIENT_CERT_ROLE} LOGIN SUPERUSER; \
                     CREATE ROLE {SCRAM_ROLE} LOGIN SUPERUSER PASSWORD '{SCRAM_PASSWORD}'"
                ),
            );
        }
        Ok(cluster)
    }

    /// Writes the certificates and a pg_hba.conf for them; `try_start` turns `ssl` on.
    fn set_up_tls(&self, require_tls: bool) -> Result<TestCertificates, String> {
        let certificate_dir = self.dir.path().join("certificates");
        fs::create_dir(&certificate_dir)
            .map_err(|error| format!("cannot create {certificate_dir:?}: {error}"))?;
        let certificates = TestCertificates::generate(&certificate_dir);
        // The server refuses a key file that is not its own user's.
        for entry in fs::read_dir(&certificate_dir).map_err(|error| error.to_string())? {
            let path = entry.map_err(|error| error.to_string())?.path();
            self.run_as.hand_over(&path)?;
        }
        let plain = if require_tls {
            ""
        } else {
            "host all all 127.0.0.1/32 trust\n"
        };
        let rules = format!(
            "local all all trust\n\
             hostssl all {CLIENT_CERT_ROLE} 127.0.0.1/32 cert\n\
             hostssl all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n{plain}"
        );
        let hba = self.data_dir().join("pg_hba.conf");
        fs::write(&hba, rules).map_err(|error| format!("cannot write {hba:?}: {error}"))?;
        Ok(certificates)
    }

    fn init_data_dir(&self) -> Result<(), String> {
        let mut command = self.server_command("initdb");
        // --locale=C: results must not depend on the host's locale settings.
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["--auth=trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(&mut command)
            .map(drop)
            .map_err(|message| format!("initdb failed in {:?}: {message}", self.dir.path()))
    }

    fn start_on_free_port(&mut self) -> Result<(), String> {
        let mut attempt = 1;
        loop {
            self.port = free_port()?;
            let log_offset = self.log_len();
            match self.try_start() {
                Ok(()) => return Ok(()),
                Err(_) if attempt < START_ATTEMPTS && self.port_was_taken(log_offset) => {
                    eprintln!(
                        "kneo-testkit: port {} was taken before PostgreSQL bound it; retrying",
                        self.port
                    );
                    attempt += 1;
                }
                Err(message) => return Err(message),
            }
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let mut options = format!(
            "-c listen_addresses={HOST} -p {port} -k '{socket_dir}' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c autovacuum=off \
             -c max_connections=300",
            port = self.port,
            socket_dir = self.dir.path().display(),
        );
        if let Some(files) = &self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file='{}' -c ssl_key_file='{}' -c ssl_ca_file='{}'",
                files.server_cert().display(),
                files.server_key().display(),
                files.ca_cert().display(),
            ));
        }
        let mut command = self.server_command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", START_TIMEOUT_SECS, "-l"])
            .arg(self.log_path())
            .arg("-o")
            .arg(options)
            .arg("start");
        run(&mut command).map(drop).map_err(|message| {
            format!(
                "PostgreSQL did not start on {HOST}:{} (data dir {:?}): {message}{}",
                self.port,
                self.data_dir(),
                self.log_tail()
            )
        })
    }

    /// Crash-stops the server; used on drop, where nothing can be reported.
    fn stop_immediately(&self) {
        let _ = self.pg_ctl(["stop", "-w", "-m", "immediate"]).output();
    }

    /// What the shared cluster's watchdog runs: the crash stop of `stop_immediately`, then the
    /// removal of the cluster's directory.
    fn cleanup_command(&self) -> Command {
        let stop = self.pg_ctl(["stop", "-w", "-m", "immediate"]);
        let mut command = Command::new("sh");
        command
            .args(["-c", r#""$@"; rm -rf -- "$0""#])
            .arg(self.dir.path())
            .arg(stop.get_program())
            .args(stop.get_args());
        if let Some(dir) = stop.get_current_dir() {
            command.current_dir(dir);
        }
        command
    }

    fn pg_ctl<const N: usize>(&self, args: [&str; N]) -> Command {
        let mut command = self.server_command("pg_ctl");
        command.arg("-D").arg(self.data_dir()).args(args);
        command
    }

    fn server_command(&self, program: &str) -> Command {
        let mut command = self.run_as.command(&self.bin_dir.join(program));
        // Under runuser the postgres user may not be allowed into the caller's working
        // directory, and initdb/pg_ctl complain about that.
        command.current_dir(self.dir.path());
        command
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn log_len(&self) -> u64 {
        fs::metadata(self.log_path()).map_or(0, |meta| meta.len())
    }

    fn port_was_taken(&self, log_offset: u64) -> bool {
        let log = fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(log_offset).unwrap_or(0).min(log.len());
        String::from_utf8_lossy(&log[start..]).contains("Address already in use")
    }

    fn log_tail(&self) -> String {
        let path = self.log_path();
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                format!("\n--- last lines of {path:?} ---\n{}", tail.join("\n"))
            }
            Err(error) => format!("\n(no server log at {path:?}: {error})"),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_immediately();
    }
}

impl RunAs {
    fn for_current_user() -> RunAs {
        if rustix::process::geteuid().is_root() {
            RunAs::PostgresUser
        } else {
            RunAs::CurrentUser
        }
    }

    /// Gives the cluster directory to the user the server will run as.
    fn hand_over(self, dir: &Path) -> Result<(), String> {
        if self == RunAs::CurrentUser {
            return Ok(());
        }
        let (uid, gid) = postgres_user_ids()?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|error| format!("could not chown {dir:?} to the `{SUPERUSER}` user: {error}"))
    }

    fn command(self, program: &Path) -> Command {
        match self {
            RunAs::CurrentUser => Command::new(program),
            RunAs::PostgresUser => {
                let mut command = Command::new(runuser_path());
                command.args(["-u", SUPERUSER, "--"]).arg(program);
                command
            }
        }
    }
}

/// The uid and gid of the `postgres` account.
fn postgres_user_ids() -> Result<(u32, u32), String> {
    Ok((postgres_user_id("-u")?, postgres_user_id("-g")?))
}

/// `id -u postgres` (`flag` "-u") or `id -g postgres` ("-g"): the account database through
/// the system's own tool, which also knows accounts that are not in /etc/passwd.
fn postgres_user_id(flag: &str) -> Result<u32, String> {
    let output = Command::new("id")
        .args([flag, SUPERUSER])
        .output()
        .map_err(|error| format!("could not run `id {flag} {SUPERUSER}`: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "tests run as root, so PostgreSQL must run as the `{SUPERUSER}` user, but there is \
             no such user; install the `postgresql` package (apt-get install -y postgresql), \
             which creates it"
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .map_err(|_| format!("`id {flag} {SUPERUSER}` printed {text:?}, which is not a number"))
}

fn runuser_path() -> &'static OsStr {
    // /usr/sbin is often missing from PATH for non-login shells.
    ["/usr/sbin/runuser", "/sbin/runuser"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .map_or(OsStr::new("runuser"), OsStr::new)
}

fn locate_bin_dir() -> Result<PathBuf, String> {
    pg_config_bin_dir()
        .filter(|dir| has_server_binaries(dir))
        .or_else(newest_packaged_bin_dir)
        .or_else(pg_ctl_on_path_dir)
        .ok_or_else(|| MISSING_BINARIES.to_string())
}

/// The directory of a `pg_ctl` on `PATH` that has `initdb` beside it (a source build, a
/// distribution that installs into /usr/bin): what `.ci/run` accepts as "installed".
fn pg_ctl_on_path_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_server_binaries(dir))
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

fn newest_packaged_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| has_server_binaries(dir))
        .max_by_key(|dir| version_of(dir))
}

/// `/usr/lib/postgresql/9.6/bin` gives `[9, 6]`, so 15 sorts above 9.6.
fn version_of(bin_dir: &Path) -> Vec<u32> {
    let version = bin_dir
        .parent()
        .and_then(Path::file_name)
        .and_then(OsStr::to_str)
        .unwrap_or_default();
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn free_port() -> Result<u16, String> {
    // The listener is dropped right away; the small window before the postmaster binds is
    // covered by the retry in `start_on_free_port`.
    TcpListener::bind((HOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("could not find a free port on {HOST}: {error}"))
}

/// Runs `command` to completion and turns a spawn failure or non-zero exit into a message
/// that carries the command line and its output.
fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .output()
        .map_err(|error| format!("could not run {command:?}: {error}"))?;
    if output.status.success() {
        return Ok(output);
    }
    Err(format!(
        "{command:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_major_versions_sort_higher() {
        let old = version_of(Path::new("/usr/lib/postgresql/9.6/bin"));
        let new = version_of(Path::new("/usr/lib/postgresql/15/bin"));
        assert!(new > old, "{new:?} should sort above {old:?}");
    }

    #[test]
    fn url_names_superuser_host_port_and_database() {
        let cluster = shared_cluster();
        assert_eq!(
            cluster.url("app"),
            format!("postgres://postgres@127.0.0.1:{}/app", cluster.port())
        );
    }
}
