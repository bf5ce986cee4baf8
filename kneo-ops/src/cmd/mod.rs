//! The subcommands, and the target options they share.

pub mod backup;
pub mod bundle;
pub mod capture;
pub mod import;
mod progress;
pub mod restore;
pub mod rollback;
mod store;
mod store_progress;
pub mod triage;
pub mod verify;

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kneo_client::profile::{TargetOverrides, resolve_target};
use kneo_client::{Client, ClientConfig};

use kneo_triage::units::parse_duration;

/// Which service to talk to, and how long to wait for it.
/// (No `Debug`: it holds the API key.)
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Service URL [default: $KNEO_SERV_URL, the active profile, or http://127.0.0.1:8000]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// API key [default: $KNEO_SERV_API_KEY or the profile's]; prefer the variable (ps shows flags)
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// A profile of the kneo CLI's profile file ($KNEO_SERV_PROFILES_PATH)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Bound on opening a connection
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

/// The resolved target and a client for it; warnings go to stderr.
pub struct Connection {
    pub client: Client,
    pub api_key: Option<String>,
    /// The URL as given (it may carry `user:password@`, which must be redacted).
    pub url: String,
    /// Where the URL came from (`Default` when nothing named one).
    pub url_source: kneo_client::profile::Source,
}

impl TargetArgs {
    pub fn connect(&self, call_timeout: Duration) -> anyhow::Result<Connection> {
        let overrides = TargetOverrides {
            url: self.url.clone(),
            api_key: self.api_key.clone(),
            profile: self.profile.clone(),
        };
        let target =
            resolve_target(&overrides).context("cannot work out which service to talk to")?;
        for warning in &target.warnings {
            eprintln!("kneo-ops: warning: {warning}");
        }
        // The name lets the service's answer counters tell the tool's probes from its callers.
        let mut config = ClientConfig::new(target.url.clone())
            .api_key(target.api_key.clone())
            .user_agent(concat!("kneo-ops/", env!("CARGO_PKG_VERSION")));
        config.connect_timeout = self.connect_timeout;
        config.request_timeout = call_timeout;
        let client = Client::new(config)
            .with_context(|| format!("the service URL comes from {}", target.url_source))?;
        Ok(Connection {
            client,
            api_key: target.api_key,
            url: target.url,
            url_source: target.url_source,
        })
    }
}
