//! Capture with the service stopped: a bundle of failures and host context, exit 1.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_service_still_gives_a_bundle_that_records_each_failure() {
    let mut server = KneoServer::start(ServerOptions::default());
    let dir = server.dir.clone();
    let run = Api::new(&server.url)
        .post(
            "/v1/runs",
            KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "hi"}),
        )
        .await;
    let run_id = run.body["run_id"].as_str().expect("run id").to_string();
    server.stop();

    let bundle = dir.join("dead.tar.gz");
    let (output, elapsed) = run_kneo_ops_async(
        &[
            "capture",
            "--url",
            &server.url,
            "--run-id",
            &run_id,
            "--budget",
            "20s",
            "--state-dir",
            ".kneo",
            "-o",
            "dead.tar.gz",
        ],
        &[("KNEO_SERV_API_KEY", KEY)],
        &dir,
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {}",
        text(&output.stderr)
    );
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "within the budget: {elapsed:?}"
    );
    assert!(stdout.contains("triage: down"), "{stdout}");

    let files = read_bundle(&bundle);
    let manifest = manifest(&files);
    for path in [
        "host/uname.txt",
        "host/os-release.txt",
        "host/resources.json",
        "host/disk.json",
        "tool/version.json",
        "triage/verdicts.json",
    ] {
        assert_eq!(item(&manifest, path)["status"], "ok", "{path}");
        assert!(files.contains_key(path), "{path} present");
    }
    for path in [
        "service/healthz.json".to_string(),
        "service/readyz.json".into(),
        "service/metrics.txt".into(),
        format!("runs/{run_id}/run.json"),
        format!("runs/{run_id}/trace.json"),
        format!("runs/{run_id}/checkpoints.json"),
    ] {
        let entry = item(&manifest, &path);
        assert_eq!(entry["status"], "error", "{path}: {entry}");
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(error.contains("connection refused"), "{path}: {error}");
        assert!(entry["sha256"].is_null(), "nothing stored for {path}");
    }
    let verdicts: serde_json::Value =
        serde_json::from_slice(&files["triage/verdicts.json"]).expect("verdicts");
    assert_eq!(verdicts["health"], "down");
    assert_eq!(manifest["health"], "down");
    assert!(manifest["service"].is_null());

    // The same tree walks offline from the bundle.
    let (stored, probes) =
        kneo_triage::bundle::load_probes(&bundle).expect("probes from the bundle");
    let offline =
        kneo_triage::triage::evaluate(&probes, &kneo_triage::triage::Thresholds::default());
    assert_eq!(Some(offline.health.as_str()), stored.health.as_deref());
    assert_eq!(
        offline.stages[0].title,
        "/healthz: process down (connection refused)"
    );

    let (inspected, _) = run_kneo_ops_async(&["bundle", "inspect", "dead.tar.gz"], &[], &dir).await;
    assert_eq!(
        inspected.status.code(),
        Some(0),
        "{}",
        text(&inspected.stdout)
    );
}
