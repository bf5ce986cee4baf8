//! `restore`: loads an archive into a state directory (SQLite) or a Postgres database.
//!
//! Refuses a target that holds data (unless `force`, and then a safety backup of it is written
//! first: an archive, or a plain copy of the state directory when its schema is newer than this
//! kneo knows, as after a failed upgrade) and an embedded store a service is serving (its state
//! lock is held) before reading the archive. The archive is then verified in the same pass that loads it into the new store (a
//! new file beside the live one, or one Postgres transaction), and the load is committed only
//! when the verification passed, the schema version is this kneo's and the restored row counts
//! are the manifest's; otherwise the target is left as it was. See [`sqlite`] and [`postgres`]
//! for how each load is made atomic.
//!
//! The format is the same whichever store wrote it: an archive of a kneo-server SQLite store
//! restores into Postgres (continuation files become rows) and back (rows become files). An
//! archive of a kneo-serv 1.2 store restores into a kneo-serv store (SQLite or Postgres, either
//! way: continuation files become rows of its `continuations` table and back), created with
//! kneo-serv's own schema when the target is empty, so kneo-serv 1.2 serves it again; moving it
//! into kneo-server is `super::import`.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::archive::peek_family;
use super::files::parent_of;
use super::format::{Family, Manifest, SchemaFamily, TableSpec};
use super::rows::{Cell, Row};
use super::snapshot::{BackupOptions, backup, copy_sqlite_state};
use super::verify::{Checker, VerifyReport};
use super::{BackupError, Progress, StoreLocation, run_blocking};

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace a target that holds data (after writing a safety backup of it).
    pub force: bool,
    /// Where the safety backup goes; by default beside the state directory (SQLite) or beside
    /// the archive (Postgres).
    pub safety_dir: Option<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The state directory, or `host:port/database`.
    pub target: String,
    pub archive: PathBuf,
    pub archive_sha256: String,
    /// The backup of what the target held before, when it held data.
    pub safety_backup: Option<PathBuf>,
    /// Rows (and `continuations`) the target held before, per table, non-zero ones only.
    pub replaced: BTreeMap<String, u64>,
    /// Rows restored per table, checked against the manifest.
    pub restored: BTreeMap<String, u64>,
    pub continuations: u64,
    pub duration: Duration,
}

/// Restores `archive` into `target`. See the module documentation for what is refused.
pub async fn restore(
    archive: &Path,
    target: &StoreLocation,
    options: &RestoreOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    let description = target.describe();
    let family = archive_family(archive);
    // Held for the whole restore, so no service can start on the state directory meanwhile.
    let _lock = match target {
        StoreLocation::Sqlite { state_dir } => Some(sqlite::lock(state_dir, family)?),
        StoreLocation::Postgres { .. } => None,
    };
    let replaced = target_contents(archive, target, progress).await?;
    let holds_data = replaced.iter().any(|(table, rows)| {
        *rows > 0
            && !matches!(
                table.as_str(),
                "service_events" | "locks" | "schema_migrations"
            )
    });
    if holds_data && !options.force {
        return Err(BackupError::TargetNotEmpty {
            target: description,
            holds: describe_counts(&replaced),
        });
    }
    if let (StoreLocation::Sqlite { state_dir }, false) = (target, options.force)
        && let (count @ 1.., Some(example)) = sqlite::foreign_entries(state_dir)
    {
        return Err(BackupError::TargetNotEmpty {
            target: description,
            holds: format!("{count} entries that are not a kneo store, e.g. {example:?}"),
        });
    }
    let safety_backup = if holds_data {
        let directory = options.safety_dir.clone().unwrap_or_else(|| match target {
            StoreLocation::Sqlite { state_dir } => parent_of(state_dir),
            StoreLocation::Postgres { .. } => parent_of(archive),
        });
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let name = match target {
            StoreLocation::Sqlite { .. } => format!("kneo-safety-sqlite-{stamp}.tar.gz"),
            StoreLocation::Postgres { .. } => format!("kneo-safety-postgres-{stamp}.tar.gz"),
        };
        let path = directory.join(name);
        match (
            backup(target, &path, &BackupOptions::default(), progress).await,
            target,
        ) {
            (Ok(_), _) => Some(path),
            // A rollback after an upgrade that migrated the store: this kneo cannot export the
            // newer schema row by row, so the safety copy is the state directory's files.
            (Err(BackupError::SchemaTooNew { .. }), StoreLocation::Sqlite { state_dir }) => {
                let copy = directory.join(format!("kneo-safety-sqlite-{stamp}"));
                let (source, destination) = (state_dir.clone(), copy.clone());
                run_blocking(progress, move |_| copy_sqlite_state(&source, &destination)).await?;
                Some(copy)
            }
            (Err(error), _) => return Err(error),
        }
    } else {
        None
    };
    let loaded = load(archive, target, false, progress).await?;
    let (Some(restored), Some(manifest)) = (loaded.restored, &loaded.report.manifest) else {
        return Err(refusal(archive, loaded.report));
    };
    Ok(RestoreReport {
        target: description,
        archive: archive.to_path_buf(),
        archive_sha256: loaded.report.archive_sha256.clone(),
        safety_backup,
        replaced,
        restored,
        continuations: manifest.continuations.count,
        duration: started.elapsed(),
    })
}

/// What `target` holds now, per table (non-zero ones), refusing a target `archive` cannot go
/// into (an interrupted restore's leftovers, the other family's schema, a newer schema).
pub(crate) async fn target_contents(
    archive: &Path,
    target: &StoreLocation,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<BTreeMap<String, u64>, BackupError> {
    match target {
        StoreLocation::Sqlite { state_dir } => {
            let state_dir = state_dir.clone();
            run_blocking(progress, move |_| sqlite::contents(&state_dir)).await
        }
        StoreLocation::Postgres { url } => {
            postgres::contents(url, archive, archive_family(archive)).await
        }
    }
}

/// The schema family of an archive, from its first entry; an archive that names none is read as
/// kneo-server's, and its verification says what is wrong with it.
fn archive_family(archive: &Path) -> Family {
    peek_family(archive).unwrap_or(Family::Kneo)
}

/// Whether a verified archive may be committed into a store of this kneo: one of its own schema,
/// or of an older one whose rows reading brings up to date (see `format::Added`).
fn acceptable(report: &VerifyReport) -> bool {
    report.ok
        && report.manifest.as_ref().is_some_and(|manifest| {
            let family = manifest.family.schema();
            (family.oldest_archive_schema..=family.newest_schema).contains(&manifest.schema_version)
        })
}

/// Why an archive was not restored.
fn refusal(archive: &Path, report: VerifyReport) -> BackupError {
    if let Some(manifest) = &report.manifest {
        let family = manifest.family.schema();
        if manifest.schema_version > family.newest_schema {
            return BackupError::SchemaTooNew {
                what: format!("the archive {}", archive.display()),
                found: manifest.schema_version,
                known: family.newest_schema,
            };
        }
        if report.ok && manifest.schema_version < family.oldest_archive_schema {
            return BackupError::SchemaMismatch {
                what: format!("the archive {}", archive.display()),
                found: manifest.schema_version,
                known: family.newest_schema,
            };
        }
    }
    BackupError::ArchiveInvalid {
        path: archive.to_path_buf(),
        failures: report.failures,
    }
}

/// What one pass over an archive did.
pub(crate) struct Loaded {
    pub report: VerifyReport,
    pub checker: Checker,
    /// The restored row counts; `None` when the archive failed verification (or is of another
    /// schema version) and nothing was committed.
    pub restored: Option<BTreeMap<String, u64>>,
}

/// Verifies `archive` and loads it into `target` in the same pass, committing only when the
/// verification passed; without the target checks of [`restore`] (deep verification uses it on
/// a scratch store).
pub(crate) async fn load(
    archive: &Path,
    target: &StoreLocation,
    detailed: bool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Loaded, BackupError> {
    let family = archive_family(archive).schema();
    match target {
        StoreLocation::Sqlite { state_dir } => {
            let (archive, state_dir) = (archive.to_path_buf(), state_dir.clone());
            run_blocking(progress, move |report| {
                sqlite::load(&archive, &state_dir, family, Checker::new(detailed), report)
            })
            .await
        }
        StoreLocation::Postgres { url } => {
            postgres::load(archive, url, family, Checker::new(detailed), progress).await
        }
    }
}

/// The rows a restore must load, per table (the manifest's counts).
fn expected_rows(manifest: &Manifest) -> BTreeMap<String, u64> {
    let family = manifest.family.schema();
    manifest
        .tables
        .iter()
        .filter(|entry| {
            family
                .table(&entry.name)
                .is_some_and(|table| table.restored)
        })
        .map(|entry| (entry.name.clone(), entry.rows))
        .collect()
}

/// The tables of `family` a restore writes.
fn restored_tables(family: &SchemaFamily) -> impl Iterator<Item = &'static TableSpec> {
    family.tables.iter().filter(|table| table.restored)
}

/// Continuations a load moved between the two ways kneo-serv keeps them: files of a SQLite
/// archive that became rows of a Postgres `continuations` table, or rows of a Postgres archive
/// that became files. Counted, so the restored counts can still be checked exactly.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Converted {
    pub rows_from_files: u64,
    pub files_from_rows: u64,
}

/// Fails unless the restored counts are the manifest's (plus what the load converted).
fn check_counts(
    manifest: &Manifest,
    restored: &BTreeMap<String, u64>,
    continuations: u64,
    converted: Converted,
) -> Result<(), BackupError> {
    let mut differences = Vec::new();
    for (table, mut expected) in expected_rows(manifest) {
        let found = restored.get(&table).copied().unwrap_or(0);
        if manifest.family == Family::KneoServ && table == "continuations" {
            expected += converted.rows_from_files;
        }
        if found != expected {
            differences.push(format!(
                "{table}: {found} restored, {expected} expected from the manifest"
            ));
        }
    }
    let expected_files = manifest.continuations.count + converted.files_from_rows;
    if continuations != expected_files {
        differences.push(format!(
            "continuations: {continuations} restored, {expected_files} expected from the manifest",
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(BackupError::RestoredCountsDiffer {
            detail: differences.join("; "),
        })
    }
}

/// "12 runs, 3 continuations" for a refusal message.
fn describe_counts(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, rows)| **rows > 0)
        .map(|(table, rows)| format!("{rows} {table}"))
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// The text a SQLite `NOT NULL` column derived from a document gets when the archive has `null`
/// (trace events and checkpoints without a timestamp): what the SQLite store itself writes.
fn sqlite_derived_text(table: &TableSpec, column: &str, row: &Row) -> Option<String> {
    let field = match (table.family, table.name, column) {
        (Family::Kneo, "trace_events", "timestamp") => "timestamp",
        (Family::Kneo, "checkpoints", "created_at") => "created_at",
        _ => return None,
    };
    let text = match row.get(table, "document") {
        Some(Cell::Json(document)) => serde_json::from_str::<serde_json::Value>(document.get())
            .ok()
            .and_then(|value| {
                value
                    .get(field)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    Some(text)
}
