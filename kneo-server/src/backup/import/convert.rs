//! kneo-serv 1.2 records into kneo-server records, one row at a time as the kneo-serv archive
//! streams by. kneo-serv's archive order is chosen so that every kneo-server table comes out in
//! its own key order without sorting: checkpoints by run and sequence (held aside until their
//! runs are known to be carried; each run's last sequence goes into the run, where kneo-server
//! counts its checkpoints), runs by id (their trace with them), queue records by run, audit
//! events by time (numbered in that order).
//!
//! Each record goes through kneo-server's own type ([`RunRecord`], [`AuditEvent`],
//! [`Continuation`], [`QueueStatus`]) before it is written, so what kneo-server gets is what
//! its store would have written itself; a record that does not fit is listed, not carried.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{ImportPlan, NotCarried};
use crate::backup::archive::{Packer, Visitor};
use crate::backup::files::HashingWriter;
use crate::backup::format::{
    self, ContinuationEntry, ContinuationSummary, Family, KNEO, Manifest, SourceInfo, TableSpec,
};
use crate::backup::rows::{Cell, JsonMode, LineEncoder, Row};
use crate::backup::snapshot::{Captured, FinishedFile, TableWriter};
use crate::backup::{BackupError, Progress, Stage, kneo_serv};
use crate::clock;
use crate::store::{AuditEvent, Continuation, QueueStatus, RunRecord, RunStatus};

/// The fields of kneo-serv 1.2's run record (`RunState`); any other field of a payload is one
/// kneo-serv did not write, and kneo-server has no place for.
const KNEO_SERV_RUN_FIELDS: &[&str] = &[
    "id",
    "status",
    "agent_name",
    "workflow_name",
    "workflow_kind",
    "input_text",
    "output_text",
    "current_step_index",
    "current_step_id",
    "current_node_id",
    "visited_steps",
    "visited_nodes",
    "messages",
    "pending_human_request",
    "continuation_id",
    "trace_events",
    "trace_dropped",
    "metadata",
    "error",
    "parent_run_id",
    "session_id",
    "tags",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "deadline_at",
];

/// Rows converted between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// A blocked run as converted: the task it waits on, and when it blocked.
struct Blocked {
    continuation_id: Option<String>,
    updated_at: String,
}

/// Converts the rows it is shown into kneo-server table files.
pub(super) struct Converter<'a> {
    writers: BTreeMap<&'static str, TableWriter>,
    /// Carried runs.
    runs: HashSet<String>,
    blocked: HashMap<String, Blocked>,
    /// Continuation documents found (table rows, then files; a file wins), by id.
    continuations: BTreeMap<String, Vec<u8>>,
    next_audit_position: i64,
    /// Converted checkpoints, until their runs are converted.
    held: HeldCheckpoints,
    /// The highest checkpoint sequence of each run.
    last_sequence: HashMap<String, i64>,
    /// Where the table files are written; the continuation files go beside them.
    scratch: PathBuf,
    not_carried: Vec<NotCarried>,
    /// Adjustments counted by what they were, for one note each.
    adjusted: BTreeMap<String, u64>,
    /// Fields of carried records that kneo-server has no place for: `<table>.<field>` → count.
    dropped_fields: BTreeMap<String, u64>,
    converted: u64,
    report: &'a dyn Fn(Progress),
    /// The first write error; the pass goes on so the verification still reports.
    failed: Option<BackupError>,
}

fn kneo_table(name: &str) -> Result<&'static TableSpec, BackupError> {
    KNEO.table(name).ok_or_else(|| {
        BackupError::Internal(format!("kneo-server has no table {name} to import into"))
    })
}

/// A timestamp in kneo-server's one format, from kneo-serv's ISO text.
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    clock::parse(text)
}

/// A timestamp from kneo-serv's epoch seconds.
fn epoch(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    DateTime::from_timestamp_micros((seconds * 1_000_000.0).round() as i64)
}

fn real(row: &Row, table: &TableSpec, column: &str) -> Option<f64> {
    match row.get(table, column) {
        Some(Cell::Real(number)) => Some(*number),
        _ => None,
    }
}

fn text<'r>(row: &'r Row, table: &TableSpec, column: &str) -> Option<&'r str> {
    row.text(table, column)
}

fn object(payload: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("its payload is not a JSON object".into()),
        Err(error) => Err(format!("its payload is not JSON: {error}")),
    }
}

fn json_text(value: &impl serde::Serialize) -> Result<String, BackupError> {
    serde_json::to_string(value)
        .map_err(|error| BackupError::Internal(format!("serializing a record: {error}")))
}

impl<'a> Converter<'a> {
    pub(super) fn new(scratch: &Path, report: &'a dyn Fn(Progress)) -> Result<Self, BackupError> {
        let mut writers = BTreeMap::new();
        for table in KNEO.tables {
            writers.insert(table.name, TableWriter::create(scratch, table)?);
        }
        Ok(Converter {
            held: HeldCheckpoints::create(&scratch.join("checkpoints.held"))?,
            last_sequence: HashMap::new(),
            writers,
            runs: HashSet::new(),
            blocked: HashMap::new(),
            continuations: BTreeMap::new(),
            next_audit_position: 1,
            scratch: scratch.to_path_buf(),
            not_carried: Vec::new(),
            adjusted: BTreeMap::new(),
            dropped_fields: BTreeMap::new(),
            converted: 0,
            report,
            failed: None,
        })
    }

    fn writer(&mut self, name: &str) -> Result<&mut TableWriter, BackupError> {
        self.writers
            .get_mut(name)
            .ok_or_else(|| BackupError::Internal(format!("no converted table {name}")))
    }

    fn skip(&mut self, kind: &str, id: impl Into<String>, reason: impl Into<String>) {
        self.not_carried.push(NotCarried {
            kind: kind.into(),
            id: id.into(),
            reason: reason.into(),
        });
    }

    fn adjust(&mut self, what: impl Into<String>) {
        *self.adjusted.entry(what.into()).or_default() += 1;
    }

    fn convert(&mut self, table: &'static TableSpec, row: &Row) -> Result<(), BackupError> {
        match table.name {
            "runs" => self.run(table, row),
            "run_queue" => self.queue_record(table, row),
            "checkpoints" => self.checkpoint(table, row),
            "audit_events" => self.audit_event(table, row),
            "idempotency_records" => self.idempotency_record(table, row),
            "project_metadata" => self.project_metadata(table, row),
            "continuations" => {
                if let (Some(id), Some(payload)) =
                    (text(row, table, "id"), text(row, table, "payload"))
                {
                    self.continuations
                        .entry(id.to_string())
                        .or_insert_with(|| payload.as_bytes().to_vec());
                }
                Ok(())
            }
            "locks" => {
                let name = text(row, table, "name").unwrap_or_default().to_string();
                self.skip(
                    "lock",
                    name,
                    "a lock of a kneo-serv process (its idempotency or resume guard); it ends with that process, and kneo-server takes its own",
                );
                Ok(())
            }
            // kneo-serv's migration ledger: kneo-server's store keeps its own.
            "schema_migrations" => Ok(()),
            other => {
                self.skip(
                    "table",
                    other,
                    "a kneo-serv table this kneo-ops does not convert",
                );
                Ok(())
            }
        }
    }

    fn run(&mut self, table: &TableSpec, row: &Row) -> Result<(), BackupError> {
        let id = text(row, table, "id").unwrap_or_default().to_string();
        let mut payload = match object(text(row, table, "payload").unwrap_or_default()) {
            Ok(payload) => payload,
            Err(reason) => {
                self.skip("run", &id, reason);
                return Ok(());
            }
        };
        if payload.get("id").and_then(Value::as_str) != Some(id.as_str()) {
            self.skip("run", &id, "its payload is the record of another run");
            return Ok(());
        }
        let unknown: Vec<String> = payload
            .keys()
            .filter(|key| !KNEO_SERV_RUN_FIELDS.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            payload.remove(&key);
            *self
                .dropped_fields
                .entry(format!("runs.{key}"))
                .or_default() += 1;
        }
        let events = match payload.remove("trace_events") {
            Some(Value::Array(events)) => events,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                self.skip("run", &id, "its trace_events is not a list");
                return Ok(());
            }
        };
        // kneo-serv keeps the deadline as epoch seconds, kneo-server as a timestamp.
        if let Some(seconds) = payload.get("deadline_at").and_then(Value::as_f64) {
            match epoch(seconds) {
                Some(at) => {
                    payload.insert("deadline_at".into(), Value::String(clock::format(at)));
                }
                None => {
                    self.skip(
                        "run",
                        &id,
                        format!("its deadline_at {seconds} is not a time"),
                    );
                    return Ok(());
                }
            }
        }
        let mut record: RunRecord = match serde_json::from_value(Value::Object(payload)) {
            Ok(record) => record,
            Err(error) => {
                self.skip(
                    "run",
                    &id,
                    format!("its payload is not a run record kneo-server knows: {error}"),
                );
                return Ok(());
            }
        };
        let (Some(created_at), Some(updated_at)) =
            (timestamp(&record.created_at), timestamp(&record.updated_at))
        else {
            self.skip(
                "run",
                &id,
                format!(
                    "its created_at {:?} or updated_at {:?} is not an RFC 3339 time",
                    record.created_at, record.updated_at
                ),
            );
            return Ok(());
        };
        if let Some(sequence) = self.last_sequence.get(&id) {
            // kneo-server numbers a run's next checkpoint after this.
            record
                .metadata
                .insert("checkpoint_sequence".into(), Value::from(*sequence));
        }
        if text(row, table, "status") != Some(record.status.as_str()) {
            self.adjust("runs whose status column differed from their payload took the payload's");
        }
        let trace = self.trace(&id, events);
        record.trace_event_count = trace.len() as i64;
        let deadline_at = record.deadline_at.as_deref().and_then(timestamp);
        let document = json_text(&record)?;
        let out = self.writer("runs")?;
        out.encoder.begin();
        out.encoder.text("id", &record.id);
        out.encoder.text("status", record.status.as_str());
        out.encoder.timestamp("created_at", created_at);
        out.encoder.timestamp("updated_at", updated_at);
        match deadline_at {
            Some(at) => out.encoder.timestamp("deadline_at", at),
            None => out.encoder.null("deadline_at"),
        }
        match &record.workflow_name {
            Some(name) => out.encoder.text("workflow_name", name),
            None => out.encoder.null("workflow_name"),
        }
        out.encoder.raw_json("document", &document);
        // The list filters' columns, copied from the run as kneo-server's store does.
        for (column, value) in [
            ("workflow_kind", &record.workflow_kind),
            ("session_id", &record.session_id),
        ] {
            match value {
                Some(value) => out.encoder.text(column, value),
                None => out.encoder.null(column),
            }
        }
        out.write_row()?;
        for (position, event) in trace.into_iter().enumerate() {
            let out = self.writer("trace_events")?;
            out.encoder.begin();
            out.encoder.text("run_id", &id);
            out.encoder.int("position", position as i64 + 1);
            out.encoder.text("event_id", &event.event_id);
            out.encoder.text("event_type", &event.event_type);
            match event.timestamp {
                Some(at) => out.encoder.timestamp("timestamp", at),
                None => out.encoder.null("timestamp"),
            }
            out.encoder.raw_json("document", &event.document);
            out.write_row()?;
        }
        if record.status == RunStatus::Blocked {
            self.blocked.insert(
                id.clone(),
                Blocked {
                    continuation_id: record.continuation_id.clone(),
                    updated_at: clock::format(updated_at),
                },
            );
        }
        self.runs.insert(id);
        self.tick("runs");
        Ok(())
    }

    /// A run's trace events as kneo-server rows: each needs an event id (unique in the run) and
    /// a type; a missing or unreadable timestamp is kept as none, as kneo-server does.
    fn trace(&mut self, run_id: &str, events: Vec<Value>) -> Vec<TraceRow> {
        let mut seen = HashSet::new();
        let mut rows = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let label = format!("{run_id}#{}", index + 1);
            let event_id = event
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let event_type = event
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string);
            let (Some(event_id), Some(event_type)) = (event_id, event_type) else {
                self.skip(
                    "trace_event",
                    label,
                    "it has no event_id or no type, which kneo-server keys its trace by",
                );
                continue;
            };
            if !seen.insert(event_id.clone()) {
                self.skip(
                    "trace_event",
                    format!("{run_id}/{event_id}"),
                    "a second event with the same event_id in the run (kneo-server keeps the first)",
                );
                continue;
            }
            let timestamp = event
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(timestamp);
            let document = match serde_json::to_string(&event) {
                Ok(document) => document,
                Err(error) => {
                    self.skip(
                        "trace_event",
                        label,
                        format!("it cannot be written: {error}"),
                    );
                    continue;
                }
            };
            rows.push(TraceRow {
                event_id,
                event_type,
                timestamp,
                document,
            });
        }
        rows
    }

    fn queue_record(&mut self, table: &TableSpec, row: &Row) -> Result<(), BackupError> {
        let run_id = text(row, table, "run_id").unwrap_or_default().to_string();
        if !self.runs.contains(&run_id) {
            self.skip(
                "queue_record",
                &run_id,
                "its run was not carried (see above)",
            );
            return Ok(());
        }
        let status_text = text(row, table, "status").unwrap_or_default();
        let Some(status) = QueueStatus::parse(status_text) else {
            self.skip(
                "queue_record",
                &run_id,
                format!("its status {status_text:?} is not one of kneo-server's queue statuses"),
            );
            return Ok(());
        };
        let times = (
            real(row, table, "created_at").and_then(epoch),
            real(row, table, "updated_at").and_then(epoch),
        );
        let (Some(enqueued_at), Some(updated_at)) = times else {
            self.skip(
                "queue_record",
                &run_id,
                "its created_at or updated_at is not a time",
            );
            return Ok(());
        };
        let lease_expires_at = real(row, table, "lease_expires_at").and_then(epoch);
        if status == QueueStatus::Queued
            && real(row, table, "available_at")
                .and_then(epoch)
                .is_some_and(|available| available > clock::now())
        {
            self.adjust(
                "queued runs held back until a later available_at (a retry delay) are claimable at once: kneo-server's queue has no delay",
            );
        }
        if let Some(payload) = text(row, table, "payload")
            && object(payload).is_ok_and(|record| {
                record
                    .get("metadata")
                    .is_some_and(|metadata| metadata.as_object().is_some_and(|m| !m.is_empty()))
            })
        {
            *self
                .dropped_fields
                .entry("run_queue.metadata".into())
                .or_default() += 1;
        }
        let attempts = match row.get(table, "attempts") {
            Some(Cell::Int(attempts)) => *attempts,
            _ => 0,
        };
        let lease_owner = text(row, table, "lease_owner").map(str::to_string);
        let error = text(row, table, "error").map(str::to_string);
        let out = self.writer("run_queue")?;
        out.encoder.begin();
        out.encoder.text("run_id", &run_id);
        out.encoder.text("status", status.as_str());
        out.encoder.int("attempts", attempts);
        match &lease_owner {
            Some(owner) => out.encoder.text("lease_owner", owner),
            None => out.encoder.null("lease_owner"),
        }
        match lease_expires_at {
            Some(at) => out.encoder.timestamp("lease_expires_at", at),
            None => out.encoder.null("lease_expires_at"),
        }
        out.encoder.timestamp("enqueued_at", enqueued_at);
        out.encoder.timestamp("updated_at", updated_at);
        match &error {
            Some(error) => out.encoder.text("last_error", error),
            None => out.encoder.null("last_error"),
        }
        out.write_row()?;
        self.tick("run_queue");
        Ok(())
    }

    fn checkpoint(&mut self, table: &TableSpec, row: &Row) -> Result<(), BackupError> {
        let id = text(row, table, "id").unwrap_or_default().to_string();
        let run_id = text(row, table, "run_id").unwrap_or_default().to_string();
        let Some(Cell::Int(sequence)) = row.get(table, "sequence") else {
            self.skip(
                "checkpoint",
                &id,
                "it has no sequence, which kneo-server orders a run's checkpoints by",
            );
            return Ok(());
        };
        let sequence = *sequence;
        let document =
            match kneo_serv::decode_checkpoint(text(row, table, "payload").unwrap_or_default()) {
                Ok(document) => document,
                Err(reason) => {
                    self.skip("checkpoint", &id, reason);
                    return Ok(());
                }
            };
        if document.get("id").and_then(Value::as_str) != Some(id.as_str()) {
            self.skip("checkpoint", &id, "its payload is another checkpoint");
            return Ok(());
        }
        let checkpoint_type = text(row, table, "type").unwrap_or_default().to_string();
        let created_at = text(row, table, "created_at").and_then(timestamp);
        let document = json_text(&document)?;
        let encoder = &mut self.held.encoder;
        encoder.begin();
        encoder.text("run_id", &run_id);
        encoder.int("sequence", sequence);
        encoder.text("id", &id);
        encoder.text("checkpoint_type", &checkpoint_type);
        match created_at {
            Some(at) => encoder.timestamp("created_at", at),
            None => encoder.null("created_at"),
        }
        encoder.raw_json("document", &document);
        self.held.hold(run_id.clone(), id)?;
        let last = self.last_sequence.entry(run_id).or_insert(sequence);
        *last = (*last).max(sequence);
        self.tick("checkpoints");
        Ok(())
    }

    fn audit_event(&mut self, table: &TableSpec, row: &Row) -> Result<(), BackupError> {
        let id = text(row, table, "id").unwrap_or_default().to_string();
        let mut payload = match object(text(row, table, "payload").unwrap_or_default()) {
            Ok(payload) => payload,
            Err(reason) => {
                self.skip("audit_event", &id, reason);
                return Ok(());
            }
        };
        if payload.get("actor").is_none_or(Value::is_null) {
            // kneo-server names the service itself `system` where kneo-serv left the actor empty.
            payload.insert("actor".into(), Value::String("system".into()));
            self.adjust("audit events without an actor were recorded with actor `system`");
        }
        let event = match serde_json::from_value::<AuditEvent>(Value::Object(payload)) {
            Ok(event) if event.id == id => event,
            Ok(_) => {
                self.skip("audit_event", &id, "its payload is another event");
                return Ok(());
            }
            Err(error) => {
                self.skip(
                    "audit_event",
                    &id,
                    format!("its payload is not an audit event kneo-server knows: {error}"),
                );
                return Ok(());
            }
        };
        let Some(created_at) = timestamp(&event.created_at) else {
            self.skip(
                "audit_event",
                &id,
                format!(
                    "its created_at {:?} is not an RFC 3339 time",
                    event.created_at
                ),
            );
            return Ok(());
        };
        let metadata = json_text(&event.metadata)?;
        let position = self.next_audit_position;
        self.next_audit_position += 1;
        let out = self.writer("audit_events")?;
        out.encoder.begin();
        out.encoder.int("position", position);
        out.encoder.text("id", &event.id);
        out.encoder.text("event_type", &event.event_type);
        match &event.run_id {
            Some(run_id) => out.encoder.text("run_id", run_id),
            None => out.encoder.null("run_id"),
        }
        match &event.continuation_id {
            Some(continuation_id) => out.encoder.text("continuation_id", continuation_id),
            None => out.encoder.null("continuation_id"),
        }
        out.encoder.text("actor", &event.actor);
        out.encoder.raw_json("metadata", &metadata);
        out.encoder.timestamp("created_at", created_at);
        out.write_row()?;
        self.tick("audit_events");
        Ok(())
    }

    fn idempotency_record(&mut self, table: &TableSpec, row: &Row) -> Result<(), BackupError> {
        let scope = text(row, table, "scope").unwrap_or_default().to_string();
        let key = text(row, table, "key").unwrap_or_default().to_string();
        let label = format!("{scope}/{key}");
        let payload = match object(text(row, table, "payload").unwrap_or_default()) {
            Ok(payload) => payload,
            Err(reason) => {
                self.skip("idempotency_record", &label, reason);
                return Ok(());
            }
        };
        let Some(response) = payload
            .get("response")
            .filter(|response| response.is_object())
        else {
            self.skip(
                "idempotency_record",
                &label,
                "it holds no stored response to replay",
            );
            return Ok(());
        };
        let times = (
            text(row, table, "created_at").and_then(timestamp),
            text(row, table, "updated_at").and_then(timestamp),
        );
        let (Some(created_at), Some(updated_at)) = times else {
            self.skip(
                "idempotency_record",
                &label,
                "its created_at or updated_at is not a time",
            );
            return Ok(());
        };
        let status = match row.get(table, "status_code") {
            Some(Cell::Int(status)) => *status,
            _ => 200,
        };
        let response = json_text(response)?;
        let request_hash = text(row, table, "request_hash")
            .unwrap_or_default()
            .to_string();
        let out = self.writer("idempotency_records")?;
        out.encoder.begin();
        out.encoder.text("scope", &scope);
        out.encoder.text("key", &key);
        out.encoder.text("request_hash", &request_hash);
        // kneo-serv stores a record once its request has answered.
        out.encoder.text("state", "completed");
        out.encoder.int("response_status", status);
        out.encoder.raw_json("response_body", &response);
        out.encoder.null("locked_until");
        out.encoder.timestamp("created_at", created_at);
        out.encoder.timestamp("updated_at", updated_at);
        out.write_row()?;
        self.tick("idempotency_records");
        Ok(())
    }

    fn project_metadata(&mut self, table: &TableSpec, row: &Row) -> Result<(), BackupError> {
        let key = text(row, table, "key").unwrap_or_default().to_string();
        let Some(updated_at) = text(row, table, "updated_at").and_then(timestamp) else {
            self.skip("project_metadata", &key, "its updated_at is not a time");
            return Ok(());
        };
        let value = text(row, table, "value").unwrap_or_default().to_string();
        let out = self.writer("project_metadata")?;
        out.encoder.begin();
        out.encoder.text("key", &key);
        out.encoder.text("value", &value);
        out.encoder.timestamp("updated_at", updated_at);
        out.write_row()?;
        Ok(())
    }

    fn tick(&mut self, table: &str) {
        self.converted += 1;
        if self.converted.is_multiple_of(PROGRESS_EVERY) {
            (self.report)(Progress {
                stage: Stage::Convert,
                item: table.into(),
                done: self.converted,
                total: 0,
            });
        }
    }

    /// The continuation of each blocked run, as kneo-server's continuation document; every
    /// other one is listed.
    fn continuations(&mut self) -> (Vec<(String, Vec<u8>)>, ContinuationSummary) {
        let mut summary = ContinuationSummary::default();
        let mut carried = Vec::new();
        let mut matched = HashSet::new();
        for (id, bytes) in std::mem::take(&mut self.continuations) {
            match self.resumable_continuation(&id, &bytes) {
                Ok((run_id, document)) => {
                    matched.insert(run_id);
                    carried.push((id, document));
                }
                Err(reason) => self.skip("continuation", &id, reason),
            }
        }
        let mut unmatched: Vec<(&String, &Blocked)> = self
            .blocked
            .iter()
            .filter(|(run_id, _)| !matched.contains(*run_id))
            .collect();
        unmatched.sort_by_key(|(run_id, _)| run_id.as_str());
        for (run_id, blocked) in unmatched {
            summary.warnings.push(format::ConsistencyWarning {
                kind: "continuation_missing".into(),
                run_id: run_id.clone(),
                continuation_id: blocked.continuation_id.clone(),
                detail: "the run is blocked but its continuation was not in the kneo-serv archive; imported, it cannot be resumed (runbook § 8.2)".into(),
            });
        }
        summary.count = carried.len() as u64;
        (carried, summary)
    }

    /// A kneo-serv continuation as kneo-server's document, with the run it resumes.
    fn resumable_continuation(&self, id: &str, bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
        let mut document = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(document)) => document,
            _ => return Err("it is not a JSON object".into()),
        };
        let run_id = document
            .get("run_id")
            .and_then(Value::as_str)
            .ok_or("it names no run")?
            .to_string();
        let blocked = self.blocked.get(&run_id).ok_or_else(|| {
            if self.runs.contains(&run_id) {
                format!("its run {run_id} is not blocked: a stale continuation")
            } else {
                format!("its run {run_id} was not carried")
            }
        })?;
        if blocked.continuation_id.as_deref() != Some(id) {
            return Err(format!(
                "its run {run_id} is blocked on {:?}, not on it",
                blocked.continuation_id
            ));
        }
        // kneo-server's continuation records when the task was opened; kneo-serv's does not, so
        // it is the time the run blocked.
        document
            .entry("created_at")
            .or_insert_with(|| Value::String(blocked.updated_at.clone()));
        let continuation: Continuation = serde_json::from_value(Value::Object(document))
            .map_err(|error| format!("it is not a continuation kneo-server can resume: {error}"))?;
        if continuation.id != id {
            return Err(format!("it holds continuation {:?}", continuation.id));
        }
        let bytes = serde_json::to_vec_pretty(&continuation)
            .map_err(|error| format!("it cannot be written: {error}"))?;
        Ok((run_id, bytes))
    }

    /// Finishes the table files and the continuations, hands them to the packer in archive order
    /// and returns what the manifest needs and the plan.
    pub(super) fn finish(
        mut self,
        source: &Manifest,
        archive: &Path,
        packer: &Packer,
    ) -> Result<(Captured, ImportPlan), BackupError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        self.release_checkpoints()?;
        let (continuations, summary) = self.continuations();
        let mut captured = Captured::new(
            Family::Kneo,
            SourceInfo {
                kind: source.source.kind.clone(),
                location: format!(
                    "kneo-serv 1.2 store {} (archive {})",
                    source.source.location,
                    archive.display()
                ),
            },
        );
        captured.created_at = clock::now_text();
        captured.schema_version = crate::store::SCHEMA_VERSION;
        let mut carried = BTreeMap::new();
        for table in KNEO.tables {
            let writer = self.writers.remove(table.name).ok_or_else(|| {
                BackupError::Internal(format!("no converted table {}", table.name))
            })?;
            let file = writer.finish()?;
            if file.rows > 0 {
                carried.insert(table.name.to_string(), file.rows);
            }
            captured.add_table(packer, kneo_table(table.name)?, file);
        }
        let directory = self.scratch.join("continuations");
        std::fs::create_dir_all(&directory).map_err(BackupError::io(
            "creating the scratch directory",
            &directory,
        ))?;
        for (id, bytes) in &continuations {
            let path = directory.join(format!("{id}.json"));
            let file = std::fs::File::create(&path)
                .map_err(BackupError::io("creating the scratch file", &path))?;
            let mut writer = HashingWriter::new(file);
            std::io::Write::write_all(&mut writer, bytes)
                .map_err(BackupError::io("writing the scratch file", &path))?;
            let (_, sha256, size) = writer.finish();
            captured.add_file(
                packer,
                KNEO.continuation_path(id),
                FinishedFile {
                    path,
                    sha256,
                    bytes: size,
                    rows: 0,
                },
            );
        }
        captured.continuations = summary.clone();
        let mut notes: Vec<String> = self
            .adjusted
            .iter()
            .map(|(what, count)| format!("{count}: {what}"))
            .collect();
        for warning in &summary.warnings {
            notes.push(format!("run {}: {}", warning.run_id, warning.detail));
        }
        if carried.contains_key("project_metadata") {
            notes.push("project metadata (environment policies) is carried as it was stored; kneo-server keeps it but does not serve the /policies routes yet, nor gate runs on it".into());
        }
        if carried.contains_key("idempotency_records") {
            notes.push("idempotency records are carried as kneo-serv stored them, as history: kneo-server keys a record by its caller and the key and hashes the request as sent, where kneo-serv keyed it by the key alone and hashed the request with its defaults filled in, so a retry of a kneo-serv request runs again on kneo-server instead of replaying".into());
        }
        for (field, count) in &self.dropped_fields {
            self.not_carried.push(NotCarried {
                kind: "field".into(),
                id: field.clone(),
                reason: format!(
                    "{count} record(s) have it; kneo-server's record has no such field (the record itself is carried)"
                ),
            });
        }
        let found = source
            .tables
            .iter()
            .filter(|table| table.rows > 0)
            .map(|table| (table.name.clone(), table.rows))
            .chain(
                (source.continuations.count > 0)
                    .then(|| ("continuation files".to_string(), source.continuations.count)),
            )
            .collect();
        let plan = ImportPlan {
            source: format!("{} store {}", source.source.kind, source.source.location),
            backed_up_at: source.created_at.clone(),
            found,
            carried,
            continuations: summary.count,
            not_carried: self.not_carried,
            notes,
        };
        Ok((captured, plan))
    }
}

impl Converter<'_> {
    /// Moves the held checkpoints of carried runs into the checkpoints table, in their order.
    fn release_checkpoints(&mut self) -> Result<(), BackupError> {
        let held = std::mem::replace(&mut self.held, HeldCheckpoints::closed());
        let (path, owners) = held.finish()?;
        let Some(path) = path else {
            return Ok(());
        };
        let file = fs::File::open(&path).map_err(BackupError::io("reading", &path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        for (run_id, id) in owners {
            line.clear();
            reader
                .read_until(b'\n', &mut line)
                .map_err(BackupError::io("reading", &path))?;
            if self.runs.contains(&run_id) {
                self.writer("checkpoints")?.write_line(&line)?;
            } else {
                self.skip(
                    "checkpoint",
                    id,
                    format!("its run {run_id} was not carried"),
                );
            }
        }
        drop(reader);
        let _ = fs::remove_file(&path);
        Ok(())
    }
}

/// The run id and the checkpoint id of a held line.
type Owner = (String, String);

/// Converted checkpoint lines, each with its run and id, waiting for their runs.
struct HeldCheckpoints {
    file: Option<(PathBuf, BufWriter<fs::File>)>,
    owners: Vec<Owner>,
    encoder: LineEncoder,
}

impl HeldCheckpoints {
    fn create(path: &Path) -> Result<HeldCheckpoints, BackupError> {
        let file = fs::File::create(path).map_err(BackupError::io("creating", path))?;
        Ok(HeldCheckpoints {
            file: Some((path.to_path_buf(), BufWriter::with_capacity(1 << 20, file))),
            owners: Vec::new(),
            encoder: LineEncoder::new(),
        })
    }

    fn closed() -> HeldCheckpoints {
        HeldCheckpoints {
            file: None,
            owners: Vec::new(),
            encoder: LineEncoder::new(),
        }
    }

    /// Holds the line the encoder built, for checkpoint `id` of run `run_id`.
    fn hold(&mut self, run_id: String, id: String) -> Result<(), BackupError> {
        let Some((path, out)) = self.file.as_mut() else {
            return Err(BackupError::Internal(
                "the held checkpoints are closed".into(),
            ));
        };
        out.write_all(self.encoder.finish())
            .map_err(BackupError::io("writing", path.as_path()))?;
        self.owners.push((run_id, id));
        Ok(())
    }

    /// The file of held lines (none once closed) and the (run, checkpoint) of each line.
    fn finish(self) -> Result<(Option<PathBuf>, Vec<Owner>), BackupError> {
        let Some((path, out)) = self.file else {
            return Ok((None, self.owners));
        };
        out.into_inner()
            .map_err(|error| error.into_error())
            .map_err(BackupError::io("writing", &path))?;
        Ok((Some(path), self.owners))
    }
}

/// A trace event as a kneo-server row.
struct TraceRow {
    event_id: String,
    event_type: String,
    timestamp: Option<DateTime<Utc>>,
    document: String,
}

impl Visitor for Converter<'_> {
    fn mode(&self) -> JsonMode {
        JsonMode::Keep
    }

    fn row(&mut self, table: &'static TableSpec, row: Row) -> Result<(), BackupError> {
        if self.failed.is_some() || table.family != Family::KneoServ {
            return Ok(());
        }
        if let Err(error) = self.convert(table, &row) {
            self.failed = Some(error);
        }
        Ok(())
    }

    fn continuation(
        &mut self,
        continuation: ContinuationEntry,
        raw: &[u8],
    ) -> Result<(), BackupError> {
        if continuation.family == Family::KneoServ {
            // A file is what kneo-serv on SQLite resumes from: it wins over a table row.
            self.continuations.insert(continuation.id, raw.to_vec());
        }
        Ok(())
    }
}
