//! `kneo-ops triage`: one walk of the triage tree against a live service.

use kneo_client::Exit;
use std::time::Duration;

use clap::Args;
use kneo_triage::probe::{self, ProbeOptions};
use kneo_triage::triage::render::{RenderOptions, render_text};
use kneo_triage::triage::{self, Thresholds};
use kneo_triage::units::parse_duration;

use super::TargetArgs;

const EXAMPLES: &str = "\
Exit codes (the service's state first, the tool's own access second):
  0  healthy, and the tool saw everything it asked for
  1  degraded: the service answers, but something is wrong (or its callers get errors)
  2  down (connection refused, crashed) or hung (connects, never answers)
  3  cannot judge: fix the tool's access first (no key, key rejected, a scope lacking,
     the service not reachable from here, or the target could not be worked out);
     only when nothing judged so far is wrong with the service

Examples:
  kneo-ops triage
  kneo-ops triage --url http://kneo.internal:8000 --all
  KNEO_SERV_API_KEY=... kneo-ops triage --json | jq '.stages[] | select(.level != \"ok\")'
  kneo-ops triage --queued-max-age 5m --heartbeat 10m

Every route triage reads is asked even without a key (a service with auth off answers); the
answers a key is needed for are then reported as the tool's access, with exit code 3.
kneo-serv 1.2 has no GET /v1/health and no service events: their absence is a note.";

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
    /// A human task this long past its deadline should have been expired or escalated (§ 8.5)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub blocked_grace: Duration,
    /// Service events (5xx bursts, starts) and other callers' error answers this recent count
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub events_window: Duration,
}

pub async fn run(args: TriageArgs) -> Exit {
    let connection = match args.target.connect(args.timeout) {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("kneo-ops triage: {error:#}");
            return Exit::CannotJudge;
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
                return Exit::CannotJudge;
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
    }
    report.exit()
}
