//! The triage model shared by kneo-ops and kneo-tui (DESIGN.md § 5): probe results in, a verdict
//! tree out.
//!
//! [`evaluate`] is a pure function of [`Probes`] (what the service answered, or did not) and
//! [`Thresholds`]; it never touches the network, so every branch is unit-tested. The stages:
//!
//! 1. `/healthz` — alive, or down/unreachable/crashed (§ 1).
//! 2. `/readyz` — each failing check mapped to its runbook section with the same mapping the
//!    server uses (`kneo_server::readiness::runbook_section`); a timeout counts as down.
//! 3. Queue and runs — stuck-run rules (§ 5.1, § 5.3, § 8.2).
//! 4. Symptoms — error answers looked up in [`symptoms`], plus 5xx bursts and restart loops from
//!    the service events.
//!
//! Each [`Verdict`] carries its level, title, detail, runbook section and the section's text
//! (from [`crate::runbook`]). [`Report::health`] is Healthy, Degraded or Down.

pub mod render;
mod stages;
pub mod symptoms;

use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::Reply;
use kneo_client::wire::{
    HealthBody, HumanTaskList, MetricsSnapshot, Readiness, RunList, RunRecovery, ServiceEventList,
};
use serde::Serialize;

use crate::runbook::{self, Section};

/// How bad a verdict is. Ordered: `Ok < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    /// `✓`, `!` or `✗`.
    pub fn symbol(self) -> &'static str {
        match self {
            Level::Ok => "✓",
            Level::Warn => "!",
            Level::Fail => "✗",
        }
    }
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Every verdict is ok.
    Healthy,
    /// The service answers, but something is not ok.
    Degraded,
    /// `/healthz` failed, or `/readyz` gave no answer at all.
    Down,
}

impl Health {
    /// 0 healthy, 1 degraded, 2 down or unreachable.
    pub fn exit(self) -> kneo_client::Exit {
        match self {
            Health::Healthy => kneo_client::Exit::Success,
            Health::Degraded => kneo_client::Exit::Degraded,
            Health::Down => kneo_client::Exit::Down,
        }
    }

    pub fn exit_code(self) -> u8 {
        self.exit().code()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// One node of the verdict tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// 1–4: the stage this verdict belongs to.
    pub stage: u8,
    /// A stable machine key, e.g. `readyz.providers` or `queue.stale_queued`.
    pub id: String,
    pub level: Level,
    pub title: String,
    pub detail: String,
    /// Where the runbook explains it: a number (`3.2`) or another reference (`extending`).
    pub section: Option<String>,
    /// The troubleshooting section's text, when `section` is a number the embedded guide has.
    pub runbook: Option<Section>,
    pub children: Vec<Verdict>,
}

impl Verdict {
    pub fn new(
        stage: u8,
        id: impl Into<String>,
        level: Level,
        title: impl Into<String>,
    ) -> Verdict {
        Verdict {
            stage,
            id: id.into(),
            level,
            title: title.into(),
            detail: String::new(),
            section: None,
            runbook: None,
            children: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Verdict {
        self.detail = detail.into();
        self
    }

    /// Sets the section and attaches its runbook text when the guide has it.
    pub fn with_section(mut self, section: impl Into<String>) -> Verdict {
        let section = section.into();
        self.runbook = runbook::section(&section);
        self.section = Some(section);
        self
    }

    /// Adds children; the verdict's level rises to the worst of them.
    pub fn with_children(mut self, children: Vec<Verdict>) -> Verdict {
        if let Some(worst) = children.iter().map(|child| child.level).max() {
            self.level = self.level.max(worst);
        }
        self.children.extend(children);
        self
    }

    /// This verdict and all below it, depth first.
    pub fn walk(&self) -> Vec<&Verdict> {
        let mut all = vec![self];
        for child in &self.children {
            all.extend(child.walk());
        }
        all
    }

    /// `§ 3.2` for numbered sections, the reference itself otherwise.
    pub fn section_label(&self) -> Option<String> {
        self.section
            .as_ref()
            .map(|section| match runbook::normalize_number(section) {
                Some(number) => format!("§ {number}"),
                None => section.clone(),
            })
    }
}

/// The verdict tree with the overall answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The probed URL (without credentials).
    pub target: String,
    pub observed_at: DateTime<Utc>,
    pub health: Health,
    /// The four stage verdicts, in order.
    pub stages: Vec<Verdict>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        self.health.exit_code()
    }

    /// Every non-ok verdict without non-ok children (the places to act on), worst first.
    pub fn findings(&self) -> Vec<&Verdict> {
        let mut found: Vec<&Verdict> = self
            .stages
            .iter()
            .flat_map(Verdict::walk)
            .filter(|verdict| {
                verdict.level != Level::Ok
                    && verdict
                        .children
                        .iter()
                        .all(|child| child.level == Level::Ok)
            })
            .collect();
        found.sort_by_key(|verdict| std::cmp::Reverse(verdict.level));
        found
    }
}

/// Limits of the stuck-run rules; every one can be tuned from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// A queued run older than this while workers are idle or absent is stuck (§ 5.1).
    pub queued_max_age: Duration,
    /// A running run without a checkpoint (`updated_at`) for longer than this is silent (§ 5.3);
    /// the default is one worker lease (`KNEO_SERV_WORKER_LEASE_SECONDS`, 300 s), as the runbook says.
    pub heartbeat: Duration,
    /// A human task past its `expires_at` by more than this should have been expired or
    /// escalated by the sweep (§ 8.2).
    pub blocked_grace: Duration,
    /// How far back service events count as recent (5xx bursts, restarts).
    pub recent_events: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            queued_max_age: Duration::from_secs(60),
            heartbeat: Duration::from_secs(300),
            blocked_grace: Duration::from_secs(60),
            recent_events: Duration::from_secs(15 * 60),
        }
    }
}

/// One observation of the queue, for the "backlog rising while no worker" rule. A one-shot probe
/// has one; a poller (kneo-tui) keeps a history and hands it in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BacklogSample {
    pub at: DateTime<Utc>,
    pub queued: i64,
    /// `kneo_worker_count` at that moment, when known.
    pub workers: Option<i64>,
}

/// What the service answered. `None` means the probe was not made (no API key, or not asked).
#[derive(Debug, Clone)]
pub struct Probes {
    /// The probed URL (without credentials).
    pub target: String,
    /// When the probes were taken; every age is measured from here.
    pub observed_at: DateTime<Utc>,
    pub healthz: Reply<HealthBody>,
    pub readyz: Option<Reply<Readiness>>,
    /// `GET /v1/health`: the same checks with full messages (needs a key).
    pub health_detail: Option<Reply<Readiness>>,
    /// `GET /v1/runs?status=queued`, oldest first.
    pub queued_runs: Option<Reply<RunList>>,
    /// `GET /v1/runs?status=running`, least recently updated first.
    pub running_runs: Option<Reply<RunList>>,
    /// `GET /v1/human-tasks`, earliest deadline first.
    pub human_tasks: Option<Reply<HumanTaskList>>,
    /// `GET /v1/runs/{id}/recovery` of running runs: their leases.
    pub recoveries: Vec<Reply<RunRecovery>>,
    pub service_events: Option<Reply<ServiceEventList>>,
    pub metrics: Option<Reply<MetricsSnapshot>>,
    /// Earlier samples, oldest first (the current one is derived from `readyz`/`metrics`).
    pub backlog_history: Vec<BacklogSample>,
}

impl Probes {
    /// Probes where only `/healthz` was made (the rest is filled in by the caller).
    pub fn new(
        target: impl Into<String>,
        observed_at: DateTime<Utc>,
        healthz: Reply<HealthBody>,
    ) -> Probes {
        Probes {
            target: target.into(),
            observed_at,
            healthz,
            readyz: None,
            health_detail: None,
            queued_runs: None,
            running_runs: None,
            human_tasks: None,
            recoveries: Vec::new(),
            service_events: None,
            metrics: None,
            backlog_history: Vec::new(),
        }
    }

    /// Live workers, from `/readyz`'s queue check or else `kneo_worker_count`.
    pub fn worker_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.workers);
        from_readyz.or_else(|| {
            self.metrics
                .as_ref()
                .and_then(|m| m.value())
                .and_then(MetricsSnapshot::worker_count)
        })
    }

    /// Queued runs, from `/readyz`, `/metrics` or the queued list's total.
    pub fn queued_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.queued);
        from_readyz
            .or_else(|| {
                self.metrics
                    .as_ref()
                    .and_then(|m| m.value())
                    .and_then(MetricsSnapshot::queued)
            })
            .or_else(|| {
                self.queued_runs
                    .as_ref()
                    .and_then(|r| r.value())
                    .and_then(|l| l.page.total)
                    .map(|t| t as i64)
            })
    }

    /// Running runs, from `/readyz`, `/metrics` or the running list's total.
    pub fn running_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.running);
        from_readyz
            .or_else(|| {
                self.metrics
                    .as_ref()
                    .and_then(|m| m.value())
                    .and_then(MetricsSnapshot::running)
            })
            .or_else(|| {
                self.running_runs
                    .as_ref()
                    .and_then(|r| r.value())
                    .and_then(|l| l.page.total)
                    .map(|t| t as i64)
            })
    }

    /// Running records whose lease expired, from `/readyz` or `/metrics`.
    pub fn expired_lease_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.expired_leases);
        from_readyz.or_else(|| {
            self.metrics
                .as_ref()
                .and_then(|m| m.value())
                .and_then(MetricsSnapshot::expired_leases)
        })
    }

    /// This observation as a backlog sample (for a poller's history).
    pub fn backlog_sample(&self) -> Option<BacklogSample> {
        self.queued_count().map(|queued| BacklogSample {
            at: self.observed_at,
            queued,
            workers: self.worker_count(),
        })
    }

    fn readiness(&self) -> Option<&Readiness> {
        self.readyz.as_ref().and_then(|reply| reply.value())
    }
}

/// Walks the tree (DESIGN.md § 5) over the probes.
pub fn evaluate(probes: &Probes, thresholds: &Thresholds) -> Report {
    let stages = vec![
        stages::liveness(probes),
        stages::readiness(probes),
        stages::queue(probes, thresholds),
        stages::symptoms(probes, thresholds),
    ];
    let readyz_no_answer = probes
        .readyz
        .as_ref()
        .and_then(|reply| reply.error())
        .is_some_and(|error| error.is_no_answer());
    let health = if stages[0].level == Level::Fail || readyz_no_answer {
        Health::Down
    } else if stages.iter().any(|stage| stage.level != Level::Ok) {
        Health::Degraded
    } else {
        Health::Healthy
    };
    Report {
        target: probes.target.clone(),
        observed_at: probes.observed_at,
        health,
        stages,
    }
}

/// Reads the service's timestamps (RFC 3339; a missing offset means UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let trimmed = text.trim_end_matches('Z');
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(trimmed, format).ok())
        .map(|naive| naive.and_utc())
}

/// `95 s`, `12 min`, `3.5 h`, `2 d`: short human ages.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        7200..172_800 => format!("{:.1} h", seconds as f64 / 3600.0),
        _ => format!("{} d", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests;
