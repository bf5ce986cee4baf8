//! Schema drift: a backup carries every table and column of the live schema, on both backends,
//! for both schema families.
//!
//! The archive layout is a hand-written list (`backup::format::TABLES` for kneo-server,
//! `backup::kneo_serv::TABLES` for kneo-serv 1.2; see the format's module doc for why). Each test
//! reads a live schema (`PRAGMA table_info`, `information_schema.columns`) — of a freshly migrated
//! kneo-server store, or of the kneo-serv 1.2 store recorded from the real kneo-serv — takes a real
//! backup of it and compares: a table or column the backup does not write fails the test with its
//! name, so a migration cannot silently make backups lose data.

// A test target: a failing check panics with what was expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The recorded kneo-serv 1.2 stores, shared with the kneo_serv test target.
#[allow(dead_code)]
#[path = "kneo_serv/fixtures.rs"]
mod kneo_serv_fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use kneo_server::backup::format::{self, Family, SchemaFamily};
use kneo_server::backup::{BackupOptions, StoreLocation, backup, no_progress};
use kneo_server::store::postgres::PostgresStore;
use kneo_server::store::sqlite::SqliteStore;
use kneo_testkit::postgres::shared_cluster;
use serde_json::Value;

/// Table name → column names.
type Schema = BTreeMap<String, BTreeSet<String>>;

/// What an archive of `family` carries: every `<tables_prefix><name>.jsonl` entry with the
/// columns its lines are written with (the table's layout in the format), and the Postgres table
/// whose rows are continuation entries (kneo-server's `continuations`; present or not: a fresh
/// store has none).
fn carried_by(archive: &Path, family: &SchemaFamily) -> Schema {
    let mut carried = Schema::new();
    if let Some(entries) = &family.continuations_as_entries {
        carried.insert(
            entries.name.to_string(),
            entries.columns.iter().map(|c| c.to_string()).collect(),
        );
    }
    let file = std::fs::File::open(archive).expect("open the archive");
    let mut entries = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in entries.entries().expect("archive entries") {
        let mut entry = entry.expect("an archive entry");
        let path = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        if !path.starts_with(family.tables_prefix) {
            continue;
        }
        let table = format::table_for_path(&path)
            .unwrap_or_else(|| panic!("{path}: an entry of no table the format knows"));
        assert_eq!(
            table.family, family.family,
            "{path}: a table of the other family"
        );
        let columns: BTreeSet<String> = table.columns.iter().map(|c| c.name.to_string()).collect();
        // The lines are written in the layout: every key of every row is one of its columns.
        let mut text = Vec::new();
        entry.read_to_end(&mut text).expect("read the entry");
        for line in BufReader::new(text.as_slice()).lines() {
            let row: Value = serde_json::from_str(&line.expect("a line")).expect("a JSON row");
            let keys: BTreeSet<String> = row
                .as_object()
                .expect("a row object")
                .keys()
                .cloned()
                .collect();
            assert_eq!(keys, columns, "{path}: a line not in the table's layout");
        }
        carried.insert(table.name.to_string(), columns);
    }
    carried
}

/// Every table and column of `live` that `carried` lacks, and every one the format writes that
/// the schema no longer has, each named.
fn drift(live: &Schema, carried: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, columns) in live {
        match carried.get(table) {
            None => problems.push(format!(
                "table {table} ({}) is not carried by a backup",
                columns.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            Some(written) => {
                for column in columns.difference(written) {
                    problems.push(format!(
                        "column {table}.{column} is not carried by a backup"
                    ));
                }
                for column in written.difference(columns) {
                    problems.push(format!(
                        "column {table}.{column} is written by a backup but not in the schema"
                    ));
                }
            }
        }
    }
    problems
}

/// Backs up the `family` store at `source` and fails naming every difference from `live`.
async fn assert_a_backup_carries(
    backend: &str,
    family: Family,
    source: &StoreLocation,
    live: &Schema,
) {
    let family = family.schema();
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("backup.tar.gz");
    let summary = backup(source, &archive, &BackupOptions::default(), &no_progress)
        .await
        .unwrap_or_else(|error| panic!("{backend}: backup of a {} store: {error}", family.product));
    assert_eq!(
        summary.manifest.family, family.family,
        "{backend}: detected family"
    );
    let carried = carried_by(&archive, family);
    assert!(
        live.contains_key("runs") && live.contains_key("schema_migrations"),
        "{backend}: the live schema was not read: {live:?}"
    );
    let problems = drift(live, &carried);
    assert!(
        problems.is_empty(),
        "{backend}: the backup format has drifted from the {} schema; add each to the family's \
         TABLES (and bump FORMAT_VERSION or convert older archives):\n  {}",
        family.product,
        problems.join("\n  ")
    );
}

/// The tables and columns of the SQLite database at `database`.
fn sqlite_schema(database: &Path) -> Schema {
    let connection = rusqlite::Connection::open(database).expect("open the store");
    let mut live = Schema::new();
    let names: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("list tables")
        .query_map([], |row| row.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("table names");
    for name in names {
        let columns: BTreeSet<String> = connection
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .expect("table info")
            .query_map([&name], |row| row.get(0))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("column names");
        live.insert(name, columns);
    }
    live
}

/// The tables and columns of the current schema of the Postgres database at `url`.
async fn postgres_schema(url: &str) -> Schema {
    let (client, connection) = kneo_server::postgres_client::PostgresTarget::from_url(url)
        .expect("the URL is usable")
        .connect()
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema()",
            &[],
        )
        .await
        .expect("read information_schema.columns");
    let mut live = Schema::new();
    for row in rows {
        live.entry(row.get(0)).or_default().insert(row.get(1));
    }
    drop(client);
    let _ = driver.await;
    live
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_carries_every_table_and_column_of_the_schema() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = work.path().join(".kneo");
    std::fs::create_dir_all(state_dir.join("continuations")).expect("state directory");
    let database = state_dir.join("kneo_runs.sqlite");
    drop(SqliteStore::open(&database).expect("SQLite opens and migrates"));
    let live = sqlite_schema(&database);
    let source = StoreLocation::sqlite(&state_dir);
    assert_a_backup_carries("SQLite", Family::Kneo, &source, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_carries_every_table_and_column_of_the_schema() {
    let url = tokio::task::spawn_blocking(|| shared_cluster().create_database())
        .await
        .expect("create a database");
    PostgresStore::new(&url, 2)
        .expect("URL parses")
        .ensure_ready()
        .await
        .expect("migrates");
    let live = postgres_schema(&url).await;
    let source = StoreLocation::postgres(&url);
    assert_a_backup_carries("Postgres", Family::Kneo, &source, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kneo_serv_sqlite_backup_carries_every_table_and_column_of_its_schema() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = kneo_serv_fixtures::sqlite_store(work.path());
    let live = sqlite_schema(&state_dir.join("kneo_runs.sqlite"));
    let source = StoreLocation::sqlite(&state_dir);
    assert_a_backup_carries("kneo-serv SQLite", Family::KneoServ, &source, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kneo_serv_postgres_backup_carries_every_table_and_column_of_its_schema() {
    let url = kneo_serv_fixtures::postgres_store().await;
    let live = postgres_schema(&url).await;
    let source = StoreLocation::postgres(&url);
    assert_a_backup_carries("kneo-serv Postgres", Family::KneoServ, &source, &live).await;
}

#[test]
fn drift_names_each_missing_table_and_column() {
    let schema = |tables: &[(&str, &[&str])]| -> Schema {
        tables
            .iter()
            .map(|(table, columns)| {
                (
                    table.to_string(),
                    columns.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect()
    };
    let live = schema(&[
        ("runs", &["id", "status", "priority"]),
        ("run_labels", &["run_id", "label"]),
        ("locks", &["name"]),
    ]);
    let carried = schema(&[("runs", &["id", "status"]), ("locks", &["name", "owner"])]);
    assert_eq!(
        drift(&live, &carried),
        [
            "column locks.owner is written by a backup but not in the schema",
            "table run_labels (label, run_id) is not carried by a backup",
            "column runs.priority is not carried by a backup",
        ]
    );
    assert!(drift(&carried, &carried).is_empty());
}
