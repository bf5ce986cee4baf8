//! Restoring into a state directory.
//!
//! The new store is built beside the live one: `kneo_runs.sqlite.restore-<id>` (migrated by
//! `SqliteStore::open` itself, or given kneo-serv's schema for a kneo-serv archive, every row
//! inserted in one transaction while the archive is
//! verified in the same pass, committed only if it verified, switched out of WAL so it is one
//! self-contained file, its counts checked against the manifest) and
//! `continuations.restore-<id>/`. Then it is swapped in:
//!
//! 1. the live database is hard-linked to `kneo_runs.sqlite.pre-restore` and its `-wal`/`-shm`
//!    files are moved beside that name (a stale WAL must never meet the new file);
//! 2. the new file is renamed over `kneo_runs.sqlite`: one atomic rename, so the path always
//!    holds a whole database, old or new;
//! 3. `continuations` is renamed to `continuations.pre-restore` and the new directory to
//!    `continuations`;
//! 4. the directory is fsynced and the `.pre-restore` copies are removed.
//!
//! A failure or crash before step 1 leaves the live store untouched (at most `*.restore-<id>`
//! leftovers). The crash window is from step 2 to the end of step 3 (three renames,
//! microseconds): the new database may then sit beside the old continuations, or beside none.
//! The state lock keeps a service out while the restore runs; after a crash the `.pre-restore`
//! copies stay, and the next restore refuses until they are dealt with, naming them
//! ([`BackupError::InterruptedRestore`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{Converted, Loaded, acceptable, check_counts, restored_tables, sqlite_derived_text};
use crate::backup::archive::Visitor;
use crate::backup::files::sync_directory;
use crate::backup::format::{
    ContinuationEntry, Family, SchemaFamily, TableSpec, is_safe_continuation_id,
};
use crate::backup::kneo_serv::schema::{Backend, ddl};
use crate::backup::postgres::quote;
use crate::backup::rows::{Cell, JsonMode, Row};
use crate::backup::verify::{Checker, verify_blocking};
use crate::backup::{
    BackupError, CONTINUATIONS_DIR, Progress, SQLITE_FILE, Stage, StoreLocation, detect,
};
use crate::store::state_lock::{StateLock, StateLockError};

const PRE_RESTORE: &str = "pre-restore";

/// The state lock, held while a restore runs. kneo-serv knows no such lock, so the lock file is
/// removed afterwards from a kneo-serv state directory that did not have one.
pub(super) struct HeldLock {
    lock: StateLock,
    remove_file: bool,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.remove_file {
            // Best effort: a leftover empty lock file is harmless to kneo-serv.
            let _ = fs::remove_file(&self.lock.path);
        }
    }
}

/// Takes the state lock, refusing while a kneo service holds it.
pub(super) fn lock(state_dir: &Path, family: Family) -> Result<HeldLock, BackupError> {
    let remove_file = family == Family::KneoServ && !StateLock::path_in(state_dir).exists();
    match StateLock::acquire(state_dir) {
        Ok(lock) => Ok(HeldLock { lock, remove_file }),
        Err(StateLockError::Held { .. }) => Err(BackupError::ServiceRunning {
            state_dir: state_dir.to_path_buf(),
            lock: StateLock::path_in(state_dir),
        }),
        Err(StateLockError::Io { path, error }) => Err(BackupError::Io {
            action: "taking the state lock".into(),
            path: PathBuf::from(path),
            source: error,
        }),
    }
}

/// Entries of the state directory that are no part of a kneo store (not `kneo…`, not
/// `continuations…`): how many, and one of their names. A restore into a directory that holds
/// them (the home directory by mistake, another program's data) is refused like a non-empty
/// store.
pub(super) fn foreign_entries(state_dir: &Path) -> (usize, Option<String>) {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return (0, None);
    };
    let foreign: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("kneo") && !name.starts_with(CONTINUATIONS_DIR))
        .collect();
    (foreign.len(), foreign.into_iter().min())
}

/// What the state directory holds now: rows per table and continuation files. Also refuses
/// while an earlier restore's `.pre-restore` files are there.
pub(super) fn contents(state_dir: &Path) -> Result<BTreeMap<String, u64>, BackupError> {
    for leftover in [
        state_dir.join(format!("{SQLITE_FILE}.{PRE_RESTORE}")),
        state_dir.join(format!("{CONTINUATIONS_DIR}.{PRE_RESTORE}")),
    ] {
        if leftover.exists() {
            return Err(BackupError::InterruptedRestore {
                state_dir: state_dir.to_path_buf(),
                leftover,
            });
        }
    }
    let (mut counts, files) = counts_in(
        &StoreLocation::sqlite_file(state_dir),
        &StoreLocation::continuations_dir(state_dir),
    )?;
    if files > 0 {
        // kneo-serv also has a `continuations` table; its files are named apart from it.
        let name = if counts.contains_key("continuations") {
            "continuation files"
        } else {
            "continuations"
        };
        counts.insert(name.into(), files);
    }
    Ok(counts)
}

/// Rows per table of the database at `database` (when it exists and is a store of either family),
/// non-zero ones only, and the number of continuation files in `continuations`.
fn counts_in(
    database: &Path,
    continuations: &Path,
) -> Result<(BTreeMap<String, u64>, u64), BackupError> {
    let mut counts = BTreeMap::new();
    if database.is_file() {
        let connection = Connection::open_with_flags(
            database,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(BackupError::sqlite(format!(
            "opening {}",
            database.display()
        )))?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(BackupError::sqlite("setting the busy timeout"))?;
        // A database without the tables of either family holds no data of ours.
        let family = detect::sqlite_family(&connection)?.unwrap_or(Family::Kneo);
        for table in restored_tables(family.schema()) {
            let sql = format!("SELECT COUNT(*) FROM {}", quote(table.name));
            match connection.query_row(&sql, [], |row| row.get::<_, i64>(0)) {
                Ok(rows) if rows > 0 => {
                    counts.insert(table.name.to_string(), rows as u64);
                }
                Ok(_) => {}
                // A database without kneo tables holds no kneo data.
                Err(error) if error.to_string().contains("no such table") => {}
                Err(error) => {
                    return Err(BackupError::Sqlite {
                        action: format!(
                            "counting the rows of {} in {}",
                            table.name,
                            database.display()
                        ),
                        source: error,
                    });
                }
            }
        }
    }
    let files = continuation_files(continuations)?;
    Ok((counts, files))
}

fn continuation_files(directory: &Path) -> Result<u64, BackupError> {
    match fs::read_dir(directory) {
        Ok(entries) => Ok(entries
            .filter_map(Result::ok)
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".json") && !name.starts_with('.')
            })
            .count() as u64),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(BackupError::Io {
            action: "listing the continuation directory".into(),
            path: directory.to_path_buf(),
            source: error,
        }),
    }
}

/// Removes the half-built new store unless disarmed.
struct Leftovers {
    paths: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if self.armed {
            for path in &self.paths {
                let _ = fs::remove_dir_all(path);
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// Builds the new store beside the live one while verifying the archive, and swaps it in only
/// when the verification passed.
pub(super) fn load(
    archive: &Path,
    state_dir: &Path,
    family: &'static SchemaFamily,
    mut checker: Checker,
    report: &dyn Fn(Progress),
) -> Result<Loaded, BackupError> {
    fs::create_dir_all(state_dir)
        .map_err(BackupError::io("creating the state directory", state_dir))?;
    let suffix = format!("restore-{}", uuid::Uuid::new_v4().simple());
    let new_database = state_dir.join(format!("{SQLITE_FILE}.{suffix}"));
    let new_continuations = state_dir.join(format!("{CONTINUATIONS_DIR}.{suffix}"));
    let mut leftovers = Leftovers {
        paths: vec![
            new_database.clone(),
            PathBuf::from(format!("{}-wal", new_database.display())),
            PathBuf::from(format!("{}-shm", new_database.display())),
            new_continuations.clone(),
        ],
        armed: true,
    };
    create_schema(&new_database, family)?;
    fs::create_dir_all(&new_continuations).map_err(BackupError::io(
        "creating the continuation directory",
        &new_continuations,
    ))?;
    let mut connection =
        Connection::open(&new_database).map_err(BackupError::sqlite("opening the new store"))?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .map_err(BackupError::sqlite("setting the busy timeout"))?;
    let mut converted = Converted::default();
    let verified = {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(BackupError::sqlite("starting the restore transaction"))?;
        let mut loader = Loader {
            connection: &transaction,
            continuations: &new_continuations,
            statements: family
                .tables
                .iter()
                .map(|table| (table.name, insert_sql(table)))
                .collect(),
            rows: 0,
            failed: None,
            report,
            continuation_rows: Vec::new(),
        };
        let (verified, _) = verify_blocking(archive, &mut checker, Some(&mut loader), report)?;
        if !acceptable(&verified) {
            // Dropping the transaction rolls it back; the guard removes the new files.
            return Ok(Loaded {
                report: verified,
                checker,
                restored: None,
            });
        }
        if let Some(error) = loader.failed.take() {
            return Err(error);
        }
        // kneo-serv on SQLite resumes from files only: a Postgres store's continuation rows
        // become files too (the rows stay, as they were in the archive).
        if verified.manifest.as_ref().is_some_and(|manifest| {
            manifest.family == Family::KneoServ && manifest.source.kind == "postgres"
        }) {
            for (id, payload) in std::mem::take(&mut loader.continuation_rows) {
                loader.write_kneo_serv_continuation(&id, &payload)?;
                converted.files_from_rows += 1;
            }
        }
        transaction
            .commit()
            .map_err(BackupError::sqlite("committing the restore transaction"))?;
        verified
    };
    let Some(manifest) = verified.manifest.clone() else {
        return Err(BackupError::Internal(
            "a verified archive has no manifest".into(),
        ));
    };
    leave_wal(&connection, &new_database)?;
    drop(connection);
    fs::File::open(&new_database)
        .and_then(|file| file.sync_all())
        .map_err(BackupError::io("syncing the new store", &new_database))?;
    sync_directory(&new_continuations)?;
    // The counts are checked on the new store before it replaces anything.
    report(Progress {
        stage: Stage::Check,
        item: "restored counts".into(),
        done: 0,
        total: 0,
    });
    let (tables, continuations) = counts_in(&new_database, &new_continuations)?;
    check_counts(&manifest, &tables, continuations, converted)?;
    swap_into_place(state_dir, &new_database, &new_continuations)?;
    leftovers.armed = false;
    Ok(Loaded {
        report: verified,
        checker,
        restored: Some(tables),
    })
}

/// Gives the new file the family's schema: kneo-server's through its own migrations, kneo-serv's
/// from its DDL at version 4 (the ledger comes from the archive).
fn create_schema(database: &Path, family: &SchemaFamily) -> Result<(), BackupError> {
    match family.family {
        Family::Kneo => {
            drop(
                crate::store::sqlite::SqliteStore::open(database)
                    .map_err(BackupError::store("creating the new store"))?,
            );
        }
        Family::KneoServ => {
            let connection = Connection::open(database)
                .map_err(BackupError::sqlite("creating the new store"))?;
            connection
                .execute_batch(&format!("BEGIN; {} COMMIT;", ddl(Backend::Sqlite)))
                .map_err(BackupError::sqlite("creating the kneo-serv schema"))?;
        }
    }
    Ok(())
}

/// Switches the new file to a rollback journal, so it is complete without a `-wal` file and can
/// be renamed alone. Waits for the store opened to migrate it to let go.
fn leave_wal(connection: &Connection, path: &Path) -> Result<(), BackupError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mode: String = connection
            .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
            .map_err(BackupError::sqlite("leaving WAL mode on the new store"))?;
        if mode.eq_ignore_ascii_case("delete") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BackupError::Internal(format!(
                "the new store {} stayed in {mode} mode; another connection still holds it",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn swap_into_place(
    state_dir: &Path,
    new_database: &Path,
    new_continuations: &Path,
) -> Result<(), BackupError> {
    let live_database = StoreLocation::sqlite_file(state_dir);
    let live_continuations = StoreLocation::continuations_dir(state_dir);
    let old_database = state_dir.join(format!("{SQLITE_FILE}.{PRE_RESTORE}"));
    let old_continuations = state_dir.join(format!("{CONTINUATIONS_DIR}.{PRE_RESTORE}"));
    let side = |path: &Path, suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    if live_database.exists() {
        fs::hard_link(&live_database, &old_database).map_err(BackupError::io(
            "keeping the old store as .pre-restore",
            &old_database,
        ))?;
        for suffix in ["-wal", "-shm"] {
            let live = side(&live_database, suffix);
            if live.exists() {
                fs::rename(&live, side(&old_database, suffix))
                    .map_err(BackupError::io("moving the old store's WAL aside", &live))?;
            }
        }
        sync_directory(state_dir)?;
    }
    fs::rename(new_database, &live_database).map_err(BackupError::io(
        "moving the restored store into place",
        &live_database,
    ))?;
    if live_continuations.exists() {
        fs::rename(&live_continuations, &old_continuations).map_err(BackupError::io(
            "keeping the old continuations as .pre-restore",
            &old_continuations,
        ))?;
    }
    fs::rename(new_continuations, &live_continuations).map_err(BackupError::io(
        "moving the restored continuations into place",
        &live_continuations,
    ))?;
    sync_directory(state_dir)?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(side(&old_database, suffix));
    }
    let _ = fs::remove_dir_all(&old_continuations);
    sync_directory(state_dir)
}

/// Inserts rows and writes continuation files as the archive streams by. After a failure it
/// stops loading but lets the pass go on, so the verification still says what is wrong.
struct Loader<'a> {
    connection: &'a Connection,
    continuations: &'a Path,
    statements: BTreeMap<&'static str, String>,
    rows: u64,
    failed: Option<BackupError>,
    report: &'a dyn Fn(Progress),
    /// kneo-serv's continuation table rows (id, payload), which may have to become files.
    continuation_rows: Vec<(String, String)>,
}

impl Visitor for Loader<'_> {
    fn mode(&self) -> JsonMode {
        JsonMode::Keep
    }

    fn row(&mut self, table: &'static TableSpec, row: Row) -> Result<(), BackupError> {
        if !table.restored || self.failed.is_some() {
            return Ok(());
        }
        if table.family == Family::KneoServ
            && table.family.schema().continuation_table == Some(table.name)
            && let (Some(id), Some(payload)) = (row.text(table, "id"), row.text(table, "payload"))
        {
            self.continuation_rows
                .push((id.to_string(), payload.to_string()));
        }
        if let Err(error) = self.insert(table, row) {
            self.failed = Some(error);
        }
        Ok(())
    }

    fn continuation(
        &mut self,
        continuation: ContinuationEntry,
        raw: &[u8],
    ) -> Result<(), BackupError> {
        if self.failed.is_some() {
            return Ok(());
        }
        if let Err(error) = self.write_continuation(&continuation, raw) {
            self.failed = Some(error);
        }
        Ok(())
    }
}

impl Loader<'_> {
    fn insert(&mut self, table: &'static TableSpec, row: Row) -> Result<(), BackupError> {
        let failed = || BackupError::sqlite(format!("inserting into {}", table.name));
        let sql = self
            .statements
            .get(table.name)
            .ok_or_else(|| BackupError::Internal(format!("no insert for table {}", table.name)))?;
        let mut statement = self.connection.prepare_cached(sql).map_err(failed())?;
        let mut values = Vec::with_capacity(table.columns.len());
        for (column, cell) in table.columns.iter().zip(&row.cells) {
            values.push(match cell {
                Cell::Text(text) => SqlValue::Text(text.clone()),
                Cell::Int(number) => SqlValue::Integer(*number),
                Cell::Real(number) => SqlValue::Real(*number),
                Cell::Time(at) => SqlValue::Text(crate::clock::format(*at)),
                Cell::Json(document) => SqlValue::Text(document.get().to_string()),
                Cell::Null | Cell::Checked { .. } => {
                    match sqlite_derived_text(table, column.name, &row) {
                        Some(text) => SqlValue::Text(text),
                        None => SqlValue::Null,
                    }
                }
            });
        }
        statement
            .execute(rusqlite::params_from_iter(values))
            .map_err(failed())?;
        self.rows += 1;
        if self.rows.is_multiple_of(4096) {
            (self.report)(Progress {
                stage: Stage::Restore,
                item: table.name.into(),
                done: self.rows,
                total: 0,
            });
        }
        Ok(())
    }

    fn write_continuation(
        &self,
        continuation: &ContinuationEntry,
        raw: &[u8],
    ) -> Result<(), BackupError> {
        if !is_safe_continuation_id(&continuation.id) {
            return Err(BackupError::Internal(format!(
                "continuation id {:?} is not a safe file name",
                continuation.id
            )));
        }
        let path = self.continuations.join(format!("{}.json", continuation.id));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&path)?;
            std::io::Write::write_all(&mut file, raw)?;
            file.sync_all()
        };
        write().map_err(BackupError::io("writing the continuation", &path))
    }
}

impl Loader<'_> {
    /// A kneo-serv continuation row as the file kneo-serv's file store writes for it.
    fn write_kneo_serv_continuation(&self, id: &str, payload: &str) -> Result<(), BackupError> {
        let document: serde_json::Value = serde_json::from_str(payload).map_err(|error| {
            BackupError::Internal(format!("continuation {id} is not JSON: {error}"))
        })?;
        let bytes = serde_json::to_vec_pretty(&document).map_err(|error| {
            BackupError::Internal(format!("continuation {id} cannot be written: {error}"))
        })?;
        let entry = ContinuationEntry {
            family: Family::KneoServ,
            id: id.to_string(),
            run_id: None,
            created_at: None,
        };
        self.write_continuation(&entry, &bytes)
    }
}

fn insert_sql(table: &TableSpec) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| quote(column.name))
        .collect();
    let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(table.name),
        columns.join(", "),
        placeholders.join(", ")
    )
}
