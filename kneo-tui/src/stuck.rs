//! Stuck-run detection for the Queue screen, run by run (DESIGN.md § 5, stage 3), with the same
//! thresholds as the triage tree (`kneo_triage::triage::Thresholds`, set from the command line):
//!
//! - queued longer than `queued_max_age` while workers are zero or idle → § 5.1;
//! - running with an expired lease, or without a checkpoint for longer than `heartbeat` → § 5.3;
//! - blocked on a human task past its `expires_at` (plus `blocked_grace`) → § 8.2.
//!
//! The tree says *that* work is stuck; these rows say *which* run, how old, and why.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::wire::{HumanTask, Run, RunList};
use kneo_triage::triage::{Probes, Thresholds, parse_time};

use crate::format;
use crate::strings;

/// Which list a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKind {
    Queued,
    Running,
    Blocked,
    Failed,
}

impl RowKind {
    pub fn label(self) -> &'static str {
        match self {
            RowKind::Queued => strings::KIND_QUEUED,
            RowKind::Running => strings::KIND_RUNNING,
            RowKind::Blocked => strings::KIND_BLOCKED,
            RowKind::Failed => strings::KIND_FAILED,
        }
    }
}

/// One run on the Queue screen.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub kind: RowKind,
    pub run_id: String,
    /// Queued: since created; running: since the last checkpoint; blocked: since the task was
    /// created; failed: since it failed.
    pub age: Option<Duration>,
    /// Set when a stuck rule fires: why, in a few words.
    pub stuck: Option<String>,
    /// The runbook section of the stuck rule (or of the failure).
    pub section: Option<&'static str>,
    /// What the row is about when not stuck: workflow, step, error.
    pub note: String,
}

/// The rows, stuck ones first, then queued, running, blocked, failed; oldest first in each.
pub fn queue_rows(
    probes: &Probes,
    failed: Option<&RunList>,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
) -> Vec<QueueRow> {
    let workers = probes.worker_count();
    let running_count = probes.running_count();
    let mut rows = Vec::new();

    for run in listed(probes.queued_runs.as_ref().and_then(|r| r.value())) {
        let age = run
            .created_at
            .as_deref()
            .or(run.updated_at.as_deref())
            .and_then(|t| format::age_of(now, t));
        let over = age.is_some_and(|age| age > thresholds.queued_max_age);
        let stuck = match (over, workers, running_count) {
            (true, Some(0), _) => Some(strings::stuck_queued_no_worker(thresholds.queued_max_age)),
            (true, _, Some(0)) => Some(strings::stuck_queued_idle(thresholds.queued_max_age)),
            _ => None,
        };
        let note = if over && stuck.is_none() {
            strings::QUEUED_WORKERS_BUSY.to_string()
        } else {
            workflow_of(run)
        };
        rows.push(QueueRow {
            kind: RowKind::Queued,
            run_id: run.run_id.clone(),
            age,
            section: stuck.as_ref().map(|_| "5.1"),
            stuck,
            note,
        });
    }

    for run in listed(probes.running_runs.as_ref().and_then(|r| r.value())) {
        let silence = run
            .updated_at
            .as_deref()
            .and_then(|t| format::age_of(now, t));
        let lease = probes
            .recoveries
            .iter()
            .filter_map(|reply| reply.value())
            .find(|recovery| recovery.run_id == run.run_id)
            .and_then(|recovery| recovery.queue.as_ref())
            .and_then(|queue| queue.lease_expires_at.as_deref())
            .and_then(parse_time);
        let stuck = match (lease, silence) {
            (Some(expiry), _) if expiry < now => Some(strings::stuck_lease_expired(
                (now - expiry).to_std().unwrap_or(Duration::ZERO),
            )),
            (_, Some(silence)) if silence > thresholds.heartbeat => {
                Some(strings::stuck_silent(silence))
            }
            _ => None,
        };
        let step = run
            .current_step_id
            .clone()
            .or_else(|| run.current_node_id.clone())
            .or_else(|| run.current_step_index.map(|i| format!("#{i}")));
        let note = match step {
            Some(step) => format!("{} @ {step}", workflow_of(run)),
            None => workflow_of(run),
        };
        rows.push(QueueRow {
            kind: RowKind::Running,
            run_id: run.run_id.clone(),
            age: silence,
            section: stuck.as_ref().map(|_| "5.3"),
            stuck,
            note,
        });
    }

    let tasks = probes
        .human_tasks
        .as_ref()
        .and_then(|r| r.value())
        .map(|list| list.tasks.as_slice())
        .unwrap_or_default();
    for task in tasks {
        let overdue = overdue_by(task, now).filter(|over| *over > thresholds.blocked_grace);
        let stuck = overdue.map(|over| {
            if task.is_escalated() {
                strings::stuck_escalated(over)
            } else {
                strings::stuck_blocked_overdue(over)
            }
        });
        rows.push(QueueRow {
            kind: RowKind::Blocked,
            run_id: task.run_id.clone().unwrap_or_else(|| task.id.clone()),
            age: task
                .created_at
                .as_deref()
                .and_then(|t| format::age_of(now, t)),
            section: stuck.as_ref().map(|_| "8.2"),
            stuck,
            note: task
                .workflow_name
                .clone()
                .unwrap_or_else(|| strings::HUMAN_TASK.to_string()),
        });
    }

    for run in listed(failed) {
        let at = run
            .completed_at
            .as_deref()
            .or(run.updated_at.as_deref())
            .and_then(|t| format::age_of(now, t));
        let error = run
            .error
            .as_ref()
            .map(format::error_text)
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| workflow_of(run));
        rows.push(QueueRow {
            kind: RowKind::Failed,
            run_id: run.run_id.clone(),
            age: at,
            stuck: None,
            section: None,
            note: error,
        });
    }

    rows.sort_by(|a, b| {
        b.stuck
            .is_some()
            .cmp(&a.stuck.is_some())
            .then(a.kind.cmp(&b.kind))
            .then_with(|| match a.kind {
                // Failed runs: the most recent first; the rest: the oldest first.
                RowKind::Failed => a.age.cmp(&b.age),
                _ => b.age.cmp(&a.age),
            })
    });
    rows
}

/// How long ago a human task's deadline passed (`None` if it has not, or has none).
pub fn overdue_by(task: &HumanTask, now: DateTime<Utc>) -> Option<Duration> {
    let expires = format::from_epoch(task.expires_at?)?;
    (expires < now).then(|| (now - expires).to_std().unwrap_or(Duration::ZERO))
}

fn listed(list: Option<&RunList>) -> &[Run] {
    list.map(|l| l.runs.as_slice()).unwrap_or_default()
}

fn workflow_of(run: &Run) -> String {
    run.workflow_name
        .clone()
        .or_else(|| run.agent_name.clone())
        .unwrap_or_else(|| "-".into())
}
