//! The command line: where the data comes from (a URL, `--local`, or `--bundle`), how often to
//! poll, and the stuck-run thresholds.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kneo_triage::triage::Thresholds;
use kneo_triage::units::parse_duration;

use crate::app::Settings;

const ABOUT: &str = "The on-call terminal dashboard of the kneo run service: the triage tree, live, with the runbook beside it.";

const AFTER_HELP: &str = "\
Three ways to start:
  kneo-tui                                   # the service from --url, $KNEO_SERV_URL, the active profile, or http://127.0.0.1:8000
  kneo-tui --local                           # start an embedded kneo server here (state in ./.kneo) and watch it
  kneo-tui --bundle incident-42.tar.gz       # walk a kneo-ops capture bundle offline

The API key comes from --api-key, else $KNEO_SERV_API_KEY, else the profile ($KNEO_SERV_PROFILES_PATH,
default ~/.kneo_serv/profiles.json). Prefer the variable: flags are visible in `ps`. Without a key the
dashboard shows health, readiness and metrics only.

Press ? in the dashboard for every key. NO_COLOR=1 turns colours off.";

/// `kneo-tui` flags. (No `Debug`: it holds the API key.)
#[derive(Parser, Clone)]
#[command(name = "kneo-tui", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Service URL [default: $KNEO_SERV_URL, the active profile, or http://127.0.0.1:8000]
    #[arg(long, value_name = "URL", conflicts_with_all = ["local", "bundle"])]
    pub url: Option<String>,
    /// API key [default: $KNEO_SERV_API_KEY or the profile's]
    #[arg(long, value_name = "KEY", conflicts_with_all = ["local", "bundle"])]
    pub api_key: Option<String>,
    /// A profile of the kneo CLI's profile file
    #[arg(long, value_name = "NAME", conflicts_with_all = ["local", "bundle"])]
    pub profile: Option<String>,
    /// How often to poll
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_refresh)]
    pub refresh: Duration,
    /// Bound on each call and on a whole poll; a slower service is shown as timed out
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Disable every action (capture, copy, cancel)
    #[arg(long)]
    pub read_only: bool,
    /// Start an embedded kneo server on a free loopback port in this directory, stop it on exit
    #[arg(long, conflicts_with = "bundle")]
    pub local: bool,
    /// Open a kneo-ops capture bundle (tar.gz) and walk it offline
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// A queued run older than this while workers are idle or zero is stuck (§ 5.1)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub queued_max_age: Duration,
    /// A running run without a checkpoint for longer than this is stuck (§ 5.3)
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// A blocked run this far past its human task's expires_at is stuck (§ 8.2)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub blocked_grace: Duration,
    /// A human task due within this is marked "expiring"
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub expiring_soon: Duration,
    /// How far back "backlog rising while no worker" looks
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub backlog_window: Duration,
    /// Rows asked for in run and task lists
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub list_limit: u32,
    /// Where capture bundles are written
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub capture_dir: PathBuf,
    /// No colours (as NO_COLOR=1)
    #[arg(long)]
    pub no_color: bool,
}

/// A refresh interval: at least 200 ms, so a typo cannot turn the dashboard into a load test.
fn parse_refresh(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_millis(200) {
        return Err(format!(
            "{text:?} is shorter than 200ms; poll less often (e.g. 1s)"
        ));
    }
    Ok(duration)
}

impl Cli {
    pub fn settings(&self) -> Settings {
        Settings {
            thresholds: Thresholds {
                queued_max_age: self.queued_max_age,
                heartbeat: self.heartbeat,
                blocked_grace: self.blocked_grace,
                ..Thresholds::default()
            },
            expiring_soon: self.expiring_soon,
            backlog_window: self.backlog_window,
            history_len: 300,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_thresholds() {
        let cli = Cli::try_parse_from([
            "kneo-tui",
            "--refresh",
            "1s",
            "--queued-max-age",
            "2m",
            "--heartbeat",
            "30s",
            "--read-only",
        ])
        .expect("parses");
        assert_eq!(cli.refresh, Duration::from_secs(1));
        let settings = cli.settings();
        assert_eq!(settings.thresholds.queued_max_age, Duration::from_secs(120));
        assert_eq!(settings.thresholds.heartbeat, Duration::from_secs(30));
        assert!(cli.read_only);
    }

    #[test]
    fn modes_exclude_each_other_and_tiny_refreshes_are_refused() {
        assert!(Cli::try_parse_from(["kneo-tui", "--local", "--bundle", "b.tar.gz"]).is_err());
        assert!(Cli::try_parse_from(["kneo-tui", "--local", "--url", "http://x"]).is_err());
        let error = Cli::try_parse_from(["kneo-tui", "--refresh", "10ms"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("shorter than 200ms"), "{error}");
    }
}
