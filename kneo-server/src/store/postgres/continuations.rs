//! Continuations in the `continuations` table, beside the runs they resume.
//!
//! One `jsonb` document per paused task. A document that no longer has the shape of a
//! [`Continuation`] (a manual edit, a bad restore) is reported, never dropped in silence: `get`
//! fails with `corrupt` and `list` names it among the unreadable ones.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::Inner;
use super::columns;
use super::errors::Failure;
use super::sql::{self, column};
use crate::store::{
    Continuation, ContinuationListing, ContinuationStore, StoreError, UnreadableContinuation,
};

/// The Postgres continuation store; shares the run store's pool and readiness.
#[derive(Clone)]
pub struct PostgresContinuationStore {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresContinuationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresContinuationStore")
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

fn parse(continuation_id: &str, document: Value) -> Result<Continuation, StoreError> {
    serde_json::from_value(document).map_err(|error| {
        StoreError::corrupt(format!(
            "continuation {continuation_id} is unreadable: its stored document does not have the shape of a \
             continuation ({error}); the run cannot be resumed from it (runbook § 8.3)"
        ))
    })
}

async fn put(client: &impl GenericClient, continuation: &Continuation) -> Result<(), Failure> {
    let document =
        columns::to_document(continuation, &format!("continuation {}", continuation.id))?;
    // A continuation's created_at is informational; one that does not parse must not block the pause.
    let created_at = crate::clock::parse(&continuation.created_at);
    sql::execute(
        client,
        "writing a continuation",
        "INSERT INTO continuations (id, run_id, created_at, document) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at,
             document = EXCLUDED.document",
        &[
            &continuation.id,
            &continuation.run_id,
            &created_at,
            &document,
        ],
    )
    .await?;
    Ok(())
}

async fn get(
    client: &impl GenericClient,
    continuation_id: &str,
) -> Result<Option<Continuation>, Failure> {
    let operation = "reading a continuation";
    let row = sql::query_opt(
        client,
        operation,
        "SELECT document FROM continuations WHERE id = $1",
        &[&continuation_id],
    )
    .await?;
    match row {
        Some(row) => Ok(Some(parse(continuation_id, column(&row, 0, operation)?)?)),
        None => Ok(None),
    }
}

async fn list(client: &impl GenericClient) -> Result<ContinuationListing, Failure> {
    let operation = "listing continuations";
    let rows = sql::query(
        client,
        operation,
        "SELECT id, document FROM continuations ORDER BY id",
        &[],
    )
    .await?;
    let mut listing = ContinuationListing::default();
    for row in &rows {
        let id: String = column(row, 0, operation)?;
        match parse(&id, column(row, 1, operation)?) {
            Ok(continuation) => listing.continuations.push(continuation),
            Err(error) => listing.unreadable.push(UnreadableContinuation {
                continuation_id: id,
                error: error.message,
            }),
        }
    }
    Ok(listing)
}

async fn delete(client: &impl GenericClient, continuation_id: &str) -> Result<bool, Failure> {
    let deleted = sql::execute(
        client,
        "deleting a continuation",
        "DELETE FROM continuations WHERE id = $1",
        &[&continuation_id],
    )
    .await?;
    Ok(deleted > 0)
}

#[async_trait]
impl ContinuationStore for PostgresContinuationStore {
    async fn probe(&self) -> Result<(), StoreError> {
        self.inner
            .run("probing the continuations table", async |client| {
                sql::query(
                    &*client,
                    "probing the continuations table",
                    "SELECT 1 FROM continuations LIMIT 1",
                    &[],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn put(&self, continuation: &Continuation) -> Result<(), StoreError> {
        let continuation = continuation.clone();
        self.inner
            .run("writing a continuation", async move |client| {
                put(&*client, &continuation).await
            })
            .await
    }

    async fn get(&self, continuation_id: &str) -> Result<Option<Continuation>, StoreError> {
        let continuation_id = continuation_id.to_string();
        self.inner
            .run("reading a continuation", async move |client| {
                get(&*client, &continuation_id).await
            })
            .await
    }

    async fn list(&self) -> Result<ContinuationListing, StoreError> {
        self.inner
            .run("listing continuations", async |client| list(&*client).await)
            .await
    }

    async fn delete(&self, continuation_id: &str) -> Result<bool, StoreError> {
        let continuation_id = continuation_id.to_string();
        self.inner
            .run("deleting a continuation", async move |client| {
                delete(&*client, &continuation_id).await
            })
            .await
    }
}
