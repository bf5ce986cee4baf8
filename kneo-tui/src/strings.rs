//! Every piece of text the UI shows, in one place (gitui's `strings.rs`): labels, titles,
//! messages, and the small formatters that put values into sentences.

use std::time::Duration;

use crate::format;

pub const APP_NAME: &str = "kneo-tui";

// ---- screens (tab titles; the digit is the key) ----
pub const SCREEN_TRIAGE: &str = "Triage";
pub const SCREEN_READINESS: &str = "Readiness";
pub const SCREEN_QUEUE: &str = "Queue";
pub const SCREEN_RUNS: &str = "Runs";
pub const SCREEN_TASKS: &str = "Tasks";
pub const SCREEN_EVENTS: &str = "Events";

// ---- header badges ----
pub const BADGE_HEALTHY: &str = "HEALTHY";
pub const BADGE_DEGRADED: &str = "DEGRADED";
pub const BADGE_DOWN: &str = "DOWN";
pub const BADGE_HUNG: &str = "HUNG";
/// The tool could not reach the service: its state is not known from here.
pub const BADGE_UNKNOWN: &str = "NOT JUDGED";
pub const BADGE_WAITING: &str = "WAITING";
pub const BADGE_LIVE: &str = "LIVE";
pub const BADGE_LOCAL: &str = "LOCAL";
pub const BADGE_BUNDLE: &str = "BUNDLE";
pub const BADGE_READ_ONLY: &str = "RO";

// ---- status bar ----
pub const NO_KEY: &str = "no key";
pub const KEY_UNCHECKED: &str = "key set";
/// The key worked, and the target does not say whose it is (kneo-serv 1.2 has no /v1/health).
pub const KEY_ACCEPTED: &str = "key ok";
/// The service answers without a key: its auth is off.
pub const AUTH_OFF: &str = "no key (auth off)";

/// The tool's own access problem, for the status bar (`key rejected (401)`, `key lacks
/// audit:read`, `unreachable from here`).
pub fn access_problem(id: &str, title: &str) -> String {
    match id {
        "access.key_rejected" => "✗ key rejected (401)".into(),
        "access.no_key" => "✗ no key (the service needs one)".into(),
        "access.unreachable" => "✗ unreachable from here".into(),
        "access.not_kneo" => "✗ not kneo at this URL".into(),
        "access.readyz_auth" | "access.healthz_auth" => "✗ auth in front of /readyz".into(),
        _ => match id.strip_prefix("access.scope.") {
            Some(scope) => format!("✗ key lacks {scope}"),
            None => format!("✗ {title}"),
        },
    }
}
pub const NEVER: &str = "never";
pub const POLLING: &str = "polling…";

pub fn status_refresh(interval: Duration) -> String {
    format!("every {}", format::interval(interval))
}

pub fn status_poll(latency: Duration, ok: bool) -> String {
    if ok {
        format!("poll {} ✓", format::latency(latency))
    } else {
        format!("poll {} ✗", format::latency(latency))
    }
}

pub fn status_last_good(clock: &str) -> String {
    format!("last ok {clock}")
}

pub fn status_bundle(created: &str, items: usize, failed: usize) -> String {
    format!("captured {created} · {items} items, {failed} not ok")
}

pub fn identity(name: &str, can_write: bool) -> String {
    if can_write {
        format!("{name} (rw)")
    } else {
        format!("{name} (ro)")
    }
}

// ---- footer ----
pub const HINTS: &str =
    "1-6 screens  ↑↓ move  ⏎ open  / search  : command  r refresh  ? help  q quit";
pub const HINTS_TRIAGE: &str =
    "1-6 screens  ↑↓ move  ⏎ open  J K scroll runbook  r refresh  ? help  q quit";
pub const HINTS_PANE: &str = "↑↓ pick a § reference  ⏎ open it  J K PgUp PgDn scroll  Esc back";
pub const HINTS_READ_ONLY: &str =
    "1-6 screens  ↑↓ move  ⏎ open  / search  : command  ? help  q quit  (read-only)";
pub const COMMAND_PROMPT: &str = ":";
pub const SEARCH_PROMPT: &str = "/";

pub fn poll_error(error: &str) -> String {
    format!("last poll: {error}")
}

// ---- waiting / empty states ----
pub fn waiting_for_first_poll(target: &str) -> String {
    format!("Waiting for the first answer from {target} …")
}
pub const NOTHING_LISTED: &str = "(nothing)";
pub const NEEDS_KEY: &str = "needs an API key (--api-key or KNEO_SERV_API_KEY)";
pub const LOADING: &str = "loading…";

// ---- triage ----
pub const TRIAGE_TREE: &str = "Triage tree";
pub const TRIAGE_DETAIL: &str = "Verdict and runbook";
pub const TRIAGE_DETAIL_FOCUSED: &str = "Runbook";
pub const NO_SECTION: &str = "No runbook section: this verdict is informational.";
pub const EXTENDING: &str =
    "See docs/extending.md: registering runtimes and tools (no troubleshooting section).";
pub const RUNBOOK_MISSING: &str = "The runbook text was not embedded in this build.";

/// `headline` is the report's own `start_with` (the verdict's title and section).
pub fn start_with(headline: &str) -> String {
    format!("Start with: {headline}")
}

pub fn stale_answers(clock: &str, age: &str) -> String {
    format!("stale: the service is not answering; these are its answers of {clock} ({age} ago)")
}

pub fn stale_list(error: &str) -> String {
    format!("stale: the last fetch failed ({error}); the list is the one before it")
}

pub const PANE_FOCUSED: &str = "Esc back";

/// `§ 1.2 › § 2.4 (Esc goes back)`: how the pane got to the section it shows.
pub fn opened_trail(from: Option<&str>, opened: &[String]) -> String {
    let mut trail: Vec<String> = from.map(str::to_string).into_iter().collect();
    trail.extend(opened.iter().map(|number| format!("§ {number}")));
    format!("{} (Esc goes back)", trail.join(" › "))
}
/// `12-29/40`: the rows of the pane's text on screen.
pub fn pane_position(first: u16, last: u16, total: u16) -> String {
    format!("{first}-{last}/{total}")
}

pub fn runbook_heading(number: &str, title: &str) -> String {
    format!("§ {number} {title}")
}

pub const ALL_OK: &str = "Every check is ok.";

// ---- readiness ----
pub const READINESS_CHECKS: &str = "Readiness checks";
pub const READINESS_DETAIL: &str = "Check detail";
pub const FROM_HEALTH_DETAIL: &str = "from GET /v1/health (full messages)";
pub const FROM_READYZ_ONLY: &str = "from /readyz (full messages need a key with runs:read)";

pub fn from_readyz_detail_refused(reason: &str) -> String {
    format!("from /readyz; GET /v1/health: {reason}")
}

pub fn readiness_strip(strip: &str, flips: usize) -> String {
    format!("history {strip}  ({flips} flips)")
}

pub fn readiness_unavailable(reason: &str) -> String {
    format!("No readiness answer: {reason}")
}

pub const LABEL_CHECK: &str = "check";
pub const LABEL_STATE: &str = "state";
pub const LABEL_SECTION: &str = "§";
pub const LABEL_MESSAGE: &str = "message";
pub const LABEL_FULL_MESSAGE: &str = "detail";
pub const LABEL_MISSING: &str = "missing";
pub const LABEL_KIND: &str = "kind";
pub const LABEL_RUNBOOK: &str = "runbook";

// ---- queue ----
pub const QUEUE_RUNS: &str = "Queued, running, blocked and failed runs";
pub const QUEUE_COUNTS: &str = "Queue";
pub const KIND_QUEUED: &str = "queued";
pub const KIND_RUNNING: &str = "running";
pub const KIND_BLOCKED: &str = "blocked";
pub const KIND_FAILED: &str = "failed";
pub const HUMAN_TASK: &str = "human task";
pub const QUEUED_WORKERS_BUSY: &str = "waiting; workers are busy";
pub const STUCK: &str = "STUCK";
pub const LABEL_WORKERS: &str = "workers";
pub const LABEL_EXPIRED_LEASES: &str = "expired leases";
pub const LABEL_BACKLOG: &str = "backlog";

pub fn stuck_queued_no_worker(threshold: Duration) -> String {
    format!("queued > {}, no worker", format::duration(threshold))
}
pub fn stuck_queued_idle(threshold: Duration) -> String {
    format!("queued > {}, workers idle", format::duration(threshold))
}
pub fn stuck_lease_expired(ago: Duration) -> String {
    format!("lease expired {} ago", format::duration(ago))
}
pub fn stuck_silent(silence: Duration) -> String {
    format!("no checkpoint for {}", format::duration(silence))
}
pub fn stuck_blocked_overdue(over: Duration) -> String {
    format!("blocked {} past expires_at", format::duration(over))
}
pub fn stuck_escalated(over: Duration) -> String {
    format!("escalated, {} past expires_at", format::duration(over))
}

pub fn backlog_caption(samples: usize, trend: Option<(i64, i64)>) -> String {
    match trend {
        Some((first, last)) if last > first => {
            format!("last {samples} polls: rising {first} → {last}")
        }
        Some((first, last)) if last < first => {
            format!("last {samples} polls: falling {first} → {last}")
        }
        Some((_, last)) => format!("last {samples} polls: flat at {last}"),
        None => format!("last {samples} polls: no counts"),
    }
}

pub fn queue_counts(
    queued: &str,
    running: &str,
    blocked: &str,
    failed: &str,
    workers: &str,
    expired: &str,
) -> String {
    format!(
        "{queued} queued · {running} running · {blocked} blocked · {failed} failed · {workers} {LABEL_WORKERS} · {expired} {LABEL_EXPIRED_LEASES}"
    )
}

// ---- runs ----
pub const RUNS_TITLE: &str = "Runs";
pub const FILTER_ALL: &str = "all";

pub fn runs_title(filter: &str, search: &str, shown: usize, total: Option<u64>) -> String {
    let total = total.map(|t| format!(" of {t}")).unwrap_or_default();
    if search.is_empty() {
        format!("{RUNS_TITLE} [status: {filter}] {shown}{total}")
    } else {
        format!("{RUNS_TITLE} [status: {filter}] [/{search}] {shown}{total}")
    }
}

pub const DRILL_RUN: &str = "Run";
pub const DRILL_TRACE: &str = "Trace";
pub const DRILL_CHECKPOINTS: &str = "Checkpoints";
pub const DRILL_AUDIT: &str = "Audit events";
pub const DRILL_HINT: &str = "⏎ deeper  ⎋ back  c capture  y copy id  x cancel";

pub const LABEL_STATUS: &str = "status";
pub const LABEL_WORKFLOW: &str = "workflow";
pub const LABEL_STEP: &str = "step";
pub const LABEL_CREATED: &str = "created";
pub const LABEL_UPDATED: &str = "updated";
pub const LABEL_ERROR: &str = "error";
pub const LABEL_CONTINUATION: &str = "continuation";
pub const LABEL_TRACE_EVENTS: &str = "trace events";
pub const LABEL_INPUT: &str = "input";
pub const LABEL_OUTPUT: &str = "output";

// ---- human tasks ----
pub const TASKS_TITLE: &str = "Human tasks (earliest deadline first)";
pub const TASK_PENDING: &str = "pending";
pub const TASK_ESCALATED: &str = "escalated";
pub const TASK_SOON: &str = "expiring";
pub const TASK_OVERDUE: &str = "OVERDUE";

pub fn expires_in(duration: Duration) -> String {
    format!("in {}", format::duration(duration))
}
pub fn expired_ago(duration: Duration) -> String {
    format!("{} ago", format::duration(duration))
}

pub fn tasks_summary(pending: usize, escalated: usize, soon: usize, overdue: usize) -> String {
    format!("{pending} pending · {escalated} escalated · {soon} expiring soon · {overdue} overdue")
}

// ---- events ----
pub const EVENTS_TITLE: &str = "Service events (newest first)";
pub const OBSERVED: &str = "seen by kneo-tui";
pub const EVENT_OBSERVED: &str = "tui.observed";

pub fn observed_health(health: &str) -> String {
    format!("{OBSERVED}: the service is now {health}")
}

pub fn ago(duration: Duration) -> String {
    format!("{} ago", format::duration(duration))
}

// ---- help, confirm, log ----
pub const HELP_TITLE: &str = "Keys (? or Esc to close)";
pub const CONFIRM_TITLE: &str = "Confirm";
pub const CONFIRM_KEYS: &str = "y / ⏎ yes    n / Esc no";
pub const LOG_TITLE: &str = "Action log (L or Esc to close)";
pub const LOG_EMPTY: &str = "No action yet.";

pub fn confirm_capture(run_id: &str) -> String {
    format!("Capture an escalation bundle for run {run_id} with kneo-ops?")
}
pub fn confirm_cancel(run_id: &str) -> String {
    format!("Cancel run {run_id}? The service stops it at its next step (needs runs:write).")
}

// ---- actions ----
pub const READ_ONLY: &str = "read-only: actions are disabled (--read-only)";
pub const OFFLINE: &str = "not available when reading a bundle";
pub const NO_RUN_SELECTED: &str = "select a run first";
pub const NOTHING_TO_COPY: &str = "nothing selected to copy";
pub const CANNOT_WRITE: &str = "this key lacks runs:write: cancel refused before sending";
pub const KNEO_OPS_MISSING: &str =
    "kneo-ops was found neither next to kneo-tui nor on PATH; install it to capture bundles";

pub fn copied(id: &str) -> String {
    format!("copied {id} (OSC 52)")
}
pub fn capture_started(run_id: &str, path: &str) -> String {
    format!("capture of run {run_id} started → {path}")
}
pub fn capture_done(path: &str, health: &str, ok: usize, items: usize) -> String {
    format!("bundle written: {path} ({ok}/{items} items ok; service {health})")
}
pub fn capture_failed(reason: &str) -> String {
    format!("capture failed: {reason}")
}
pub fn cancel_sent(run_id: &str) -> String {
    format!("cancel sent for run {run_id}")
}
pub fn cancel_done(run_id: &str, status: &str) -> String {
    format!("run {run_id} cancelled (status {status})")
}
pub fn cancel_failed(run_id: &str, reason: &str) -> String {
    format!("cancel of run {run_id} failed: {reason}")
}
pub fn local_key(url: &str, key: &str) -> String {
    format!("local server {url}; its admin key: {key} (L shows it again)")
}
pub fn refreshed() -> String {
    "refresh requested".into()
}
pub fn unknown_command(command: &str) -> String {
    format!("unknown command :{command} (? lists them)")
}

// ---- key help descriptions ----
pub const HELP_SCREENS: &str = "Triage Readiness Queue Runs Tasks Events";
pub const HELP_NEXT_SCREEN: &str = "next / previous screen";
pub const HELP_MOVE: &str = "move the selection";
pub const HELP_PAGE: &str = "move a page";
pub const HELP_TOP_BOTTOM: &str = "first / last row";
pub const HELP_ENTER: &str = "open: a verdict (a finding: its runbook, § refs); a run";
pub const HELP_BACK: &str = "close a verdict or a § section; go back up the drill-down";
pub const HELP_SEARCH: &str = "search the runs list (⏎ keeps it, Esc clears it)";
pub const HELP_STATUS: &str = "cycle the runs status filter";
pub const HELP_COMMAND: &str = "command line, then one of:";
pub const HELP_COMMANDS_LABEL: &str = "  :";
pub const HELP_COMMANDS_SCREENS: &str = "triage readiness queue runs [status|all] tasks events";
pub const HELP_COMMANDS_ACTIONS: &str = "refresh capture copy cancel log help quit";
pub const HELP_REFRESH: &str = "poll now";
pub const HELP_CAPTURE: &str = "capture a bundle for the selected run (kneo-ops)";
pub const HELP_COPY: &str = "copy the selected id (OSC 52 clipboard)";
pub const HELP_CANCEL: &str = "cancel the selected run (asks; needs runs:write)";
pub const HELP_LOG: &str = "show the action log";
pub const HELP_HELP: &str = "this help";
pub const HELP_SCROLL: &str = "scroll the verdict and runbook pane (Triage)";
pub const HELP_QUIT: &str = "quit (the terminal is restored)";
pub const HELP_CONFIRM: &str = "in a confirmation: yes / no";
pub const HELP_TEXT: &str = "in the : or / line: erase, run, cancel";
