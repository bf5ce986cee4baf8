//! Restoring into a Postgres database: migrated first by the store itself
//! (`PostgresStore::ensure_ready`), then one transaction that empties every kneo table, loads
//! every row (binary `COPY`), moves the identity sequences past the restored rows and checks the
//! counts. A failure anywhere rolls it all back; a service on the database waits on the table
//! locks and then sees the old state or the new one, never a mix.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{Loaded, acceptable, check_counts};
use crate::backup::archive::Visitor;
use crate::backup::format::{ColumnType, TABLES, TableSpec};
use crate::backup::postgres::{Session, connect, has_schema, quote};
use crate::backup::rows::{Cell, JsonMode, Row};
use crate::backup::verify::{Checker, verify_blocking};
use crate::backup::{BackupError, Progress, Stage};
use crate::store::{Continuation, SCHEMA_VERSION};

/// Rows sent from the archive reader to the loader at a time.
const BATCH: usize = 1000;

/// What the target holds now: rows per kneo table (and `continuations`), non-zero ones only.
pub(super) async fn contents(url: &str) -> Result<BTreeMap<String, u64>, BackupError> {
    let session = connect(url, "kneo-restore").await?;
    let mut counts = BTreeMap::new();
    if !has_schema(&session).await? {
        return Ok(counts);
    }
    let version: i64 = session
        .client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(BackupError::postgres(
            "reading the schema version",
            &session.target,
        ))?;
    if version > SCHEMA_VERSION {
        return Err(BackupError::SchemaTooNew {
            what: format!("the target database {}", session.target),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    for name in restored_tables() {
        let exists: bool = session
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(BackupError::postgres(
                "looking for the kneo tables",
                &session.target,
            ))?;
        if !exists {
            continue;
        }
        let rows: i64 = session
            .client
            .query_one(&format!("SELECT COUNT(*) FROM {}", quote(name)), &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(BackupError::postgres(
                format!("counting the rows of {name}"),
                &session.target,
            ))?;
        if rows > 0 {
            counts.insert(name.to_string(), rows as u64);
        }
    }
    Ok(counts)
}

/// Every table a restore replaces: the restored ones and `continuations`.
fn restored_tables() -> impl Iterator<Item = &'static str> {
    TABLES
        .iter()
        .filter(|table| table.restored)
        .map(|table| table.name)
        .chain(std::iter::once("continuations"))
}

/// Messages from the archive reader thread.
enum Message {
    Rows(&'static TableSpec, Vec<Row>),
    EndTable(&'static TableSpec),
    Continuation(Box<(Continuation, Value)>),
}

/// Forwards rows from the reader thread in batches. When the loader has stopped (it failed), the
/// rows are dropped but the pass goes on, so the verification still says what is wrong.
struct Forwarder {
    sender: mpsc::Sender<Message>,
    batch: Vec<Row>,
    table: Option<&'static TableSpec>,
    closed: bool,
}

impl Forwarder {
    fn send(&mut self, message: Message) -> Result<(), BackupError> {
        if !self.closed && self.sender.blocking_send(message).is_err() {
            self.closed = true;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackupError> {
        if let Some(table) = self.table
            && !self.batch.is_empty()
        {
            let rows = std::mem::take(&mut self.batch);
            self.send(Message::Rows(table, rows))?;
        }
        Ok(())
    }
}

impl Visitor for Forwarder {
    fn mode(&self) -> JsonMode {
        JsonMode::Keep
    }

    fn row(&mut self, table: &'static TableSpec, row: Row) -> Result<(), BackupError> {
        if !table.restored || self.closed {
            return Ok(());
        }
        if self.table.map(|current| current.name) != Some(table.name) {
            self.flush()?;
            self.table = Some(table);
        }
        self.batch.push(row);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn end_table(&mut self, table: &'static TableSpec) -> Result<(), BackupError> {
        if !table.restored {
            return Ok(());
        }
        self.flush()?;
        self.send(Message::EndTable(table))
    }

    fn continuation(&mut self, continuation: Continuation, raw: &[u8]) -> Result<(), BackupError> {
        // It parsed as a continuation, so it is JSON.
        let document: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        self.flush()?;
        self.send(Message::Continuation(Box::new((continuation, document))))
    }
}

/// Verifies the archive while loading it in one transaction, and commits only when the
/// verification passed and the counts match.
pub(super) async fn load(
    archive: &Path,
    url: &str,
    checker: Checker,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Loaded, BackupError> {
    let store = crate::store::postgres::PostgresStore::new(url, 1)
        .map_err(BackupError::store("preparing the target"))?;
    store
        .ensure_ready()
        .await
        .map_err(BackupError::store("migrating the target"))?;
    drop(store);
    let mut session: Session = connect(url, "kneo-restore").await?;
    let target = session.target.clone();
    let failed = |action: &str| BackupError::postgres(action.to_string(), &target);
    let transaction = session
        .client
        .transaction()
        .await
        .map_err(failed("starting the restore transaction"))?;
    let tables: Vec<String> = restored_tables().map(quote).collect();
    transaction
        .batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", tables.join(", ")))
        .await
        .map_err(failed("emptying the kneo tables"))?;

    let (sender, mut receiver) = mpsc::channel(8);
    let path = archive.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let mut checker = checker;
        let mut forwarder = Forwarder {
            sender,
            batch: Vec::with_capacity(BATCH),
            table: None,
            closed: false,
        };
        let (verified, _) = verify_blocking(&path, &mut checker, Some(&mut forwarder), &|_| {})?;
        forwarder.flush()?;
        Ok::<_, BackupError>((verified, checker))
    });
    let total = 0u64;
    let mut done = 0u64;
    let mut copy: Option<(&'static TableSpec, std::pin::Pin<Box<BinaryCopyInWriter>>)> = None;
    let loaded = async {
        while let Some(message) = receiver.recv().await {
            match message {
                Message::Rows(table, rows) => {
                    if copy.as_ref().map(|(current, _)| current.name) != Some(table.name) {
                        if let Some((current, writer)) = copy.take() {
                            finish_copy(current, writer, &target).await?;
                        }
                        copy = Some((table, start_copy(&transaction, table, &target).await?));
                    }
                    if let Some((_, writer)) = copy.as_mut() {
                        for row in rows.iter() {
                            let values = copy_values(table, row);
                            let references: Vec<&(dyn ToSql + Sync)> = values
                                .iter()
                                .map(|value| value.as_ref() as &(dyn ToSql + Sync))
                                .collect();
                            writer
                                .as_mut()
                                .write(&references)
                                .await
                                .map_err(BackupError::postgres(format!("loading {}", table.name), &target))?;
                        }
                    }
                    done += rows.len() as u64;
                    progress(Progress {
                        stage: Stage::Restore,
                        item: table.name.into(),
                        done,
                        total,
                    });
                }
                Message::EndTable(table) => {
                    if let Some((current, writer)) = copy.take() {
                        if current.name == table.name {
                            finish_copy(current, writer, &target).await?;
                        } else {
                            copy = Some((current, writer));
                        }
                    }
                }
                Message::Continuation(boxed) => {
                    let (continuation, document) = *boxed;
                    if let Some((current, writer)) = copy.take() {
                        finish_copy(current, writer, &target).await?;
                    }
                    let created_at = crate::clock::parse(&continuation.created_at);
                    transaction
                        .execute(
                            "INSERT INTO continuations (id, run_id, created_at, document) VALUES ($1, $2, $3, $4)",
                            &[&continuation.id, &continuation.run_id, &created_at, &document],
                        )
                        .await
                        .map_err(failed("loading a continuation"))?;
                }
            }
        }
        if let Some((current, writer)) = copy.take() {
            finish_copy(current, writer, &target).await?;
        }
        Ok::<_, BackupError>(())
    }
    .await;
    // Stop forwarding if loading failed, then hear what the verification found.
    drop(receiver);
    let (verified, checker) = reader
        .await
        .map_err(|error| BackupError::Internal(format!("the archive reader failed: {error}")))??;
    if !acceptable(&verified) {
        // Dropping the transaction rolls everything back.
        return Ok(Loaded {
            report: verified,
            checker,
            restored: None,
        });
    }
    loaded?;
    let Some(manifest) = verified.manifest.clone() else {
        return Err(BackupError::Internal(
            "a verified archive has no manifest".into(),
        ));
    };
    for table in TABLES.iter().filter(|table| table.restored) {
        if let Some(column) = table.identity {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE(MAX({column}), 0) + 1, false) FROM {table}",
                table = table.name
            );
            transaction
                .query_one(&sql, &[])
                .await
                .map_err(failed("moving an identity sequence past the restored rows"))?;
        }
    }
    let mut restored = BTreeMap::new();
    for table in TABLES.iter().filter(|table| table.restored) {
        let rows: i64 = transaction
            .query_one(&format!("SELECT COUNT(*) FROM {}", quote(table.name)), &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(failed("counting the restored rows"))?;
        restored.insert(table.name.to_string(), rows.max(0) as u64);
    }
    let continuations: i64 = transaction
        .query_one("SELECT COUNT(*) FROM continuations", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed("counting the restored continuations"))?;
    // Counts that differ roll everything back (the transaction is dropped uncommitted).
    check_counts(&manifest, &restored, continuations.max(0) as u64)?;
    transaction
        .commit()
        .await
        .map_err(failed("committing the restore"))?;
    Ok(Loaded {
        report: verified,
        checker,
        restored: Some(restored),
    })
}

async fn start_copy(
    transaction: &tokio_postgres::Transaction<'_>,
    table: &'static TableSpec,
    target: &str,
) -> Result<std::pin::Pin<Box<BinaryCopyInWriter>>, BackupError> {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| quote(column.name))
        .collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        quote(table.name),
        columns.join(", ")
    );
    let sink = transaction
        .copy_in(&sql)
        .await
        .map_err(BackupError::postgres(
            format!("starting to load {}", table.name),
            target,
        ))?;
    let types: Vec<Type> = table
        .columns
        .iter()
        .map(|column| match column.kind {
            ColumnType::Text => Type::TEXT,
            ColumnType::Int => Type::INT8,
            ColumnType::Timestamp => Type::TIMESTAMPTZ,
            ColumnType::Json => Type::JSONB,
        })
        .collect();
    Ok(Box::pin(BinaryCopyInWriter::new(sink, &types)))
}

async fn finish_copy(
    table: &'static TableSpec,
    writer: std::pin::Pin<Box<BinaryCopyInWriter>>,
    target: &str,
) -> Result<(), BackupError> {
    let mut writer = writer;
    writer
        .as_mut()
        .finish()
        .await
        .map_err(BackupError::postgres(
            format!("finishing the load of {}", table.name),
            target,
        ))?;
    Ok(())
}

/// A row's values, typed as the table's columns.
fn copy_values(table: &TableSpec, row: &Row) -> Vec<Box<dyn ToSql + Sync + Send>> {
    table
        .columns
        .iter()
        .zip(&row.cells)
        .map(|(column, cell)| -> Box<dyn ToSql + Sync + Send> {
            match cell {
                Cell::Text(text) => Box::new(text.clone()),
                Cell::Int(number) => Box::new(*number),
                Cell::Time(at) => Box::new(*at),
                Cell::Json(document) => Box::new(tokio_postgres::types::Json(document.clone())),
                Cell::Null | Cell::Checked { .. } => match column.kind {
                    ColumnType::Text => Box::new(None::<String>),
                    ColumnType::Int => Box::new(None::<i64>),
                    ColumnType::Timestamp => Box::new(None::<DateTime<Utc>>),
                    ColumnType::Json => Box::new(None::<Value>),
                },
            }
        })
        .collect()
}
