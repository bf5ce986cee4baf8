//! Backup, verification and restore of all service state, for both stores, in one archive format.
//!
//! The engine behind `kneo-ops backup|verify|restore`; the CLI adds flags, progress bars and the
//! "is the service answering" check on top.
//!
//! - [`snapshot`]: [`backup`] takes one consistent snapshot of a running store (SQLite online
//!   backup API, or one Postgres `REPEATABLE READ` transaction) with its continuations, and writes
//!   the archive atomically.
//! - [`verify`]: [`verify`] checks an archive without trusting it; [`verify_deep`] also restores it
//!   into a scratch store and runs the server's own queries there.
//! - [`import`]: [`import()`] moves a kneo-serv 1.2 archive into a kneo-server store: converted
//!   record by record into a kneo-server archive, which is then restored.
//! - [`restore`]: [`restore`] loads an archive into a state directory or a Postgres database,
//!   atomically, refusing a non-empty target (without `force`), a live embedded store, a newer
//!   schema and an archive that fails verification. Archives move between the two stores.
//! - [`format`]: the archive layout, the schema families and their table columns, and the
//!   manifest (read this first). [`kneo_serv`] describes the kneo-serv 1.2 family, [`detect`]
//!   tells the families apart in a live store.
//! - `archive`, `rows`, `files`, `postgres`: the tar.gz container, JSONL rows, file plumbing and
//!   Postgres connections they share.

mod archive;
pub mod detect;
mod error;
mod files;
pub mod format;
pub mod import;
pub mod kneo_serv;
mod postgres;
pub mod restore;
mod rows;
pub mod snapshot;
pub mod verify;

use std::path::PathBuf;

pub use archive::peek_family as archive_family;
pub use error::BackupError;
pub use format::{Family, Manifest};
pub use import::{ImportOptions, ImportPlan, ImportReport, NotCarried, import};
pub use restore::{RestoreOptions, RestoreReport, restore};
pub use snapshot::{BackupOptions, BackupSummary, backup};
pub use verify::{
    DeepCheck, DeepVerifyReport, Failure, FailureKind, ScratchTarget, VerifyReport, VerifyStats,
    verify, verify_deep,
};

/// Where a store lives: what a backup reads and a restore writes.
#[derive(Clone)]
pub enum StoreLocation {
    /// The embedded store: `<state_dir>/kneo_runs.sqlite` and `<state_dir>/continuations/`.
    Sqlite { state_dir: PathBuf },
    /// A Postgres database (`KNEO_SERV_DATABASE_URL`), continuations included.
    Postgres { url: String },
}

impl StoreLocation {
    pub fn sqlite(state_dir: impl Into<PathBuf>) -> StoreLocation {
        StoreLocation::Sqlite {
            state_dir: state_dir.into(),
        }
    }

    pub fn postgres(url: impl Into<String>) -> StoreLocation {
        StoreLocation::Postgres { url: url.into() }
    }

    /// The location for messages and manifests: the directory, or `host:port/database`.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite { state_dir } => state_dir.display().to_string(),
            StoreLocation::Postgres { url } => postgres::describe_url(url),
        }
    }

    pub(crate) fn sqlite_file(state_dir: &std::path::Path) -> PathBuf {
        state_dir.join(SQLITE_FILE)
    }

    pub(crate) fn continuations_dir(state_dir: &std::path::Path) -> PathBuf {
        state_dir.join(CONTINUATIONS_DIR)
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite { state_dir } => f
                .debug_struct("Sqlite")
                .field("state_dir", state_dir)
                .finish(),
            StoreLocation::Postgres { .. } => f
                .debug_struct("Postgres")
                .field("target", &self.describe())
                .finish(),
        }
    }
}

/// The SQLite file inside a state directory (as `Config::sqlite_path` names it).
pub const SQLITE_FILE: &str = "kneo_runs.sqlite";
/// The continuation directory inside a state directory (as `Config::continuations_dir` names it).
pub const CONTINUATIONS_DIR: &str = "continuations";

/// A step of a long operation, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    /// What is being worked on (a table, a file).
    pub item: String,
    /// Units done so far and in total: rows for export and restore, bytes for verification.
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Taking the consistent snapshot.
    Snapshot,
    /// Writing the tables of the snapshot.
    Export,
    /// Finishing the archive.
    Pack,
    /// Reading an archive to check it.
    Verify,
    /// Converting a kneo-serv archive into a kneo-server one.
    Convert,
    /// Loading an archive into a store.
    Restore,
    /// Checking the restored store.
    Check,
}

/// A progress callback that ignores everything.
pub fn no_progress(_: Progress) {}

/// Runs blocking `work` off the async runtime, forwarding its progress to `progress` on the
/// caller's task.
pub(crate) async fn run_blocking<T, F>(
    progress: &(dyn Fn(Progress) + Sync),
    work: F,
) -> Result<T, BackupError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Fn(Progress)) -> Result<T, BackupError> + Send + 'static,
{
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let handle = tokio::task::spawn_blocking(move || {
        let report = move |step: Progress| {
            let _ = sender.send(step);
        };
        work(&report)
    });
    tokio::pin!(handle);
    loop {
        tokio::select! {
            Some(step) = receiver.recv() => progress(step),
            result = &mut handle => {
                while let Ok(step) = receiver.try_recv() {
                    progress(step);
                }
                return result.map_err(|error| {
                    BackupError::Internal(format!("a backup task failed: {error}"))
                })?;
            }
        }
    }
}
