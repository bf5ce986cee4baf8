//! The state-directory lock: one `kneo service serve` per embedded store.
//!
//! SQLite with several server processes is not a supported topology (runbook § 2.3), and the
//! embedded store's crash recovery relies on being the only process holding leases. An exclusive
//! `flock` on `.kneo/kneo.lock` enforces both; the kernel drops it when the process dies, so a
//! crashed server never blocks its own restart. `kneo-ops restore` checks the same lock.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Held for as long as the process serves the store.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    pub path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    #[error(
        "another kneo process is serving the store in {directory} (lock {lock}); stop it first, or give this one its own KNEO_SERV_STATE_DIR (runbook § 2.6)"
    )]
    Held { directory: String, lock: String },
    #[error("cannot create the state directory or lock file {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl StateLock {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("kneo.lock")
    }

    /// Takes the lock, failing at once (never waiting) if another process holds it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, StateLockError> {
        let path = StateLock::path_in(state_dir);
        let io = |error| StateLockError::Io {
            path: path.display().to_string(),
            error,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(StateLock { _file: file, path }),
            Err(Errno::WOULDBLOCK) => Err(StateLockError::Held {
                directory: state_dir.display().to_string(),
                lock: path.display().to_string(),
            }),
            Err(errno) => Err(io(errno.into())),
        }
    }

    /// Whether some process holds the lock of `state_dir` right now.
    pub fn is_held(state_dir: &Path) -> bool {
        match StateLock::acquire(state_dir) {
            Ok(_lock) => false,
            Err(StateLockError::Held { .. }) => true,
            Err(StateLockError::Io { .. }) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let directory = tempfile::tempdir().expect("tempdir");
        let first = StateLock::acquire(directory.path()).expect("first");
        let error = StateLock::acquire(directory.path()).expect_err("held");
        assert!(
            error.to_string().contains("another kneo process"),
            "{error}"
        );
        assert!(StateLock::is_held(directory.path()));
        drop(first);
        assert!(!StateLock::is_held(directory.path()));
    }
}
