//! `kneo-ops rollback plan|run`: after a failed upgrade, work out from the service's own history
//! whether the deploy is the trigger and which verified backup to go back to; then carry it out
//! step by step, with confirmation and a log.

use kneo_client::Exit;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use kneo_ops::archives;
use kneo_ops::rollback::{HistoryEvent, Plan, StepCommands, Verdict};
use kneo_process::{Run, RunError};
use kneo_server::backup::{self, RestoreOptions};

use super::TargetArgs;
use super::store::StoreArgs;
use super::store_progress::StoreProgress;

/// How much of a step command's output is kept for its log line and its error.
const STEP_OUTPUT_BYTES: usize = 64 * 1024;

const AFTER_HELP: &str = "\
Examples:
  kneo-ops rollback plan --backups /var/backups/kneo
  kneo-ops rollback run --backups /var/backups/kneo \\
      --stop-cmd 'systemctl stop kneo' --start-cmd 'systemctl start kneo@1.1.0' --dry-run
  kneo-ops rollback run --backups /var/backups/kneo --stop-cmd … --start-cmd … --yes

The plan reads the service events (from the store, else from the API): the running and the
previous version, when the deploy happened, when the first readiness failure or 5xx burst came
after it. It picks the newest verified backup taken on the previous version before the deploy.
If the failures began before the deploy, it says the deploy is probably not the trigger and
stops (`run --force` overrides). Every step of `run` is logged to --log.
Exit codes: 0 plan ready / rollback done, 1 refused or a step failed, 2 bad usage.";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct RollbackArgs {
    #[command(subcommand)]
    pub command: RollbackCommand,
}

#[derive(Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Directory of backup archives to choose from
    #[arg(long, value_name = "DIR")]
    pub backups: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RollbackCommand {
    /// Show the rollback plan and why
    Plan(PlanArgs),
    /// Carry the plan out: stop, restore, start, verify /readyz
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        /// How to stop the running service (run with sh -c)
        #[arg(long, value_name = "CMD")]
        stop_cmd: String,
        /// How to start the previous version; it must return once the service is started
        #[arg(long, value_name = "CMD")]
        start_cmd: String,
        /// Do not ask before each step
        #[arg(long)]
        yes: bool,
        /// Show the steps, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Roll back even when the deploy does not look like the trigger
        #[arg(long)]
        force: bool,
        /// Where every step is logged (default: kneo-rollback-<time>.log here)
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// How long the restarted service has to answer /readyz 200
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = kneo_triage::units::parse_duration)]
        ready_timeout: Duration,
        /// How long the stop and start commands may run before they are killed
        #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = kneo_triage::units::parse_duration)]
        step_timeout: Duration,
    },
}

/// The service's history: from the store when it can be read, else from the API.
async fn history(args: &PlanArgs) -> Result<(Vec<HistoryEvent>, String), String> {
    let location = args.store.location();
    let from_store = kneo_server::service_events::history::read(&location).await;
    let events = match from_store {
        Ok(events) => (events, format!("the store ({})", location.describe())),
        Err(store_error) => {
            let connection = args
                .target
                .connect(Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            let mut events = Vec::new();
            let mut offset = 0;
            loop {
                let reply = connection
                    .client
                    .list_service_events(&kneo_client::client::PageRequest::new(
                        1000,
                        offset as u64,
                    ))
                    .await;
                let page = reply.result.map_err(|e| {
                    format!("cannot read the service events from the store ({store_error}) nor from the API ({e})")
                })?;
                let count = page.events.len();
                events.extend(page.events.into_iter().map(|event| {
                    kneo_server::store::ServiceEvent {
                        id: event.id.unwrap_or_default(),
                        event_type: event.event_type,
                        created_at: event.created_at.unwrap_or_default(),
                        version: event.version.unwrap_or_default(),
                        host: event.host.unwrap_or_default(),
                        details: event.details,
                    }
                }));
                if count < 1000 {
                    break;
                }
                offset += count;
            }
            (
                events,
                format!(
                    "the API ({})",
                    kneo_server::redact::redacted_text(&connection.url)
                ),
            )
        }
    };
    let history = events
        .0
        .into_iter()
        .filter_map(|event| {
            let at = DateTime::parse_from_rfc3339(&event.created_at)
                .ok()?
                .with_timezone(&Utc);
            Some(HistoryEvent {
                event_type: event.event_type,
                at,
                version: event.version,
                details: event.details,
            })
        })
        .collect();
    Ok((history, events.1))
}

async fn make_plan(args: &PlanArgs, commands: StepCommands) -> Result<(Plan, String), String> {
    let (history, source) = history(args).await?;
    let candidates: Vec<_> = archives::list(&args.backups)?
        .iter()
        .filter_map(|a| a.candidate())
        .collect();
    Ok((
        kneo_ops::rollback::plan::plan(&history, &candidates, &commands),
        source,
    ))
}

fn print_plan(plan: &Plan, source: &str) {
    println!("history read from {source}");
    if let Some(deploy) = &plan.deploy {
        println!(
            "running version {}, previous {}, deployed at {}",
            deploy.running_version,
            deploy.previous_version,
            deploy.at.to_rfc3339()
        );
    }
    if let Some(failure) = &plan.first_failure {
        println!(
            "first failure after the deploy: {} at {} ({} s after it)",
            failure.what,
            failure.at.to_rfc3339(),
            failure.after_deploy_seconds
        );
    }
    for (path, reason) in &plan.rejected_backups {
        println!("not using {path}: {reason}");
    }
    let print_steps = |plan: &Plan| {
        if let Some(backup) = &plan.backup {
            println!(
                "roll back to {} (taken {}, verified)",
                backup.path,
                backup.created_at.to_rfc3339()
            );
        }
        println!("steps:");
        for (index, step) in plan.steps.iter().enumerate() {
            match &step.command {
                Some(command) => println!("  {}. {} — {command}", index + 1, step.title),
                None => println!("  {}. {}", index + 1, step.title),
            }
        }
    };
    match &plan.verdict {
        Verdict::RollBack => print_steps(plan),
        Verdict::NoDeploy { reason }
        | Verdict::NoFailureSinceDeploy { reason }
        | Verdict::DeployNotTheTrigger { reason }
        | Verdict::DependencyFailure { reason, .. }
        | Verdict::NoBackup { reason } => {
            println!("no rollback: {reason}");
            if plan.backup.is_some() {
                println!("what `rollback run --force` would do anyway:");
                print_steps(plan);
            }
        }
    }
}

/// The URL the restarted service is checked on: --url, else $KNEO_SERV_URL, else the default.
fn service_url(args: &PlanArgs) -> String {
    args.target.url.clone().unwrap_or_else(|| {
        std::env::var("KNEO_SERV_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
    })
}

pub async fn run(args: RollbackArgs) -> Exit {
    match args.command {
        RollbackCommand::Plan(plan_args) => {
            let commands = StepCommands {
                stop: None,
                start: None,
                restore_target: plan_args.store.as_flags(),
                url: service_url(&plan_args),
            };
            match make_plan(&plan_args, commands).await {
                Ok((plan, source)) => {
                    if plan_args.json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&plan).unwrap_or_default()
                        );
                    } else {
                        print_plan(&plan, &source);
                    }
                    Exit::success_if(plan.verdict == Verdict::RollBack)
                }
                Err(message) => {
                    eprintln!("kneo-ops rollback plan: {message}");
                    Exit::Failed
                }
            }
        }
        RollbackCommand::Run {
            plan: plan_args,
            stop_cmd,
            start_cmd,
            yes,
            dry_run,
            force,
            log,
            ready_timeout,
            step_timeout,
        } => {
            let url = service_url(&plan_args);
            let commands = StepCommands {
                stop: Some(stop_cmd.clone()),
                start: Some(start_cmd.clone()),
                restore_target: plan_args.store.as_flags(),
                url: url.clone(),
            };
            let (plan, source) = match make_plan(&plan_args, commands).await {
                Ok(found) => found,
                Err(message) => {
                    eprintln!("kneo-ops rollback run: {message}");
                    return Exit::Failed;
                }
            };
            print_plan(&plan, &source);
            let Some(backup) = plan.backup.clone() else {
                eprintln!("kneo-ops rollback run: nothing to roll back to (see above)");
                return Exit::Failed;
            };
            if plan.verdict != Verdict::RollBack && !force {
                eprintln!("kneo-ops rollback run: refused (see above); --force rolls back anyway");
                return Exit::Failed;
            }
            if dry_run {
                println!("dry run: nothing was changed");
                return Exit::Success;
            }
            let log_path = log.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "kneo-rollback-{}.log",
                    Utc::now().format("%Y%m%dT%H%M%SZ")
                ))
            });
            let runner = match StepRunner::open(&log_path, yes) {
                Ok(runner) => runner,
                Err(error) => {
                    eprintln!(
                        "kneo-ops rollback run: cannot write the log {}: {error}",
                        log_path.display()
                    );
                    return Exit::Failed;
                }
            };
            runner.note(&format!(
                "plan: {}",
                serde_json::to_string(&plan).unwrap_or_default()
            ));
            let previous_version = plan
                .deploy
                .as_ref()
                .map(|d| d.previous_version.clone())
                .unwrap_or_default();
            let mut runner = runner;
            let outcome = async {
                runner
                    .step("stop the service", || {
                        blocking_shell(stop_cmd.clone(), step_timeout)
                    })
                    .await?;
                let archive = PathBuf::from(&backup.path);
                let location = plan_args.store.location();
                runner
                    .step(&format!("restore {}", archive.display()), || {
                        restore_step(archive.clone(), location.clone())
                    })
                    .await?;
                runner
                    .step("start the previous version", || {
                        blocking_shell(start_cmd.clone(), step_timeout)
                    })
                    .await?;
                runner
                    .step("verify /readyz", || {
                        wait_ready(url.clone(), previous_version.clone(), ready_timeout)
                    })
                    .await
            }
            .await;
            match outcome {
                Ok(()) => {
                    runner.note("rollback done");
                    println!("rollback done; log: {}", log_path.display());
                    Exit::Success
                }
                Err(message) => {
                    eprintln!(
                        "kneo-ops rollback run: {message}; log: {}",
                        log_path.display()
                    );
                    Exit::Failed
                }
            }
        }
    }
}

/// The restore step: the archive into the store, replacing what is there (after a safety backup).
async fn restore_step(
    archive: PathBuf,
    location: kneo_server::backup::StoreLocation,
) -> Result<String, String> {
    let progress = StoreProgress::new("restore");
    let options = RestoreOptions {
        force: true,
        safety_dir: None,
    };
    let report = backup::restore(&archive, &location, &options, &|step| progress.show(&step))
        .await
        .map_err(|e| e.to_string());
    progress.finish();
    let report = report?;
    Ok(format!(
        "restored into {}; previous contents saved to {}",
        report.target,
        report
            .safety_backup
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(target was empty)".into())
    ))
}

/// Runs a shell command off the async runtime.
async fn blocking_shell(command: String, limit: Duration) -> Result<String, String> {
    tokio::task::spawn_blocking(move || shell(&command, limit))
        .await
        .map_err(|e| format!("the command task failed: {e}"))?
}

/// Runs a command with `sh -c`, failing on a non-zero exit or when it outlives `limit`. Its
/// output goes to a file, not a pipe: a start command that leaves the service running in the
/// background would otherwise hold the pipe open and never let the step end. The command gets
/// its own process group, so a command past its bound is killed with everything it started, and
/// a service it starts does not share the operator's Ctrl-C.
fn shell(command: &str, limit: Duration) -> Result<String, String> {
    let capture =
        tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", command]);
    let run = Run::into_file(sh, capture, STEP_OUTPUT_BYTES)
        .own_process_group()
        .deadline(limit);
    match run.finish_blocking() {
        Ok(finished) if finished.status.success() => Ok(finished.stdout.text()),
        Ok(finished) => Err(format!(
            "`{command}` exited with {}: {}",
            finished.status,
            finished.stdout.text().trim()
        )),
        Err(RunError::TimedOut { stdout, .. }) => Err(format!(
            "`{command}` did not finish within {} s and was killed (raise --step-timeout if it \
             needs longer): {}",
            limit.as_secs(),
            stdout.text().trim()
        )),
        Err(RunError::Spawn { error, .. }) => Err(format!("cannot run `{command}`: {error}")),
        Err(RunError::Wait { error, .. }) => Err(format!("cannot wait for `{command}`: {error}")),
    }
}

/// Polls `/readyz` until 200 and `/healthz` reports `version`, within `limit`.
async fn wait_ready(url: String, version: String, limit: Duration) -> Result<String, String> {
    let client =
        kneo_client::Client::new(kneo_client::ClientConfig::new(url)).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        let ready = client.readyz().await;
        let health = client.healthz().await;
        let running = health
            .result
            .as_ref()
            .ok()
            .and_then(|h| h.version.clone())
            .unwrap_or_default();
        if ready.status == Some(200) && running == version {
            return Ok(format!("/readyz 200, version {running}"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the service is not ready on version {version} after {} s (last /readyz {:?}, version {running:?})",
                limit.as_secs(),
                ready.status
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the steps in order, asking first (unless --yes) and logging each.
struct StepRunner {
    log: std::fs::File,
    ask: bool,
    number: usize,
}

impl StepRunner {
    fn open(path: &std::path::Path, yes: bool) -> std::io::Result<StepRunner> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(StepRunner {
            log,
            ask: !yes,
            number: 0,
        })
    }

    fn note(&self, text: &str) {
        let mut log = &self.log;
        let _ = writeln!(
            log,
            "{} {}",
            Utc::now().to_rfc3339(),
            kneo_server::redact::redacted_text(text)
        );
    }

    fn confirm(&self, title: &str) -> bool {
        if !self.ask {
            return true;
        }
        eprint!("step {}: {title}. Go ahead? [y/N] ", self.number);
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).is_ok()
            && matches!(answer.trim(), "y" | "Y" | "yes")
    }

    async fn step<F, Fut>(&mut self, title: &str, work: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, String>>,
    {
        self.number += 1;
        if !self.confirm(title) {
            self.note(&format!("step {}: {title}: declined", self.number));
            return Err(format!(
                "step {} ({title}) declined; nothing after it was done",
                self.number
            ));
        }
        self.note(&format!("step {}: {title}: started", self.number));
        match work().await {
            Ok(output) => {
                self.note(&format!(
                    "step {}: {title}: done {}",
                    self.number,
                    output.trim()
                ));
                println!("step {}: {title}: done", self.number);
                Ok(())
            }
            Err(message) => {
                self.note(&format!("step {}: {title}: FAILED {message}", self.number));
                Err(format!("step {} ({title}) failed: {message}", self.number))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_keeps_its_output_and_fails_on_a_non_zero_exit() {
        assert_eq!(
            shell("echo stopped", Duration::from_secs(60)).as_deref(),
            Ok("stopped\n")
        );
        let error = shell("echo no such unit >&2; exit 5", Duration::from_secs(60))
            .expect_err("exit 5 fails");
        assert!(
            error.contains("exit status: 5") && error.contains("no such unit"),
            "{error}"
        );
    }

    #[test]
    fn a_step_past_its_bound_is_killed_with_what_it_started() {
        let marker = tempfile::tempdir().expect("tempdir");
        let pid_file = marker.path().join("child.pid");
        let started = Instant::now();
        // The background sleep holds the step's output pipe open: the step must end at its
        // bound anyway, not when the sleep would (600 s).
        let error = shell(
            &format!("sleep 600 & echo $! > {}; wait", pid_file.display()),
            Duration::from_millis(300),
        )
        .expect_err("times out");
        assert!(error.contains("--step-timeout"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the step waited for its background child"
        );
        let child = kneo_testkit::process::wait_for_pid_file(&pid_file, Duration::from_secs(60))
            .expect("pid written");
        // The background sleep was in the step's process group, so it is gone too (or a zombie
        // waiting for init to reap it). Bounded only to fail instead of hanging.
        assert!(
            kneo_testkit::process::wait_until_stopped(child, Duration::from_secs(60)),
            "pid {child} still runs"
        );
    }
}
