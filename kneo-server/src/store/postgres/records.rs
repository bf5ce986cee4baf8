//! Everything recorded beside runs on Postgres: trace events, checkpoints, audit events,
//! idempotency records, locks and service events.
//!
//! Expiry times (idempotency locks, named locks) come from the database clock, which every kneo
//! process sharing the database agrees on.

use std::time::Duration;

use deadpool_postgres::{Client, GenericClient};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::columns::{self, Timestamp};
use super::errors::{Failure, database};
use super::runs::page_numbers;
use super::sql::{self, column};
use crate::store::{
    AuditEvent, AuditQuery, CheckpointQuery, IdempotencyBegin, IdempotencyBinding,
    IdempotencyRequest, Page, PageQuery, ServiceEvent, SortOrder, StoreError, TraceQuery,
    bound_run_id,
};

/// Appends trace events after the run's existing ones; an event id seen before is skipped.
///
/// Only called inside `save_progress`, which holds the run's row lock, so two writers can never
/// compute the same next position.
pub(super) async fn insert_trace(
    client: &impl GenericClient,
    run_id: &str,
    events: &[Value],
) -> Result<(), Failure> {
    if events.is_empty() {
        return Ok(());
    }
    let row = sql::query_one(
        client,
        "positioning trace events",
        "SELECT COALESCE(MAX(position), 0) + 1 FROM trace_events WHERE run_id = $1",
        &[&run_id],
    )
    .await?;
    let next: i64 = column(&row, 0, "positioning trace events")?;
    for (offset, event) in (0_i64..).zip(events) {
        // No conflict target: like SQLite's INSERT OR IGNORE, a repeated event id is skipped (and
        // its position stays unused).
        sql::execute(
            client,
            "inserting a trace event",
            "INSERT INTO trace_events (run_id, position, event_id, event_type, \"timestamp\", document)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING",
            &[
                &run_id,
                &(next + offset),
                &columns::document_text(event, "event_id"),
                &columns::document_text(event, "type"),
                &columns::document_timestamp(event, "timestamp"),
                event,
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn insert_checkpoints(
    client: &impl GenericClient,
    run_id: &str,
    checkpoints: &[Value],
) -> Result<(), Failure> {
    for checkpoint in checkpoints {
        let sequence = checkpoint
            .get("sequence")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        sql::execute(
            client,
            &format!("inserting checkpoint {sequence} of run {run_id}"),
            "INSERT INTO checkpoints (run_id, sequence, id, checkpoint_type, created_at, document)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &run_id,
                &sequence,
                &columns::document_text(checkpoint, "id"),
                &columns::document_text(checkpoint, "type"),
                &columns::document_timestamp(checkpoint, "created_at"),
                checkpoint,
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn insert_audit(
    client: &impl GenericClient,
    events: &[AuditEvent],
) -> Result<(), Failure> {
    for event in events {
        let created_at = columns::timestamp(
            &event.created_at,
            &format!("created_at of audit event {}", event.id),
        )?;
        sql::execute(
            client,
            "inserting an audit event",
            "INSERT INTO audit_events (id, event_type, run_id, continuation_id, actor, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &event.id,
                &event.event_type,
                &event.run_id,
                &event.continuation_id,
                &event.actor,
                &event.metadata,
                &created_at,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Where NULL sort keys go: first in ascending order and last in descending order, so a missing
/// timestamp counts as the earliest, as the empty text does on SQLite.
fn nulls(order: SortOrder) -> &'static str {
    match order {
        SortOrder::Asc => "NULLS FIRST",
        SortOrder::Desc => "NULLS LAST",
    }
}

/// A windowed, paged list of the documents of one run's rows in `table`.
struct DocumentList<'a> {
    table: &'static str,
    sort_column: &'static str,
    tiebreak: &'static str,
    filter_column: &'static str,
    filter_value: Option<&'a str>,
}

impl DocumentList<'_> {
    async fn fetch(
        &self,
        client: &impl GenericClient,
        run_id: &str,
        page: &PageQuery,
    ) -> Result<Page<Value>, Failure> {
        let DocumentList {
            table,
            sort_column,
            tiebreak,
            filter_column,
            filter_value,
        } = self;
        let operation = format!("listing {table}");
        let order = page.order.sql();
        let (newest_first, requested) = (nulls(SortOrder::Desc), nulls(page.order));
        let filter = if filter_value.is_some() {
            format!("AND {filter_column} = $5")
        } else {
            String::new()
        };
        // The inner query picks the newest `window` rows; the outer one orders and pages inside them.
        let statement = format!(
            "SELECT document FROM (
                 SELECT document, {sort_column} AS sort_key, {tiebreak} AS tiebreak FROM {table}
                 WHERE run_id = $1 {filter}
                 ORDER BY {sort_column} DESC {newest_first}, {tiebreak} DESC LIMIT $2
             ) AS windowed ORDER BY sort_key {order} {requested}, tiebreak {order} LIMIT $3 OFFSET $4"
        );
        let (window, limit, offset) = page_numbers(page);
        let rows = match filter_value {
            Some(value) => {
                sql::query(
                    client,
                    &operation,
                    &statement,
                    &[&run_id, &window, &limit, &offset, value],
                )
                .await?
            }
            None => {
                sql::query(
                    client,
                    &operation,
                    &statement,
                    &[&run_id, &window, &limit, &offset],
                )
                .await?
            }
        };
        let items = rows
            .iter()
            .map(|row| column(row, 0, &operation))
            .collect::<Result<Vec<Value>, _>>()?;
        let count_operation = format!("counting {table}");
        let count = match filter_value {
            Some(value) => {
                let statement = format!(
                    "SELECT count(*) FROM {table} WHERE run_id = $1 AND {filter_column} = $2"
                );
                sql::query_one(client, &count_operation, &statement, &[&run_id, value]).await?
            }
            None => {
                let statement = format!("SELECT count(*) FROM {table} WHERE run_id = $1");
                sql::query_one(client, &count_operation, &statement, &[&run_id]).await?
            }
        };
        Ok(Page {
            items,
            total: column(&count, 0, &count_operation)?,
        })
    }
}

pub(super) async fn list_trace(
    client: &impl GenericClient,
    run_id: &str,
    query: &TraceQuery,
) -> Result<Page<Value>, Failure> {
    let list = DocumentList {
        table: "trace_events",
        sort_column: "\"timestamp\"",
        tiebreak: "position",
        filter_column: "event_type",
        filter_value: query.event_type.as_deref(),
    };
    list.fetch(client, run_id, &query.page).await
}

pub(super) async fn list_checkpoints(
    client: &impl GenericClient,
    run_id: &str,
    query: &CheckpointQuery,
) -> Result<Page<Value>, Failure> {
    let list = DocumentList {
        table: "checkpoints",
        sort_column: "sequence",
        tiebreak: "sequence",
        filter_column: "checkpoint_type",
        filter_value: query.checkpoint_type.as_deref(),
    };
    list.fetch(client, run_id, &query.page).await
}

pub(super) async fn last_checkpoint(
    client: &impl GenericClient,
    run_id: &str,
) -> Result<Option<Value>, Failure> {
    let operation = "reading the last checkpoint";
    let row = sql::query_opt(
        client,
        operation,
        "SELECT document FROM checkpoints WHERE run_id = $1 ORDER BY sequence DESC LIMIT 1",
        &[&run_id],
    )
    .await?;
    row.map(|row| column(&row, 0, operation)).transpose()
}

pub(super) async fn list_audit(
    client: &impl GenericClient,
    query: &AuditQuery,
) -> Result<Page<AuditEvent>, Failure> {
    let mut conditions: Vec<String> = Vec::new();
    let mut filters: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(event_type) = &query.event_type {
        filters.push(event_type);
        conditions.push(format!("event_type = ${}", filters.len()));
    }
    if let Some(run_id) = &query.run_id {
        filters.push(run_id);
        conditions.push(format!("run_id = ${}", filters.len()));
    }
    if let Some(mentions) = &query.mentions {
        filters.push(mentions);
        // A plain substring of the metadata text, ASCII-case-insensitive like SQLite's LIKE. strpos
        // needs no escaping of % and _ in the searched text.
        conditions.push(format!(
            "strpos(lower(metadata::text), lower(${})) > 0",
            filters.len()
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let order = query.page.order.sql();
    let (window, limit, offset) = page_numbers(&query.page);
    let first_page_parameter = filters.len() + 1;
    let (window_parameter, limit_parameter, offset_parameter) = (
        first_page_parameter,
        first_page_parameter + 1,
        first_page_parameter + 2,
    );
    let statement = format!(
        "SELECT id, event_type, run_id, continuation_id, actor, metadata, created_at FROM (
             SELECT * FROM audit_events {filter} ORDER BY created_at DESC, position DESC LIMIT ${window_parameter}
         ) AS windowed ORDER BY created_at {order}, position {order} LIMIT ${limit_parameter} OFFSET ${offset_parameter}"
    );
    let mut parameters = filters.clone();
    parameters.extend([&window as &(dyn ToSql + Sync), &limit, &offset]);
    let operation = "listing audit events";
    let rows = sql::query(client, operation, &statement, &parameters).await?;
    let items = rows
        .iter()
        .map(|row| {
            let created_at: Timestamp = column(row, 6, operation)?;
            Ok(AuditEvent {
                id: column(row, 0, operation)?,
                event_type: column(row, 1, operation)?,
                run_id: column(row, 2, operation)?,
                continuation_id: column(row, 3, operation)?,
                actor: column(row, 4, operation)?,
                metadata: column(row, 5, operation)?,
                created_at: columns::text(created_at),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let count = sql::query_one(
        client,
        "counting audit events",
        &format!("SELECT count(*) FROM audit_events {filter}"),
        &filters,
    )
    .await?;
    Ok(Page {
        items,
        total: column(&count, 0, "counting audit events")?,
    })
}

/// How many times `idempotency_begin` looks again when the record vanishes between its insert
/// attempt and its read (abandoned by its owner in that instant).
const IDEMPOTENCY_ROUNDS: usize = 3;

pub(super) async fn idempotency_begin(
    client: &mut Client,
    request: &IdempotencyRequest,
) -> Result<IdempotencyBegin, Failure> {
    let transaction = client
        .transaction()
        .await
        .map_err(database("starting a transaction"))?;
    let ttl = columns::seconds(request.lock_ttl);
    for _ in 0..IDEMPOTENCY_ROUNDS {
        // Insert first: of two requests racing on a new key, exactly one inserts; the other waits
        // for it to commit, then reads its record below.
        let inserted = sql::execute(
            &transaction,
            "inserting an idempotency record",
            "INSERT INTO idempotency_records (scope, key, request_hash, state, locked_until, created_at, updated_at)
             VALUES ($1, $2, $3, 'in_progress', now() + $4::float8 * interval '1 second', now(), now())
             ON CONFLICT (scope, key) DO NOTHING",
            &[&request.scope, &request.key, &request.request_hash, &ttl],
        )
        .await?;
        if inserted == 1 {
            transaction
                .commit()
                .await
                .map_err(database("committing an idempotency record"))?;
            return Ok(IdempotencyBegin::Started);
        }
        let operation = "reading an idempotency record";
        let Some(row) = sql::query_opt(
            &transaction,
            operation,
            "SELECT request_hash, state, response_status, response_body, COALESCE(locked_until > now(), false)
             FROM idempotency_records WHERE scope = $1 AND key = $2 FOR UPDATE",
            &[&request.scope, &request.key],
        )
        .await?
        else {
            continue;
        };
        let hash: String = column(&row, 0, operation)?;
        let state: String = column(&row, 1, operation)?;
        let status: Option<i64> = column(&row, 2, operation)?;
        let body: Option<Value> = column(&row, 3, operation)?;
        let still_locked: bool = column(&row, 4, operation)?;
        let outcome = if hash != request.request_hash {
            IdempotencyBegin::Conflict
        } else if state == "bound" {
            let run_id = body.as_ref().and_then(bound_run_id).ok_or_else(|| {
                StoreError::corrupt(format!(
                    "idempotency record {}/{} is bound but names no run",
                    request.scope, request.key
                ))
            })?;
            IdempotencyBegin::Bound { run_id }
        } else if let (true, Some(status), Some(body)) = (state == "completed", status, body) {
            let status = u16::try_from(status).map_err(|_| {
                StoreError::corrupt(format!(
                    "idempotency record {}/{} has HTTP status {status}",
                    request.scope, request.key
                ))
            })?;
            IdempotencyBegin::Replay { status, body }
        } else if still_locked {
            IdempotencyBegin::InProgress
        } else {
            // The first request's owner died without finishing: take the record over.
            sql::execute(
                &transaction,
                "taking over an idempotency record",
                "UPDATE idempotency_records SET state = 'in_progress', locked_until = now() + $3::float8 * interval '1 second',
                     updated_at = now()
                 WHERE scope = $1 AND key = $2",
                &[&request.scope, &request.key, &ttl],
            )
            .await?;
            IdempotencyBegin::Started
        };
        transaction
            .commit()
            .await
            .map_err(database("committing an idempotency record"))?;
        return Ok(outcome);
    }
    Err(StoreError::internal(format!(
        "the idempotency record {}/{} kept appearing and disappearing; retry the request",
        request.scope, request.key
    ))
    .into())
}

pub(super) async fn idempotency_complete(
    client: &impl GenericClient,
    scope: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), Failure> {
    sql::execute(
        client,
        "completing an idempotency record",
        "UPDATE idempotency_records SET state = 'completed', response_status = $3, response_body = $4,
             locked_until = NULL, updated_at = now()
         WHERE scope = $1 AND key = $2 AND state IN ('in_progress', 'bound')",
        &[&scope, &key, &i64::from(status), body],
    )
    .await?;
    Ok(())
}

pub(super) async fn idempotency_abandon(
    client: &impl GenericClient,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<(), Failure> {
    sql::execute(
        client,
        "abandoning an idempotency record",
        "DELETE FROM idempotency_records
         WHERE scope = $1 AND key = $2 AND request_hash = $3 AND state = 'in_progress'",
        &[&scope, &key, &request_hash],
    )
    .await?;
    Ok(())
}

/// Binds an idempotency key to `run_id` inside the caller's transaction, unless another request
/// bound it first (or a request with another payload holds it). Run before the transaction's
/// other writes. Returns whether the key is now bound to `run_id`.
pub(super) async fn bind_idempotency(
    client: &impl GenericClient,
    binding: &IdempotencyBinding,
    run_id: &str,
) -> Result<bool, Failure> {
    let (state, status, body) = binding.record(run_id);
    let changed = sql::execute(
        client,
        "binding an idempotency key to its run",
        "INSERT INTO idempotency_records (scope, key, request_hash, state, response_status, response_body,
             locked_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, now(), now())
         ON CONFLICT (scope, key) DO UPDATE SET state = EXCLUDED.state,
             response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body,
             locked_until = NULL, updated_at = now()
         WHERE idempotency_records.state = 'in_progress'
             AND idempotency_records.request_hash = EXCLUDED.request_hash",
        &[
            &binding.scope,
            &binding.key,
            &binding.request_hash,
            &state,
            &status,
            &body,
        ],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn try_lock(
    client: &impl GenericClient,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, Failure> {
    let changed = sql::execute(
        client,
        "taking a lock",
        "INSERT INTO locks (name, owner, expires_at, acquired_at) VALUES ($1, $2, now() + $3::float8 * interval '1 second', now())
         ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at,
             acquired_at = EXCLUDED.acquired_at
         WHERE locks.expires_at < now()",
        &[&name, &owner, &columns::seconds(ttl)],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn unlock(
    client: &impl GenericClient,
    name: &str,
    owner: &str,
) -> Result<(), Failure> {
    sql::execute(
        client,
        "releasing a lock",
        "DELETE FROM locks WHERE name = $1 AND owner = $2",
        &[&name, &owner],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_service_event(
    client: &impl GenericClient,
    event: &ServiceEvent,
) -> Result<(), Failure> {
    let created_at = columns::timestamp(
        &event.created_at,
        &format!("created_at of service event {}", event.id),
    )?;
    sql::execute(
        client,
        "recording a service event",
        "INSERT INTO service_events (id, event_type, created_at, version, host, details) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&event.id, &event.event_type, &created_at, &event.version, &event.host, &event.details],
    )
    .await?;
    Ok(())
}

pub(super) async fn list_service_events(
    client: &impl GenericClient,
    page: &PageQuery,
) -> Result<Page<ServiceEvent>, Failure> {
    let operation = "listing service events";
    let order = page.order.sql();
    let statement = format!(
        "SELECT id, event_type, created_at, version, host, details FROM (
             SELECT * FROM service_events ORDER BY position DESC LIMIT $1
         ) AS windowed ORDER BY position {order} LIMIT $2 OFFSET $3"
    );
    let (window, limit, offset) = page_numbers(page);
    let rows = sql::query(client, operation, &statement, &[&window, &limit, &offset]).await?;
    let items = rows
        .iter()
        .map(|row| {
            let created_at: Timestamp = column(row, 2, operation)?;
            Ok(ServiceEvent {
                id: column(row, 0, operation)?,
                event_type: column(row, 1, operation)?,
                created_at: columns::text(created_at),
                version: column(row, 3, operation)?,
                host: column(row, 4, operation)?,
                details: column(row, 5, operation)?,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let count = sql::query_one(
        client,
        "counting service events",
        "SELECT count(*) FROM service_events",
        &[],
    )
    .await?;
    Ok(Page {
        items,
        total: column(&count, 0, "counting service events")?,
    })
}
