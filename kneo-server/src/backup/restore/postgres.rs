//! Restoring into a Postgres database: migrated first by the store itself
//! (`PostgresStore::ensure_ready`), or given kneo-serv's schema for a kneo-serv archive, then one
//! transaction that empties every table of the family, loads every row (binary `COPY`, typed as
//! the target's columns are), moves the identity sequences past the restored rows and checks the
//! counts. A failure anywhere rolls it all back; a service on the database waits on the table
//! locks and then sees the old state or the new one, never a mix.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{Converted, Loaded, acceptable, check_counts, restored_tables};
use crate::backup::archive::Visitor;
use crate::backup::format::{ContinuationEntry, Family, SchemaFamily, TableSpec};
use crate::backup::kneo_serv::schema::{Backend, ddl};
use crate::backup::postgres::{Session, connect, has_schema, quote};
use crate::backup::rows::{Cell, JsonMode, Row};
use crate::backup::verify::{Checker, verify_blocking};
use crate::backup::{BackupError, Progress, Stage, detect};

/// Rows sent from the archive reader to the loader at a time.
const BATCH: usize = 1000;

/// What the target holds now: rows per table of the archive's family (and kneo-server's
/// `continuations`), non-zero ones only. Refuses a target with the other family's schema (their
/// tables share names) and one whose schema is newer than this kneo knows.
pub(super) async fn contents(
    url: &str,
    archive: &Path,
    family: Family,
) -> Result<BTreeMap<String, u64>, BackupError> {
    let session = connect(url, "kneo-restore").await?;
    let mut counts = BTreeMap::new();
    if !has_schema(&session).await? {
        return Ok(counts);
    }
    if let Some(found) = detect::postgres_family(&session).await?
        && found != family
    {
        return Err(BackupError::TargetOfOtherFamily {
            target: session.target.clone(),
            archive: archive.to_path_buf(),
            found,
            wanted: family,
            hint: match family {
                Family::KneoServ => "; to move it into kneo-server instead, use `kneo-ops import`",
                Family::Kneo => "",
            },
        });
    }
    let version = schema_version(&session).await?;
    let schema = family.schema();
    if version > schema.newest_schema {
        return Err(BackupError::SchemaTooNew {
            what: format!("the target database {}", session.target),
            found: version,
            known: schema.newest_schema,
        });
    }
    for name in replaced_tables(schema) {
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

/// `MAX(version)` of the target's ledger.
async fn schema_version(session: &Session) -> Result<i64, BackupError> {
    session
        .client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(BackupError::postgres(
            "reading the schema version",
            &session.target,
        ))
}

/// Every table a restore replaces: the restored ones and kneo-server's `continuations` (kneo-serv's
/// is one of its tables).
fn replaced_tables(family: &'static SchemaFamily) -> impl Iterator<Item = &'static str> {
    let continuations = (family.family == Family::Kneo).then_some("continuations");
    restored_tables(family)
        .map(|table| table.name)
        .chain(continuations)
}

/// Messages from the archive reader thread.
enum Message {
    Rows(&'static TableSpec, Vec<Row>),
    EndTable(&'static TableSpec),
    Continuation(Box<(ContinuationEntry, Value)>),
}

/// The `COPY` under way: its table, its writer and the target's column types.
type OpenCopy = (
    &'static TableSpec,
    std::pin::Pin<Box<BinaryCopyInWriter>>,
    Vec<Type>,
);

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

    fn continuation(
        &mut self,
        continuation: ContinuationEntry,
        raw: &[u8],
    ) -> Result<(), BackupError> {
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
    family: &'static SchemaFamily,
    checker: Checker,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Loaded, BackupError> {
    if family.family == Family::Kneo {
        let store = crate::store::postgres::PostgresStore::new(url, 1)
            .map_err(BackupError::store("preparing the target"))?;
        store
            .ensure_ready()
            .await
            .map_err(BackupError::store("migrating the target"))?;
        drop(store);
    }
    let mut session: Session = connect(url, "kneo-restore").await?;
    let target = session.target.clone();
    let create_kneo_serv_schema =
        family.family == Family::KneoServ && !has_schema(&session).await?;
    if family.family == Family::KneoServ && !create_kneo_serv_schema {
        let version = schema_version(&session).await?;
        if version != family.newest_schema {
            return Err(BackupError::SchemaMismatch {
                what: format!("the target database {target}"),
                found: version,
                known: family.newest_schema,
            });
        }
    }
    let failed = |action: &str| BackupError::postgres(action.to_string(), &target);
    let transaction = session
        .client
        .transaction()
        .await
        .map_err(failed("starting the restore transaction"))?;
    if create_kneo_serv_schema {
        transaction
            .batch_execute(&ddl(Backend::Postgres))
            .await
            .map_err(failed("creating the kneo-serv schema"))?;
    }
    let tables: Vec<String> = replaced_tables(family).map(quote).collect();
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
    let mut converted = Converted::default();
    let mut copy: Option<OpenCopy> = None;
    let loaded = async {
        while let Some(message) = receiver.recv().await {
            match message {
                Message::Rows(table, rows) => {
                    if copy.as_ref().map(|(current, _, _)| current.name) != Some(table.name) {
                        if let Some((current, writer, _)) = copy.take() {
                            finish_copy(current, writer, &target).await?;
                        }
                        let (writer, types) = start_copy(&transaction, table, &target).await?;
                        copy = Some((table, writer, types));
                    }
                    if let Some((_, writer, types)) = copy.as_mut() {
                        for row in rows.iter() {
                            let values = copy_values(table, row, types)?;
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
                    if let Some((current, writer, types)) = copy.take() {
                        if current.name == table.name {
                            finish_copy(current, writer, &target).await?;
                        } else {
                            copy = Some((current, writer, types));
                        }
                    }
                }
                Message::Continuation(boxed) => {
                    let (continuation, document) = *boxed;
                    if let Some((current, writer, _)) = copy.take() {
                        finish_copy(current, writer, &target).await?;
                    }
                    if continuation.family == Family::KneoServ {
                        insert_kneo_serv_continuation(&transaction, &continuation, &document)
                            .await
                            .map_err(failed("loading a continuation file as a row"))?;
                        converted.rows_from_files += 1;
                        continue;
                    }
                    let created_at = continuation
                        .created_at
                        .as_deref()
                        .and_then(crate::clock::parse);
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
        if let Some((current, writer, _)) = copy.take() {
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
    for table in restored_tables(family) {
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
    for table in restored_tables(family) {
        let rows: i64 = transaction
            .query_one(&format!("SELECT COUNT(*) FROM {}", quote(table.name)), &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(failed("counting the restored rows"))?;
        restored.insert(table.name.to_string(), rows.max(0) as u64);
    }
    // kneo-server's continuation files become its continuations table; kneo-serv's archive
    // holds that table itself (checked above) and no files it restores here.
    let continuations: i64 = if family.family == Family::Kneo {
        transaction
            .query_one("SELECT COUNT(*) FROM continuations", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(failed("counting the restored continuations"))?
    } else {
        manifest.continuations.count as i64
    };
    // Counts that differ roll everything back (the transaction is dropped uncommitted).
    check_counts(&manifest, &restored, continuations.max(0) as u64, converted)?;
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

/// A continuation file of a kneo-serv SQLite store as the row kneo-serv on Postgres keeps for it
/// (what its Postgres continuation store writes: `waiting` while a human request is pending).
async fn insert_kneo_serv_continuation(
    transaction: &tokio_postgres::Transaction<'_>,
    continuation: &ContinuationEntry,
    document: &Value,
) -> Result<(), tokio_postgres::Error> {
    let status = if document
        .get("pending_human_request_id")
        .is_some_and(|id| !id.is_null())
    {
        "waiting"
    } else {
        "active"
    };
    let now = crate::clock::now_text();
    transaction
        .execute(
            "INSERT INTO continuations (id, run_id, status, created_at, updated_at, payload)
             VALUES ($1, $2, $3, $4, $4, $5)",
            &[
                &continuation.id,
                &continuation.run_id,
                &status,
                &now,
                &document.to_string(),
            ],
        )
        .await
        .map(|_| ())
}

/// Starts the binary `COPY` of a table, typed as the target's columns are (kneo-server's integers
/// are `bigint`, kneo-serv's `integer`).
async fn start_copy(
    transaction: &tokio_postgres::Transaction<'_>,
    table: &'static TableSpec,
    target: &str,
) -> Result<(std::pin::Pin<Box<BinaryCopyInWriter>>, Vec<Type>), BackupError> {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| quote(column.name))
        .collect();
    let types = column_types(transaction, table, target).await?;
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
    let writer = Box::pin(BinaryCopyInWriter::new(sink, &types));
    Ok((writer, types))
}

/// The types of the target table's columns, in the table's column order.
async fn column_types(
    transaction: &tokio_postgres::Transaction<'_>,
    table: &'static TableSpec,
    target: &str,
) -> Result<Vec<Type>, BackupError> {
    let rows = transaction
        .query(
            "SELECT attname::text, atttypid FROM pg_attribute
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&quote(table.name)],
        )
        .await
        .map_err(BackupError::postgres(
            format!("reading the column types of {}", table.name),
            target,
        ))?;
    let mut found = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(BackupError::postgres(
            format!("reading the column types of {}", table.name),
            target,
        ))?;
        let oid: u32 = row.try_get(1).map_err(BackupError::postgres(
            format!("reading the column types of {}", table.name),
            target,
        ))?;
        found.insert(name, oid);
    }
    table
        .columns
        .iter()
        .map(|column| {
            let oid = found.get(column.name).ok_or_else(|| {
                BackupError::Internal(format!(
                    "the target's table {} has no column {}; its schema is not the one this kneo writes (runbook § 2.5)",
                    table.name, column.name
                ))
            })?;
            Type::from_oid(*oid).ok_or_else(|| {
                BackupError::Internal(format!(
                    "the target's column {}.{} has a type this kneo does not load (oid {oid})",
                    table.name, column.name
                ))
            })
        })
        .collect()
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

/// A row's values, typed as the target's columns (`types`).
fn copy_values(
    table: &TableSpec,
    row: &Row,
    types: &[Type],
) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, BackupError> {
    table
        .columns
        .iter()
        .zip(&row.cells)
        .zip(types)
        .map(
            |((column, cell), kind)| -> Result<Box<dyn ToSql + Sync + Send>, BackupError> {
                let value: Box<dyn ToSql + Sync + Send> = match (cell, kind) {
                    (Cell::Int(number), &Type::INT4) => {
                        Box::new(i32::try_from(*number).map_err(|_| {
                            BackupError::Internal(format!(
                                "{}.{} holds {number}, more than the target's integer column holds",
                                table.name, column.name
                            ))
                        })?)
                    }
                    (Cell::Int(number), _) => Box::new(*number),
                    (Cell::Real(number), _) => Box::new(*number),
                    (Cell::Text(text), _) => Box::new(text.clone()),
                    (Cell::Time(at), _) => Box::new(*at),
                    (Cell::Json(document), _) => {
                        Box::new(tokio_postgres::types::Json(document.clone()))
                    }
                    (Cell::Null | Cell::Checked { .. }, kind) => null_of(kind),
                };
                Ok(value)
            },
        )
        .collect()
}

/// A NULL of the column type `kind`.
fn null_of(kind: &Type) -> Box<dyn ToSql + Sync + Send> {
    match *kind {
        Type::INT4 => Box::new(None::<i32>),
        Type::INT8 => Box::new(None::<i64>),
        Type::FLOAT8 => Box::new(None::<f64>),
        Type::TIMESTAMPTZ => Box::new(None::<DateTime<Utc>>),
        Type::JSONB | Type::JSON => Box::new(None::<Value>),
        _ => Box::new(None::<String>),
    }
}
