//! Stage 3, queue and runs: stuck-run rules (§ 5.1 queued with no or idle workers, a backlog
//! rising with no worker, expired leases; § 5.3 silent running runs; § 8.5 human tasks the
//! sweep should have expired; § 8.3 unreadable continuations).
//!
//! A listing the tool's access kept it from reading leaves the stage on counts only (the tool's
//! access says why); any other listing failure is for stage 4, not a second finding here.

use std::time::Duration;

use kneo_client::wire::{HumanTask, Run};

use super::super::{Level, Probes, Thresholds, Verdict, human_duration, parse_time};
use super::{AccessView, age, known, listed, sample_ids, silence};

pub(crate) fn queue(probes: &Probes, thresholds: &Thresholds, access: &AccessView) -> Verdict {
    if let Some(why) = silence(probes, access) {
        return Verdict::not_judged(3, "queue", "Queue and runs", why);
    }
    let now = probes.observed_at;
    let workers = probes.worker_count();
    let queued_count = probes.queued_count();
    let running_count = probes.running_count();
    let mut findings: Vec<Verdict> = Vec::new();

    // § 5.1: queued runs older than the threshold while workers are absent or idle.
    let stale: Vec<(&Run, Duration)> = listed(&probes.queued_runs)
        .iter()
        .filter_map(|run| {
            let queued_at = run.created_at.as_deref().or(run.updated_at.as_deref())?;
            age(now, queued_at)
                .filter(|age| *age > thresholds.queued_max_age)
                .map(|age| (run, age))
        })
        .collect();
    let mut backlog_explained = false;
    if let Some(oldest) = stale.iter().map(|(_, age)| *age).max() {
        let ids = sample_ids(stale.iter().map(|(run, _)| run.run_id.as_str()));
        let count = stale.len();
        let over = human_duration(thresholds.queued_max_age);
        let (level, title) = match (workers, running_count) {
            (Some(0), _) => (
                Level::Fail,
                format!("{count} queued run(s) waiting over {over} and no worker"),
            ),
            (_, Some(0)) => (
                Level::Fail,
                format!("{count} queued run(s) waiting over {over} while workers are idle"),
            ),
            _ => (
                Level::Warn,
                format!("{count} queued run(s) waiting over {over}; workers are busy"),
            ),
        };
        findings.push(
            Verdict::new(3, "queue.stale_queued", level, title)
                .with_detail(format!(
                    "oldest waits {}; workers: {}; running: {}; runs: {ids}",
                    human_duration(oldest),
                    known(workers),
                    known(running_count)
                ))
                .with_section("5.1"),
        );
        backlog_explained = true;
    }

    // § 5.1: backlog rising across samples while this process has no worker.
    if let Some(rising) = rising_backlog(probes) {
        findings.push(rising);
        backlog_explained = true;
    }
    if !backlog_explained
        && let (Some(queued), Some(0)) = (queued_count, workers)
        && queued > 0
    {
        findings.push(
            Verdict::new(3, "queue.no_worker", Level::Warn, format!("{queued} run(s) queued and kneo_worker_count is 0"))
                .with_detail(
                    "no worker runs in the probed process; if workers run as separate processes (`kneo service worker`), check \
                     that they are up and reach the same store",
                )
                .with_section("5.1"),
        );
    }

    // § 5.1: running runs whose lease expired: their worker died holding them.
    let flagged_runs = expired_leases(probes, workers, &mut findings);

    // § 5.3: running runs without a checkpoint for longer than a heartbeat.
    for run in listed(&probes.running_runs) {
        if flagged_runs.contains(&run.run_id) || run.status.as_str() != "running" {
            continue;
        }
        let Some(silence) = run.updated_at.as_deref().and_then(|t| age(now, t)) else {
            continue;
        };
        if silence > thresholds.heartbeat {
            let step = run
                .current_step_id
                .clone()
                .or_else(|| run.current_step_index.map(|i| format!("#{i}")))
                .unwrap_or_else(|| "?".into());
            findings.push(
                Verdict::new(3, format!("queue.silent.{}", run.run_id), Level::Warn, format!("run {}: no checkpoint for {}", run.run_id, human_duration(silence)))
                    .with_detail(format!(
                        "running at step {step}, last update {}; a step without a timeout may be blocked on its provider or tool",
                        run.updated_at.as_deref().unwrap_or("?")
                    ))
                    .with_section("5.3"),
            );
        }
    }

    // § 8.5: human tasks past their deadline that the sweep left pending.
    let tasks = probes.human_tasks.as_ref().and_then(|reply| reply.value());
    for (task, overdue) in overdue_tasks(probes) {
        if task.is_escalated() || overdue <= thresholds.blocked_grace {
            continue;
        }
        let run = task.run_id.as_deref().unwrap_or("?");
        findings.push(
            Verdict::new(
                3,
                format!("queue.blocked_overdue.{}", task.id),
                Level::Fail,
                // The title stays the same from poll to poll: the age is in the detail.
                format!("run {run}: human task past its deadline, still pending"),
            )
            .with_detail(format!(
                "continuation {} passed its deadline {} ago: the expiry sweep should have applied its on_timeout (expire, \
                 escalate or continue) and has not; the sweep runs every KNEO_SERV_SWEEP_INTERVAL_SECONDS, only while /readyz is 200",
                task.id,
                human_duration(overdue)
            ))
            .with_section("8.5"),
        );
    }
    if let Some(list) = tasks.filter(|list| !list.unreadable.is_empty()) {
        findings.push(
            Verdict::new(
                3,
                "queue.unreadable_continuations",
                Level::Fail,
                format!(
                    "{} continuation record(s) unreadable",
                    list.unreadable.len()
                ),
            )
            .with_detail(
                list.warning
                    .clone()
                    .unwrap_or_else(|| "their runs cannot be resumed".into()),
            )
            .with_section("8.3"),
        );
    }

    let blocked = tasks.map(|list| list.page.total.unwrap_or(list.tasks.len() as u64));
    let mut summary = format!(
        "{} queued, {} running, {} blocked on humans, {} worker(s)",
        known(queued_count),
        known(running_count),
        blocked.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
        known(workers)
    );
    let unlisted: Vec<String> = [
        ("queued runs", &probes.queued_runs),
        ("running runs", &probes.running_runs),
    ]
    .into_iter()
    .filter_map(|(what, reply)| Some((what, reply.as_ref()?.error()?)))
    .map(|(what, error)| format!("{what} not listed ({})", short(error)))
    .chain(
        probes
            .human_tasks
            .as_ref()
            .and_then(|reply| reply.error())
            .map(|error| format!("human tasks not listed ({})", short(error))),
    )
    .collect();
    if !unlisted.is_empty() {
        summary.push_str("; ");
        summary.push_str(&unlisted.join("; "));
    }
    let listed_anything = [&probes.queued_runs, &probes.running_runs]
        .into_iter()
        .any(|reply| reply.as_ref().is_some_and(|r| r.is_ok()))
        || tasks.is_some();
    let title = if findings.iter().any(|f| f.level != Level::Ok) {
        "Queue and runs: stuck work found".to_string()
    } else if let Some(reason) = access
        .listings_blocked
        .as_deref()
        .filter(|_| !listed_anything)
    {
        format!("Queue and runs: counts only (runs not listed: {reason})")
    } else if listed_anything {
        "Queue and runs: flowing".to_string()
    } else {
        "Queue and runs: counts only (runs not listed)".to_string()
    };
    Verdict::new(3, "queue", Level::Ok, title)
        .with_detail(summary)
        .with_children(findings)
}

/// `HTTP 503 store_unavailable`, `no answer within 3000 ms`: a listing's failure in brief.
fn short(error: &kneo_client::CallError) -> String {
    match error {
        kneo_client::CallError::Status { status, error, .. } => {
            match error.as_ref().and_then(|e| e.code.clone()) {
                Some(code) => format!("HTTP {status} {code}"),
                None => format!("HTTP {status}"),
            }
        }
        other => other.kind().replace('_', " "),
    }
}

/// Expired leases, one verdict per run whose lease was looked up, else the server's count.
/// Returns the runs it named.
fn expired_leases(
    probes: &Probes,
    workers: Option<i64>,
    findings: &mut Vec<Verdict>,
) -> Vec<String> {
    let now = probes.observed_at;
    let reclaim = match workers {
        Some(0) => {
            "no worker runs in the probed process to re-claim it: unless separate `kneo service worker` \
                    processes share the store, start one (KNEO_SERV_WORKER_CONCURRENCY >= 1) or take the run over \
                    with POST /v1/runs/{id}/continue"
        }
        _ => {
            "a live worker re-claims it on its next claim; if that does not happen, look at the workers' logs"
        }
    };
    let mut flagged = Vec::new();
    for reply in &probes.recoveries {
        let Some(recovery) = reply.value() else {
            continue;
        };
        let Some(expiry) = recovery
            .queue
            .as_ref()
            .and_then(|q| q.lease_expires_at.as_deref())
        else {
            continue;
        };
        if recovery.status.as_str() != "running" {
            continue;
        }
        if let Some(overdue) = parse_time(expiry)
            .filter(|t| *t < now)
            .map(|t| (now - t).to_std().unwrap_or(Duration::ZERO))
        {
            let owner = recovery
                .queue
                .as_ref()
                .and_then(|q| q.lease_owner.as_deref())
                .unwrap_or("unknown worker");
            findings.push(
                Verdict::new(3, format!("queue.lease_expired.{}", recovery.run_id), Level::Fail, format!("run {}: lease expired", recovery.run_id))
                    .with_detail(format!(
                        "held by {owner}, expired {} ago ({expiry}): its worker stopped renewing it (died or froze); {}",
                        human_duration(overdue),
                        reclaim.replace("{id}", &recovery.run_id)
                    ))
                    .with_section("5.1"),
            );
            flagged.push(recovery.run_id.clone());
        }
    }
    if flagged.is_empty()
        && let Some(expired) = probes.expired_lease_count().filter(|count| *count > 0)
    {
        findings.push(
            Verdict::new(3, "queue.lease_expired", Level::Fail, format!("{expired} running run(s) with an expired lease"))
                .with_detail(format!(
                    "their workers stopped renewing the lease (died or froze); list running runs to see which; {}",
                    reclaim.replace("{id}", "RUN")
                ))
                .with_section("5.1"),
        );
    }
    flagged
}

/// Human tasks past their deadline, with how far past.
fn overdue_tasks(probes: &Probes) -> Vec<(&HumanTask, Duration)> {
    let now = probes.observed_at.timestamp_millis() as f64 / 1000.0;
    probes
        .human_tasks
        .as_ref()
        .and_then(|reply| reply.value())
        .map(|list| list.tasks.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|task| {
            let overdue = now - task.expires_at?;
            (overdue > 0.0).then(|| (task, Duration::from_secs_f64(overdue)))
        })
        .collect()
}

/// Tasks inside their grace, and escalated tasks: a reviewer's work, not the service's fault.
pub(crate) fn notes(probes: &Probes, thresholds: &Thresholds) -> Vec<Verdict> {
    let mut notes = Vec::new();
    for (task, overdue) in overdue_tasks(probes) {
        let run = task.run_id.as_deref().unwrap_or("?");
        if task.is_escalated() {
            notes.push(
                Verdict::note(
                    format!("note.escalated.{}", task.id),
                    format!("run {run}: human task escalated {} ago, still open", human_duration(overdue)),
                )
                .with_detail(format!(
                    "continuation {} passed its deadline with on_timeout: escalate; it waits for a reviewer's answer",
                    task.id
                )),
            );
        } else if overdue <= thresholds.blocked_grace {
            notes.push(Verdict::note(
                format!("note.due.{}", task.id),
                format!(
                    "run {run}: human task {} past its deadline; the sweep applies its on_timeout shortly (grace {})",
                    human_duration(overdue),
                    human_duration(thresholds.blocked_grace)
                ),
            ));
        }
    }
    notes
}

fn rising_backlog(probes: &Probes) -> Option<Verdict> {
    let current = probes.backlog_sample()?;
    let first = probes.backlog_history.first()?;
    if current.workers != Some(0) || current.queued <= first.queued {
        return None;
    }
    let span = (current.at - first.at).to_std().unwrap_or(Duration::ZERO);
    Some(
        Verdict::new(
            3,
            "queue.backlog_rising",
            Level::Fail,
            "backlog rising while kneo_worker_count is 0",
        )
        .with_detail(format!(
            "queued went from {} to {} over {}; nothing drains the queue",
            first.queued,
            current.queued,
            human_duration(span)
        ))
        .with_section("5.1"),
    )
}
