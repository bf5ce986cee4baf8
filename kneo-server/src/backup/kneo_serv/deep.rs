//! The read-back of a deep verification of a kneo-serv archive: after the archive is restored
//! into a scratch kneo-serv store, every record is read back the way kneo-serv reads it (its
//! `payload`, a compressed checkpoint inflated) and compared with its columns, the counts per
//! status with what the archive held, and every blocked run with its continuation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use serde_json::Value;

use super::{SCHEMA_VERSION, decode_checkpoint, parse_continuation};
use crate::backup::format::Manifest;
use crate::backup::verify::{Checker, DeepCheck};
use crate::backup::{BackupError, Progress, Stage, StoreLocation, run_blocking};

/// The scratch store a kneo-serv archive was restored into.
pub(crate) enum Scratch {
    Sqlite { state_dir: PathBuf },
    Postgres { url: String },
}

/// What is read back, and how (text only, so both databases answer alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    Schema,
    Runs,
    Checkpoints,
    Queue,
    Audit,
    Idempotency,
    Continuations,
}

const QUERIES: [(Query, &str); 7] = [
    (
        Query::Schema,
        "SELECT CAST(COALESCE(MAX(version), 0) AS TEXT) FROM schema_migrations",
    ),
    // kneo-serv's own list order.
    (
        Query::Runs,
        "SELECT id, status, payload FROM runs ORDER BY updated_at DESC",
    ),
    (
        Query::Checkpoints,
        "SELECT id, run_id, CAST(sequence AS TEXT), payload FROM checkpoints ORDER BY run_id, sequence",
    ),
    (
        Query::Queue,
        "SELECT run_id, status, payload FROM run_queue",
    ),
    (
        Query::Audit,
        "SELECT id, event_type, payload FROM audit_events ORDER BY created_at DESC",
    ),
    (
        Query::Idempotency,
        "SELECT scope, key, payload FROM idempotency_records",
    ),
    (
        Query::Continuations,
        "SELECT id, run_id, payload FROM continuations",
    ),
];

/// Reads the scratch store back and compares it with the manifest and the archive's rows.
pub(crate) async fn checks(
    scratch: &Scratch,
    manifest: &Manifest,
    checker: &Checker,
    progress: &(dyn Fn(Progress) + Sync),
) -> Vec<DeepCheck> {
    progress(Progress {
        stage: Stage::Check,
        item: "kneo-serv records".into(),
        done: 0,
        total: 0,
    });
    let tally = match scratch {
        Scratch::Sqlite { state_dir } => {
            let state_dir = state_dir.clone();
            run_blocking(progress, move |_| read_sqlite(&state_dir)).await
        }
        Scratch::Postgres { url } => read_postgres(url).await,
    };
    match tally {
        Ok(tally) => tally.finish(manifest, checker),
        Err(error) => vec![DeepCheck {
            name: "read_back".into(),
            ok: false,
            detail: error.to_string(),
        }],
    }
}

fn read_sqlite(state_dir: &Path) -> Result<Tally, BackupError> {
    let connection = rusqlite::Connection::open_with_flags(
        StoreLocation::sqlite_file(state_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(BackupError::sqlite("opening the scratch store"))?;
    let mut tally = Tally::default();
    for (query, sql) in QUERIES {
        let failed = || BackupError::sqlite(format!("reading back ({sql})"));
        let mut statement = connection.prepare(sql).map_err(failed())?;
        let width = statement.column_count();
        let mut rows = statement.query([]).map_err(failed())?;
        while let Some(row) = rows.next().map_err(failed())? {
            let cells = (0..width)
                .map(|index| row.get::<_, Option<String>>(index))
                .collect::<Result<Vec<_>, _>>()
                .map_err(failed())?;
            tally.visit(query, &cells);
        }
    }
    tally.files_read = true;
    let directory = StoreLocation::continuations_dir(state_dir);
    if let Ok(entries) = std::fs::read_dir(&directory) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                let bytes = std::fs::read(entry.path())
                    .map_err(BackupError::io("reading a continuation file", entry.path()))?;
                tally.continuation_file(id, &bytes);
            }
        }
    }
    Ok(tally)
}

async fn read_postgres(url: &str) -> Result<Tally, BackupError> {
    let session = crate::backup::postgres::connect(url, "kneo-verify").await?;
    let mut tally = Tally::default();
    for (query, sql) in QUERIES {
        let failed = || BackupError::postgres(format!("reading back ({sql})"), &session.target);
        let rows = session
            .client
            .query_raw(
                sql,
                std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
            )
            .await
            .map_err(failed())?;
        futures_util::pin_mut!(rows);
        while let Some(row) = rows.try_next().await.map_err(failed())? {
            let cells = (0..row.len())
                .map(|index| row.try_get::<_, Option<String>>(index))
                .collect::<Result<Vec<_>, _>>()
                .map_err(failed())?;
            tally.visit(query, &cells);
        }
    }
    Ok(tally)
}

/// Problems of one kind: the first few described, the rest counted.
#[derive(Default)]
struct Problems {
    described: Vec<String>,
    count: u64,
}

impl Problems {
    const DESCRIBED: usize = 5;

    fn add(&mut self, detail: String) {
        self.count += 1;
        if self.described.len() < Self::DESCRIBED {
            self.described.push(detail);
        }
    }

    fn summary(&self) -> String {
        let mut text = self.described.join("; ");
        if self.count > self.described.len() as u64 {
            text.push_str(&format!(
                "; and {} more",
                self.count - self.described.len() as u64
            ));
        }
        text
    }
}

/// What was read back.
#[derive(Default)]
struct Tally {
    schema_version: Option<i64>,
    runs: i64,
    runs_by_status: HashMap<String, i64>,
    checkpoints: i64,
    checkpoints_per_run: HashMap<String, i64>,
    queue_by_status: HashMap<String, i64>,
    audit: i64,
    idempotency: i64,
    /// Continuation id → its run, from the table and from the files.
    continuations: BTreeMap<String, Option<String>>,
    continuation_files: u64,
    /// Whether the scratch store keeps continuations as files (SQLite).
    files_read: bool,
    problems: BTreeMap<&'static str, Problems>,
}

fn cell(cells: &[Option<String>], index: usize) -> &str {
    cells.get(index).and_then(Option::as_deref).unwrap_or("")
}

/// The payload as a JSON object, or why it is not one.
fn object(payload: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the payload is not a JSON object".into()),
        Err(error) => Err(format!("the payload is not JSON: {error}")),
    }
}

/// Whether the payload's `field` is the text `expected`.
fn agrees(map: &serde_json::Map<String, Value>, field: &str, expected: &str) -> bool {
    map.get(field).and_then(Value::as_str) == Some(expected)
}

impl Tally {
    fn problem(&mut self, check: &'static str, detail: String) {
        self.problems.entry(check).or_default().add(detail);
    }

    fn visit(&mut self, query: Query, cells: &[Option<String>]) {
        match query {
            Query::Schema => self.schema_version = cell(cells, 0).parse().ok(),
            Query::Runs => {
                let (id, status) = (cell(cells, 0), cell(cells, 1));
                self.runs += 1;
                *self.runs_by_status.entry(status.to_string()).or_default() += 1;
                match object(cell(cells, 2)) {
                    Ok(run) if agrees(&run, "id", id) && agrees(&run, "status", status) => {}
                    Ok(_) => self.problem(
                        "list_runs",
                        format!(
                            "run {id}: its payload's id or status differs from its row ({status})"
                        ),
                    ),
                    Err(error) => self.problem("list_runs", format!("run {id}: {error}")),
                }
            }
            Query::Checkpoints => {
                let (id, run_id, sequence) = (cell(cells, 0), cell(cells, 1), cell(cells, 2));
                self.checkpoints += 1;
                *self
                    .checkpoints_per_run
                    .entry(run_id.to_string())
                    .or_default() += 1;
                match decode_checkpoint(cell(cells, 3)) {
                    Ok(document) => {
                        let same_sequence = sequence.is_empty()
                            || document.get("sequence").map(Value::to_string).as_deref()
                                == Some(sequence);
                        let same = document.get("id").and_then(Value::as_str) == Some(id)
                            && document.get("run_id").and_then(Value::as_str) == Some(run_id);
                        if !(same && same_sequence) {
                            self.problem(
                                "checkpoints",
                                format!("checkpoint {id}: its payload's id, run or sequence differs from its row"),
                            );
                        }
                    }
                    Err(error) => self.problem("checkpoints", format!("checkpoint {id}: {error}")),
                }
            }
            Query::Queue => {
                let (run_id, status) = (cell(cells, 0), cell(cells, 1));
                *self.queue_by_status.entry(status.to_string()).or_default() += 1;
                match object(cell(cells, 2)) {
                    Ok(record) if agrees(&record, "run_id", run_id) => {}
                    Ok(_) => self.problem(
                        "queue_counts",
                        format!("queue record {run_id}: its payload names another run"),
                    ),
                    Err(error) => {
                        self.problem("queue_counts", format!("queue record {run_id}: {error}"))
                    }
                }
            }
            Query::Audit => {
                let id = cell(cells, 0);
                self.audit += 1;
                match object(cell(cells, 2)) {
                    Ok(event) if agrees(&event, "id", id) => {}
                    Ok(_) => self.problem(
                        "audit_events",
                        format!("audit event {id}: its payload has another id"),
                    ),
                    Err(error) => {
                        self.problem("audit_events", format!("audit event {id}: {error}"))
                    }
                }
            }
            Query::Idempotency => {
                let (scope, key) = (cell(cells, 0), cell(cells, 1));
                self.idempotency += 1;
                match object(cell(cells, 2)) {
                    Ok(record)
                        if agrees(&record, "scope", scope) && agrees(&record, "key", key) => {}
                    Ok(_) => self.problem(
                        "idempotency_records",
                        format!("record {scope}/{key}: its payload names another scope or key"),
                    ),
                    Err(error) => self.problem(
                        "idempotency_records",
                        format!("record {scope}/{key}: {error}"),
                    ),
                }
            }
            Query::Continuations => {
                let id = cell(cells, 0).to_string();
                match parse_continuation(cell(cells, 2).as_bytes()) {
                    Ok(entry) if entry.id == id => {
                        self.continuations.insert(id, entry.run_id);
                    }
                    Ok(_) => self.problem(
                        "continuations",
                        format!("continuation {id}: its payload has another id"),
                    ),
                    Err(error) => {
                        self.problem("continuations", format!("continuation {id}: {error}"))
                    }
                }
            }
        }
    }

    fn continuation_file(&mut self, id: &str, bytes: &[u8]) {
        self.continuation_files += 1;
        match parse_continuation(bytes) {
            Ok(entry) if entry.id == id => {
                self.continuations.insert(entry.id, entry.run_id);
            }
            Ok(entry) => self.problem(
                "continuations",
                format!("{id}.json holds continuation {:?}", entry.id),
            ),
            Err(error) => self.problem("continuations", format!("{id}.json: {error}")),
        }
    }

    fn finish(mut self, manifest: &Manifest, checker: &Checker) -> Vec<DeepCheck> {
        let mut checks = Vec::new();
        let mut check = |problems: &BTreeMap<&'static str, Problems>,
                         name: &'static str,
                         ok: bool,
                         detail: String| {
            let problem = problems.get(name);
            checks.push(DeepCheck {
                name: name.into(),
                ok: ok && problem.is_none(),
                detail: match problem {
                    Some(problem) => format!("{detail}; {}", problem.summary()),
                    None => detail,
                },
            });
        };
        let problems = std::mem::take(&mut self.problems);
        check(
            &problems,
            "schema_version",
            self.schema_version == Some(SCHEMA_VERSION),
            format!(
                "the restored store is at kneo-serv schema version {}",
                self.schema_version
                    .map_or("(none)".to_string(), |version| version.to_string())
            ),
        );
        check(
            &problems,
            "list_runs",
            self.runs == manifest.rows_of("runs"),
            format!(
                "{} run(s) read back, every payload parsed; the manifest counts {}",
                self.runs,
                manifest.rows_of("runs")
            ),
        );
        let statuses: BTreeSet<&String> = self
            .runs_by_status
            .keys()
            .chain(checker.runs_by_status.keys())
            .collect();
        let by_status: Vec<String> = statuses
            .iter()
            .map(|status| {
                format!(
                    "{status} {}/{}",
                    self.runs_by_status.get(*status).copied().unwrap_or(0),
                    checker.runs_by_status.get(*status).copied().unwrap_or(0)
                )
            })
            .collect();
        check(
            &problems,
            "list_runs_by_status",
            self.runs_by_status == checker.runs_by_status,
            format!("restored/archived: {}", by_status.join(", ")),
        );
        let per_run_ok = checker.per_run.iter().all(|(run, (_, expected))| {
            self.checkpoints_per_run.get(run).copied().unwrap_or(0) == *expected
        }) && self.checkpoints == manifest.rows_of("checkpoints");
        check(
            &problems,
            "checkpoints",
            per_run_ok,
            format!(
                "{} checkpoint(s) of {} run(s) read back and decoded; the manifest counts {}",
                self.checkpoints,
                self.checkpoints_per_run.len(),
                manifest.rows_of("checkpoints")
            ),
        );
        check(
            &problems,
            "queue_counts",
            self.queue_by_status == checker.queue_by_status,
            format!(
                "queue records by status: {:?}",
                sorted(&self.queue_by_status)
            ),
        );
        check(
            &problems,
            "audit_events",
            self.audit == manifest.rows_of("audit_events"),
            format!(
                "{} audit event(s) read back; the manifest counts {}",
                self.audit,
                manifest.rows_of("audit_events")
            ),
        );
        check(
            &problems,
            "idempotency_records",
            self.idempotency == manifest.rows_of("idempotency_records"),
            format!(
                "{} idempotency record(s) read back; the manifest counts {}",
                self.idempotency,
                manifest.rows_of("idempotency_records")
            ),
        );
        let mut missing = Vec::new();
        for (run_id, continuation) in &checker.blocked {
            let found = continuation
                .as_ref()
                .and_then(|id| self.continuations.get(id))
                .is_some_and(|owner| owner.as_deref() == Some(run_id.as_str()));
            if !found {
                missing.push(run_id.clone());
            }
        }
        missing.sort();
        let announced: BTreeSet<&str> = manifest
            .continuations
            .warnings
            .iter()
            .map(|warning| warning.run_id.as_str())
            .collect();
        let unannounced: Vec<&String> = missing
            .iter()
            .filter(|run| !announced.contains(run.as_str()))
            .collect();
        check(
            &problems,
            "continuations",
            // On Postgres the archive's files became rows; on SQLite a Postgres archive's rows
            // became files beside them.
            unannounced.is_empty()
                && (!self.files_read || self.continuation_files >= manifest.continuations.count),
            format!(
                "{} blocked run(s), {} with their continuation read back ({} file(s), the manifest counts {}){}",
                checker.blocked.len(),
                checker.blocked.len() - missing.len(),
                self.continuation_files,
                manifest.continuations.count,
                if unannounced.is_empty() {
                    String::new()
                } else {
                    format!("; no continuation for run(s) {unannounced:?}")
                }
            ),
        );
        checks
    }
}

fn sorted(counts: &HashMap<String, i64>) -> BTreeMap<&str, i64> {
    counts
        .iter()
        .map(|(status, count)| (status.as_str(), *count))
        .collect()
}
