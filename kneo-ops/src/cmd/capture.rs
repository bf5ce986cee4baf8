//! `kneo-ops capture`: the escalation bundle.

use kneo_client::Exit;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kneo_ops::capture::{self, CaptureOptions, Captured};
use kneo_ops::redaction::Redactor;
use kneo_triage::manifest::ItemStatus;
use kneo_triage::units::{format_size, parse_duration, parse_size};
use serde_json::json;

use super::TargetArgs;
use super::progress::StderrProgress;

const EXAMPLES: &str = "\
The bundle (tar.gz) holds manifest.json at its root, then tool/, host/ (uname, OS release,
CPU/memory, disk free of the state dir, Postgres version), service/ (/healthz, /readyz and
GET /v1/health bodies even when they are 5xx, service events, recent audit events, /metrics),
queue/, triage/ (the verdict tree), runs/<id>/ (run, trace, checkpoints, audit events),
requests/<id>/ (audit events mentioning the id) and specs/ (kneo spec validate --json).
Everything is redacted before it is written: kneo-server's rules, the API key in use, the
--database-url, and values of environment variables whose names look secret. There is no way
to turn redaction off. manifest.json records every item's status (ok / error / timeout /
skipped), error, duration, size and sha256, and what redaction removed.

Exit codes: 0 every item ok or skipped with its reason (it does not apply here, such as
host/disk.json away from the service's .kneo, or the target lacks the route), 1 bundle written
but some items failed or timed out (a dead service still gives a bundle), 2 the bundle could
not be written.

Examples:
  kneo-ops capture -o incident-42.tar.gz
  kneo-ops capture --run-id 3f2a9c1e-... --request-id req-77 --since 2h
  kneo-ops capture --spec specs/approval.yaml --database-url \"$KNEO_SERV_DATABASE_URL\" --state-dir /srv/kneo/.kneo
  kneo-ops capture --budget 20s --max-bytes 10MB --json | jq .summary";

/// Collect a redacted escalation bundle (tar.gz with a manifest)
#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A run to include (run, trace, checkpoints, audit events); repeatable
    #[arg(long = "run-id", value_name = "ID")]
    pub run_ids: Vec<String>,
    /// A request id to look up in audit events; repeatable
    #[arg(long = "request-id", value_name = "ID")]
    pub request_ids: Vec<String>,
    /// A spec file to validate with `kneo spec validate --json`; repeatable
    #[arg(long = "spec", value_name = "PATH")]
    pub specs: Vec<PathBuf>,
    /// Postgres DSN for `SELECT version()` (run through psql; never written or printed)
    #[arg(long, value_name = "DSN")]
    pub database_url: Option<String>,
    /// How far back recent audit events go
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub since: Duration,
    /// Where to write the bundle [default: kneo-capture-<UTC time>.tar.gz]; never overwritten
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Time for the whole capture; each collector also has its own cap inside it
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub budget: Duration,
    /// Bytes stored before compression; items beyond it are recorded as skipped
    #[arg(long, value_name = "SIZE", default_value = "50MB", value_parser = parse_size)]
    pub max_bytes: u64,
    /// The service's state directory, for its free disk space [default: .kneo, when it exists here]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The kneo binary for spec validation [default: next to kneo-ops, else on PATH]
    #[arg(long, value_name = "PATH")]
    pub kneo_bin: Option<PathBuf>,
    /// Print the manifest summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CaptureArgs) -> Exit {
    let connection = match args.target.connect(Duration::from_secs(10)) {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("kneo-ops capture: {error:#}");
            return Exit::Usage;
        }
    };
    let mut redactor = Redactor::new();
    if let Some(key) = &connection.api_key {
        redactor.add_api_key(key);
    }
    redactor.add_url_credentials(&connection.url);
    if let Some(dsn) = &args.database_url {
        redactor.add_database_url(dsn);
    }
    redactor.add_env_secrets(std::env::vars());

    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "kneo-capture-{}.tar.gz",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let mut options = CaptureOptions::new(output);
    options.run_ids = args.run_ids;
    options.request_ids = args.request_ids;
    options.specs = args.specs;
    options.database_url = args.database_url;
    options.since = args.since;
    options.budget = args.budget;
    options.max_bytes = args.max_bytes;
    if let Some(state_dir) = args.state_dir {
        options.state_dir = state_dir;
        options.state_dir_given = true;
    }
    options.kneo_binary = args.kneo_bin;

    let progress = StderrProgress::new();
    let result = capture::capture(&connection.client, &redactor, &options, &progress).await;
    progress.finish();
    let captured = match result {
        Ok(captured) => captured,
        Err(error) => {
            eprintln!("kneo-ops capture: the bundle was not written: {error}");
            return Exit::Usage;
        }
    };
    if args.json {
        print_json(&captured);
    } else {
        print_human(&captured);
    }
    if captured.manifest.summary.none_failed() {
        Exit::Success
    } else {
        Exit::Failed
    }
}

fn print_json(captured: &Captured) {
    let manifest = &captured.manifest;
    let summary = json!({
        "bundle": captured.path.display().to_string(),
        "archive_bytes": captured.archive_bytes,
        "created_at": manifest.created_at,
        "target": manifest.target,
        "service": manifest.service,
        "health": manifest.health,
        "duration_ms": manifest.duration_ms,
        "summary": manifest.summary,
        "items": manifest.items.iter().map(|item| json!({"path": item.path, "status": item.status, "error": item.error, "bytes": item.bytes})).collect::<Vec<_>>(),
        "redaction": manifest.redaction,
    });
    match serde_json::to_string_pretty(&summary) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("kneo-ops capture: cannot print the summary as JSON: {error}"),
    }
}

fn print_human(captured: &Captured) {
    let manifest = &captured.manifest;
    let summary = &manifest.summary;
    println!(
        "Bundle: {} ({}, {} items: {} ok, {} error, {} timeout, {} skipped; {} ms)",
        captured.path.display(),
        format_size(captured.archive_bytes),
        summary.items,
        summary.ok,
        summary.error,
        summary.timeout,
        summary.skipped,
        manifest.duration_ms
    );
    let service = manifest
        .service
        .as_ref()
        .map(|s| {
            format!(
                "{} {}",
                s.service.as_deref().unwrap_or("?"),
                s.version.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "no answer".into());
    println!(
        "Service: {service} at {}; triage: {}",
        manifest.target,
        manifest.health.as_deref().unwrap_or("?")
    );
    let failed: Vec<_> = manifest
        .items
        .iter()
        .filter(|item| item.status != ItemStatus::Ok)
        .collect();
    if !failed.is_empty() {
        println!("Not collected in full:");
        for item in failed {
            println!(
                "  {:<8} {}  {}",
                item.status.as_str(),
                item.path,
                item.error.as_deref().unwrap_or("")
            );
        }
    }
    if manifest.redaction.total > 0 {
        let rules: Vec<String> = manifest
            .redaction
            .rules
            .iter()
            .map(|rule| format!("{} {}", rule.rule, rule.count))
            .collect();
        println!(
            "Redacted: {} value(s) ({})",
            manifest.redaction.total,
            rules.join(", ")
        );
    }
    println!(
        "Check it with: kneo-ops bundle inspect {}",
        captured.path.display()
    );
}
