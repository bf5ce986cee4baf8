//! The walk itself: one module per stage, each a pure function of the probes, plus the tool's
//! access ([`access`]), the service's history ([`history`]: starts, bursts) and what other
//! callers hit ([`callers`]).

mod access;
mod callers;
mod history;
mod liveness;
mod queue;
mod readiness;
mod symptoms;

use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::wire::{Run, RunList};
use kneo_client::{CallError, Reply};

use super::{Health, Level, Probes, Thresholds, Verdict, parse_time};

pub(super) use access::{AccessView, access};
pub(super) use liveness::liveness;
pub(super) use queue::queue;
pub(super) use readiness::readiness;
pub(super) use symptoms::symptoms;

/// The service's state, from the four stages.
pub(super) fn health(probes: &Probes, stages: &[Verdict], access: &AccessView) -> Health {
    if access.unreached {
        return Health::Unknown;
    }
    match probes.healthz.error() {
        Some(CallError::Timeout {
            connected: true, ..
        }) => return Health::Hung,
        Some(CallError::Unreachable { refused: true, .. }) => return Health::Down,
        Some(CallError::Status { status, .. }) if *status >= 500 => return Health::Down,
        _ => {}
    }
    match probes.readyz.as_ref().and_then(|reply| reply.error()) {
        Some(CallError::Timeout {
            connected: true, ..
        }) => return Health::Hung,
        Some(error) if error.is_no_answer() => return Health::Down,
        _ => {}
    }
    if stages.iter().any(|stage| stage.level != Level::Ok) {
        Health::Degraded
    } else {
        Health::Healthy
    }
}

/// The notes of the walk: starts, explained bursts, tasks inside their grace, escalated tasks.
pub(super) fn notes(probes: &Probes, thresholds: &Thresholds) -> Vec<Verdict> {
    if probes.not_answering() {
        return Vec::new();
    }
    let mut notes = history::notes(probes, thresholds);
    notes.extend(queue::notes(probes, thresholds));
    notes
}

/// Why the stages after `/healthz` cannot be judged, when they cannot.
pub(super) fn silence(probes: &Probes, access: &AccessView) -> Option<&'static str> {
    if access.unreached {
        return Some("the tool cannot reach the service from here (see the tool's access)");
    }
    match probes.healthz.error() {
        Some(CallError::Timeout {
            connected: true, ..
        }) => Some("the service is not answering (hung)"),
        Some(error) if error.is_no_answer() => Some("the service is not answering"),
        _ => None,
    }
}

/// How long ago `time` was, as seen from `now` (zero for the future).
pub(super) fn age(now: DateTime<Utc>, time: &str) -> Option<Duration> {
    let then = parse_time(time)?;
    Some((now - then).to_std().unwrap_or(Duration::ZERO))
}

pub(super) fn ms(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

pub(super) fn listed(list: &Option<Reply<RunList>>) -> &[Run] {
    list.as_ref()
        .and_then(|reply| reply.value())
        .map(|list| list.runs.as_slice())
        .unwrap_or_default()
}

pub(super) fn known(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// Up to five ids, then `… and N more`.
pub(super) fn sample_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.collect();
    let shown = ids.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > 5 {
        format!("{shown} … and {} more", ids.len() - 5)
    } else {
        shown
    }
}

/// The path part of a URL, for messages (`/v1/runs?status=queued` → `/v1/runs`).
pub(crate) fn path_of(url: &str) -> String {
    let without_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let path = without_scheme
        .find('/')
        .map(|start| &without_scheme[start..])
        .unwrap_or("/");
    path.split('?').next().unwrap_or(path).to_string()
}
