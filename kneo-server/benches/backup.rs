//! Backup speed against `pg_dump -Fc`, on the same Postgres database of 100,000 runs.
//!
//! `cargo bench -p kneo-server --bench backup` (release build). Populates a fresh database of the
//! throwaway test cluster: 1,000 runs written through the store traits (realistic documents),
//! replicated by SQL to `KNEO_BENCH_RUNS` runs (default 100,000) with their queue records, trace
//! events, checkpoints and audit events; then times our backup and `pg_dump -Fc` of the same
//! database, each `KNEO_BENCH_ROUNDS` times (default 3), and prints the best of each, plus the
//! speed of `verify` on our archive. `KNEO_BENCH_LEVEL` and `KNEO_BENCH_SESSIONS` set our gzip
//! level and Postgres sessions (default: the backup defaults); `KNEO_BENCH_KEEP=FILE` keeps a copy
//! of our archive for profiling. Not a test: it only reports.
//!
//! `KNEO_BENCH_STORE=kneo-serv` benches a kneo-serv 1.2 store instead: the Postgres store recorded
//! from the real kneo-serv (`tests/fixtures/kneo-serv-1.2/postgres/kneo_serv.sql`, 8 runs with
//! their checkpoints, queue records, audit events and continuations) loaded, then replicated by
//! SQL to `KNEO_BENCH_RUNS` runs with new ids throughout.

// A benchmark: it runs only under `cargo bench`, where a failed unwrap stops the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kneo_server::backup::{self, BackupOptions, StoreLocation, no_progress};
use kneo_server::clock;
use kneo_server::store::postgres::PostgresStore;
use kneo_server::store::{
    AuditEvent, Progress, QueueEntry, QueueStatus, QueueTransition, RunRecord, RunStatus, Store,
};
use kneo_testkit::postgres::{server_bin_dir, shared_cluster};
use serde_json::json;

const SEED_RUNS: usize = 1_000;

/// The allocator of the `kneo` and `kneo-ops` binaries, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runs: usize = std::env::var("KNEO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let level: u32 = std::env::var("KNEO_BENCH_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BackupOptions::default().compression_level);
    let sessions: usize = std::env::var("KNEO_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BackupOptions::default().postgres_sessions);
    let kneo_serv = match std::env::var("KNEO_BENCH_STORE").as_deref() {
        Ok("kneo-serv") => true,
        Ok("kneo-server") | Err(_) => false,
        Ok(other) => panic!("KNEO_BENCH_STORE={other}: use kneo-server (the default) or kneo-serv"),
    };
    let rounds: usize = std::env::var("KNEO_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench(runs, rounds, level, sessions, kneo_serv));
}

async fn bench(runs: usize, rounds: usize, level: u32, sessions: usize, kneo_serv: bool) {
    let cluster = shared_cluster();
    let url = cluster.create_database();
    let populated = Instant::now();
    let counts = if kneo_serv {
        populate_kneo_serv(&url, runs);
        cluster.psql(
            &url,
            "SELECT 'kneo-serv 1.2 store: ' || (SELECT count(*) FROM runs) || ' runs, ' || (SELECT count(*) FROM checkpoints) \
             || ' checkpoints, ' || (SELECT count(*) FROM run_queue) || ' queue records, ' || (SELECT count(*) FROM audit_events) \
             || ' audit events, ' || (SELECT count(*) FROM continuations) || ' continuations, ' \
             || pg_size_pretty(pg_database_size(current_database()))",
        )
    } else {
        populate(&url, runs).await;
        cluster.psql(
            &url,
            "SELECT (SELECT count(*) FROM runs) || ' runs, ' || (SELECT count(*) FROM trace_events) || ' trace events, ' \
             || (SELECT count(*) FROM checkpoints) || ' checkpoints, ' || (SELECT count(*) FROM audit_events) \
             || ' audit events, ' || pg_size_pretty(pg_database_size(current_database()))",
        )
    };
    println!(
        "database: {counts} (populated in {:.1?})",
        populated.elapsed()
    );
    println!("our settings: gzip level {level}, {sessions} Postgres session(s)");

    let work = std::env::temp_dir().join(format!("kneo-bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a work directory");
    let pg_dump = server_bin_dir().join("pg_dump");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut our_bytes = 0;
    let mut their_bytes = 0;
    for round in 0..rounds {
        let archive = work.join(format!("ours-{round}.tar.gz"));
        let started = Instant::now();
        let summary = backup::backup(
            &StoreLocation::postgres(&url),
            &archive,
            &BackupOptions {
                compression_level: level,
                postgres_sessions: sessions,
                ..BackupOptions::default()
            },
            &no_progress,
        )
        .await
        .expect("our backup");
        ours.push(started.elapsed());
        our_bytes = summary.bytes;

        let dump = work.join(format!("pg_dump-{round}.dump"));
        let started = Instant::now();
        let status = std::process::Command::new(&pg_dump)
            .arg("-Fc")
            .arg("-f")
            .arg(&dump)
            .arg(&url)
            .status()
            .expect("pg_dump runs");
        theirs.push(started.elapsed());
        assert!(status.success(), "pg_dump failed: {status}");
        their_bytes = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
        println!(
            "round {}: ours {:.2?} ({} bytes), pg_dump -Fc {:.2?} ({} bytes)",
            round + 1,
            ours[round],
            our_bytes,
            theirs[round],
            their_bytes
        );
    }
    let best = |times: &[Duration]| times.iter().min().copied().unwrap_or_default();
    let (ours_best, theirs_best) = (best(&ours), best(&theirs));
    println!(
        "best of {rounds}: kneo backup {:.2?} ({our_bytes} bytes), pg_dump -Fc {:.2?} ({their_bytes} bytes): ours takes {:.2}x the time of pg_dump -Fc",
        ours_best,
        theirs_best,
        ours_best.as_secs_f64() / theirs_best.as_secs_f64()
    );

    let archive = work.join("ours-0.tar.gz");
    if let Ok(keep) = std::env::var("KNEO_BENCH_KEEP") {
        // For profiling verify on its own: `kneo-ops verify $KNEO_BENCH_KEEP`.
        std::fs::copy(&archive, &keep).expect("copy the archive to KNEO_BENCH_KEEP");
        println!("archive kept at {keep}");
    }
    for _ in 0..rounds {
        let started = Instant::now();
        let report = backup::verify(&archive, &no_progress)
            .await
            .expect("verify");
        let elapsed = started.elapsed();
        assert!(report.ok, "{:?}", report.failures);
        println!(
            "verify: {:.2?} for {} bytes uncompressed ({:.0} MB/s of table data, {:.0} MB/s of archive)",
            elapsed,
            report.stats.uncompressed_bytes,
            report.stats.uncompressed_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
            report.stats.archive_bytes as f64 / 1e6 / elapsed.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// The recorded kneo-serv 1.2 Postgres store, replicated by SQL up to `runs` runs: every copy of
/// a run gets new ids (its own, its checkpoints', its audit events', its continuation's), and its
/// payloads name them, as kneo-serv's would.
fn populate_kneo_serv(url: &str, runs: usize) {
    let cluster = shared_cluster();
    let dump = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kneo-serv-1.2/postgres/kneo_serv.sql");
    let status = std::process::Command::new(cluster.bin_dir().join("psql"))
        .arg(url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&dump)
        .status()
        .expect("psql runs");
    assert!(status.success(), "loading {} failed", dump.display());
    let seeds: usize = cluster
        .psql(url, "SELECT count(*) FROM runs")
        .parse()
        .expect("a count");
    let copies = runs.div_ceil(seeds.max(1)).saturating_sub(1);
    if copies == 0 {
        return;
    }
    let sql = format!(
        "BEGIN;
         CREATE TEMP TABLE seeds AS SELECT id FROM runs;
         CREATE TEMP TABLE copies AS SELECT n FROM generate_series(1, {copies}) n;
         INSERT INTO runs (id, status, workflow_name, workflow_kind, agent_name, created_at, updated_at, payload, session_id)
           SELECT r.id || '-' || n, r.status, r.workflow_name, r.workflow_kind, r.agent_name, r.created_at, r.updated_at,
                  replace(CASE WHEN c.id IS NULL THEN r.payload ELSE replace(r.payload, c.id, c.id || '-' || n) END,
                          r.id, r.id || '-' || n),
                  r.session_id
           FROM runs r JOIN seeds s ON s.id = r.id LEFT JOIN continuations c ON c.run_id = r.id CROSS JOIN copies;
         INSERT INTO checkpoints (id, run_id, sequence, type, created_at, payload)
           SELECT k.id || '-' || n, k.run_id || '-' || n, k.sequence, k.type, k.created_at,
                  replace(replace(k.payload, k.id, k.id || '-' || n), k.run_id, k.run_id || '-' || n)
           FROM checkpoints k JOIN seeds s ON s.id = k.run_id CROSS JOIN copies;
         INSERT INTO run_queue (run_id, status, attempts, available_at, lease_owner, lease_expires_at, error, created_at, updated_at, payload)
           SELECT q.run_id || '-' || n, q.status, q.attempts, q.available_at, q.lease_owner, q.lease_expires_at, q.error,
                  q.created_at, q.updated_at, replace(q.payload, q.run_id, q.run_id || '-' || n)
           FROM run_queue q JOIN seeds s ON s.id = q.run_id CROSS JOIN copies;
         INSERT INTO audit_events (id, event_type, run_id, continuation_id, actor, created_at, payload)
           SELECT a.id || '-' || n, a.event_type, a.run_id || '-' || n, a.continuation_id, a.actor, a.created_at,
                  replace(replace(a.payload, a.id, a.id || '-' || n), a.run_id, a.run_id || '-' || n)
           FROM audit_events a JOIN seeds s ON s.id = a.run_id CROSS JOIN copies;
         INSERT INTO continuations (id, run_id, status, created_at, updated_at, payload)
           SELECT c.id || '-' || n, c.run_id || '-' || n, c.status, c.created_at, c.updated_at,
                  replace(replace(c.payload, c.id, c.id || '-' || n), c.run_id, c.run_id || '-' || n)
           FROM continuations c JOIN seeds s ON s.id = c.run_id CROSS JOIN copies;
         COMMIT;"
    );
    cluster.psql(url, &sql);
    cluster.psql(url, "VACUUM ANALYZE");
}

/// 1,000 realistic runs through the store, then replicated by SQL up to `runs`.
async fn populate(url: &str, runs: usize) {
    let store = PostgresStore::new(url, 16).expect("URL parses");
    store.ensure_ready().await.expect("migrates");
    let store: Arc<dyn Store> = Arc::new(store);
    futures_util::stream::iter(0..SEED_RUNS.min(runs))
        .map(|index| {
            let store = store.clone();
            async move { write_run(&*store, index).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let copies = runs.div_ceil(SEED_RUNS).saturating_sub(1);
    if copies == 0 {
        return;
    }
    let sql = format!(
        "BEGIN;
         INSERT INTO runs (id, status, created_at, updated_at, deadline_at, workflow_name, document)
           SELECT r.id || '-' || n, r.status, r.created_at, r.updated_at, r.deadline_at, r.workflow_name,
                  jsonb_set(r.document, '{{id}}', to_jsonb(r.id || '-' || n))
           FROM runs r CROSS JOIN generate_series(1, {copies}) n WHERE r.id LIKE 'seed-%';
         INSERT INTO run_queue (run_id, status, attempts, lease_owner, lease_expires_at, enqueued_at, updated_at, last_error)
           SELECT q.run_id || '-' || n, q.status, q.attempts, q.lease_owner, q.lease_expires_at, q.enqueued_at, q.updated_at, q.last_error
           FROM run_queue q CROSS JOIN generate_series(1, {copies}) n WHERE q.run_id LIKE 'seed-%';
         INSERT INTO trace_events (run_id, position, event_id, event_type, \"timestamp\", document)
           SELECT t.run_id || '-' || n, t.position, t.event_id || '-' || n, t.event_type, t.\"timestamp\", t.document
           FROM trace_events t CROSS JOIN generate_series(1, {copies}) n WHERE t.run_id LIKE 'seed-%';
         INSERT INTO checkpoints (run_id, sequence, id, checkpoint_type, created_at, document)
           SELECT c.run_id || '-' || n, c.sequence, c.id || '-' || n, c.checkpoint_type, c.created_at, c.document
           FROM checkpoints c CROSS JOIN generate_series(1, {copies}) n WHERE c.run_id LIKE 'seed-%';
         INSERT INTO audit_events (id, event_type, run_id, continuation_id, actor, metadata, created_at)
           SELECT a.id || '-' || n, a.event_type, a.run_id || '-' || n, a.continuation_id, a.actor, a.metadata, a.created_at
           FROM audit_events a CROSS JOIN generate_series(1, {copies}) n WHERE a.run_id LIKE 'seed-%';
         COMMIT;"
    );
    shared_cluster().psql(url, &sql);
    // Both tools then read tables in the state a live database would be in.
    shared_cluster().psql(url, "VACUUM ANALYZE");
}

async fn write_run(store: &dyn Store, index: usize) {
    let id = format!("seed-{index:06}");
    let audit = |event_type: &str| AuditEvent {
        id: clock::new_id(),
        event_type: event_type.into(),
        run_id: Some(id.clone()),
        continuation_id: None,
        actor: "ops".into(),
        metadata: json!({"request_id": clock::new_id(), "spec_path": "specs/hello.yaml", "async": true}),
        created_at: clock::now_text(),
    };
    let mut run = RunRecord::new(
        id.clone(),
        format!("Summarize ticket {index}"),
        clock::now_text(),
    );
    run.agent_name = Some("hello".into());
    run.workflow_kind = Some("agent".into());
    run.metadata
        .insert("spec_path".into(), json!("specs/hello.yaml"));
    run.metadata.insert("target".into(), json!("agent"));
    run.metadata
        .insert("environment".into(), json!("production"));
    store
        .create_run(
            &run,
            Some(QueueEntry::Queued),
            &[audit("run.created")],
            None,
        )
        .await
        .expect("create run");
    run.status = RunStatus::Completed;
    run.output_text = Some(format!("Final answer: Summarize ticket {index}"));
    run.messages = vec![
        json!({"role": "system", "content": "Say hello.", "name": null, "tool_call_id": null, "metadata": {"tool_calls": []}}),
        json!({"role": "user", "content": format!("Summarize ticket {index}"), "name": null, "tool_call_id": null, "metadata": {"tool_calls": []}}),
        json!({"role": "assistant", "content": format!("Final answer: Summarize ticket {index}"), "name": "hello", "tool_call_id": null, "metadata": {"tool_calls": []}}),
    ];
    run.usage = Some(json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}));
    run.trace_event_count = 4;
    run.updated_at = clock::now_text();
    run.completed_at = Some(clock::now_text());
    let mut progress = Progress::new(run.clone());
    for event_type in [
        "run_started",
        "agent_started",
        "model_response",
        "run_completed",
    ] {
        progress.trace_events.push(json!({
            "type": event_type, "run_id": id, "event_id": clock::new_id(), "timestamp": clock::now_text(),
            "parent_event_id": null, "span_id": null, "agent_name": "hello", "workflow_name": null,
            "model_provider": "dummy", "model_name": "demo-model",
            "input_preview": format!("Summarize ticket {index}"), "output_preview": "Final answer",
            "metadata": {"latency_ms": 0.4, "tokens": 21},
        }));
    }
    for (sequence, kind) in [(1, "run_started"), (2, "run_completed")] {
        progress.checkpoints.push(json!({
            "id": clock::new_id(), "run_id": id, "type": kind, "sequence": sequence, "iteration": 1,
            "created_at": clock::now_text(),
            "state": {"status": "completed", "input_text": format!("Summarize ticket {index}"), "messages": run.messages},
        }));
    }
    progress.audit.push(audit("run.completed"));
    progress.queue = Some(QueueTransition::Finish {
        status: QueueStatus::Completed,
        error: None,
    });
    store.save_progress(&progress).await.expect("save progress");
}
