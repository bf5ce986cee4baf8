//! Postgres connections for backup and restore: one dedicated session (not the store's pool), so
//! a snapshot or a restore runs in one transaction of its own.

use tokio_postgres::Client;

use super::BackupError;
use crate::postgres_client::PostgresTarget;

/// `host:port/database` of a URL, never its password; the URL itself (redacted) if it does not parse.
pub fn describe_url(url: &str) -> String {
    crate::postgres_client::describe_url(url)
}

/// An open session and the task driving it (aborted when dropped).
pub struct Session {
    pub client: Client,
    pub target: String,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects to `url` for `purpose` (named in `pg_stat_activity`).
pub async fn connect(url: &str, purpose: &str) -> Result<Session, BackupError> {
    let mut target = PostgresTarget::from_url(url).map_err(|error| {
        BackupError::Internal(format!(
            "the Postgres URL {} cannot be used: {error}",
            crate::redact::redact_dsn(url)
        ))
    })?;
    let config = target.config_mut();
    if config.get_application_name().is_none() {
        config.application_name(purpose);
    }
    config.connect_timeout(std::time::Duration::from_secs(10));
    let (client, connection) = target
        .connect()
        .await
        .map_err(BackupError::postgres("connecting", target.describe()))?;
    let target = target.describe().to_string();
    let driver = tokio::spawn(async move {
        // The session ends with an error when it is dropped mid-query; the caller has the answer.
        let _ = connection.await;
    });
    Ok(Session {
        client,
        target,
        driver,
    })
}

/// Whether the kneo schema exists in the session's database (its `schema_migrations` ledger).
pub async fn has_schema(session: &Session) -> Result<bool, BackupError> {
    let row = session
        .client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(BackupError::postgres(
            "looking for schema_migrations",
            &session.target,
        ))?;
    row.try_get(0).map_err(BackupError::postgres(
        "looking for schema_migrations",
        &session.target,
    ))
}

/// `"name"` for SQL.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
