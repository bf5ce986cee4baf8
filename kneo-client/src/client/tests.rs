//! Client tests against a real HTTP server started in the test (axum on 127.0.0.1:0).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::*;
use crate::wire::RunStatus;

const KEY: &str = "client-test-key";

fn authorized(headers: &HeaderMap) -> bool {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {KEY}"));
    let kneo = headers.get("x-kneo-api-key").and_then(|v| v.to_str().ok()) == Some(KEY);
    bearer || kneo
}

fn unauthorized() -> axum::response::Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"detail": {"error": "unauthorized", "message": "A valid Kneo service API key is required."}})))
        .into_response()
}

async fn start_server() -> String {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true, "service": "kneo-serv-platform", "version": "9.9.9", "metadata": {"status": "healthy", "commit": "abc123"}})) }))
        .route(
            "/readyz",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"detail": {"error": "not_ready", "message": "One or more readiness checks failed.",
                        "metadata": {"ready": false, "checks": {"api": {"name": "api", "ok": true},
                            "run_state_store": {"name": "run_state_store", "ok": false, "error": "connection_refused"}}}}})),
                )
            }),
        )
        .route(
            "/v1/runs",
            get(|headers: HeaderMap, uri: axum::http::Uri| async move {
                if !authorized(&headers) {
                    return unauthorized();
                }
                Json(json!({"runs": [{"id": "r1", "status": "created", "echo_query": uri.query()}], "count": 1, "total": 1,
                    "limit": 100, "offset": 0, "window": 10000, "sort_by": "created_at", "sort_order": "asc"}))
                .into_response()
            }),
        )
        .route("/v1/runs/{id}", get(|| async { (StatusCode::OK, "this is not json") }))
        .route("/v1/human-tasks", get(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") }))
        .route(
            "/v1/audit-events",
            // Never answers: only the client's own timeout can end the call.
            get(std::future::pending::<Json<serde_json::Value>>),
        )
        .route("/metrics", get(|| async { "# TYPE kneo_worker_count gauge\nkneo_worker_count 0\nkneo_runs_queued 4\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

fn client(base: &str, key: Option<&str>) -> Client {
    Client::new(ClientConfig::new(base).api_key(key.map(str::to_string))).expect("a valid client")
}

#[tokio::test]
async fn healthz_keeps_status_body_and_latency() {
    let base = start_server().await;
    let reply = client(&base, None).healthz().await;
    assert_eq!(reply.status, Some(200));
    assert!(
        reply
            .body
            .as_deref()
            .is_some_and(|b| b.contains("kneo-serv-platform"))
    );
    let health = reply.value().expect("a health body");
    assert_eq!(health.version.as_deref(), Some("9.9.9"));
    assert_eq!(health.metadata.commit.as_deref(), Some("abc123"));
    assert!(reply.latency > Duration::ZERO);
}

#[tokio::test]
async fn readyz_503_is_a_readiness_not_an_error() {
    let base = start_server().await;
    let reply = client(&base, None).readyz().await;
    assert_eq!(reply.status, Some(503));
    let readiness = reply.value().expect("the 503 envelope parses");
    assert!(!readiness.ready);
    assert_eq!(
        readiness
            .failing()
            .map(|c| c.error.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["connection_refused"]
    );
}

#[tokio::test]
async fn the_key_goes_as_bearer_or_as_x_kneo_api_key() {
    let base = start_server().await;
    let reply = client(&base, Some(KEY))
        .list_runs(&RunQuery {
            status: Some("queued".into()),
            page: PageRequest::new(5, 0),
        })
        .await;
    let runs = reply.value().expect("authorized");
    assert_eq!(runs.runs[0].status, RunStatus::Created);
    assert_eq!(runs.page.total, Some(1));
    assert!(
        reply
            .body
            .as_deref()
            .is_some_and(|b| b.contains("status=queued&limit=5&offset=0"))
    );

    let mut config = ClientConfig::new(&base).api_key(Some(KEY.into()));
    config.auth_scheme = AuthScheme::KneoApiKey;
    let reply = Client::new(config)
        .expect("client")
        .list_runs(&RunQuery::default())
        .await;
    assert!(reply.is_ok(), "{:?}", reply.error());
}

#[tokio::test]
async fn an_error_status_keeps_its_envelope() {
    let base = start_server().await;
    let reply = client(&base, Some("wrong"))
        .list_runs(&RunQuery::default())
        .await;
    assert_eq!(reply.status, Some(401));
    let error = reply.error().expect("an error");
    assert_eq!(
        error.error_body().and_then(|e| e.code.as_deref()),
        Some("unauthorized")
    );
    assert!(
        error.to_string().contains("HTTP 401 unauthorized"),
        "{error}"
    );

    let reply = client(&base, Some(KEY))
        .list_human_tasks(&HumanTaskQuery::default())
        .await;
    assert!(
        matches!(
            reply.error(),
            Some(CallError::Status {
                status: 502,
                error: None,
                ..
            })
        ),
        "{:?}",
        reply.error()
    );
    assert_eq!(reply.body.as_deref(), Some("<html>bad gateway</html>"));
}

#[tokio::test]
async fn a_2xx_with_the_wrong_body_is_a_bad_body() {
    let base = start_server().await;
    let reply = client(&base, Some(KEY)).get_run("r1").await;
    assert!(
        matches!(reply.error(), Some(CallError::BadBody { status: 200, .. })),
        "{:?}",
        reply.error()
    );
    assert_eq!(reply.body.as_deref(), Some("this is not json"));
}

#[tokio::test]
async fn an_answer_that_never_comes_is_a_timeout_after_the_configured_bound() {
    let base = start_server().await;
    let bounded = client(&base, Some(KEY)).with_request_timeout(Duration::from_millis(300));
    // The outer bound only turns a missing client timeout into a failure instead of a hang.
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        bounded.list_audit_events(&AuditQuery::default()),
    )
    .await
    .expect("the client's 300 ms timeout never fired");
    match reply.error() {
        Some(CallError::Timeout {
            after,
            url,
            connected,
            ..
        }) => {
            assert_eq!(*after, Duration::from_millis(300));
            assert!(url.ends_with("/v1/audit-events"), "{url}");
            assert!(
                *connected,
                "a service that accepted the connection and never answered"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(reply.status, None);
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let reply = client(&format!("http://{address}"), None).healthz().await;
    match reply.error() {
        Some(CallError::Unreachable {
            refused, reason, ..
        }) => {
            assert!(*refused, "{reason}");
            assert_eq!(reason, "connection refused");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn metrics_parse_into_samples() {
    let base = start_server().await;
    let reply = client(&base, None).metrics().await;
    let metrics = reply.value().expect("metrics");
    assert_eq!(metrics.worker_count(), Some(0));
    assert_eq!(metrics.queued(), Some(4));
}

#[test]
fn bad_urls_are_refused_with_the_fix() {
    let error = Client::new(ClientConfig::new("127.0.0.1:8000")).expect_err("refused");
    assert!(
        error.to_string().contains("give it as http://host:port"),
        "{error}"
    );
    let error = Client::new(ClientConfig::new("ftp://x")).expect_err("refused");
    assert!(error.to_string().contains("not http or https"), "{error}");
}

#[test]
fn credentials_never_reach_messages() {
    assert_eq!(
        strip_credentials("http://user:pw@host:8000/base"),
        "http://host:8000/base"
    );
    assert_eq!(strip_credentials("http://host:8000"), "http://host:8000");
    let client = client("http://user:pw@127.0.0.1:1", Some("k"));
    assert_eq!(client.base_url(), "http://127.0.0.1:1");
    assert!(!format!("{client:?}").contains("pw"));
    let config = ClientConfig::new("http://a:b@h").api_key(Some("secret".into()));
    assert!(!format!("{config:?}").contains("secret"));
}
