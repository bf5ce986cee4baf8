//! The one way kneo opens Postgres: a libpq connection string (plus the `PG*` TLS variables libpq
//! users already set) becomes a [`PostgresTarget`]: the tokio-postgres configuration and a rustls
//! connector that honours `sslmode`, `sslrootcert`, `sslcert` and `sslkey` as libpq does. The
//! store's pool, backup, restore, verify and the service-event reader all connect through it.
//!
//! - [`settings`]: splitting the TLS settings out of the string; the variables as fallback.
//! - [`tls`]: the rustls client configuration (trusted roots, certificate checks, client key).
//! - [`connector`]: tokio-postgres's TLS hooks and the SCRAM channel binding.
//! - [`failure`]: which driver errors are TLS failures (`tls_failed`, `certificate_invalid`).

pub mod connector;
pub mod failure;
pub mod settings;
pub mod tls;

use std::fmt;
use std::path::PathBuf;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, Connection, Socket};

pub use connector::RustlsConnector;
pub use settings::SslMode;
pub use tls::Verification;

/// A connection string that could not be used: the setting, its value when it is not secret,
/// what is wrong and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    /// `sslmode`, `PGSSLROOTCERT`, `connection string`, …
    pub setting: String,
    pub value: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl TargetError {
    pub fn new(setting: &str, value: Option<&str>, problem: &str, fix: &str) -> TargetError {
        TargetError {
            setting: setting.to_string(),
            value: value.map(str::to_string),
            problem: problem.to_string(),
            fix: fix.to_string(),
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value:?} {}", self.setting, self.problem)?,
            None => write!(f, "{} {}", self.setting, self.problem)?,
        }
        write!(f, "; use {} (runbook § 2.9)", self.fix)
    }
}

impl std::error::Error for TargetError {}

/// A parsed connection string and the connector for it. Cheap to clone.
#[derive(Clone)]
pub struct PostgresTarget {
    config: Config,
    connector: RustlsConnector,
    mode: SslMode,
    verification: Verification,
    description: String,
}

impl fmt::Debug for PostgresTarget {
    // The configuration holds the password: only the description and TLS choice are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("target", &self.description)
            .field("sslmode", &self.mode.as_str())
            .field("verification", &self.verification.as_str())
            .finish_non_exhaustive()
    }
}

impl PostgresTarget {
    /// Reads `connection` with the process environment as libpq's fallback.
    pub fn from_url(connection: &str) -> Result<PostgresTarget, TargetError> {
        PostgresTarget::from_url_with(connection, &|name| std::env::var(name).ok())
    }

    /// Reads `connection`, looking up `PGSSL*` and `HOME` with `env` (a test's own map, or the
    /// variables the service was configured from).
    pub fn from_url_with(
        connection: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PostgresTarget, TargetError> {
        let split = settings::split(connection, env)?;
        let mut config = split.rest.parse::<Config>().map_err(|error| {
            TargetError::new(
                "connection string",
                None,
                &format!("is not valid ({error})"),
                "a libpq URL such as postgres://user:password@host:5432/dbname?sslmode=verify-full",
            )
        })?;
        config.ssl_mode(match split.tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let home = env("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from);
        let client = if split.tls.mode == SslMode::Disable {
            // Never used for a handshake; built without reading any file.
            tls::client(
                &settings::TlsSettings {
                    root_cert: None,
                    client_cert: None,
                    client_key: None,
                    ..split.tls.clone()
                },
                None,
            )?
        } else {
            tls::client(&split.tls, home.as_deref())?
        };
        let description = describe(&config);
        Ok(PostgresTarget {
            config,
            connector: RustlsConnector::new(client.config),
            mode: split.tls.mode,
            verification: client.verification,
            description,
        })
    }

    /// The tokio-postgres configuration (TLS mode set); change timeouts or the application name here.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connector for pools (`deadpool_postgres::Manager::from_config`) and direct connects.
    pub fn connector(&self) -> RustlsConnector {
        self.connector.clone()
    }

    /// `host:port/database`: what an operator needs to find the server, and nothing secret.
    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    pub fn verification(&self) -> Verification {
        self.verification
    }

    /// Opens one session. The caller drives the returned connection (spawn it).
    pub async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, connector::TlsStream<Socket>>), tokio_postgres::Error>
    {
        self.config.connect(self.connector.clone()).await
    }
}

/// `host:port/database` of a configuration, every host listed.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let port = config
                .get_ports()
                .get(index)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_string()
    } else {
        hosts.join(",")
    };
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{hosts}/{database}")
}

/// `host:port/database` of a connection string, or the string with its password masked when it
/// does not parse.
pub fn describe_url(connection: &str) -> String {
    match settings::split(connection, &|_| None)
        .ok()
        .and_then(|split| split.rest.parse::<Config>().ok())
    {
        Some(config) => describe(&config),
        None => crate::redact::redact_dsn(connection),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_plain_url_prefers_tls_without_checking_certificates() {
        let target =
            PostgresTarget::from_url_with("postgres://kneo:s3cret@db:6432/runs", &no_env).unwrap();
        assert_eq!(target.describe(), "db:6432/runs");
        assert_eq!(target.ssl_mode(), SslMode::Prefer);
        assert_eq!(target.verification(), Verification::None);
        assert_eq!(
            target.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        let debug = format!("{target:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn verify_modes_need_a_root_certificate_and_say_where_to_put_it() {
        let error =
            PostgresTarget::from_url_with("postgres://db/runs?sslmode=verify-full", &no_env)
                .unwrap_err();
        assert_eq!(error.setting, "sslmode");
        let text = error.to_string();
        assert!(text.contains("sslrootcert=/path/to/ca.pem"), "{text}");
        assert!(text.contains("§ 2.9"), "{text}");
    }

    #[test]
    fn a_named_root_file_that_is_missing_is_refused_in_every_mode() {
        let error = PostgresTarget::from_url_with(
            "postgres://db/runs?sslmode=require&sslrootcert=/nonexistent/ca.pem",
            &no_env,
        )
        .unwrap_err();
        assert_eq!(error.setting, "sslrootcert");
        assert_eq!(error.value.as_deref(), Some("/nonexistent/ca.pem"));
        assert!(error.problem.contains("cannot be read"), "{error}");
    }

    #[test]
    fn disable_reads_no_files() {
        let target = PostgresTarget::from_url_with(
            "postgres://db/runs?sslmode=disable&sslrootcert=/nonexistent/ca.pem",
            &no_env,
        )
        .unwrap();
        assert_eq!(
            target.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn a_bad_string_never_echoes_the_password() {
        let error =
            PostgresTarget::from_url_with("postgres://kneo:hunter2@db:notaport/runs", &no_env)
                .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert_eq!(
            describe_url("postgres://kneo:hunter2@db:notaport/runs"),
            "postgres://kneo:[REDACTED]@db:notaport/runs"
        );
        assert_eq!(
            describe_url("postgres://kneo:hunter2@db/runs?sslmode=verify-full"),
            "db:5432/runs"
        );
    }
}
