//! [`ViewModel`]: the snapshot the UI draws from (television's "draw context"). It is built from
//! the [`App`] and an injected `now`, holds only owned, formatted values, and `ui::render` is a
//! pure function of it, so snapshot tests need no network and no clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::CallError;
use kneo_client::wire::{ReadinessCheck, ServiceEvent};
use kneo_triage::matrix::Store;
use kneo_triage::runbook;
use kneo_triage::triage::{Health, Level, Verdict};

use crate::app::{App, DrillLevel, Latest, Mode, Pending, Screen, SourceKind};
use crate::format;
use crate::keys;
use crate::strings;
use crate::stuck::{self, RowKind};

/// Everything one frame shows.
#[derive(Debug, Clone)]
pub struct ViewModel {
    pub color: bool,
    pub screen: Screen,
    pub header: Header,
    pub status: StatusBar,
    pub footer: Footer,
    /// Above the body when it shows old answers: what they are and how old.
    pub stale: Option<String>,
    pub body: Body,
    pub overlay: Option<Overlay>,
}

#[derive(Debug, Clone)]
pub struct Header {
    /// `None` until the first poll.
    pub health: Option<Health>,
    pub source_badge: &'static str,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct StatusBar {
    pub target: String,
    pub identity: String,
    /// The identity is the tool's own access problem (no key, key rejected, …).
    pub access_problem: bool,
    pub refresh: String,
    /// `poll 12 ms ✓`, or the bundle's summary.
    pub poll: String,
    pub poll_ok: Option<bool>,
    pub last_good: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterKind {
    Hints,
    Command,
    Search,
    Message,
    Error,
}

#[derive(Debug, Clone)]
pub struct Footer {
    pub kind: FooterKind,
    pub text: String,
}

#[derive(Debug, Clone)]
pub enum Overlay {
    Help(Vec<(String, String)>),
    Confirm(String),
    Log(Vec<(bool, String)>),
}

#[derive(Debug, Clone)]
pub enum Body {
    Waiting(String),
    Triage(TriageView),
    Readiness(ReadinessView),
    Queue(QueueView),
    Runs(RunsView),
    Tasks(TasksView),
    Events(EventsView),
}

// ---- triage ----

#[derive(Debug, Clone)]
pub struct TreeRow {
    pub depth: usize,
    pub level: Level,
    /// `✓ ! ✗`, `·` for a note, `–` for what was not judged.
    pub symbol: &'static str,
    pub title: String,
    pub section: Option<String>,
    /// `Some(open)` for a verdict with children.
    pub expanded: Option<bool>,
    pub children: usize,
}

#[derive(Debug, Clone)]
pub struct TriageView {
    pub health: Health,
    pub headline: String,
    pub rows: Vec<TreeRow>,
    pub selected: usize,
    pub detail: VerdictDetail,
}

#[derive(Debug, Clone)]
pub struct VerdictDetail {
    pub level: Level,
    pub symbol: &'static str,
    pub title: String,
    pub detail: String,
    pub section: Option<String>,
    pub runbook_heading: Option<String>,
    pub runbook_text: String,
    /// Sections opened from `§` references, oldest first (the text shown is the last one's).
    pub opened: Vec<String>,
    pub scroll: u16,
    /// The pane has the keys; `reference` is the picked `§` reference.
    pub focused: bool,
    pub reference: usize,
}

// ---- readiness ----

#[derive(Debug, Clone)]
pub struct CheckRow {
    pub ok: bool,
    pub name: String,
    pub state: String,
    pub section: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ReadinessView {
    pub ready: Option<bool>,
    pub source_note: String,
    pub rows: Vec<CheckRow>,
    pub selected: usize,
    pub detail: Vec<(String, String)>,
    pub strip: String,
    pub unavailable: Option<String>,
}

// ---- queue ----

#[derive(Debug, Clone)]
pub struct QueueRowView {
    pub kind: RowKind,
    pub run_id: String,
    pub age: String,
    pub stuck: bool,
    pub reason: String,
    pub section: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueueView {
    pub counts: String,
    pub workers_zero: bool,
    pub backlog: Vec<u64>,
    pub backlog_caption: String,
    pub rows: Vec<QueueRowView>,
    pub selected: usize,
    pub note: Option<String>,
}

// ---- runs ----

#[derive(Debug, Clone)]
pub struct RunRowView {
    pub status: String,
    pub run_id: String,
    pub workflow: String,
    pub step: String,
    pub updated: String,
    pub error: bool,
}

#[derive(Debug, Clone)]
pub struct DrillView {
    pub run_id: String,
    pub level: DrillLevel,
    pub summary: Vec<(String, String)>,
    pub rows: Vec<String>,
    pub selected: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunsView {
    pub title: String,
    pub rows: Vec<RunRowView>,
    pub selected: usize,
    pub error: Option<String>,
    pub drill: Option<DrillView>,
}

// ---- tasks ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Escalated,
    ExpiringSoon,
    Overdue,
}

#[derive(Debug, Clone)]
pub struct TaskRow {
    pub state: TaskState,
    pub id: String,
    pub run_id: String,
    pub workflow: String,
    pub expires: String,
    pub created: String,
    pub request: String,
}

#[derive(Debug, Clone)]
pub struct TasksView {
    pub summary: String,
    pub rows: Vec<TaskRow>,
    pub selected: usize,
    pub note: Option<String>,
}

// ---- events ----

#[derive(Debug, Clone)]
pub struct EventRow {
    pub time: String,
    pub age: String,
    pub kind: String,
    pub summary: String,
    /// `Some(level)` colours the row (a failing readiness transition, a 5xx burst).
    pub level: Option<Level>,
    pub local: bool,
}

#[derive(Debug, Clone)]
pub struct EventsView {
    pub rows: Vec<EventRow>,
    pub selected: usize,
    pub note: Option<String>,
}

/// One entry of the Events timeline before formatting (shared with `App` for copying ids).
#[derive(Debug, Clone)]
pub struct EventItem {
    pub at: Option<DateTime<Utc>>,
    pub id: Option<String>,
    pub kind: String,
    pub summary: String,
    pub level: Option<Level>,
    pub local: bool,
}

/// Builds the snapshot for `now`.
pub fn build(app: &App, now: DateTime<Utc>, color: bool) -> ViewModel {
    let header = Header {
        health: app.latest.as_ref().map(|l| l.report.health),
        source_badge: match app.source.kind {
            SourceKind::Live => strings::BADGE_LIVE,
            SourceKind::Local => strings::BADGE_LOCAL,
            SourceKind::Bundle { .. } => strings::BADGE_BUNDLE,
        },
        read_only: app.source.read_only,
    };
    let body = match (&app.latest, app.shown()) {
        (Some(latest), Some((shown, _))) => match app.screen {
            Screen::Triage => Body::Triage(triage(app, latest)),
            Screen::Readiness => Body::Readiness(readiness(app, shown)),
            Screen::Queue => Body::Queue(queue(app, shown)),
            Screen::Runs => Body::Runs(runs(app, now)),
            Screen::Tasks => Body::Tasks(tasks(app, shown, now)),
            Screen::Events => Body::Events(events(app, shown, now)),
        },
        _ => Body::Waiting(strings::waiting_for_first_poll(&app.source.target)),
    };
    ViewModel {
        color,
        screen: app.screen,
        header,
        status: status_bar(app),
        footer: footer(app),
        stale: stale(app, now),
        body,
        overlay: overlay(app),
    }
}

/// What the stale banner says, on screens that show old answers.
fn stale(app: &App, now: DateTime<Utc>) -> Option<String> {
    if app.screen == Screen::Triage {
        return None;
    }
    if app.screen == Screen::Runs
        && let Some(error) = &app.runs.stale
    {
        return Some(strings::stale_list(error));
    }
    let (shown, stale) = app.shown()?;
    stale.then(|| {
        let at = shown.probes.observed_at;
        strings::stale_answers(
            &format::clock(at),
            &format::duration((now - at).to_std().unwrap_or(Duration::ZERO)),
        )
    })
}

fn status_bar(app: &App) -> StatusBar {
    let refresh = match &app.source.kind {
        SourceKind::Bundle { .. } => String::new(),
        _ => strings::status_refresh(app.source.refresh),
    };
    let (poll, poll_ok) = match (&app.source.kind, &app.latest) {
        (SourceKind::Bundle { created_at, .. }, _) => (created_at.clone(), None),
        (_, None) => (strings::POLLING.to_string(), None),
        (_, Some(latest)) => {
            let ok = latest.probes.healthz.is_ok();
            (strings::status_poll(latest.elapsed, ok), Some(ok))
        }
    };
    let last_good = match (&app.source.kind, app.last_good_at) {
        (SourceKind::Bundle { .. }, _) => String::new(),
        (_, Some(at)) => strings::status_last_good(&format::clock(at)),
        (_, None) => strings::status_last_good(strings::NEVER),
    };
    let (identity, access_problem) = identity(app);
    StatusBar {
        target: app.source.target.clone(),
        identity,
        access_problem,
        refresh,
        poll,
        poll_ok,
        last_good,
    }
}

/// Who the key is, as `GET /v1/health` told, or the tool's own access problem (its own line of
/// the status bar: it never sets the header).
fn identity(app: &App) -> (String, bool) {
    let Some(latest) = &app.latest else {
        let text = if app.source.has_key {
            strings::KEY_UNCHECKED
        } else {
            strings::NO_KEY
        };
        return (text.into(), false);
    };
    if let Some(problem) = latest.report.access_problems().first() {
        return (strings::access_problem(&problem.id, &problem.title), true);
    }
    let detail = latest.probes.health_detail.as_ref().and_then(|r| r.value());
    // Without /v1/health (kneo-serv 1.2), a listing read with the key shows the key works.
    let key_worked = [&latest.probes.queued_runs, &latest.probes.running_runs]
        .into_iter()
        .any(|reply| reply.as_ref().is_some_and(|r| r.is_ok()));
    match (detail, app.source.has_key) {
        (None, _) if !key_worked => (
            if app.source.has_key {
                strings::KEY_UNCHECKED
            } else {
                strings::NO_KEY
            }
            .into(),
            false,
        ),
        (Some(readiness), _) => {
            let name = readiness
                .identity
                .as_ref()
                .and_then(|i| i.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or(strings::KEY_UNCHECKED);
            let can_write = app
                .identity_scopes()
                .is_some_and(|s| s.contains("runs:write"));
            let text = if name == "anonymous" {
                strings::AUTH_OFF.to_string()
            } else {
                strings::identity(name, can_write)
            };
            (text, false)
        }
        (None, true) => (strings::KEY_ACCEPTED.into(), false),
        (None, false) => (strings::AUTH_OFF.into(), false),
    }
}

fn footer(app: &App) -> Footer {
    match &app.mode {
        Mode::Command(text) => {
            return Footer {
                kind: FooterKind::Command,
                text: format!("{}{text}", strings::COMMAND_PROMPT),
            };
        }
        Mode::Search(text) => {
            return Footer {
                kind: FooterKind::Search,
                text: format!("{}{text}", strings::SEARCH_PROMPT),
            };
        }
        _ => {}
    }
    if let Some(message) = &app.message {
        return Footer {
            kind: FooterKind::Message,
            text: message.clone(),
        };
    }
    if let Some(error) = app.latest.as_ref().and_then(|l| l.probes.healthz.error()) {
        return Footer {
            kind: FooterKind::Error,
            text: strings::poll_error(&error.to_string()),
        };
    }
    let hints = if app.pane_focused() {
        strings::HINTS_PANE
    } else if app.source.read_only {
        strings::HINTS_READ_ONLY
    } else if app.screen == Screen::Triage {
        strings::HINTS_TRIAGE
    } else {
        strings::HINTS
    };
    Footer {
        kind: FooterKind::Hints,
        text: hints.to_string(),
    }
}

fn overlay(app: &App) -> Option<Overlay> {
    match &app.mode {
        Mode::Help => Some(Overlay::Help(
            keys::help_rows()
                .into_iter()
                .map(|(k, h)| (k.to_string(), h.to_string()))
                .collect(),
        )),
        Mode::Confirm(pending) => Some(Overlay::Confirm(match pending {
            Pending::Capture { run_id } => strings::confirm_capture(run_id),
            Pending::Cancel { run_id } => strings::confirm_cancel(run_id),
        })),
        Mode::Log => Some(Overlay::Log(
            app.action_log
                .iter()
                .rev()
                .map(|e| (e.ok, format!("{} {}", format::clock(e.at), e.text)))
                .collect(),
        )),
        _ => None,
    }
}

// ---- triage ----

fn triage(app: &App, latest: &Latest) -> TriageView {
    let report = &latest.report;
    let visible = app.visible_verdicts(report);
    let selected_id = app.triage.selected.as_deref().unwrap_or_default();
    let selected = visible
        .iter()
        .position(|(_, v)| v.id == selected_id)
        .unwrap_or(0);
    let rows = visible
        .iter()
        .map(|(depth, verdict)| TreeRow {
            depth: *depth,
            level: verdict.level,
            symbol: verdict.symbol(),
            title: verdict.title.clone(),
            section: verdict.section_label(),
            expanded: (!verdict.children.is_empty()).then(|| app.is_expanded(verdict)),
            children: verdict.children.len(),
        })
        .collect();
    // The same line `kneo-ops triage` ends with.
    let headline = match &report.start_with {
        Some(start) => strings::start_with(start),
        None => strings::ALL_OK.into(),
    };
    let mut detail = visible
        .get(selected)
        .map(|(_, v)| verdict_detail(v))
        .unwrap_or_else(|| VerdictDetail {
            level: Level::Ok,
            symbol: " ",
            title: String::new(),
            detail: String::new(),
            section: None,
            runbook_heading: None,
            runbook_text: String::new(),
            opened: Vec::new(),
            scroll: 0,
            focused: false,
            reference: 0,
        });
    let pane = &app.triage.pane;
    detail.scroll = pane.scroll;
    detail.focused = pane.focused;
    detail.reference = pane.reference;
    detail.opened = pane.opened.clone();
    if let Some(section) = pane
        .opened
        .last()
        .and_then(|number| runbook::section(number))
    {
        detail.runbook_heading = Some(strings::runbook_heading(&section.number, &section.title));
        detail.runbook_text = runbook::reflow_markdown(&section.body);
    }
    TriageView {
        health: report.health,
        headline,
        rows,
        selected,
        detail,
    }
}

fn verdict_detail(verdict: &Verdict) -> VerdictDetail {
    let (heading, text) = match (&verdict.runbook, verdict.section.as_deref()) {
        (Some(section), _) => (
            Some(strings::runbook_heading(&section.number, &section.title)),
            runbook::reflow_markdown(&section.fix_steps()),
        ),
        (None, Some("extending")) => (None, strings::EXTENDING.to_string()),
        (None, Some(_)) if !runbook::is_embedded() => (None, strings::RUNBOOK_MISSING.into()),
        (None, Some(_)) => (None, String::new()),
        (None, None) => (None, strings::NO_SECTION.to_string()),
    };
    VerdictDetail {
        level: verdict.level,
        symbol: verdict.symbol(),
        title: verdict.title.clone(),
        detail: verdict.detail.clone(),
        section: verdict.section_label(),
        runbook_heading: heading,
        runbook_text: text,
        opened: Vec::new(),
        scroll: 0,
        focused: false,
        reference: 0,
    }
}

// ---- readiness ----

fn readiness(app: &App, latest: &Latest) -> ReadinessView {
    let probes = &latest.probes;
    let detail_reply = probes.health_detail.as_ref();
    let detailed = detail_reply.and_then(|r| r.value());
    let source_note = match detail_reply {
        Some(reply) if reply.is_ok() => strings::FROM_HEALTH_DETAIL.to_string(),
        Some(reply) => strings::from_readyz_detail_refused(&short_error(reply.error())),
        None => strings::FROM_READYZ_ONLY.to_string(),
    };
    let strip = strings::readiness_strip(
        &app.history.readiness_strip(60),
        app.history.readiness_flips(),
    );
    // Prefer the detailed answer's checks (same checks, with full messages).
    let readyz = probes.readyz.as_ref();
    let readiness = detailed.or_else(|| readyz.and_then(|r| r.value()));
    let Some(readiness) = readiness else {
        let reason = readyz
            .and_then(|r| r.error())
            .map(|e| short_error(Some(e)))
            .unwrap_or_else(|| strings::NOTHING_LISTED.to_string());
        return ReadinessView {
            ready: None,
            source_note,
            rows: Vec::new(),
            selected: 0,
            detail: Vec::new(),
            strip,
            unavailable: Some(strings::readiness_unavailable(&reason)),
        };
    };
    let store = Store::of(readiness);
    let rows: Vec<CheckRow> = readiness
        .checks
        .iter()
        .map(|check| check_row(check, store))
        .collect();
    let selected = app.readiness_selected.min(rows.len().saturating_sub(1));
    let detail = readiness
        .checks
        .get(selected)
        .map(|check| check_detail(check, store))
        .unwrap_or_default();
    ReadinessView {
        ready: Some(readiness.ready),
        source_note,
        rows,
        selected,
        detail,
        strip,
        unavailable: None,
    }
}

fn short_error(error: Option<&CallError>) -> String {
    match error {
        Some(CallError::Status { status, error, .. }) => match error {
            Some(body) => format!("HTTP {status} {}", body.summary()),
            None => format!("HTTP {status}"),
        },
        Some(CallError::Timeout { after, .. }) => {
            format!("no answer within {}", format::latency(*after))
        }
        Some(CallError::Unreachable { reason, .. }) => format!("unreachable ({reason})"),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn check_section(check: &ReadinessCheck, store: Store) -> String {
    if check.ok {
        return String::new();
    }
    let section = matrix_section(check, store);
    match runbook::normalize_number(&section) {
        Some(number) => format!("§ {number}"),
        None => section,
    }
}

/// The readiness matrix: the same table the triage tree and the server's `runbook` field use.
fn matrix_section(check: &ReadinessCheck, store: Store) -> String {
    kneo_triage::matrix::runbook_section(&check.name, check.error.as_deref(), store).to_string()
}

fn check_row(check: &ReadinessCheck, store: Store) -> CheckRow {
    let state = if check.ok {
        check_summary(check)
    } else {
        check.error.clone().unwrap_or_else(|| "failed".into())
    };
    CheckRow {
        ok: check.ok,
        name: check.name.clone(),
        state,
        section: check_section(check, store),
        message: if check.ok {
            String::new()
        } else {
            check.message.clone().unwrap_or_default()
        },
    }
}

fn check_summary(check: &ReadinessCheck) -> String {
    match check.name.as_str() {
        "queue" => format!(
            "{} queued, {} running",
            check.queued.unwrap_or(0),
            check.running.unwrap_or(0),
        ),
        "runtime_registry" | "tool_registry" => {
            format!("{} registered", check.count.unwrap_or(0))
        }
        "providers" | "mcp" if check.configured == Some(false) => "none listed".into(),
        "providers" | "mcp" => format!("{} present", check.items.len()),
        "continuation_store" => check.kind.clone().unwrap_or_else(|| "ok".into()),
        _ => check.status.clone().unwrap_or_else(|| "ok".into()),
    }
}

fn check_detail(check: &ReadinessCheck, store: Store) -> Vec<(String, String)> {
    let mut lines = vec![(strings::LABEL_CHECK.to_string(), check.name.clone())];
    if check.ok {
        lines.push((strings::LABEL_STATE.into(), check_summary(check)));
    } else {
        lines.push((
            strings::LABEL_KIND.into(),
            check.error.clone().unwrap_or_else(|| "failed".into()),
        ));
        if let Some(message) = &check.message {
            lines.push((strings::LABEL_MESSAGE.into(), message.clone()));
        }
        if let Some(full) = &check.detail_message {
            lines.push((strings::LABEL_FULL_MESSAGE.into(), full.clone()));
        }
        let missing = check.missing_secrets();
        if !missing.is_empty() {
            lines.push((strings::LABEL_MISSING.into(), missing.join(", ")));
        }
        let section = matrix_section(check, store);
        let heading = runbook::section(&section)
            .map(|s| strings::runbook_heading(&s.number, &s.title))
            .unwrap_or(section);
        lines.push((strings::LABEL_RUNBOOK.into(), heading));
    }
    if let Some(names) = (!check.names.is_empty()).then(|| check.names.join(", ")) {
        lines.push(("names".into(), names));
    }
    if check.name == "queue" {
        if let Some(workers) = check.workers {
            lines.push((strings::LABEL_WORKERS.into(), workers.to_string()));
        }
        if let Some(expired) = check.expired_leases {
            lines.push((strings::LABEL_EXPIRED_LEASES.into(), expired.to_string()));
        }
        if let Some(failed) = check.failed {
            lines.push((strings::KIND_FAILED.into(), failed.to_string()));
        }
    }
    lines
}

// ---- queue ----

fn queue(app: &App, latest: &Latest) -> QueueView {
    let probes = &latest.probes;
    let known = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let blocked = probes
        .human_tasks
        .as_ref()
        .and_then(|r| r.value())
        .map(|l| l.page.total.unwrap_or(l.tasks.len() as u64).to_string())
        .unwrap_or_else(|| "?".into());
    let failed = probes
        .readyz
        .as_ref()
        .and_then(|r| r.value())
        .and_then(|r| r.check("queue"))
        .and_then(|q| q.failed);
    let counts = strings::queue_counts(
        &known(probes.queued_count()),
        &known(probes.running_count()),
        &blocked,
        &known(failed),
        &known(probes.worker_count()),
        &known(probes.expired_lease_count()),
    );
    let rows: Vec<QueueRowView> = app
        .queue_rows()
        .into_iter()
        .map(|row: stuck::QueueRow| QueueRowView {
            kind: row.kind,
            run_id: row.run_id,
            age: row.age.map(format::duration).unwrap_or_else(|| "?".into()),
            stuck: row.stuck.is_some(),
            reason: row.stuck.unwrap_or(row.note),
            section: row.section.map(|s| format!("§ {s}")),
        })
        .collect();
    let list_error = [&probes.queued_runs, &probes.running_runs]
        .into_iter()
        .flatten()
        .find_map(|reply| reply.error());
    let note = match list_error {
        Some(error) => Some(short_error(Some(error))),
        None if !app.source.has_key => Some(strings::NEEDS_KEY.to_string()),
        None => None,
    };
    let depth_samples = 120;
    QueueView {
        counts,
        workers_zero: probes.worker_count() == Some(0),
        backlog: app.history.queue_depths(depth_samples),
        backlog_caption: strings::backlog_caption(
            app.history.len().min(depth_samples),
            app.history.depth_trend(),
        ),
        selected: app.queue_selected.min(rows.len().saturating_sub(1)),
        rows,
        note,
    }
}

// ---- runs ----

fn runs(app: &App, now: DateTime<Utc>) -> RunsView {
    let filter = app
        .runs
        .status
        .clone()
        .unwrap_or_else(|| strings::FILTER_ALL.to_string());
    let filtered = app.filtered_runs();
    let total = match &app.runs.list {
        Some(Ok(list)) => list.page.total,
        _ => None,
    };
    let title = strings::runs_title(&filter, &app.runs.search, filtered.len(), total);
    let error = match &app.runs.list {
        Some(Err(error)) => Some(error.clone()),
        None => Some(strings::LOADING.to_string()),
        Some(Ok(_)) => None,
    };
    let rows = filtered
        .iter()
        .map(|run| RunRowView {
            status: run.status.as_str().to_string(),
            run_id: run.run_id.clone(),
            workflow: run
                .workflow_name
                .clone()
                .or_else(|| run.agent_name.clone())
                .unwrap_or_else(|| "-".into()),
            step: run
                .current_step_id
                .clone()
                .or_else(|| run.current_node_id.clone())
                .or_else(|| run.current_step_index.map(|i| format!("#{i}")))
                .unwrap_or_default(),
            updated: format::age_text(now, run.updated_at.as_deref()),
            error: run.error.as_ref().is_some_and(|e| !e.is_null()),
        })
        .collect::<Vec<_>>();
    let drill = app.runs.drill.as_ref().map(|drill| {
        let mut view = DrillView {
            run_id: drill.run_id.clone(),
            level: drill.level,
            summary: Vec::new(),
            rows: Vec::new(),
            selected: drill.selected,
            error: None,
        };
        let Some(data) = &drill.data else {
            view.error = Some(strings::LOADING.into());
            return view;
        };
        match &data.run {
            Ok(run) => view.summary = run_summary(run, now),
            Err(error) => view.error = Some(error.clone()),
        }
        let list: Result<Vec<String>, String> = match drill.level {
            DrillLevel::Run => Ok(Vec::new()),
            DrillLevel::Trace => data.trace.clone().map(|page| {
                page.events
                    .iter()
                    .map(|event| {
                        let when = event
                            .timestamp
                            .as_deref()
                            .and_then(kneo_triage::triage::parse_time)
                            .map(format::clock)
                            .unwrap_or_else(|| "--:--:--".into());
                        let what = event
                            .step_id
                            .clone()
                            .or_else(|| event.tool_name.clone())
                            .or_else(|| event.agent_name.clone())
                            .unwrap_or_default();
                        let error = event
                            .error
                            .as_ref()
                            .map(format::error_text)
                            .filter(|e| !e.is_empty())
                            .map(|e| format!("  ✗ {e}"))
                            .unwrap_or_default();
                        format!("{when}  {:<22} {what}{error}", event.event_type)
                    })
                    .collect()
            }),
            DrillLevel::Checkpoints => data.checkpoints.clone().map(|page| {
                page.checkpoints
                    .iter()
                    .map(|checkpoint| {
                        format!(
                            "#{:<4} {:<20} {:<16} {}",
                            checkpoint.sequence.unwrap_or(0),
                            checkpoint.checkpoint_type.as_deref().unwrap_or("?"),
                            checkpoint
                                .step_id
                                .as_deref()
                                .or(checkpoint.node_id.as_deref())
                                .unwrap_or("-"),
                            format::age_text(now, checkpoint.created_at.as_deref())
                        )
                    })
                    .collect()
            }),
            DrillLevel::Audit => data.audit.clone().map(|page| {
                page.events
                    .iter()
                    .map(|event| {
                        format!(
                            "{:<8} {:<22} {:<8} {}",
                            format::age_text(now, event.created_at.as_deref()),
                            event.event_type,
                            event.actor.as_deref().unwrap_or("-"),
                            compact_json(&event.metadata, 200)
                        )
                    })
                    .collect()
            }),
        };
        match list {
            Ok(rows) => view.rows = rows,
            Err(error) => view.error = Some(error),
        }
        view.selected = view.selected.min(view.rows.len().saturating_sub(1));
        view
    });
    RunsView {
        title,
        selected: app.runs.selected.min(rows.len().saturating_sub(1)),
        rows,
        error,
        drill,
    }
}

fn run_summary(run: &kneo_client::wire::Run, now: DateTime<Utc>) -> Vec<(String, String)> {
    let mut lines = vec![
        (strings::LABEL_STATUS.to_string(), run.status.to_string()),
        (
            strings::LABEL_WORKFLOW.to_string(),
            run.workflow_name
                .clone()
                .or_else(|| run.agent_name.clone())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    let step = run
        .current_step_id
        .clone()
        .or_else(|| run.current_node_id.clone())
        .or_else(|| run.current_step_index.map(|i| format!("#{i}")));
    if let Some(step) = step {
        lines.push((strings::LABEL_STEP.into(), step));
    }
    lines.push((
        strings::LABEL_CREATED.into(),
        format!("{} ago", format::age_text(now, run.created_at.as_deref())),
    ));
    lines.push((
        strings::LABEL_UPDATED.into(),
        format!("{} ago", format::age_text(now, run.updated_at.as_deref())),
    ));
    if let Some(continuation) = &run.continuation_id {
        lines.push((strings::LABEL_CONTINUATION.into(), continuation.clone()));
    }
    if let Some(count) = run.trace_event_count {
        lines.push((strings::LABEL_TRACE_EVENTS.into(), count.to_string()));
    }
    if let Some(error) = run
        .error
        .as_ref()
        .map(format::error_text)
        .filter(|e| !e.is_empty())
    {
        lines.push((strings::LABEL_ERROR.into(), error));
    }
    if let Some(input) = &run.input_text {
        lines.push((strings::LABEL_INPUT.into(), format::truncate(input, 200)));
    }
    if let Some(output) = &run.output_text {
        lines.push((strings::LABEL_OUTPUT.into(), format::truncate(output, 200)));
    }
    lines
}

fn compact_json(value: &serde_json::Value, width: usize) -> String {
    if value.is_null() {
        return String::new();
    }
    format::truncate(&value.to_string(), width)
}

// ---- tasks ----

fn tasks(app: &App, shown: &Latest, now: DateTime<Utc>) -> TasksView {
    let soon = app.settings.expiring_soon;
    let mut counts = [0usize; 4];
    let rows: Vec<TaskRow> = app
        .sorted_tasks()
        .into_iter()
        .map(|task| {
            let expires = task.expires_at.and_then(format::from_epoch);
            let overdue = stuck::overdue_by(task, now);
            let left = expires
                .filter(|at| *at >= now)
                .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO));
            let state = if overdue.is_some() && !task.is_escalated() {
                TaskState::Overdue
            } else if task.is_escalated() {
                TaskState::Escalated
            } else if left.is_some_and(|left| left <= soon) {
                TaskState::ExpiringSoon
            } else {
                TaskState::Pending
            };
            counts[match state {
                TaskState::Pending => 0,
                TaskState::Escalated => 1,
                TaskState::ExpiringSoon => 2,
                TaskState::Overdue => 3,
            }] += 1;
            let expires_text = match (overdue, left) {
                (Some(over), _) => strings::expired_ago(over),
                (None, Some(left)) => strings::expires_in(left),
                _ => "-".into(),
            };
            let request = task
                .pending_human_request
                .as_ref()
                .and_then(|r| r.get("title").or_else(|| r.get("prompt")))
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_string();
            TaskRow {
                state,
                id: task.id.clone(),
                run_id: task.run_id.clone().unwrap_or_else(|| "-".into()),
                workflow: task.workflow_name.clone().unwrap_or_else(|| "-".into()),
                expires: expires_text,
                created: format::age_text(now, task.created_at.as_deref()),
                request,
            }
        })
        .collect();
    // Pending counts every open task that is neither escalated nor overdue.
    let summary = strings::tasks_summary(counts[0] + counts[2], counts[1], counts[2], counts[3]);
    let note = Some(shown)
        .and_then(|l| l.probes.human_tasks.as_ref())
        .and_then(|r| r.error())
        .map(|e| short_error(Some(e)))
        .or_else(|| (!app.source.has_key).then(|| strings::NEEDS_KEY.to_string()));
    TasksView {
        summary,
        selected: app.tasks_selected.min(rows.len().saturating_sub(1)),
        rows,
        note,
    }
}

// ---- events ----

/// The Events timeline, newest first: the service's events and what kneo-tui itself saw.
pub fn event_items(app: &App, shown: &Latest) -> Vec<EventItem> {
    let mut items: Vec<EventItem> = Some(shown)
        .and_then(|l| l.probes.service_events.as_ref())
        .and_then(|r| r.value())
        .map(|list| list.events.iter().map(service_event_item).collect())
        .unwrap_or_default();
    items.extend(app.observed.iter().map(|observed| EventItem {
        at: Some(observed.at),
        id: None,
        kind: strings::EVENT_OBSERVED.to_string(),
        summary: format!(
            "{} — {}",
            strings::observed_health(observed.health.as_str()),
            observed.headline
        ),
        level: Some(match observed.health {
            Health::Healthy => Level::Ok,
            Health::Degraded => Level::Warn,
            Health::Down | Health::Hung | Health::Unknown => Level::Fail,
        }),
        local: true,
    }));
    items.sort_by_key(|item| std::cmp::Reverse(item.at));
    items
}

fn service_event_item(event: &ServiceEvent) -> EventItem {
    let details = &event.details;
    let text = |key: &str| {
        details
            .get(key)
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .filter(|s| s != "null")
    };
    let (summary, level) = match event.event_type.as_str() {
        "service.started" => {
            let mut parts = Vec::new();
            if let Some(version) = text("version").or_else(|| event.version.clone()) {
                parts.push(format!("version {version}"));
            }
            if let Some(schema) = text("schema_version") {
                parts.push(format!("schema {schema}"));
            }
            if let Some(store) = text("store_kind") {
                parts.push(store);
            }
            if let Some(host) = &event.host {
                parts.push(format!("host {host}"));
            }
            if let Some(pid) = text("pid") {
                parts.push(format!("pid {pid}"));
            }
            (parts.join(", "), None)
        }
        "service.stopped" => (
            text("pid").map(|p| format!("pid {p}")).unwrap_or_default(),
            None,
        ),
        "readiness.changed" => {
            let ready = details.get("ready").and_then(|v| v.as_bool());
            let failing = details
                .get("failing")
                .and_then(|f| f.as_object())
                .map(|f| {
                    f.iter()
                        .map(|(name, kind)| format!("{name}={}", kind.as_str().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            match ready {
                Some(true) => ("ready".to_string(), Some(Level::Ok)),
                _ => (format!("not ready: {failing}"), Some(Level::Fail)),
            }
        }
        "http.5xx_burst" => (
            format!(
                "{} server errors in {} s",
                text("count").unwrap_or_else(|| "?".into()),
                text("window_seconds").unwrap_or_else(|| "?".into())
            ),
            Some(Level::Warn),
        ),
        _ => (compact_json(details, 200), None),
    };
    EventItem {
        at: event
            .created_at
            .as_deref()
            .and_then(kneo_triage::triage::parse_time),
        id: event.id.clone(),
        kind: event.event_type.clone(),
        summary,
        level,
        local: false,
    }
}

fn events(app: &App, shown: &Latest, now: DateTime<Utc>) -> EventsView {
    let rows: Vec<EventRow> = event_items(app, shown)
        .into_iter()
        .map(|item| EventRow {
            time: item.at.map(format::stamp).unwrap_or_else(|| "?".into()),
            age: item
                .at
                .map(|at| strings::ago((now - at).to_std().unwrap_or(Duration::ZERO)))
                .unwrap_or_default(),
            kind: item.kind,
            summary: item.summary,
            level: item.level,
            local: item.local,
        })
        .collect();
    let note = Some(shown)
        .and_then(|l| l.probes.service_events.as_ref())
        .and_then(|r| r.error())
        .map(|e| short_error(Some(e)))
        .or_else(|| (!app.source.has_key).then(|| strings::NEEDS_KEY.to_string()));
    EventsView {
        selected: app.events_selected.min(rows.len().saturating_sub(1)),
        rows,
        note,
    }
}
