//! The local archive directory: list backups with what their manifests and verification records
//! say, and prune old ones.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use kneo_server::backup::{Family, Manifest};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::rollback::BackupCandidate;

/// One archive in the directory.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub created_at: Option<DateTime<Utc>>,
    pub server_version: Option<String>,
    pub schema_version: Option<i64>,
    /// Whose store it is: `kneo-server` or `kneo-serv`.
    pub family: Option<Family>,
    pub source: Option<String>,
    pub runs: Option<u64>,
    /// The last `verify --deep` record for this exact archive passed.
    pub verified: bool,
    /// When the archive's manifest could not be read.
    pub problem: Option<String>,
}

impl ArchiveInfo {
    /// As a rollback candidate (None when its manifest could not be read, or it is the backup
    /// of a kneo-serv store, which is no state of a kneo-server version).
    pub fn candidate(&self) -> Option<BackupCandidate> {
        if self.family != Some(Family::Kneo) {
            return None;
        }
        Some(BackupCandidate {
            path: self.path.display().to_string(),
            created_at: self.created_at?,
            server_version: self.server_version.clone(),
            schema_version: self.schema_version?,
            verified: self.verified,
        })
    }
}

/// Reads `manifest.json` out of an archive without unpacking the rest (a cheap look; `verify`
/// is what checks it).
pub fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar.gz: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("unreadable entry: {e}"))?;
        let is_manifest = entry
            .path()
            .map(|p| p.as_os_str() == "manifest.json")
            .unwrap_or(false);
        if is_manifest {
            let mut text = String::new();
            entry
                .take(16 * 1024 * 1024)
                .read_to_string(&mut text)
                .map_err(|e| format!("unreadable manifest: {e}"))?;
            return serde_json::from_str(&text)
                .map_err(|e| format!("manifest.json does not parse: {e}"));
        }
    }
    Err("no manifest.json in the archive".into())
}

fn sha256_of(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Some(hex::encode(hasher.finalize()))
}

/// Whether `<archive>.verified.json` records a passed deep verification of this very file.
fn verified(path: &Path) -> bool {
    let record = PathBuf::from(format!("{}.verified.json", path.display()));
    let Ok(text) = std::fs::read_to_string(record) else {
        return false;
    };
    let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    record.get("ok") == Some(&serde_json::Value::Bool(true))
        && record
            .get("archive_sha256")
            .and_then(|v| v.as_str())
            .is_some_and(|sha| Some(sha.to_string()) == sha256_of(path))
}

/// Every `*.tar.gz` directly in `directory`, newest first.
pub fn list(directory: &Path) -> Result<Vec<ArchiveInfo>, String> {
    let entries = std::fs::read_dir(directory).map_err(|e| {
        format!(
            "cannot read the backup directory {}: {e}",
            directory.display()
        )
    })?;
    let mut archives = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".tar.gz") || !path.is_file() {
            continue;
        }
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let info = match read_manifest(&path) {
            Ok(manifest) => ArchiveInfo {
                created_at: DateTime::parse_from_rfc3339(&manifest.created_at)
                    .ok()
                    .map(|at| at.with_timezone(&Utc)),
                server_version: manifest.server_version.clone(),
                schema_version: Some(manifest.schema_version),
                family: Some(manifest.family),
                source: Some(manifest.source.kind.clone()),
                runs: manifest
                    .tables
                    .iter()
                    .find(|t| t.name == "runs")
                    .map(|t| t.rows),
                verified: verified(&path),
                problem: None,
                bytes,
                path,
            },
            Err(problem) => ArchiveInfo {
                path,
                bytes,
                created_at: None,
                server_version: None,
                schema_version: None,
                family: None,
                source: None,
                runs: None,
                verified: false,
                problem: Some(problem),
            },
        };
        archives.push(info);
    }
    archives.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.path.cmp(&a.path))
    });
    Ok(archives)
}

/// What `prune --keep N` does.
#[derive(Debug)]
pub struct PrunePlan<'a> {
    /// All but the newest `keep` readable archives (unreadable archives are never deleted
    /// automatically: someone should look at them) …
    pub doomed: Vec<&'a ArchiveInfo>,
    /// … except the newest verified archive when none of the kept ones is verified: pruning
    /// never takes away the last archive known to restore. Said aloud when it happens.
    pub spared: Option<&'a ArchiveInfo>,
}

/// What `prune --keep keep` does with `archives` (newest first, as `list` gives them).
pub fn prune_plan(archives: &[ArchiveInfo], keep: usize) -> PrunePlan<'_> {
    let readable: Vec<&ArchiveInfo> = archives.iter().filter(|a| a.problem.is_none()).collect();
    let (kept, mut doomed) = if readable.len() > keep {
        let (kept, doomed) = readable.split_at(keep);
        (kept.to_vec(), doomed.to_vec())
    } else {
        (readable, Vec::new())
    };
    let spared = if kept.iter().any(|a| a.verified) {
        None
    } else {
        doomed
            .iter()
            .position(|a| a.verified)
            .map(|index| doomed.remove(index))
    };
    PrunePlan { doomed, spared }
}

/// Deletes an archive and the files written beside it (`.sha256`, `.verified.json`).
pub fn delete(archive: &ArchiveInfo) -> std::io::Result<()> {
    std::fs::remove_file(&archive.path)?;
    for suffix in [".sha256", ".verified.json"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", archive.path.display()));
    }
    Ok(())
}
