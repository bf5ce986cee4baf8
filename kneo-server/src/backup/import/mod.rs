//! `import`: moves a kneo-serv 1.2 archive into a kneo-server store (SQLite or Postgres).
//!
//! The kneo-serv archive is verified while it streams through [`convert`], which turns each
//! record into kneo-server's record through kneo-server's own record types ([`RunRecord`],
//! [`AuditEvent`], [`Continuation`], …) and writes them as a kneo-server archive in a scratch
//! directory: runs with their trace (kneo-serv keeps it inside the run), checkpoints (inflated),
//! queue records, audit events (numbered oldest first), idempotency records, project metadata
//! and the continuations of blocked runs. That archive is then restored with
//! [`super::restore`]: the same refusals (a non-empty target without `force`, a live embedded
//! store), the same atomic load, verified again and its counts checked. Nothing of the kneo-serv
//! archive that kneo-server cannot hold is dropped quietly: every such record is listed in
//! [`ImportPlan::not_carried`] with the reason, and every adjustment in [`ImportPlan::notes`].
//! A dry run stops after the conversion and reports the plan; nothing is written to the target.
//!
//! [`RunRecord`]: crate::store::RunRecord
//! [`AuditEvent`]: crate::store::AuditEvent
//! [`Continuation`]: crate::store::Continuation

mod convert;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::Compression;
use serde::Serialize;

use super::archive::{Packer, peek_family};
use super::files::{ScratchDir, parent_of};
use super::format::Family;
use super::restore::{RestoreOptions, RestoreReport, restore};
use super::snapshot::finish_archive;
use super::verify::{Checker, verify_blocking};
use super::{BackupError, Progress, StoreLocation, run_blocking};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Only convert and report the plan; write nothing to the target.
    pub dry_run: bool,
    /// Replace a target that holds data (after a safety backup of it), as `restore --force`.
    pub force: bool,
    /// Where that safety backup goes.
    pub safety_dir: Option<PathBuf>,
    /// Keep the converted kneo-server archive here (it verifies and restores like any backup).
    pub keep_converted: Option<PathBuf>,
}

/// One record of the kneo-serv archive that kneo-server does not get, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotCarried {
    /// `run`, `trace_event`, `checkpoint`, `queue_record`, `audit_event`, `idempotency_record`,
    /// `lock`, `project_metadata`, `continuation`, or `field` (a field of records that are carried).
    pub kind: String,
    /// The record's id (a field: `<table>.<field>`).
    pub id: String,
    pub reason: String,
}

/// What an import carries (or would carry), counted per kneo-server table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportPlan {
    /// The kneo-serv archive's source: `sqlite` or `postgres`, and where it was.
    pub source: String,
    /// When the kneo-serv backup was taken.
    pub backed_up_at: String,
    /// Rows of the kneo-serv archive, per table.
    pub found: BTreeMap<String, u64>,
    /// Rows kneo-server gets, per table of its own.
    pub carried: BTreeMap<String, u64>,
    /// Continuations of blocked runs kneo-server gets.
    pub continuations: u64,
    pub not_carried: Vec<NotCarried>,
    /// Things carried with an adjustment, and what kneo-server does not do with what it got.
    pub notes: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub archive: PathBuf,
    pub target: String,
    pub dry_run: bool,
    pub plan: ImportPlan,
    /// The target's rows before, per table (non-zero ones), as the restore found them.
    pub replaced: BTreeMap<String, u64>,
    /// The restore of the converted archive (`None` on a dry run).
    #[serde(skip)]
    pub restored: Option<RestoreReport>,
    pub safety_backup: Option<PathBuf>,
    /// The converted archive, when it was kept.
    pub converted_archive: Option<PathBuf>,
    #[serde(serialize_with = "milliseconds")]
    pub duration: std::time::Duration,
}

fn milliseconds<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

/// Imports the kneo-serv archive `archive` into the kneo-server store `target`.
pub async fn import(
    archive: &Path,
    target: &StoreLocation,
    options: &ImportOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<ImportReport, BackupError> {
    let started = Instant::now();
    match peek_family(archive) {
        Some(Family::KneoServ) => {}
        found => {
            return Err(BackupError::NotKneoServArchive {
                path: archive.to_path_buf(),
                found,
            });
        }
    }
    let scratch = ScratchDir::create_in(&parent_of(archive), "import")?;
    let converted = match &options.keep_converted {
        Some(path) => path.clone(),
        None => scratch.path().join("converted.tar.gz"),
    };
    if converted.exists() {
        return Err(BackupError::ArchiveExists { path: converted });
    }
    let plan = convert_archive(archive, scratch.path(), &converted, progress).await?;
    let kept = options.keep_converted.clone();
    if options.dry_run {
        let replaced = super::restore::target_contents(&converted, target, progress).await?;
        return Ok(ImportReport {
            archive: archive.to_path_buf(),
            target: target.describe(),
            dry_run: true,
            plan,
            replaced,
            restored: None,
            safety_backup: None,
            converted_archive: kept,
            duration: started.elapsed(),
        });
    }
    let restore_options = RestoreOptions {
        force: options.force,
        safety_dir: options.safety_dir.clone(),
    };
    let restored = restore(&converted, target, &restore_options, progress).await?;
    Ok(ImportReport {
        archive: archive.to_path_buf(),
        target: restored.target.clone(),
        dry_run: false,
        plan,
        replaced: restored.replaced.clone(),
        safety_backup: restored.safety_backup.clone(),
        restored: Some(restored),
        converted_archive: kept,
        duration: started.elapsed(),
    })
}

/// Verifies the kneo-serv archive while converting it into a kneo-server archive at `converted`.
async fn convert_archive(
    archive: &Path,
    scratch: &Path,
    converted: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<ImportPlan, BackupError> {
    let started = Instant::now();
    let packer = Packer::start(converted, Compression::new(1))?;
    let (archive_path, tables_dir) = (archive.to_path_buf(), scratch.join("tables"));
    std::fs::create_dir_all(&tables_dir).map_err(BackupError::io(
        "creating the scratch directory",
        &tables_dir,
    ))?;
    let (captured, plan, packer) = run_blocking(progress, move |report| {
        let mut converter = convert::Converter::new(&tables_dir, report)?;
        let mut checker = Checker::new(false);
        let (verified, _) =
            verify_blocking(&archive_path, &mut checker, Some(&mut converter), report)?;
        let manifest = match (&verified.manifest, verified.ok) {
            (Some(manifest), true) => manifest.clone(),
            _ => {
                return Err(BackupError::ArchiveInvalid {
                    path: archive_path,
                    failures: verified.failures,
                });
            }
        };
        let (captured, plan) = converter.finish(&manifest, &archive_path, &packer)?;
        Ok((captured, plan, packer))
    })
    .await?;
    finish_archive(captured, packer, converted, started, progress).await?;
    Ok(plan)
}
