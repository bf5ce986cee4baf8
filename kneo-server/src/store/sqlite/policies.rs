//! Environment policies on SQLite: one row per environment name, the policy as JSON text.

use rusqlite::{Connection, OptionalExtension, params};

use super::connection::{CachedStatements, classify, from_json};
use crate::store::{EnvironmentPolicyRecord, StoreError};

fn record(
    environment: String,
    policy: &str,
    updated_at: String,
) -> Result<EnvironmentPolicyRecord, StoreError> {
    Ok(EnvironmentPolicyRecord {
        policy: from_json(
            policy,
            &format!("the policy of environment {environment:?}"),
        )?,
        environment,
        updated_at,
    })
}

pub fn list(connection: &Connection) -> Result<Vec<EnvironmentPolicyRecord>, StoreError> {
    let rows: Vec<(String, String, String)> = connection
        .prepare_cached(
            "SELECT environment, policy, updated_at FROM environment_policies ORDER BY environment",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .and_then(Iterator::collect)
        })
        .map_err(|e| classify(e, "listing environment policies"))?;
    rows.into_iter()
        .map(|(environment, policy, updated_at)| record(environment, &policy, updated_at))
        .collect()
}

pub fn get(
    connection: &Connection,
    environment: &str,
) -> Result<Option<EnvironmentPolicyRecord>, StoreError> {
    let row: Option<(String, String)> = connection
        .prepare_cached(
            "SELECT policy, updated_at FROM environment_policies WHERE environment = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([environment], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(|e| classify(e, "reading an environment policy"))?;
    row.map(|(policy, updated_at)| record(environment.to_string(), &policy, updated_at))
        .transpose()
}

pub fn put(connection: &Connection, policy: &EnvironmentPolicyRecord) -> Result<(), StoreError> {
    let document = serde_json::to_string(&policy.policy)
        .map_err(|e| StoreError::internal(format!("serializing an environment policy: {e}")))?;
    connection
        .execute_cached(
            "INSERT INTO environment_policies (environment, policy, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (environment) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
            params![policy.environment, document, policy.updated_at],
        )
        .map_err(|e| classify(e, "storing an environment policy"))?;
    Ok(())
}
