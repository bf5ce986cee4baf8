//! The hand-rolled migrator: `migrations/NNNN_name.sql`, each applied in its own transaction and
//! recorded in `schema_migrations`.
//!
//! Every step takes `pg_advisory_xact_lock(MIGRATION_LOCK)` first, so servers starting at the same
//! time take turns: the second one finds the step recorded and skips it. A database whose schema
//! is newer than this binary knows is refused before anything is written.

use deadpool_postgres::{Client, GenericClient};

use super::errors::{Failure, database};
use crate::store::{ErrorKind, SCHEMA_VERSION, StoreError};

/// Migrations in order: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "run_filters_and_environment_policies",
        include_str!("migrations/0002_run_filters_and_environment_policies.sql"),
    ),
];

/// The advisory lock every kneo process takes while migrating ("kneo" in ASCII). Advisory locks are
/// per database, so kneo deployments sharing a cluster with separate databases do not contend.
const MIGRATION_LOCK: i64 = 0x6b6e_656f;

/// Applies pending migrations; refuses a schema newer than [`SCHEMA_VERSION`].
pub(super) async fn migrate(client: &mut Client) -> Result<(), Failure> {
    let drill = crate::drill::extra_migration();
    for (version, name, sql) in MIGRATIONS.iter().copied().chain(drill) {
        let transaction = client
            .transaction()
            .await
            .map_err(database("starting a migration"))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(database("waiting for the migration lock"))?;
        ensure_ledger(&transaction).await?;
        let current = applied_version(&transaction).await?;
        if current > crate::drill::known_schema_version() {
            return Err(schema_too_new(current).into());
        }
        if version <= current {
            // Already applied, by us earlier or by another server a moment ago.
            transaction
                .rollback()
                .await
                .map_err(database("ending a migration check"))?;
            continue;
        }
        transaction
            .batch_execute(sql)
            .await
            .map_err(database(&format!("applying migration {version} ({name})")))?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                &[&version, &name],
            )
            .await
            .map_err(database("recording a migration"))?;
        transaction.commit().await.map_err(database(&format!(
            "committing migration {version} ({name})"
        )))?;
        tracing::info!(target: "kneo_serv.service", version, name, "applied a Postgres schema migration");
    }
    Ok(())
}

/// Creates `schema_migrations` unless it exists. The existence check comes first so a role that may
/// use the schema but not create tables in it can still start on a migrated database.
async fn ensure_ledger(client: &impl GenericClient) -> Result<(), Failure> {
    if ledger_exists(client).await? {
        return Ok(());
    }
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    bigint PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(database("creating schema_migrations"))
}

async fn ledger_exists(client: &impl GenericClient) -> Result<bool, Failure> {
    let row = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(database("looking for schema_migrations"))?;
    row.try_get(0)
        .map_err(database("looking for schema_migrations"))
}

async fn applied_version(client: &impl GenericClient) -> Result<i64, Failure> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(database("reading the schema version"))?;
    row.try_get(0)
        .map_err(database("reading the schema version"))
}

/// The highest applied migration, 0 for an empty database.
pub(super) async fn schema_version(client: &impl GenericClient) -> Result<i64, Failure> {
    if !ledger_exists(client).await? {
        return Ok(0);
    }
    applied_version(client).await
}

/// The refusal rollback depends on: never run an old binary on a newer schema. Same words as the
/// SQLite store, so the runbook can quote one message.
pub(super) fn schema_too_new(found: i64) -> StoreError {
    StoreError::new(
        ErrorKind::SchemaTooNew,
        format!(
            "the database schema is at version {found} but this kneo binary knows versions up to {SCHEMA_VERSION}; \
             it was written by a newer kneo. Run the newer binary, or restore a backup taken before the upgrade \
             (kneo-ops rollback plan; runbook § 2.7)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_end_at_the_schema_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(version, _, _)| *version).collect();
        let expected: Vec<i64> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn the_refusal_names_both_versions() {
        let error = schema_too_new(99);
        assert_eq!(error.kind, ErrorKind::SchemaTooNew);
        assert!(error.message.contains("version 99"), "{}", error.message);
        assert!(
            error.message.contains(&format!("up to {SCHEMA_VERSION}")),
            "{}",
            error.message
        );
    }
}
