//! kneo-server against kneo-serv 1.2.0's own OpenAPI document: every operation of it exists with
//! the same method, path and scope (no key → 401, a key lacking the scope → 403, the right key →
//! neither 404 nor 405), on both stores; and kneo's `/openapi.json` lists every operation it
//! serves, with the reference's schemas and their fields.

use kneo_testkit::golden::reference_openapi;
use kneo_testkit::http::Api;
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, ServerOptions};
use serde_json::{Value, json};

/// The scope of each kneo-serv operation (path without `/v1`), from `require_scope(...)` in its
/// routes (`service/routes_*.py`); `None` for the unauthenticated ones.
fn reference_scope(method: &str, path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    match (method, path) {
        (_, "/healthz" | "/livez" | "/readyz" | "/metrics") => None,
        ("post", "/runs" | "/specs/run") => Some("runs:write"),
        ("post", "/runs/{run_id}/cancel" | "/runs/{run_id}/continue") => Some("runs:write"),
        ("get", p) if p.starts_with("/runs") => Some("runs:read"),
        ("post", p) if p.starts_with("/specs/") => Some("specs:read"),
        ("get", "/skills") => Some("specs:read"),
        ("get", p) if p.starts_with("/human-tasks") => Some("human:read"),
        ("post", p) if p.starts_with("/human-tasks") => Some("human:write"),
        ("get", "/audit-events") => Some("audit:read"),
        ("get", "/security/credentials") => Some("credentials:read"),
        ("put", _) => Some("policies:write"),
        (_, p) if p.starts_with("/policies/") => Some("policies:read"),
        other => panic!("no reference scope known for {other:?}: add it from routes_*.py"),
    }
}

const SCOPES: [&str; 10] = [
    "runs:read",
    "runs:write",
    "specs:read",
    "human:read",
    "human:write",
    "audit:read",
    "audit:write",
    "credentials:read",
    "policies:read",
    "policies:write",
];

/// One key per scope, holding only that scope: `key-<scope with : as ->`.
fn single_scope_keys() -> String {
    SCOPES
        .iter()
        .map(|scope| format!("{0}:key-{0}:{scope}", scope.replace(':', "-")))
        .collect::<Vec<_>>()
        .join(";")
        + ";ops:opskey123:operator;rev:revkey123:reviewer"
}

fn key_for(scope: &str) -> String {
    format!("key-{}", scope.replace(':', "-"))
}

/// A key that lacks `scope` (it holds one other scope).
fn key_without(scope: &str) -> String {
    let other = SCOPES
        .iter()
        .find(|candidate| **candidate != scope)
        .copied()
        .unwrap_or("audit:write");
    key_for(other)
}

/// Real ids for the path parameters, so a 404 can only mean a missing route.
struct Ids {
    /// A run blocked on a human task.
    run_id: String,
    continuation_id: String,
    /// A finished run, for the routes that change a run (cancel, continue).
    finished_run_id: String,
}

async fn make_ids(api: &Api) -> Ids {
    let created = api
        .post(
            "/v1/runs",
            "opskey123",
            &json!({"input": "Q3", "spec_path": "specs/approval.yaml"}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let finished = api
        .post(
            "/v1/runs",
            "opskey123",
            &json!({"input": "hi", "spec_path": "specs/hello.yaml"}),
        )
        .await;
    assert_eq!(finished.status, 200, "{}", finished.text);
    Ids {
        finished_run_id: finished.body["run_id"]
            .as_str()
            .expect("run id")
            .to_string(),
        run_id: created.body["run_id"].as_str().expect("run id").to_string(),
        continuation_id: created.body["continuation_id"]
            .as_str()
            .expect("continuation id")
            .to_string(),
    }
}

fn concrete(path: &str, ids: &Ids) -> String {
    let run_id = if path.ends_with("/cancel") || path.ends_with("/continue") {
        &ids.finished_run_id
    } else {
        &ids.run_id
    };
    path.replace("{run_id}", run_id)
        .replace("{continuation_id}", &ids.continuation_id)
        .replace("{environment}", "conformance")
}

async fn call(api: &Api, method: &str, path: &str, key: Option<&str>) -> u16 {
    let bearer = key.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    let body = matches!(method, "post" | "put").then(|| json!({}));
    api.send(&method.to_ascii_uppercase(), path, &headers, body.as_ref())
        .await
        .status
}

async fn walk_reference(server: &KneoServer) {
    let api = Api::new(&server.url);
    let ids = make_ids(&api).await;
    let reference = reference_openapi();
    let ours = api.get("/openapi.json", "opskey123").await;
    assert_eq!(ours.status, 200, "{}", ours.text);
    let mut problems = Vec::new();
    let mut operations = 0;
    for (path, item) in reference["paths"].as_object().expect("reference paths") {
        for method in item.as_object().expect("path item").keys() {
            operations += 1;
            let scope = reference_scope(method, path);
            let documented = &ours.body["paths"][path][method];
            if documented.is_null() {
                problems.push(format!("{method} {path}: not in kneo's /openapi.json"));
            } else if documented.get("x-required-scope").and_then(Value::as_str) != scope {
                problems.push(format!(
                    "{method} {path}: documented scope {:?}, kneo-serv's is {scope:?}",
                    documented.get("x-required-scope")
                ));
            }
            let target = concrete(path, &ids);
            match scope {
                None => {
                    let status = call(&api, method, &target, None).await;
                    if matches!(status, 401 | 403 | 404 | 405) {
                        problems.push(format!("{method} {path} without a key: {status}"));
                    }
                }
                Some(scope) => {
                    let status = call(&api, method, &target, None).await;
                    if status != 401 {
                        problems.push(format!("{method} {path} without a key: {status}, not 401"));
                    }
                    let status = call(&api, method, &target, Some(&key_without(scope))).await;
                    if status != 403 {
                        problems.push(format!(
                            "{method} {path} with a key lacking {scope}: {status}, not 403"
                        ));
                    }
                    let status = call(&api, method, &target, Some(&key_for(scope))).await;
                    if matches!(status, 401 | 403 | 404 | 405) {
                        problems.push(format!("{method} {path} with {scope}: {status}"));
                    }
                }
            }
        }
    }
    assert_eq!(operations, 63, "the reference document has 63 operations");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_operation_exists_with_its_scope_on_the_embedded_store() {
    let server =
        KneoServer::start(ServerOptions::default().env("KNEO_SERV_API_KEYS", &single_scope_keys()));
    walk_reference(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_operation_exists_with_its_scope_on_postgres() {
    let url = shared_cluster().create_database();
    let options = ServerOptions::default()
        .postgres(&url)
        .env("KNEO_SERV_API_KEYS", &single_scope_keys());
    let server = KneoServer::start(options);
    walk_reference(&server).await;
}

/// kneo's document: OpenAPI 3.1 in structure, every operation it lists is served (not 404/405
/// with its key), and it has every schema of the reference with at least its properties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_what_is_served_and_the_reference_schemas() {
    let server =
        KneoServer::start(ServerOptions::default().env("KNEO_SERV_API_KEYS", &single_scope_keys()));
    let api = Api::new(&server.url);
    let ids = make_ids(&api).await;
    let document = api.get("/openapi.json", "").await;
    assert_eq!(document.status, 200, "/openapi.json needs no key");
    let document = document.body;
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());
    let mut problems = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(
                operation["responses"].is_object(),
                "{method} {path}: responses"
            );
            let key = operation
                .get("x-required-scope")
                .and_then(Value::as_str)
                .map(key_for);
            let status = call(&api, method, &concrete(path, &ids), key.as_deref()).await;
            if matches!(status, 401 | 403 | 404 | 405) {
                problems.push(format!(
                    "{method} {path} is documented but answers {status}"
                ));
            }
        }
    }
    for extra in [
        "/health",
        "/v1/health",
        "/service/events",
        "/openapi.json",
        "/docs",
    ] {
        if document["paths"][extra].is_null() {
            problems.push(format!("{extra} is served but not documented"));
        }
    }
    let reference = reference_openapi();
    let ours = &document["components"]["schemas"];
    for (name, schema) in reference["components"]["schemas"]
        .as_object()
        .expect("schemas")
    {
        let Some(our_schema) = ours.get(name) else {
            problems.push(format!("schema {name} is missing"));
            continue;
        };
        for property in schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if our_schema["properties"].get(property).is_none() {
                problems.push(format!("schema {name} lacks property {property}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
