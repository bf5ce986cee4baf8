//! The service's own history (`GET /v1/service/events`, kneo-server): starts and 5xx bursts.
//!
//! A start is evidence, not a symptom: a single deliberate restart, a restore or a rollback is a
//! note. A restart *loop* is a symptom: at least [`LOOP_STARTS`] starts in the window, of which at
//! least [`LOOP_CRASHES`] came with crash evidence (the process before it on that host did not
//! stop cleanly, or 5xx bursts or readiness failures came between the two starts). A 5xx burst
//! that a readiness failure explains (the store was down, and `/readyz` said so) is a note too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::super::{Level, Probes, Thresholds, Verdict, human_duration, parse_time};

/// Starts in the window that make a loop, with at least [`LOOP_CRASHES`] of them after a crash.
/// Three: a kill and a restart, then a restore (which loses the clean stop before it) are two
/// starts "after a crash" that an operator made on purpose.
const LOOP_STARTS: usize = 3;
const LOOP_CRASHES: usize = 3;
/// Readiness changes and bursts are recorded by different parts of the service, a monitor tick
/// apart: a burst this close to a readiness failure is explained by it.
const SLACK: chrono::Duration = chrono::Duration::seconds(30);

struct Event<'a> {
    at: DateTime<Utc>,
    kind: &'a str,
    host: Option<&'a str>,
    details: &'a Value,
}

/// Every event with a readable time, oldest first.
fn timeline(probes: &Probes) -> Vec<Event<'_>> {
    let mut events: Vec<Event<'_>> = probes
        .service_events
        .as_ref()
        .and_then(|reply| reply.value())
        .map(|list| list.events.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|event| {
            Some(Event {
                at: parse_time(event.created_at.as_deref()?)?,
                kind: event.event_type.as_str(),
                host: event.host.as_deref(),
                details: &event.details,
            })
        })
        .collect();
    events.sort_by_key(|event| event.at);
    events
}

fn ready(event: &Event<'_>) -> Option<bool> {
    (event.kind == "readiness.changed")
        .then(|| event.details.get("ready").and_then(Value::as_bool))
        .flatten()
}

fn pid(event: &Event<'_>) -> Option<i64> {
    event.details.get("pid").and_then(Value::as_i64)
}

/// How one start came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartKind {
    /// No earlier start on this host is recorded: the first start of this store.
    First,
    Clean,
    /// The process before it did not stop cleanly, or failures came between the two starts.
    AfterCrash,
}

fn starts<'a>(events: &'a [Event<'a>]) -> Vec<(&'a Event<'a>, StartKind)> {
    let mut found = Vec::new();
    for (index, start) in events.iter().enumerate() {
        if start.kind != "service.started" {
            continue;
        }
        let before = &events[..index];
        let previous = before
            .iter()
            .rposition(|e| e.kind == "service.started" && e.host == start.host);
        let kind = match previous {
            None => StartKind::First,
            Some(previous) => {
                let between = &before[previous + 1..];
                let previous_pid = pid(&before[previous]);
                let stopped = between.iter().any(|e| {
                    e.kind == "service.stopped"
                        && e.host == start.host
                        && (previous_pid.is_none() || pid(e) == previous_pid)
                });
                let failures = between
                    .iter()
                    .any(|e| e.kind == "http.5xx_burst" || ready(e) == Some(false));
                if stopped && !failures {
                    StartKind::Clean
                } else {
                    StartKind::AfterCrash
                }
            }
        };
        found.push((start, kind));
    }
    found
}

/// The spans (start, end) in which readiness was failing, the last one open until `now`.
fn not_ready_spans(
    events: &[Event<'_>],
    now: DateTime<Utc>,
    ready_now: Option<bool>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for event in events {
        match (ready(event), open) {
            (Some(false), None) => open = Some(event.at),
            (Some(true), Some(since)) => {
                spans.push((since, event.at));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(since) = open {
        spans.push((since, now));
    } else if ready_now == Some(false) {
        // Failing now, with the change not (yet) recorded.
        spans.push((now - SLACK, now));
    }
    spans
}

fn explained(burst: &Event<'_>, spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> bool {
    let window = burst
        .details
        .get("window_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(5.0);
    let from = burst.at - chrono::Duration::milliseconds((window * 1000.0) as i64) - SLACK;
    let to = burst.at + SLACK;
    spans
        .iter()
        .any(|(start, end)| *start <= to && *end >= from)
}

fn recent(probes: &Probes, thresholds: &Thresholds, at: DateTime<Utc>) -> bool {
    (probes.observed_at - at)
        .to_std()
        .is_ok_and(|age| age <= thresholds.recent_events)
        || at > probes.observed_at
}

fn burst_count(burst: &Event<'_>) -> i64 {
    burst
        .details
        .get("count")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Unexplained 5xx bursts and restart loops.
pub(crate) fn findings(probes: &Probes, thresholds: &Thresholds) -> Vec<Verdict> {
    let events = timeline(probes);
    let window = human_duration(thresholds.recent_events);
    let ready_now = probes.readiness().map(|r| r.ready);
    let spans = not_ready_spans(&events, probes.observed_at, ready_now);
    let mut findings = Vec::new();
    let bursts: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| e.kind == "http.5xx_burst" && recent(probes, thresholds, e.at))
        .filter(|e| !explained(e, &spans))
        .collect();
    if !bursts.is_empty() {
        let total: i64 = bursts.iter().map(|b| burst_count(b)).sum();
        findings.push(
            Verdict::new(4, "symptom.5xx_burst", Level::Warn, format!("{} burst(s) of 5xx answers in the last {window}", bursts.len()))
                .with_detail(format!(
                    "{total} server errors in total, with no readiness failure to explain them; the causes are in the server log (target kneo_serv.service)"
                ))
                .with_section("capture and escalate"),
        );
    }
    let starts = starts(&events);
    let in_window: Vec<&(&Event<'_>, StartKind)> = starts
        .iter()
        .filter(|(start, _)| recent(probes, thresholds, start.at))
        .collect();
    let crashes = in_window
        .iter()
        .filter(|(_, kind)| *kind == StartKind::AfterCrash)
        .count();
    if in_window.len() >= LOOP_STARTS && crashes >= LOOP_CRASHES {
        findings.push(
            Verdict::new(4, "symptom.restart_loop", Level::Warn, format!("restart loop: {} starts in the last {window}, {crashes} after a crash", in_window.len()))
                .with_detail(
                    "the process keeps dying: read the last stderr lines before each start (the supervisor's log), and look for a \
                     running run with a high queue.attempts in /recovery (a run that crashes the process, § 5.6)",
                )
                .with_section("1"),
        );
    }
    findings
}

/// The latest start and the bursts a readiness failure explains.
pub(crate) fn notes(probes: &Probes, thresholds: &Thresholds) -> Vec<Verdict> {
    let events = timeline(probes);
    let ready_now = probes.readiness().map(|r| r.ready);
    let spans = not_ready_spans(&events, probes.observed_at, ready_now);
    let mut notes = Vec::new();
    let starts = starts(&events);
    let in_window = starts
        .iter()
        .filter(|(start, _)| recent(probes, thresholds, start.at))
        .count();
    if let Some((start, kind)) = starts
        .iter()
        .rev()
        .find(|(start, _)| recent(probes, thresholds, start.at))
    {
        let ago = human_duration(
            (probes.observed_at - start.at)
                .to_std()
                .unwrap_or(Duration::ZERO),
        );
        let how = match kind {
            StartKind::First => "its first start on this store",
            StartKind::Clean => "after a clean stop",
            StartKind::AfterCrash => "after a crash, a kill or failures (no clean stop before it)",
        };
        let version = start
            .details
            .get("version")
            .and_then(Value::as_str)
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default();
        let more = if in_window > 1 {
            format!(
                "; {in_window} starts in the last {}",
                human_duration(thresholds.recent_events)
            )
        } else {
            String::new()
        };
        notes.push(Verdict::note(
            "note.started",
            format!("the service started {ago} ago{version}, {how}{more}"),
        ));
    }
    let explained_bursts: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| e.kind == "http.5xx_burst" && recent(probes, thresholds, e.at))
        .filter(|e| explained(e, &spans))
        .collect();
    if !explained_bursts.is_empty() {
        let total: i64 = explained_bursts.iter().map(|b| burst_count(b)).sum();
        notes.push(Verdict::note(
            "note.5xx_during_outage",
            format!(
                "{total} server errors during a readiness failure ({} burst(s)): the failing store explains them",
                explained_bursts.len()
            ),
        ));
    }
    notes
}
