//! The recorded kneo-serv stores, copied into fresh places, and an independent reader of every
//! row for comparisons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kneo_server::backup::kneo_serv::TABLES;
use kneo_testkit::postgres::shared_cluster;
use rusqlite::types::ValueRef;
use serde_json::Value;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kneo-serv-1.2")
}

/// The ids the recording script wrote down, for the store `kind` (`sqlite` or `postgres`).
pub fn scenario(kind: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("scenario.json")).expect("scenario.json");
    let all: Value = serde_json::from_str(&text).expect("scenario.json parses");
    all[kind].clone()
}

/// A fresh copy of the recorded embedded store: `<dir>/.kneo/{kneo_runs.sqlite,continuations/}`.
pub fn sqlite_store(dir: &Path) -> PathBuf {
    let state_dir = dir.join(".kneo");
    std::fs::create_dir_all(state_dir.join("continuations")).expect("state dir");
    std::fs::copy(
        fixture_dir().join("sqlite/kneo_runs.sqlite"),
        state_dir.join("kneo_runs.sqlite"),
    )
    .expect("copy the SQLite fixture");
    for entry in std::fs::read_dir(fixture_dir().join("sqlite/continuations")).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(
            entry.path(),
            state_dir.join("continuations").join(entry.file_name()),
        )
        .expect("copy a continuation");
    }
    state_dir
}

/// A fresh database of the shared test cluster holding the recorded Postgres store.
pub async fn postgres_store() -> String {
    tokio::task::spawn_blocking(|| {
        let cluster = shared_cluster();
        let url = cluster.create_database();
        let output = Command::new(cluster.bin_dir().join("psql"))
            .arg(&url)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(fixture_dir().join("postgres/kneo_serv.sql"))
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "loading the pg_dump fixture failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        url
    })
    .await
    .expect("blocking task")
}

pub async fn new_database() -> String {
    tokio::task::spawn_blocking(|| shared_cluster().create_database())
        .await
        .expect("blocking task")
}

pub async fn psql(url: &str, sql: &str) -> String {
    let (url, sql) = (url.to_string(), sql.to_string());
    tokio::task::spawn_blocking(move || shared_cluster().psql(&url, &sql))
        .await
        .expect("blocking task")
}

/// Every row of every kneo-serv table, each value with its stored type, in key order.
pub type Rows = BTreeMap<String, Vec<Vec<String>>>;

pub fn sqlite_rows(state_dir: &Path) -> Rows {
    let connection =
        rusqlite::Connection::open(state_dir.join("kneo_runs.sqlite")).expect("open the store");
    let mut tables = Rows::new();
    for table in TABLES {
        let order: Vec<String> = table.key.iter().map(|key| format!("\"{key}\"")).collect();
        let sql = format!("SELECT * FROM {} ORDER BY {}", table.name, order.join(", "));
        let mut statement = connection.prepare(&sql).expect("prepare");
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                (0..width)
                    .map(|index| {
                        Ok(match row.get_ref(index)? {
                            ValueRef::Null => "null".to_string(),
                            ValueRef::Integer(number) => format!("integer {number}"),
                            ValueRef::Real(number) => format!("real {number:?}"),
                            ValueRef::Text(text) => {
                                format!("text {}", String::from_utf8_lossy(text))
                            }
                            ValueRef::Blob(blob) => format!("blob {}", hex::encode(blob)),
                        })
                    })
                    .collect::<Result<Vec<_>, rusqlite::Error>>()
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        tables.insert(table.name.to_string(), rows);
    }
    tables
}

/// The continuation files of a state directory, name → bytes.
pub fn continuation_files(state_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(state_dir.join("continuations"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| {
                    (
                        entry.file_name().to_string_lossy().into_owned(),
                        std::fs::read(entry.path()).expect("read a continuation"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn postgres_rows(url: &str) -> Rows {
    let (client, connection) = kneo_server::postgres_client::PostgresTarget::from_url(url)
        .expect("the URL is usable")
        .connect()
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    let mut tables = Rows::new();
    for table in TABLES {
        let order: Vec<String> = table
            .key
            .iter()
            .map(|key| format!("\"{key}\" NULLS FIRST"))
            .collect();
        // A row's text form: every value exactly (float8 prints its shortest exact digits).
        let sql = format!(
            "SELECT t::text FROM {} t ORDER BY {}",
            table.name,
            order.join(", ")
        );
        let rows = client.query(&sql, &[]).await.expect("query");
        tables.insert(
            table.name.to_string(),
            rows.iter()
                .map(|row| vec![row.get::<_, String>(0)])
                .collect(),
        );
    }
    let types = client
        .query(
            "SELECT table_name::text || '.' || column_name::text || ' ' || data_type::text || ' ' || is_nullable::text
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .expect("columns");
    tables.insert(
        "(columns)".into(),
        types
            .iter()
            .map(|row| vec![row.get::<_, String>(0)])
            .collect(),
    );
    driver.abort();
    tables
}

/// Rows per table, for messages.
pub fn counts(rows: &Rows) -> BTreeMap<&str, usize> {
    rows.iter()
        .map(|(table, rows)| (table.as_str(), rows.len()))
        .collect()
}

/// Fails naming the first table and row that differ.
pub fn assert_same_rows(expected: &Rows, actual: &Rows, what: &str) {
    assert_eq!(
        counts(expected),
        counts(actual),
        "{what}: row counts differ"
    );
    for (table, rows) in expected {
        for (index, row) in rows.iter().enumerate() {
            let found = actual.get(table).and_then(|rows| rows.get(index));
            assert_eq!(Some(row), found, "{what}: {table} row {index} differs");
        }
    }
}
