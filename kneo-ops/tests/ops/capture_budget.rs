//! A service whose /readyz hangs: the capture keeps its budget and marks the item `timeout`.

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
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Json(json!({"ok": true, "metadata": {"ready": true, "checks": {}}}))
            }),
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
    let (output, elapsed) = run_kneo_ops_async(
        &[
            "capture",
            "--url",
            &url,
            "--budget",
            "10s",
            "-o",
            "slow.tar.gz",
            "--json",
        ],
        &[],
        dir.path(),
    )
    .await;
    assert!(
        elapsed <= Duration::from_secs(11),
        "the whole command took {elapsed:?}"
    );
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
    assert!(
        readyz["duration_ms"]
            .as_u64()
            .is_some_and(|ms| (8_000..=10_500).contains(&ms)),
        "{readyz}"
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
