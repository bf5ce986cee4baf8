//! Statement helpers: every statement goes through the connection's prepared-statement cache (one
//! round trip instead of two once warm) and every driver error is classified with its operation.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::errors::{Failure, database};

pub(super) type Parameters<'a> = [&'a (dyn ToSql + Sync)];

pub(super) async fn execute(
    client: &impl GenericClient,
    operation: &str,
    sql: &str,
    parameters: &Parameters<'_>,
) -> Result<u64, Failure> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(database(operation))?;
    client
        .execute(&statement, parameters)
        .await
        .map_err(database(operation))
}

pub(super) async fn query(
    client: &impl GenericClient,
    operation: &str,
    sql: &str,
    parameters: &Parameters<'_>,
) -> Result<Vec<Row>, Failure> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(database(operation))?;
    client
        .query(&statement, parameters)
        .await
        .map_err(database(operation))
}

pub(super) async fn query_opt(
    client: &impl GenericClient,
    operation: &str,
    sql: &str,
    parameters: &Parameters<'_>,
) -> Result<Option<Row>, Failure> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(database(operation))?;
    client
        .query_opt(&statement, parameters)
        .await
        .map_err(database(operation))
}

pub(super) async fn query_one(
    client: &impl GenericClient,
    operation: &str,
    sql: &str,
    parameters: &Parameters<'_>,
) -> Result<Row, Failure> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(database(operation))?;
    client
        .query_one(&statement, parameters)
        .await
        .map_err(database(operation))
}

/// One column of a row, with a decoding failure classified like any other.
pub(super) fn column<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    operation: &str,
) -> Result<T, Failure> {
    row.try_get(index).map_err(database(operation))
}
