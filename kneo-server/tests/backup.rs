//! Backup, verify and restore end to end, on real SQLite files, a real Postgres cluster and real
//! servers: round trips on both stores compared row by row, migrations between the stores, a
//! backup taken under load, damaged archives, and the refusals of restore.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kneo_server::backup::format::{ColumnType, TABLES};
use kneo_server::backup::{
    self, BackupError, BackupOptions, RestoreOptions, ScratchTarget, StoreLocation, no_progress,
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
        .create_run(&run, Some(QueueEntry::Queued), &[audit("run.created", &id)])
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
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_runs_are_written_is_consistent() {
    let work = tempfile::tempdir().expect("tempdir");
    let server = KneoServer::start(ServerOptions::default());
    let state_dir = server.dir.join(".kneo");
    let base = server.url.clone();
    let writers = tokio::spawn(async move {
        futures_util::stream::iter(0..200)
            .map(|index| {
                let base = base.clone();
                async move {
                    post(
                        &format!("{base}/v1/runs"),
                        OPERATOR_KEY,
                        &json!({"spec_path": "specs/hello.yaml", "input": format!("load {index}"), "async_mode": true}),
                    )
                    .await
                    .0
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<u16>>()
            .await
    });
    // Back up in the middle of the writes: once some runs exist, long before all of them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = get(&format!("{}/v1/runs?limit=1", server.url), OPERATOR_KEY).await;
        if listed["total"].as_i64().unwrap_or(0) >= 20 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let archive = archive_in(work.path(), "under-load.tar.gz");
    let summary = backup::backup(
        &StoreLocation::sqlite(&state_dir),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup under load");
    let statuses = writers.await.expect("writers");
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    let runs_in_archive = summary
        .manifest
        .tables
        .iter()
        .find(|t| t.name == "runs")
        .expect("runs")
        .rows;
    eprintln!("{runs_in_archive} of 200 runs were in the snapshot");
    assert!(
        runs_in_archive > 0 && runs_in_archive < 200,
        "the backup ran while runs were written"
    );

    let report = backup::verify(&archive, &no_progress)
        .await
        .expect("verify");
    assert!(report.ok, "{:?}", report.failures);
    assert!(
        report.warnings.is_empty(),
        "relations intact: {:?}",
        report.warnings
    );

    let restored_dir = work.path().join("restored").join(".kneo");
    let restored = backup::restore(
        &archive,
        &StoreLocation::sqlite(&restored_dir),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore");
    for table in &summary.manifest.tables {
        if table.name != "schema_migrations" {
            assert_eq!(
                restored.restored.get(&table.name).copied().unwrap_or(0),
                table.rows,
                "{}",
                table.name
            );
        }
    }
    let connection =
        rusqlite::Connection::open(restored_dir.join("kneo_runs.sqlite")).expect("open");
    for (what, sql) in [
        (
            "trace events without their run",
            "SELECT COUNT(*) FROM trace_events WHERE run_id NOT IN (SELECT id FROM runs)",
        ),
        (
            "checkpoints without their run",
            "SELECT COUNT(*) FROM checkpoints WHERE run_id NOT IN (SELECT id FROM runs)",
        ),
        (
            "queue records without their run",
            "SELECT COUNT(*) FROM run_queue WHERE run_id NOT IN (SELECT id FROM runs)",
        ),
        (
            "runs without their queue record",
            "SELECT COUNT(*) FROM runs WHERE id NOT IN (SELECT run_id FROM run_queue)",
        ),
    ] {
        let count: i64 = connection
            .query_row(sql, [], |row| row.get(0))
            .expect("query");
        assert_eq!(count, 0, "{what}: {:?}", summary.manifest.tables);
    }
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

/// Verify must fail (or find the file unreadable) and restore must refuse.
async fn assert_rejected(archive: &Path, what: &str, expected: Option<&str>) -> String {
    let described = match backup::verify(archive, &no_progress).await {
        Ok(report) => {
            assert!(!report.ok, "{what}: verify passed a damaged archive");
            report
                .failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(error @ BackupError::UnreadableArchive { .. }) => error.to_string(),
        Err(other) => panic!("{what}: unexpected error {other}"),
    };
    if let Some(expected) = expected {
        assert!(
            described.contains(expected),
            "{what}: the failures do not name {expected:?}:\n{described}"
        );
    }
    described
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
    let sidecar = |path: &Path| PathBuf::from(format!("{}.sha256", path.display()));
    // Flipped bits across the compressed file: header, body, the last deflate byte, trailer.
    let length = original.len();
    let mut positions: Vec<usize> = (0..10).collect();
    positions.extend((1..24).map(|i| i * length / 24));
    positions.extend([length - 9, length - 8, length - 5, length - 1]);
    std::fs::copy(sidecar(&archive), sidecar(&damaged)).expect("sidecar");
    for (round, position) in positions.iter().enumerate() {
        let mut bytes = original.clone();
        bytes[*position] ^= 1 << (round % 8);
        std::fs::write(&damaged, &bytes).expect("write");
        assert_rejected(
            &damaged,
            &format!("bit {} of byte {position}", round % 8),
            None,
        )
        .await;
    }
    // Without the sidecar, content checks alone still catch a flip inside the data.
    std::fs::remove_file(sidecar(&damaged)).expect("remove sidecar");
    for position in [length / 3, length / 2, 2 * length / 3] {
        let mut bytes = original.clone();
        bytes[position] ^= 0x10;
        std::fs::write(&damaged, &bytes).expect("write");
        assert_rejected(&damaged, &format!("byte {position} without sidecar"), None).await;
    }
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
    // Truncated.
    for keep in [length / 2, length - 20, 5] {
        std::fs::write(&damaged, &original[..keep]).expect("write");
        assert_rejected(&damaged, &format!("truncated to {keep} bytes"), None).await;
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
    assert!(matches!(
        backup::verify(&damaged, &no_progress).await,
        Err(BackupError::UnreadableArchive { .. })
    ));
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
