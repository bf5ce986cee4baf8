//! `GET /openapi.json`: kneo-server's own OpenAPI 3.1 document, and a small page at `/docs` that
//! shows it. The paths come from the route list the router is built from ([`super::routes`]);
//! the schemas from the wire types of kneo-client (`utoipa::ToSchema`), under kneo-serv 1.2's
//! schema names. Both trees are listed: every route at the root and under `/v1`, except the
//! root-only ones.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use kneo_client::wire::contract as wire;
use serde_json::{Map, Value, json};
use utoipa::openapi::ComponentsBuilder;

use super::routes::{RouteDoc, Tree};
use crate::app::AppState;

/// Every schema the document names, registered from its wire type.
fn components() -> Value {
    let components = ComponentsBuilder::new()
        .schema_from::<wire::SkillsOverlay>()
        .schema_from::<wire::RunCreateRequest>()
        .schema_from::<wire::RunCreateResponse>()
        .schema_from::<wire::RunUsage>()
        .schema_from::<wire::RunStatusResponse>()
        .schema_from::<wire::RunListResponse>()
        .schema_from::<wire::TraceResponse>()
        .schema_from::<wire::CheckpointListResponse>()
        .schema_from::<wire::CheckpointDiffResponse>()
        .schema_from::<wire::RunRecoveryResponse>()
        .schema_from::<wire::RunReplayResponse>()
        .schema_from::<wire::RunGraphResponse>()
        .schema_from::<wire::SpecValidateRequest>()
        .schema_from::<wire::SpecValidateResponse>()
        .schema_from::<wire::SpecCompileRequest>()
        .schema_from::<wire::SpecCompileResponse>()
        .schema_from::<wire::SpecExplainRequest>()
        .schema_from::<wire::SpecExplainResponse>()
        .schema_from::<wire::SpecGraphRequest>()
        .schema_from::<wire::SpecGraphResponse>()
        .schema_from::<wire::SpecPolicyReportRequest>()
        .schema_from::<wire::SpecPolicyReportResponse>()
        .schema_from::<wire::SkillsListResponse>()
        .schema_from::<wire::SkillEntry>()
        .schema_from::<wire::CredentialEntry>()
        .schema_from::<wire::CredentialInventory>()
        .schema_from::<wire::CredentialInventoryResponse>()
        .schema_from::<wire::EnvironmentPolicyRequest>()
        .schema_from::<wire::EnvironmentPolicyResponse>()
        .schema_from::<wire::EnvironmentPolicyListResponse>()
        .schema_from::<wire::EnvironmentPolicyPreviewResponse>()
        .schema_from::<wire::HumanResumeRequest>()
        .schema_from::<wire::HumanResumeResponse>()
        .schema_from::<wire::HumanTaskListResponse>()
        .schema_from::<wire::HumanTaskResponse>()
        .schema_from::<wire::AuditEventListResponse>()
        .schema_from::<wire::HealthResponse>()
        .schema_from::<wire::ErrorDetail>()
        .schema_from::<wire::ErrorResponse>()
        .schema_from::<wire::ValidationError>()
        .schema_from::<wire::HTTPValidationError>()
        .build();
    let mut value = serde_json::to_value(components).unwrap_or_else(|_| json!({}));
    if let Some(fields) = value.as_object_mut() {
        fields.insert(
            "securitySchemes".into(),
            json!({
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key of KNEO_SERV_API_KEYS or KNEO_SERV_ADMIN_API_KEY."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Kneo-Api-Key",
                           "description": "The same key in kneo's own header."},
            }),
        );
    }
    value
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The error answers every authenticated operation may give.
fn error_responses(doc: &RouteDoc) -> Map<String, Value> {
    let error = |description: &str| json!({"description": description, "content": json_content(schema_ref("ErrorResponse"))});
    let mut responses = Map::new();
    if doc.scope.is_some() {
        responses.insert("400".into(), error("Invalid request."));
        responses.insert("401".into(), error("Authentication required."));
        responses.insert("403".into(), error("The key lacks the operation's scope."));
        responses.insert("404".into(), error("Resource not found."));
        responses.insert(
            "409".into(),
            error("Conflict: a lock, an idempotency key or the run's state."),
        );
        responses.insert(
            "413".into(),
            error("The body is larger than KNEO_SERV_MAX_BODY_BYTES."),
        );
        responses.insert(
            "500".into(),
            error("Internal error (opaque; the cause is logged)."),
        );
        responses.insert(
            "503".into(),
            error("The store is unavailable or the queue is full; retry after Retry-After."),
        );
        responses.insert(
            "422".into(),
            json!({"description": "Request shape: a validation list, or an envelope (unknown_query_parameters, spec_path_confined, invalid_timestamp).",
                   "content": json_content(json!({"oneOf": [schema_ref("HTTPValidationError"), schema_ref("ErrorResponse")]}))}),
        );
    }
    responses
}

/// `{name}` segments of a path.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn operation(doc: &RouteDoc, full_path: &str) -> Value {
    let mut parameters: Vec<Value> = path_parameters(doc.path)
        .into_iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    for name in doc.query {
        let schema = if doc.repeated.contains(name) {
            json!({"type": "array", "items": {"type": "string"}})
        } else {
            json!({"type": "string"})
        };
        parameters.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
    }
    if doc.idempotent {
        parameters.push(
            json!({"name": "Idempotency-Key", "in": "header", "required": false,
                               "schema": {"type": "string"}}),
        );
    }
    let mut responses = error_responses(doc);
    for (status, schema) in doc.success {
        let mut response = Map::new();
        response.insert(
            "description".into(),
            json!(if *status == 202 {
                "Accepted (queued)."
            } else {
                "Success."
            }),
        );
        if let Some(schema) = schema {
            response.insert("content".into(), json_content(schema_ref(schema)));
        }
        responses.insert(status.to_string(), Value::Object(response));
    }
    let operation_id = format!(
        "{}_{}",
        doc.method.as_str().to_ascii_lowercase(),
        full_path
            .trim_matches('/')
            .replace(['/', '-', '.'], "_")
            .replace(['{', '}'], "")
    );
    let mut operation = json!({
        "tags": [doc.tag],
        "summary": doc.summary,
        "operationId": operation_id,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = doc.body {
        operation["requestBody"] =
            json!({"required": true, "content": json_content(schema_ref(body))});
    }
    match doc.scope {
        Some(scope) => {
            operation["security"] = json!([{"bearer": [scope]}, {"apiKey": [scope]}]);
            operation["x-required-scope"] = json!(scope);
        }
        None => operation["security"] = json!([]),
    }
    if doc.kneo_only {
        operation["x-kneo-only"] = json!(true);
    }
    operation
}

/// The document for the routes this process serves.
pub fn build(routes: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for doc in routes {
        let mut trees = vec![doc.path.to_string()];
        if doc.tree == Tree::Both {
            trees.push(format!("/v1{}", doc.path));
        }
        for path in trees {
            let item = paths
                .entry(path.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(item) = item.as_object_mut() {
                item.insert(
                    doc.method.as_str().to_ascii_lowercase(),
                    operation(doc, &path),
                );
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kneo run service",
            "description": "kneo-server: the kneo-serv 1.2 API (every route at the root and under /v1), plus kneo's own routes (x-kneo-only).",
            "version": crate::VERSION,
        },
        "paths": paths,
        "components": components(),
    })
}

/// The routes of this process (`/metrics` only while it is enabled).
pub fn served_routes(metrics_enabled: bool) -> Vec<RouteDoc> {
    super::routes::all()
        .into_iter()
        .map(|route| route.doc)
        .filter(|doc| metrics_enabled || doc.path != "/metrics")
        .collect()
}

/// `GET /openapi.json`.
pub async fn document(State(state): State<AppState>) -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| build(&served_routes(state.config.metrics_enabled)));
    Json(document.clone())
}

/// `GET /docs` (and `/redoc`): a page that lists the operations of `/openapi.json`, with no
/// script from anywhere else.
pub async fn docs_page() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

/// `GET /docs/oauth2-redirect`: kneo has no OAuth flow; the page says so.
pub async fn oauth2_redirect() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>kneo</title><p>kneo uses API keys (Authorization: Bearer or X-Kneo-Api-Key); there is no OAuth flow.</p>",
    )
        .into_response()
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kneo API</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
code { font-size: 90%; }
.kneo { color: #555; font-style: italic; }
</style>
</head>
<body>
<h1>kneo API</h1>
<p>Every route is served at the root and under <code>/v1</code>. The machine-readable document is
<a href="/openapi.json"><code>/openapi.json</code></a> (OpenAPI 3.1).</p>
<table id="operations"><thead><tr><th>Method</th><th>Path</th><th>Scope</th><th>What</th></tr></thead><tbody></tbody></table>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const body = document.querySelector('#operations tbody');
  for (const [path, item] of Object.entries(doc.paths)) {
    if (path.startsWith('/v1/')) continue;
    for (const [method, op] of Object.entries(item)) {
      const row = body.insertRow();
      row.insertCell().textContent = method.toUpperCase();
      row.insertCell().innerHTML = '<code></code>';
      row.cells[1].firstChild.textContent = path;
      row.insertCell().textContent = op['x-required-scope'] || 'none';
      const what = row.insertCell();
      what.textContent = op.summary;
      if (op['x-kneo-only']) what.className = 'kneo';
    }
  }
});
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_on_both_trees_with_a_unique_id_and_resolving_refs() {
        let document = build(&served_routes(true));
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/runs/{run_id}/replay"));
        assert!(paths.contains_key("/v1/runs/{run_id}/replay"));
        assert!(paths.contains_key("/metrics"));
        assert!(!paths.contains_key("/v1/metrics"));
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        let mut ids = std::collections::HashSet::new();
        let text = document.to_string();
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("item") {
                let id = operation["operationId"].as_str().expect("id").to_string();
                assert!(
                    ids.insert(id.clone()),
                    "duplicate operationId {id} ({method} {path})"
                );
                for name in path_parameters(path) {
                    assert!(
                        operation["parameters"]
                            .as_array()
                            .expect("parameters")
                            .iter()
                            .any(|p| p["name"] == name && p["in"] == "path"),
                        "{method} {path} does not declare {name}"
                    );
                }
            }
        }
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
    }
}
