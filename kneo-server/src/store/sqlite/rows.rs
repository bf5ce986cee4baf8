//! Rows prepared for the writer: documents serialized before a write is queued, on the
//! caller's task, so the single writer thread spends its time in SQLite and not in serde.

use serde_json::Value;

use super::connection::to_json;
use crate::store::{
    AuditEvent, Expect, IdempotencyBinding, Progress, QueueTransition, RunRecord, StoreError,
};

fn text_field(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A `runs` row.
pub struct RunRow {
    pub id: String,
    pub status: &'static str,
    pub created_at: String,
    pub updated_at: String,
    pub deadline_at: Option<String>,
    pub workflow_name: Option<String>,
    pub workflow_kind: Option<String>,
    pub session_id: Option<String>,
    pub document: String,
}

impl RunRow {
    pub fn new(run: &RunRecord) -> Result<RunRow, StoreError> {
        Ok(RunRow {
            id: run.id.clone(),
            status: run.status.as_str(),
            created_at: run.created_at.clone(),
            updated_at: run.updated_at.clone(),
            deadline_at: run.deadline_at.clone(),
            workflow_name: run.workflow_name.clone(),
            workflow_kind: run.workflow_kind.clone(),
            session_id: run.session_id.clone(),
            document: to_json(run)?,
        })
    }
}

/// A `trace_events` row (its position is assigned in the transaction).
pub struct TraceRow {
    pub event_id: String,
    pub event_type: String,
    pub timestamp: String,
    pub document: String,
}

impl TraceRow {
    pub fn new(event: &Value) -> Result<TraceRow, StoreError> {
        Ok(TraceRow {
            event_id: text_field(event, "event_id"),
            event_type: text_field(event, "type"),
            timestamp: text_field(event, "timestamp"),
            document: to_json(event)?,
        })
    }
}

/// A `checkpoints` row.
pub struct CheckpointRow {
    pub sequence: i64,
    pub id: String,
    pub checkpoint_type: String,
    pub created_at: String,
    pub document: String,
}

impl CheckpointRow {
    pub fn new(checkpoint: &Value) -> Result<CheckpointRow, StoreError> {
        Ok(CheckpointRow {
            sequence: checkpoint
                .get("sequence")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            id: text_field(checkpoint, "id"),
            checkpoint_type: text_field(checkpoint, "type"),
            created_at: text_field(checkpoint, "created_at"),
            document: to_json(checkpoint)?,
        })
    }
}

/// An `audit_events` row.
pub struct AuditInsert {
    pub id: String,
    pub event_type: String,
    pub run_id: Option<String>,
    pub continuation_id: Option<String>,
    pub actor: String,
    pub metadata: String,
    pub created_at: String,
}

impl AuditInsert {
    pub fn new(event: &AuditEvent) -> Result<AuditInsert, StoreError> {
        Ok(AuditInsert {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            run_id: event.run_id.clone(),
            continuation_id: event.continuation_id.clone(),
            actor: event.actor.clone(),
            metadata: to_json(&event.metadata)?,
            created_at: event.created_at.clone(),
        })
    }

    pub fn all(events: &[AuditEvent]) -> Result<Vec<AuditInsert>, StoreError> {
        events.iter().map(AuditInsert::new).collect()
    }
}

/// A [`Progress`] with every document serialized.
pub struct PreparedProgress {
    pub run: RunRow,
    pub expect: Expect,
    pub lease_holder: Option<String>,
    pub trace: Vec<TraceRow>,
    pub checkpoints: Vec<CheckpointRow>,
    pub audit: Vec<AuditInsert>,
    pub queue: Option<QueueTransition>,
    pub idempotency: Option<IdempotencyBinding>,
}

impl PreparedProgress {
    pub fn new(progress: &Progress) -> Result<PreparedProgress, StoreError> {
        Ok(PreparedProgress {
            run: RunRow::new(&progress.run)?,
            expect: progress.expect,
            lease_holder: progress.lease_holder.clone(),
            trace: progress
                .trace_events
                .iter()
                .map(TraceRow::new)
                .collect::<Result<_, _>>()?,
            checkpoints: progress
                .checkpoints
                .iter()
                .map(CheckpointRow::new)
                .collect::<Result<_, _>>()?,
            audit: AuditInsert::all(&progress.audit)?,
            queue: progress.queue.clone(),
            idempotency: progress.idempotency.clone(),
        })
    }
}
