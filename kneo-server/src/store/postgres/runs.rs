//! Runs and the durable queue on Postgres.
//!
//! Row locks do here what the single writer does on SQLite:
//! - a progress write locks its run row (`FOR UPDATE`), so writers of one run take turns and the
//!   terminal fence and lease check see the latest committed state;
//! - a claim locks queue rows, then their run rows, with `SKIP LOCKED`: claimers in any number of
//!   processes never take the same run, and never wait for each other or for a writer (a run
//!   being written is simply left for the next poll), so a claim cannot deadlock with a write.
//!
//! Lease times come from the database clock (`now()`), the one clock every worker shares.

use std::collections::HashMap;

use deadpool_postgres::{Client, GenericClient};
use serde_json::Value;

use super::columns::{self, Timestamp};
use super::errors::{Failure, database};
use super::records;
use super::sql::{self, column};
use crate::store::run_filter::{Bound, Dialect, where_clause};
use crate::store::{
    AuditEvent, Claim, ClaimRequest, ClaimResult, CreateOutcome, Expect, IdempotencyBinding, Page,
    Progress, QueueCounts, QueueEntry, QueueRecord, QueueStatus, QueueTransition, RunQuery,
    RunRecord, RunStatus, SaveOutcome, StoreError,
};
use tokio_postgres::types::ToSql;

pub(super) async fn create_run(
    client: &mut Client,
    run: &RunRecord,
    queue: Option<&QueueEntry>,
    audit: &[AuditEvent],
    idempotency: Option<&IdempotencyBinding>,
) -> Result<CreateOutcome, Failure> {
    let transaction = client
        .transaction()
        .await
        .map_err(database("starting a transaction"))?;
    if let Some(binding) = idempotency
        && !records::bind_idempotency(&transaction, binding, &run.id).await?
    {
        // Dropping the transaction rolls it back: nothing is written.
        return Ok(CreateOutcome::KeyTaken);
    }
    insert_run(&transaction, run).await?;
    if let Some(entry) = queue {
        // The run joins the queue at the moment it was accepted, as on SQLite.
        let enqueued_at =
            columns::timestamp(&run.created_at, &format!("created_at of run {}", run.id))?;
        let (status, owner, lease, attempts) = match entry {
            QueueEntry::Queued => (QueueStatus::Queued, None, None, 0_i64),
            QueueEntry::Leased { worker_id, lease } => (
                QueueStatus::Running,
                Some(worker_id.as_str()),
                Some(columns::seconds(*lease)),
                1,
            ),
        };
        sql::execute(
            &transaction,
            "queueing a run",
            "INSERT INTO run_queue (run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at)
             VALUES ($1, $2, $3, $4, now() + $5::float8 * interval '1 second', $6, $6)",
            &[&run.id, &status.as_str(), &attempts, &owner, &lease, &enqueued_at],
        )
        .await?;
    }
    records::insert_audit(&transaction, audit).await?;
    transaction
        .commit()
        .await
        .map_err(database("committing a new run"))?;
    Ok(CreateOutcome::Created)
}

/// The column values of a run beside its document.
struct RunColumns {
    created_at: Timestamp,
    updated_at: Timestamp,
    deadline_at: Option<Timestamp>,
    document: Value,
}

impl RunColumns {
    fn of(run: &RunRecord) -> Result<RunColumns, StoreError> {
        Ok(RunColumns {
            created_at: columns::timestamp(
                &run.created_at,
                &format!("created_at of run {}", run.id),
            )?,
            updated_at: columns::timestamp(
                &run.updated_at,
                &format!("updated_at of run {}", run.id),
            )?,
            deadline_at: columns::optional_timestamp(
                run.deadline_at.as_deref(),
                &format!("deadline_at of run {}", run.id),
            )?,
            document: columns::to_document(run, &format!("run {}", run.id))?,
        })
    }
}

async fn insert_run(client: &impl GenericClient, run: &RunRecord) -> Result<(), Failure> {
    let values = RunColumns::of(run)?;
    sql::execute(
        client,
        "inserting a run",
        "INSERT INTO runs (id, status, created_at, updated_at, deadline_at, workflow_name, document, workflow_kind, session_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &run.id,
            &run.status.as_str(),
            &values.created_at,
            &values.updated_at,
            &values.deadline_at,
            &run.workflow_name,
            &values.document,
            &run.workflow_kind,
            &run.session_id,
        ],
    )
    .await?;
    Ok(())
}

async fn update_run(client: &impl GenericClient, run: &RunRecord) -> Result<(), Failure> {
    let values = RunColumns::of(run)?;
    sql::execute(
        client,
        "updating a run",
        "UPDATE runs SET status = $2, updated_at = $3, deadline_at = $4, workflow_name = $5, document = $6,
             workflow_kind = $7, session_id = $8
         WHERE id = $1",
        &[&run.id, &run.status.as_str(), &values.updated_at, &values.deadline_at, &run.workflow_name, &values.document, &run.workflow_kind, &run.session_id],
    )
    .await?;
    Ok(())
}

fn run_from_document(document: Value, what: &str) -> Result<RunRecord, Failure> {
    Ok(columns::from_document(document, what)?)
}

pub(super) async fn get_run(
    client: &impl GenericClient,
    run_id: &str,
) -> Result<Option<RunRecord>, Failure> {
    let operation = "reading a run";
    let row = sql::query_opt(
        client,
        operation,
        "SELECT document FROM runs WHERE id = $1",
        &[&run_id],
    )
    .await?;
    row.map(|row| run_from_document(column(&row, 0, operation)?, &format!("run {run_id}")))
        .transpose()
}

fn parse_status(text: &str, run_id: &str) -> Result<RunStatus, Failure> {
    RunStatus::parse(text).ok_or_else(|| {
        StoreError::corrupt(format!("run {run_id} has unknown status {text:?}")).into()
    })
}

/// How the Postgres store spells a run listing's filters (documents are jsonb).
const POSTGRES_RUN_FILTER: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    has_error: "COALESCE(jsonb_typeof(document->'error'), 'null') <> 'null'",
    output_text: "(document->>'output_text')",
    error_message: "(document->'error'->>'message')",
    contains: |haystack, needle| format!("strpos(lower(coalesce({haystack}, '')), {needle}) > 0"),
    fold: str::to_lowercase,
};

/// The bound values of a filter clause, typed for Postgres.
fn bound_values(bound: Vec<Bound>) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, Failure> {
    bound
        .into_iter()
        .map(|value| -> Result<Box<dyn ToSql + Sync + Send>, Failure> {
            Ok(match value {
                Bound::Text(text) => Box::new(text),
                Bound::Timestamp(text) => Box::new(columns::timestamp(&text, "created_at")?),
            })
        })
        .collect()
}

pub(super) async fn list_runs(
    client: &impl GenericClient,
    query: &RunQuery,
) -> Result<Page<RunRecord>, Failure> {
    let operation = "listing runs";
    let column_name = query.sort.column();
    let order = query.page.order.sql();
    let (filter, bound) = where_clause(query.status, &query.filter, 4, &POSTGRES_RUN_FILTER);
    // The inner query picks the newest `window` rows; the outer one orders and pages inside them.
    let statement = format!(
        "SELECT document FROM (
             SELECT document, {column_name} AS sort_key, id FROM runs {filter}
             ORDER BY {column_name} DESC, id DESC LIMIT $1
         ) AS windowed ORDER BY sort_key {order}, id {order} LIMIT $2 OFFSET $3"
    );
    let (window, limit, offset) = page_numbers(&query.page);
    let filter_values = bound_values(bound)?;
    let mut parameters: Vec<&(dyn ToSql + Sync)> = vec![&window, &limit, &offset];
    parameters.extend(
        filter_values
            .iter()
            .map(|value| value.as_ref() as &(dyn ToSql + Sync)),
    );
    let rows = sql::query(client, operation, &statement, &parameters).await?;
    let items = rows
        .iter()
        .map(|row| run_from_document(column(row, 0, operation)?, "a listed run"))
        .collect::<Result<Vec<_>, _>>()?;
    let (filter, bound) = where_clause(query.status, &query.filter, 1, &POSTGRES_RUN_FILTER);
    let count_values = bound_values(bound)?;
    let count_parameters: Vec<&(dyn ToSql + Sync)> = count_values
        .iter()
        .map(|value| value.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let count = sql::query_one(
        client,
        "counting runs",
        &format!("SELECT count(*) FROM runs {filter}"),
        &count_parameters,
    )
    .await?;
    Ok(Page {
        items,
        total: column(&count, 0, "counting runs")?,
    })
}

/// Window, limit and offset as the `bigint`s Postgres wants for `LIMIT`/`OFFSET`.
pub(super) fn page_numbers(page: &crate::store::PageQuery) -> (i64, i64, i64) {
    let number = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
    (number(page.window), number(page.limit), number(page.offset))
}

/// Whether the stored status lets this write through (the same rule as SQLite).
fn expectation_holds(expect: Expect, current: Option<RunStatus>) -> bool {
    match (expect, current) {
        (_, None) => false,
        (Expect::NonTerminal, Some(status)) => !status.is_terminal(),
        (Expect::Status(wanted), Some(status)) | (Expect::Reopen(wanted), Some(status)) => {
            status == wanted
        }
    }
}

pub(super) async fn save_progress(
    client: &mut Client,
    progress: &Progress,
) -> Result<SaveOutcome, Failure> {
    let transaction = client
        .transaction()
        .await
        .map_err(database("starting a transaction"))?;
    let run = &progress.run;
    // The row lock makes writers of this run take turns, so the check below stays true until commit.
    let status = sql::query_opt(
        &transaction,
        "reading a run status",
        "SELECT status FROM runs WHERE id = $1 FOR UPDATE",
        &[&run.id],
    )
    .await?;
    let current = match status {
        Some(row) => Some(parse_status(
            column(&row, 0, "reading a run status")?,
            &run.id,
        )?),
        None => None,
    };
    if !expectation_holds(progress.expect, current) {
        // Dropping the transaction rolls it back: nothing is written.
        return Ok(SaveOutcome::Refused { current });
    }
    if let Some(holder) = &progress.lease_holder {
        // Locked too, so a claimer re-taking an expired lease either finishes first (and we see its
        // owner) or skips this run until we are done.
        let owner = sql::query_opt(
            &transaction,
            "checking a lease",
            "SELECT lease_owner FROM run_queue WHERE run_id = $1 AND status = 'running' FOR UPDATE",
            &[&run.id],
        )
        .await?;
        let owner: Option<String> = match owner {
            Some(row) => column(&row, 0, "checking a lease")?,
            None => None,
        };
        if owner.as_deref() != Some(holder.as_str()) {
            return Ok(SaveOutcome::LeaseLost);
        }
    }
    if let Some(binding) = &progress.idempotency
        && !records::bind_idempotency(&transaction, binding, &run.id).await?
    {
        return Ok(SaveOutcome::KeyTaken);
    }
    update_run(&transaction, run).await?;
    records::insert_trace(&transaction, &run.id, &progress.trace_events).await?;
    records::insert_checkpoints(&transaction, &run.id, &progress.checkpoints).await?;
    records::insert_audit(&transaction, &progress.audit).await?;
    if let Some(transition) = &progress.queue {
        apply_queue_transition(&transaction, &run.id, transition).await?;
    }
    transaction
        .commit()
        .await
        .map_err(database("committing progress"))?;
    Ok(SaveOutcome::Saved)
}

async fn apply_queue_transition(
    client: &impl GenericClient,
    run_id: &str,
    transition: &QueueTransition,
) -> Result<(), Failure> {
    let operation = "updating a queue record";
    match transition {
        QueueTransition::Finish { status, error } => {
            sql::execute(
                client,
                operation,
                "UPDATE run_queue SET status = $2, lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                     last_error = COALESCE($3, last_error)
                 WHERE run_id = $1",
                &[&run_id, &status.as_str(), error],
            )
            .await?
        }
        QueueTransition::Enqueue => {
            sql::execute(
                client,
                operation,
                "INSERT INTO run_queue (run_id, status, attempts, enqueued_at, updated_at) VALUES ($1, 'queued', 0, now(), now())
                 ON CONFLICT (run_id) DO UPDATE SET status = 'queued', attempts = 0, lease_owner = NULL,
                     lease_expires_at = NULL, enqueued_at = now(), updated_at = now()",
                &[&run_id],
            )
            .await?
        }
        QueueTransition::Lease { worker_id, lease } => {
            sql::execute(
                client,
                operation,
                "INSERT INTO run_queue (run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at)
                 VALUES ($1, 'running', 1, $2, now() + $3::float8 * interval '1 second', now(), now())
                 ON CONFLICT (run_id) DO UPDATE SET status = 'running', attempts = run_queue.attempts + 1,
                     lease_owner = EXCLUDED.lease_owner, lease_expires_at = EXCLUDED.lease_expires_at, updated_at = now()",
                &[&run_id, worker_id, &columns::seconds(*lease)],
            )
            .await?
        }
    };
    Ok(())
}

/// A queue record picked by a claim.
struct Candidate {
    run_id: String,
    lease_expired: bool,
    attempts: i64,
}

/// The lease owner whose leftover leases a claim takes again (`None` matches nothing).
fn own_leases(request: &ClaimRequest) -> Option<&str> {
    request
        .reclaim_own_leases
        .then_some(request.worker_id.as_str())
}

pub(super) async fn claim_runs(
    client: &mut Client,
    request: &ClaimRequest,
) -> Result<ClaimResult, Failure> {
    let transaction = client
        .transaction()
        .await
        .map_err(database("starting a claim"))?;
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    // ORDER BY and LIMIT sit inside the locking queries: only the rows handed out are locked, and
    // rows another claimer holds are skipped rather than waited for. Runs whose lease expired (a
    // worker died) come first, then the queued ones oldest first. Two queries rather than one with
    // OR: each reads the (status, enqueued_at) index in order and stops at the limit, where the OR
    // had to sort every queued run on each claim.
    let mut rows = sql::query(
        &transaction,
        "finding runs to claim",
        "SELECT run_id, status, attempts, now() FROM run_queue
         WHERE status = 'running' AND (lease_expires_at < now() OR lease_owner = $2)
         ORDER BY enqueued_at, run_id
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
        &[&limit, &own_leases(request)],
    )
    .await?;
    let room = limit - i64::try_from(rows.len()).unwrap_or(limit);
    if room > 0 {
        rows.extend(
            sql::query(
                &transaction,
                "finding runs to claim",
                "SELECT run_id, status, attempts, now() FROM run_queue
                 WHERE status = 'queued'
                 ORDER BY enqueued_at, run_id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED",
                &[&room],
            )
            .await?,
        );
    }
    if rows.is_empty() {
        transaction
            .rollback()
            .await
            .map_err(database("ending an empty claim"))?;
        return Ok(ClaimResult::default());
    }
    let mut candidates = Vec::with_capacity(rows.len());
    let mut now: Option<Timestamp> = None;
    for row in &rows {
        let status: String = column(row, 1, "finding runs to claim")?;
        candidates.push(Candidate {
            run_id: column(row, 0, "finding runs to claim")?,
            lease_expired: status == QueueStatus::Running.as_str(),
            attempts: column(row, 2, "finding runs to claim")?,
        });
        now = Some(column(row, 3, "finding runs to claim")?);
    }
    let now = now
        .map(columns::text)
        .unwrap_or_else(crate::clock::now_text);
    let ids: Vec<&str> = candidates
        .iter()
        .map(|candidate| candidate.run_id.as_str())
        .collect();
    let mut runs = lock_runs(&transaction, &ids).await?;

    let mut result = ClaimResult::default();
    let mut to_claim: Vec<(String, RunRecord)> = Vec::new();
    for candidate in candidates {
        let Some(slot) = runs.remove(&candidate.run_id) else {
            continue;
        };
        let Some(mut run) = slot else {
            // A queue record without its run: nothing can ever execute it.
            sql::execute(
                &transaction,
                "dropping an orphaned queue record",
                "DELETE FROM run_queue WHERE run_id = $1",
                &[&candidate.run_id],
            )
            .await?;
            continue;
        };
        if run.status.is_terminal() || run.status == RunStatus::Blocked {
            // Cancelled while queued, or finished by a writer that died before closing the record.
            let finish = QueueTransition::Finish {
                status: QueueStatus::Completed,
                error: None,
            };
            apply_queue_transition(&transaction, &candidate.run_id, &finish).await?;
            continue;
        }
        if candidate.lease_expired
            && request.max_attempts > 0
            && candidate.attempts >= i64::from(request.max_attempts)
        {
            dead_letter(&transaction, &mut run, candidate.attempts, &now).await?;
            result.dead_lettered.push(run);
            continue;
        }
        to_claim.push((candidate.run_id, run));
    }

    if !to_claim.is_empty() {
        let ids: Vec<&str> = to_claim.iter().map(|(run_id, _)| run_id.as_str()).collect();
        let claimed = sql::query(
            &transaction,
            "claiming runs",
            "UPDATE run_queue SET status = 'running', attempts = attempts + 1, lease_owner = $2,
                 lease_expires_at = now() + $3::float8 * interval '1 second', updated_at = now()
             WHERE run_id = ANY($1)
             RETURNING run_id, attempts",
            &[&ids, &request.worker_id, &columns::seconds(request.lease)],
        )
        .await?;
        let mut attempts = HashMap::with_capacity(claimed.len());
        for row in &claimed {
            let run_id: String = column(row, 0, "claiming runs")?;
            let attempt: i64 = column(row, 1, "claiming runs")?;
            attempts.insert(run_id, attempt);
        }
        // Keep FIFO order: the order the candidates were picked in, not the order UPDATE returned.
        for (run_id, run) in to_claim {
            if let Some(attempt) = attempts.get(&run_id) {
                result.claimed.push(Claim {
                    run,
                    attempt: *attempt,
                });
            }
        }
    }
    transaction
        .commit()
        .await
        .map_err(database("committing a claim"))?;
    Ok(result)
}

/// Locks the run rows of the candidates. `Some(None)`: the run does not exist; missing from the
/// map: another transaction is writing the run right now, so it is left for the next claim.
async fn lock_runs(
    client: &impl GenericClient,
    ids: &[&str],
) -> Result<HashMap<String, Option<RunRecord>>, Failure> {
    let operation = "locking runs to claim";
    let rows = sql::query(
        client,
        operation,
        "SELECT id, document FROM runs WHERE id = ANY($1) FOR UPDATE SKIP LOCKED",
        &[&ids],
    )
    .await?;
    let mut runs = HashMap::with_capacity(ids.len());
    for row in &rows {
        let id: String = column(row, 0, operation)?;
        let run = run_from_document(column(row, 1, operation)?, &format!("run {id}"))?;
        runs.insert(id, Some(run));
    }
    if runs.len() < ids.len() {
        let unseen: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !runs.contains_key(*id))
            .collect();
        let existing = sql::query(
            client,
            "looking for locked runs",
            "SELECT id FROM runs WHERE id = ANY($1)",
            &[&unseen],
        )
        .await?;
        let existing: Vec<String> = existing
            .iter()
            .map(|row| column(row, 0, "looking for locked runs"))
            .collect::<Result<_, _>>()?;
        for id in unseen {
            if !existing.iter().any(|existing| existing == id) {
                runs.insert(id.to_string(), None);
            }
        }
    }
    Ok(runs)
}

/// Fails a run whose lease expired once too often, with the reason on the run and an audit event,
/// in the claim's transaction (the same words as SQLite).
async fn dead_letter(
    client: &impl GenericClient,
    run: &mut RunRecord,
    attempts: i64,
    now: &str,
) -> Result<(), Failure> {
    let message = format!(
        "Dead-lettered: the run's worker lease expired {attempts} time(s) without the run finishing \
         (KNEO_SERV_QUEUE_MAX_ATTEMPTS); see runbook § 5.6"
    );
    run.status = RunStatus::Failed;
    run.error =
        Some(serde_json::json!({"type": "dead_letter", "message": message, "attempts": attempts}));
    run.updated_at = now.to_string();
    run.completed_at = Some(now.to_string());
    update_run(client, run).await?;
    let finish = QueueTransition::Finish {
        status: QueueStatus::Failed,
        error: Some(message),
    };
    apply_queue_transition(client, &run.id, &finish).await?;
    let event = AuditEvent {
        id: crate::clock::new_id(),
        event_type: "run.dead_lettered".into(),
        run_id: Some(run.id.clone()),
        continuation_id: None,
        actor: "system".into(),
        metadata: serde_json::json!({"attempts": attempts}),
        created_at: now.to_string(),
    };
    records::insert_audit(client, &[event]).await
}

pub(super) async fn renew_lease(
    client: &impl GenericClient,
    run_id: &str,
    worker_id: &str,
    lease: std::time::Duration,
) -> Result<bool, Failure> {
    let changed = sql::execute(
        client,
        "renewing a lease",
        "UPDATE run_queue SET lease_expires_at = now() + $3::float8 * interval '1 second', updated_at = now()
         WHERE run_id = $1 AND lease_owner = $2 AND status = 'running'",
        &[&run_id, &worker_id, &columns::seconds(lease)],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn leases_of(
    client: &impl GenericClient,
    owner: &str,
    quiet_for: std::time::Duration,
) -> Result<Vec<String>, Failure> {
    let operation = "reading a holder's leases";
    let rows = sql::query(
        client,
        operation,
        "SELECT run_id FROM run_queue
         WHERE status = 'running' AND lease_owner = $1 AND updated_at < now() - $2::float8 * interval '1 second'",
        &[&owner, &columns::seconds(quiet_for)],
    )
    .await?;
    rows.iter().map(|row| column(row, 0, operation)).collect()
}

pub(super) async fn release_lease(
    client: &impl GenericClient,
    run_id: &str,
    worker_id: &str,
) -> Result<(), Failure> {
    sql::execute(
        client,
        "releasing a lease",
        "UPDATE run_queue SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
             attempts = GREATEST(attempts - 1, 0)
         WHERE run_id = $1 AND lease_owner = $2 AND status = 'running'",
        &[&run_id, &worker_id],
    )
    .await?;
    Ok(())
}

/// Counts the live queue (queued, running, failed); completed records are skipped, so the cost
/// does not grow with history.
pub(super) async fn queue_counts(client: &impl GenericClient) -> Result<QueueCounts, Failure> {
    let operation = "counting the queue";
    let mut counts = QueueCounts::default();
    let rows = sql::query(
        client,
        operation,
        "SELECT status, count(*) FROM run_queue WHERE status IN ('queued', 'running', 'failed') GROUP BY status",
        &[],
    )
    .await?;
    for row in &rows {
        let status: String = column(row, 0, operation)?;
        let count: i64 = column(row, 1, operation)?;
        match QueueStatus::parse(&status) {
            Some(QueueStatus::Queued) => counts.queued = count,
            Some(QueueStatus::Running) => counts.running = count,
            Some(QueueStatus::Failed) => counts.failed = count,
            // Not counted: completed records grow without bound, and nothing needs their count.
            Some(QueueStatus::Completed) => {}
            None => {
                return Err(StoreError::corrupt(format!(
                    "queue record with unknown status {status:?}"
                ))
                .into());
            }
        }
    }
    let operation = "inspecting the queue";
    let row = sql::query_one(
        client,
        operation,
        "SELECT (SELECT count(*) FROM run_queue WHERE status = 'running' AND lease_expires_at < now()),
                (SELECT EXTRACT(EPOCH FROM now() - MIN(enqueued_at))::float8 FROM run_queue WHERE status = 'queued')",
        &[],
    )
    .await?;
    counts.expired_leases = column(&row, 0, operation)?;
    let oldest: Option<f64> = column(&row, 1, operation)?;
    // Millisecond resolution and never negative, as on SQLite (created_at comes from the app's clock).
    counts.oldest_queued_age_seconds =
        oldest.map(|seconds| (seconds * 1000.0).floor().max(0.0) / 1000.0);
    Ok(counts)
}

pub(super) async fn queue_entry(
    client: &impl GenericClient,
    run_id: &str,
) -> Result<Option<QueueRecord>, Failure> {
    let operation = "reading a queue record";
    let Some(row) = sql::query_opt(
        client,
        operation,
        "SELECT run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at, last_error
         FROM run_queue WHERE run_id = $1",
        &[&run_id],
    )
    .await?
    else {
        return Ok(None);
    };
    let status: String = column(&row, 1, operation)?;
    let lease_expires_at: Option<Timestamp> = column(&row, 4, operation)?;
    Ok(Some(QueueRecord {
        run_id: column(&row, 0, operation)?,
        status: QueueStatus::parse(&status).ok_or_else(|| {
            StoreError::corrupt(format!(
                "queue record of run {run_id} has unknown status {status:?}"
            ))
        })?,
        attempts: column(&row, 2, operation)?,
        lease_owner: column(&row, 3, operation)?,
        lease_expires_at: lease_expires_at.map(columns::text),
        enqueued_at: columns::text(column(&row, 5, operation)?),
        updated_at: columns::text(column(&row, 6, operation)?),
        last_error: column(&row, 7, operation)?,
    }))
}

pub(super) async fn overdue_runs(
    client: &impl GenericClient,
    now: &str,
    limit: usize,
) -> Result<Vec<RunRecord>, Failure> {
    let operation = "finding overdue runs";
    let now = columns::timestamp(now, "the time overdue runs are measured against")?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = sql::query(
        client,
        operation,
        "SELECT document FROM runs
         WHERE deadline_at IS NOT NULL AND deadline_at < $1 AND status IN ('created', 'running', 'blocked')
         ORDER BY deadline_at LIMIT $2",
        &[&now, &limit],
    )
    .await?;
    rows.iter()
        .map(|row| run_from_document(column(row, 0, operation)?, "an overdue run"))
        .collect()
}
