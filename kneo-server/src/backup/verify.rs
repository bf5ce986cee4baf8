//! `verify`: checks an archive without trusting anything in it, in the stages of
//! `pg_verifybackup`: the container (gzip header and checksum, tar headers, paths), the manifest
//! (its self-checksum, format and schema version), every file against the manifest (present,
//! SHA-256, size, nothing extra), every row (valid JSON with exactly the table's columns and
//! types, in key order) and the row counts. Each problem is a named [`Failure`]; relations
//! between tables that do not add up are warnings. A file that can be read but is not a kneo
//! archive at all (no gzip magic, no tar entry) is a failure too ([`FailureKind::NotAnArchive`]):
//! an error means only that the file could not be read, so there is no verdict.
//!
//! `verify_deep` then restores the archive into a scratch store and runs the server's own store
//! queries there, and records the outcome beside the archive (`<archive>.verified.json`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::archive::{Scan, Visitor, scan};
use super::files::{
    ScratchDir, parent_of, sha256_of_file, sidecar_path, verification_record_path, write_atomically,
};
use super::format::{
    self, ContinuationEntry, FORMAT_NAME, FORMAT_VERSION, Family, MANIFEST_PATH, Manifest,
    TableSpec, check_manifest_checksum,
};
use super::restore::Loaded;
use super::rows::{Cell, JsonMode, Row};
use super::{BackupError, Progress, Stage, StoreLocation, run_blocking};
use crate::store::{
    AuditQuery, CheckpointQuery, ContinuationStore, PageQuery, QueueStatus, RunQuery, RunSort,
    RunStatus, SCHEMA_VERSION, Store, TraceQuery,
};

/// What kind of problem a failure is; stable names for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file is not a gzip-compressed tar at all: it lacks the gzip magic bytes, or no tar
    /// entry can be read from it (damaged at the start, truncated to almost nothing, or another
    /// kind of file). Nothing else is checked then.
    NotAnArchive,
    /// The gzip header is not the one kneo writes.
    GzipHeader,
    /// The compressed stream or a tar header is damaged (bad deflate data, CRC, truncation).
    CorruptStream,
    /// Bytes after the end of the tar archive or of the gzip stream.
    TrailingData,
    /// An absolute path, `..`, `.` or a non-UTF-8 name.
    DangerousPath,
    /// A link, directory, device or other non-file entry.
    NotARegularFile,
    DuplicateEntry,
    /// A path that is not part of the format.
    UnexpectedEntry,
    /// A continuation or manifest file that is malformed or too large.
    BadFile,
    /// A table line that is not a valid row, or out of key order.
    BadRow,
    ManifestMissing,
    /// `manifest.json` does not parse, or contradicts the format.
    ManifestInvalid,
    /// The manifest's self-checksum does not match its content.
    ManifestChecksum,
    /// An archive format newer than this kneo reads.
    FormatVersion,
    /// A schema version newer than this kneo knows.
    SchemaTooNew,
    /// Entries of another schema family than the manifest's, or of two families.
    FamilyMismatch,
    /// A file the manifest lists is not in the archive.
    MissingFile,
    /// A file in the archive that the manifest does not list.
    ExtraFile,
    ChecksumMismatch,
    SizeMismatch,
    RowCountMismatch,
    ContinuationCountMismatch,
    /// The archive does not match its `<archive>.sha256` sidecar.
    SidecarMismatch,
    /// Rows that refer to rows that are not there (warnings).
    Inconsistent,
    /// No `<archive>.sha256` sidecar to check the whole file against (warning).
    NoSidecar,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        // The serde names (rename_all = snake_case); a unit test keeps them in step.
        match self {
            FailureKind::NotAnArchive => "not_an_archive",
            FailureKind::GzipHeader => "gzip_header",
            FailureKind::CorruptStream => "corrupt_stream",
            FailureKind::TrailingData => "trailing_data",
            FailureKind::DangerousPath => "dangerous_path",
            FailureKind::NotARegularFile => "not_a_regular_file",
            FailureKind::DuplicateEntry => "duplicate_entry",
            FailureKind::UnexpectedEntry => "unexpected_entry",
            FailureKind::BadFile => "bad_file",
            FailureKind::BadRow => "bad_row",
            FailureKind::ManifestMissing => "manifest_missing",
            FailureKind::ManifestInvalid => "manifest_invalid",
            FailureKind::ManifestChecksum => "manifest_checksum",
            FailureKind::FormatVersion => "format_version",
            FailureKind::SchemaTooNew => "schema_too_new",
            FailureKind::FamilyMismatch => "family_mismatch",
            FailureKind::MissingFile => "missing_file",
            FailureKind::ExtraFile => "extra_file",
            FailureKind::ChecksumMismatch => "checksum_mismatch",
            FailureKind::SizeMismatch => "size_mismatch",
            FailureKind::RowCountMismatch => "row_count_mismatch",
            FailureKind::ContinuationCountMismatch => "continuation_count_mismatch",
            FailureKind::SidecarMismatch => "sidecar_mismatch",
            FailureKind::Inconsistent => "inconsistent",
            FailureKind::NoSidecar => "no_sidecar",
        }
    }
}

/// One problem found in an archive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The archive entry concerned, when there is one.
    pub path: Option<String>,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, path: Option<String>, detail: String) -> Failure {
        Failure { kind, path, detail }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {path}: {}", self.kind.as_str(), self.detail),
            None => write!(f, "{}: {}", self.kind.as_str(), self.detail),
        }
    }
}

/// Numbers about a verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyStats {
    pub entries: u64,
    pub archive_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Rows read per table.
    pub rows: BTreeMap<String, u64>,
    pub continuations: u64,
    #[serde(serialize_with = "milliseconds")]
    pub duration: Duration,
}

fn milliseconds<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// True when there is no failure (warnings allowed).
    pub ok: bool,
    pub archive: PathBuf,
    /// SHA-256 of the whole archive file.
    pub archive_sha256: String,
    /// The manifest, when it parsed (even if its checksum failed: read it with care then).
    pub manifest: Option<Manifest>,
    pub failures: Vec<Failure>,
    pub warnings: Vec<Failure>,
    pub stats: VerifyStats,
}

/// Checks an archive. `Err` only when the file cannot be read (missing, no permission, a
/// directory, an I/O error): then there is no verdict. Every problem of a file that can be read,
/// down to it not being a kneo archive at all, is a failure in the report.
pub async fn verify(
    archive: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<VerifyReport, BackupError> {
    let archive = archive.to_path_buf();
    run_blocking(progress, move |report| {
        let started = Instant::now();
        match verify_blocking(&archive, &mut Checker::new(false), None, report) {
            Ok((report, _)) => Ok(report),
            Err(BackupError::UnreadableArchive { detail, .. }) => {
                not_an_archive(&archive, detail, started)
            }
            Err(error) => Err(error),
        }
    })
    .await
}

/// The report on a file that can be read but is not a kneo archive at all (the reading pass
/// stopped with [`BackupError::UnreadableArchive`]): one [`FailureKind::NotAnArchive`] failure,
/// plus the sidecar check, which still applies to the whole file.
fn not_an_archive(
    archive: &Path,
    detail: String,
    started: Instant,
) -> Result<VerifyReport, BackupError> {
    let (archive_sha256, archive_bytes) = sha256_of_file(archive)?;
    let scan = Scan {
        archive_sha256,
        archive_bytes,
        ..Scan::default()
    };
    // The reading pass's words for an empty file ("found" nothing) say less than this.
    let detail = if archive_bytes == 0 {
        "the file is empty (0 bytes)".to_string()
    } else {
        detail
    };
    let mut failures = vec![Failure::new(
        FailureKind::NotAnArchive,
        None,
        format!("{detail}; a kneo backup is a gzip-compressed tar written by `kneo-ops backup`"),
    )];
    let mut warnings = Vec::new();
    check_sidecar(archive, &scan, &mut failures, &mut warnings);
    Ok(VerifyReport {
        ok: false,
        archive: archive.to_path_buf(),
        archive_sha256: scan.archive_sha256,
        manifest: None,
        failures,
        warnings,
        stats: VerifyStats {
            archive_bytes: scan.archive_bytes,
            duration: started.elapsed(),
            ..VerifyStats::default()
        },
    })
}

/// The verification itself, on the calling thread. `extra` sees every valid row too (a restore
/// loads them in the same pass, and commits only if the verification passes).
pub(crate) fn verify_blocking<'a>(
    archive: &Path,
    checker: &'a mut Checker,
    extra: Option<&'a mut dyn Visitor>,
    report: &dyn Fn(Progress),
) -> Result<(VerifyReport, Scan), BackupError> {
    let started = Instant::now();
    let item = archive.display().to_string();
    let mut on_progress = |done: u64, total: u64| {
        report(Progress {
            stage: Stage::Verify,
            item: item.clone(),
            done,
            total,
        })
    };
    let mut tee = Tee { checker, extra };
    let mut scan = scan(archive, &mut tee, &mut on_progress)?;
    let checker = tee.checker;
    let mut failures = std::mem::take(&mut scan.failures);
    let mut warnings = Vec::new();
    let manifest = check_manifest(&scan, &mut failures);
    if let Some(manifest) = &manifest {
        check_files(manifest, &scan, &mut failures);
    }
    check_sidecar(archive, &scan, &mut failures, &mut warnings);
    checker.relations(manifest.as_ref(), &mut warnings);
    let stats = VerifyStats {
        entries: scan.entries.len() as u64,
        archive_bytes: scan.archive_bytes,
        uncompressed_bytes: scan.uncompressed_bytes,
        rows: scan
            .lines
            .iter()
            .map(|(table, lines)| (table.to_string(), *lines))
            .collect(),
        continuations: scan.continuations,
        duration: started.elapsed(),
    };
    let report = VerifyReport {
        ok: failures.is_empty(),
        archive: archive.to_path_buf(),
        archive_sha256: scan.archive_sha256.clone(),
        manifest,
        failures,
        warnings,
        stats,
    };
    Ok((report, scan))
}

/// Stage 1: the manifest is there, intact, and of a format and schema this kneo knows.
fn check_manifest(scan: &Scan, failures: &mut Vec<Failure>) -> Option<Manifest> {
    let path = Some(MANIFEST_PATH.to_string());
    let Some(raw) = &scan.manifest else {
        failures.push(Failure::new(
            FailureKind::ManifestMissing,
            path,
            "the archive has no manifest.json (it is truncated, or not a kneo backup)".into(),
        ));
        return None;
    };
    if let Err(detail) = check_manifest_checksum(raw) {
        failures.push(Failure::new(
            FailureKind::ManifestChecksum,
            path.clone(),
            detail,
        ));
    }
    let manifest: Manifest = match serde_json::from_slice(raw) {
        Ok(manifest) => manifest,
        Err(error) => {
            // Say which format it is when that much parses.
            let version = serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .and_then(|value| value.get("format_version").and_then(|v| v.as_u64()));
            match version {
                Some(version) if version > u64::from(FORMAT_VERSION) => failures.push(Failure::new(
                    FailureKind::FormatVersion,
                    path,
                    format!("archive format {version} is newer than this kneo reads ({FORMAT_VERSION}); use a newer kneo-ops"),
                )),
                _ => failures.push(Failure::new(
                    FailureKind::ManifestInvalid,
                    path,
                    format!("manifest.json does not parse: {error}"),
                )),
            }
            return None;
        }
    };
    if manifest.format != FORMAT_NAME {
        failures.push(Failure::new(
            FailureKind::ManifestInvalid,
            path.clone(),
            format!("format is {:?}, not {FORMAT_NAME:?}", manifest.format),
        ));
    }
    if manifest.format_version > FORMAT_VERSION || manifest.format_version == 0 {
        failures.push(Failure::new(
            FailureKind::FormatVersion,
            path.clone(),
            format!(
                "archive format {} is not one this kneo reads (1 to {FORMAT_VERSION}); use the kneo-ops that wrote it",
                manifest.format_version
            ),
        ));
    }
    let family = manifest.family.schema();
    if manifest.schema_version > family.newest_schema {
        failures.push(Failure::new(
            FailureKind::SchemaTooNew,
            path.clone(),
            format!(
                "the archive is at {} schema version {} but this kneo knows versions up to {}; verify and restore it with the kneo that wrote it ({})",
                family.product, manifest.schema_version, family.newest_schema, manifest.tool_version
            ),
        ));
    }
    if manifest.schema_version < family.oldest_archive_schema {
        failures.push(Failure::new(
            FailureKind::ManifestInvalid,
            path.clone(),
            format!(
                "schema version {} is not a {} schema this kneo reads ({} to {})",
                manifest.schema_version,
                family.product,
                family.oldest_archive_schema,
                family.newest_schema
            ),
        ));
    }
    if crate::clock::parse(&manifest.created_at).is_none() {
        failures.push(Failure::new(
            FailureKind::ManifestInvalid,
            path,
            format!("created_at {:?} is not a timestamp", manifest.created_at),
        ));
    }
    Some(manifest)
}

/// Stage 2 and 3: every file against the manifest, and the tables' row counts.
fn check_files(manifest: &Manifest, scan: &Scan, failures: &mut Vec<Failure>) {
    let manifest_path = Some(MANIFEST_PATH.to_string());
    let found: HashMap<&str, &super::archive::Digest> = scan
        .entries
        .iter()
        .map(|(path, digest)| (path.as_str(), digest))
        .collect();
    let mut listed: HashSet<&str> = HashSet::new();
    for file in &manifest.files {
        if !listed.insert(file.path.as_str()) {
            failures.push(Failure::new(
                FailureKind::ManifestInvalid,
                Some(file.path.clone()),
                "the manifest lists this file twice".into(),
            ));
            continue;
        }
        match found.get(file.path.as_str()) {
            None => failures.push(Failure::new(
                FailureKind::MissingFile,
                Some(file.path.clone()),
                "the manifest lists it but the archive does not hold it".into(),
            )),
            Some(digest) => {
                if digest.bytes != file.bytes {
                    failures.push(Failure::new(
                        FailureKind::SizeMismatch,
                        Some(file.path.clone()),
                        format!(
                            "{} bytes in the archive, {} in the manifest",
                            digest.bytes, file.bytes
                        ),
                    ));
                }
                if digest.sha256 != file.sha256 {
                    failures.push(Failure::new(
                        FailureKind::ChecksumMismatch,
                        Some(file.path.clone()),
                        format!(
                            "SHA-256 is {} but the manifest says {}",
                            digest.sha256, file.sha256
                        ),
                    ));
                }
            }
        }
    }
    for (path, _) in &scan.entries {
        if path != MANIFEST_PATH && !listed.contains(path.as_str()) {
            failures.push(Failure::new(
                FailureKind::ExtraFile,
                Some(path.clone()),
                "the archive holds a file the manifest does not list".into(),
            ));
        }
        if let Some(other) = format::family_of_path(path).filter(|other| *other != manifest.family)
        {
            failures.push(Failure::new(
                FailureKind::FamilyMismatch,
                Some(path.clone()),
                format!(
                    "a {other} entry in an archive whose manifest says {}",
                    manifest.family
                ),
            ));
        }
    }
    let family = manifest.family.schema();
    let mut tables_seen = HashSet::new();
    for entry in &manifest.tables {
        let Some(table) = family.table(&entry.name) else {
            failures.push(Failure::new(
                FailureKind::ManifestInvalid,
                manifest_path.clone(),
                format!("unknown {} table {:?}", family.product, entry.name),
            ));
            continue;
        };
        if !tables_seen.insert(table.name) {
            failures.push(Failure::new(
                FailureKind::ManifestInvalid,
                manifest_path.clone(),
                format!("table {} is listed twice", table.name),
            ));
            continue;
        }
        if entry.path != table.path() {
            failures.push(Failure::new(
                FailureKind::ManifestInvalid,
                manifest_path.clone(),
                format!(
                    "table {} is at {:?}, not {}",
                    table.name,
                    entry.path,
                    table.path()
                ),
            ));
        }
        let listed_file = manifest.files.iter().find(|file| file.path == entry.path);
        if listed_file.is_none_or(|file| file.sha256 != entry.sha256 || file.bytes != entry.bytes) {
            failures.push(Failure::new(
                FailureKind::ManifestInvalid,
                Some(entry.path.clone()),
                "the table entry and the file entry of the manifest disagree".into(),
            ));
        }
        if let Some(lines) = scan.lines.get(table.name)
            && *lines != entry.rows
        {
            failures.push(Failure::new(
                FailureKind::RowCountMismatch,
                Some(entry.path.clone()),
                format!("{lines} rows in the file, {} in the manifest", entry.rows),
            ));
        }
    }
    for table in family.tables {
        // A table a later schema added is absent from older archives and restores empty.
        if !tables_seen.contains(table.name) && table.added_in_schema <= manifest.schema_version {
            failures.push(Failure::new(
                FailureKind::ManifestInvalid,
                manifest_path.clone(),
                format!("table {} is missing from the manifest", table.name),
            ));
        }
    }
    let continuation_files = manifest
        .files
        .iter()
        .filter(|file| {
            format::continuation_id_for_path(&file.path)
                .is_some_and(|(family, _)| family == manifest.family)
        })
        .count() as u64;
    if manifest.continuations.count != continuation_files
        || scan.continuations != continuation_files
    {
        failures.push(Failure::new(
            FailureKind::ContinuationCountMismatch,
            manifest_path,
            format!(
                "the manifest counts {} continuation(s) and lists {continuation_files} file(s); {} parsed from the archive",
                manifest.continuations.count, scan.continuations
            ),
        ));
    }
}

/// The whole file against `<archive>.sha256`, when there is one.
fn check_sidecar(
    archive: &Path,
    scan: &Scan,
    failures: &mut Vec<Failure>,
    warnings: &mut Vec<Failure>,
) {
    let sidecar = sidecar_path(archive);
    match std::fs::read_to_string(&sidecar) {
        Ok(text) => {
            let recorded = text.split_whitespace().next().unwrap_or_default();
            if recorded != scan.archive_sha256 {
                failures.push(Failure::new(
                    FailureKind::SidecarMismatch,
                    None,
                    format!(
                        "the archive's SHA-256 is {} but {} says {recorded:?}: the file changed after it was written",
                        scan.archive_sha256,
                        sidecar.display()
                    ),
                ));
            }
        }
        Err(_) => warnings.push(Failure::new(
            FailureKind::NoSidecar,
            None,
            format!(
                "{} is missing, so the whole file could not be checked (the content was)",
                sidecar.display()
            ),
        )),
    }
}

/// Collects what the relation checks and a deep verification need while rows stream by.
pub(crate) struct Checker {
    detailed: bool,
    run_ids: HashSet<String>,
    /// Blocked runs → the continuation their document names.
    pub(crate) blocked: HashMap<String, Option<String>>,
    /// Run ids referenced by queue, trace and checkpoint rows, per table.
    referenced: HashMap<&'static str, (&'static TableSpec, HashSet<String>)>,
    /// (family, continuation id, run id) of every continuation file and continuation table row.
    continuations: Vec<(Family, String, Option<String>)>,
    /// For a deep verification: per run, its trace and checkpoint counts.
    pub(crate) per_run: HashMap<String, (i64, i64)>,
    /// Runs in file order (first few), for sampling.
    pub(crate) sample_runs: Vec<String>,
    pub(crate) runs_by_status: HashMap<String, i64>,
    pub(crate) queue_by_status: HashMap<String, i64>,
}

const SAMPLED_RUNS: usize = 25;

impl Checker {
    pub(crate) fn new(detailed: bool) -> Checker {
        Checker {
            detailed,
            run_ids: HashSet::new(),
            blocked: HashMap::new(),
            referenced: HashMap::new(),
            continuations: Vec::new(),
            per_run: HashMap::new(),
            sample_runs: Vec::new(),
            runs_by_status: HashMap::new(),
            queue_by_status: HashMap::new(),
        }
    }

    /// Warnings for rows that refer to missing rows.
    fn relations(&self, manifest: Option<&Manifest>, warnings: &mut Vec<Failure>) {
        for (table, referenced) in self.referenced.values() {
            let missing: Vec<&String> = referenced
                .iter()
                .filter(|run| !self.run_ids.contains(*run))
                .collect();
            if !missing.is_empty() {
                let mut shown: Vec<&str> = missing.iter().take(5).map(|s| s.as_str()).collect();
                shown.sort_unstable();
                warnings.push(Failure::new(
                    FailureKind::Inconsistent,
                    Some(table.path()),
                    format!(
                        "rows of {} run(s) that are not in runs (e.g. {})",
                        missing.len(),
                        shown.join(", ")
                    ),
                ));
            }
        }
        let mut matched = HashSet::new();
        for (family, id, run_id) in &self.continuations {
            match run_id.as_ref().and_then(|run_id| self.blocked.get(run_id)) {
                Some(Some(blocked_on)) if blocked_on == id => {
                    if let Some(run_id) = run_id {
                        matched.insert(run_id.as_str());
                    }
                }
                _ => warnings.push(Failure::new(
                    FailureKind::Inconsistent,
                    Some(family.schema().continuation_path(id)),
                    match run_id {
                        Some(run_id) => {
                            format!("its run {run_id} is not blocked on it in the archive")
                        }
                        None => "it names no run".to_string(),
                    },
                )),
            }
        }
        let noted: HashSet<&str> = manifest
            .map(|manifest| {
                manifest
                    .continuations
                    .warnings
                    .iter()
                    .map(|warning| warning.run_id.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let unannounced = self
            .blocked
            .keys()
            .filter(|run| !matched.contains(run.as_str()) && !noted.contains(run.as_str()))
            .count();
        if unannounced > 0 {
            warnings.push(Failure::new(
                FailureKind::Inconsistent,
                None,
                format!("{unannounced} blocked run(s) have no continuation in the archive and the manifest does not say why"),
            ));
        }
    }
}

/// The checker and, optionally, a loader, fed by one pass.
struct Tee<'a> {
    checker: &'a mut Checker,
    extra: Option<&'a mut dyn Visitor>,
}

impl Visitor for Tee<'_> {
    fn mode(&self) -> JsonMode {
        self.extra
            .as_ref()
            .map_or(JsonMode::Validate, |extra| extra.mode())
    }

    fn row(&mut self, table: &'static TableSpec, row: Row) -> Result<(), BackupError> {
        self.checker.observe(table, &row);
        match self.extra.as_mut() {
            Some(extra) => extra.row(table, row),
            None => Ok(()),
        }
    }

    fn end_table(&mut self, table: &'static TableSpec) -> Result<(), BackupError> {
        match self.extra.as_mut() {
            Some(extra) => extra.end_table(table),
            None => Ok(()),
        }
    }

    fn continuation(
        &mut self,
        continuation: ContinuationEntry,
        raw: &[u8],
    ) -> Result<(), BackupError> {
        self.checker.continuations.push((
            continuation.family,
            continuation.id.clone(),
            continuation.run_id.clone(),
        ));
        match self.extra.as_mut() {
            Some(extra) => extra.continuation(continuation, raw),
            None => Ok(()),
        }
    }
}

impl Checker {
    fn observe(&mut self, table: &'static TableSpec, row: &Row) {
        let family = table.family.schema();
        if table.name == family.runs.table {
            let id = row
                .text(table, family.runs.id)
                .unwrap_or_default()
                .to_string();
            let status = row
                .text(table, family.runs.status)
                .unwrap_or_default()
                .to_string();
            if status == RunStatus::Blocked.as_str() {
                let continuation = match row.get(table, family.runs.document) {
                    Some(Cell::Checked { continuation_id }) => continuation_id.clone(),
                    Some(Cell::Json(document)) => {
                        super::snapshot::continuation_of_run(document.get())
                    }
                    Some(Cell::Text(document)) => super::snapshot::continuation_of_run(document),
                    _ => None,
                };
                self.blocked.insert(id.clone(), continuation);
            }
            if self.detailed {
                *self.runs_by_status.entry(status).or_default() += 1;
                if self.sample_runs.len() < SAMPLED_RUNS {
                    self.sample_runs.push(id.clone());
                }
            }
            self.run_ids.insert(id);
            return;
        }
        if family.continuation_table == Some(table.name)
            && let Some(id) = row.text(table, "id")
        {
            let run_id = row.text(table, "run_id").map(str::to_string);
            self.continuations
                .push((table.family, id.to_string(), run_id));
        }
        let Some(column) = table.run_reference else {
            return;
        };
        let run = row.text(table, column).unwrap_or_default();
        let (_, referenced) = self
            .referenced
            .entry(table.name)
            .or_insert_with(|| (table, HashSet::new()));
        if !referenced.contains(run) {
            referenced.insert(run.to_string());
        }
        if self.detailed {
            match table.name {
                "trace_events" => self.per_run.entry(run.to_string()).or_default().0 += 1,
                "checkpoints" => self.per_run.entry(run.to_string()).or_default().1 += 1,
                "run_queue" => {
                    let status = row.text(table, "status").unwrap_or_default().to_string();
                    *self.queue_by_status.entry(status).or_default() += 1;
                }
                _ => {}
            }
        }
    }
}

/// Where [`verify_deep`] restores the archive.
#[derive(Clone)]
pub enum ScratchTarget {
    /// A temporary SQLite store in a temporary directory (removed afterwards).
    TemporarySqlite,
    /// A scratch schema (`kneo_verify_<random>`, dropped afterwards) in the database of this URL;
    /// the role needs `CREATE` on the database.
    Postgres { url: String },
}

impl fmt::Debug for ScratchTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScratchTarget::TemporarySqlite => f.write_str("TemporarySqlite"),
            ScratchTarget::Postgres { url } => {
                write!(f, "Postgres({})", super::postgres::describe_url(url))
            }
        }
    }
}

/// One check of a deep verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeepCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The outcome of [`verify_deep`]; also written to `<archive>.verified.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DeepVerifyReport {
    pub ok: bool,
    pub verified_at: String,
    pub tool_version: String,
    pub archive: PathBuf,
    pub archive_sha256: String,
    pub manifest_sha256: Option<String>,
    pub schema_version: Option<i64>,
    pub server_version: Option<String>,
    /// Where the archive was restored: `sqlite (temporary)` or `postgres host:port/db schema …`.
    pub scratch: String,
    pub verify: VerifyReport,
    pub checks: Vec<DeepCheck>,
    /// The verification record written beside the archive.
    pub record: PathBuf,
}

/// Verifies an archive, restores it into a scratch store, runs the server's own store queries
/// there (list runs, a run with its trace and checkpoints, continuations, queue counts, audit and
/// service events) and compares what they return with the manifest. Writes the outcome to
/// `<archive>.verified.json` (atomically), whatever it is.
pub async fn verify_deep(
    archive: &Path,
    scratch: ScratchTarget,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<DeepVerifyReport, BackupError> {
    // One pass: the archive is verified while it is loaded into the scratch store, and the load
    // is kept only if the verification passed.
    let (loaded, checks, scratch_description) = match &scratch {
        ScratchTarget::TemporarySqlite => {
            let directory = ScratchDir::create_in(&parent_of(archive), "deep-verify")?;
            let state_dir = directory.path().to_path_buf();
            let loaded = loaded_or_not_an_archive(
                archive,
                super::restore::load(archive, &StoreLocation::sqlite(&state_dir), true, progress)
                    .await,
                progress,
            )
            .await?;
            let mut checks = Vec::new();
            if let (Some(_), Some(manifest)) = (&loaded.restored, &loaded.report.manifest) {
                checks = if manifest.family == Family::KneoServ {
                    let scratch = super::kneo_serv::deep::Scratch::Sqlite {
                        state_dir: state_dir.clone(),
                    };
                    super::kneo_serv::deep::checks(&scratch, manifest, &loaded.checker, progress)
                        .await
                } else {
                    let store = crate::store::sqlite::SqliteStore::open(
                        &StoreLocation::sqlite_file(&state_dir),
                    )
                    .map_err(BackupError::store("opening the scratch store"))?;
                    let continuations =
                        crate::store::continuation_files::FileContinuationStore::new(
                            &StoreLocation::continuations_dir(&state_dir),
                        );
                    store_checks(&store, &continuations, manifest, &loaded.checker, progress).await
                };
            }
            (loaded, checks, "sqlite (temporary)".to_string())
        }
        ScratchTarget::Postgres { url } => {
            let schema = format!("kneo_verify_{}", uuid::Uuid::new_v4().simple());
            let description = format!(
                "postgres {} schema {schema}",
                super::postgres::describe_url(url)
            );
            let session = super::postgres::connect(url, "kneo-verify").await?;
            session
                .client
                .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
                .await
                .map_err(BackupError::postgres(
                    "creating the scratch schema",
                    &session.target,
                ))?;
            let scratch_url = with_search_path(url, &schema);
            let outcome = async {
                let loaded = loaded_or_not_an_archive(
                    archive,
                    super::restore::load(
                        archive,
                        &StoreLocation::postgres(&scratch_url),
                        true,
                        progress,
                    )
                    .await,
                    progress,
                )
                .await?;
                let mut checks = Vec::new();
                if let (Some(_), Some(manifest)) = (&loaded.restored, &loaded.report.manifest) {
                    if manifest.family == Family::KneoServ {
                        let scratch = super::kneo_serv::deep::Scratch::Postgres {
                            url: scratch_url.clone(),
                        };
                        checks = super::kneo_serv::deep::checks(
                            &scratch,
                            manifest,
                            &loaded.checker,
                            progress,
                        )
                        .await;
                    } else {
                        let store = crate::store::postgres::PostgresStore::new(&scratch_url, 2)
                            .map_err(BackupError::store("opening the scratch schema"))?;
                        store
                            .ensure_ready()
                            .await
                            .map_err(BackupError::store("opening the scratch schema"))?;
                        let continuations = store.continuation_store();
                        checks = store_checks(
                            &store,
                            &continuations,
                            manifest,
                            &loaded.checker,
                            progress,
                        )
                        .await;
                    }
                }
                Ok::<_, BackupError>((loaded, checks))
            }
            .await;
            let dropped = session
                .client
                .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await;
            let (loaded, checks) = outcome?;
            dropped.map_err(BackupError::postgres(
                "dropping the scratch schema",
                &session.target,
            ))?;
            (loaded, checks, description)
        }
    };
    let report = loaded.report;
    let mut checks = checks;
    if loaded.restored.is_none() {
        checks.push(DeepCheck {
            name: "restore".into(),
            ok: false,
            detail: "the archive failed verification (or has another schema version); it was not restored".into(),
        });
    }
    let ok = report.ok && !checks.is_empty() && checks.iter().all(|check| check.ok);
    let record = verification_record_path(archive);
    let deep = DeepVerifyReport {
        ok,
        verified_at: crate::clock::now_text(),
        tool_version: crate::VERSION.into(),
        archive: archive.to_path_buf(),
        archive_sha256: report.archive_sha256.clone(),
        manifest_sha256: report.manifest.as_ref().map(|m| m.manifest_sha256.clone()),
        schema_version: report.manifest.as_ref().map(|m| m.schema_version),
        server_version: report
            .manifest
            .as_ref()
            .and_then(|m| m.server_version.clone()),
        scratch: scratch_description,
        verify: report,
        checks,
        record: record.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&deep).map_err(|error| {
        BackupError::Internal(format!("serializing the verification record: {error}"))
    })?;
    write_atomically(&record, &bytes)?;
    Ok(deep)
}

/// A load that stopped because the file is not a kneo archive at all, turned into a load that
/// failed verification: the deep report names the failure, and its record is written, as for
/// any other damage.
async fn loaded_or_not_an_archive(
    archive: &Path,
    loaded: Result<Loaded, BackupError>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Loaded, BackupError> {
    match loaded {
        Err(BackupError::UnreadableArchive { detail, .. }) => {
            let archive = archive.to_path_buf();
            let started = Instant::now();
            let report =
                run_blocking(progress, move |_| not_an_archive(&archive, detail, started)).await?;
            Ok(Loaded {
                report,
                checker: Checker::new(true),
                restored: None,
            })
        }
        other => other,
    }
}

/// The URL with `search_path` set to `schema`, so every unqualified name lands in it.
fn with_search_path(url: &str, schema: &str) -> String {
    let option = format!("options=-csearch_path%3D{schema}");
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}{option}")
    } else {
        format!("{url} options='-csearch_path={schema}'")
    }
}

/// The server's own store queries against the restored scratch store.
async fn store_checks(
    store: &dyn Store,
    continuations: &dyn ContinuationStore,
    manifest: &Manifest,
    checker: &Checker,
    progress: &(dyn Fn(Progress) + Sync),
) -> Vec<DeepCheck> {
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        progress(Progress {
            stage: Stage::Check,
            item: name.into(),
            done: 0,
            total: 0,
        });
        checks.push(DeepCheck {
            name: name.into(),
            ok,
            detail,
        });
    };
    let page = |limit: usize| PageQuery {
        limit,
        ..PageQuery::default()
    };

    match store.schema_version().await {
        Ok(version) => check(
            "schema_version",
            version == SCHEMA_VERSION,
            format!("the restored store is at schema version {version}"),
        ),
        Err(error) => check("schema_version", false, error.message),
    }
    let all_runs = RunQuery {
        page: page(1),
        status: None,
        sort: RunSort::CreatedAt,
        filter: Default::default(),
    };
    match store.list_runs(&all_runs).await {
        Ok(listed) => check(
            "list_runs",
            listed.total == manifest.rows_of("runs"),
            format!(
                "list_runs counts {} run(s); the manifest {}",
                listed.total,
                manifest.rows_of("runs")
            ),
        ),
        Err(error) => check("list_runs", false, error.message),
    }
    let mut status_detail = Vec::new();
    let mut statuses_ok = true;
    for status in RunStatus::ALL {
        let expected = checker
            .runs_by_status
            .get(status.as_str())
            .copied()
            .unwrap_or(0);
        let query = RunQuery {
            status: Some(status),
            ..all_runs.clone()
        };
        match store.list_runs(&query).await {
            Ok(listed) => {
                statuses_ok &= listed.total == expected;
                if listed.total != 0 || expected != 0 {
                    status_detail.push(format!("{status} {}/{expected}", listed.total));
                }
            }
            Err(error) => {
                statuses_ok = false;
                status_detail.push(format!("{status}: {}", error.message));
            }
        }
    }
    check(
        "list_runs_by_status",
        statuses_ok,
        format!("restored/archived: {}", status_detail.join(", ")),
    );
    let mut sampled_ok = true;
    let mut sampled_detail = Vec::new();
    let mut sample: Vec<String> = checker.sample_runs.clone();
    sample.extend(checker.blocked.keys().take(SAMPLED_RUNS).cloned());
    // A blocked run may be among the sampled ones: read (and count) each run once.
    let mut seen = std::collections::BTreeSet::new();
    sample.retain(|run_id| seen.insert(run_id.clone()));
    for run_id in &sample {
        let (trace_expected, checkpoints_expected) =
            checker.per_run.get(run_id).copied().unwrap_or((0, 0));
        let run = store.get_run(run_id).await;
        let trace = store
            .list_trace(
                run_id,
                &TraceQuery {
                    page: page(1),
                    event_type: None,
                },
            )
            .await;
        let checkpoints = store
            .list_checkpoints(
                run_id,
                &CheckpointQuery {
                    page: page(1),
                    checkpoint_type: None,
                },
            )
            .await;
        match (run, trace, checkpoints) {
            (Ok(Some(_)), Ok(trace), Ok(checkpoints))
                if trace.total == trace_expected && checkpoints.total == checkpoints_expected => {}
            (run, trace, checkpoints) => {
                sampled_ok = false;
                sampled_detail.push(format!(
                    "run {run_id}: found {:?}, trace {:?}/{trace_expected}, checkpoints {:?}/{checkpoints_expected}",
                    run.map(|r| r.is_some()).map_err(|e| e.message),
                    trace.map(|t| t.total).map_err(|e| e.message),
                    checkpoints.map(|c| c.total).map_err(|e| e.message),
                ));
            }
        }
    }
    check(
        "get_run_with_trace_and_checkpoints",
        sampled_ok,
        if sampled_ok {
            format!(
                "{} run(s) read back with their trace and checkpoint counts",
                sample.len()
            )
        } else {
            sampled_detail.join("; ")
        },
    );
    match continuations.list().await {
        Ok(listing) => {
            let mut ok = listing.continuations.len() as u64 == manifest.continuations.count
                && listing.unreadable.is_empty();
            let mut detail = format!(
                "{} continuation(s) listed, {} unreadable; the manifest counts {}",
                listing.continuations.len(),
                listing.unreadable.len(),
                manifest.continuations.count
            );
            for continuation in &listing.continuations {
                match store.get_run(&continuation.run_id).await {
                    Ok(Some(run))
                        if run.status == RunStatus::Blocked
                            && run.continuation_id.as_deref() == Some(continuation.id.as_str()) => {
                    }
                    other => {
                        ok = false;
                        detail.push_str(&format!(
                            "; continuation {} has no blocked run ({:?})",
                            continuation.id,
                            other
                                .map(|run| run.map(|run| run.status))
                                .map_err(|e| e.message)
                        ));
                    }
                }
            }
            check("list_continuations", ok, detail);
        }
        Err(error) => check("list_continuations", false, error.message),
    }
    match store.queue_counts().await {
        Ok(counts) => {
            let expected = |status: QueueStatus| {
                checker
                    .queue_by_status
                    .get(status.as_str())
                    .copied()
                    .unwrap_or(0)
            };
            let ok = counts.queued == expected(QueueStatus::Queued)
                && counts.running == expected(QueueStatus::Running)
                && counts.failed == expected(QueueStatus::Failed);
            check(
                "queue_counts",
                ok,
                format!(
                    "queued {}/{}, running {}/{}, failed {}/{}",
                    counts.queued,
                    expected(QueueStatus::Queued),
                    counts.running,
                    expected(QueueStatus::Running),
                    counts.failed,
                    expected(QueueStatus::Failed)
                ),
            );
        }
        Err(error) => check("queue_counts", false, error.message),
    }
    let audit = AuditQuery {
        page: page(1),
        event_type: None,
        run_id: None,
        mentions: None,
    };
    match store.list_audit(&audit).await {
        Ok(listed) => check(
            "list_audit",
            listed.total == manifest.rows_of("audit_events"),
            format!(
                "list_audit counts {}; the manifest {}",
                listed.total,
                manifest.rows_of("audit_events")
            ),
        ),
        Err(error) => check("list_audit", false, error.message),
    }
    match store.list_service_events(&page(1)).await {
        Ok(listed) => check(
            "list_service_events",
            listed.total == manifest.rows_of("service_events"),
            format!(
                "list_service_events counts {}; the manifest {}",
                listed.total,
                manifest.rows_of("service_events")
            ),
        ),
        Err(error) => check("list_service_events", false, error.message),
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_have_their_serde_names() {
        for kind in [
            FailureKind::NotAnArchive,
            FailureKind::GzipHeader,
            FailureKind::RowCountMismatch,
            FailureKind::NoSidecar,
        ] {
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                serde_json::Value::String(kind.as_str().into())
            );
        }
    }

    #[test]
    fn the_search_path_goes_into_the_url() {
        assert_eq!(
            with_search_path("postgres://u@h:5/db", "s"),
            "postgres://u@h:5/db?options=-csearch_path%3Ds"
        );
        assert_eq!(
            with_search_path("postgres://u@h:5/db?sslmode=disable", "s"),
            "postgres://u@h:5/db?sslmode=disable&options=-csearch_path%3Ds"
        );
    }
}
