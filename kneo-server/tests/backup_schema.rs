//! Schema drift: a backup carries every table and column of the live schema, on both backends.
//!
//! The archive layout is a hand-written list (`backup::format::TABLES`, see its module doc for
//! why). Each test migrates a fresh store, reads its live schema (`PRAGMA table_info`,
//! `information_schema.columns`), takes a real backup of it and compares: a table or column the
//! backup does not write fails the test with its name, so a migration cannot silently make
//! backups lose data.

// A test target: a failing check panics with what was expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use kneo_server::backup::format::{self, CONTINUATION_COLUMNS, TABLES_PREFIX};
use kneo_server::backup::{BackupOptions, StoreLocation, backup, no_progress};
use kneo_server::store::postgres::PostgresStore;
use kneo_server::store::sqlite::SqliteStore;
use kneo_testkit::postgres::shared_cluster;
use serde_json::Value;

/// Table name → column names.
type Schema = BTreeMap<String, BTreeSet<String>>;

/// What an archive carries: every `tables/<name>.jsonl` entry with the columns its lines are
/// written with (the table's layout in the format), and the Postgres `continuations` table,
/// whose rows are the `continuations/<id>.json` entries (present or not: a fresh store has none).
fn carried_by(archive: &Path) -> Schema {
    let mut carried = Schema::new();
    carried.insert(
        "continuations".into(),
        CONTINUATION_COLUMNS.iter().map(|c| c.to_string()).collect(),
    );
    let file = std::fs::File::open(archive).expect("open the archive");
    let mut entries = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in entries.entries().expect("archive entries") {
        let mut entry = entry.expect("an archive entry");
        let path = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        if !path.starts_with(TABLES_PREFIX) {
            continue;
        }
        let table = format::table_for_path(&path)
            .unwrap_or_else(|| panic!("{path}: an entry of no table the format knows"));
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

/// Backs up the fresh store at `source` and fails naming every difference from `live`.
async fn assert_a_backup_carries(backend: &str, source: &StoreLocation, live: &Schema) {
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("fresh.tar.gz");
    backup(source, &archive, &BackupOptions::default(), &no_progress)
        .await
        .unwrap_or_else(|error| panic!("{backend}: backup of a fresh store: {error}"));
    let carried = carried_by(&archive);
    assert!(
        live.contains_key("runs") && live.contains_key("schema_migrations"),
        "{backend}: the live schema was not read: {live:?}"
    );
    let problems = drift(live, &carried);
    assert!(
        problems.is_empty(),
        "{backend}: the backup format has drifted from the schema; add each to \
         backup::format::TABLES (and bump FORMAT_VERSION or convert older archives):\n  {}",
        problems.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_carries_every_table_and_column_of_the_schema() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = work.path().join(".kneo");
    std::fs::create_dir_all(state_dir.join("continuations")).expect("state directory");
    let database = state_dir.join("kneo_runs.sqlite");
    drop(SqliteStore::open(&database).expect("SQLite opens and migrates"));

    let connection = rusqlite::Connection::open(&database).expect("open the store");
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
    drop(connection);
    assert_a_backup_carries("SQLite", &StoreLocation::sqlite(&state_dir), &live).await;
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

    let (client, connection) = kneo_server::postgres_client::PostgresTarget::from_url(&url)
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
    assert_a_backup_carries("Postgres", &StoreLocation::postgres(&url), &live).await;
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
