//! The one error type of backup, verify and restore: what failed, with which value, and the fix.

use std::path::PathBuf;

use crate::store::StoreError;

use super::format::Family;

use super::verify::Failure;

/// Why a backup, verification or restore could not be carried out.
///
/// A verification that *ran* and found problems is not an error: it is a
/// [`super::VerifyReport`] with `ok: false`. These are the cases where there is no answer at all,
/// or where a restore refused to touch the target.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "there is no embedded store in {state_dir}: {file} does not exist; check --state-dir (it is the directory holding kneo_runs.sqlite, .kneo by default)"
    )]
    NoSqliteStore { state_dir: PathBuf, file: PathBuf },

    #[error(
        "the database {target} has no kneo schema (no schema_migrations table); start kneo once against it, or check the URL names the right database (runbook § 2.4)"
    )]
    SchemaMissing { target: String },

    #[error(
        "{what} is at schema version {found} but this kneo knows versions up to {known}; use the kneo version that wrote it (runbook § 2.7)"
    )]
    SchemaTooNew {
        what: String,
        found: i64,
        known: i64,
    },

    #[error(
        "{what} is at schema version {found} and this kneo is at {known}; no conversion between them is known. Restore it with the kneo version that wrote it, then upgrade (runbook § 2.5)"
    )]
    SchemaMismatch {
        what: String,
        found: i64,
        known: i64,
    },

    #[error(
        "{what} is at {product} schema version {found}, older than this kneo-ops reads ({oldest}); start {product} once against it so it migrates, then try again"
    )]
    SchemaTooOld {
        what: String,
        product: &'static str,
        found: i64,
        oldest: i64,
    },

    #[error(
        "{location} holds no store kneo-ops knows: it has no runs table with the columns of kneo-server or of kneo-serv 1.2; check --state-dir or --database-url names the store"
    )]
    NotAStore { location: String },

    #[error(
        "{location} is a {found} store, not a {expected} one; drop --from (the store says what it is) or point at the other store"
    )]
    WrongFamily {
        location: String,
        found: Family,
        expected: Family,
    },

    #[error(
        "{target} already holds a {found} schema and {archive} is a {wanted} archive; restore it into an empty database or state directory{hint}"
    )]
    TargetOfOtherFamily {
        target: String,
        archive: PathBuf,
        found: Family,
        wanted: Family,
        /// How to get where the user probably wants to go.
        hint: &'static str,
    },

    #[error(
        "{path} is not a kneo-serv 1.2 archive ({}); `kneo-ops import` moves kneo-serv archives into kneo-server, `kneo-ops restore` restores the others",
        match found { Some(family) => format!("it is a {family} archive"), None => "its first entry names no schema family".to_string() }
    )]
    NotKneoServArchive {
        path: PathBuf,
        found: Option<Family>,
    },

    #[error("{path} already exists; choose another archive name or remove it first")]
    ArchiveExists { path: PathBuf },

    #[error(
        "{path} is not a kneo backup archive: {detail}. A kneo backup is a gzip-compressed tar written by `kneo-ops backup`"
    )]
    UnreadableArchive { path: PathBuf, detail: String },

    #[error("{path} failed verification ({count} problem(s)): {summary}; run `kneo-ops verify {path}` for the full list", count = failures.len(), summary = summarize(failures))]
    ArchiveInvalid {
        path: PathBuf,
        failures: Vec<Failure>,
    },

    #[error(
        "the target {target} already holds data ({holds}); pass --force to replace it (a safety backup of it is written first)"
    )]
    TargetNotEmpty { target: String, holds: String },

    #[error(
        "a kneo service is serving the store in {state_dir} (it holds {lock}); stop the service before restoring into it (runbook § 2.6)"
    )]
    ServiceRunning { state_dir: PathBuf, lock: PathBuf },

    #[error(
        "a previous restore into {state_dir} was interrupted (found {leftover}); the state before it is in the *.pre-restore files. Move them back into place, or remove them and restore again (runbook § 2.5)"
    )]
    InterruptedRestore {
        state_dir: PathBuf,
        leftover: PathBuf,
    },

    #[error(
        "the restored store does not match the archive's manifest: {detail}; nothing was committed (runbook § 2.5)"
    )]
    RestoredCountsDiffer { detail: String },

    #[error(
        "the source store holds a row that cannot be backed up: {table} {key}: {detail} (runbook § 2.8)"
    )]
    CorruptSource {
        table: String,
        key: String,
        detail: String,
    },

    #[error("{action} {path}: {source}")]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{action}: {source}")]
    Sqlite {
        action: String,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "{action} on {target}: {}",
        crate::postgres_client::failure::explain(source)
    )]
    Postgres {
        action: String,
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("{action}: {source}")]
    Store {
        action: String,
        #[source]
        source: StoreError,
    },

    #[error("{0}")]
    Internal(String),
}

impl BackupError {
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BackupError {
        let (action, path) = (action.into(), path.into());
        move |source| BackupError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn sqlite(action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
        let action = action.into();
        move |source| BackupError::Sqlite { action, source }
    }

    pub(crate) fn postgres(
        action: impl Into<String>,
        target: &str,
    ) -> impl FnOnce(tokio_postgres::Error) -> BackupError {
        let (action, target) = (action.into(), target.to_string());
        move |source| BackupError::Postgres {
            action,
            target,
            source,
        }
    }

    pub(crate) fn store(action: impl Into<String>) -> impl FnOnce(StoreError) -> BackupError {
        let action = action.into();
        move |source| BackupError::Store { action, source }
    }
}

/// The first few failures, for a one-line message.
fn summarize(failures: &[Failure]) -> String {
    const SHOWN: usize = 3;
    let mut parts: Vec<String> = failures
        .iter()
        .take(SHOWN)
        .map(Failure::to_string)
        .collect();
    if failures.len() > SHOWN {
        parts.push(format!("and {} more", failures.len() - SHOWN));
    }
    parts.join("; ")
}
