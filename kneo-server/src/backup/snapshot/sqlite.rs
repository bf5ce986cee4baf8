//! Snapshot of the embedded store: the online backup API copies the live database file at one
//! point in time (one step, one read transaction: WAL readers never block the writer), then every
//! table is read from the copy.
//!
//! Continuation files live outside the database, so they cannot be in its transaction. They are
//! copied twice: just before the database snapshot and just after it. The copy after is the one
//! used; a continuation of a run blocked in the snapshot that was gone by then (its run was
//! resumed or expired meanwhile) is taken from the copy before, and said so.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::continuations::{Decision, Reconciler, RunState};
use super::{
    Captured, Dialect, FinishedFile, TableWriter, Watched, check_schema_version,
    continuation_of_run, expect_family, select_sql,
};
use crate::backup::archive::Packer;
use crate::backup::files::sha256_of_file;
use crate::backup::format::{ColumnType, Family, SchemaFamily, SourceInfo, TableSpec};
use crate::backup::rows::{json_text, one_line_json};
use crate::backup::{BackupError, Progress, Stage, StoreLocation, detect};

/// How long the online backup waits out a busy or locked source.
const BUSY_WAIT: Duration = Duration::from_secs(30);

pub(super) fn capture(
    state_dir: &Path,
    scratch: &Path,
    packer: &Packer,
    expected: Option<Family>,
    report: &dyn Fn(Progress),
) -> Result<Captured, BackupError> {
    let database = StoreLocation::sqlite_file(state_dir);
    if !database.is_file() {
        return Err(BackupError::NoSqliteStore {
            state_dir: state_dir.to_path_buf(),
            file: database,
        });
    }
    let continuations = StoreLocation::continuations_dir(state_dir);
    let step = |item: &str| {
        report(Progress {
            stage: Stage::Snapshot,
            item: item.into(),
            done: 0,
            total: 0,
        })
    };
    step("continuations (copy before)");
    let before = scratch.join("continuations-before");
    copy_directory(&continuations, &before)?;
    step("database");
    let snapshot_path = scratch.join("snapshot.sqlite");
    online_backup(&database, &snapshot_path)?;
    let created_at = crate::clock::now_text();
    step("continuations (copy after)");
    let after = scratch.join("continuations-after");
    let names = copy_directory(&continuations, &after)?;

    let snapshot = open_copy(&snapshot_path)?;
    let schema_version = crate::store::sqlite::schema_version_of(&snapshot).map_err(
        BackupError::store("reading the schema version of the snapshot"),
    )?;
    if schema_version == 0 {
        return Err(BackupError::Internal(format!(
            "{} has no kneo schema (no applied migrations); it is not a kneo or kneo-serv store",
            database.display()
        )));
    }
    let family = expect_family(
        detect::sqlite_family(&snapshot)?,
        expected,
        &database.display().to_string(),
    )?;
    check_schema_version(
        family,
        schema_version,
        format!("the store {}", database.display()),
    )?;
    let mut captured = Captured::new(
        family.family,
        SourceInfo {
            kind: "sqlite".into(),
            location: state_dir.display().to_string(),
        },
    );
    captured.created_at = created_at;
    captured.schema_version = schema_version;
    if family.family == Family::Kneo {
        captured.server_version = snapshot
            .query_row(
                "SELECT version FROM service_events WHERE event_type = 'service.started' ORDER BY position DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(BackupError::sqlite("reading the last service start"))?;
    }

    let total = count_rows(&snapshot, family)?;
    let mut reconciler = Reconciler::new(family.family);
    let mut done = 0;
    for table in family.tables {
        let file = export_table(
            &snapshot,
            family,
            table,
            scratch,
            &mut reconciler,
            done,
            total,
            report,
        )?;
        done += file.rows;
        captured.add_table(packer, table, file);
    }

    let mut run_state = |run_id: &str| run_state_in(&snapshot, family, run_id);
    let mut included: Vec<(String, PathBuf)> = Vec::new();
    for name in names {
        let Some(id) = name
            .strip_suffix(".json")
            .filter(|_| !name.starts_with('.'))
        else {
            reconciler.foreign_file(&name);
            continue;
        };
        let path = after.join(&name);
        let bytes =
            fs::read(&path).map_err(BackupError::io("reading the copied continuation", &path))?;
        if let Decision::Include = reconciler.consider(id, &bytes, &mut run_state)? {
            included.push((id.to_string(), path));
        }
    }
    for (run_id, continuation_id) in reconciler.unmatched() {
        let Some(id) = continuation_id else {
            reconciler.warn(
                "continuation_missing",
                &run_id,
                None,
                "the run is blocked but names no continuation; it cannot be resumed (runbook § 8.2)".into(),
            );
            continue;
        };
        let early = before.join(format!("{id}.json"));
        let recovered = match fs::read(&early) {
            Ok(bytes) => matches!(
                reconciler.consider(&id, &bytes, &mut run_state)?,
                Decision::Include
            ),
            Err(_) => false,
        };
        if recovered {
            reconciler.warn(
                "continuation_from_early_copy",
                &run_id,
                Some(&id),
                "the file was gone right after the snapshot (the run was resumed or expired while the backup ran); the copy taken just before the snapshot is used".into(),
            );
            included.push((id, early));
        } else {
            reconciler.warn(
                "continuation_missing",
                &run_id,
                Some(&id),
                format!("the run is blocked on {id} but {id}.json was not in {}; restored, it cannot be resumed (runbook § 8.2)", continuations.display()),
            );
        }
    }
    included.sort();
    for (id, path) in included {
        let (sha256, bytes) = sha256_of_file(&path)?;
        captured.add_file(
            packer,
            family.continuation_path(&id),
            FinishedFile {
                path,
                sha256,
                bytes,
                rows: 0,
            },
        );
    }
    captured.continuations = reconciler.finish();
    drop(snapshot);
    let _ = fs::remove_file(&snapshot_path);
    Ok(captured)
}

/// Copies a state directory as it is (the database through SQLite's online backup, then the
/// continuation files) into the new directory `destination`. For a store whose schema is newer
/// than this kneo knows, which it cannot export row by row: the copy keeps it whole, to be put
/// back by copying the files into a state directory.
pub(super) fn copy_state(state_dir: &Path, destination: &Path) -> Result<(), BackupError> {
    fs::create_dir_all(destination).map_err(BackupError::io(
        "creating the safety copy directory",
        destination,
    ))?;
    let database = StoreLocation::sqlite_file(state_dir);
    if database.is_file() {
        let file_name = database.file_name().unwrap_or_default();
        online_backup(&database, &destination.join(file_name))?;
    }
    let continuations = StoreLocation::continuations_dir(state_dir);
    let directory_name = continuations.file_name().unwrap_or_default();
    copy_directory(&continuations, &destination.join(directory_name))?;
    crate::backup::files::sync_directory(destination)
}

/// Copies the regular files of `source` into `destination`; returns their names, sorted. A
/// missing source directory is an empty one; a file that vanishes mid-copy is skipped.
fn copy_directory(source: &Path, destination: &Path) -> Result<Vec<String>, BackupError> {
    fs::create_dir_all(destination).map_err(BackupError::io(
        "creating the scratch directory",
        destination,
    ))?;
    let entries = match fs::read_dir(source) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(BackupError::Io {
                action: "listing the continuation directory".into(),
                path: source.to_path_buf(),
                source: error,
            });
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(BackupError::io(
            "listing the continuation directory",
            source,
        ))?;
        let is_file = entry
            .file_type()
            .map(|kind| kind.is_file())
            .unwrap_or(false);
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_file {
            continue;
        }
        match fs::copy(entry.path(), destination.join(&name)) {
            Ok(_) => names.push(name),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(BackupError::Io {
                    action: "copying the continuation".into(),
                    path: entry.path(),
                    source: error,
                });
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Copies the live database into `destination` in one backup step.
fn online_backup(source: &Path, destination: &Path) -> Result<(), BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let action = format!("opening the SQLite store {}", source.display());
    let live = Connection::open_with_flags(source, flags).map_err(BackupError::sqlite(action))?;
    live.busy_timeout(Duration::from_secs(5))
        .map_err(BackupError::sqlite("setting the busy timeout"))?;
    let mut copy =
        Connection::open(destination).map_err(BackupError::sqlite("creating the snapshot file"))?;
    let backup =
        Backup::new(&live, &mut copy).map_err(BackupError::sqlite("starting the online backup"))?;
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        // -1 copies every page in one step, under one read transaction: a consistent point in
        // time. Smaller steps would restart whenever the server commits in between.
        match backup
            .step(-1)
            .map_err(BackupError::sqlite("copying the live database"))?
        {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                return Err(BackupError::Internal(format!(
                    "the SQLite store {} stayed locked for {} s; retry the backup (runbook § 2.3)",
                    source.display(),
                    BUSY_WAIT.as_secs()
                )));
            }
        }
    }
}

fn open_copy(path: &Path) -> Result<Connection, BackupError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(BackupError::sqlite("opening the snapshot"))?;
    connection
        .execute_batch("PRAGMA query_only = 1")
        .map_err(BackupError::sqlite("opening the snapshot"))?;
    Ok(connection)
}

fn count_rows(connection: &Connection, family: &SchemaFamily) -> Result<u64, BackupError> {
    let mut total = 0u64;
    for table in family.tables {
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", table.name);
        let count: i64 =
            connection
                .query_row(&sql, [], |row| row.get(0))
                .map_err(BackupError::sqlite(format!(
                    "counting the rows of {}",
                    table.name
                )))?;
        total += count.max(0) as u64;
    }
    Ok(total)
}

fn run_state_in(
    connection: &Connection,
    family: &SchemaFamily,
    run_id: &str,
) -> Result<Option<RunState>, BackupError> {
    let runs = &family.runs;
    let sql = format!(
        "SELECT \"{}\", \"{}\" FROM \"{}\" WHERE \"{}\" = ?1",
        runs.status, runs.document, runs.table, runs.id
    );
    let row: Option<(String, String)> = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_row([run_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(BackupError::sqlite("looking up the run of a continuation"))?;
    Ok(row.map(|(status, document)| RunState {
        continuation_id: continuation_of_run(&document),
        status,
    }))
}

#[allow(clippy::too_many_arguments)]
fn export_table(
    connection: &Connection,
    family: &SchemaFamily,
    table: &'static TableSpec,
    scratch: &Path,
    reconciler: &mut Reconciler,
    done_before: u64,
    total: u64,
    report: &dyn Fn(Progress),
) -> Result<FinishedFile, BackupError> {
    let reading = || BackupError::sqlite(format!("reading {}", table.name));
    let mut out = TableWriter::create(scratch, table)?;
    let sql = select_sql(table, &Dialect::Sqlite);
    let mut statement = connection.prepare(&sql).map_err(reading())?;
    let mut rows = statement.query([]).map_err(reading())?;
    let watched = Watched::of(family, table);
    while let Some(row) = rows.next().map_err(reading())? {
        out.encoder.begin();
        for (index, column) in table.columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(reading())?;
            let corrupt = |detail: String| BackupError::CorruptSource {
                table: table.name.into(),
                key: describe_key(table, row),
                detail: format!("column {}: {detail}", column.name),
            };
            let text = |bytes: &[u8]| {
                std::str::from_utf8(bytes)
                    .map(str::to_string)
                    .map_err(|_| corrupt("the text is not UTF-8".into()))
            };
            match (column.kind, value) {
                (_, ValueRef::Null) if column.nullable => out.encoder.null(column.name),
                (ColumnType::Text, ValueRef::Text(bytes)) => {
                    out.encoder.text(column.name, &text(bytes)?)
                }
                (ColumnType::Int, ValueRef::Integer(number)) => {
                    out.encoder.int(column.name, number)
                }
                (ColumnType::Real, ValueRef::Real(number)) if number.is_finite() => {
                    out.encoder.real(column.name, number)
                }
                // A REAL column hands back an integer when one was stored in it.
                (ColumnType::Real, ValueRef::Integer(number)) => {
                    out.encoder.real(column.name, number as f64)
                }
                (ColumnType::Real, ValueRef::Real(number)) => {
                    return Err(corrupt(format!(
                        "{number} is not a finite number, which JSON cannot hold"
                    )));
                }
                (ColumnType::JsonText, ValueRef::Text(bytes)) => {
                    let value = text(bytes)?;
                    json_text(&value).map_err(&corrupt)?;
                    out.encoder.text(column.name, &value);
                }
                (ColumnType::Timestamp, ValueRef::Text(bytes)) => {
                    let value = text(bytes)?;
                    if value.is_empty() && column.nullable {
                        // The SQLite store writes "" for an event without a timestamp.
                        out.encoder.null(column.name);
                    } else {
                        let at = crate::clock::parse(&value).ok_or_else(|| {
                            corrupt(format!("{value:?} is not an RFC 3339 timestamp"))
                        })?;
                        out.encoder.timestamp(column.name, at);
                    }
                }
                (ColumnType::Json, ValueRef::Text(bytes)) => {
                    let value = text(bytes)?;
                    let json = one_line_json(&value).map_err(&corrupt)?;
                    out.encoder.raw_json(column.name, &json);
                }
                (kind, value) => {
                    return Err(corrupt(format!(
                        "holds a {:?} value where the schema has {kind:?}",
                        value.data_type()
                    )));
                }
            }
        }
        if let Some((id, status, document)) = watched.runs {
            let id: String = row.get(id).map_err(reading())?;
            let status: String = row.get(status).map_err(reading())?;
            let continuation = if status == "blocked" {
                let document: String = row.get(document).map_err(reading())?;
                continuation_of_run(&document)
            } else {
                None
            };
            reconciler.observe_run(&id, &status, continuation);
        }
        if let Some(index) = watched.continuation_id {
            let id: String = row.get(index).map_err(reading())?;
            reconciler.held_in_table(&id);
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

/// The primary key of a row, for an error message.
fn describe_key(table: &TableSpec, row: &rusqlite::Row<'_>) -> String {
    let parts: Vec<String> = table
        .key_indexes()
        .into_iter()
        .zip(table.key)
        .map(|(index, name)| {
            let value = match row.get_ref(index) {
                Ok(ValueRef::Text(bytes)) => format!("{:?}", String::from_utf8_lossy(bytes)),
                Ok(ValueRef::Integer(number)) => number.to_string(),
                Ok(other) => format!("{:?}", other.data_type()),
                Err(_) => "?".into(),
            };
            format!("{name}={value}")
        })
        .collect();
    parts.join(" ")
}
