//! Canary secrets planted by a fake service never reach the bundle, and the report counts them.

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::*;

const API_KEY: &str = "kneo-canary-apikey-7Hq2Zx";
const DSN_PASSWORD: &str = "CanaryPassw0rd-x9";
const PROVIDER_KEY: &str = "sk-canaryABCDEFGHIJ0123456789";
const BEARER: &str = "canaryBearerTok3n9876";
const ENV_SECRET: &str = "env-canary-Q8w7e6r5z";
const JSON_KEY_SECRET: &str = "json-key-canary-Zq81";
const CANARIES: [&str; 6] = [
    API_KEY,
    DSN_PASSWORD,
    PROVIDER_KEY,
    BEARER,
    ENV_SECRET,
    JSON_KEY_SECRET,
];

fn planted_dsn() -> String {
    format!("postgres://kneo:{DSN_PASSWORD}@db.internal:5432/kneo")
}

fn page(key: &str, items: Vec<Value>) -> Json<Value> {
    let count = items.len();
    Json(
        json!({key: items, "count": count, "total": count, "limit": 1000, "offset": 0, "window": 10000}),
    )
}

async fn start_planting_service() -> String {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true, "service": "kneo-serv-platform", "version": "0.0.0-canary", "metadata": {"status": "healthy"}})) }))
        .route(
            "/readyz",
            get(|| async {
                Json(json!({"ok": true, "metadata": {"ready": true, "checks": {
                    "api": {"name": "api", "ok": true},
                    "run_state_store": {"name": "run_state_store", "ok": true, "note": format!("connected to {}", planted_dsn())}
                }}}))
            }),
        )
        .route(
            "/v1/health",
            get(|headers: HeaderMap| async move {
                // Echoes the caller's Authorization header: the key the tool used comes back.
                let echoed = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                Json(json!({"ok": true, "metadata": {"ready": true, "checks": {}, "identity": {"name": "ops", "seen_header": echoed, "note": format!("key {API_KEY}")}}}))
            }),
        )
        .route("/metrics", get(|| async { format!("# HELP kneo_worker_count env OPENAI_API_KEY={PROVIDER_KEY}\nkneo_worker_count 1\n") }))
        .route("/v1/service/events", get(|| async { page("events", vec![json!({"event_type": "service.started", "details": {"note": format!("started with {ENV_SECRET} loaded")}})]) }))
        .route("/v1/runs", get(|| async { page("runs", vec![]) }))
        .route("/v1/human-tasks", get(|| async { page("tasks", vec![]) }))
        .route(
            "/v1/runs/{id}",
            get(|Path(id): Path<String>| async move {
                Json(json!({"run_id": id, "status": "failed",
                    "input_text": format!("use key {API_KEY} against {}", planted_dsn()),
                    "metadata": {"api_key": JSON_KEY_SECRET, "headers": format!("Authorization: Bearer {BEARER}")}}))
            }),
        )
        .route(
            "/v1/runs/{id}/trace",
            get(|Path(id): Path<String>| async move {
                page("events", vec![
                    json!({"type": "step_completed", "run_id": id, "output_preview": format!("OPENAI_API_KEY={PROVIDER_KEY}")}),
                    json!({"type": "run_failed", "run_id": id, "error": {"message": format!("could not connect to {}", planted_dsn())}}),
                    json!({"type": "tool_called", "run_id": id, "metadata": {"args": format!("X-Kneo-Api-Key: {API_KEY}")}}),
                ])
            }),
        )
        .route(
            "/v1/runs/{id}/checkpoints",
            get(|Path(id): Path<String>| async move {
                page("checkpoints", vec![json!({"run_id": id, "sequence": 1, "state": {"messages": [{"role": "user", "content": format!("curl -H 'Authorization: Bearer {BEARER}'")}]}})])
            }),
        )
        .route(
            "/v1/audit-events",
            get(|| async { page("events", vec![json!({"id": "a1", "event_type": "run.created", "metadata": {"authorization": format!("Bearer {BEARER}"), "note": format!("env OPENAI_API_KEY={PROVIDER_KEY}")}})]) }),
        );
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
async fn planted_secrets_never_reach_the_bundle_and_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = start_planting_service().await;
    let flag_dsn = format!("postgres://kneo:{DSN_PASSWORD}@127.0.0.1:{CLOSED_PORT}/kneo");
    let (output, _) = run_kneo_ops_async(
        &[
            "capture",
            "--url",
            &url,
            "--run-id",
            "run-canary-1",
            "--request-id",
            "req-1",
            "--database-url",
            &flag_dsn,
            "-o",
            "canary.tar.gz",
            "--json",
        ],
        &[
            ("KNEO_SERV_API_KEY", API_KEY),
            ("CANARY_SERVICE_TOKEN", ENV_SECRET),
        ],
        dir.path(),
    )
    .await;
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    for canary in CANARIES {
        assert!(
            !stdout.contains(canary) && !stderr.contains(canary),
            "{canary} was printed"
        );
    }

    let bundle = dir.path().join("canary.tar.gz");
    let files = read_bundle(&bundle);
    assert!(files.len() > 10, "{:?}", files.keys());
    for (path, data) in &files {
        for canary in CANARIES {
            let found = data
                .windows(canary.len())
                .any(|window| window == canary.as_bytes());
            assert!(!found, "{canary} is in {path}:\n{}", text(data));
        }
    }
    // The planted values were there to find: the redaction report counts them.
    let manifest = manifest(&files);
    let rules: std::collections::BTreeMap<String, u64> = manifest["redaction"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            (
                rule["rule"].as_str().unwrap_or_default().to_string(),
                rule["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for rule in [
        "api_key_in_use",
        "database_url",
        "provider_key",
        "bearer_token",
        "env_secret",
        "secret_key",
    ] {
        assert!(
            rules.get(rule).is_some_and(|count| *count > 0),
            "rule {rule} did not fire: {rules:?}"
        );
    }
    assert!(
        manifest["redaction"]["total"]
            .as_u64()
            .is_some_and(|total| total >= 12),
        "{:#}",
        manifest["redaction"]
    );
    let trace_rules: Vec<&str> = manifest["redaction"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|rule| {
            rule["files"]
                .as_array()
                .is_some_and(|files| files.iter().any(|f| f == "runs/run-canary-1/trace.json"))
        })
        .filter_map(|rule| rule["rule"].as_str())
        .collect();
    assert!(
        !trace_rules.is_empty(),
        "the report names the files the rules fired in"
    );
    // The manifest records options without secrets.
    assert_eq!(manifest["options"]["api_key_given"], true);
    assert_eq!(manifest["options"]["database_url_given"], true);
    let postgres = item(&manifest, "host/postgres-version.txt");
    assert_eq!(
        postgres["status"], "error",
        "nothing listens at the DSN's port: {postgres}"
    );
}
