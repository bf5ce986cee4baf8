//! An archive written before a migration still verifies and restores: the schema 1 fixture
//! (written by the kneo-ops of that schema) comes back on both stores with the columns
//! migration 0002 added filled in from the run documents, and the restored service lists by
//! them and resumes the run that was waiting.

use std::path::{Path, PathBuf};

use kneo_server::backup::{self, RestoreOptions, StoreLocation, no_progress};
use kneo_testkit::http::Api;
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions};
use serde_json::json;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kneo-schema-1/backup.tar.gz")
}

/// Lists the runs of one workflow kind, by id.
async fn runs_of_kind(api: &Api, kind: &str) -> Vec<String> {
    let answer = api
        .get(
            &format!("/v1/runs?workflow_kind={kind}&limit=50"),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let mut ids: Vec<String> = answer.body["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("a runs list: {}", answer.text))
        .iter()
        .map(|run| run["run_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

/// The restored service: filters by the filled columns, and resumes the blocked run.
async fn check_restored_service(server: &KneoServer) {
    let api = Api::new(&server.url);
    assert_eq!(runs_of_kind(&api, "agent").await.len(), 1);
    assert_eq!(runs_of_kind(&api, "workflow").await.len(), 2);
    let blocked = api.get("/v1/runs?status=blocked", OPERATOR_KEY).await;
    let run = &blocked.body["runs"][0];
    let continuation = run["continuation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a blocked run with a continuation: {}", blocked.text));
    let task = api
        .get(&format!("/v1/human-tasks/{continuation}"), REVIEWER_KEY)
        .await;
    assert_eq!(task.status, 200, "{}", task.text);
    let request_id = task.body["request"]["id"].clone();
    let resumed = api
        .post(
            &format!("/v1/human-tasks/{continuation}/resume"),
            REVIEWER_KEY,
            &json!({"request_id": request_id, "decision": "approved"}),
        )
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(resumed.body["status"], "completed", "{}", resumed.text);
}

#[tokio::test]
async fn a_schema_1_archive_verifies_and_restores_on_both_stores() {
    let report = backup::verify(&fixture(), &no_progress)
        .await
        .expect("verify reads the fixture");
    assert!(report.ok, "{:?}", report.failures);
    let manifest = report.manifest.as_ref().expect("a manifest");
    assert_eq!(manifest.schema_version, 1);

    let work = tempfile::tempdir().expect("temp dir");
    let sqlite_root = work.path().join("sqlite");
    let sqlite = StoreLocation::sqlite(sqlite_root.join(".kneo"));
    let url = tokio::task::spawn_blocking(|| shared_cluster().create_database())
        .await
        .expect("the cluster answers");
    let postgres = StoreLocation::postgres(url.clone());
    for target in [&sqlite, &postgres] {
        let restored =
            backup::restore(&fixture(), target, &RestoreOptions::default(), &no_progress)
                .await
                .unwrap_or_else(|error| panic!("restore into {target:?}: {error}"));
        assert_eq!(
            restored.restored.get("runs").copied(),
            Some(3),
            "{target:?}"
        );
    }

    kneo_testkit::fixtures::write_golden_ext_specs(&sqlite_root);
    let server = KneoServer::start_in(&sqlite_root, ServerOptions::default());
    check_restored_service(&server).await;
    let server = KneoServer::start(ServerOptions::default().postgres(&url).golden_ext_specs());
    check_restored_service(&server).await;
}
