//! Service configuration: every `KNEO_SERV_*` variable read once, at start, into a typed [`Config`].
//!
//! A bad value stops start-up with a [`ConfigError`] naming the variable, what is wrong with it
//! and the form it should take. Secret values are never repeated in an error.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::auth::{ApiKey, KeyConfigError, parse_api_keys};
use crate::postgres_client::PostgresTarget;

/// Everything the service reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// Where the embedded store lives (`.kneo` in the working directory by default).
    pub state_dir: PathBuf,
    /// Postgres DSN; when set, every store moves to Postgres.
    pub database_url: Option<String>,
    /// `database_url` parsed once, with its TLS settings and the `PGSSL*` fallbacks read.
    pub postgres_target: Option<PostgresTarget>,
    /// Connections in the Postgres pool.
    pub postgres_pool_size: usize,
    /// Whether protected routes require a key.
    pub auth_enabled: bool,
    /// Configured keys (from `KNEO_SERV_API_KEYS` and `KNEO_SERV_ADMIN_API_KEY`).
    pub api_keys: Vec<ApiKey>,
    pub limits: Limits,
    pub request_logs: bool,
    pub log_level: String,
    pub metrics_enabled: bool,
    /// Provider names whose secrets `/readyz` checks (`KNEO_SERV_HEALTH_PROVIDERS`).
    pub health_providers: Vec<String>,
    /// MCP secret names `/readyz` checks (`KNEO_SERV_HEALTH_MCP_SECRETS`).
    pub health_mcp_secrets: Vec<String>,
    /// Upper bound for each readiness probe, so `/readyz` answers even when a store hangs.
    pub health_probe_timeout: Duration,
    /// Root that `spec_path` values are confined to.
    pub spec_root: PathBuf,
    pub worker: WorkerConfig,
    /// Per-run cap on stored trace events (0 = no cap).
    pub trace_max_events: usize,
    /// `KNEO_SERV_RUN_MAX_STORED_BYTES`: the most one execution of a run may keep in the store
    /// (its state plus the trace and checkpoints it appends); past it the run fails with
    /// `run_too_large` (0 = no budget).
    pub run_max_stored_bytes: u64,
    /// How long an idempotency mark with nothing bound to it yet stays "in progress" before
    /// another request may take it over: the longest a crashed request blocks its retry. The
    /// mark covers only the moment before the first write (which binds the key to its run), so
    /// it is short (5 s; kneo-serv's 300 s had to cover whole sync runs).
    pub idempotency_lock_ttl: Duration,
    /// How long shutdown waits for in-flight runs before leaving them to lease expiry.
    pub shutdown_timeout: Duration,
    /// How often the in-process sweep looks for expired human tasks and overdue runs.
    pub sweep_interval: Duration,
    /// `KNEO_SERV_HTTP_HEADER_READ_TIMEOUT_SECONDS`: how long a connection may take to send a
    /// complete request head (a new connection, a half-sent head, or an idle keep-alive
    /// connection between requests) before it is closed; also the longest pause inside a body.
    pub http_header_read_timeout: Duration,
    /// `KNEO_SERV_MAX_CONNECTIONS`: open client connections at most; `None` derives the cap
    /// from the open-file limit at start.
    pub max_connections: Option<usize>,
    /// kneo-serv variables that are set but that kneo does not act on yet: logged at start.
    pub unread_variables: Vec<String>,
}

/// Request-size and page-size limits (kneo-serv defaults).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_input_chars: usize,
    pub max_human_content_chars: usize,
    pub max_inline_spec_bytes: usize,
    pub max_overrides_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_path_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1_048_576,
            max_input_chars: 20_000,
            max_human_content_chars: 20_000,
            max_inline_spec_bytes: 262_144,
            max_overrides_bytes: 65_536,
            max_metadata_bytes: 32_768,
            max_path_chars: 4_096,
        }
    }
}

/// Queue and worker settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// In-process workers draining the queue (0 = none; use `kneo service worker`).
    pub concurrency: usize,
    /// How long a claimed run stays leased without a renewal.
    pub lease: Duration,
    /// Claims after which a run is dead-lettered (0 = never).
    pub max_attempts: u32,
    /// Queued runs at which async creates get `503 queue_full` (0 = unbounded).
    pub max_queue_depth: u64,
    /// How long an idle worker waits before polling the store again.
    pub poll_interval: Duration,
}

/// A variable that could not be used, with the reason and the expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    /// The offending value, or `None` when it is a secret or irrelevant.
    pub value: Option<String>,
    pub problem: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={:?}: {}", self.variable, value, self.problem)?,
            None => write!(f, "{}: {}", self.variable, self.problem)?,
        }
        write!(f, "; expected {}", self.expected)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&std::env::vars().collect())
    }

    /// Reads configuration from a variable map (the process environment, or a test's own map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let env = Env { vars };
        let api_keys = env.api_keys()?;
        let auth_enabled = env
            .bool("KNEO_SERV_AUTH_ENABLED")?
            .unwrap_or(!api_keys.is_empty());
        if auth_enabled && api_keys.is_empty() {
            return Err(ConfigError {
                variable: "KNEO_SERV_AUTH_ENABLED".into(),
                value: Some("true".into()),
                problem: "auth is enabled but no API keys are configured (runbook § 1.1)".into(),
                expected:
                    "KNEO_SERV_API_KEYS (name:key:roles;...) or KNEO_SERV_ADMIN_API_KEY to be set, \
                           or KNEO_SERV_AUTH_ENABLED=false for local development only"
                        .into(),
            });
        }
        let database_url = env.text("KNEO_SERV_DATABASE_URL");
        let postgres_target = match &database_url {
            Some(url) => Some(postgres_target(url, vars)?),
            None => None,
        };
        let limits = Limits {
            max_body_bytes: env.positive("KNEO_SERV_MAX_BODY_BYTES", 1_048_576)?,
            max_input_chars: env.positive("KNEO_SERV_MAX_INPUT_CHARS", 20_000)?,
            max_human_content_chars: env.positive("KNEO_SERV_MAX_HUMAN_CONTENT_CHARS", 20_000)?,
            max_inline_spec_bytes: env.positive("KNEO_SERV_MAX_INLINE_SPEC_BYTES", 262_144)?,
            max_overrides_bytes: env.positive("KNEO_SERV_MAX_OVERRIDES_BYTES", 65_536)?,
            max_metadata_bytes: env.positive("KNEO_SERV_MAX_METADATA_BYTES", 32_768)?,
            max_path_chars: env.positive("KNEO_SERV_MAX_PATH_CHARS", 4_096)?,
        };
        let log_level = env.log_level()?;
        env.engine_settings()?;
        let spec_root = match env.text("KNEO_SERV_SPEC_ROOT") {
            Some(root) => PathBuf::from(root),
            None => std::env::current_dir().map_err(|error| ConfigError {
                variable: "KNEO_SERV_SPEC_ROOT".into(),
                value: None,
                problem: format!("is unset and the working directory cannot be read ({error})"),
                expected: "a directory path holding the spec files".into(),
            })?,
        };
        Ok(Config {
            state_dir: PathBuf::from(
                env.text("KNEO_SERV_STATE_DIR")
                    .unwrap_or_else(|| ".kneo".into()),
            ),
            database_url,
            postgres_target,
            postgres_pool_size: env.positive("KNEO_SERV_POSTGRES_POOL_SIZE", 16)?,
            auth_enabled,
            api_keys,
            limits,
            request_logs: env.bool("KNEO_SERV_REQUEST_LOGS")?.unwrap_or(true),
            log_level,
            metrics_enabled: env.bool("KNEO_SERV_METRICS_ENABLED")?.unwrap_or(true),
            health_providers: env.list("KNEO_SERV_HEALTH_PROVIDERS"),
            health_mcp_secrets: env.list("KNEO_SERV_HEALTH_MCP_SECRETS"),
            health_probe_timeout: env.seconds("KNEO_SERV_HEALTH_PROBE_TIMEOUT_SECONDS", 1.5)?,
            spec_root,
            worker: WorkerConfig {
                concurrency: env.count("KNEO_SERV_WORKER_CONCURRENCY", 1)?,
                lease: env.seconds("KNEO_SERV_WORKER_LEASE_SECONDS", 300.0)?,
                max_attempts: env.bounded("KNEO_SERV_QUEUE_MAX_ATTEMPTS", 5, 10_000)? as u32,
                max_queue_depth: env.count("KNEO_SERV_MAX_QUEUE_DEPTH", 0)? as u64,
                poll_interval: env.seconds("KNEO_SERV_WORKER_POLL_SECONDS", 0.5)?,
            },
            trace_max_events: env.count("KNEO_SERV_TRACE_MAX_EVENTS", 10_000)?,
            run_max_stored_bytes: env.count("KNEO_SERV_RUN_MAX_STORED_BYTES", 64 * 1024 * 1024)?
                as u64,
            idempotency_lock_ttl: env.seconds("KNEO_SERV_IDEMPOTENCY_LOCK_TTL_SECONDS", 5.0)?,
            shutdown_timeout: env.seconds("KNEO_SERV_SHUTDOWN_TIMEOUT_SECONDS", 30.0)?,
            sweep_interval: env.seconds("KNEO_SERV_SWEEP_INTERVAL_SECONDS", 5.0)?,
            http_header_read_timeout: env
                .seconds("KNEO_SERV_HTTP_HEADER_READ_TIMEOUT_SECONDS", 10.0)?,
            max_connections: match env.text("KNEO_SERV_MAX_CONNECTIONS") {
                None => None,
                Some(_) => Some(env.positive("KNEO_SERV_MAX_CONNECTIONS", 1)?),
            },
            unread_variables: unread_variables(vars),
        })
    }

    /// The SQLite file of the embedded store.
    pub fn sqlite_path(&self) -> PathBuf {
        self.state_dir.join("kneo_runs.sqlite")
    }

    /// The directory of continuation files on the embedded store.
    pub fn continuations_dir(&self) -> PathBuf {
        self.state_dir.join("continuations")
    }
}

impl fmt::Debug for Config {
    // Written by hand so that keys and the DSN password never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("state_dir", &self.state_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::redact::redact_dsn),
            )
            .field("auth_enabled", &self.auth_enabled)
            .field(
                "api_key_names",
                &self
                    .api_keys
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("limits", &self.limits)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// Prefixes of kneo-serv variables kneo does not act on yet (docs/configuration.md, "kneo-serv
/// variables that kneo does not read"): OpenTelemetry export, retention and the checkpoint limits.
const UNREAD_PREFIXES: [&str; 3] = [
    "KNEO_SERV_OTEL_",
    "KNEO_SERV_RETENTION_",
    "KNEO_SERV_CHECKPOINT_",
];

/// The set variables under [`UNREAD_PREFIXES`], sorted, so the start can say they change nothing.
fn unread_variables(vars: &HashMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = vars
        .keys()
        .filter(|name| {
            UNREAD_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        })
        .cloned()
        .collect();
    names.sort();
    names
}

/// Parses the Postgres URL with its TLS settings; a `PGSSL*` variable it falls back to is read
/// from the same variables, so a bad one is named here too.
fn postgres_target(
    url: &str,
    vars: &HashMap<String, String>,
) -> Result<PostgresTarget, ConfigError> {
    let looks_like_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let parsed = PostgresTarget::from_url_with(url, &|name| vars.get(name).cloned());
    let error = match parsed {
        Ok(target) if looks_like_url => return Ok(target),
        Ok(_) => None,
        Err(error) => Some(error),
    };
    Err(match error {
        // A TLS variable of libpq's (PGSSLROOTCERT, …) is the thing to fix, not the URL.
        Some(error) if error.setting.starts_with("PG") => ConfigError {
            variable: error.setting.clone(),
            value: error.value.clone(),
            problem: error.problem.clone(),
            expected: format!("{} (runbook § 2.9)", error.fix),
        },
        Some(error) if error.setting != "connection string" => ConfigError {
            variable: "KNEO_SERV_DATABASE_URL".into(),
            value: Some(crate::redact::redact_dsn(url)),
            problem: format!(
                "{} {}",
                match &error.value {
                    Some(value) => format!("{}={value:?}", error.setting),
                    None => error.setting.clone(),
                },
                error.problem
            ),
            expected: format!("{} (runbook § 2.9)", error.fix),
        },
        other => ConfigError {
            variable: "KNEO_SERV_DATABASE_URL".into(),
            // The DSN may hold a password: show it with the password masked.
            value: Some(crate::redact::redact_dsn(url)),
            problem: match other {
                Some(error) => format!("is not a usable Postgres URL ({})", error.problem),
                None => "is not a postgres:// URL".to_string(),
            },
            expected: "a libpq URL such as postgres://user:password@host:5432/dbname".into(),
        },
    })
}

/// Typed lookups over the variable map; every failure names the variable.
struct Env<'a> {
    vars: &'a HashMap<String, String>,
}

impl Env<'_> {
    /// A non-empty, trimmed value.
    fn text(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    }

    fn invalid(&self, name: &str, value: &str, problem: &str, expected: &str) -> ConfigError {
        ConfigError {
            variable: name.into(),
            value: Some(value.into()),
            problem: problem.into(),
            expected: expected.into(),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(self.invalid(name, &value, "is not a boolean", "true or false")),
        }
    }

    /// A whole number ≥ 0.
    fn count(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        let Some(value) = self.text(name) else {
            return Ok(default);
        };
        value.parse::<usize>().map_err(|_| {
            self.invalid(
                name,
                &value,
                "is not a whole number",
                "a whole number ≥ 0, e.g. 4",
            )
        })
    }

    /// A whole number in `0..=max`.
    fn bounded(&self, name: &str, default: usize, max: usize) -> Result<usize, ConfigError> {
        let number = self.count(name, default)?;
        if number > max {
            let value = number.to_string();
            return Err(self.invalid(
                name,
                &value,
                "is too large",
                &format!("a whole number from 0 to {max}"),
            ));
        }
        Ok(number)
    }

    /// A whole number ≥ 1.
    fn positive(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        let Some(value) = self.text(name) else {
            return Ok(default);
        };
        match value.parse::<usize>() {
            Ok(number) if number >= 1 => Ok(number),
            _ => Err(self.invalid(
                name,
                &value,
                "is not a positive whole number",
                "a whole number ≥ 1",
            )),
        }
    }

    /// A duration in (possibly fractional) seconds, > 0.
    fn seconds(&self, name: &str, default: f64) -> Result<Duration, ConfigError> {
        let value = match self.text(name) {
            Some(value) => value,
            None => return Ok(Duration::from_secs_f64(default)),
        };
        match value.parse::<f64>() {
            Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
                Ok(Duration::from_secs_f64(seconds))
            }
            _ => Err(self.invalid(
                name,
                &value,
                "is not a positive number of seconds",
                "seconds > 0, e.g. 30 or 0.5",
            )),
        }
    }

    /// A comma-separated list; blanks dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|value| {
                value
                    .split(',')
                    .map(|item| item.trim().to_string())
                    .filter(|item| !item.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn log_level(&self) -> Result<String, ConfigError> {
        let Some(value) = self.text("KNEO_SERV_LOG_LEVEL") else {
            return Ok("info".into());
        };
        let level = value.to_ascii_lowercase();
        let level = if level == "warning" {
            "warn".to_string()
        } else {
            level
        };
        match level.as_str() {
            "trace" | "debug" | "info" | "warn" | "error" => Ok(level),
            "critical" => Ok("error".into()),
            _ => Err(self.invalid(
                "KNEO_SERV_LOG_LEVEL",
                &value,
                "is not a log level",
                "one of DEBUG, INFO, WARNING, ERROR",
            )),
        }
    }

    /// Checks the provider and MCP settings the engine reads, so a typo stops start-up here
    /// instead of being ignored at the first run. With `KNEO_SERV_REQUIRE_PROVIDER_SECRETS`, the
    /// secrets of the providers listed for readiness must be present too (runbook § 3.1).
    fn engine_settings(&self) -> Result<(), ConfigError> {
        for name in [
            "KNEO_SERV_PROVIDER_TIMEOUT_SECONDS",
            "KNEO_SERV_MCP_TIMEOUT_SECONDS",
            "KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS",
        ] {
            self.seconds(name, 1.0)?;
        }
        for name in [
            "KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS",
            "KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS",
        ] {
            if let Some(value) = self.text(name) {
                let valid = value
                    .parse::<f64>()
                    .is_ok_and(|s| s.is_finite() && s >= 0.0);
                if !valid {
                    return Err(self.invalid(
                        name,
                        &value,
                        "is not a number of seconds",
                        "seconds ≥ 0, e.g. 0.25",
                    ));
                }
            }
        }
        for name in ["KNEO_SERV_PROVIDER_RETRIES", "KNEO_SERV_MCP_RETRIES"] {
            self.bounded(name, 0, 20)?;
        }
        // kneo-serv quietly drops a budget it cannot read; a typo must not lift the ceiling.
        self.positive("KNEO_SERV_TOKEN_BUDGET", 1)?;
        for name in [
            "KNEO_SERV_PROVIDER_RETRY_ON_TIMEOUT",
            "KNEO_SERV_WORKFLOW_RETRY_ON_TIMEOUT",
        ] {
            self.bool(name)?;
        }
        if self
            .bool("KNEO_SERV_REQUIRE_PROVIDER_SECRETS")?
            .unwrap_or(false)
        {
            for provider in self.list("KNEO_SERV_HEALTH_PROVIDERS") {
                let env_var = crate::readiness::provider_env_var(&provider);
                if self.text(&env_var).is_none() {
                    return Err(ConfigError {
                        variable: env_var.clone(),
                        value: None,
                        problem: format!(
                            "is not set, and KNEO_SERV_REQUIRE_PROVIDER_SECRETS=true requires the secret of provider \
                             {provider} (MissingSecretError; runbook § 3.1)"
                        ),
                        expected: format!("{env_var} to be exported in the service's environment"),
                    });
                }
            }
        }
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<ApiKey>, ConfigError> {
        let mut keys = match self.vars.get("KNEO_SERV_API_KEYS") {
            Some(raw) => parse_api_keys(raw).map_err(|error| key_config_error(&error))?,
            None => Vec::new(),
        };
        if let Some(admin) = self.text("KNEO_SERV_ADMIN_API_KEY") {
            keys.push(ApiKey::admin(&admin));
        }
        Ok(keys)
    }
}

fn key_config_error(error: &KeyConfigError) -> ConfigError {
    ConfigError {
        variable: "KNEO_SERV_API_KEYS".into(),
        value: None,
        problem: format!("{error} (runbook § 1.4)"),
        expected: "entries name:key:role_or_scope[,role_or_scope] separated by ';', e.g. \
                   ops:OPS_TOKEN:operator;ci:CI_TOKEN:runs:read,runs:write"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_kneo_serv_variables_kneo_does_not_act_on_are_listed_for_the_start_warning() {
        let config = Config::from_vars(&vars(&[
            ("KNEO_SERV_RETENTION_RUNS_DAYS", "30"),
            ("KNEO_SERV_OTEL_ENABLED", "true"),
            ("KNEO_SERV_CHECKPOINT_MAX_BYTES", "1000"),
            ("KNEO_SERV_TRACE_MAX_EVENTS", "10"),
        ]))
        .unwrap();
        assert_eq!(
            config.unread_variables,
            [
                "KNEO_SERV_CHECKPOINT_MAX_BYTES",
                "KNEO_SERV_OTEL_ENABLED",
                "KNEO_SERV_RETENTION_RUNS_DAYS"
            ]
        );
        assert!(
            Config::from_vars(&vars(&[]))
                .unwrap()
                .unread_variables
                .is_empty()
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_configuration_gives_the_embedded_defaults_with_auth_off() {
        let config = Config::from_vars(&vars(&[])).expect("defaults are valid");
        assert_eq!(
            config.sqlite_path(),
            PathBuf::from(".kneo/kneo_runs.sqlite")
        );
        assert_eq!(
            config.continuations_dir(),
            PathBuf::from(".kneo/continuations")
        );
        assert!(config.database_url.is_none());
        assert!(!config.auth_enabled);
        assert_eq!(config.limits.max_body_bytes, 1_048_576);
        assert_eq!(config.worker.concurrency, 1);
        assert_eq!(config.worker.lease, Duration::from_secs(300));
    }

    #[test]
    fn keys_turn_auth_on_by_default() {
        let config = Config::from_vars(&vars(&[("KNEO_SERV_API_KEYS", "ops:opskey123:operator")]))
            .expect("valid");
        assert!(config.auth_enabled);
        assert_eq!(config.api_keys.len(), 1);
    }

    #[test]
    fn auth_enabled_without_keys_is_refused_with_the_fix() {
        let error =
            Config::from_vars(&vars(&[("KNEO_SERV_AUTH_ENABLED", "true")])).expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("KNEO_SERV_AUTH_ENABLED"), "{text}");
        assert!(text.contains("no API keys are configured"), "{text}");
        assert!(text.contains("KNEO_SERV_ADMIN_API_KEY"), "{text}");
    }

    #[test]
    fn a_bad_number_names_the_variable_value_and_form() {
        let error = Config::from_vars(&vars(&[("KNEO_SERV_WORKER_CONCURRENCY", "many")]))
            .expect_err("refused");
        assert_eq!(error.variable, "KNEO_SERV_WORKER_CONCURRENCY");
        assert_eq!(error.value.as_deref(), Some("many"));
        assert!(
            error.to_string().contains("expected a whole number"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_database_url_is_refused_without_echoing_the_password() {
        let error = Config::from_vars(&vars(&[(
            "KNEO_SERV_DATABASE_URL",
            "mysql://u:hunter2@db/x",
        )]))
        .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("KNEO_SERV_DATABASE_URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn postgres_tls_settings_are_checked_at_start_and_name_what_to_fix() {
        let error = Config::from_vars(&vars(&[(
            "KNEO_SERV_DATABASE_URL",
            "postgres://u:hunter2@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )]))
        .expect_err("refused");
        let text = error.to_string();
        assert_eq!(error.variable, "KNEO_SERV_DATABASE_URL");
        assert!(
            text.contains("sslrootcert=\"/nonexistent/ca.pem\" cannot be read"),
            "{text}"
        );
        assert!(text.contains("§ 2.9"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let error = Config::from_vars(&vars(&[
            ("KNEO_SERV_DATABASE_URL", "postgres://db/x"),
            ("PGSSLMODE", "verify"),
        ]))
        .expect_err("refused");
        assert_eq!(error.variable, "PGSSLMODE");
        assert_eq!(error.value.as_deref(), Some("verify"));
        let config = Config::from_vars(&vars(&[
            ("KNEO_SERV_DATABASE_URL", "postgres://db/x"),
            ("PGSSLMODE", "require"),
        ]))
        .expect("valid");
        let target = config.postgres_target.expect("parsed");
        assert_eq!(target.ssl_mode(), crate::postgres_client::SslMode::Require);
    }

    #[test]
    fn a_malformed_key_entry_is_refused_without_echoing_keys() {
        let error = Config::from_vars(&vars(&[("KNEO_SERV_API_KEYS", "ops-secret-token")]))
            .expect_err("refused");
        assert_eq!(error.variable, "KNEO_SERV_API_KEYS");
        assert!(!error.to_string().contains("ops-secret-token"), "{error}");
    }

    #[test]
    fn provider_and_mcp_settings_are_checked_at_start() {
        let error = Config::from_vars(&vars(&[("KNEO_SERV_MCP_TIMEOUT_SECONDS", "fast")]))
            .expect_err("refused");
        assert_eq!(error.variable, "KNEO_SERV_MCP_TIMEOUT_SECONDS");
        let error =
            Config::from_vars(&vars(&[("KNEO_SERV_PROVIDER_RETRIES", "99")])).expect_err("refused");
        assert_eq!(error.variable, "KNEO_SERV_PROVIDER_RETRIES");
        let required = [
            ("KNEO_SERV_REQUIRE_PROVIDER_SECRETS", "true"),
            ("KNEO_SERV_HEALTH_PROVIDERS", "openai"),
        ];
        let error = Config::from_vars(&vars(&required)).expect_err("missing secret");
        assert_eq!(error.variable, "OPENAI_API_KEY");
        assert!(error.to_string().contains("§ 3.1"), "{error}");
        let mut present = vars(&required);
        present.insert("OPENAI_API_KEY".into(), "sk-test".into());
        assert!(Config::from_vars(&present).is_ok());
    }

    #[test]
    fn lists_are_split_and_trimmed() {
        let config = Config::from_vars(&vars(&[(
            "KNEO_SERV_HEALTH_PROVIDERS",
            " openai, anthropic ,",
        )]))
        .expect("valid");
        assert_eq!(config.health_providers, vec!["openai", "anthropic"]);
    }

    #[test]
    fn warning_is_accepted_as_a_log_level() {
        let config =
            Config::from_vars(&vars(&[("KNEO_SERV_LOG_LEVEL", "WARNING")])).expect("valid");
        assert_eq!(config.log_level, "warn");
    }
}
