//! Import of the recorded kneo-serv stores into kneo-server, on both of kneo-server's stores:
//! every run, trace event, checkpoint, audit event and human task is there with the same ids; a
//! real kneo server then resumes the blocked runs to completion and executes the queued run
//! exactly once; what cannot be carried is listed; a dry run writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kneo_server::backup::{
    self, BackupOptions, ImportOptions, ImportReport, StoreLocation, no_progress,
};
use kneo_server::store::continuation_files::FileContinuationStore;
use kneo_server::store::postgres::PostgresStore;
use kneo_server::store::sqlite::SqliteStore;
use kneo_server::store::{
    AuditQuery, CheckpointQuery, ContinuationStore, PageQuery, RunQuery, RunSort, SortOrder, Store,
    TraceQuery,
};
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions};
use serde_json::{Value, json};

use crate::fixtures::{new_database, postgres_store, scenario, sqlite_store};

/// What a kneo-serv store holds, read from it directly with its own SQL.
#[derive(Debug, Default, PartialEq)]
struct Ids {
    /// run id → status
    runs: BTreeMap<String, String>,
    /// run id → trace event ids, in order
    trace: BTreeMap<String, Vec<String>>,
    /// run id → checkpoint ids, in sequence order
    checkpoints: BTreeMap<String, Vec<String>>,
    audit: BTreeSet<String>,
    continuations: BTreeSet<String>,
}

/// Rows of `sql` as text, from the kneo-serv store.
async fn kneo_serv_rows(source: &StoreLocation, sql: &str) -> Vec<Vec<String>> {
    match source {
        StoreLocation::Sqlite { state_dir } => {
            let connection = rusqlite::Connection::open(state_dir.join("kneo_runs.sqlite"))
                .expect("open the kneo-serv store");
            let mut statement = connection.prepare(sql).expect("prepare");
            let width = statement.column_count();
            statement
                .query_map([], |row| {
                    (0..width)
                        .map(|index| row.get::<_, String>(index))
                        .collect::<Result<Vec<_>, _>>()
                })
                .expect("query")
                .collect::<Result<Vec<_>, _>>()
                .expect("rows")
        }
        StoreLocation::Postgres { url } => {
            let (client, connection) = kneo_server::postgres_client::PostgresTarget::from_url(url)
                .expect("the URL is usable")
                .connect()
                .await
                .expect("connect");
            let driver = tokio::spawn(connection);
            let rows = client.query(sql, &[]).await.expect("query");
            driver.abort();
            rows.iter()
                .map(|row| (0..row.len()).map(|index| row.get(index)).collect())
                .collect()
        }
    }
}

async fn kneo_serv_ids(source: &StoreLocation) -> Ids {
    let mut ids = Ids::default();
    for row in kneo_serv_rows(source, "SELECT id, status, payload FROM runs").await {
        let payload: Value = serde_json::from_str(&row[2]).expect("a run payload");
        let events = payload["trace_events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|event| event["event_id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.trace.insert(row[0].clone(), events);
        ids.runs.insert(row[0].clone(), row[1].clone());
    }
    for row in kneo_serv_rows(
        source,
        "SELECT run_id, id FROM checkpoints ORDER BY run_id, sequence",
    )
    .await
    {
        ids.checkpoints
            .entry(row[0].clone())
            .or_default()
            .push(row[1].clone());
    }
    for row in kneo_serv_rows(source, "SELECT id FROM audit_events").await {
        ids.audit.insert(row[0].clone());
    }
    match source {
        StoreLocation::Sqlite { state_dir } => {
            for entry in std::fs::read_dir(state_dir.join("continuations")).expect("continuations")
            {
                let name = entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                ids.continuations
                    .insert(name.trim_end_matches(".json").to_string());
            }
        }
        StoreLocation::Postgres { .. } => {
            for row in kneo_serv_rows(source, "SELECT id FROM continuations").await {
                ids.continuations.insert(row[0].clone());
            }
        }
    }
    ids
}

async fn kneo_stores(target: &StoreLocation) -> (Arc<dyn Store>, Arc<dyn ContinuationStore>) {
    match target {
        StoreLocation::Sqlite { state_dir } => (
            Arc::new(SqliteStore::open(&state_dir.join("kneo_runs.sqlite")).expect("open")),
            Arc::new(FileContinuationStore::new(&state_dir.join("continuations"))),
        ),
        StoreLocation::Postgres { url } => {
            let store = PostgresStore::new(url, 2).expect("url");
            store.ensure_ready().await.expect("ready");
            let continuations = store.continuation_store();
            (Arc::new(store), Arc::new(continuations))
        }
    }
}

fn everything(order: SortOrder) -> PageQuery {
    PageQuery {
        limit: 1000,
        order,
        ..PageQuery::default()
    }
}

/// The same ids, read through kneo-server's own store queries.
async fn kneo_ids(target: &StoreLocation) -> Ids {
    let (store, continuations) = kneo_stores(target).await;
    let mut ids = Ids::default();
    let runs = store
        .list_runs(&RunQuery {
            page: everything(SortOrder::Desc),
            status: None,
            sort: RunSort::CreatedAt,
            filter: Default::default(),
        })
        .await
        .expect("list runs");
    for run in runs.items {
        let trace = store
            .list_trace(
                &run.id,
                &TraceQuery {
                    page: everything(SortOrder::Asc),
                    event_type: None,
                },
            )
            .await
            .expect("trace");
        ids.trace.insert(
            run.id.clone(),
            trace
                .items
                .iter()
                .map(|event| event["event_id"].as_str().unwrap_or_default().to_string())
                .collect(),
        );
        let checkpoints = store
            .list_checkpoints(
                &run.id,
                &CheckpointQuery {
                    page: everything(SortOrder::Asc),
                    checkpoint_type: None,
                },
            )
            .await
            .expect("checkpoints");
        if !checkpoints.items.is_empty() {
            ids.checkpoints.insert(
                run.id.clone(),
                checkpoints
                    .items
                    .iter()
                    .map(|checkpoint| checkpoint["id"].as_str().unwrap_or_default().to_string())
                    .collect(),
            );
        }
        ids.runs
            .insert(run.id.clone(), run.status.as_str().to_string());
    }
    let audit = store
        .list_audit(&AuditQuery {
            page: everything(SortOrder::Desc),
            event_type: None,
            run_id: None,
            mentions: None,
        })
        .await
        .expect("audit");
    ids.audit = audit.items.into_iter().map(|event| event.id).collect();
    let listing = continuations.list().await.expect("continuations");
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    ids.continuations = listing
        .continuations
        .into_iter()
        .map(|continuation| continuation.id)
        .collect();
    ids
}

async fn import(archive: &Path, target: &StoreLocation, options: ImportOptions) -> ImportReport {
    backup::import(archive, target, &options, &no_progress)
        .await
        .unwrap_or_else(|error| panic!("import into {}: {error}", target.describe()))
}

async fn call(
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, &url)
        .header("Authorization", format!("Bearer {key}"))
        .timeout(Duration::from_secs(60));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{url}: {error}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Resumes a blocked run's task on the server and waits for the run to end; its final run.
async fn resume(server: &KneoServer, continuation_id: &str) -> Value {
    let (status, task) = call(
        reqwest::Method::GET,
        format!("{}/v1/human-tasks/{continuation_id}", server.url),
        REVIEWER_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "the imported task is listed: {task}");
    let request_id = task["request"]["id"]
        .as_str()
        .or_else(|| task["pending_human_request_id"].as_str())
        .unwrap_or_else(|| panic!("the task names its request: {task}"))
        .to_string();
    let run_id = task["run_id"].as_str().expect("the task's run").to_string();
    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{}/v1/human-tasks/{continuation_id}/resume", server.url),
        REVIEWER_KEY,
        Some(json!({"request_id": request_id, "decision": "approved"})),
    )
    .await;
    assert_eq!(
        status,
        200,
        "resume of {continuation_id}: {answer}\n{}",
        server.log()
    );
    wait_for_status(server, &run_id, "completed").await
}

async fn wait_for_status(server: &KneoServer, run_id: &str, wanted: &str) -> Value {
    // A bound only so that a broken import fails instead of hanging (runs take milliseconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, run) = call(
            reqwest::Method::GET,
            format!("{}/v1/runs/{run_id}", server.url),
            OPERATOR_KEY,
            None,
        )
        .await;
        if run["status"] == wanted {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} did not become {wanted}: {run}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Backs the kneo-serv store up, imports the archive into `target` and checks everything the
/// acceptance asks for; `kind` is the fixture's (`sqlite` or `postgres`).
async fn moves_into_kneo_server(
    source: StoreLocation,
    kind: &str,
    work: &Path,
    target_url: Option<String>,
) {
    let archive = work.join("kneo-serv.tar.gz");
    backup::backup(&source, &archive, &BackupOptions::default(), &no_progress)
        .await
        .expect("backup of the kneo-serv store");
    let expected = kneo_serv_ids(&source).await;
    let server_dir = work.join("kneo-server");
    let target = match &target_url {
        Some(url) => StoreLocation::postgres(url),
        None => StoreLocation::sqlite(server_dir.join(".kneo")),
    };

    let dry = import(
        &archive,
        &target,
        ImportOptions {
            dry_run: true,
            ..ImportOptions::default()
        },
    )
    .await;
    assert!(dry.dry_run && dry.restored.is_none());
    assert_eq!(dry.plan.carried.get("runs"), Some(&8), "{:#?}", dry.plan);
    assert_eq!(dry.plan.continuations, 2);
    match &target {
        StoreLocation::Sqlite { state_dir } => {
            assert!(
                !state_dir.join("kneo_runs.sqlite").exists(),
                "a dry run wrote the store"
            )
        }
        StoreLocation::Postgres { url } => {
            let (store, _) = kneo_stores(&StoreLocation::postgres(url)).await;
            let runs = store
                .list_runs(&RunQuery {
                    page: everything(SortOrder::Desc),
                    status: None,
                    sort: RunSort::CreatedAt,
                    filter: Default::default(),
                })
                .await
                .expect("list");
            assert_eq!(runs.total, 0, "a dry run wrote runs");
        }
    }

    let report = import(&archive, &target, ImportOptions::default()).await;
    let restored = report.restored.as_ref().expect("restored");
    assert_eq!(restored.restored.get("runs"), Some(&8));
    // The fixture holds only records kneo-server has a place for.
    assert!(
        report.plan.not_carried.is_empty(),
        "{:#?}",
        report.plan.not_carried
    );
    let mut found = kneo_ids(&target).await;
    // kneo-server lists runs with no checkpoints without an entry; so does the fixture's SQL.
    found.checkpoints.retain(|_, ids| !ids.is_empty());
    assert_eq!(
        found, expected,
        "the imported store has other ids than kneo-serv's"
    );

    let ids = scenario(kind);
    std::fs::create_dir_all(&server_dir).expect("server dir");
    let mut options = ServerOptions::default();
    if let Some(url) = &target_url {
        options = options.postgres(url);
    }
    let mut server = KneoServer::start_in(&server_dir, options);
    let approved = resume(
        &server,
        ids["blocked"]["continuation_id"].as_str().expect("id"),
    )
    .await;
    assert_eq!(approved["run_id"], ids["blocked"]["run_id"]);
    assert_eq!(
        approved["output_text"], "Published: Draft report for: Q3 numbers",
        "{approved}"
    );
    let agents = resume(
        &server,
        ids["blocked_agents"]["continuation_id"]
            .as_str()
            .expect("id"),
    )
    .await;
    assert_eq!(agents["run_id"], ids["blocked_agents"]["run_id"]);
    let queued = ids["queued"].as_str().expect("queued run");
    let done = wait_for_status(&server, queued, "completed").await;
    assert_eq!(
        done["output_text"], "Final answer: queued for kneo-server",
        "{done}"
    );
    server.stop();

    // Executed exactly once: one claim, one start and one end in its trace.
    let (store, continuations) = kneo_stores(&target).await;
    let entry = store
        .queue_entry(queued)
        .await
        .expect("queue entry")
        .expect("the queued run kept its queue record");
    assert_eq!(
        (entry.status.as_str(), entry.attempts),
        ("completed", 1),
        "{entry:?}"
    );
    let trace = store
        .list_trace(
            queued,
            &TraceQuery {
                page: everything(SortOrder::Asc),
                event_type: None,
            },
        )
        .await
        .expect("trace");
    let types: Vec<&str> = trace
        .items
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|kind| **kind == "run_completed")
            .count(),
        1,
        "{types:?}"
    );
    let left = continuations.list().await.expect("list");
    assert!(left.continuations.is_empty(), "both tasks were resumed");
}

#[tokio::test]
async fn a_sqlite_kneo_serv_store_moves_into_kneo_server_on_sqlite() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = sqlite_store(work.path());
    moves_into_kneo_server(
        StoreLocation::sqlite(&state_dir),
        "sqlite",
        work.path(),
        None,
    )
    .await;
}

#[tokio::test]
async fn a_sqlite_kneo_serv_store_moves_into_kneo_server_on_postgres() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = sqlite_store(work.path());
    let target = new_database().await;
    moves_into_kneo_server(
        StoreLocation::sqlite(&state_dir),
        "sqlite",
        work.path(),
        Some(target),
    )
    .await;
}

#[tokio::test]
async fn a_postgres_kneo_serv_store_moves_into_kneo_server_on_postgres() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = postgres_store().await;
    let target = new_database().await;
    moves_into_kneo_server(
        StoreLocation::postgres(&source),
        "postgres",
        work.path(),
        Some(target),
    )
    .await;
}

#[tokio::test]
async fn a_postgres_kneo_serv_store_moves_into_kneo_server_on_sqlite() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = postgres_store().await;
    moves_into_kneo_server(
        StoreLocation::postgres(&source),
        "postgres",
        work.path(),
        None,
    )
    .await;
}

#[tokio::test]
async fn what_kneo_server_cannot_hold_is_listed_and_the_rest_is_carried() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = sqlite_store(work.path());
    let ids = scenario("sqlite");
    let completed = ids["completed"].as_str().expect("id");
    let connection = rusqlite::Connection::open(state_dir.join("kneo_runs.sqlite")).expect("open");
    connection
        .execute_batch(&format!(
            "INSERT INTO locks VALUES ('continuation:x', 'worker-1', 4102444800.5, 1.0, 1.0);
             UPDATE runs SET payload = json_set(payload, '$.future_field', 'x') WHERE id = '{completed}';
             INSERT INTO checkpoints VALUES ('orphan-cp', 'no-such-run', 1, 'manual', '2026-12-03T11:58:37+00:00', '{{\"id\": \"orphan-cp\"}}');
             UPDATE audit_events SET actor = NULL, payload = json_set(payload, '$.actor', json('null'))
               WHERE event_type = 'run.cancelled';"
        ))
        .expect("oddities");
    drop(connection);
    let archive = work.path().join("odd.tar.gz");
    backup::backup(
        &StoreLocation::sqlite(&state_dir),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup");
    let target = StoreLocation::sqlite(work.path().join("kneo-server/.kneo"));
    let report = import(&archive, &target, ImportOptions::default()).await;
    let listed: Vec<(&str, &str)> = report
        .plan
        .not_carried
        .iter()
        .map(|item| (item.kind.as_str(), item.id.as_str()))
        .collect();
    assert!(listed.contains(&("lock", "continuation:x")), "{listed:?}");
    assert!(listed.contains(&("checkpoint", "orphan-cp")), "{listed:?}");
    assert!(
        listed.contains(&("field", "runs.future_field")),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 3, "{:#?}", report.plan.not_carried);
    assert!(
        report
            .plan
            .notes
            .iter()
            .any(|note| note.contains("actor `system`")),
        "{:#?}",
        report.plan.notes
    );
    // Every run is still carried, the one with the unknown field too.
    assert_eq!(report.plan.carried.get("runs"), Some(&8));
    let (store, _) = kneo_stores(&target).await;
    assert!(store.get_run(completed).await.expect("get").is_some());
}

#[tokio::test]
async fn a_kneo_server_archive_is_not_imported() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = work.path().join(".kneo");
    drop(SqliteStore::open(&state_dir.join("kneo_runs.sqlite")).expect("a kneo store"));
    let archive = work.path().join("kneo.tar.gz");
    backup::backup(
        &StoreLocation::sqlite(&state_dir),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup");
    let error = backup::import(
        &archive,
        &StoreLocation::sqlite(work.path().join("target")),
        &ImportOptions::default(),
        &no_progress,
    )
    .await
    .expect_err("not a kneo-serv archive");
    assert!(error.to_string().contains("kneo-ops restore"), "{error}");
}
