//! Runs and the durable queue on SQLite.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction on the single writer connection, which
//! is what makes the claim safe without row locks: only one claimer can be inside at a time.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::connection::{CachedStatements, classify, from_json};
use super::records;
use super::rows::{AuditInsert, PreparedProgress, RunRow};
use crate::clock;
use crate::store::run_filter::{Bound, Dialect, where_clause};
use crate::store::{
    AuditEvent, Claim, ClaimRequest, ClaimResult, CreateOutcome, Expect, IdempotencyBinding, Page,
    QueueCounts, QueueEntry, QueueRecord, QueueStatus, QueueTransition, RunQuery, RunRecord,
    RunStatus, SaveOutcome, StoreError,
};

/// The lease expiry for a lease taken now.
fn lease_expiry(lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    clock::format(clock::now() + lease)
}

pub fn create_run(
    connection: &Connection,
    run: &RunRow,
    queue: Option<&QueueEntry>,
    audit: &[AuditInsert],
    idempotency: Option<&IdempotencyBinding>,
) -> Result<CreateOutcome, StoreError> {
    let transaction = connection;
    if let Some(binding) = idempotency
        && !records::bind_idempotency(transaction, binding, &run.id)?
    {
        return Ok(CreateOutcome::KeyTaken);
    }
    insert_run(transaction, run)?;
    if let Some(entry) = queue {
        let (status, owner, expires, attempts) = match entry {
            QueueEntry::Queued => (QueueStatus::Queued, None, None, 0),
            QueueEntry::Leased { worker_id, lease } => (
                QueueStatus::Running,
                Some(worker_id.as_str()),
                Some(lease_expiry(*lease)),
                1,
            ),
        };
        transaction
            .prepare_cached(
                "INSERT INTO run_queue (run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    run.id,
                    status.as_str(),
                    attempts,
                    owner,
                    expires,
                    run.created_at
                ])
            })
            .map_err(|e| classify(e, "queueing a run"))?;
    }
    records::insert_audit(transaction, audit)?;
    Ok(CreateOutcome::Created)
}

fn insert_run(transaction: &Connection, run: &RunRow) -> Result<(), StoreError> {
    transaction
        .execute_cached(
            "INSERT INTO runs (id, status, created_at, updated_at, deadline_at, workflow_name, document, workflow_kind, session_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![run.id, run.status, run.created_at, run.updated_at, run.deadline_at, run.workflow_name, run.document, run.workflow_kind, run.session_id],
        )
        .map_err(|e| classify(e, "inserting a run"))?;
    Ok(())
}

fn update_run(transaction: &Connection, run: &RunRow) -> Result<(), StoreError> {
    transaction
        .execute_cached(
            "UPDATE runs SET status = ?2, updated_at = ?3, deadline_at = ?4, workflow_name = ?5, document = ?6,
                 workflow_kind = ?7, session_id = ?8
             WHERE id = ?1",
            params![run.id, run.status, run.updated_at, run.deadline_at, run.workflow_name, run.document, run.workflow_kind, run.session_id],
        )
        .map_err(|e| classify(e, "updating a run"))?;
    Ok(())
}

pub fn get_run(connection: &Connection, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    let document: Option<String> = connection
        .prepare_cached("SELECT document FROM runs WHERE id = ?1")
        .and_then(|mut statement| statement.query_row([run_id], |row| row.get(0)).optional())
        .map_err(|e| classify(e, "reading a run"))?;
    document
        .map(|text| from_json(&text, &format!("run {run_id}")))
        .transpose()
}

fn stored_status(transaction: &Connection, run_id: &str) -> Result<Option<RunStatus>, StoreError> {
    let status: Option<String> = transaction
        .prepare_cached("SELECT status FROM runs WHERE id = ?1")
        .and_then(|mut statement| statement.query_row([run_id], |row| row.get(0)).optional())
        .map_err(|e| classify(e, "reading a run status"))?;
    status
        .map(|text| {
            RunStatus::parse(&text).ok_or_else(|| {
                StoreError::corrupt(format!("run {run_id} has unknown status {text:?}"))
            })
        })
        .transpose()
}

/// How the SQLite store spells a run listing's filters (documents are JSON text).
const SQLITE_RUN_FILTER: Dialect = Dialect {
    placeholder: |n| format!("?{n}"),
    has_error: "json_extract(document, '$.error') IS NOT NULL",
    output_text: "json_extract(document, '$.output_text')",
    error_message: "json_extract(document, '$.error.message')",
    contains: |haystack, needle| format!("instr(lower(coalesce({haystack}, '')), {needle}) > 0"),
    // SQLite's lower() folds ASCII only.
    fold: str::to_ascii_lowercase,
};

fn bound_values(bound: Vec<Bound>) -> Vec<rusqlite::types::Value> {
    bound
        .into_iter()
        .map(|value| match value {
            Bound::Text(text) | Bound::Timestamp(text) => rusqlite::types::Value::Text(text),
        })
        .collect()
}

pub fn list_runs(connection: &Connection, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
    let column = query.sort.column();
    let order = query.page.order.sql();
    let (filter, bound) = where_clause(query.status, &query.filter, 4, &SQLITE_RUN_FILTER);
    // The inner query picks the newest `window` rows; the outer one orders and pages inside them.
    let sql = format!(
        "SELECT document FROM (
             SELECT document, {column} AS sort_key, id FROM runs {filter}
             ORDER BY {column} DESC, id DESC LIMIT ?1
         ) ORDER BY sort_key {order}, id {order} LIMIT ?2 OFFSET ?3"
    );
    let mut statement = connection
        .prepare_cached(&sql)
        .map_err(|e| classify(e, "listing runs"))?;
    let window = query.page.window as i64;
    let (limit, offset) = (query.page.limit as i64, query.page.offset as i64);
    let mut values = vec![
        rusqlite::types::Value::Integer(window),
        rusqlite::types::Value::Integer(limit),
        rusqlite::types::Value::Integer(offset),
    ];
    values.extend(bound_values(bound));
    let rows: Vec<String> = statement
        .query_map(rusqlite::params_from_iter(values), |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(|e| classify(e, "listing runs"))?;
    let items = rows
        .iter()
        .map(|text| from_json(text, "a listed run"))
        .collect::<Result<Vec<RunRecord>, _>>()?;
    let (filter, bound) = where_clause(query.status, &query.filter, 1, &SQLITE_RUN_FILTER);
    let total: i64 = connection
        .prepare_cached(&format!("SELECT COUNT(*) FROM runs {filter}"))
        .and_then(|mut statement| {
            statement.query_row(rusqlite::params_from_iter(bound_values(bound)), |row| {
                row.get(0)
            })
        })
        .map_err(|e| classify(e, "counting runs"))?;
    Ok(Page { items, total })
}

/// Whether the stored status lets this write through.
pub fn expectation_holds(expect: Expect, current: Option<RunStatus>) -> bool {
    match (expect, current) {
        (_, None) => false,
        (Expect::NonTerminal, Some(status)) => !status.is_terminal(),
        (Expect::Status(wanted), Some(status)) | (Expect::Reopen(wanted), Some(status)) => {
            status == wanted
        }
    }
}

pub fn save_progress(
    connection: &Connection,
    progress: &PreparedProgress,
) -> Result<SaveOutcome, StoreError> {
    let transaction = connection;
    let run = &progress.run;
    let current = stored_status(transaction, &run.id)?;
    if !expectation_holds(progress.expect, current) {
        return Ok(SaveOutcome::Refused { current });
    }
    if let Some(holder) = &progress.lease_holder {
        let owner: Option<Option<String>> = transaction
            .query_row_cached(
                "SELECT lease_owner FROM run_queue WHERE run_id = ?1 AND status = 'running'",
                [&run.id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| classify(e, "checking a lease"))?;
        if owner.flatten().as_deref() != Some(holder.as_str()) {
            return Ok(SaveOutcome::LeaseLost);
        }
    }
    if let Some(binding) = &progress.idempotency
        && !records::bind_idempotency(transaction, binding, &run.id)?
    {
        return Ok(SaveOutcome::KeyTaken);
    }
    update_run(transaction, run)?;
    records::insert_trace(transaction, &run.id, &progress.trace)?;
    records::insert_checkpoints(transaction, &run.id, &progress.checkpoints)?;
    records::insert_audit(transaction, &progress.audit)?;
    if let Some(transition) = &progress.queue {
        apply_queue_transition(transaction, &run.id, transition)?;
    }
    Ok(SaveOutcome::Saved)
}

fn apply_queue_transition(
    transaction: &Connection,
    run_id: &str,
    transition: &QueueTransition,
) -> Result<(), StoreError> {
    let now = clock::now_text();
    let result = match transition {
        QueueTransition::Finish { status, error } => transaction.execute_cached(
            "UPDATE run_queue SET status = ?2, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?3,
                 last_error = COALESCE(?4, last_error)
             WHERE run_id = ?1",
            params![run_id, status.as_str(), now, error],
        ),
        QueueTransition::Enqueue => transaction.execute_cached(
            "INSERT INTO run_queue (run_id, status, attempts, enqueued_at, updated_at) VALUES (?1, 'queued', 0, ?2, ?2)
             ON CONFLICT (run_id) DO UPDATE SET status = 'queued', attempts = 0, lease_owner = NULL,
                 lease_expires_at = NULL, enqueued_at = ?2, updated_at = ?2",
            params![run_id, now],
        ),
        QueueTransition::Lease { worker_id, lease } => transaction.execute_cached(
            "INSERT INTO run_queue (run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at)
             VALUES (?1, 'running', 1, ?2, ?3, ?4, ?4)
             ON CONFLICT (run_id) DO UPDATE SET status = 'running', attempts = run_queue.attempts + 1,
                 lease_owner = ?2, lease_expires_at = ?3, updated_at = ?4",
            params![run_id, worker_id, lease_expiry(*lease), now],
        ),
    };
    result.map_err(|e| classify(e, "updating a queue record"))?;
    Ok(())
}

/// The lease owner whose leftover leases a claim takes again (`None` matches nothing).
fn own_leases(request: &ClaimRequest) -> Option<&str> {
    request
        .reclaim_own_leases
        .then_some(request.worker_id.as_str())
}

pub fn claim_runs(
    connection: &Connection,
    request: &ClaimRequest,
) -> Result<ClaimResult, StoreError> {
    let transaction = connection;
    let now = clock::now_text();
    // Some candidates are skipped (finished, blocked, dead-lettered), so look further than
    // `limit` to still fill the claim.
    let wanted = (request.limit * 4 + 8) as i64;
    // Runs whose lease expired (a worker died) first, then the queued ones oldest first. Two
    // queries rather than one with OR: each walks the (status, enqueued_at) index in order and
    // stops at the limit, where the OR sorted every queued run on each claim.
    let mut candidates = claim_candidates(
        transaction,
        "SELECT run_id, status, attempts FROM run_queue
         WHERE status = 'running' AND (lease_expires_at < ?1 OR lease_owner = ?3)
         ORDER BY enqueued_at, rowid LIMIT ?2",
        params![now, wanted, own_leases(request)],
    )?;
    let room = wanted - candidates.len() as i64;
    if room > 0 {
        candidates.extend(claim_candidates(
            transaction,
            "SELECT run_id, status, attempts FROM run_queue
             WHERE status = 'queued'
             ORDER BY enqueued_at, rowid LIMIT ?1",
            params![room],
        )?);
    }
    let mut result = ClaimResult::default();
    for (run_id, queue_status, attempts) in candidates {
        if result.claimed.len() >= request.limit {
            break;
        }
        let Some(mut run) = get_run(transaction, &run_id)? else {
            transaction
                .execute_cached("DELETE FROM run_queue WHERE run_id = ?1", [&run_id])
                .map_err(|e| classify(e, "dropping an orphaned queue record"))?;
            continue;
        };
        if run.status.is_terminal() || run.status == RunStatus::Blocked {
            // Cancelled while queued, or finished by a writer that died before closing the record.
            apply_queue_transition(
                transaction,
                &run_id,
                &QueueTransition::Finish {
                    status: QueueStatus::Completed,
                    error: None,
                },
            )?;
            continue;
        }
        let lease_expired = queue_status == "running";
        if lease_expired && request.max_attempts > 0 && attempts >= i64::from(request.max_attempts)
        {
            dead_letter(transaction, &mut run, attempts, &now)?;
            result.dead_lettered.push(run);
            continue;
        }
        transaction
            .prepare_cached(
                "UPDATE run_queue SET status = 'running', attempts = attempts + 1, lease_owner = ?2,
                     lease_expires_at = ?3, updated_at = ?4
                 WHERE run_id = ?1",
            )
            .and_then(|mut statement| {
                statement.execute(params![run_id, request.worker_id, lease_expiry(request.lease), now])
            })
            .map_err(|e| classify(e, "claiming a run"))?;
        result.claimed.push(Claim {
            run,
            attempt: attempts + 1,
        });
    }
    Ok(result)
}

/// Queue records `(run_id, status, attempts)` that `sql` selects.
fn claim_candidates(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| {
            statement
                .query_map(parameters, |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
        })
        .map_err(|e| classify(e, "finding runs to claim"))
}

/// Fails a run whose lease expired once too often, with the reason on the run and an audit event.
fn dead_letter(
    transaction: &Connection,
    run: &mut RunRecord,
    attempts: i64,
    now: &str,
) -> Result<(), StoreError> {
    let message = format!(
        "Dead-lettered: the run's worker lease expired {attempts} time(s) without the run finishing \
         (KNEO_SERV_QUEUE_MAX_ATTEMPTS); see runbook § 5.6"
    );
    run.status = RunStatus::Failed;
    run.error =
        Some(serde_json::json!({"type": "dead_letter", "message": message, "attempts": attempts}));
    run.updated_at = now.to_string();
    run.completed_at = Some(now.to_string());
    update_run(transaction, &RunRow::new(run)?)?;
    apply_queue_transition(
        transaction,
        &run.id,
        &QueueTransition::Finish {
            status: QueueStatus::Failed,
            error: Some(message),
        },
    )?;
    let event = AuditEvent {
        id: clock::new_id(),
        event_type: "run.dead_lettered".into(),
        run_id: Some(run.id.clone()),
        continuation_id: None,
        actor: "system".into(),
        metadata: serde_json::json!({"attempts": attempts}),
        created_at: now.to_string(),
    };
    records::insert_audit(transaction, &[AuditInsert::new(&event)?])
}

pub fn renew_lease(
    connection: &Connection,
    run_id: &str,
    worker_id: &str,
    lease: Duration,
) -> Result<bool, StoreError> {
    let changed = connection
        .execute_cached(
            "UPDATE run_queue SET lease_expires_at = ?3, updated_at = ?4
             WHERE run_id = ?1 AND lease_owner = ?2 AND status = 'running'",
            params![run_id, worker_id, lease_expiry(lease), clock::now_text()],
        )
        .map_err(|e| classify(e, "renewing a lease"))?;
    Ok(changed == 1)
}

pub fn leases_of(
    connection: &Connection,
    owner: &str,
    quiet_for: Duration,
) -> Result<Vec<String>, StoreError> {
    let before = clock::format(
        clock::now() - chrono::Duration::from_std(quiet_for).unwrap_or(chrono::Duration::zero()),
    );
    let mut statement = connection
        .prepare_cached(
            "SELECT run_id FROM run_queue WHERE status = 'running' AND lease_owner = ?1 AND updated_at < ?2",
        )
        .map_err(|e| classify(e, "reading a holder's leases"))?;
    let rows = statement
        .query_map(params![owner, before], |row| row.get(0))
        .map_err(|e| classify(e, "reading a holder's leases"))?;
    rows.collect::<Result<Vec<String>, _>>()
        .map_err(|e| classify(e, "reading a holder's leases"))
}

pub fn release_lease(
    connection: &Connection,
    run_id: &str,
    worker_id: &str,
) -> Result<(), StoreError> {
    connection
        .execute_cached(
            "UPDATE run_queue SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = ?3,
                 attempts = MAX(attempts - 1, 0)
             WHERE run_id = ?1 AND lease_owner = ?2 AND status = 'running'",
            params![run_id, worker_id, clock::now_text()],
        )
        .map_err(|e| classify(e, "releasing a lease"))?;
    Ok(())
}

/// Counts the live queue (queued, running, failed) through the `(status, enqueued_at)` index;
/// completed records are skipped, so the cost does not grow with history.
pub fn queue_counts(connection: &Connection) -> Result<QueueCounts, StoreError> {
    let now = clock::now_text();
    let mut counts = QueueCounts::default();
    let rows: Vec<(String, i64)> = connection
        .prepare_cached("SELECT status, COUNT(*) FROM run_queue WHERE status IN ('queued', 'running', 'failed') GROUP BY status")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(|e| classify(e, "counting the queue"))?;
    for (status, count) in rows {
        match QueueStatus::parse(&status) {
            Some(QueueStatus::Queued) => counts.queued = count,
            Some(QueueStatus::Running) => counts.running = count,
            Some(QueueStatus::Failed) => counts.failed = count,
            // Not counted: completed records grow without bound, and nothing needs their count.
            Some(QueueStatus::Completed) => {}
            None => {
                return Err(StoreError::corrupt(format!(
                    "queue record with unknown status {status:?}"
                )));
            }
        }
    }
    let (expired, oldest): (i64, Option<String>) = connection
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM run_queue WHERE status = 'running' AND lease_expires_at < ?1),
                    (SELECT MIN(enqueued_at) FROM run_queue WHERE status = 'queued')",
        )
        .and_then(|mut statement| statement.query_row([&now], |row| Ok((row.get(0)?, row.get(1)?))))
        .map_err(|e| classify(e, "inspecting the queue"))?;
    counts.expired_leases = expired;
    counts.oldest_queued_age_seconds = oldest
        .and_then(|text| clock::parse(&text))
        .map(|at| (clock::now() - at).num_milliseconds().max(0) as f64 / 1000.0);
    Ok(counts)
}

pub fn queue_entry(
    connection: &Connection,
    run_id: &str,
) -> Result<Option<QueueRecord>, StoreError> {
    connection
        .query_row_cached(
            "SELECT run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at, last_error
             FROM run_queue WHERE run_id = ?1",
            [run_id],
            |row| {
                let status: String = row.get(1)?;
                Ok(QueueRecord {
                    run_id: row.get(0)?,
                    status: QueueStatus::parse(&status).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            format!("unknown queue status {status:?}").into(),
                        )
                    })?,
                    attempts: row.get(2)?,
                    lease_owner: row.get(3)?,
                    lease_expires_at: row.get(4)?,
                    enqueued_at: row.get(5)?,
                    updated_at: row.get(6)?,
                    last_error: row.get(7)?,
                })
            },
        )
        .optional()
        .map_err(|e| classify(e, "reading a queue record"))
}

pub fn overdue_runs(
    connection: &Connection,
    now: &str,
    limit: usize,
) -> Result<Vec<RunRecord>, StoreError> {
    let documents: Vec<String> = connection
        .prepare_cached(
            "SELECT document FROM runs
             WHERE deadline_at IS NOT NULL AND deadline_at < ?1 AND status IN ('created', 'running', 'blocked')
             ORDER BY deadline_at LIMIT ?2",
        )
        .and_then(|mut statement| statement.query_map(params![now, limit as i64], |row| row.get(0))?.collect())
        .map_err(|e| classify(e, "finding overdue runs"))?;
    documents
        .iter()
        .map(|text| from_json(text, "an overdue run"))
        .collect()
}

/// Expires every lease at once. The records stay `running` with a lease in the past, so the next
/// claim takes them through the usual expired-lease path, attempt count and dead-letter cap
/// included: a run that kills the process on every attempt ends dead-lettered, not in a loop.
pub fn requeue_orphaned_runs(connection: &Connection) -> Result<u64, StoreError> {
    let long_ago = "1970-01-01T00:00:00.000000+00:00";
    let changed = connection
        .execute_cached(
            "UPDATE run_queue SET lease_expires_at = ?1, updated_at = ?2 WHERE status = 'running'",
            params![long_ago, clock::now_text()],
        )
        .map_err(|e| classify(e, "requeueing orphaned runs"))?;
    records::drop_unbound_idempotency_marks(connection)?;
    Ok(changed as u64)
}
