//! The triage model shared by kneo-ops and kneo-tui (DESIGN.md § 5): probe results in, a verdict
//! tree out.
//!
//! [`evaluate`] is a pure function of [`Probes`] (what the service answered, or did not) and
//! [`Thresholds`]; it never touches the network, so every branch is unit-tested. The tree:
//!
//! 1. `/healthz` — alive, down (connection refused), hung (connects, never answers) or crashed.
//! 2. `/readyz` — each failing check mapped to its runbook section by [`crate::matrix`], the
//!    table the server's own `runbook` field comes from.
//! 3. Queue and runs — stuck-run rules (§ 5.1, § 5.3, § 8.5).
//! 4. Symptoms — what other callers hit (the service's answer counters), the tool's own error
//!    answers that nothing else explains, restart loops and 5xx bursts from the service events.
//!
//! Three kinds of verdict are kept apart ([`Kind`]): the service's state (the only one that sets
//! [`Report::health`] and the exit code), the tool's own access ([`Report::access`]: no key, key
//! rejected, a scope lacking, unreachable from here; exit code 3 when it kept the tool from
//! judging), and notes ([`Report::notes`]: a start, a route the target does not have), which never
//! change either. When `/healthz` does not answer, the other stages say "not judged".
//!
//! What the target is ([`capabilities`]) is learned from its answers: kneo-serv 1.2 has no
//! `/v1/health` and no service events, and their absence is a note, never a symptom.

pub mod capabilities;
pub mod render;
mod stages;
pub mod symptoms;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::Reply;
use kneo_client::wire::{
    HealthBody, HumanTaskList, MetricsSnapshot, Readiness, RunList, RunRecovery, ServiceEventList,
};
use serde::Serialize;

use crate::runbook::{self, Section};
pub use capabilities::{Flavor, OptionalRoute, ServiceIdentity};

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

/// Whose verdict it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The service's state: sets the header and the exit code.
    Service,
    /// The tool's own view: its key, its scopes, its path to the service.
    Access,
    /// Information: never changes the header or the exit code.
    Note,
}

/// The overall answer about the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Every service verdict is ok.
    Healthy,
    /// The service answers, but something is not ok.
    Degraded,
    /// The process accepts connections and never answers.
    Hung,
    /// Nothing listens (connection refused), or the process crashed mid-request.
    Down,
    /// The tool could not reach the service from here: the service may be fine elsewhere.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Hung => "hung",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// Exit codes of `kneo-ops triage` (and what kneo-tui's header means by the same words).
pub mod exit {
    use kneo_client::Exit;

    pub const HEALTHY: u8 = Exit::Success.code();
    pub const DEGRADED: u8 = Exit::Degraded.code();
    /// Down or hung: the service does not answer.
    pub const DOWN: u8 = Exit::Down.code();
    /// Cannot judge: fix the tool's access first (no key, key rejected, scope lacking,
    /// unreachable from here). Only when nothing judged so far is wrong with the service.
    pub const CANNOT_JUDGE: u8 = Exit::CannotJudge.code();
}

/// One node of the verdict tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// 1–4: the stage this verdict belongs to; 0 for the tool's access and the notes.
    pub stage: u8,
    /// A stable machine key, e.g. `readyz.providers` or `queue.stale_queued`.
    pub id: String,
    pub kind: Kind,
    pub level: Level,
    /// False when this stage could not be judged (the service is not answering).
    pub judged: bool,
    pub title: String,
    pub detail: String,
    /// Where the runbook explains it: a number (`3.2`) or another reference (`extending`).
    pub section: Option<String>,
    /// The troubleshooting section's text, when `section` is a number the embedded guide has.
    pub runbook: Option<Section>,
    pub children: Vec<Verdict>,
}

impl Verdict {
    /// A service verdict.
    pub fn new(
        stage: u8,
        id: impl Into<String>,
        level: Level,
        title: impl Into<String>,
    ) -> Verdict {
        Verdict {
            stage,
            id: id.into(),
            kind: Kind::Service,
            level,
            judged: true,
            title: title.into(),
            detail: String::new(),
            section: None,
            runbook: None,
            children: Vec::new(),
        }
    }

    /// A stage that could not be judged; `why` completes "not judged: …".
    pub fn not_judged(stage: u8, id: impl Into<String>, what: &str, why: &str) -> Verdict {
        let mut verdict = Verdict::new(stage, id, Level::Ok, format!("{what}: not judged: {why}"));
        verdict.judged = false;
        verdict
    }

    /// A verdict about the tool's own access.
    pub fn access(id: impl Into<String>, level: Level, title: impl Into<String>) -> Verdict {
        let mut verdict = Verdict::new(0, id, level, title);
        verdict.kind = Kind::Access;
        verdict
    }

    /// A note.
    pub fn note(id: impl Into<String>, title: impl Into<String>) -> Verdict {
        let mut verdict = Verdict::new(0, id, Level::Ok, title);
        verdict.kind = Kind::Note;
        verdict
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

    /// `✓`, `!`, `✗`; `·` for a note, `–` for a stage that was not judged.
    pub fn symbol(&self) -> &'static str {
        match (self.kind, self.judged) {
            (Kind::Note, _) => "·",
            (_, false) => "–",
            _ => self.level.symbol(),
        }
    }

    /// A place to act on: not ok, and no child that is not ok.
    pub fn is_finding(&self) -> bool {
        self.level != Level::Ok && self.children.iter().all(|child| child.level == Level::Ok)
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

    /// `title (§ 3.2)`: the "Start with" line both tools show.
    pub fn headline(&self) -> String {
        match self.section_label() {
            Some(section) => format!("{} ({section})", self.title),
            None => self.title.clone(),
        }
    }
}

/// The verdict tree with the overall answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The probed URL (without credentials).
    pub target: String,
    pub observed_at: DateTime<Utc>,
    /// What the target is, as its answers showed.
    pub service: ServiceIdentity,
    pub health: Health,
    /// See [`exit`].
    pub exit_code: u8,
    /// The place to start: the worst service finding, else the first access problem.
    pub start_with: Option<String>,
    /// The four stage verdicts, in order.
    pub stages: Vec<Verdict>,
    /// The tool's own access (children only when something is wrong).
    pub access: Verdict,
    /// Notes (children only when there are any).
    pub notes: Verdict,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        self.exit_code
    }

    /// [`Report::exit_code`] as the shared exit enum.
    pub fn exit(&self) -> kneo_client::Exit {
        match self.exit_code {
            exit::HEALTHY => kneo_client::Exit::Success,
            exit::DEGRADED => kneo_client::Exit::Degraded,
            exit::DOWN => kneo_client::Exit::Down,
            _ => kneo_client::Exit::CannotJudge,
        }
    }

    /// The top-level groups shown as a tree: the stages, then the access and notes groups when
    /// they have anything to say.
    pub fn groups(&self) -> Vec<&Verdict> {
        let mut groups: Vec<&Verdict> = self.stages.iter().collect();
        for group in [&self.access, &self.notes] {
            if !group.children.is_empty() {
                groups.push(group);
            }
        }
        groups
    }

    /// Every verdict of every group, depth first.
    pub fn all(&self) -> Vec<&Verdict> {
        self.groups().into_iter().flat_map(Verdict::walk).collect()
    }

    /// The places to act on: service findings worst first, then the tool's access problems.
    /// Notes are never findings.
    pub fn findings(&self) -> Vec<&Verdict> {
        let mut service: Vec<&Verdict> = self
            .stages
            .iter()
            .flat_map(Verdict::walk)
            .filter(|verdict| verdict.is_finding())
            .collect();
        service.sort_by_key(|verdict| std::cmp::Reverse(verdict.level));
        let mut access: Vec<&Verdict> = self
            .access
            .walk()
            .into_iter()
            .filter(|verdict| verdict.is_finding())
            .collect();
        access.sort_by_key(|verdict| std::cmp::Reverse(verdict.level));
        service.extend(access);
        service
    }

    /// The access problems (empty when the tool saw everything it asked for).
    pub fn access_problems(&self) -> Vec<&Verdict> {
        self.access
            .walk()
            .into_iter()
            .filter(|verdict| verdict.is_finding())
            .collect()
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
    /// escalated by the sweep (§ 8.5); within it the task is a note (the sweep runs every 5 s).
    pub blocked_grace: Duration,
    /// How far back service events (5xx bursts, starts) and other callers' error answers count.
    pub recent_events: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            queued_max_age: Duration::from_secs(60),
            heartbeat: Duration::from_secs(300),
            blocked_grace: Duration::from_secs(10),
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

/// What the service answered. `None` means the probe was not made (not asked, or a route the
/// target is known not to have).
#[derive(Debug, Clone)]
pub struct Probes {
    /// The probed URL (without credentials).
    pub target: String,
    /// When the probes were taken; every age is measured from here.
    pub observed_at: DateTime<Utc>,
    /// Whether the authenticated calls carried an API key (a 401 then means "rejected", not
    /// "none given").
    pub key_given: bool,
    pub healthz: Reply<HealthBody>,
    pub readyz: Option<Reply<Readiness>>,
    /// `GET /v1/health`: the same checks with full messages (kneo-server; needs a key).
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
    /// Optional routes an earlier answer showed this target does not have; not asked again.
    pub known_absent: BTreeSet<OptionalRoute>,
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
            key_given: false,
            healthz,
            readyz: None,
            health_detail: None,
            queued_runs: None,
            running_runs: None,
            human_tasks: None,
            recoveries: Vec::new(),
            service_events: None,
            metrics: None,
            known_absent: BTreeSet::new(),
            backlog_history: Vec::new(),
        }
    }

    /// Live workers, from `/readyz`'s queue check or else `kneo_worker_count`.
    pub fn worker_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.workers);
        from_readyz.or_else(|| self.metrics_value().and_then(MetricsSnapshot::worker_count))
    }

    /// Queued runs, from `/readyz`, `/metrics` or the queued list's total.
    pub fn queued_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.queued);
        from_readyz
            .or_else(|| self.metrics_value().and_then(MetricsSnapshot::queued))
            .or_else(|| list_total(&self.queued_runs))
    }

    /// Running runs, from `/readyz`, `/metrics` or the running list's total.
    pub fn running_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.running);
        from_readyz
            .or_else(|| self.metrics_value().and_then(MetricsSnapshot::running))
            .or_else(|| list_total(&self.running_runs))
    }

    /// Running records whose lease expired, from `/readyz` or `/metrics`.
    pub fn expired_lease_count(&self) -> Option<i64> {
        let from_readyz = self
            .readiness()
            .and_then(|r| r.check("queue"))
            .and_then(|q| q.expired_leases);
        from_readyz.or_else(|| {
            self.metrics_value()
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

    /// Whether `/healthz` gave no answer at all (refused, unreachable or timed out).
    pub fn not_answering(&self) -> bool {
        self.healthz
            .error()
            .is_some_and(|error| error.is_no_answer())
    }

    pub(crate) fn readiness(&self) -> Option<&Readiness> {
        self.readyz.as_ref().and_then(|reply| reply.value())
    }

    fn metrics_value(&self) -> Option<&MetricsSnapshot> {
        self.metrics.as_ref().and_then(|m| m.value())
    }
}

fn list_total(list: &Option<Reply<RunList>>) -> Option<i64> {
    list.as_ref()
        .and_then(|r| r.value())
        .and_then(|l| l.page.total)
        .map(|t| t as i64)
}

/// Walks the tree (DESIGN.md § 5) over the probes.
pub fn evaluate(probes: &Probes, thresholds: &Thresholds) -> Report {
    let service = capabilities::learn(probes);
    let access = stages::access(probes);
    let stages = vec![
        stages::liveness(probes, &service, &access),
        stages::readiness(probes, &access),
        stages::queue(probes, thresholds, &access),
        stages::symptoms(probes, thresholds, &service, &access),
    ];
    let health = stages::health(probes, &stages, &access);
    let access_group = Verdict::access("access", Level::Ok, access_title(&access.verdicts))
        .with_children(access.verdicts.clone());
    let mut notes = capabilities::notes(probes, &service);
    notes.extend(stages::notes(probes, thresholds));
    let notes_group = {
        let mut group = Verdict::note("notes", "Notes");
        group.children = notes;
        group
    };
    let mut report = Report {
        target: probes.target.clone(),
        observed_at: probes.observed_at,
        service,
        health,
        exit_code: exit::HEALTHY,
        start_with: None,
        stages,
        access: access_group,
        notes: notes_group,
    };
    report.exit_code = match health {
        Health::Down | Health::Hung => exit::DOWN,
        Health::Degraded => exit::DEGRADED,
        Health::Unknown => exit::CANNOT_JUDGE,
        Health::Healthy if !report.access_problems().is_empty() => exit::CANNOT_JUDGE,
        Health::Healthy => exit::HEALTHY,
    };
    report.start_with = report.findings().first().map(|first| first.headline());
    report
}

fn access_title(problems: &[Verdict]) -> String {
    match problems.len() {
        0 => "The tool's access: ok".into(),
        1 => "The tool's access: 1 problem (not the service's state)".into(),
        count => format!("The tool's access: {count} problems (not the service's state)"),
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
