//! Environment policies on Postgres: one row per environment name, the policy as jsonb.

use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::columns;
use super::errors::Failure;
use super::sql::{self, column};
use crate::store::EnvironmentPolicyRecord;

fn record(row: &tokio_postgres::Row, operation: &str) -> Result<EnvironmentPolicyRecord, Failure> {
    let updated_at: columns::Timestamp = column(row, 2, operation)?;
    Ok(EnvironmentPolicyRecord {
        environment: column(row, 0, operation)?,
        policy: column::<Value>(row, 1, operation)?,
        updated_at: columns::text(updated_at),
    })
}

pub(super) async fn list(
    client: &impl GenericClient,
) -> Result<Vec<EnvironmentPolicyRecord>, Failure> {
    let operation = "listing environment policies";
    let rows = sql::query(
        client,
        operation,
        "SELECT environment, policy, updated_at FROM environment_policies ORDER BY environment",
        &[],
    )
    .await?;
    rows.iter().map(|row| record(row, operation)).collect()
}

pub(super) async fn get(
    client: &impl GenericClient,
    environment: &str,
) -> Result<Option<EnvironmentPolicyRecord>, Failure> {
    let operation = "reading an environment policy";
    let rows = sql::query(
        client,
        operation,
        "SELECT environment, policy, updated_at FROM environment_policies WHERE environment = $1",
        &[&environment],
    )
    .await?;
    rows.first().map(|row| record(row, operation)).transpose()
}

pub(super) async fn put(
    client: &impl GenericClient,
    policy: &EnvironmentPolicyRecord,
) -> Result<(), Failure> {
    let updated_at = columns::timestamp(&policy.updated_at, "updated_at")?;
    sql::execute(
        client,
        "storing an environment policy",
        "INSERT INTO environment_policies (environment, policy, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (environment) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
        &[&policy.environment, &policy.policy, &updated_at],
    )
    .await?;
    Ok(())
}
