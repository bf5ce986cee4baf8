//! Opening SQLite connections, applying migrations, and turning SQLite errors into store errors.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use crate::store::{ErrorKind, SCHEMA_VERSION, StoreError};

/// Migrations in order; each is applied in its own transaction and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "run_filters_and_environment_policies",
        include_str!("migrations/0002_run_filters_and_environment_policies.sql"),
    ),
];

/// Opens one connection with the pragmas every connection of the store needs.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|e| classify(e, &format!("opening the SQLite file {}", path.display())))?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(|e| classify(e, "setting the busy timeout"))?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| {
            classify(
                e,
                &format!("configuring the SQLite file {}", path.display()),
            )
        })?;
    connection.set_prepared_statement_cache_capacity(128);
    Ok(connection)
}

/// The highest applied migration, 0 for an empty database.
pub fn schema_version_of(connection: &Connection) -> Result<i64, StoreError> {
    let has_table: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| classify(e, "reading the schema version"))?;
    if !has_table {
        return Ok(0);
    }
    connection
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(|e| classify(e, "reading the schema version"))
}

/// Applies pending migrations; refuses a database whose schema is newer than this binary knows.
pub fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TEXT NOT NULL
             )",
        )
        .map_err(|e| classify(e, "creating schema_migrations"))?;
    let current = schema_version_of(connection)?;
    if current > crate::drill::known_schema_version() {
        return Err(schema_too_new(current));
    }
    let drill = crate::drill::extra_migration();
    for (version, name, sql) in MIGRATIONS
        .iter()
        .copied()
        .chain(drill)
        .filter(|(version, _, _)| *version > current)
    {
        let transaction = begin(connection)?;
        transaction
            .execute_batch(sql)
            .map_err(|e| classify(e, &format!("applying migration {version} ({name})")))?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, crate::clock::now_text()],
            )
            .map_err(|e| classify(e, "recording a migration"))?;
        commit(transaction)?;
    }
    Ok(())
}

/// The refusal rollback depends on: never run an old binary on a newer schema.
pub fn schema_too_new(found: i64) -> StoreError {
    StoreError::new(
        ErrorKind::SchemaTooNew,
        format!(
            "the database schema is at version {found} but this kneo binary knows versions up to {SCHEMA_VERSION}; \
             it was written by a newer kneo. Run the newer binary, or restore a backup taken before the upgrade \
             (kneo-ops rollback plan; runbook § 2.7)"
        ),
    )
}

/// Starts a write transaction that takes the write lock at once, so it never fails half-way on a
/// lock upgrade.
pub fn begin(connection: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(e, "starting a transaction"))
}

pub fn commit(transaction: Transaction<'_>) -> Result<(), StoreError> {
    transaction
        .commit()
        .map_err(|e| classify(e, "committing a transaction"))
}

/// Classifies a SQLite error into a stable kind, keeping the operation in the message.
pub fn classify(error: rusqlite::Error, operation: &str) -> StoreError {
    let kind = match &error {
        rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Locked,
            ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::AuthorizationForStatementDenied => ErrorKind::PermissionDenied,
            ErrorCode::CannotOpen => ErrorKind::NotFound,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => ErrorKind::Corrupt,
            ErrorCode::SystemIoFailure | ErrorCode::DiskFull => ErrorKind::Io,
            _ if message
                .as_deref()
                .is_some_and(|m| m.contains("no such table")) =>
            {
                ErrorKind::SchemaMissing
            }
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    StoreError::new(kind, format!("{operation}: {error}"))
}

/// `execute`/`query_row` through the connection's statement cache: the store runs the same few
/// statements thousands of times a second, and parsing them each time shows up in profiles.
pub trait CachedStatements {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, read: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, read: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, read)
    }
}

/// Serializes a document for a JSON text column.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::internal(format!("serializing a record: {e}")))
}

/// Parses a JSON text column; a bad document is reported as corrupt with where it was found.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(format!("{what} is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless_and_reaches_the_known_version() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("store.sqlite");
        let mut connection = open_connection(&path).expect("open");
        migrate(&mut connection).expect("first migration");
        migrate(&mut connection).expect("second migration is a no-op");
        assert_eq!(
            schema_version_of(&connection).expect("version"),
            SCHEMA_VERSION
        );
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("store.sqlite");
        let mut connection = open_connection(&path).expect("open");
        migrate(&mut connection).expect("migrate");
        connection
            .execute(
                "INSERT INTO schema_migrations VALUES (99, 'future', 'x')",
                [],
            )
            .expect("insert");
        let error = migrate(&mut connection).expect_err("refused");
        assert_eq!(error.kind, ErrorKind::SchemaTooNew);
        assert!(error.message.contains("version 99"), "{}", error.message);
        assert!(
            error.message.contains(&format!("up to {SCHEMA_VERSION}")),
            "{}",
            error.message
        );
    }
}
