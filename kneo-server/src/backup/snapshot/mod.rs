//! `backup`: one consistent snapshot of a running store, written as an archive atomically.
//!
//! The store's schema family (kneo-server's, or kneo-serv 1.2's) is read from the store itself
//! ([`super::detect`]); everything after that is the family's data driving the same export.
//!
//! - [`sqlite`]: the online backup API copies the live database at one point in time; the
//!   continuation files are copied right after it and reconciled with the runs of the copy.
//! - [`postgres`]: every table and the continuations in one `REPEATABLE READ READ ONLY`
//!   transaction.
//! - [`continuations`]: which continuations belong to the snapshot, and why the others do not.
//!
//! Rows stream from the store into per-table scratch files (hashed as they are written), and a
//! packer thread compresses each finished file while the next table is exported; nothing holds
//! more than one row at a time.

mod continuations;
mod postgres;
mod sqlite;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::Compression;
use serde::Deserialize;

use super::archive::Packer;
use super::files::{
    HashingWriter, ScratchDir, file_name_of, parent_of, sidecar_path, sync_directory,
    write_atomically,
};
use super::format::{
    Column, ColumnType, ContinuationSummary, FORMAT_NAME, FORMAT_VERSION, Family, FileEntry,
    Manifest, SchemaFamily, SourceInfo, TableEntry, TableSpec,
};
use super::rows::LineEncoder;
use super::{BackupError, Progress, Stage, StoreLocation, run_blocking};

/// How to write the archive.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// gzip level, 0 (store) to 9 (smallest). The default, 1, keeps a backup of 100k Postgres
    /// runs faster than `pg_dump -Fc` of the same database with an archive a third smaller than
    /// its dump (3 is 30% smaller again, at about 1.2x the time; `benches/backup.rs`).
    pub compression_level: u32,
    /// Replace an existing archive at the path instead of refusing.
    pub overwrite: bool,
    /// Postgres sessions exporting tables in parallel, all in the one exported snapshot; 1 reads
    /// everything in the snapshot transaction itself.
    pub postgres_sessions: usize,
    /// The schema family the store must follow (`kneo-ops backup --from`); `None` takes whichever
    /// it follows.
    pub family: Option<Family>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            compression_level: 1,
            overwrite: false,
            postgres_sessions: 3,
            family: None,
        }
    }
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub archive: PathBuf,
    /// `<archive>.sha256`, in `sha256sum -c` format.
    pub sidecar: PathBuf,
    /// SHA-256 of the whole archive file.
    pub sha256: String,
    pub bytes: u64,
    pub manifest: Manifest,
    pub duration: Duration,
}

/// Takes a consistent snapshot of `source` and writes it to `archive` (a `.tar.gz`), atomically:
/// the archive appears complete or not at all. The service may keep running.
pub async fn backup(
    source: &StoreLocation,
    archive: &Path,
    options: &BackupOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    if archive.exists() && !options.overwrite {
        return Err(BackupError::ArchiveExists {
            path: archive.to_path_buf(),
        });
    }
    let directory = parent_of(archive);
    fs::create_dir_all(&directory).map_err(BackupError::io(
        "creating the archive directory",
        &directory,
    ))?;
    let scratch = ScratchDir::create_in(&directory, &file_name_of(archive))?;
    let packer = Packer::start(archive, Compression::new(options.compression_level.min(9)))?;
    let expected = options.family;
    let (captured, packer) = match source {
        StoreLocation::Sqlite { state_dir } => {
            let (state_dir, scratch) = (state_dir.clone(), scratch.path().to_path_buf());
            run_blocking(progress, move |report| {
                let captured = sqlite::capture(&state_dir, &scratch, &packer, expected, report)?;
                Ok((captured, packer))
            })
            .await?
        }
        StoreLocation::Postgres { url } => {
            let captured = postgres::capture(
                url,
                scratch.path(),
                &packer,
                options.postgres_sessions,
                expected,
                progress,
            )
            .await?;
            (captured, packer)
        }
    };
    finish_archive(captured, packer, archive, started, progress).await
}

/// Writes the manifest of what was captured as the last entry, moves the finished archive into
/// place and writes its checksum file beside it.
pub(crate) async fn finish_archive(
    captured: Captured,
    packer: Packer,
    archive: &Path,
    started: Instant,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<BackupSummary, BackupError> {
    let directory = parent_of(archive);
    let manifest = captured.into_manifest();
    let bytes = manifest.to_bytes();
    progress(Progress {
        stage: Stage::Pack,
        item: "manifest.json".into(),
        done: 0,
        total: 1,
    });
    let packed = run_blocking(progress, move |_| packer.finish(bytes)).await?;
    fs::rename(&packed.temporary, archive).map_err(|source| {
        let _ = fs::remove_file(&packed.temporary);
        BackupError::Io {
            action: "moving the finished archive into place".into(),
            path: archive.to_path_buf(),
            source,
        }
    })?;
    sync_directory(&directory)?;
    let sidecar = sidecar_path(archive);
    write_atomically(
        &sidecar,
        format!("{}  {}\n", packed.sha256, file_name_of(archive)).as_bytes(),
    )?;
    progress(Progress {
        stage: Stage::Pack,
        item: "manifest.json".into(),
        done: 1,
        total: 1,
    });
    Ok(BackupSummary {
        archive: archive.to_path_buf(),
        sidecar,
        sha256: packed.sha256,
        bytes: packed.bytes,
        manifest,
        duration: started.elapsed(),
    })
}

/// Everything a snapshot found, before it becomes the manifest.
pub(crate) struct Captured {
    pub(crate) family: Family,
    pub(crate) created_at: String,
    pub(crate) schema_version: i64,
    pub(crate) server_version: Option<String>,
    source: SourceInfo,
    tables: Vec<TableEntry>,
    files: Vec<FileEntry>,
    pub(crate) continuations: ContinuationSummary,
}

impl Captured {
    pub(crate) fn new(family: Family, source: SourceInfo) -> Captured {
        Captured {
            family,
            created_at: String::new(),
            schema_version: 0,
            server_version: None,
            source,
            tables: Vec::new(),
            files: Vec::new(),
            continuations: ContinuationSummary::default(),
        }
    }

    /// Records a finished table file and hands it to the packer.
    pub(crate) fn add_table(&mut self, packer: &Packer, table: &TableSpec, file: FinishedFile) {
        let path = table.path();
        self.tables.push(TableEntry {
            name: table.name.to_string(),
            path: path.clone(),
            rows: file.rows,
            sha256: file.sha256.clone(),
            bytes: file.bytes,
        });
        self.add_file(packer, path, file);
    }

    pub(crate) fn add_file(&mut self, packer: &Packer, path: String, file: FinishedFile) {
        self.files.push(FileEntry {
            path: path.clone(),
            sha256: file.sha256,
            bytes: file.bytes,
        });
        packer.add(path, file.path);
    }

    fn into_manifest(self) -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            family: self.family,
            created_at: self.created_at,
            tool_version: crate::VERSION.into(),
            server_version: self.server_version,
            schema_version: self.schema_version,
            source: self.source,
            tables: self.tables,
            continuations: self.continuations,
            files: self.files,
            manifest_sha256: String::new(),
        }
    }
}

/// A scratch file ready for the archive.
pub(crate) struct FinishedFile {
    pub(crate) path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
    pub(crate) rows: u64,
}

/// Rows reported between two progress callbacks.
pub(super) const PROGRESS_EVERY: u64 = 4096;

/// One table's JSONL scratch file, hashed as it is written.
pub(crate) struct TableWriter {
    table: &'static TableSpec,
    path: PathBuf,
    out: HashingWriter<BufWriter<fs::File>>,
    pub(crate) rows: u64,
    pub(crate) encoder: LineEncoder,
}

impl TableWriter {
    pub(crate) fn create(
        scratch: &Path,
        table: &'static TableSpec,
    ) -> Result<TableWriter, BackupError> {
        let path = scratch.join(format!("{}.jsonl", table.name));
        let file =
            fs::File::create(&path).map_err(BackupError::io("creating the scratch file", &path))?;
        Ok(TableWriter {
            table,
            path,
            out: HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
            rows: 0,
            encoder: LineEncoder::new(),
        })
    }

    /// Writes a whole line (newline included) that another encoder built for this table.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> Result<(), BackupError> {
        self.out
            .write_all(line)
            .map_err(BackupError::io("writing the scratch file", &self.path))?;
        self.rows += 1;
        Ok(())
    }

    /// Writes the row the encoder holds.
    pub(crate) fn write_row(&mut self) -> Result<(), BackupError> {
        let line = self.encoder.finish();
        self.out
            .write_all(line)
            .map_err(BackupError::io("writing the scratch file", &self.path))?;
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<FinishedFile, BackupError> {
        let (buffered, sha256, bytes) = self.out.finish();
        buffered
            .into_inner()
            .map_err(|error| error.into_error())
            .map_err(BackupError::io("writing the scratch file", &self.path))?;
        Ok(FinishedFile {
            path: self.path,
            sha256,
            bytes,
            rows: self.rows,
        })
    }

    /// The progress to report after this row, every [`PROGRESS_EVERY`] rows.
    fn progress(&self, done_before: u64, total: u64) -> Option<Progress> {
        self.rows.is_multiple_of(PROGRESS_EVERY).then(|| Progress {
            stage: Stage::Export,
            item: self.table.name.into(),
            done: done_before + self.rows,
            total,
        })
    }
}

/// Copies an embedded store's state directory file by file into `destination` (a new
/// directory): the safety copy of a store whose schema this kneo cannot export.
pub(crate) fn copy_sqlite_state(state_dir: &Path, destination: &Path) -> Result<(), BackupError> {
    sqlite::copy_state(state_dir, destination)
}

/// The continuation a run's document says it is blocked on.
pub(crate) fn continuation_of_run(document: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct RunContinuation {
        #[serde(default)]
        continuation_id: Option<String>,
    }
    serde_json::from_str::<RunContinuation>(document)
        .ok()
        .and_then(|run| run.continuation_id)
}

/// The columns an export watches in the rows it writes: a run's id, status and document (the
/// family's runs table), and a continuation's id (its continuation table).
pub(crate) struct Watched {
    pub runs: Option<(usize, usize, usize)>,
    pub continuation_id: Option<usize>,
}

impl Watched {
    pub(crate) fn of(family: &SchemaFamily, table: &TableSpec) -> Watched {
        let runs = (table.name == family.runs.table)
            .then(|| {
                Some((
                    table.column_index(family.runs.id)?,
                    table.column_index(family.runs.status)?,
                    table.column_index(family.runs.document)?,
                ))
            })
            .flatten();
        let continuation_id = (family.continuation_table == Some(table.name))
            .then(|| table.column_index("id"))
            .flatten();
        Watched {
            runs,
            continuation_id,
        }
    }
}

/// How a `SELECT` of a table is written for one database.
pub(crate) enum Dialect<'a> {
    Sqlite,
    /// Columns are cast to the types the exporter reads (documents to text, integers to `int8`,
    /// numbers to `float8`), `key_suffix` follows each text key (a collation), and NULL keys sort
    /// first, as SQLite sorts them.
    Postgres {
        key_suffix: &'a str,
    },
}

/// The `SELECT` of a table's columns in key order.
pub(crate) fn select_sql(table: &TableSpec, dialect: &Dialect<'_>) -> String {
    use super::postgres::quote;
    let cast = |column: &Column| {
        let name = quote(column.name);
        match (dialect, column.kind) {
            (Dialect::Sqlite, _) => name,
            (Dialect::Postgres { .. }, ColumnType::Json) => format!("{name}::text"),
            (Dialect::Postgres { .. }, ColumnType::Int) => format!("{name}::int8"),
            (Dialect::Postgres { .. }, ColumnType::Real) => format!("{name}::float8"),
            (Dialect::Postgres { .. }, _) => name,
        }
    };
    let columns: Vec<String> = table.columns.iter().map(cast).collect();
    let order: Vec<String> = table
        .key
        .iter()
        .map(|key| {
            let column = table.column_index(key).map(|i| &table.columns[i]);
            let mut term = quote(key);
            if let Dialect::Postgres { key_suffix } = dialect {
                if column.is_some_and(|column| column.kind == ColumnType::Text) {
                    term.push_str(key_suffix);
                }
                if column.is_some_and(|column| column.nullable) {
                    term.push_str(" NULLS FIRST");
                }
            }
            term
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        quote(table.name),
        order.join(", ")
    )
}

/// The family a store follows, checked against the one asked for; `location` names the store.
pub(crate) fn expect_family(
    found: Option<Family>,
    expected: Option<Family>,
    location: &str,
) -> Result<&'static SchemaFamily, BackupError> {
    let found = found.ok_or_else(|| BackupError::NotAStore {
        location: location.to_string(),
    })?;
    match expected {
        Some(expected) if expected != found => Err(BackupError::WrongFamily {
            location: location.to_string(),
            found,
            expected,
        }),
        _ => Ok(found.schema()),
    }
}

/// Refuses a schema version the family's tables of this binary do not describe.
pub(crate) fn check_schema_version(
    family: &SchemaFamily,
    version: i64,
    what: String,
) -> Result<(), BackupError> {
    if version > family.newest_schema {
        return Err(BackupError::SchemaTooNew {
            what,
            found: version,
            known: family.newest_schema,
        });
    }
    if version < family.oldest_schema {
        return Err(BackupError::SchemaTooOld {
            what,
            product: family.product,
            found: version,
            oldest: family.oldest_schema,
        });
    }
    Ok(())
}
