//! `kneo-ops triage`: one walk of the triage tree against a live service.

use kneo_client::Exit;
use std::time::Duration;

use clap::Args;
use kneo_ops::probe::{self, ProbeOptions};
use kneo_ops::triage::render::{RenderOptions, render_text};
use kneo_ops::triage::{self, Thresholds};
use kneo_ops::units::parse_duration;

use super::TargetArgs;

const EXAMPLES: &str = "\
Exit codes: 0 healthy, 1 degraded (the service answers but something is wrong),
2 down or unreachable (or the target could not be worked out).

Examples:
  kneo-ops triage
  kneo-ops triage --url http://kneo.internal:8000 --all
  KNEO_SERV_API_KEY=... kneo-ops triage --json | jq '.stages[] | select(.level != \"ok\")'
  kneo-ops triage --queued-max-age 5m --heartbeat 10m

Without an API key only /healthz, /readyz and /metrics are probed; with one, queued and running
runs, human tasks, service events and GET /v1/health are read too.";

/// Walk the triage tree once: liveness, readiness, queue and runs, symptoms
#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct TriageArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the verdict tree as JSON
    #[arg(long)]
    pub json: bool,
    /// Also list the checks that are ok
    #[arg(long)]
    pub all: bool,
    /// Bound on each call
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A queued run older than this while workers are idle or absent is stuck (§ 5.1)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub queued_max_age: Duration,
    /// A running run without a checkpoint for longer than this is silent (§ 5.3)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// A human task this long past its deadline should have been expired or escalated (§ 8.2)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub blocked_grace: Duration,
    /// Service events (5xx bursts, restarts) this recent count
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub events_window: Duration,
}

pub async fn run(args: TriageArgs) -> Exit {
    let connection = match args.target.connect(args.timeout) {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("kneo-ops triage: {error:#}");
            return Exit::Usage;
        }
    };
    let options = ProbeOptions {
        call_timeout: args.timeout,
        ..ProbeOptions::default()
    };
    let probes = probe::collect(&connection.client, &options).await;
    let thresholds = Thresholds {
        queued_max_age: args.queued_max_age,
        heartbeat: args.heartbeat,
        blocked_grace: args.blocked_grace,
        recent_events: args.events_window,
    };
    let report = triage::evaluate(&probes, &thresholds);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("kneo-ops triage: cannot print the verdicts as JSON: {error}");
                return Exit::Usage;
            }
        }
    } else {
        print!(
            "{}",
            render_text(
                &report,
                &RenderOptions {
                    show_ok_children: args.all,
                    ..RenderOptions::default()
                }
            )
        );
        if !connection.client.has_api_key() {
            println!(
                "\n(no API key: runs, human tasks and service events were not read; set KNEO_SERV_API_KEY)"
            );
        }
    }
    report.health.exit()
}
