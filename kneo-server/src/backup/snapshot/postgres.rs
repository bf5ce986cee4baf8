//! Snapshot of a Postgres store: every table and the continuations read at one point in time
//! while the service keeps writing.
//!
//! One `REPEATABLE READ READ ONLY` transaction fixes the snapshot and exports it
//! (`pg_export_snapshot`). With `sessions: 1` it reads every table itself. With more, that many
//! other sessions import the same snapshot (`SET TRANSACTION SNAPSHOT`, as `pg_dump -j` does)
//! and export the tables in parallel, largest first: they all see exactly the same committed
//! state, and the tables reach the packer in archive order as soon as each is done. The first
//! transaction stays open until the end and reads the continuations itself.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use super::continuations::{Decision, Reconciler, RunState};
use super::{
    Captured, Dialect, FinishedFile, PROGRESS_EVERY, TableWriter, Watched, check_schema_version,
    continuation_of_run, expect_family, select_sql,
};
use crate::backup::archive::Packer;
use crate::backup::files::HashingWriter;
use crate::backup::format::{ColumnType, Family, SchemaFamily, SourceInfo, TableSpec};
use crate::backup::postgres::{Session, connect, has_schema};
use crate::backup::rows::{LineEncoder, json_text, one_line_json};
use crate::backup::{BackupError, Progress, Stage, detect};

type Transaction<'a> = tokio_postgres::Transaction<'a>;

fn no_parameters() -> impl ExactSizeIterator<Item = &'static (dyn ToSql + Sync)> {
    std::iter::empty()
}

pub(super) async fn capture(
    url: &str,
    scratch: &Path,
    packer: &Packer,
    sessions: usize,
    expected: Option<Family>,
    report: &(dyn Fn(Progress) + Sync),
) -> Result<Captured, BackupError> {
    let mut session = connect(url, "kneo-backup").await?;
    if !has_schema(&session).await? {
        return Err(BackupError::SchemaMissing {
            target: session.target.clone(),
        });
    }
    let target = session.target.clone();
    let family = expect_family(
        detect::postgres_family(&session).await?,
        expected,
        &format!("the database {target}"),
    )?;
    let failed = |action: &str| BackupError::postgres(action.to_string(), &target);
    report(Progress {
        stage: Stage::Snapshot,
        item: "database".into(),
        done: 0,
        total: 0,
    });
    let transaction = session
        .client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(failed("starting the snapshot transaction"))?;
    // The first statement fixes the snapshot.
    let snapshot: String = transaction
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed("exporting the snapshot"))?;
    let mut captured = Captured::new(
        family.family,
        SourceInfo {
            kind: "postgres".into(),
            location: target.clone(),
        },
    );
    captured.created_at = crate::clock::now_text();
    // kneo-serv's ledger column is an integer, kneo-server's a bigint.
    captured.schema_version = transaction
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed("reading the schema version"))?;
    check_schema_version(
        family,
        captured.schema_version,
        format!("the database {target}"),
    )?;
    if family.family == Family::Kneo {
        captured.server_version = transaction
            .query_opt(
                "SELECT version FROM service_events WHERE event_type = 'service.started' ORDER BY position DESC LIMIT 1",
                &[],
            )
            .await
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(failed("reading the last service start"))?;
    }
    // Text keys are ordered as bytes, as SQLite orders them; a database whose default collation
    // is already C needs no COLLATE (and keeps its primary-key indexes usable for the order).
    let collation: String = transaction
        .query_one(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed("reading the database collation"))?;
    let key_suffix = if collation == "C" || collation == "POSIX" {
        ""
    } else {
        " COLLATE \"C\""
    };
    let counts = count_rows(&transaction, &target, family).await?;
    let total: u64 = counts.iter().sum();

    let mut reconciler = Reconciler::new(family.family);
    if sessions <= 1 {
        let mut done = 0;
        for (index, table) in family.tables.iter().enumerate() {
            let exported = export_table(
                &transaction,
                &target,
                family,
                table,
                scratch,
                key_suffix,
                &|rows| {
                    report(Progress {
                        stage: Stage::Export,
                        item: table.name.into(),
                        done: done + rows,
                        total,
                    })
                },
            )
            .await?;
            done += counts[index];
            observe(&mut reconciler, &exported);
            captured.add_table(packer, table, exported.file);
        }
    } else {
        let parallel = ParallelExport {
            url,
            target: &target,
            snapshot: &snapshot,
            scratch,
            key_suffix,
            sessions,
            counts: &counts,
            family,
        };
        parallel
            .run(packer, &mut captured, &mut reconciler, total, report)
            .await?;
    }
    export_continuations(
        &transaction,
        &target,
        family,
        scratch,
        packer,
        &mut reconciler,
        &mut captured,
    )
    .await?;
    transaction
        .commit()
        .await
        .map_err(failed("ending the snapshot transaction"))?;
    Ok(captured)
}

fn observe(reconciler: &mut Reconciler, exported: &Exported) {
    for (run_id, continuation) in &exported.blocked_runs {
        reconciler.observe_run(run_id, "blocked", continuation.clone());
    }
    for id in &exported.continuations_in_table {
        reconciler.held_in_table(id);
    }
}

/// Rows per table (in the family's order), counted in the snapshot.
async fn count_rows(
    transaction: &Transaction<'_>,
    target: &str,
    family: &SchemaFamily,
) -> Result<Vec<u64>, BackupError> {
    let counts: Vec<String> = family
        .tables
        .iter()
        .map(|table| format!("(SELECT COUNT(*) FROM \"{}\")", table.name))
        .collect();
    let row = transaction
        .query_one(&format!("SELECT {}", counts.join(", ")), &[])
        .await
        .map_err(BackupError::postgres("counting rows", target))?;
    (0..family.tables.len())
        .map(|index| {
            row.try_get::<_, i64>(index)
                .map(|count| count.max(0) as u64)
                .map_err(BackupError::postgres("counting rows", target))
        })
        .collect()
}

/// Several sessions exporting tables in the one exported snapshot.
struct ParallelExport<'a> {
    url: &'a str,
    target: &'a str,
    snapshot: &'a str,
    scratch: &'a Path,
    key_suffix: &'a str,
    sessions: usize,
    counts: &'a [u64],
    family: &'static SchemaFamily,
}

enum ExportEvent {
    Rows(u64),
    Done(usize, Box<Result<Exported, BackupError>>),
}

impl ParallelExport<'_> {
    async fn run(
        &self,
        packer: &Packer,
        captured: &mut Captured,
        reconciler: &mut Reconciler,
        total: u64,
        report: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), BackupError> {
        let tables = self.family.tables;
        // Largest tables first, so the long ones start at once.
        let mut order: Vec<usize> = (0..tables.len()).collect();
        order.sort_by_key(|index| std::cmp::Reverse(self.counts[*index]));
        let queue = Arc::new(Mutex::new(VecDeque::from(order)));
        let (events, mut received) = mpsc::unbounded_channel();
        let mut workers = AbortAll(Vec::new());
        for _ in 0..self.sessions.min(tables.len()) {
            let session = connect(self.url, "kneo-backup").await?;
            let job = ExportJob {
                target: self.target.to_string(),
                snapshot: self.snapshot.to_string(),
                scratch: self.scratch.to_path_buf(),
                key_suffix: self.key_suffix.to_string(),
                family: self.family,
                queue: queue.clone(),
                events: events.clone(),
            };
            workers.0.push(tokio::spawn(async move {
                if let Err(error) = job.run(session).await {
                    let _ = job
                        .events
                        .send(ExportEvent::Done(usize::MAX, Box::new(Err(error))));
                }
            }));
        }
        drop(events);
        let mut finished: Vec<Option<Exported>> = tables.iter().map(|_| None).collect();
        let (mut next, mut done) = (0, 0);
        while let Some(event) = received.recv().await {
            match event {
                ExportEvent::Rows(rows) => {
                    done += rows;
                    report(Progress {
                        stage: Stage::Export,
                        item: "tables".into(),
                        done,
                        total,
                    });
                }
                ExportEvent::Done(index, outcome) => {
                    let exported = (*outcome)?;
                    if let Some(slot) = finished.get_mut(index) {
                        *slot = Some(exported);
                    }
                    // Files go to the packer in archive order, each as soon as it can.
                    while let Some(exported) = finished.get_mut(next).and_then(Option::take) {
                        observe(reconciler, &exported);
                        captured.add_table(packer, &tables[next], exported.file);
                        next += 1;
                    }
                }
            }
        }
        match tables.get(next) {
            Some(table) => Err(BackupError::Internal(format!(
                "the export of {} stopped without an answer",
                table.name
            ))),
            None => Ok(()),
        }
    }
}

/// Aborts the export tasks when the backup ends early.
struct AbortAll(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// One export session: imports the snapshot, then exports tables from the queue until it is empty.
struct ExportJob {
    target: String,
    snapshot: String,
    scratch: std::path::PathBuf,
    key_suffix: String,
    family: &'static SchemaFamily,
    queue: Arc<Mutex<VecDeque<usize>>>,
    events: mpsc::UnboundedSender<ExportEvent>,
}

impl ExportJob {
    async fn run(&self, mut session: Session) -> Result<(), BackupError> {
        let failed = |action: &str| BackupError::postgres(action.to_string(), &self.target);
        let transaction = session
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(failed("starting an export transaction"))?;
        transaction
            .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{}'", self.snapshot))
            .await
            .map_err(failed("importing the snapshot"))?;
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            let Some(index) = next else {
                break;
            };
            let reported = std::sync::atomic::AtomicU64::new(0);
            let exported = export_table(
                &transaction,
                &self.target,
                self.family,
                &self.family.tables[index],
                &self.scratch,
                &self.key_suffix,
                &|rows| {
                    let before = reported.swap(rows, std::sync::atomic::Ordering::Relaxed);
                    let _ = self
                        .events
                        .send(ExportEvent::Rows(rows.saturating_sub(before)));
                },
            )
            .await;
            let _ = self
                .events
                .send(ExportEvent::Done(index, Box::new(exported)));
        }
        transaction
            .commit()
            .await
            .map_err(failed("ending an export transaction"))
    }
}

/// A table written to its scratch file, with the blocked runs seen in it (runs only) and the
/// continuations it holds (the family's continuation table only).
struct Exported {
    file: FinishedFile,
    blocked_runs: Vec<(String, Option<String>)>,
    continuations_in_table: Vec<String>,
}

/// Streams one table into its scratch file; `rows_done` hears the running row count.
async fn export_table(
    transaction: &Transaction<'_>,
    target: &str,
    family: &SchemaFamily,
    table: &'static TableSpec,
    scratch: &Path,
    key_suffix: &str,
    rows_done: &(dyn Fn(u64) + Sync),
) -> Result<Exported, BackupError> {
    let reading = || BackupError::postgres(format!("reading {}", table.name), target);
    let sql = select_sql(table, &Dialect::Postgres { key_suffix });
    let statement = transaction.prepare(&sql).await.map_err(reading())?;
    let rows = transaction
        .query_raw(&statement, no_parameters())
        .await
        .map_err(reading())?;
    futures_util::pin_mut!(rows);
    let mut out = TableWriter::create(scratch, table)?;
    let mut blocked_runs = Vec::new();
    let mut continuations_in_table = Vec::new();
    let watched = Watched::of(family, table);
    while let Some(row) = rows.try_next().await.map_err(reading())? {
        encode_row(table, &row, &mut out.encoder, target)?;
        if let Some((id, status, document)) = watched.runs {
            let status: &str = row.try_get(status).map_err(reading())?;
            if status == "blocked" {
                let id: &str = row.try_get(id).map_err(reading())?;
                let document: &str = row.try_get(document).map_err(reading())?;
                blocked_runs.push((id.to_string(), continuation_of_run(document)));
            }
        }
        if let Some(index) = watched.continuation_id {
            let id: &str = row.try_get(index).map_err(reading())?;
            continuations_in_table.push(id.to_string());
        }
        out.write_row()?;
        if out.rows.is_multiple_of(PROGRESS_EVERY) {
            rows_done(out.rows);
        }
    }
    rows_done(out.rows);
    Ok(Exported {
        file: out.finish()?,
        blocked_runs,
        continuations_in_table,
    })
}

/// Puts one row, as a JSONL line, in the encoder.
fn encode_row(
    table: &'static TableSpec,
    row: &tokio_postgres::Row,
    encoder: &mut LineEncoder,
    target: &str,
) -> Result<(), BackupError> {
    let reading = || BackupError::postgres(format!("reading {}", table.name), target);
    encoder.begin();
    for (index, column) in table.columns.iter().enumerate() {
        let corrupt = |detail: String| BackupError::CorruptSource {
            table: table.name.into(),
            key: describe_key(table, row),
            detail: format!("column {}: {detail}", column.name),
        };
        let null = |encoder: &mut LineEncoder| {
            if column.nullable {
                encoder.null(column.name);
                Ok(())
            } else {
                Err(corrupt("NULL in a column the archive requires".into()))
            }
        };
        match column.kind {
            ColumnType::Text => match row.try_get::<_, Option<&str>>(index).map_err(reading())? {
                Some(text) => encoder.text(column.name, text),
                None => null(encoder)?,
            },
            ColumnType::Int => match row.try_get::<_, Option<i64>>(index).map_err(reading())? {
                Some(number) => encoder.int(column.name, number),
                None => null(encoder)?,
            },
            ColumnType::Real => match row.try_get::<_, Option<f64>>(index).map_err(reading())? {
                Some(number) if number.is_finite() => encoder.real(column.name, number),
                Some(number) => {
                    return Err(corrupt(format!(
                        "{number} is not a finite number, which JSON cannot hold"
                    )));
                }
                None => null(encoder)?,
            },
            ColumnType::JsonText => {
                match row.try_get::<_, Option<&str>>(index).map_err(reading())? {
                    Some(text) => {
                        json_text(text).map_err(corrupt)?;
                        encoder.text(column.name, text);
                    }
                    None => null(encoder)?,
                }
            }
            ColumnType::Timestamp => {
                match row
                    .try_get::<_, Option<DateTime<Utc>>>(index)
                    .map_err(reading())?
                {
                    Some(at) => encoder.timestamp(column.name, at),
                    None => null(encoder)?,
                }
            }
            ColumnType::Json => match row.try_get::<_, Option<&str>>(index).map_err(reading())? {
                // jsonb prints on one line; only a document with a raw newline (impossible from
                // jsonb, possible from json) is re-serialized.
                Some(text) if !text.contains('\n') => encoder.raw_json(column.name, text),
                Some(text) => {
                    let json = one_line_json(text).map_err(corrupt)?;
                    encoder.raw_json(column.name, &json);
                }
                None => null(encoder)?,
            },
        }
    }
    Ok(())
}

/// kneo-server's `continuations` table as continuation files, joined to the runs of the same
/// snapshot for the reconciliation. (kneo-serv's continuation table is one of its archived tables.)
async fn export_continuations(
    transaction: &Transaction<'_>,
    target: &str,
    family: &SchemaFamily,
    scratch: &Path,
    packer: &Packer,
    reconciler: &mut Reconciler,
    captured: &mut Captured,
) -> Result<(), BackupError> {
    if family.family != Family::Kneo {
        for (run_id, continuation_id) in reconciler.unmatched() {
            reconciler.warn(
                "continuation_missing",
                &run_id,
                continuation_id.as_deref(),
                "the run is blocked but its continuation is not in the continuations table; restored, it cannot be resumed".into(),
            );
        }
        let reconciled = std::mem::replace(reconciler, Reconciler::new(family.family));
        captured.continuations = reconciled.finish();
        return Ok(());
    }
    let reading = || BackupError::postgres("reading continuations", target);
    let rows = transaction
        .query_raw(
            "SELECT c.id, c.document::text, r.status, r.document::text
             FROM continuations c LEFT JOIN runs r ON r.id = c.run_id
             ORDER BY c.id COLLATE \"C\"",
            no_parameters(),
        )
        .await
        .map_err(reading())?;
    futures_util::pin_mut!(rows);
    let directory = scratch.join("continuations");
    std::fs::create_dir_all(&directory).map_err(BackupError::io(
        "creating the scratch directory",
        &directory,
    ))?;
    let mut included = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(reading())? {
        let id: String = row.try_get(0).map_err(reading())?;
        let document: String = row.try_get(1).map_err(reading())?;
        let status: Option<String> = row.try_get(2).map_err(reading())?;
        let run_document: Option<String> = row.try_get(3).map_err(reading())?;
        // The document as it would be stored in a continuation file.
        let bytes = match serde_json::from_str::<serde_json::Value>(&document) {
            Ok(value) => {
                serde_json::to_vec_pretty(&value).unwrap_or_else(|_| document.clone().into_bytes())
            }
            Err(_) => document.clone().into_bytes(),
        };
        let mut run_state = |_: &str| {
            Ok(status.clone().map(|status| RunState {
                continuation_id: run_document.as_deref().and_then(continuation_of_run),
                status,
            }))
        };
        if let Decision::Include = reconciler.consider(&id, &bytes, &mut run_state)? {
            let path = directory.join(format!("{id}.json"));
            let file = std::fs::File::create(&path)
                .map_err(BackupError::io("creating the scratch file", &path))?;
            let mut writer = HashingWriter::new(file);
            std::io::Write::write_all(&mut writer, &bytes)
                .map_err(BackupError::io("writing the scratch file", &path))?;
            let (_, sha256, size) = writer.finish();
            included.push((
                id,
                FinishedFile {
                    path,
                    sha256,
                    bytes: size,
                    rows: 0,
                },
            ));
        }
    }
    for (run_id, continuation_id) in reconciler.unmatched() {
        reconciler.warn(
            "continuation_missing",
            &run_id,
            continuation_id.as_deref(),
            "the run is blocked but its continuation is not in the continuations table; restored, it cannot be resumed (runbook § 8.2)".into(),
        );
    }
    // Postgres ordered them by id as bytes already.
    for (id, file) in included {
        captured.add_file(packer, family.continuation_path(&id), file);
    }
    let reconciled = std::mem::replace(reconciler, Reconciler::new(family.family));
    captured.continuations = reconciled.finish();
    Ok(())
}

fn describe_key(table: &TableSpec, row: &tokio_postgres::Row) -> String {
    table
        .key_indexes()
        .into_iter()
        .zip(table.key)
        .map(|(index, name)| {
            let value = row
                .try_get::<_, Option<&str>>(index)
                .ok()
                .flatten()
                .map(|text| format!("{text:?}"))
                .or_else(|| {
                    row.try_get::<_, Option<i64>>(index)
                        .ok()
                        .flatten()
                        .map(|n| n.to_string())
                })
                .unwrap_or_else(|| "?".into());
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
