//! The archive format (version 1): the entries, the layout of every table, and the manifest with
//! its self-checksum.
//!
//! An archive holds the state of one store of one *schema family* ([`Family`]): kneo-server's own
//! ([`TABLES`]), or kneo-serv 1.2's ([`crate::backup::kneo_serv::TABLES`]). Both are described by
//! the same data ([`TableSpec`], [`SchemaFamily`]) and read, checked and restored by the same
//! engine. An archive is a gzip-compressed tar holding, in this order:
//!
//! - `<tables prefix><table>.jsonl` for every table of the family, in its order (`tables/` for
//!   kneo-server, `kneo-serv/tables/` for kneo-serv): one JSON object per row and line, keys in the
//!   column order given here, rows in key order (text compared as bytes). Timestamps are RFC 3339
//!   text exactly as [`crate::clock::format`] writes them (`2026-11-28T04:38:11.312209+00:00`),
//!   documents are nested JSON, documents kept as text ([`ColumnType::JsonText`]) are JSON strings,
//!   absent values are `null`.
//! - `<continuations prefix><id>.json`, one per paused human task (the continuation document),
//!   sorted by id, whichever store they came from (files on SQLite, the `continuations` table of a
//!   kneo-server Postgres store).
//! - `manifest.json` (see [`Manifest`]), last. Its `family` names the schema family; the path
//!   prefixes say it too, so a reader knows the family from the first entry.
//!
//! Every tar header is deterministic (mode 0644, uid/gid 0, mtime 0, no user names) and the gzip
//! header is fixed (`1f 8b 08 00 00000000 00 ff`), so two backups of the same data differ only in
//! the manifest's `created_at` and checksum. Backup also writes `<archive>.sha256` beside the
//! archive (`sha256sum -c` format), which covers the few bits no content check can see (the
//! padding of the last deflate byte).
//!
//! [`TABLES`] is written by hand rather than read from the source's schema at backup time: the
//! schema cannot say how a column is written (SQLite keeps timestamps and documents as `TEXT`),
//! and the layout of an archive must not depend on the schema its source happened to have, since
//! any store of either backend restores it. What a hand list risks, a migration that adds a
//! table or column the archive does not carry, is caught by the schema-drift test
//! (`tests/backup_schema.rs`), which migrates a fresh store of each backend and fails naming every
//! table and column of the live schema that a backup does not write.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` field of every manifest (one constant with the tools' archive recognition).
pub const FORMAT_NAME: &str = kneo_triage::archive::BACKUP_FORMAT;
/// The newest archive format this binary reads and the one it writes.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_PATH: &str = "manifest.json";
pub const TABLES_PREFIX: &str = "tables/";
pub const CONTINUATIONS_PREFIX: &str = "continuations/";
/// The gzip header every archive starts with: no flags, no mtime, no extra flags, OS "unknown".
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];
/// The field holding the manifest's own checksum; always the last field of `manifest.json`.
pub const MANIFEST_CHECKSUM_FIELD: &str = "manifest_sha256";

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    /// A finite floating-point number (kneo-serv keeps epoch seconds so), written as the shortest
    /// JSON number that reads back to the same value.
    Real,
    /// RFC 3339 text in the one format of [`crate::clock::format`].
    Timestamp,
    /// A nested JSON document.
    Json,
    /// A JSON document stored as text and kept byte for byte (kneo-serv's `payload` columns):
    /// written as a JSON string, which must hold valid JSON.
    JsonText,
}

/// The schema a store (and so an archive) follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// kneo-server's own stores.
    #[serde(rename = "kneo-server")]
    Kneo,
    /// A kneo-serv 1.2 deployment (the Python service).
    #[serde(rename = "kneo-serv")]
    KneoServ,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Kneo, Family::KneoServ];

    /// The manifest's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Kneo => "kneo-server",
            Family::KneoServ => "kneo-serv",
        }
    }

    pub fn parse(text: &str) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|family| family.as_str() == text)
    }

    /// Everything the engine knows about the family's schema.
    pub fn schema(self) -> &'static SchemaFamily {
        match self {
            Family::Kneo => &KNEO,
            Family::KneoServ => &crate::backup::kneo_serv::FAMILY,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One schema family, as data: its tables, the schema versions this binary reads, where its
/// entries live in an archive, and which columns say what a run is waiting on.
#[derive(Debug)]
pub struct SchemaFamily {
    pub family: Family,
    /// For messages: "kneo-server", "kneo-serv 1.2".
    pub product: &'static str,
    /// Every table, in archive order.
    pub tables: &'static [TableSpec],
    /// The schema versions (`MAX(version)` of `schema_migrations`) of the stores this binary
    /// backs up and restores into.
    pub oldest_schema: i64,
    pub newest_schema: i64,
    /// The oldest schema version of an archive this binary verifies and restores: columns and
    /// tables a later version added are filled in as the archive is read (see [`Added`]).
    pub oldest_archive_schema: i64,
    pub tables_prefix: &'static str,
    pub continuations_prefix: &'static str,
    /// The runs table and its id, status and document columns.
    pub runs: RunColumns,
    /// A table whose rows are continuations (kneo-serv keeps them in one on Postgres), checked
    /// against the blocked runs like continuation files are.
    pub continuation_table: Option<&'static str>,
    /// A Postgres table the archive carries as continuation entries rather than as a table.
    pub continuations_as_entries: Option<EntryTable>,
}

/// A Postgres table whose rows are archived as `<continuations_prefix><id>.json` entries: each
/// document holds what a restore writes back into the columns.
#[derive(Debug)]
pub struct EntryTable {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// Where a family keeps what the engine needs to know about a run.
#[derive(Debug)]
pub struct RunColumns {
    pub table: &'static str,
    pub id: &'static str,
    pub status: &'static str,
    /// The run document; its top-level `continuation_id` names the task a blocked run waits on.
    pub document: &'static str,
}

impl SchemaFamily {
    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&'static TableSpec> {
        self.tables.iter().find(|table| table.name == name)
    }

    pub fn runs_table(&self) -> Option<&'static TableSpec> {
        self.table(self.runs.table)
    }

    pub fn continuation_path(&self, id: &str) -> String {
        format!("{}{id}.json", self.continuations_prefix)
    }

    /// Whether this binary reads archives and stores at schema version `version`.
    pub fn knows_schema(&self, version: i64) -> bool {
        (self.oldest_schema..=self.newest_schema).contains(&version)
    }
}

/// kneo-server's schema family.
pub static KNEO: SchemaFamily = SchemaFamily {
    family: Family::Kneo,
    product: "kneo-server",
    tables: TABLES,
    oldest_schema: crate::store::SCHEMA_VERSION,
    newest_schema: crate::store::SCHEMA_VERSION,
    // Schema 1 archives (before migration 0002) lack runs.session_id, runs.workflow_kind and
    // environment_policies; reading fills them in.
    oldest_archive_schema: 1,
    tables_prefix: TABLES_PREFIX,
    continuations_prefix: CONTINUATIONS_PREFIX,
    runs: RunColumns {
        table: "runs",
        id: "id",
        status: "status",
        document: "document",
    },
    continuation_table: None,
    continuations_as_entries: Some(EntryTable {
        name: "continuations",
        columns: CONTINUATION_COLUMNS,
    }),
};

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    /// Whether `null` is allowed. For a JSON column that is not nullable, `null` is the JSON
    /// literal; for a nullable one it means "no value".
    pub nullable: bool,
    /// Set for a column a later schema version added: lines of older archives lack it.
    pub added: Option<Added>,
}

/// How a column added at a later schema version is filled in for a line that lacks it, so an
/// archive written before the migration still restores (the migration's own backfill, done
/// row by row).
#[derive(Debug)]
pub struct Added {
    /// The schema version that added the column.
    pub schema: i64,
    /// The top-level field of the row's `document` column the column copies (as the
    /// migration's backfill does); `None` leaves it null.
    pub from_document: Option<&'static str>,
}

/// One table of the archive: its columns in line order and its primary key.
#[derive(Debug)]
pub struct TableSpec {
    /// The schema family the table belongs to (two families may both have a `runs`).
    pub family: Family,
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The columns rows are ordered by, unique together: the primary key, or the primary key
    /// after columns that give a more useful order (kneo-serv's audit events by time).
    pub key: &'static [&'static str],
    /// A `GENERATED ALWAYS AS IDENTITY` column on Postgres, whose sequence a restore moves past
    /// the restored rows.
    pub identity: Option<&'static str>,
    /// False for kneo-server's `schema_migrations`: it describes the target's own schema, which
    /// the target's migrations just created, so a restore keeps the target's ledger.
    pub restored: bool,
    /// The column naming the run a row belongs to, for the checks that every such run exists.
    pub run_reference: Option<&'static str>,
    /// The schema version that added the table: an archive of an older schema has no file for
    /// it, and restores it empty.
    pub added_in_schema: i64,
}

impl TableSpec {
    pub fn path(&self) -> String {
        format!("{}{}.jsonl", self.family.schema().tables_prefix, self.name)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    /// Indexes of the key columns, in key order.
    pub fn key_indexes(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|name| self.column_index(name))
            .collect()
    }
}

/// A column of a [`TableSpec`]; shared by every schema family's table list.
pub(crate) const fn column(name: &'static str, kind: ColumnType, nullable: bool) -> Column {
    Column {
        name,
        kind,
        nullable,
        added: None,
    }
}

/// A nullable text column that schema version `schema` added, copied from the run document's
/// field of the same name in the lines of older archives.
const fn added_document_field(name: &'static str, schema: i64) -> Column {
    Column {
        name,
        kind: ColumnType::Text,
        nullable: true,
        added: Some(Added {
            schema,
            from_document: Some(name),
        }),
    }
}

use ColumnType::{Int, Json, Text, Timestamp};

/// kneo-server's tables, in archive order. The columns are those of schema version 2 on both
/// backends; a migration that changes a table must change this list and bump [`FORMAT_VERSION`]
/// or add a conversion for older archives.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        family: Family::Kneo,
        name: "schema_migrations",
        columns: &[
            column("version", Int, false),
            column("name", Text, false),
            column("applied_at", Timestamp, false),
        ],
        key: &["version"],
        identity: None,
        restored: false,
        run_reference: None,
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "runs",
        columns: &[
            column("id", Text, false),
            column("status", Text, false),
            column("created_at", Timestamp, false),
            column("updated_at", Timestamp, false),
            column("deadline_at", Timestamp, true),
            column("workflow_name", Text, true),
            column("document", Json, false),
            added_document_field("workflow_kind", 2),
            added_document_field("session_id", 2),
        ],
        key: &["id"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "run_queue",
        columns: &[
            column("run_id", Text, false),
            column("status", Text, false),
            column("attempts", Int, false),
            column("lease_owner", Text, true),
            column("lease_expires_at", Timestamp, true),
            column("enqueued_at", Timestamp, false),
            column("updated_at", Timestamp, false),
            column("last_error", Text, true),
        ],
        key: &["run_id"],
        identity: None,
        restored: true,
        run_reference: Some("run_id"),
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "trace_events",
        columns: &[
            column("run_id", Text, false),
            column("position", Int, false),
            column("event_id", Text, false),
            column("event_type", Text, false),
            // Derived from the event document; null when the document has none (SQLite stores "").
            column("timestamp", Timestamp, true),
            column("document", Json, false),
        ],
        key: &["run_id", "position"],
        identity: None,
        restored: true,
        run_reference: Some("run_id"),
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "checkpoints",
        columns: &[
            column("run_id", Text, false),
            column("sequence", Int, false),
            column("id", Text, false),
            column("checkpoint_type", Text, false),
            // Derived from the checkpoint document, like trace_events.timestamp.
            column("created_at", Timestamp, true),
            column("document", Json, false),
        ],
        key: &["run_id", "sequence"],
        identity: None,
        restored: true,
        run_reference: Some("run_id"),
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "audit_events",
        columns: &[
            column("position", Int, false),
            column("id", Text, false),
            column("event_type", Text, false),
            column("run_id", Text, true),
            column("continuation_id", Text, true),
            column("actor", Text, false),
            column("metadata", Json, false),
            column("created_at", Timestamp, false),
        ],
        key: &["position"],
        identity: Some("position"),
        restored: true,
        run_reference: None,
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "idempotency_records",
        columns: &[
            column("scope", Text, false),
            column("key", Text, false),
            column("request_hash", Text, false),
            column("state", Text, false),
            column("response_status", Int, true),
            column("response_body", Json, true),
            column("locked_until", Timestamp, true),
            column("created_at", Timestamp, false),
            column("updated_at", Timestamp, false),
        ],
        key: &["scope", "key"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "locks",
        columns: &[
            column("name", Text, false),
            column("owner", Text, false),
            column("expires_at", Timestamp, false),
            column("acquired_at", Timestamp, false),
        ],
        key: &["name"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "service_events",
        columns: &[
            column("position", Int, false),
            column("id", Text, false),
            column("event_type", Text, false),
            column("created_at", Timestamp, false),
            column("version", Text, false),
            column("host", Text, false),
            column("details", Json, false),
        ],
        key: &["position"],
        identity: Some("position"),
        restored: true,
        run_reference: None,
        added_in_schema: 1,
    },
    TableSpec {
        family: Family::Kneo,
        name: "environment_policies",
        columns: &[
            column("environment", Text, false),
            column("policy", Json, false),
            column("updated_at", Timestamp, false),
        ],
        key: &["environment"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: 2,
    },
    TableSpec {
        family: Family::Kneo,
        name: "project_metadata",
        columns: &[
            column("key", Text, false),
            column("value", Text, false),
            column("updated_at", Timestamp, false),
        ],
        key: &["key"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: 1,
    },
];

/// The columns of the Postgres `continuations` table. It is no entry of [`TABLES`]: each row is
/// a `continuations/<id>.json` entry, whose document holds the id, the run id and the creation
/// time a restore writes back into these columns (the embedded store keeps the same documents as
/// files).
pub const CONTINUATION_COLUMNS: &[&str] = &["id", "run_id", "created_at", "document"];

/// kneo-server's table named `name`.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    KNEO.table(name)
}

/// The table (of whichever family) whose archive entry is `path`.
pub fn table_for_path(path: &str) -> Option<&'static TableSpec> {
    Family::ALL.into_iter().find_map(|family| {
        let schema = family.schema();
        let name = path
            .strip_prefix(schema.tables_prefix)?
            .strip_suffix(".jsonl")?;
        schema.table(name)
    })
}

/// The family whose table or continuation entries have a path like `path`, known or not.
pub fn family_of_path(path: &str) -> Option<Family> {
    // The longest prefix first: `kneo-serv/tables/` is not under `tables/`, but say so anyway.
    let mut families = Family::ALL;
    families.sort_by_key(|family| std::cmp::Reverse(family.schema().tables_prefix.len()));
    families.into_iter().find(|family| {
        let schema = family.schema();
        path.starts_with(schema.tables_prefix) || path.starts_with(schema.continuations_prefix)
    })
}

/// A continuation id that is safe as a file name (the rule of the file continuation store).
pub fn is_safe_continuation_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// kneo-server's archive entry for continuation `id`.
pub fn continuation_path(id: &str) -> String {
    KNEO.continuation_path(id)
}

/// The family and continuation id of an archive entry `<continuations prefix><id>.json`, if the
/// path has that form.
pub fn continuation_id_for_path(path: &str) -> Option<(Family, &str)> {
    Family::ALL.into_iter().find_map(|family| {
        let id = path
            .strip_prefix(family.schema().continuations_prefix)?
            .strip_suffix(".json")?;
        Some((family, id))
    })
}

/// What the engine reads out of a continuation document: which task, for which run.
#[derive(Debug, Clone, PartialEq)]
pub struct ContinuationEntry {
    pub family: Family,
    pub id: String,
    /// kneo-serv lets a continuation name no run; kneo-server's always names one.
    pub run_id: Option<String>,
    /// kneo-server's documents carry it; kneo-serv's do not.
    pub created_at: Option<String>,
}

/// Reads a continuation document of `family`: kneo-server's must be a whole
/// [`crate::store::Continuation`]; kneo-serv's a JSON object with a string `id` (its other fields
/// are the resume state, which kneo-serv itself reads tolerantly).
pub fn parse_continuation(family: Family, bytes: &[u8]) -> Result<ContinuationEntry, String> {
    match family {
        Family::Kneo => serde_json::from_slice::<crate::store::Continuation>(bytes)
            .map(|continuation| ContinuationEntry {
                family,
                id: continuation.id,
                run_id: Some(continuation.run_id),
                created_at: Some(continuation.created_at),
            })
            .map_err(|error| error.to_string()),
        Family::KneoServ => crate::backup::kneo_serv::parse_continuation(bytes),
    }
}

/// A primary-key value, compared as the stores order keys (text as bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Text(String),
    Int(i64),
    /// Only in broken rows; sorts first.
    Null,
}

impl PartialOrd for KeyPart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyPart {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyPart::Text(a), KeyPart::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (KeyPart::Int(a), KeyPart::Int(b)) => a.cmp(b),
            (KeyPart::Null, KeyPart::Null) => Ordering::Equal,
            (KeyPart::Null, _) => Ordering::Less,
            (_, KeyPart::Null) => Ordering::Greater,
            (KeyPart::Text(_), KeyPart::Int(_)) => Ordering::Greater,
            (KeyPart::Int(_), KeyPart::Text(_)) => Ordering::Less,
        }
    }
}

impl std::fmt::Display for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Text(text) => write!(f, "{text:?}"),
            KeyPart::Int(value) => write!(f, "{value}"),
            KeyPart::Null => f.write_str("null"),
        }
    }
}

/// `manifest.json`: what the archive holds and how to check it.
///
/// `manifest_sha256` is the SHA-256 (hex) of `manifest.json` exactly as stored, with the value of
/// `manifest_sha256` replaced by the empty string; it is always the last field, so a reader can
/// check it by cutting the 64 hex digits out of the raw bytes (`sed 's/"manifest_sha256": "[0-9a-f]*"/"manifest_sha256": ""/' | sha256sum`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    pub format_version: u32,
    /// The schema family of the tables (archives written before families existed are kneo-server's).
    #[serde(default = "kneo_family")]
    pub family: Family,
    /// When the snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The kneo that wrote the archive.
    pub tool_version: String,
    /// The version of the last service start recorded in `service_events`, if any.
    pub server_version: Option<String>,
    /// The highest applied migration of the source (`schema_migrations`), in its family's numbering.
    pub schema_version: i64,
    pub source: SourceInfo,
    /// Every table, in archive order.
    pub tables: Vec<TableEntry>,
    pub continuations: ContinuationSummary,
    /// Every entry except `manifest.json`, in archive order.
    pub files: Vec<FileEntry>,
    /// See the type's documentation; the last field.
    pub manifest_sha256: String,
}

fn kneo_family() -> Family {
    Family::Kneo
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// The state directory, or `host:port/database` (never a password).
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub path: String,
    pub rows: u64,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// How the continuations were reconciled with the runs of the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContinuationSummary {
    /// Continuations in the archive: exactly those of runs that are `blocked` on them.
    pub count: u64,
    /// Continuations found in the store but left out, with the reason.
    pub excluded: Vec<ExcludedContinuation>,
    /// Things that do not add up in the snapshot itself.
    pub warnings: Vec<ConsistencyWarning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedContinuation {
    /// The continuation id (or the file name when it has none).
    pub id: String,
    pub run_id: Option<String>,
    /// `run_missing` (written after the snapshot for a newer run), `run_not_blocked` (stale, or
    /// written just before its run blocked after the snapshot), `other_continuation`, `unreadable`,
    /// `bad_name`, `temporary_file`.
    pub reason: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyWarning {
    /// `continuation_missing`: a run is blocked on a continuation that is in neither store copy;
    /// restored, it cannot be resumed (runbook § 8.2).
    /// `continuation_from_early_copy`: found only in the copy taken just before the database
    /// snapshot (its run was resumed or expired while the backup ran); included.
    pub kind: String,
    pub run_id: String,
    pub continuation_id: Option<String>,
    pub detail: String,
}

impl Manifest {
    /// The rows the manifest records for table `name` (0 for a table it does not list).
    pub fn rows_of(&self, name: &str) -> i64 {
        self.tables
            .iter()
            .find(|table| table.name == name)
            .map_or(0, |table| i64::try_from(table.rows).unwrap_or(i64::MAX))
    }

    /// The bytes of `manifest.json`, with the self-checksum filled in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut blank = self.clone();
        blank.manifest_sha256 = String::new();
        // Serializing plain structs of strings and integers cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&blank).unwrap_or_default();
        bytes.push(b'\n');
        let checksum = hex::encode(Sha256::digest(&bytes));
        let empty = format!("\"{MANIFEST_CHECKSUM_FIELD}\": \"\"");
        let filled = format!("\"{MANIFEST_CHECKSUM_FIELD}\": \"{checksum}\"");
        match find_last(&bytes, empty.as_bytes()) {
            Some(at) => {
                let mut out = Vec::with_capacity(bytes.len() + 64);
                out.extend_from_slice(&bytes[..at]);
                out.extend_from_slice(filled.as_bytes());
                out.extend_from_slice(&bytes[at + empty.len()..]);
                out
            }
            None => bytes,
        }
    }
}

/// Checks the self-checksum of raw `manifest.json` bytes: `Ok(checksum)` when it holds, otherwise
/// what is wrong.
pub fn check_manifest_checksum(raw: &[u8]) -> Result<String, String> {
    let marker = format!("\"{MANIFEST_CHECKSUM_FIELD}\": \"");
    let at = find_last(raw, marker.as_bytes())
        .ok_or_else(|| format!("it has no \"{MANIFEST_CHECKSUM_FIELD}\" field"))?;
    let start = at + marker.len();
    let length = raw[start..]
        .iter()
        .position(|byte| *byte == b'"')
        .ok_or_else(|| format!("its \"{MANIFEST_CHECKSUM_FIELD}\" value is not terminated"))?;
    let recorded = std::str::from_utf8(&raw[start..start + length])
        .map_err(|_| format!("its \"{MANIFEST_CHECKSUM_FIELD}\" value is not text"))?;
    let mut blank = Vec::with_capacity(raw.len());
    blank.extend_from_slice(&raw[..start]);
    blank.extend_from_slice(&raw[start + length..]);
    let actual = hex::encode(Sha256::digest(&blank));
    if recorded == actual {
        Ok(actual)
    } else {
        Err(format!(
            "its recorded checksum is {recorded:?} but its content hashes to {actual}"
        ))
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    (0..=haystack.len() - needle.len())
        .rev()
        .find(|&at| &haystack[at..at + needle.len()] == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            family: Family::Kneo,
            created_at: "2026-11-28T04:38:11.312209+00:00".into(),
            tool_version: "0.1.0".into(),
            server_version: None,
            schema_version: 1,
            source: SourceInfo {
                kind: "sqlite".into(),
                location: ".kneo".into(),
            },
            tables: vec![],
            continuations: ContinuationSummary::default(),
            files: vec![],
            manifest_sha256: String::new(),
        }
    }

    #[test]
    fn the_self_checksum_holds_and_catches_any_change() {
        let bytes = manifest().to_bytes();
        let checksum = check_manifest_checksum(&bytes).expect("valid");
        let parsed: Manifest = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(parsed.manifest_sha256, checksum);
        let text = String::from_utf8(bytes).expect("utf-8");
        let changed = text.replace("\"schema_version\": 1", "\"schema_version\": 2");
        assert!(check_manifest_checksum(changed.as_bytes()).is_err());
    }

    #[test]
    fn a_manifest_written_before_families_is_kneo_servers() {
        let bytes = manifest().to_bytes();
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(text.contains("\"family\": \"kneo-server\""), "{text}");
        let older = text.replace("  \"family\": \"kneo-server\",\n", "");
        assert_ne!(older, text);
        let parsed: Manifest = serde_json::from_str(&older).expect("parses");
        assert_eq!(parsed.family, Family::Kneo);
        assert_eq!(Family::parse("kneo-serv"), Some(Family::KneoServ));
        assert_eq!(
            family_of_path("kneo-serv/tables/runs.jsonl"),
            Some(Family::KneoServ)
        );
        assert_eq!(family_of_path("tables/runs.jsonl"), Some(Family::Kneo));
        assert_eq!(family_of_path("manifest.json"), None);
    }

    #[test]
    fn every_key_column_exists_and_text_keys_sort_as_bytes() {
        for table in TABLES {
            assert_eq!(table.key_indexes().len(), table.key.len(), "{}", table.name);
        }
        assert!(KeyPart::Text("Z".into()) < KeyPart::Text("a".into()));
        assert!(KeyPart::Int(2) < KeyPart::Int(10));
    }
}
