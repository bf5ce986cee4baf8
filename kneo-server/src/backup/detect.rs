//! Which schema family a store follows, from the columns of its `runs` table: kneo-server keeps a
//! run's state in `document`, kneo-serv 1.2 in `payload`. Both record their migrations in a
//! `schema_migrations` table, so the ledger alone cannot tell them apart.

use rusqlite::Connection;

use super::BackupError;
use super::format::Family;
use super::postgres::Session;

/// The family a set of `runs` column names belongs to; `None` when there is no `runs` table or
/// its columns are neither family's.
pub fn family_of_run_columns<'a>(columns: impl IntoIterator<Item = &'a str>) -> Option<Family> {
    let columns: Vec<&str> = columns.into_iter().collect();
    Family::ALL.into_iter().find(|family| {
        let schema = family.schema();
        schema.runs_table().is_some_and(|runs| {
            runs.columns
                .iter()
                .all(|column| columns.contains(&column.name))
        }) && columns.contains(&schema.runs.document)
    })
}

/// The family of the SQLite database on `connection`.
pub fn sqlite_family(connection: &Connection) -> Result<Option<Family>, BackupError> {
    let mut statement = connection
        .prepare("SELECT name FROM pragma_table_info('runs')")
        .map_err(BackupError::sqlite("reading the columns of runs"))?;
    let columns: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(BackupError::sqlite("reading the columns of runs"))?;
    Ok(family_of_run_columns(columns.iter().map(String::as_str)))
}

/// The family of the Postgres database (its current schema) of `session`.
pub async fn postgres_family(session: &Session) -> Result<Option<Family>, BackupError> {
    let rows = session
        .client
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'runs'",
            &[],
        )
        .await
        .map_err(BackupError::postgres(
            "reading the columns of runs",
            &session.target,
        ))?;
    let columns: Vec<String> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(BackupError::postgres(
            "reading the columns of runs",
            &session.target,
        ))?;
    Ok(family_of_run_columns(columns.iter().map(String::as_str)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_columns_tell_the_families_apart() {
        let kneo = [
            "id",
            "status",
            "created_at",
            "updated_at",
            "deadline_at",
            "workflow_name",
            "session_id",
            "workflow_kind",
            "document",
        ];
        assert_eq!(family_of_run_columns(kneo), Some(Family::Kneo));
        let kneo_serv = [
            "id",
            "status",
            "workflow_name",
            "workflow_kind",
            "agent_name",
            "created_at",
            "updated_at",
            "payload",
            "session_id",
        ];
        assert_eq!(family_of_run_columns(kneo_serv), Some(Family::KneoServ));
        assert_eq!(family_of_run_columns(["id", "payload"]), None);
        assert_eq!(family_of_run_columns([]), None);
    }
}
