//! Everything recorded beside runs on SQLite: trace events, checkpoints, audit events,
//! idempotency records, locks and service events.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::connection::{CachedStatements, classify, from_json, to_json};
use super::rows::{AuditInsert, CheckpointRow, TraceRow};
use crate::clock;
use crate::store::{
    AuditEvent, AuditQuery, CheckpointQuery, IdempotencyBegin, IdempotencyBinding,
    IdempotencyRequest, Page, PageQuery, ServiceEvent, StoreError, TraceQuery, bound_run_id,
};

/// An `audit_events` row: id, event_type, run_id, continuation_id, actor, metadata, created_at.
type AuditRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// An `idempotency_records` row: request_hash, state, response_status, response_body, locked_until.
type IdempotencyRow = (String, String, Option<u16>, Option<String>, Option<String>);

/// Appends trace events after the run's existing ones; an event id seen before is skipped.
pub fn insert_trace(
    transaction: &Connection,
    run_id: &str,
    events: &[TraceRow],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let next: i64 = transaction
        .query_row_cached(
            "SELECT COALESCE(MAX(position), 0) + 1 FROM trace_events WHERE run_id = ?1",
            [run_id],
            |row| row.get(0),
        )
        .map_err(|e| classify(e, "positioning trace events"))?;
    let mut statement = transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO trace_events (run_id, position, event_id, event_type, timestamp, document)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(|e| classify(e, "preparing trace inserts"))?;
    for (offset, event) in events.iter().enumerate() {
        statement
            .execute(params![
                run_id,
                next + offset as i64,
                event.event_id,
                event.event_type,
                event.timestamp,
                event.document
            ])
            .map_err(|e| classify(e, "inserting a trace event"))?;
    }
    Ok(())
}

pub fn insert_checkpoints(
    transaction: &Connection,
    run_id: &str,
    checkpoints: &[CheckpointRow],
) -> Result<(), StoreError> {
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO checkpoints (run_id, sequence, id, checkpoint_type, created_at, document)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(|e| classify(e, "preparing checkpoint inserts"))?;
    for checkpoint in checkpoints {
        statement
            .execute(params![
                run_id,
                checkpoint.sequence,
                checkpoint.id,
                checkpoint.checkpoint_type,
                checkpoint.created_at,
                checkpoint.document
            ])
            .map_err(|e| {
                classify(
                    e,
                    &format!(
                        "inserting checkpoint {} of run {run_id}",
                        checkpoint.sequence
                    ),
                )
            })?;
    }
    Ok(())
}

pub fn insert_audit(transaction: &Connection, events: &[AuditInsert]) -> Result<(), StoreError> {
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO audit_events (id, event_type, run_id, continuation_id, actor, metadata, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(|e| classify(e, "preparing audit inserts"))?;
    for event in events {
        statement
            .execute(params![
                event.id,
                event.event_type,
                event.run_id,
                event.continuation_id,
                event.actor,
                event.metadata,
                event.created_at
            ])
            .map_err(|e| classify(e, "inserting an audit event"))?;
    }
    Ok(())
}

/// Runs a windowed, paged query over `table` rows of one run and parses each document.
fn paged_documents(
    connection: &Connection,
    sql_from: &str,
    sort_column: &str,
    tiebreak: &str,
    filter_value: Option<&str>,
    run_id: &str,
    page: &PageQuery,
) -> Result<Page<Value>, StoreError> {
    let order = page.order.sql();
    let filter = if filter_value.is_some() {
        "AND filter_column = ?5"
    } else {
        ""
    };
    let sql = format!(
        "SELECT document FROM (
             SELECT * FROM (SELECT document, {sort_column} AS sort_key, {tiebreak} AS tiebreak, {sql_from}) AS base
             WHERE run_id = ?1 {filter}
             ORDER BY sort_key DESC, tiebreak DESC LIMIT ?2
         ) ORDER BY sort_key {order}, tiebreak {order} LIMIT ?3 OFFSET ?4"
    );
    let count_sql = format!(
        "SELECT COUNT(*) FROM (SELECT {sql_from}) AS base WHERE run_id = ?1 {}",
        if filter_value.is_some() {
            "AND filter_column = ?2"
        } else {
            ""
        }
    );
    let mut statement = connection
        .prepare_cached(&sql)
        .map_err(|e| classify(e, "listing records"))?;
    let (window, limit, offset) = (page.window as i64, page.limit as i64, page.offset as i64);
    let documents: Vec<String> = match filter_value {
        Some(value) => statement
            .query_map(params![run_id, window, limit, offset, value], |row| {
                row.get(0)
            })
            .and_then(Iterator::collect),
        None => statement
            .query_map(params![run_id, window, limit, offset], |row| row.get(0))
            .and_then(Iterator::collect),
    }
    .map_err(|e| classify(e, "listing records"))?;
    let total: i64 = match filter_value {
        Some(value) => {
            connection.query_row_cached(&count_sql, params![run_id, value], |row| row.get(0))
        }
        None => connection.query_row_cached(&count_sql, params![run_id], |row| row.get(0)),
    }
    .map_err(|e| classify(e, "counting records"))?;
    let items = documents
        .iter()
        .map(|text| from_json(text, "a stored record"))
        .collect::<Result<Vec<Value>, _>>()?;
    Ok(Page { items, total })
}

pub fn list_trace(
    connection: &Connection,
    run_id: &str,
    query: &TraceQuery,
) -> Result<Page<Value>, StoreError> {
    paged_documents(
        connection,
        "run_id, event_type AS filter_column, timestamp, position FROM trace_events",
        "timestamp",
        "position",
        query.event_type.as_deref(),
        run_id,
        &query.page,
    )
}

pub fn list_checkpoints(
    connection: &Connection,
    run_id: &str,
    query: &CheckpointQuery,
) -> Result<Page<Value>, StoreError> {
    paged_documents(
        connection,
        "run_id, checkpoint_type AS filter_column, sequence FROM checkpoints",
        "sequence",
        "sequence",
        query.checkpoint_type.as_deref(),
        run_id,
        &query.page,
    )
}

pub fn last_checkpoint(connection: &Connection, run_id: &str) -> Result<Option<Value>, StoreError> {
    let document: Option<String> = connection
        .prepare_cached(
            "SELECT document FROM checkpoints WHERE run_id = ?1 ORDER BY sequence DESC LIMIT 1",
        )
        .and_then(|mut statement| statement.query_row([run_id], |row| row.get(0)).optional())
        .map_err(|e| classify(e, "reading the last checkpoint"))?;
    document
        .map(|text| from_json(&text, &format!("the last checkpoint of run {run_id}")))
        .transpose()
}

pub fn list_audit(
    connection: &Connection,
    query: &AuditQuery,
) -> Result<Page<AuditEvent>, StoreError> {
    let mentions = query
        .mentions
        .as_ref()
        .map(|text| format!("%{}%", text.replace('%', "\\%").replace('_', "\\_")));
    let mut conditions = Vec::new();
    let mut filters: Vec<(&str, &dyn rusqlite::ToSql)> = Vec::new();
    if let Some(event_type) = &query.event_type {
        conditions.push("event_type = :event_type");
        filters.push((":event_type", event_type));
    }
    if let Some(run_id) = &query.run_id {
        conditions.push("run_id = :run_id");
        filters.push((":run_id", run_id));
    }
    if let Some(pattern) = &mentions {
        conditions.push("metadata LIKE :mentions ESCAPE '\\'");
        filters.push((":mentions", pattern));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let order = query.page.order.sql();
    let sql = format!(
        "SELECT id, event_type, run_id, continuation_id, actor, metadata, created_at FROM (
             SELECT * FROM audit_events {filter} ORDER BY created_at DESC, position DESC LIMIT :window
         ) ORDER BY created_at {order}, position {order} LIMIT :limit OFFSET :offset"
    );
    let (window, limit, offset) = (
        query.page.window as i64,
        query.page.limit as i64,
        query.page.offset as i64,
    );
    let mut parameters = filters.clone();
    parameters.extend([
        (":window", &window as &dyn rusqlite::ToSql),
        (":limit", &limit as &dyn rusqlite::ToSql),
        (":offset", &offset as &dyn rusqlite::ToSql),
    ]);
    let rows: Vec<AuditRow> = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_map(parameters.as_slice(), |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                })?
                .collect()
        })
        .map_err(|e| classify(e, "listing audit events"))?;
    let items = rows
        .into_iter()
        .map(
            |(id, event_type, run_id, continuation_id, actor, metadata, created_at)| {
                Ok(AuditEvent {
                    metadata: from_json(&metadata, &format!("audit event {id}"))?,
                    id,
                    event_type,
                    run_id,
                    continuation_id,
                    actor,
                    created_at,
                })
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    let total: i64 = connection
        .query_row_cached(
            &format!("SELECT COUNT(*) FROM audit_events {filter}"),
            filters.as_slice(),
            |row| row.get(0),
        )
        .map_err(|e| classify(e, "counting audit events"))?;
    Ok(Page { items, total })
}

pub fn idempotency_begin(
    connection: &Connection,
    request: &IdempotencyRequest,
) -> Result<IdempotencyBegin, StoreError> {
    let transaction = connection;
    let now = clock::now_text();
    let locked_until = clock::format(
        clock::now()
            + chrono::Duration::from_std(request.lock_ttl).unwrap_or(chrono::Duration::MAX),
    );
    let existing: Option<IdempotencyRow> = transaction
        .query_row_cached(
            "SELECT request_hash, state, response_status, response_body, locked_until
             FROM idempotency_records WHERE scope = ?1 AND key = ?2",
            params![request.scope, request.key],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()
        .map_err(|e| classify(e, "reading an idempotency record"))?;
    let outcome = match existing {
        None => {
            transaction
                .execute_cached(
                    "INSERT INTO idempotency_records (scope, key, request_hash, state, locked_until, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'in_progress', ?4, ?5, ?5)",
                    params![request.scope, request.key, request.request_hash, locked_until, now],
                )
                .map_err(|e| classify(e, "inserting an idempotency record"))?;
            IdempotencyBegin::Started
        }
        Some((hash, _, _, _, _)) if hash != request.request_hash => IdempotencyBegin::Conflict,
        Some((_, state, Some(status), Some(body), _)) if state == "completed" => {
            IdempotencyBegin::Replay {
                status,
                body: from_json(&body, "a stored idempotent response")?,
            }
        }
        Some((_, state, _, body, _)) if state == "bound" => {
            let body: Value = from_json(
                body.as_deref().unwrap_or("null"),
                "a bound idempotency record",
            )?;
            let run_id = bound_run_id(&body).ok_or_else(|| {
                StoreError::corrupt(format!(
                    "idempotency record {}/{} is bound but names no run",
                    request.scope, request.key
                ))
            })?;
            IdempotencyBegin::Bound { run_id }
        }
        Some((_, _, _, _, until)) if until.as_deref().is_some_and(|until| until > now.as_str()) => {
            IdempotencyBegin::InProgress
        }
        Some(_) => {
            // The first request's owner died without finishing: take the record over.
            transaction
                .execute_cached(
                    "UPDATE idempotency_records SET state = 'in_progress', locked_until = ?3, updated_at = ?4
                     WHERE scope = ?1 AND key = ?2",
                    params![request.scope, request.key, locked_until, now],
                )
                .map_err(|e| classify(e, "taking over an idempotency record"))?;
            IdempotencyBegin::Started
        }
    };
    Ok(outcome)
}

pub fn idempotency_complete(
    connection: &Connection,
    scope: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), StoreError> {
    connection
        .execute_cached(
            "UPDATE idempotency_records SET state = 'completed', response_status = ?3, response_body = ?4,
                 locked_until = NULL, updated_at = ?5
             WHERE scope = ?1 AND key = ?2 AND state IN ('in_progress', 'bound')",
            params![scope, key, status, to_json(body)?, clock::now_text()],
        )
        .map_err(|e| classify(e, "completing an idempotency record"))?;
    Ok(())
}

pub fn idempotency_abandon(
    connection: &Connection,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<(), StoreError> {
    connection
        .execute_cached(
            "DELETE FROM idempotency_records
             WHERE scope = ?1 AND key = ?2 AND request_hash = ?3 AND state = 'in_progress'",
            params![scope, key, request_hash],
        )
        .map_err(|e| classify(e, "abandoning an idempotency record"))?;
    Ok(())
}

/// Binds an idempotency key to `run_id` inside the caller's write, unless another request bound
/// it first (or a request with another payload holds it). Run before the write's other changes,
/// so a refused binding leaves nothing to undo. Returns whether the key is now bound to `run_id`.
pub fn bind_idempotency(
    transaction: &Connection,
    binding: &IdempotencyBinding,
    run_id: &str,
) -> Result<bool, StoreError> {
    let (state, status, body) = binding.record(run_id);
    let changed = transaction
        .execute_cached(
            "INSERT INTO idempotency_records (scope, key, request_hash, state, response_status, response_body,
                 locked_until, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?7)
             ON CONFLICT (scope, key) DO UPDATE SET state = excluded.state,
                 response_status = excluded.response_status, response_body = excluded.response_body,
                 locked_until = NULL, updated_at = excluded.updated_at
             WHERE idempotency_records.state = 'in_progress'
                 AND idempotency_records.request_hash = excluded.request_hash",
            params![
                binding.scope,
                binding.key,
                binding.request_hash,
                state,
                status,
                to_json(&body)?,
                clock::now_text()
            ],
        )
        .map_err(|e| classify(e, "binding an idempotency key to its run"))?;
    Ok(changed == 1)
}

/// Drops every `in_progress` mark: at start-up of the embedded store, their holders are dead.
pub fn drop_unbound_idempotency_marks(connection: &Connection) -> Result<usize, StoreError> {
    connection
        .execute_cached(
            "DELETE FROM idempotency_records WHERE state = 'in_progress'",
            [],
        )
        .map_err(|e| classify(e, "dropping orphaned idempotency marks"))
}

pub fn try_lock(
    connection: &Connection,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let now = clock::now_text();
    let expires = clock::format(
        clock::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
    );
    let changed = connection
        .execute_cached(
            "INSERT INTO locks (name, owner, expires_at, acquired_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
                 acquired_at = excluded.acquired_at
             WHERE locks.expires_at < ?4",
            params![name, owner, expires, now],
        )
        .map_err(|e| classify(e, "taking a lock"))?;
    Ok(changed == 1)
}

pub fn unlock(connection: &Connection, name: &str, owner: &str) -> Result<(), StoreError> {
    connection
        .execute_cached(
            "DELETE FROM locks WHERE name = ?1 AND owner = ?2",
            params![name, owner],
        )
        .map_err(|e| classify(e, "releasing a lock"))?;
    Ok(())
}

pub fn insert_service_event(
    connection: &Connection,
    event: &ServiceEvent,
) -> Result<(), StoreError> {
    connection
        .execute_cached(
            "INSERT INTO service_events (id, event_type, created_at, version, host, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![event.id, event.event_type, event.created_at, event.version, event.host, to_json(&event.details)?],
        )
        .map_err(|e| classify(e, "recording a service event"))?;
    Ok(())
}

pub fn list_service_events(
    connection: &Connection,
    page: &PageQuery,
) -> Result<Page<ServiceEvent>, StoreError> {
    let order = page.order.sql();
    let sql = format!(
        "SELECT id, event_type, created_at, version, host, details FROM (
             SELECT * FROM service_events ORDER BY position DESC LIMIT ?1
         ) ORDER BY position {order} LIMIT ?2 OFFSET ?3"
    );
    let rows: Vec<(String, String, String, String, String, String)> = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![page.window as i64, page.limit as i64, page.offset as i64],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                            row.get(5)?,
                        ))
                    },
                )?
                .collect()
        })
        .map_err(|e| classify(e, "listing service events"))?;
    let items = rows
        .into_iter()
        .map(|(id, event_type, created_at, version, host, details)| {
            Ok(ServiceEvent {
                details: from_json(&details, &format!("service event {id}"))?,
                id,
                event_type,
                created_at,
                version,
                host,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let total: i64 = connection
        .query_row_cached("SELECT COUNT(*) FROM service_events", [], |row| row.get(0))
        .map_err(|e| classify(e, "counting service events"))?;
    Ok(Page { items, total })
}
