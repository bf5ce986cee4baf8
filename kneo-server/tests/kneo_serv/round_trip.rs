//! Backup → verify → verify --deep → restore of kneo-serv stores gives identical rows, on both of
//! kneo-serv's stores and across them; a flipped bit is caught; stores and targets of the other
//! family are refused, naming what to do instead.

use std::path::Path;

use kneo_server::backup::{
    self, BackupError, BackupOptions, Family, RestoreOptions, ScratchTarget, StoreLocation,
    no_progress,
};

use crate::fixtures::{
    assert_same_rows, continuation_files, counts, new_database, postgres_rows, postgres_store,
    psql, scenario, sqlite_rows, sqlite_store,
};

async fn back_up(source: &StoreLocation, archive: &Path) -> backup::BackupSummary {
    backup::backup(source, archive, &BackupOptions::default(), &no_progress)
        .await
        .unwrap_or_else(|error| panic!("backup of {}: {error}", source.describe()))
}

async fn verify_all_ways(archive: &Path, scratch: ScratchTarget) {
    let report = backup::verify(archive, &no_progress)
        .await
        .expect("a verdict");
    assert!(report.ok, "verify: {:#?}", report.failures);
    assert!(
        report.warnings.is_empty(),
        "verify warnings: {:#?}",
        report.warnings
    );
    let manifest = report.manifest.expect("a manifest");
    assert_eq!(manifest.family, Family::KneoServ);
    assert_eq!(manifest.schema_version, 4);
    let deep = backup::verify_deep(archive, scratch, &no_progress)
        .await
        .expect("a deep verdict");
    assert!(
        deep.ok,
        "verify --deep: {:#?} {:#?}",
        deep.checks, deep.verify.failures
    );
    let names: Vec<&str> = deep
        .checks
        .iter()
        .map(|check| check.name.as_str())
        .collect();
    for expected in [
        "schema_version",
        "list_runs",
        "checkpoints",
        "continuations",
        "queue_counts",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
}

#[tokio::test]
async fn a_sqlite_store_round_trips_to_identical_rows_and_files() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = sqlite_store(work.path());
    let before = sqlite_rows(&state_dir);
    let files_before = continuation_files(&state_dir);
    assert_eq!(files_before.len(), 2, "the fixture has two blocked runs");
    let archive = work.path().join("kneo-serv.tar.gz");
    let summary = back_up(&StoreLocation::sqlite(&state_dir), &archive).await;
    assert_eq!(summary.manifest.source.kind, "sqlite");
    assert_eq!(summary.manifest.continuations.count, 2);
    assert!(
        summary
            .manifest
            .files
            .iter()
            .all(|file| file.path.starts_with("kneo-serv/")),
        "{:#?}",
        summary.manifest.files
    );
    verify_all_ways(&archive, ScratchTarget::TemporarySqlite).await;

    let target = work.path().join("restored/.kneo");
    let report = backup::restore(
        &archive,
        &StoreLocation::sqlite(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore");
    assert_eq!(report.continuations, 2);
    assert_same_rows(&before, &sqlite_rows(&target), "SQLite round trip");
    assert_eq!(continuation_files(&target), files_before);
    assert!(
        !target.join("kneo.lock").exists(),
        "kneo-serv's state directory is left without kneo's lock file"
    );
}

#[tokio::test]
async fn a_postgres_store_round_trips_to_identical_rows() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = postgres_store().await;
    let before = postgres_rows(&source).await;
    assert_eq!(counts(&before)["runs"], 8, "{:?}", counts(&before));
    assert_eq!(counts(&before)["continuations"], 2);
    let archive = work.path().join("kneo-serv-pg.tar.gz");
    let summary = back_up(&StoreLocation::postgres(&source), &archive).await;
    assert_eq!(summary.manifest.source.kind, "postgres");
    assert!(summary.manifest.continuations.warnings.is_empty());
    let scratch = new_database().await;
    verify_all_ways(&archive, ScratchTarget::Postgres { url: scratch }).await;
    // The temporary SQLite scratch takes a Postgres archive too.
    verify_all_ways(&archive, ScratchTarget::TemporarySqlite).await;

    let target = new_database().await;
    backup::restore(
        &archive,
        &StoreLocation::postgres(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore");
    assert_same_rows(
        &before,
        &postgres_rows(&target).await,
        "Postgres round trip",
    );
}

#[tokio::test]
async fn archives_move_between_kneo_servs_two_stores() {
    let work = tempfile::tempdir().expect("tempdir");
    // SQLite → Postgres: the continuation files become rows of the continuations table.
    let state_dir = sqlite_store(work.path());
    let archive = work.path().join("from-sqlite.tar.gz");
    back_up(&StoreLocation::sqlite(&state_dir), &archive).await;
    let target = new_database().await;
    backup::restore(
        &archive,
        &StoreLocation::postgres(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("SQLite archive into Postgres");
    let ids = scenario("sqlite");
    let waiting = psql(
        &target,
        &format!(
            "SELECT status || ' ' || run_id FROM continuations WHERE id = '{}'",
            ids["blocked"]["continuation_id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(
        waiting,
        format!("waiting {}", ids["blocked"]["run_id"].as_str().expect("id"))
    );
    assert_eq!(
        psql(&target, "SELECT count(*) FROM runs").await,
        "8",
        "every run is there"
    );

    // Postgres → SQLite: the rows become files too.
    let source = postgres_store().await;
    let archive = work.path().join("from-postgres.tar.gz");
    back_up(&StoreLocation::postgres(&source), &archive).await;
    let target = work.path().join("from-postgres/.kneo");
    let report = backup::restore(
        &archive,
        &StoreLocation::sqlite(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("Postgres archive into SQLite");
    assert_eq!(report.restored.get("continuations"), Some(&2));
    let ids = scenario("postgres");
    let files = continuation_files(&target);
    for task in ["blocked", "blocked_agents"] {
        let name = format!(
            "{}.json",
            ids[task]["continuation_id"].as_str().expect("id")
        );
        let document: serde_json::Value =
            serde_json::from_slice(files.get(&name).expect("a continuation file")).expect("json");
        assert_eq!(document["run_id"], ids[task]["run_id"], "{name}");
    }
}

#[tokio::test]
async fn a_flipped_bit_in_either_archive_is_caught() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = sqlite_store(work.path());
    let from_sqlite = work.path().join("sqlite.tar.gz");
    back_up(&StoreLocation::sqlite(&state_dir), &from_sqlite).await;
    let source = postgres_store().await;
    let from_postgres = work.path().join("postgres.tar.gz");
    back_up(&StoreLocation::postgres(&source), &from_postgres).await;
    for archive in [from_sqlite, from_postgres] {
        let original = std::fs::read(&archive).expect("read");
        for position in [
            12,
            original.len() / 3,
            original.len() / 2,
            original.len() - 9,
        ] {
            for bit in [0, 5] {
                let mut damaged = original.clone();
                damaged[position] ^= 1 << bit;
                std::fs::write(&archive, &damaged).expect("write");
                let report = backup::verify(&archive, &no_progress)
                    .await
                    .expect("a verdict");
                assert!(
                    !report.ok,
                    "a flipped bit {bit} at byte {position} of {} went unnoticed",
                    archive.display()
                );
                // Without the sidecar the content checks alone must catch it.
                let sidecar = archive.with_extension("gz.sha256");
                let kept = std::fs::read(&sidecar).expect("sidecar");
                std::fs::remove_file(&sidecar).expect("remove sidecar");
                let report = backup::verify(&archive, &no_progress)
                    .await
                    .expect("a verdict");
                std::fs::write(&sidecar, kept).expect("put the sidecar back");
                let only_padding = report.ok && position == original.len() - 9;
                assert!(
                    !report.ok || only_padding,
                    "without the sidecar, bit {bit} at byte {position} went unnoticed"
                );
            }
        }
        std::fs::write(&archive, &original).expect("restore the original");
        assert!(
            backup::verify(&archive, &no_progress)
                .await
                .expect("verdict")
                .ok
        );
    }
}

#[tokio::test]
async fn the_other_familys_stores_and_targets_are_refused_with_the_way_out() {
    let work = tempfile::tempdir().expect("tempdir");
    let state_dir = sqlite_store(work.path());
    let options = BackupOptions {
        family: Some(Family::Kneo),
        ..BackupOptions::default()
    };
    let error = backup::backup(
        &StoreLocation::sqlite(&state_dir),
        &work.path().join("refused.tar.gz"),
        &options,
        &no_progress,
    )
    .await
    .expect_err("a kneo-serv store is not a kneo-server store");
    assert!(matches!(error, BackupError::WrongFamily { .. }), "{error}");
    assert!(error.to_string().contains("drop --from"), "{error}");

    // A kneo-serv archive into a database that holds kneo-server's schema: their tables share
    // names, so nothing is touched, even with --force.
    let archive = work.path().join("kneo-serv.tar.gz");
    back_up(&StoreLocation::sqlite(&state_dir), &archive).await;
    let kneo = new_database().await;
    let store = kneo_server::store::postgres::PostgresStore::new(&kneo, 1).expect("url");
    store.ensure_ready().await.expect("kneo schema");
    drop(store);
    let error = backup::restore(
        &archive,
        &StoreLocation::postgres(&kneo),
        &RestoreOptions {
            force: true,
            ..RestoreOptions::default()
        },
        &no_progress,
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(error, BackupError::TargetOfOtherFamily { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("kneo-ops import"), "{error}");
    assert_eq!(psql(&kneo, "SELECT count(*) FROM runs").await, "0");

    // Into a non-empty kneo-serv store: refused without --force, replaced (after a safety backup)
    // with it.
    let target = work.path().join("busy/.kneo");
    backup::restore(
        &archive,
        &StoreLocation::sqlite(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("first restore");
    let error = backup::restore(
        &archive,
        &StoreLocation::sqlite(&target),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect_err("not empty");
    assert!(
        matches!(error, BackupError::TargetNotEmpty { .. }),
        "{error}"
    );
    let report = backup::restore(
        &archive,
        &StoreLocation::sqlite(&target),
        &RestoreOptions {
            force: true,
            ..RestoreOptions::default()
        },
        &no_progress,
    )
    .await
    .expect("forced");
    let safety = report.safety_backup.expect("a safety backup");
    let verdict = backup::verify(&safety, &no_progress)
        .await
        .expect("verdict");
    assert!(verdict.ok, "{:#?}", verdict.failures);
    assert_eq!(verdict.manifest.map(|m| m.family), Some(Family::KneoServ));
}
