//! The single writer of the embedded store, with group commit.
//!
//! SQLite admits one writer at a time, so every write goes to one dedicated thread. When several
//! writes are waiting, the thread runs them in one transaction, each inside its own savepoint:
//! a failing write rolls back alone, and the batch pays for one commit instead of many. A write's
//! caller hears back only after the commit, so success always means durable.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::connection::{CachedStatements, classify};
use crate::store::StoreError;

/// Writes one batch may hold; keeps a commit (and the latency of its first write) bounded.
const MAX_BATCH: usize = 64;

/// A queued write, type-erased so writes of every result type share one queue.
trait Job: Send {
    /// Runs the write on the open transaction; false when it failed (its savepoint is undone).
    fn run(&mut self, connection: &Connection) -> bool;
    /// Delivers the outcome once the batch committed (or failed to).
    fn finish(self: Box<Self>, commit: &Result<(), StoreError>);
}

struct TypedJob<T, F> {
    operation: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let result = match self.operation.take() {
            Some(operation) => operation(connection),
            None => Err(StoreError::internal("a write ran twice")),
        };
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn finish(self: Box<Self>, commit: &Result<(), StoreError>) {
        let outcome = match (commit, self.result) {
            (_, Some(Err(error))) => Err(error),
            (Err(error), _) => Err(error.clone()),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Ok(()), None) => Err(StoreError::internal("a write never ran")),
        };
        // The caller may have gone away (its request was dropped); the write stands regardless.
        let _ = self.reply.send(outcome);
    }
}

/// Handle to the writer thread.
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `connection` (already migrated).
    pub fn start(connection: Connection) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        thread::Builder::new()
            .name("kneo-sqlite-writer".into())
            .spawn(move || write_loop(connection, jobs))
            .map_err(|error| {
                StoreError::internal(format!("cannot start the SQLite writer thread: {error}"))
            })?;
        Ok(Writer { queue })
    }

    /// Queues a write and waits for it to be committed.
    pub async fn write<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            operation: Some(operation),
            result: None,
            reply,
        };
        self.queue
            .send(Box::new(job))
            .map_err(|_| StoreError::internal("the SQLite writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::internal("the SQLite writer dropped a write"))?
    }
}

fn write_loop(connection: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    // Ends when every Writer handle is gone.
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&connection, &mut batch);
        for job in batch {
            job.finish(&commit);
        }
    }
}

/// Runs a statement that takes no parameters through the statement cache.
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<usize> {
    connection.execute_cached(sql, [])
}

/// Runs a batch in one transaction. With several writes, each runs in its own savepoint so a
/// failing one is undone alone; a single write needs none (its failure undoes the transaction).
fn run_batch(connection: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    control(connection, "BEGIN IMMEDIATE")
        .map_err(|e| classify(e, "starting a write transaction"))?;
    if let [only] = batch {
        if !only.run(connection) {
            let _ = control(connection, "ROLLBACK");
            return Ok(());
        }
    } else {
        for job in batch.iter_mut() {
            if let Err(error) = control(connection, "SAVEPOINT write") {
                let _ = control(connection, "ROLLBACK");
                return Err(classify(error, "opening a savepoint"));
            }
            let succeeded = job.run(connection);
            let closed = if succeeded {
                control(connection, "RELEASE write")
            } else {
                control(connection, "ROLLBACK TO write")
                    .and_then(|_| control(connection, "RELEASE write"))
            };
            if let Err(error) = closed {
                let _ = control(connection, "ROLLBACK");
                return Err(classify(error, "closing a savepoint"));
            }
        }
    }
    control(connection, "COMMIT").map(|_| ()).map_err(|error| {
        let _ = control(connection, "ROLLBACK");
        classify(error, "committing a write transaction")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let directory = tempfile::tempdir().expect("tempdir");
        let connection =
            super::super::open_connection(&directory.path().join("w.sqlite")).expect("open");
        connection
            .execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .expect("table");
        (directory, Writer::start(connection).expect("writer"))
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_alone() {
        let (_directory, writer) = writer();
        let writes = (0..20).map(|value| {
            let writer = &writer;
            async move {
                writer
                    .write(move |c| {
                        c.execute("INSERT INTO t (v) VALUES (?1)", [value % 10])
                            .map_err(|e| classify(e, "insert"))
                    })
                    .await
            }
        });
        let results = futures_util::future::join_all(writes).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            10,
            "duplicates fail, the rest commit"
        );
        let count = writer
            .write(|c| {
                c.query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0))
                    .map_err(|e| classify(e, "count"))
            })
            .await
            .expect("count");
        assert_eq!(count, 10);
    }
}
