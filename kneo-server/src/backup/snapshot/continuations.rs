//! Which continuations belong to a snapshot: exactly those whose run, in the snapshot, is
//! `blocked` on them. Everything else found in the store is left out and said why; a blocked run
//! whose continuation is nowhere is a warning (restored, it could not be resumed).

use std::collections::{BTreeMap, BTreeSet};

use crate::backup::BackupError;
use crate::backup::format::{
    ConsistencyWarning, ContinuationSummary, ExcludedContinuation, Family, is_safe_continuation_id,
    parse_continuation,
};
use crate::store::RunStatus;

/// A run as the snapshot has it: its status and the continuation its document names.
pub struct RunState {
    pub status: String,
    pub continuation_id: Option<String>,
}

/// Collects the decision for every continuation found.
pub struct Reconciler {
    /// Whose continuation documents these are.
    family: Family,
    /// Blocked runs of the snapshot: run id → the continuation it is blocked on.
    blocked: BTreeMap<String, Option<String>>,
    /// Continuation ids included (as files) so far.
    included: BTreeSet<String>,
    /// Continuation ids archived as rows of a table.
    in_table: BTreeSet<String>,
    summary: ContinuationSummary,
}

/// What to do with one continuation.
pub enum Decision {
    Include,
    Exclude,
}

impl Reconciler {
    pub fn new(family: Family) -> Reconciler {
        Reconciler {
            family,
            blocked: BTreeMap::new(),
            included: BTreeSet::new(),
            in_table: BTreeSet::new(),
            summary: ContinuationSummary::default(),
        }
    }

    /// A continuation kept as a row of one of the family's tables (kneo-serv on Postgres): it is
    /// in the archive with its table, whatever its run.
    pub fn held_in_table(&mut self, id: &str) {
        self.in_table.insert(id.to_string());
    }

    /// Notes a run of the snapshot while the runs table is exported.
    pub fn observe_run(&mut self, run_id: &str, status: &str, continuation_id: Option<String>) {
        if status == RunStatus::Blocked.as_str() {
            self.blocked.insert(run_id.to_string(), continuation_id);
        }
    }

    /// A file in the continuation directory that is not `<id>.json` (an in-flight temporary file,
    /// a probe, anything else).
    pub fn foreign_file(&mut self, name: &str) {
        let temporary = name.starts_with('.') || name.contains(".tmp-");
        self.exclude(
            name,
            None,
            if temporary {
                "temporary_file"
            } else {
                "bad_name"
            },
            if temporary {
                "an unfinished write or a probe file, not a continuation".into()
            } else {
                "continuation files are named <id>.json with a letters, digits, - and _ id".into()
            },
        );
    }

    /// Decides on one continuation named `id` with content `bytes`; `run_state` looks its run up
    /// in the snapshot.
    pub fn consider(
        &mut self,
        id: &str,
        bytes: &[u8],
        run_state: &mut dyn FnMut(&str) -> Result<Option<RunState>, BackupError>,
    ) -> Result<Decision, BackupError> {
        if !is_safe_continuation_id(id) {
            self.exclude(id, None, "bad_name", "not a valid continuation id".into());
            return Ok(Decision::Exclude);
        }
        let continuation = match parse_continuation(self.family, bytes) {
            Ok(continuation) => continuation,
            Err(error) => {
                self.exclude(
                    id,
                    None,
                    "unreadable",
                    format!(
                        "not a continuation document ({} bytes): {error}",
                        bytes.len()
                    ),
                );
                return Ok(Decision::Exclude);
            }
        };
        if continuation.id != id {
            self.exclude(
                id,
                continuation.run_id.clone(),
                "bad_name",
                format!(
                    "the record is named {id} but holds continuation {:?}",
                    continuation.id
                ),
            );
            return Ok(Decision::Exclude);
        }
        let Some(run_id) = continuation.run_id.clone() else {
            self.exclude(
                id,
                None,
                "run_missing",
                "the continuation names no run, so no run can be resumed from it".into(),
            );
            return Ok(Decision::Exclude);
        };
        match run_state(&run_id)? {
            None => {
                self.exclude(
                    id,
                    Some(run_id.clone()),
                    "run_missing",
                    format!("run {run_id} is not in the snapshot (created after it, or deleted)"),
                );
                Ok(Decision::Exclude)
            }
            Some(run) if run.status != RunStatus::Blocked.as_str() => {
                self.exclude(
                    id,
                    Some(run_id.clone()),
                    "run_not_blocked",
                    format!(
                        "run {run_id} is {} in the snapshot: the continuation is stale, or was written just before the run blocked after the snapshot",
                        run.status
                    ),
                );
                Ok(Decision::Exclude)
            }
            Some(run) if run.continuation_id.as_deref() != Some(id) => {
                self.exclude(
                    id,
                    Some(run_id.clone()),
                    "other_continuation",
                    format!(
                        "run {run_id} is blocked on {:?} in the snapshot",
                        run.continuation_id
                    ),
                );
                Ok(Decision::Exclude)
            }
            Some(_) => {
                self.included.insert(id.to_string());
                Ok(Decision::Include)
            }
        }
    }

    /// Blocked runs whose continuation has not been included yet.
    pub fn unmatched(&self) -> Vec<(String, Option<String>)> {
        self.blocked
            .iter()
            .filter(|(_, continuation)| {
                continuation
                    .as_ref()
                    .is_none_or(|id| !self.included.contains(id) && !self.in_table.contains(id))
            })
            .map(|(run, continuation)| (run.clone(), continuation.clone()))
            .collect()
    }

    pub fn warn(
        &mut self,
        kind: &str,
        run_id: &str,
        continuation_id: Option<&str>,
        detail: String,
    ) {
        self.summary.warnings.push(ConsistencyWarning {
            kind: kind.into(),
            run_id: run_id.into(),
            continuation_id: continuation_id.map(str::to_string),
            detail,
        });
    }

    fn exclude(&mut self, id: &str, run_id: Option<String>, reason: &str, detail: String) {
        self.summary.excluded.push(ExcludedContinuation {
            id: id.into(),
            run_id,
            reason: reason.into(),
            detail,
        });
    }

    /// The summary for the manifest, in a stable order.
    pub fn finish(mut self) -> ContinuationSummary {
        self.summary.count = self.included.len() as u64;
        self.summary
            .excluded
            .sort_by(|a, b| (&a.id, &a.reason).cmp(&(&b.id, &b.reason)));
        self.summary
            .warnings
            .sort_by(|a, b| (&a.run_id, &a.kind).cmp(&(&b.run_id, &b.kind)));
        self.summary
    }
}
