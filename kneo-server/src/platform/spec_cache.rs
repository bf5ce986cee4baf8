//! A cache of spec files already parsed and validated, so a busy service does not re-read and
//! re-validate the same `spec_path` on every run.
//!
//! An entry is trusted for one second; after that the file's canonical path, size and
//! modification time are checked again (confinement included) and the spec is reloaded if
//! any changed. An edited spec therefore takes effect within a second.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::Spec;

/// How long an entry is used without looking at the file again.
const TRUST_FOR: Duration = Duration::from_secs(1);

/// Entries kept; the cache is emptied when it would grow past this (specs are few in practice).
const MAX_ENTRIES: usize = 512;

/// A parsed, validated spec file.
#[derive(Debug)]
pub struct CachedSpec {
    pub value: Value,
    pub spec: Spec,
    pub diagnostics: Vec<Diagnostic>,
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    pub canonical: PathBuf,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

struct Entry {
    stamp: FileStamp,
    checked_at: Instant,
    spec: Arc<CachedSpec>,
}

#[derive(Default)]
pub struct SpecCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl SpecCache {
    /// The cached spec for `requested`, if it was checked less than a second ago.
    pub fn fresh(&self, requested: &str) -> Option<Arc<CachedSpec>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(requested)
            .filter(|entry| entry.checked_at.elapsed() < TRUST_FOR)
            .map(|entry| entry.spec.clone())
    }

    /// The cached spec for `requested` if the file still has `stamp`; marks it checked.
    pub fn unchanged(&self, requested: &str, stamp: &FileStamp) -> Option<Arc<CachedSpec>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries
            .get_mut(requested)
            .filter(|entry| &entry.stamp == stamp)?;
        entry.checked_at = Instant::now();
        Some(entry.spec.clone())
    }

    pub fn insert(&self, requested: &str, stamp: FileStamp, spec: Arc<CachedSpec>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            requested.to_string(),
            Entry {
                stamp,
                checked_at: Instant::now(),
                spec,
            },
        );
    }

    /// Forgets a path whose file became unreadable or invalid.
    pub fn remove(&self, requested: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(requested);
    }
}
