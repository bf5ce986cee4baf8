//! The four stages of the triage walk, each a pure function of the probes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::CallError;
use kneo_client::Reply;
use kneo_client::wire::{ErrorBody, ReadinessCheck, Run};

use super::{Level, Probes, Thresholds, Verdict, human_duration, parse_time, symptoms};

/// How long ago `time` was, as seen from `now` (zero for the future).
fn age(now: DateTime<Utc>, time: &str) -> Option<Duration> {
    let then = parse_time(time)?;
    Some((now - then).to_std().unwrap_or(Duration::ZERO))
}

fn ms(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

// ---- stage 1: /healthz ----

pub(super) fn liveness(probes: &Probes) -> Verdict {
    let reply = &probes.healthz;
    let stage = |level, title: &str| Verdict::new(1, "healthz", level, title);
    match &reply.result {
        Ok(body) => {
            let service = body.service.as_deref().unwrap_or("unknown service");
            let version = body.version.as_deref().unwrap_or("unknown version");
            let commit = body.metadata.commit.as_deref().map(|c| format!(", commit {c}")).unwrap_or_default();
            stage(Level::Ok, "/healthz: alive").with_detail(format!("{service} {version}{commit}; answered in {}", ms(reply.latency)))
        }
        Err(CallError::Timeout { after, .. }) => stage(Level::Fail, "/healthz: process down or unreachable")
            .with_detail(format!(
                "no answer within {}; check the process supervisor or container, and the reverse proxy's upstream",
                ms(*after)
            ))
            .with_section("1"),
        Err(CallError::Unreachable { reason, refused, .. }) => {
            let hint = if *refused {
                "nothing listens there: the process is down or the port is wrong"
            } else {
                "the host cannot be reached: check the address, DNS and the network path"
            };
            stage(Level::Fail, "/healthz: process down or unreachable")
                .with_detail(format!("{} ({reason}); {hint}", probes.target))
                .with_section("1")
        }
        Err(CallError::Status { status: status @ (502..=504), error: None, .. }) => stage(Level::Fail, "/healthz: a proxy cannot reach kneo")
            .with_detail(format!(
                "HTTP {status} without kneo's error envelope: a proxy answered; check its upstream address and that kneo listens there"
            ))
            .with_section("1.3"),
        Err(CallError::Status { status, error, .. }) if *status >= 500 => stage(Level::Fail, "/healthz: crashed mid-request")
            .with_detail(format!(
                "HTTP {status}{}; read the service's stderr / container logs",
                error.as_ref().map(|e| format!(" ({})", e.summary())).unwrap_or_default()
            ))
            .with_section("1"),
        Err(CallError::Status { status, .. }) => stage(Level::Fail, "/healthz: unexpected answer")
            .with_detail(format!("HTTP {status}: is {} the kneo service (not a proxy path or another app)?", probes.target))
            .with_section("1"),
        Err(CallError::BadBody { reason, .. }) => stage(Level::Fail, "/healthz: not a kneo health answer")
            .with_detail(format!("the body is not kneo's health body ({reason}): is {} the kneo service?", probes.target))
            .with_section("1"),
        Err(CallError::InvalidRequest { reason, .. }) => {
            stage(Level::Fail, "/healthz: request could not be sent").with_detail(reason.clone()).with_section("1")
        }
    }
}

// ---- stage 2: /readyz ----

pub(super) fn readiness(probes: &Probes) -> Verdict {
    let stage = |level, title: &str| Verdict::new(2, "readyz", level, title);
    let Some(reply) = &probes.readyz else {
        return stage(Level::Ok, "/readyz: not probed");
    };
    let readiness = match &reply.result {
        Ok(readiness) => readiness,
        Err(CallError::Timeout { after, .. }) => {
            return stage(Level::Fail, "/readyz: no answer (treat as down)")
                .with_detail(format!(
                    "no answer within {}; handle it like a /healthz timeout",
                    ms(*after)
                ))
                .with_section("1");
        }
        Err(CallError::Unreachable { reason, .. }) => {
            return stage(Level::Fail, "/readyz: unreachable (treat as down)")
                .with_detail(reason.clone())
                .with_section("1");
        }
        Err(CallError::Status {
            status: status @ (401 | 403),
            ..
        }) => {
            return stage(Level::Fail, "/readyz: refused without a key")
                .with_detail(format!("HTTP {status}: /readyz is unauthenticated in kneo; a proxy in front demands auth"))
                .with_section("4.3");
        }
        Err(error) => {
            return stage(Level::Fail, "/readyz: unexpected answer")
                .with_detail(error.to_string())
                .with_section("1.2");
        }
    };

    let details: BTreeMap<&str, &ReadinessCheck> = probes
        .health_detail
        .as_ref()
        .and_then(|reply| reply.value())
        .map(|detail| {
            detail
                .checks
                .iter()
                .map(|check| (check.name.as_str(), check))
                .collect()
        })
        .unwrap_or_default();
    let children: Vec<Verdict> = readiness
        .checks
        .iter()
        .map(|check| check_verdict(check, details.get(check.name.as_str()).copied()))
        .collect();
    let failing: Vec<&str> = readiness
        .failing()
        .map(|check| check.name.as_str())
        .collect();
    let status = reply
        .status
        .map(|s| format!("HTTP {s}, "))
        .unwrap_or_default();

    if readiness.ready && failing.is_empty() {
        return stage(Level::Ok, "/readyz: dependencies healthy")
            .with_detail(format!(
                "{status}{} checks ok; answered in {}",
                readiness.checks.len(),
                ms(reply.latency)
            ))
            .with_children(children);
    }
    if failing.is_empty() {
        return stage(Level::Fail, "/readyz: not ready, and no check says why")
            .with_detail(format!(
                "{status}the body names no failing check; read it in full"
            ))
            .with_section("1.2")
            .with_children(children);
    }
    stage(
        Level::Fail,
        format!(
            "/readyz: {} of {} checks failing: {}",
            failing.len(),
            readiness.checks.len(),
            failing.join(", ")
        )
        .as_str(),
    )
    .with_detail(format!("{status}answered in {}", ms(reply.latency)))
    .with_section("1.2")
    .with_children(children)
}

fn check_verdict(check: &ReadinessCheck, detailed: Option<&ReadinessCheck>) -> Verdict {
    let id = format!("readyz.{}", check.name);
    if check.ok {
        return Verdict::new(2, id, Level::Ok, check.name.as_str())
            .with_detail(check_summary(check));
    }
    let kind = check.error.as_deref();
    let section = crate::matrix::runbook_section(&check.name, kind);
    let mut parts = Vec::new();
    parts.push(match (&check.error, &check.message) {
        (Some(error), Some(message)) => format!("{error}: {message}"),
        (Some(error), None) => error.clone(),
        (None, Some(message)) => message.clone(),
        (None, None) => "failed".into(),
    });
    let missing = check.missing_secrets();
    if !missing.is_empty() {
        parts.push(format!(
            "not set in the service's environment: {}",
            missing.join(", ")
        ));
    }
    if let Some(full) = detailed
        .and_then(|d| d.detail_message.as_deref())
        .or(check.detail_message.as_deref())
    {
        parts.push(format!("detail: {full}"));
    }
    if section == "extending" {
        parts.push("see docs/extending.md (registering runtimes and tools)".into());
    }
    Verdict::new(2, id, Level::Fail, check.name.as_str())
        .with_detail(parts.join("; "))
        .with_section(section)
}

fn check_summary(check: &ReadinessCheck) -> String {
    match check.name.as_str() {
        "queue" => {
            let mut parts = vec![
                format!("{} queued", check.queued.unwrap_or(0)),
                format!("{} running", check.running.unwrap_or(0)),
                format!("{} failed", check.failed.unwrap_or(0)),
            ];
            if let Some(workers) = check.workers {
                parts.push(format!("{workers} worker(s)"));
            }
            parts.join(", ")
        }
        "runtime_registry" | "tool_registry" => format!("{} registered", check.count.unwrap_or(0)),
        "providers" | "mcp" if check.configured == Some(false) => "none listed".into(),
        "providers" | "mcp" => format!("{} secret(s) present", check.items.len()),
        _ => check
            .status
            .clone()
            .or_else(|| check.kind.clone())
            .unwrap_or_else(|| "ok".into()),
    }
}

// ---- stage 3: queue and runs ----

pub(super) fn queue(probes: &Probes, thresholds: &Thresholds) -> Verdict {
    let now = probes.observed_at;
    let workers = probes.worker_count();
    let queued_count = probes.queued_count();
    let running_count = probes.running_count();
    let mut findings: Vec<Verdict> = Vec::new();

    // Listings that could not be read are noted here; stage 4 maps their status to a section.
    for (what, failure) in [
        (
            "queued runs",
            probes.queued_runs.as_ref().and_then(|r| r.error()),
        ),
        (
            "running runs",
            probes.running_runs.as_ref().and_then(|r| r.error()),
        ),
        (
            "human tasks",
            probes.human_tasks.as_ref().and_then(|r| r.error()),
        ),
    ] {
        if let Some(error) = failure {
            findings.push(
                Verdict::new(
                    3,
                    format!("queue.unlisted.{}", what.replace(' ', "_")),
                    Level::Warn,
                    format!("could not list {what}"),
                )
                .with_detail(format!("{error}; see stage 4")),
            );
        }
    }

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

    // § 5.3: running runs whose lease expired (their worker is gone).
    let mut flagged_runs: Vec<&str> = Vec::new();
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
                        "held by {owner}, expired {} ago ({expiry}); its worker is gone, another worker re-claims it on the next poll",
                        human_duration(overdue)
                    ))
                    .with_section("5.3"),
            );
            flagged_runs.push(recovery.run_id.as_str());
        }
    }
    if flagged_runs.is_empty()
        && let Some(expired) = probes.expired_lease_count().filter(|count| *count > 0)
    {
        findings.push(
            Verdict::new(3, "queue.lease_expired", Level::Fail, format!("{expired} running run(s) with an expired lease"))
                .with_detail("their workers stopped renewing the lease (crashed or hung); list running runs to see which")
                .with_section("5.3"),
        );
    }

    // § 5.3: running runs without a checkpoint for longer than a heartbeat.
    for run in listed(&probes.running_runs) {
        if flagged_runs.contains(&run.run_id.as_str()) || run.status.as_str() != "running" {
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

    // § 8.2: human tasks past their deadline.
    let tasks = probes.human_tasks.as_ref().and_then(|reply| reply.value());
    for task in tasks.map(|list| list.tasks.as_slice()).unwrap_or_default() {
        let Some(expires_at) = task.expires_at else {
            continue;
        };
        let overdue = now.timestamp_millis() as f64 / 1000.0 - expires_at;
        if overdue <= thresholds.blocked_grace.as_secs_f64() {
            continue;
        }
        let run = task.run_id.as_deref().unwrap_or("?");
        let overdue_text = human_duration(Duration::from_secs_f64(overdue));
        let verdict = if task.is_escalated() {
            Verdict::new(
                3,
                format!("queue.escalated.{}", task.id),
                Level::Warn,
                format!("run {run}: human task escalated, overdue {overdue_text}"),
            )
            .with_detail(format!(
                "continuation {} passed its deadline and was escalated; it can still be resumed",
                task.id
            ))
        } else {
            Verdict::new(3, format!("queue.blocked_overdue.{}", task.id), Level::Fail, format!("run {run}: blocked {overdue_text} past its deadline"))
                .with_detail(format!(
                    "continuation {} should have been expired or escalated by the sweep (`kneo human sweep`); is the service's monitor running?",
                    task.id
                ))
        };
        findings.push(verdict.with_section("8.2"));
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
    let summary = format!(
        "{} queued, {} running, {} blocked on humans, {} worker(s)",
        known(queued_count),
        known(running_count),
        blocked.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
        known(workers)
    );
    let listed_anything = probes.queued_runs.is_some()
        || probes.running_runs.is_some()
        || probes.human_tasks.is_some();
    let title = if findings.iter().any(|f| f.level != Level::Ok) {
        "Queue and runs: stuck work found"
    } else if listed_anything {
        "Queue and runs: flowing"
    } else {
        "Queue and runs: counts only (runs not listed without an API key)"
    };
    Verdict::new(3, "queue", Level::Ok, title)
        .with_detail(summary)
        .with_children(findings)
}

fn listed(list: &Option<Reply<kneo_client::wire::RunList>>) -> &[Run] {
    list.as_ref()
        .and_then(|reply| reply.value())
        .map(|list| list.runs.as_slice())
        .unwrap_or_default()
}

fn known(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// Up to five ids, then `… and N more`.
fn sample_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.collect();
    let shown = ids.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > 5 {
        format!("{shown} … and {} more", ids.len() - 5)
    } else {
        shown
    }
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

// ---- stage 4: symptoms ----

/// Error answers with the same status and code, and where they came from.
struct ErrorAnswer {
    symptom: Option<symptoms::Symptom>,
    paths: Vec<String>,
    message: String,
}

/// The symptom row of one error answer; `store_unavailable` follows the store kind it carries,
/// through the same matrix as `/readyz`.
fn symptom_of(status: u16, error: Option<&ErrorBody>, path: &str) -> Option<symptoms::Symptom> {
    let mut symptom = symptoms::lookup(status, error.and_then(|e| e.code.as_deref()), path)?;
    let kind = error
        .and_then(|e| e.extra.get("kind"))
        .and_then(|kind| kind.as_str());
    if symptom.code == Some("store_unavailable") && kind.is_some() {
        symptom.section = crate::matrix::runbook_section("run_state_store", kind);
    }
    Some(symptom)
}

pub(super) fn symptoms(probes: &Probes, thresholds: &Thresholds) -> Verdict {
    // /healthz and /readyz have their own stages; every other answer may be a symptom.
    let mut answers: Vec<(Option<&CallError>, &str)> = Vec::new();
    if let Some(reply) = &probes.health_detail {
        answers.push((reply.error(), &reply.url));
    }
    for reply in [&probes.queued_runs, &probes.running_runs]
        .into_iter()
        .flatten()
    {
        answers.push((reply.error(), &reply.url));
    }
    if let Some(reply) = &probes.human_tasks {
        answers.push((reply.error(), &reply.url));
    }
    if let Some(reply) = &probes.service_events {
        answers.push((reply.error(), &reply.url));
    }
    if let Some(reply) = &probes.metrics {
        answers.push((reply.error(), &reply.url));
    }
    for reply in &probes.recoveries {
        answers.push((reply.error(), &reply.url));
    }

    let mut grouped: BTreeMap<(u16, String), ErrorAnswer> = BTreeMap::new();
    for (failure, url) in answers {
        let Some(CallError::Status { status, error, .. }) = failure else {
            continue;
        };
        let path = path_of(url);
        let code = error
            .as_ref()
            .and_then(|e| e.code.clone())
            .unwrap_or_default();
        let entry = grouped
            .entry((*status, code))
            .or_insert_with(|| ErrorAnswer {
                symptom: symptom_of(*status, error.as_deref(), &path),
                paths: Vec::new(),
                message: error
                    .as_ref()
                    .map(|e| e.summary())
                    .unwrap_or_else(|| "no error envelope".into()),
            });
        if !entry.paths.contains(&path) {
            entry.paths.push(path);
        }
    }

    let mut findings: Vec<Verdict> = grouped
        .into_iter()
        .map(|((status, code), answer)| {
            let level = if matches!(status, 401 | 403) || status >= 500 {
                Level::Fail
            } else {
                Level::Warn
            };
            let (id, code_text) = if code.is_empty() {
                (format!("symptom.{status}"), String::new())
            } else {
                (format!("symptom.{status}.{code}"), format!(" {code}"))
            };
            let meaning = answer
                .symptom
                .map(|s| s.meaning)
                .unwrap_or("no runbook entry for this answer");
            let verdict =
                Verdict::new(4, id, level, format!("HTTP {status}{code_text}: {meaning}"))
                    .with_detail(format!(
                        "{} (from {})",
                        answer.message,
                        answer.paths.join(", ")
                    ));
            match answer.symptom {
                Some(symptom) => verdict.with_section(symptom.section),
                None => verdict,
            }
        })
        .collect();

    findings.extend(event_findings(probes, thresholds));
    let dead_lettered = probes
        .metrics
        .as_ref()
        .and_then(|m| m.value())
        .and_then(|m| m.get("kneo_runs_dead_lettered_total"));
    if let Some(dead) = dead_lettered.filter(|count| *count > 0.0) {
        findings.push(
            Verdict::new(4, "symptom.dead_lettered", Level::Warn, format!("{dead} run(s) dead-lettered since the service started"))
                .with_detail("their workers kept losing the lease (crash, freeze or store outage); see the run.dead_lettered audit events")
                .with_section("5.6"),
        );
    }
    let title = if findings.is_empty() {
        "Symptoms: no error answers"
    } else {
        "Symptoms: error answers found"
    };
    Verdict::new(4, "symptoms", Level::Ok, title).with_children(findings)
}

/// Recent 5xx bursts and restart loops from `GET /v1/service/events`.
fn event_findings(probes: &Probes, thresholds: &Thresholds) -> Vec<Verdict> {
    let Some(events) = probes
        .service_events
        .as_ref()
        .and_then(|reply| reply.value())
    else {
        return Vec::new();
    };
    let now = probes.observed_at;
    let recent: Vec<_> = events
        .events
        .iter()
        .filter(|event| {
            event
                .created_at
                .as_deref()
                .and_then(|t| age(now, t))
                .is_some_and(|age| age <= thresholds.recent_events)
        })
        .collect();
    let window = human_duration(thresholds.recent_events);
    let mut findings = Vec::new();
    let bursts: Vec<_> = recent
        .iter()
        .filter(|event| event.event_type == "http.5xx_burst")
        .collect();
    if !bursts.is_empty() {
        let total: i64 = bursts
            .iter()
            .filter_map(|event| event.details.get("count").and_then(|c| c.as_i64()))
            .sum();
        findings.push(
            Verdict::new(4, "symptom.5xx_burst", Level::Warn, format!("{} burst(s) of 5xx answers in the last {window}", bursts.len()))
                .with_detail(format!("{total} server errors in total; the causes are in the server log (target kneo_serv.service)"))
                .with_section("1"),
        );
    }
    let starts = recent
        .iter()
        .filter(|event| event.event_type == "service.started")
        .count();
    if starts >= 2 {
        findings.push(
            Verdict::new(4, "symptom.restarts", Level::Warn, format!("the service started {starts} times in the last {window}"))
                .with_detail("a restart loop or repeated deploys; compare with the deploy history and the supervisor's log")
                .with_section("1"),
        );
    }
    findings
}

/// The path part of a URL, for messages (`/v1/runs?status=queued` → `/v1/runs`).
fn path_of(url: &str) -> String {
    let without_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let path = without_scheme
        .find('/')
        .map(|start| &without_scheme[start..])
        .unwrap_or("/");
    path.split('?').next().unwrap_or(path).to_string()
}
