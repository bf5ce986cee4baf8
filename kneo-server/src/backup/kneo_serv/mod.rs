//! The kneo-serv 1.2 schema family: the tables of the Python service's stores (schema version 4,
//! the same on SQLite and on Postgres), described as data for the one backup engine, plus what
//! only this family needs: its DDL ([`schema`]), its continuation documents, and the read-back
//! checks of a deep verification ([`deep`]).
//!
//! kneo-serv keeps each record twice: a few columns to filter and sort on, and the whole record
//! as JSON text in `payload`. Both are archived as they are stored (timestamps as the text or the
//! epoch seconds kneo-serv wrote, payloads byte for byte), so a restore gives back identical rows.
//! Continuations are files in `.kneo/continuations/` on SQLite and rows of `continuations` on
//! Postgres; the table is archived on both (it exists, empty, on SQLite too), the files beside it.

pub mod deep;
pub mod schema;

use std::io::Read;

use base64::Engine;
use serde_json::Value;

use super::format::{
    ColumnType, ContinuationEntry, Family, RunColumns, SchemaFamily, TableSpec, column,
};

/// The newest (and only) kneo-serv schema this binary reads: migration 4,
/// `run_session_id_and_filter_indexes`, the schema of every kneo-serv 1.2 release.
pub const SCHEMA_VERSION: i64 = 4;

/// The family's description for the engine.
pub static FAMILY: SchemaFamily = SchemaFamily {
    family: Family::KneoServ,
    product: "kneo-serv 1.2",
    tables: TABLES,
    oldest_schema: SCHEMA_VERSION,
    newest_schema: SCHEMA_VERSION,
    oldest_archive_schema: SCHEMA_VERSION,
    tables_prefix: "kneo-serv/tables/",
    continuations_prefix: "kneo-serv/continuations/",
    runs: RunColumns {
        table: "runs",
        id: "id",
        status: "status",
        document: "payload",
    },
    continuation_table: Some("continuations"),
    // Its continuations table is archived as a table; its continuation files as entries.
    continuations_as_entries: None,
};

use ColumnType::{Int, JsonText, Real, Text};

/// kneo-serv's tables in archive order, columns in their physical order (`runs.session_id` last:
/// migration 4 added it). Checkpoints come before runs: an import learns each run's last
/// checkpoint sequence, which kneo-server keeps in the run, before it converts the run.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        family: Family::KneoServ,
        name: "schema_migrations",
        columns: &[
            column("version", Int, false),
            column("name", Text, false),
            column("applied_at", Text, false),
        ],
        key: &["version"],
        identity: None,
        // The target's ledger is created by this binary (kneo-serv never migrates a store that
        // already records version 4), so the archived one is put back as it was.
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "checkpoints",
        columns: &[
            column("id", Text, false),
            column("run_id", Text, false),
            column("sequence", Int, true),
            column("type", Text, false),
            column("created_at", Text, false),
            column("payload", JsonText, false),
        ],
        // A run's checkpoints in sequence order, so an import reads them as kneo-server keeps
        // them; the id makes the order total (a NULL sequence is allowed and sorts first).
        key: &["run_id", "sequence", "id"],
        identity: None,
        restored: true,
        run_reference: Some("run_id"),
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "runs",
        columns: &[
            column("id", Text, false),
            column("status", Text, false),
            column("workflow_name", Text, true),
            column("workflow_kind", Text, true),
            column("agent_name", Text, true),
            column("created_at", Text, true),
            column("updated_at", Text, true),
            column("payload", JsonText, false),
            column("session_id", Text, true),
        ],
        key: &["id"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "run_queue",
        columns: &[
            column("run_id", Text, false),
            column("status", Text, false),
            column("attempts", Int, false),
            column("available_at", Real, false),
            column("lease_owner", Text, true),
            column("lease_expires_at", Real, true),
            column("error", Text, true),
            column("created_at", Real, false),
            column("updated_at", Real, false),
            column("payload", JsonText, false),
        ],
        key: &["run_id"],
        identity: None,
        restored: true,
        run_reference: Some("run_id"),
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "audit_events",
        columns: &[
            column("id", Text, false),
            column("event_type", Text, false),
            column("run_id", Text, true),
            column("continuation_id", Text, true),
            column("actor", Text, true),
            column("created_at", Text, false),
            column("payload", JsonText, false),
        ],
        // Oldest first, as kneo-server numbers its audit events.
        key: &["created_at", "id"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "idempotency_records",
        columns: &[
            column("scope", Text, false),
            column("key", Text, false),
            column("request_hash", Text, false),
            column("status_code", Int, false),
            column("created_at", Text, false),
            column("updated_at", Text, false),
            column("payload", JsonText, false),
        ],
        key: &["scope", "key"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "locks",
        columns: &[
            column("name", Text, false),
            column("owner", Text, false),
            column("expires_at", Real, false),
            column("created_at", Real, false),
            column("updated_at", Real, false),
        ],
        key: &["name"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "continuations",
        columns: &[
            column("id", Text, false),
            column("run_id", Text, true),
            column("status", Text, true),
            column("created_at", Text, false),
            column("updated_at", Text, false),
            column("payload", JsonText, false),
        ],
        key: &["id"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
    TableSpec {
        family: Family::KneoServ,
        name: "project_metadata",
        columns: &[
            column("key", Text, false),
            column("value", JsonText, false),
            column("updated_at", Text, false),
        ],
        key: &["key"],
        identity: None,
        restored: true,
        run_reference: None,
        added_in_schema: SCHEMA_VERSION,
    },
];

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    FAMILY.table(name)
}

/// Reads a kneo-serv continuation document (a `WorkflowContinuation`): a JSON object with a
/// string `id` and a string or null `run_id`.
pub fn parse_continuation(bytes: &[u8]) -> Result<ContinuationEntry, String> {
    #[derive(serde::Deserialize)]
    struct Identity {
        id: String,
        #[serde(default)]
        run_id: Option<String>,
    }
    let identity: Identity = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    Ok(ContinuationEntry {
        family: Family::KneoServ,
        id: identity.id,
        run_id: identity.run_id,
        created_at: None,
    })
}

/// The marker of a checkpoint payload kneo-serv compressed (`KNEO_SERV_CHECKPOINT_COMPRESS_BYTES`):
/// `{"__kneo_checkpoint_payload__": "zlib+base64+json", "payload": "<base64 of zlib of JSON>"}`.
const COMPRESSED_MARKER: &str = "__kneo_checkpoint_payload__";
const COMPRESSED_ENCODING: &str = "zlib+base64+json";
/// The largest checkpoint a compressed payload may inflate to.
const MAX_CHECKPOINT_BYTES: u64 = 256 * 1024 * 1024;

/// A checkpoint document from its stored payload, inflating a compressed one.
pub fn decode_checkpoint(payload: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(payload).map_err(|error| format!("not JSON: {error}"))?;
    let Some(encoding) = value.get(COMPRESSED_MARKER) else {
        return Ok(value);
    };
    if encoding.as_str() != Some(COMPRESSED_ENCODING) {
        return Err(format!(
            "compressed with {encoding}, not {COMPRESSED_ENCODING:?} (the one encoding kneo-serv 1.2 writes)"
        ));
    }
    let encoded = value
        .get("payload")
        .and_then(Value::as_str)
        .ok_or("a compressed payload without its \"payload\" text")?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|error| format!("the compressed payload is not base64: {error}"))?;
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(MAX_CHECKPOINT_BYTES + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| format!("the compressed payload does not inflate: {error}"))?;
    if inflated.len() as u64 > MAX_CHECKPOINT_BYTES {
        return Err(format!(
            "the compressed payload inflates to more than {MAX_CHECKPOINT_BYTES} bytes"
        ));
    }
    serde_json::from_slice(&inflated)
        .map_err(|error| format!("the inflated payload is not JSON: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_column_exists_and_paths_name_the_family() {
        for table in TABLES {
            assert_eq!(table.key_indexes().len(), table.key.len(), "{}", table.name);
            assert_eq!(table.family, Family::KneoServ);
            let path = table.path();
            assert!(path.starts_with("kneo-serv/tables/"), "{path}");
            assert_eq!(
                crate::backup::format::table_for_path(&path).map(|found| found.family),
                Some(Family::KneoServ)
            );
        }
        assert_eq!(
            crate::backup::format::table_for_path("tables/runs.jsonl").map(|found| found.family),
            Some(Family::Kneo)
        );
    }

    #[test]
    fn compressed_checkpoints_inflate() {
        use std::io::Write;
        let document = serde_json::json!({"id": "k1", "run_id": "r1", "sequence": 3});
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(document.to_string().as_bytes())
            .expect("compress");
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(zlib.finish().expect("compress"));
        let stored =
            serde_json::json!({COMPRESSED_MARKER: COMPRESSED_ENCODING, "payload": encoded});
        assert_eq!(decode_checkpoint(&stored.to_string()), Ok(document.clone()));
        assert_eq!(decode_checkpoint(&document.to_string()), Ok(document));
        let other = serde_json::json!({COMPRESSED_MARKER: "lz4", "payload": ""});
        assert!(decode_checkpoint(&other.to_string()).is_err());
        let broken = serde_json::json!({COMPRESSED_MARKER: COMPRESSED_ENCODING, "payload": "!!"});
        assert!(decode_checkpoint(&broken.to_string()).is_err());
    }

    #[test]
    fn a_continuation_needs_a_string_id() {
        let entry = parse_continuation(br#"{"id": "c1", "run_id": null, "messages": []}"#)
            .expect("a continuation");
        assert_eq!((entry.id.as_str(), entry.run_id), ("c1", None));
        assert!(parse_continuation(br#"{"run_id": "r1"}"#).is_err());
        assert!(parse_continuation(b"[]").is_err());
    }
}
