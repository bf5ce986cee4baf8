//! A service whose /readyz never answers: the capture keeps its budget and marks the item
//! `timeout`.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::json;

use crate::support::*;

async fn start_slow_readyz_service() -> String {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true, "service": "kneo-serv-platform", "version": "0.0.0-fake", "metadata": {"status": "healthy"}})) }))
        .route(
            "/readyz",
            // Never answers: only a bound of the capture can end the call.
            get(std::future::pending::<Json<serde_json::Value>>),
        )
        .route("/metrics", get(|| async { "kneo_worker_count 1\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_readyz_is_cut_at_the_budget_and_marked_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = start_slow_readyz_service().await;
    // A budget below the 10 s cap of one HTTP call, so the budget is what ends the call. The
    // outer bound only turns a capture that ignores its budget into a failure, not a hang.
    let (output, _) = tokio::time::timeout(
        Duration::from_secs(120),
        run_kneo_ops_async(
            &[
                "capture",
                "--url",
                &url,
                "--budget",
                "4s",
                "-o",
                "slow.tar.gz",
                "--json",
            ],
            &[],
            dir.path(),
        ),
    )
    .await
    .expect("the capture did not end at its budget");
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );

    let files = read_bundle(&dir.path().join("slow.tar.gz"));
    let manifest = manifest(&files);
    let readyz = item(&manifest, "service/readyz.json");
    assert_eq!(readyz["status"], "timeout", "{readyz}");
    assert_eq!(manifest["options"]["budget_ms"], 4000, "{manifest}");
    // The call was given what was left of the budget, not the 10 s cap of an HTTP call.
    let error = readyz["error"].as_str().unwrap_or_default();
    let bound_ms: u64 = error
        .rsplit_once("no answer within ")
        .and_then(|(_, rest)| rest.trim_end_matches(" ms").parse().ok())
        .unwrap_or_else(|| panic!("no bound in the error: {readyz}"));
    assert!(
        bound_ms < 4000,
        "bounded by {bound_ms} ms, not the budget: {readyz}"
    );
    assert_eq!(item(&manifest, "service/healthz.json")["status"], "ok");
    assert_eq!(
        item(&manifest, "service/health.json")["status"],
        "skipped",
        "a route the target does not have (404) is skipped, not an error"
    );
    let verdicts: serde_json::Value =
        serde_json::from_slice(&files["triage/verdicts.json"]).expect("verdicts");
    assert_eq!(
        verdicts["health"], "hung",
        "a /readyz that connects and never answers is a hung service"
    );
    let (_, probes) = kneo_triage::bundle::load_probes(&dir.path().join("slow.tar.gz"))
        .expect("probes from the bundle");
    let offline =
        kneo_triage::triage::evaluate(&probes, &kneo_triage::triage::Thresholds::default());
    assert_eq!(offline.health, kneo_triage::triage::Health::Hung);
    assert_eq!(
        offline.stages[1].title,
        "/readyz: hung (connects, never answers)"
    );
}
