//! Provider and MCP settings read from the environment when the engine is built
//! (`KNEO_SERV_PROVIDER_*`, `KNEO_SERV_MCP_*`, `KNEO_SERV_TOKEN_BUDGET`, `OPENAI_BASE_URL`).
//!
//! A malformed value is logged with the variable's name and the default is used instead: the
//! engine cannot refuse to start (that is `config`'s job), and a typo here must not take every
//! run down with it.

use std::time::Duration;

/// How HTTP providers are called.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    /// `KNEO_SERV_PROVIDER_TIMEOUT_SECONDS`: per request; `None` (unset) waits as long as the
    /// step and run deadlines allow.
    pub timeout: Option<Duration>,
    /// `KNEO_SERV_PROVIDER_RETRIES` (default 0): extra attempts after a 429, a 5xx or a
    /// connection error.
    pub retries: u32,
    /// `KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS` (default 0.25): the first pause between
    /// attempts; it doubles after each one.
    pub retry_backoff: Duration,
    /// `KNEO_SERV_PROVIDER_RETRY_ON_TIMEOUT` (default false): retry a request that timed out.
    pub retry_on_timeout: bool,
    /// `OPENAI_BASE_URL`: the default endpoint when a spec sets no `model.extra.base_url`.
    pub openai_base_url: Option<String>,
    /// `KNEO_SERV_TOKEN_BUDGET`: tokens one agent turn may spend when its spec sets no
    /// `model.token_budget`; unset (or not a positive whole number) means no limit.
    pub token_budget: Option<u64>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            timeout: None,
            retries: 0,
            retry_backoff: Duration::from_millis(250),
            retry_on_timeout: false,
            openai_base_url: None,
            token_budget: None,
        }
    }
}

/// How MCP servers are reached.
#[derive(Debug, Clone, PartialEq)]
pub struct McpSettings {
    /// `KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS` (default 30): spawn + `initialize`.
    pub connect_timeout: Duration,
    /// `KNEO_SERV_MCP_TIMEOUT_SECONDS` (default 30): one `tools/call`, unless the server's own
    /// `timeout` says otherwise.
    pub call_timeout: Duration,
    /// `KNEO_SERV_MCP_RETRIES` (default 0): extra attempts after the server died or could not
    /// be started.
    pub retries: u32,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            connect_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(30),
            retries: 0,
        }
    }
}

/// Reads a variable through `lookup` (the environment in production, a map in tests).
fn seconds(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<Duration> {
    let text = lookup(name)?;
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Some(Duration::from_secs_f64(value)),
        _ => {
            tracing::warn!(target: "kneo_serv.engine", variable = name, value = %text, "ignoring a setting that is not a positive number of seconds");
            None
        }
    }
}

fn count(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<u32> {
    let text = lookup(name)?;
    match text.trim().parse::<u32>() {
        Ok(value) => Some(value.min(20)),
        Err(_) => {
            tracing::warn!(target: "kneo_serv.engine", variable = name, value = %text, "ignoring a setting that is not a whole number");
            None
        }
    }
}

fn flag(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<bool> {
    let text = lookup(name)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => {
            tracing::warn!(target: "kneo_serv.engine", variable = name, value = %text, "ignoring a setting that is not true or false");
            None
        }
    }
}

fn from_process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl ProviderSettings {
    pub fn from_env() -> ProviderSettings {
        ProviderSettings::from_lookup(&from_process_env)
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> ProviderSettings {
        let defaults = ProviderSettings::default();
        ProviderSettings {
            timeout: seconds(lookup, "KNEO_SERV_PROVIDER_TIMEOUT_SECONDS"),
            retries: count(lookup, "KNEO_SERV_PROVIDER_RETRIES").unwrap_or(defaults.retries),
            retry_backoff: lookup("KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS")
                .map(|text| match text.trim().parse::<f64>() {
                    Ok(value) if value.is_finite() && value >= 0.0 => {
                        Duration::from_secs_f64(value.min(60.0))
                    }
                    _ => defaults.retry_backoff,
                })
                .unwrap_or(defaults.retry_backoff),
            retry_on_timeout: flag(lookup, "KNEO_SERV_PROVIDER_RETRY_ON_TIMEOUT")
                .unwrap_or(defaults.retry_on_timeout),
            openai_base_url: lookup("OPENAI_BASE_URL").filter(|url| !url.trim().is_empty()),
            token_budget: lookup("KNEO_SERV_TOKEN_BUDGET").and_then(|text| {
                let budget = text.trim().parse::<u64>().ok().filter(|budget| *budget > 0);
                if budget.is_none() && !text.trim().is_empty() {
                    tracing::warn!(target: "kneo_serv.engine", variable = "KNEO_SERV_TOKEN_BUDGET", value = %text, "ignoring a token budget that is not a positive whole number");
                }
                budget
            }),
        }
    }
}

impl McpSettings {
    pub fn from_env() -> McpSettings {
        McpSettings::from_lookup(&from_process_env)
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> McpSettings {
        let defaults = McpSettings::default();
        McpSettings {
            connect_timeout: seconds(lookup, "KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS")
                .unwrap_or(defaults.connect_timeout),
            call_timeout: seconds(lookup, "KNEO_SERV_MCP_TIMEOUT_SECONDS")
                .unwrap_or(defaults.call_timeout),
            retries: count(lookup, "KNEO_SERV_MCP_RETRIES").unwrap_or(defaults.retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn defaults_match_the_environment_page() {
        let provider = ProviderSettings::from_lookup(&lookup(&[]));
        assert_eq!(provider, ProviderSettings::default());
        assert_eq!(provider.retries, 0);
        assert_eq!(provider.timeout, None);
        let mcp = McpSettings::from_lookup(&lookup(&[]));
        assert_eq!(mcp.connect_timeout, Duration::from_secs(30));
    }

    #[test]
    fn values_are_read_and_bad_ones_fall_back() {
        let provider = ProviderSettings::from_lookup(&lookup(&[
            ("KNEO_SERV_PROVIDER_TIMEOUT_SECONDS", "2.5"),
            ("KNEO_SERV_PROVIDER_RETRIES", "3"),
            ("KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS", "0"),
            ("KNEO_SERV_PROVIDER_RETRY_ON_TIMEOUT", "true"),
        ]));
        assert_eq!(provider.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(provider.retries, 3);
        assert_eq!(provider.retry_backoff, Duration::ZERO);
        assert!(provider.retry_on_timeout);
        let mcp = McpSettings::from_lookup(&lookup(&[
            ("KNEO_SERV_MCP_TIMEOUT_SECONDS", "soon"),
            ("KNEO_SERV_MCP_RETRIES", "1"),
        ]));
        assert_eq!(mcp.call_timeout, Duration::from_secs(30));
        assert_eq!(mcp.retries, 1);
    }
}
