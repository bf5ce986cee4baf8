//! Snapshot of a Postgres store: every table and the continuations read in one
//! `REPEATABLE READ READ ONLY` transaction, so they all see the same committed state while the
//! service keeps writing.

use std::path::Path;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use super::continuations::{Decision, Reconciler, RunState};
use super::{Captured, FinishedFile, TableWriter, continuation_of_run, select_sql};
use crate::backup::archive::Packer;
use crate::backup::files::HashingWriter;
use crate::backup::format::{ColumnType, SourceInfo, TABLES, TableSpec, continuation_path};
use crate::backup::postgres::{connect, has_schema};
use crate::backup::rows::one_line_json;
use crate::backup::{BackupError, Progress, Stage};
use crate::store::SCHEMA_VERSION;

type Transaction<'a> = tokio_postgres::Transaction<'a>;

fn no_parameters() -> impl ExactSizeIterator<Item = &'static (dyn ToSql + Sync)> {
    std::iter::empty()
}

pub(super) async fn capture(
    url: &str,
    scratch: &Path,
    packer: &Packer,
    report: &(dyn Fn(Progress) + Sync),
) -> Result<Captured, BackupError> {
    let mut session = connect(url, "kneo-backup").await?;
    if !has_schema(&session).await? {
        return Err(BackupError::SchemaMissing {
            target: session.target.clone(),
        });
    }
    let target = session.target.clone();
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
    let schema_version: i64 = transaction
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed("reading the schema version"))?;
    let mut captured = Captured::new(SourceInfo {
        kind: "postgres".into(),
        location: target.clone(),
    });
    captured.created_at = crate::clock::now_text();
    captured.schema_version = schema_version;
    if schema_version > SCHEMA_VERSION {
        return Err(BackupError::SchemaTooNew {
            what: format!("the database {target}"),
            found: schema_version,
            known: SCHEMA_VERSION,
        });
    }
    captured.server_version = transaction
        .query_opt(
            "SELECT version FROM service_events WHERE event_type = 'service.started' ORDER BY position DESC LIMIT 1",
            &[],
        )
        .await
        .and_then(|row| row.map(|row| row.try_get(0)).transpose())
        .map_err(failed("reading the last service start"))?;
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
    let total = count_rows(&transaction, &target).await?;

    let mut reconciler = Reconciler::default();
    let mut done = 0;
    for table in TABLES {
        let file = export_table(
            &transaction,
            &target,
            table,
            scratch,
            key_suffix,
            &mut reconciler,
            (done, total),
            report,
        )
        .await?;
        done += file.rows;
        captured.add_table(packer, table, file);
    }
    export_continuations(
        &transaction,
        &target,
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

async fn count_rows(transaction: &Transaction<'_>, target: &str) -> Result<u64, BackupError> {
    let counts: Vec<String> = TABLES
        .iter()
        .map(|table| format!("(SELECT COUNT(*) FROM \"{}\")", table.name))
        .collect();
    let sql = format!("SELECT {}", counts.join(" + "));
    let total: i64 = transaction
        .query_one(&sql, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(BackupError::postgres("counting rows", target))?;
    Ok(total.max(0) as u64)
}

#[allow(clippy::too_many_arguments)]
async fn export_table(
    transaction: &Transaction<'_>,
    target: &str,
    table: &'static TableSpec,
    scratch: &Path,
    key_suffix: &str,
    reconciler: &mut Reconciler,
    (done_before, total): (u64, u64),
    report: &(dyn Fn(Progress) + Sync),
) -> Result<FinishedFile, BackupError> {
    let reading = || BackupError::postgres(format!("reading {}", table.name), target);
    let sql = select_sql(table, &|column| format!("{column}::text"), key_suffix);
    let statement = transaction.prepare(&sql).await.map_err(reading())?;
    let rows = transaction
        .query_raw(&statement, no_parameters())
        .await
        .map_err(reading())?;
    futures_util::pin_mut!(rows);
    let mut out = TableWriter::create(scratch, table)?;
    let is_runs = table.name == "runs";
    while let Some(row) = rows.try_next().await.map_err(reading())? {
        out.encoder.begin();
        for (index, column) in table.columns.iter().enumerate() {
            let corrupt = |detail: String| BackupError::CorruptSource {
                table: table.name.into(),
                key: describe_key(table, &row),
                detail: format!("column {}: {detail}", column.name),
            };
            let null = |encoder: &mut crate::backup::rows::LineEncoder| {
                if column.nullable {
                    encoder.null(column.name);
                    Ok(())
                } else {
                    Err(corrupt("NULL in a column the archive requires".into()))
                }
            };
            match column.kind {
                ColumnType::Text => match row.try_get::<_, Option<&str>>(index).map_err(reading())?
                {
                    Some(text) => out.encoder.text(column.name, text),
                    None => null(&mut out.encoder)?,
                },
                ColumnType::Int => match row.try_get::<_, Option<i64>>(index).map_err(reading())? {
                    Some(number) => out.encoder.int(column.name, number),
                    None => null(&mut out.encoder)?,
                },
                ColumnType::Timestamp => {
                    match row
                        .try_get::<_, Option<DateTime<Utc>>>(index)
                        .map_err(reading())?
                    {
                        Some(at) => out.encoder.timestamp(column.name, at),
                        None => null(&mut out.encoder)?,
                    }
                }
                ColumnType::Json => match row.try_get::<_, Option<&str>>(index).map_err(reading())?
                {
                    // jsonb prints on one line; only a document with a raw newline (impossible
                    // from jsonb, possible from json) is re-serialized.
                    Some(text) if !text.contains('\n') => out.encoder.raw_json(column.name, text),
                    Some(text) => {
                        let json = one_line_json(text).map_err(corrupt)?;
                        out.encoder.raw_json(column.name, &json);
                    }
                    None => null(&mut out.encoder)?,
                },
            }
        }
        if is_runs {
            let id: &str = row.try_get(0).map_err(reading())?;
            let status: &str = row.try_get(1).map_err(reading())?;
            let continuation = if status == "blocked" {
                let document: &str = row.try_get(6).map_err(reading())?;
                continuation_of_run(document)
            } else {
                None
            };
            reconciler.observe_run(id, status, continuation);
        }
        out.write_row()?;
        if let Some(step) = out.progress(done_before, total) {
            report(step);
        }
    }
    report(Progress {
        stage: Stage::Export,
        item: table.name.into(),
        done: done_before + out.rows,
        total,
    });
    out.finish()
}

/// The `continuations` table, joined to the runs of the same snapshot for the reconciliation.
async fn export_continuations(
    transaction: &Transaction<'_>,
    target: &str,
    scratch: &Path,
    packer: &Packer,
    reconciler: &mut Reconciler,
    captured: &mut Captured,
) -> Result<(), BackupError> {
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
        captured.add_file(packer, continuation_path(&id), file);
    }
    let reconciled = std::mem::take(reconciler);
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
