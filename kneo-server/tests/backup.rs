//! Backup, verify and restore end to end, on real SQLite files, a real Postgres cluster and real
//! servers: round trips on both stores compared row by row, migrations between the stores, a
//! backup taken under load, damaged archives, and the refusals of restore.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kneo_server::backup::format::{ColumnType, GZIP_HEADER, TABLES};
use kneo_server::backup::{
    self, BackupError, BackupOptions, FailureKind, RestoreOptions, ScratchTarget, StoreLocation,
    no_progress,
};
use kneo_server::clock;
use kneo_server::store::continuation_files::FileContinuationStore;
use kneo_server::store::postgres::PostgresStore;
use kneo_server::store::sqlite::SqliteStore;
use kneo_server::store::state_lock::StateLock;
use kneo_server::store::{
    AuditEvent, Continuation, ContinuationStore, IdempotencyRequest, Progress, QueueEntry,
    QueueStatus, QueueTransition, RunRecord, RunStatus, ServiceEvent, Store,
};
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions};
use serde_json::{Value, json};

/// Runs written through the store traits; [`COPIES`] copies of the finished ones are then added
/// by SQL, so a round trip covers over 10,000 runs without spending the test's time in debug-build
/// serde.
const SEED_RUNS: usize = 1_000;
const COPIES: usize = 10;
const RUNS: usize = 10_000;
/// Every this many synthetic runs, one is blocked on a continuation.
const BLOCKED_EVERY: usize = 400;

/// Seed runs that are not blocked (copies of blocked runs would share their continuation).
const SEEDS: &str =
    "CREATE TEMP TABLE seeds AS SELECT id FROM runs WHERE status <> 'blocked' AND id LIKE 'run-%'";

/// The SQL that copies every seed run `COPIES` times, with its queue record, trace, checkpoints
/// and audit events; `numbers` is a table expression of 1..=COPIES as `k`, `set_id` sets the
/// document's id to `NEW_ID`.
fn copy_sql(numbers: &str, set_id: &str) -> String {
    let id = "r.id || '-' || k";
    format!(
        "INSERT INTO runs (id, status, created_at, updated_at, deadline_at, workflow_name, document)
           SELECT {id}, r.status, r.created_at, r.updated_at, r.deadline_at, r.workflow_name, {set}
           FROM runs r JOIN seeds s ON s.id = r.id CROSS JOIN {numbers};
         INSERT INTO run_queue (run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at, last_error)
           SELECT q.run_id || '-' || k, q.status, q.attempts, q.lease_owner, q.lease_expires_at, q.enqueued_at, q.updated_at, q.last_error
           FROM run_queue q JOIN seeds s ON s.id = q.run_id CROSS JOIN {numbers};
         INSERT INTO trace_events (run_id, position, event_id, event_type, \"timestamp\", document)
           SELECT t.run_id || '-' || k, t.position, t.event_id, t.event_type, t.\"timestamp\", t.document
           FROM trace_events t JOIN seeds s ON s.id = t.run_id CROSS JOIN {numbers};
         INSERT INTO checkpoints (run_id, sequence, id, checkpoint_type, created_at, document)
           SELECT c.run_id || '-' || k, c.sequence, c.id, c.checkpoint_type, c.created_at, c.document
           FROM checkpoints c JOIN seeds s ON s.id = c.run_id CROSS JOIN {numbers};
         INSERT INTO audit_events (id, event_type, run_id, continuation_id, actor, metadata, created_at)
           SELECT a.id || '-' || k, a.event_type, a.run_id || '-' || k, a.continuation_id, a.actor, a.metadata, a.created_at
           FROM audit_events a JOIN seeds s ON s.id = a.run_id CROSS JOIN {numbers};",
        set = set_id.replace("NEW_ID", id),
    )
}

fn replicate_sqlite(state_dir: &Path) {
    let connection = rusqlite::Connection::open(state_dir.join("kneo_runs.sqlite")).expect("open");
    connection.execute_batch(SEEDS).expect("seeds");
    connection
        .execute_batch(&format!(
            "CREATE TEMP TABLE numbers AS WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < {COPIES}) SELECT k FROM n;
             BEGIN; {} COMMIT;",
            copy_sql("numbers", "json_set(r.document, '$.id', NEW_ID)")
        ))
        .expect("copies");
}

async fn replicate_postgres(url: &str) {
    psql(
        url,
        &format!(
            "BEGIN; {SEEDS}; {} COMMIT;",
            copy_sql(
                &format!("generate_series(1, {COPIES}) AS k"),
                "jsonb_set(r.document, '{id}', to_jsonb(NEW_ID))"
            )
        ),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Populating stores
// ---------------------------------------------------------------------------------------------

fn audit(event_type: &str, run_id: &str) -> AuditEvent {
    AuditEvent {
        id: clock::new_id(),
        event_type: event_type.into(),
        run_id: Some(run_id.into()),
        continuation_id: None,
        actor: "backup-test".into(),
        metadata: json!({"request_id": clock::new_id(), "n": 1}),
        created_at: clock::now_text(),
    }
}

/// Writes `count` runs through the store traits: each queued, then finished (or blocked on a
/// continuation) with trace events, checkpoints and audit events.
async fn populate(store: Arc<dyn Store>, continuations: Arc<dyn ContinuationStore>, count: usize) {
    futures_util::stream::iter(0..count)
        .map(|index| {
            let (store, continuations) = (store.clone(), continuations.clone());
            async move { write_run(&*store, &*continuations, index).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    for index in 0..5 {
        let request = IdempotencyRequest {
            scope: "runs:create".into(),
            key: format!("key-{index}"),
            request_hash: format!("{index:064}"),
            lock_ttl: Duration::from_secs(300),
        };
        store
            .idempotency_begin(&request)
            .await
            .expect("idempotency begin");
        if index % 2 == 0 {
            store
                .idempotency_complete("runs:create", &request.key, 200, &json!({"run_id": index}))
                .await
                .expect("idempotency complete");
        }
    }
    assert!(
        store
            .try_lock("maintenance", "backup-test", Duration::from_secs(600))
            .await
            .expect("lock")
    );
    store
        .record_service_event(&ServiceEvent {
            id: clock::new_id(),
            event_type: "service.started".into(),
            created_at: clock::now_text(),
            version: "0.0.9-test".into(),
            host: "test-host".into(),
            details: json!({"schema_version": 1, "pid": 1}),
        })
        .await
        .expect("service event");
}

async fn write_run(store: &dyn Store, continuations: &dyn ContinuationStore, index: usize) {
    let id = format!("run-{index:06}-{}", &clock::new_id()[..8]);
    let mut run = RunRecord::new(id.clone(), format!("input {index}"), clock::now_text());
    run.workflow_name = Some("synthetic".into());
    run.tags = vec!["backup-test".into()];
    run.metadata.insert("index".into(), json!(index));
    run.messages = vec![
        json!({"role": "user", "content": format!("input {index}\nwith a newline"), "name": null}),
    ];
    store
        .create_run(
            &run,
            Some(QueueEntry::Queued),
            &[audit("run.created", &id)],
            None,
        )
        .await
        .expect("create run");
    let blocked = index % BLOCKED_EVERY == 7;
    run.status = if blocked {
        RunStatus::Blocked
    } else if index.is_multiple_of(13) {
        RunStatus::Failed
    } else {
        RunStatus::Completed
    };
    run.updated_at = clock::now_text();
    run.output_text = Some(format!("Final answer: input {index}"));
    run.trace_event_count = 3;
    let mut progress = Progress::new(run.clone());
    for (position, event_type) in ["run_started", "agent_message", "run_completed"]
        .iter()
        .enumerate()
    {
        let mut event = json!({
            "event_id": clock::new_id(), "type": event_type, "run_id": id,
            "metadata": {"position": position, "unicode": "é✓"},
        });
        // One event in 50 has no timestamp, as engine events may.
        if index % 50 != 3 || position != 1 {
            event["timestamp"] = json!(clock::now_text());
        }
        progress.trace_events.push(event);
    }
    for sequence in 1..=2 {
        progress.checkpoints.push(json!({
            "id": clock::new_id(), "run_id": id, "sequence": sequence, "type": "step_completed",
            "created_at": clock::now_text(), "state": {"step": sequence, "input": index},
        }));
    }
    progress.audit.push(audit("run.finished", &id));
    progress.queue = Some(QueueTransition::Finish {
        status: QueueStatus::Completed,
        error: None,
    });
    if blocked {
        let continuation_id = clock::new_id();
        progress.run.continuation_id = Some(continuation_id.clone());
        progress.run.pending_human_request = Some(json!({"id": format!("req-{index}")}));
        continuations
            .put(&Continuation {
                id: continuation_id,
                run_id: id.clone(),
                workflow_name: Some("synthetic".into()),
                workflow_kind: Some("sequential".into()),
                current_step_index: Some(1),
                current_node_id: None,
                current_input: Some(format!("input {index}")),
                visited_steps: vec!["draft".into()],
                visited_nodes: vec![],
                messages: vec![],
                variables: Default::default(),
                pending_human_request_id: Some(format!("req-{index}")),
                pending_human_request: json!({"id": format!("req-{index}"), "timeout_seconds": 86400}),
                expires_at: Some(4_102_444_800.5),
                trace_events: vec![],
                metadata: Default::default(),
                created_at: clock::now_text(),
            })
            .await
            .expect("put continuation");
    }
    store.save_progress(&progress).await.expect("save progress");
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("blocking task")
}

async fn new_database() -> String {
    blocking(|| shared_cluster().create_database()).await
}

async fn psql(url: &str, sql: &str) -> String {
    let (url, sql) = (url.to_string(), sql.to_string());
    blocking(move || shared_cluster().psql(&url, &sql)).await
}

fn sqlite_stores(state_dir: &Path) -> (Arc<dyn Store>, Arc<dyn ContinuationStore>) {
    let store = SqliteStore::open(&state_dir.join("kneo_runs.sqlite")).expect("SQLite opens");
    let continuations = FileContinuationStore::new(&state_dir.join("continuations"));
    (Arc::new(store), Arc::new(continuations))
}

async fn postgres_stores(url: &str) -> (Arc<dyn Store>, Arc<dyn ContinuationStore>) {
    let store = PostgresStore::new(url, 16).expect("URL parses");
    store.ensure_ready().await.expect("migrates");
    let continuations = store.continuation_store();
    (Arc::new(store), Arc::new(continuations))
}

/// project_metadata has no trait method; its rows go in by SQL.
fn sqlite_metadata(state_dir: &Path) {
    let connection = rusqlite::Connection::open(state_dir.join("kneo_runs.sqlite")).expect("open");
    connection
        .execute(
            "INSERT INTO project_metadata (key, value, updated_at) VALUES ('policy:prod', '{\"enforce\":true}', ?1)",
            [clock::now_text()],
        )
        .expect("insert metadata");
}

// ---------------------------------------------------------------------------------------------
// Reading every table, independently of the backup code, for row-by-row comparison
// ---------------------------------------------------------------------------------------------

type Tables = BTreeMap<String, Vec<Vec<Value>>>;

fn normalize(kind: ColumnType, text: Option<String>) -> Value {
    match (kind, text) {
        (_, None) => Value::Null,
        (ColumnType::Timestamp, Some(text)) if text.is_empty() => Value::Null,
        (ColumnType::Timestamp, Some(text)) => {
            json!(clock::format(
                clock::parse(&text).expect("a stored timestamp parses")
            ))
        }
        (ColumnType::Json, Some(text)) => {
            serde_json::from_str(&text).expect("a stored document parses")
        }
        (_, Some(text)) => json!(text),
    }
}

fn sqlite_tables(state_dir: &Path) -> Tables {
    let connection = rusqlite::Connection::open(state_dir.join("kneo_runs.sqlite")).expect("open");
    let mut tables = Tables::new();
    for table in TABLES {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            table.name,
            table.key.join(", ")
        );
        let mut statement = connection.prepare(&sql).expect("prepare");
        let rows: Vec<Vec<Value>> = statement
            .query_map([], |row| {
                let mut values = Vec::new();
                for (index, column) in table.columns.iter().enumerate() {
                    let value = match column.kind {
                        ColumnType::Int => row
                            .get::<_, Option<i64>>(index)?
                            .map_or(Value::Null, |n| json!(n)),
                        kind => normalize(kind, row.get::<_, Option<String>>(index)?),
                    };
                    values.push(value);
                }
                Ok(values)
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        tables.insert(table.name.into(), comparable(table.name, rows));
    }
    let mut continuations: Vec<Vec<Value>> = std::fs::read_dir(state_dir.join("continuations"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .map(|e| {
                    vec![
                        serde_json::from_slice(&std::fs::read(e.path()).expect("read"))
                            .expect("json"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    continuations.sort_by_key(|row| row[0]["id"].as_str().unwrap_or_default().to_string());
    tables.insert("continuations".into(), continuations);
    tables
}

async fn postgres_tables(url: &str) -> Tables {
    let (client, connection) = kneo_server::postgres_client::PostgresTarget::from_url(url)
        .expect("the URL is usable")
        .connect()
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    let mut tables = Tables::new();
    for table in TABLES {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnType::Int => format!("\"{}\"", c.name),
                ColumnType::Timestamp => format!(
                    "to_char(\"{}\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
                    c.name
                ),
                _ => format!("\"{}\"::text", c.name),
            })
            .collect();
        let order: Vec<String> = table.key.iter().map(|k| format!("\"{k}\"")).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            table.name,
            order.join(", ")
        );
        let rows = client.query(&sql, &[]).await.expect("query");
        let rows: Vec<Vec<Value>> = rows
            .iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(index, column)| match column.kind {
                        ColumnType::Int => row
                            .get::<_, Option<i64>>(index)
                            .map_or(Value::Null, |n| json!(n)),
                        kind => normalize(kind, row.get::<_, Option<String>>(index)),
                    })
                    .collect()
            })
            .collect();
        tables.insert(table.name.into(), comparable(table.name, rows));
    }
    let rows = client
        .query("SELECT document::text FROM continuations ORDER BY id", &[])
        .await
        .expect("continuations");
    let continuations = rows
        .iter()
        .map(|row| vec![serde_json::from_str(row.get::<_, &str>(0)).expect("json")])
        .collect();
    tables.insert("continuations".into(), continuations);
    driver.abort();
    tables
}

/// The schema ledger is the target's own (applied when it was created): compare versions only.
fn comparable(table: &str, rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    if table == "schema_migrations" {
        rows.into_iter().map(|row| row[..2].to_vec()).collect()
    } else {
        rows
    }
}

fn assert_same_tables(expected: &Tables, actual: &Tables, what: &str) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "{what}: table sets"
    );
    for (table, rows) in expected {
        let other = &actual[table];
        assert_eq!(rows.len(), other.len(), "{what}: row count of {table}");
        for (index, (left, right)) in rows.iter().zip(other).enumerate() {
            assert_eq!(left, right, "{what}: {table} row {index} differs");
        }
    }
}

fn table_rows(tables: &Tables, table: &str) -> usize {
    tables[table].len()
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn post(url: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(url)
        .header("Authorization", format!("Bearer {key}"))
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, key: &str) -> (u16, Value) {
    let response = client()
        .get(url)
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs the approval spec on a server until it blocks; returns the continuation ids.
async fn block_approval_runs(server: &KneoServer, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..count {
        let (status, body) = post(
            &format!("{}/v1/runs", server.url),
            OPERATOR_KEY,
            &json!({"spec_path": "specs/approval.yaml", "input": format!("Q{index} numbers")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "blocked", "{body}");
        ids.push(
            body["continuation_id"]
                .as_str()
                .expect("continuation id")
                .to_string(),
        );
        let (status, body) = post(
            &format!("{}/v1/runs", server.url),
            OPERATOR_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": format!("hello {index}")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    ids
}

/// A restored server resumes a blocked run: reads the task, answers it, the run completes.
async fn resume_on(server: &KneoServer, continuation_id: &str) {
    let (status, task) = get(
        &format!("{}/v1/human-tasks/{continuation_id}", server.url),
        REVIEWER_KEY,
    )
    .await;
    assert_eq!(status, 200, "the restored task is readable: {task}");
    let request_id = task["request"]["id"]
        .as_str()
        .expect("request id")
        .to_string();
    let (status, body) = post(
        &format!("{}/v1/human-tasks/{continuation_id}/resume", server.url),
        REVIEWER_KEY,
        &json!({"request_id": request_id, "decision": "approved"}),
    )
    .await;
    assert_eq!(status, 200, "the restored run resumes: {body}");
    assert_eq!(body["status"], "completed", "{body}");
}

fn archive_in(directory: &Path, name: &str) -> PathBuf {
    directory.join(name)
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_round_trips_and_migrates_to_postgres_and_back() {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("tempdir");
    // A real server makes a few realistic runs, two of them blocked on approval.
    let mut server = KneoServer::start(ServerOptions::default());
    let blocked = block_approval_runs(&server, 2).await;
    server.stop();
    let state_dir = server.dir.join(".kneo");
    let (store, continuations) = sqlite_stores(&state_dir);
    populate(store.clone(), continuations, SEED_RUNS).await;
    drop(store);
    replicate_sqlite(&state_dir);
    sqlite_metadata(&state_dir);
    let source = sqlite_tables(&state_dir);
    assert!(table_rows(&source, "runs") >= RUNS);
    eprintln!("populated SQLite in {:?}", started.elapsed());

    let archive = archive_in(work.path(), "sqlite.tar.gz");
    let taken = Instant::now();
    let summary = backup::backup(
        &StoreLocation::sqlite(&state_dir),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup");
    eprintln!(
        "backup of SQLite: {:?}, {} bytes",
        taken.elapsed(),
        summary.bytes
    );
    assert_eq!(summary.manifest.source.kind, "sqlite");
    assert_eq!(
        summary.manifest.server_version.as_deref(),
        Some("0.0.9-test")
    );
    assert_eq!(
        summary.manifest.continuations.count as usize,
        table_rows(&source, "continuations")
    );
    assert!(
        summary.manifest.continuations.warnings.is_empty(),
        "{:?}",
        summary.manifest.continuations
    );

    // The restores below verify the archive in the pass that loads it.
    // SQLite → SQLite, row by row.
    let restored_dir = work.path().join("restored").join(".kneo");
    let restored = backup::restore(
        &archive,
        &StoreLocation::sqlite(&restored_dir),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore into an empty state directory");
    assert_eq!(
        restored.restored["runs"] as usize,
        table_rows(&source, "runs")
    );
    eprintln!("restore SQLite → SQLite: {:?}", restored.duration);
    let t = Instant::now();
    assert_same_tables(&source, &sqlite_tables(&restored_dir), "SQLite → SQLite");
    eprintln!("compare: {:?}", t.elapsed());
    let t = Instant::now();

    // SQLite → Postgres: the migration path.
    let url = new_database().await;
    backup::restore(
        &archive,
        &StoreLocation::postgres(&url),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore into Postgres");
    eprintln!("restore SQLite → Postgres: {:?}", t.elapsed());
    assert_same_tables(&source, &postgres_tables(&url).await, "SQLite → Postgres");

    // A real server on the restored state resumes a run that was blocked at backup time.
    kneo_testkit::fixtures::write_specs(&work.path().join("restored"));
    let resumed = KneoServer::start_in(&work.path().join("restored"), ServerOptions::default());
    resume_on(&resumed, &blocked[0]).await;
    eprintln!("SQLite round trip test: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_round_trips_and_a_restored_server_resumes() {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("tempdir");
    let url = new_database().await;
    let mut server = KneoServer::start(ServerOptions::default().postgres(&url));
    let blocked = block_approval_runs(&server, 2).await;
    server.stop();
    let (store, continuations) = postgres_stores(&url).await;
    populate(store, continuations, SEED_RUNS).await;
    replicate_postgres(&url).await;
    psql(&url, "INSERT INTO project_metadata (key, value, updated_at) VALUES ('policy:prod', '{\"enforce\":true}', now())").await;
    let source = postgres_tables(&url).await;
    assert!(table_rows(&source, "runs") >= RUNS);
    eprintln!("populated Postgres in {:?}", started.elapsed());

    let archive = archive_in(work.path(), "postgres.tar.gz");
    let taken = Instant::now();
    let summary = backup::backup(
        &StoreLocation::postgres(&url),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup");
    eprintln!(
        "backup of Postgres: {:?}, {} bytes",
        taken.elapsed(),
        summary.bytes
    );
    assert_eq!(summary.manifest.source.kind, "postgres");
    assert_eq!(
        summary.manifest.continuations.count as usize,
        table_rows(&source, "continuations")
    );
    let restored_url = new_database().await;
    let restored = backup::restore(
        &archive,
        &StoreLocation::postgres(&restored_url),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore into an empty database");
    eprintln!("restore Postgres → Postgres: {:?}", restored.duration);
    assert_same_tables(
        &source,
        &postgres_tables(&restored_url).await,
        "Postgres → Postgres",
    );
    // New rows after a restore do not collide with restored identities.
    let (restored_store, _) = postgres_stores(&restored_url).await;
    restored_store
        .record_audit(&[audit("after.restore", "run-x")])
        .await
        .expect("new audit event");

    let sqlite_dir = work.path().join("as-sqlite").join(".kneo");
    backup::restore(
        &archive,
        &StoreLocation::sqlite(&sqlite_dir),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore into SQLite");
    assert_same_tables(&source, &sqlite_tables(&sqlite_dir), "Postgres → SQLite");

    let resumed = KneoServer::start(ServerOptions::default().postgres(&restored_url));
    resume_on(&resumed, &blocked[1]).await;
    eprintln!("Postgres round trip test: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// A backup under load
// ---------------------------------------------------------------------------------------------

/// Async runs submitted while the backup is taken.
const LOAD_RUNS: usize = 200;
/// Every this many of them runs the approval spec, which blocks on its human step (writing a
/// continuation) once a worker has run its first step; the others run to completion.
const LOAD_APPROVAL_EVERY: usize = 4;

#[derive(Debug, Clone, Copy)]
enum StoreKind {
    Sqlite,
    Postgres,
}

/// The `total` of `GET /v1/runs`, optionally of one status.
async fn count_runs(server_url: &str, status: Option<&str>) -> i64 {
    let filter = status.map_or(String::new(), |status| format!("&status={status}"));
    let (code, listed) = get(
        &format!("{server_url}/v1/runs?limit=1{filter}"),
        OPERATOR_KEY,
    )
    .await;
    assert_eq!(code, 200, "{listed}");
    listed["total"].as_i64().expect("a total")
}

/// The position of `name` among the columns of `table` (as the `Tables` readers return them).
fn column(table: &str, name: &str) -> usize {
    TABLES
        .iter()
        .find(|spec| spec.name == table)
        .expect("a table of the format")
        .columns
        .iter()
        .position(|column| column.name == name)
        .expect("a column of the table")
}

/// Asserts that a restored store is one moment of its source: no row without its run, every run
/// with its queue record and exactly the trace its document counts (the run row and its trace
/// are written in one transaction, so a torn snapshot shows here), and blocked runs and
/// continuations one to one. Returns the blocked runs: run id → continuation id.
fn assert_one_moment(tables: &Tables, what: &str) -> BTreeMap<String, String> {
    let (id, status, document) = (
        column("runs", "id"),
        column("runs", "status"),
        column("runs", "document"),
    );
    let runs: BTreeMap<&str, &Vec<Value>> = tables["runs"]
        .iter()
        .map(|row| (row[id].as_str().expect("a run id"), row))
        .collect();
    let mut per_run: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for table in ["run_queue", "trace_events", "checkpoints"] {
        let at = column(table, "run_id");
        for row in &tables[table] {
            let run = row[at].as_str().expect("a run id");
            assert!(
                runs.contains_key(run),
                "{what}: a {table} row of run {run}, which is not in runs"
            );
            *per_run.entry(run).or_default().entry(table).or_default() += 1;
        }
    }
    for (run, row) in &runs {
        let counts = per_run.get(run).cloned().unwrap_or_default();
        assert_eq!(
            counts.get("run_queue").copied(),
            Some(1),
            "{what}: run {run} ({}) has no queue record",
            row[status]
        );
        assert_eq!(
            counts.get("trace_events").copied().unwrap_or(0),
            row[document]["trace_event_count"]
                .as_i64()
                .expect("trace_event_count"),
            "{what}: run {run} ({}) has another number of trace events than its document counts",
            row[status]
        );
    }
    let blocked: BTreeMap<String, String> = runs
        .iter()
        .filter(|(_, row)| row[status] == "blocked")
        .map(|(run, row)| {
            let continuation = row[document]["continuation_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: blocked run {run} names no continuation"));
            (run.to_string(), continuation.to_string())
        })
        .collect();
    let continuations: BTreeMap<String, String> = tables["continuations"]
        .iter()
        .map(|row| {
            let document = &row[0];
            (
                document["run_id"].as_str().expect("a run id").to_string(),
                document["id"].as_str().expect("an id").to_string(),
            )
        })
        .collect();
    assert_eq!(
        continuations.len(),
        tables["continuations"].len(),
        "{what}: two continuations of one run"
    );
    for (run, continuation) in &blocked {
        assert_eq!(
            continuations.get(run),
            Some(continuation),
            "{what}: blocked run {run} is blocked on {continuation}, which was not restored"
        );
    }
    for (run, continuation) in &continuations {
        assert_eq!(
            blocked.get(run),
            Some(continuation),
            "{what}: continuation {continuation} was restored but its run {run} is not blocked on it"
        );
    }
    blocked
}

/// Submits [`LOAD_RUNS`] async runs (a quarter of them blocking on approval) to a server, takes a
/// backup once some have been written and some have blocked, and checks that the archive is one
/// moment: it verifies, it restores into an empty store of the same kind with the manifest's
/// counts, nothing in it is torn, its blocked runs and continuations match one to one, and a
/// server on the restored store resumes one of them.
async fn a_backup_under_load_is_one_moment(kind: StoreKind) {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("tempdir");
    let (server, source) = match kind {
        StoreKind::Sqlite => {
            let server = KneoServer::start(ServerOptions::default());
            let state_dir = server.dir.join(".kneo");
            (server, StoreLocation::sqlite(state_dir))
        }
        StoreKind::Postgres => {
            let url = new_database().await;
            let server = KneoServer::start(ServerOptions::default().postgres(&url));
            (server, StoreLocation::postgres(url))
        }
    };
    let approvals = LOAD_RUNS.div_ceil(LOAD_APPROVAL_EVERY);
    let base = server.url.clone();
    let writers = tokio::spawn(async move {
        futures_util::stream::iter(0..LOAD_RUNS)
            .map(|index| {
                let base = base.clone();
                let spec = if index % LOAD_APPROVAL_EVERY == 0 {
                    "specs/approval.yaml"
                } else {
                    "specs/hello.yaml"
                };
                async move {
                    post(
                        &format!("{base}/v1/runs"),
                        OPERATOR_KEY,
                        &json!({"spec_path": spec, "input": format!("load {index}"), "async_mode": true}),
                    )
                    .await
                    .0
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<u16>>()
            .await
    });
    // Back up in the middle of the writes: once some runs exist and some have blocked, long
    // before all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_runs(&server.url, None).await < 20
        || count_runs(&server.url, Some("blocked")).await < 2
    {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: no runs blocked in 30 s; server log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let archive = archive_in(work.path(), "under-load.tar.gz");
    let taken = Instant::now();
    let summary = backup::backup(&source, &archive, &BackupOptions::default(), &no_progress)
        .await
        .expect("backup under load");
    let backup_took = taken.elapsed();
    let statuses = writers.await.expect("writers");
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    let manifest = &summary.manifest;
    let runs_in_archive = manifest
        .tables
        .iter()
        .find(|table| table.name == "runs")
        .expect("runs")
        .rows;
    let continuations_in_archive = manifest.continuations.count;
    // More runs block after the snapshot: the backup was taken while continuations were written.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_runs(&server.url, Some("blocked")).await <= continuations_in_archive as i64 {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: no run blocked after the snapshot in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
    eprintln!(
        "{kind:?}: {runs_in_archive} of {LOAD_RUNS} runs and {continuations_in_archive} of {approvals} continuations in the snapshot ({} left out as written after it); backup took {backup_took:?}",
        manifest.continuations.excluded.len()
    );
    assert!(
        runs_in_archive > 0 && runs_in_archive < LOAD_RUNS as u64,
        "{kind:?}: the backup ran while runs were written"
    );
    assert!(
        continuations_in_archive >= 2,
        "{kind:?}: the runs blocked before the backup have their continuations in it"
    );
    assert!(
        manifest.continuations.warnings.is_empty(),
        "{kind:?}: every blocked run of the snapshot has its continuation: {:?}",
        manifest.continuations
    );

    let report = backup::verify(&archive, &no_progress)
        .await
        .expect("verify");
    assert!(report.ok, "{kind:?}: {:?}", report.failures);
    assert!(
        report.warnings.is_empty(),
        "{kind:?}: relations intact: {:?}",
        report.warnings
    );

    let restored_root = work.path().join("restored");
    let target = match kind {
        StoreKind::Sqlite => StoreLocation::sqlite(restored_root.join(".kneo")),
        StoreKind::Postgres => StoreLocation::postgres(new_database().await),
    };
    let restored = backup::restore(&archive, &target, &RestoreOptions::default(), &no_progress)
        .await
        .expect("restore");
    for table in &manifest.tables {
        if table.name != "schema_migrations" {
            assert_eq!(
                restored.restored.get(&table.name).copied().unwrap_or(0),
                table.rows,
                "{kind:?}: {}",
                table.name
            );
        }
    }
    let tables = match &target {
        StoreLocation::Sqlite { state_dir } => sqlite_tables(state_dir),
        StoreLocation::Postgres { url } => postgres_tables(url).await,
    };
    for table in &manifest.tables {
        if table.name != "schema_migrations" {
            assert_eq!(
                table_rows(&tables, &table.name) as u64,
                table.rows,
                "{kind:?}: rows of {} in the restored store",
                table.name
            );
        }
    }
    let blocked = assert_one_moment(&tables, &format!("{kind:?} restored"));
    assert_eq!(blocked.len() as u64, continuations_in_archive);

    // The server's own path: a server on the restored store resumes a blocked run.
    let resumed = match &target {
        StoreLocation::Sqlite { .. } => {
            kneo_testkit::fixtures::write_specs(&restored_root);
            KneoServer::start_in(&restored_root, ServerOptions::default())
        }
        StoreLocation::Postgres { url } => {
            KneoServer::start(ServerOptions::default().postgres(url))
        }
    };
    let (_, continuation) = blocked.iter().next().expect("a blocked run");
    resume_on(&resumed, continuation).await;
    eprintln!("{kind:?} backup under load test: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_runs_are_written_is_consistent_on_sqlite() {
    a_backup_under_load_is_one_moment(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_runs_are_written_is_consistent_on_postgres() {
    a_backup_under_load_is_one_moment(StoreKind::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Damage and refusals
// ---------------------------------------------------------------------------------------------

/// A small populated state directory and its archive.
async fn small_archive(work: &Path) -> (PathBuf, PathBuf) {
    let state_dir = work.join("small").join(".kneo");
    let (store, continuations) = sqlite_stores(&state_dir);
    populate(store, continuations, 300).await;
    let archive = work.join("small.tar.gz");
    backup::backup(
        &StoreLocation::sqlite(&state_dir),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup");
    (state_dir, archive)
}

fn sidecar_of(archive: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sha256", archive.display()))
}

/// Verify must fail, naming the problem, and restore must refuse the archive and leave a fresh
/// state directory without a store. With no sidecar beside the archive, the report must say so:
/// the content checks alone found the problem.
async fn assert_rejected(archive: &Path, what: &str, expected: Option<&str>) -> String {
    let report = backup::verify(archive, &no_progress)
        .await
        .unwrap_or_else(|error| {
            panic!("{what}: verify gave no verdict on a readable file: {error}")
        });
    assert!(!report.ok, "{what}: verify passed a damaged archive");
    let described = report
        .failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(expected) = expected {
        assert!(
            described.contains(expected),
            "{what}: the failures do not name {expected:?}:\n{described}"
        );
    }
    if !sidecar_of(archive).exists() {
        assert!(
            report
                .warnings
                .iter()
                .any(|warning| warning.kind == FailureKind::NoSidecar),
            "{what}: without a sidecar the report says it was missing: {:?}",
            report.warnings
        );
    }
    let fresh = tempfile::tempdir().expect("tempdir");
    let state_dir = fresh.path().join(".kneo");
    match backup::restore(
        archive,
        &StoreLocation::sqlite(&state_dir),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    {
        Ok(_) => panic!("{what}: restore loaded a damaged archive"),
        Err(BackupError::ArchiveInvalid { .. } | BackupError::UnreadableArchive { .. }) => {}
        Err(other) => panic!("{what}: restore failed without refusing the archive: {other}"),
    }
    assert!(
        !state_dir.join("kneo_runs.sqlite").exists(),
        "{what}: the refused restore left a store behind"
    );
    if state_dir.exists() {
        let left: Vec<PathBuf> = snapshot_of(&state_dir).into_keys().collect();
        assert!(left.is_empty(), "{what}: the refused restore left {left:?}");
    }
    described
}

/// The content of a gzip file, if it inflates.
fn inflate(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut content = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut content)
        .ok()?;
    Some(content)
}

fn rewrite(source: &Path, destination: &Path, change: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    use std::io::Read;
    let file = std::fs::File::open(source).expect("open");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        entries.push((path, bytes));
    }
    change(&mut entries);
    let out = std::fs::File::create(destination).expect("create");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::default(),
    ));
    for (path, bytes) in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_damage_fails_verify_and_restore_refuses_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let (_, archive) = small_archive(work.path()).await;
    let original = std::fs::read(&archive).expect("read");
    let damaged = work.path().join("damaged.tar.gz");
    // Flipped bits across the compressed file: the gzip header, the body, every bit of the last
    // deflate byte, the trailer (CRC-32 and length).
    let length = original.len();
    let deflate = GZIP_HEADER.len()..length - 8;
    let mut flips: Vec<(usize, usize)> = (0..GZIP_HEADER.len())
        .map(|position| (position, position % 8))
        .collect();
    flips.extend((1..24).map(|i| (i * length / 24, i % 8)));
    flips.extend((0..8).map(|bit| (deflate.end - 1, bit)));
    flips.extend([(length - 8, 0), (length - 5, 3), (length - 1, 7)]);
    let content = inflate(&original).expect("the archive inflates");
    // Each flip with the sidecar beside the archive, then without it, when the content checks
    // alone must catch it.
    let mut padding_bits = 0;
    for with_sidecar in [true, false] {
        if with_sidecar {
            std::fs::copy(sidecar_of(&archive), sidecar_of(&damaged)).expect("sidecar");
        } else {
            std::fs::remove_file(sidecar_of(&damaged)).expect("remove sidecar");
        }
        for (position, bit) in &flips {
            let mut bytes = original.clone();
            bytes[*position] ^= 1 << bit;
            std::fs::write(&damaged, &bytes).expect("write");
            let what = format!(
                "bit {bit} of byte {position} of {length}, {} the sidecar",
                if with_sidecar { "with" } else { "without" }
            );
            if !with_sidecar
                && deflate.contains(position)
                && inflate(&bytes).as_ref() == Some(&content)
            {
                // A padding bit after the deflate end-of-block code: no byte of the content
                // changed, so only the whole-file checksum (the sidecar, above) can see it.
                let report = backup::verify(&damaged, &no_progress)
                    .await
                    .expect("verify");
                assert!(report.ok, "{what}: {:?}", report.failures);
                padding_bits += 1;
                continue;
            }
            assert_rejected(&damaged, &what, None).await;
        }
    }
    eprintln!(
        "{} flips, {padding_bits} of them in deflate padding (caught by the sidecar only)",
        flips.len()
    );
    // A flipped gzip magic byte: not an archive at all, and said so.
    let mut bytes = original.clone();
    bytes[1] ^= 0x01;
    std::fs::write(&damaged, &bytes).expect("write");
    assert_rejected(&damaged, "a flipped magic byte", Some("not_an_archive")).await;
    // A bit flipped inside a table file and the archive re-compressed: the table is named.
    rewrite(&archive, &damaged, |entries| {
        let (_, bytes) = entries
            .iter_mut()
            .find(|(path, _)| path == "tables/runs.jsonl")
            .expect("runs");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x02;
    });
    assert_rejected(&damaged, "a table bit", Some("tables/runs.jsonl")).await;
    // Inside the manifest: its self-checksum fails.
    rewrite(&archive, &damaged, |entries| {
        let (_, bytes) = entries
            .iter_mut()
            .find(|(path, _)| path == "manifest.json")
            .expect("manifest");
        let at = bytes.iter().position(|b| *b == b'"').expect("a quote") + 3;
        bytes[at] ^= 0x01;
    });
    assert_rejected(&damaged, "a manifest bit", Some("manifest_checksum")).await;
    // Truncated: inside the data, inside the trailer, down to nothing.
    for (keep, expected) in [
        (length / 2, None),
        (length - 20, None),
        (length - 1, None),
        (5, Some("not_an_archive")),
        (1, Some("not_an_archive")),
        (0, Some("not_an_archive: the file is empty")),
    ] {
        std::fs::write(&damaged, &original[..keep]).expect("write");
        assert_rejected(&damaged, &format!("truncated to {keep} bytes"), expected).await;
    }
    // A file added, a file deleted.
    rewrite(&archive, &damaged, |entries| {
        entries.insert(1, ("notes.txt".into(), b"hello".to_vec()))
    });
    assert_rejected(&damaged, "an added file", Some("extra_file: notes.txt")).await;
    rewrite(&archive, &damaged, |entries| {
        entries.retain(|(path, _)| !path.starts_with("continuations/"));
    });
    assert_rejected(
        &damaged,
        "a deleted continuation",
        Some("missing_file: continuations/"),
    )
    .await;
    rewrite(&archive, &damaged, |entries| {
        entries.retain(|(path, _)| path != "tables/checkpoints.jsonl")
    });
    assert_rejected(
        &damaged,
        "a deleted table",
        Some("missing_file: tables/checkpoints.jsonl"),
    )
    .await;
    // Restore refuses a damaged archive and leaves the target alone.
    let target = work.path().join("target").join(".kneo");
    let error = backup::restore(
        &damaged,
        &StoreLocation::sqlite(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect_err("restore refuses");
    assert!(
        matches!(error, BackupError::ArchiveInvalid { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("tables/checkpoints.jsonl"),
        "{error}"
    );
    assert!(!target.join("kneo_runs.sqlite").exists());
    // An archive of a newer schema is refused by name.
    rewrite(&archive, &damaged, |entries| {
        let (_, bytes) = entries
            .iter_mut()
            .find(|(path, _)| path == "manifest.json")
            .expect("manifest");
        let mut manifest: backup::Manifest = serde_json::from_slice(bytes).expect("parses");
        manifest.schema_version = 99;
        *bytes = manifest.to_bytes();
    });
    let error = backup::restore(
        &damaged,
        &StoreLocation::sqlite(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect_err("newer schema refused");
    assert!(
        matches!(error, BackupError::SchemaTooNew { found: 99, .. }),
        "{error}"
    );
    // Not an archive at all.
    std::fs::write(&damaged, b"PK\x03\x04 this is a zip").expect("write");
    assert_rejected(
        &damaged,
        "a zip file",
        Some("not_an_archive: it does not start with the gzip magic bytes 1f 8b (found 504b)"),
    )
    .await;
}

/// Everything in a state directory, for before/after comparison.
fn snapshot_of(directory: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).expect("list") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != "kneo.lock" {
                files.insert(entry.path(), std::fs::read(entry.path()).expect("read"));
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_non_empty_or_live_target_and_changes_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    let (state_dir, archive) = small_archive(work.path()).await;
    // A non-empty SQLite target without force.
    let before = snapshot_of(&state_dir);
    let error = backup::restore(
        &archive,
        &StoreLocation::sqlite(&state_dir),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(error, BackupError::TargetNotEmpty { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--force"), "{error}");
    assert_eq!(before, snapshot_of(&state_dir), "the target changed");
    // While a service holds the state lock, even with force.
    let lock = StateLock::acquire(&state_dir).expect("lock");
    let forced = RestoreOptions {
        force: true,
        safety_dir: Some(work.path().to_path_buf()),
    };
    let error = backup::restore(
        &archive,
        &StoreLocation::sqlite(&state_dir),
        &forced,
        &no_progress,
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(error, BackupError::ServiceRunning { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("stop the service"), "{error}");
    assert_eq!(before, snapshot_of(&state_dir), "the target changed");
    drop(lock);
    // A non-empty Postgres target without force.
    let url = new_database().await;
    backup::restore(
        &archive,
        &StoreLocation::postgres(&url),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore into an empty database");
    let before = postgres_tables(&url).await;
    let error = backup::restore(
        &archive,
        &StoreLocation::postgres(&url),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect_err("refused");
    assert!(error.to_string().contains("--force"), "{error}");
    assert_same_tables(
        &before,
        &postgres_tables(&url).await,
        "refused Postgres target",
    );
    // With force: a safety backup first, then the restore.
    let (store, continuations) = sqlite_stores(&state_dir);
    write_run(&*store, &*continuations, 7).await;
    drop(store);
    let report = backup::restore(
        &archive,
        &StoreLocation::sqlite(&state_dir),
        &forced,
        &no_progress,
    )
    .await
    .expect("forced restore");
    let safety = report.safety_backup.expect("a safety backup");
    let checked = backup::verify(&safety, &no_progress)
        .await
        .expect("verify the safety backup");
    assert!(checked.ok, "{:?}", checked.failures);
    let safety_runs = checked
        .manifest
        .expect("manifest")
        .tables
        .iter()
        .find(|t| t.name == "runs")
        .expect("runs")
        .rows;
    assert_eq!(
        safety_runs,
        report.restored["runs"] + 1,
        "the safety backup holds the extra run"
    );
    assert!(!state_dir.join("kneo_runs.sqlite.pre-restore").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_verification_restores_into_scratch_stores_and_archives_are_deterministic() {
    let work = tempfile::tempdir().expect("tempdir");
    let (state_dir, archive) = small_archive(work.path()).await;
    let summary_sha =
        std::fs::read_to_string(format!("{}.sha256", archive.display())).expect("sidecar");
    // Deep verification into a temporary SQLite store, then into a scratch Postgres schema.
    let deep = backup::verify_deep(&archive, ScratchTarget::TemporarySqlite, &no_progress)
        .await
        .expect("deep verify");
    assert!(deep.ok, "{:?}", deep.checks);
    assert!(
        deep.checks
            .iter()
            .any(|check| check.name == "list_continuations"),
        "{:?}",
        deep.checks
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(&deep.record).expect("record written"))
            .expect("record parses");
    assert_eq!(record["ok"], true);
    assert!(summary_sha.starts_with(record["archive_sha256"].as_str().expect("sha")));
    let scratch_url = new_database().await;
    let deep = backup::verify_deep(
        &archive,
        ScratchTarget::Postgres {
            url: scratch_url.clone(),
        },
        &no_progress,
    )
    .await
    .expect("deep verify on Postgres");
    assert!(deep.ok, "{:?}", deep.checks);
    assert_eq!(
        psql(
            &scratch_url,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'kneo_verify_%'"
        )
        .await,
        "0"
    );
    // Two backups of the same data differ only in created_at (and so in the manifest checksum),
    // on both stores.
    let blank = |manifest: &backup::Manifest| {
        let mut manifest = manifest.clone();
        manifest.created_at.clear();
        manifest.manifest_sha256.clear();
        manifest
    };
    let take = |location: StoreLocation, name: &'static str| {
        let path = work.path().join(name);
        async move {
            backup::backup(&location, &path, &BackupOptions::default(), &no_progress)
                .await
                .expect("backup")
                .manifest
        }
    };
    let first = take(StoreLocation::sqlite(&state_dir), "first.tar.gz").await;
    let second = take(StoreLocation::sqlite(&state_dir), "second.tar.gz").await;
    assert_eq!(blank(&first), blank(&second));
    let url = new_database().await;
    backup::restore(
        &archive,
        &StoreLocation::postgres(&url),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore into Postgres");
    let first = take(StoreLocation::postgres(&url), "pg-first.tar.gz").await;
    let second = take(StoreLocation::postgres(&url), "pg-second.tar.gz").await;
    assert_eq!(blank(&first), blank(&second));
}
