//! Faults found by attacking the service (issue 12), one test each: malformed requests that
//! answered 5xx or outside the envelope, numbers that panicked a handler, spec paths that read
//! the service's own state or blocked on a FIFO, a resume with an option the task does not offer,
//! and the three places where the docs and the behaviour disagreed.

use std::time::Duration;

use kneo_testkit::http::{Answer, Api};
use kneo_testkit::server::{
    ADMIN_KEY, KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions, VIEWER_KEY,
};
use serde_json::{Value, json};

use super::write_spec;

/// The admin key as a raw header line.
const ADMIN_AUTH: &str = "Authorization: Bearer adminkey123\r\n";

/// Asserts an answer is a 4xx in the error envelope (or the native 422 list).
fn assert_enveloped(answer: &Answer, context: &str) {
    assert!(
        (400..500).contains(&answer.status),
        "{context}: expected a 4xx, got {}: {}",
        answer.status,
        answer.text
    );
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{context}: not JSON ({:?}): {}",
        answer.header("content-type"),
        answer.text
    );
    let detail = &answer.body["detail"];
    let enveloped = detail["error"].is_string() && detail["message"].is_string();
    let native = detail.as_array().is_some_and(|items| !items.is_empty());
    assert!(
        enveloped || native,
        "{context}: not in the envelope: {}",
        answer.text
    );
}

/// The run routes and human-task routes with an id in their path.
fn id_routes(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GET", format!("/v1/runs/{id}")),
        ("GET", format!("/v1/runs/{id}/trace")),
        ("GET", format!("/v1/runs/{id}/checkpoints")),
        ("GET", format!("/v1/runs/{id}/recovery")),
        ("POST", format!("/v1/runs/{id}/cancel")),
        ("POST", format!("/v1/runs/{id}/continue")),
        ("GET", format!("/v1/human-tasks/{id}")),
        ("POST", format!("/v1/human-tasks/{id}/resume")),
        ("GET", format!("/runs/{id}")),
        ("POST", format!("/runs/{id}/cancel")),
    ]
}

/// NUL and invalid UTF-8 in paths and queries, huge numbers and wrong content types: every answer
/// is a 4xx in the envelope, and nothing is created.
async fn malformed_requests(options: ServerOptions) {
    let server = KneoServer::start(options);
    let api = Api::new(&server.url);
    let admin = format!("Bearer {ADMIN_KEY}");
    let json_type = ("content-type", "application/json");
    let auth = ("authorization", admin.as_str());
    let resume_body = br#"{"request_id": "r", "decision": "approved"}"#.to_vec();

    for id in ["a%00b", "%00", "%FF", "a%FFb", "%C3%28", "%ED%A0%80"] {
        for (method, path) in id_routes(id) {
            let body = if path.ends_with("/resume") {
                resume_body.clone()
            } else {
                Vec::new()
            };
            let answer = api
                .send_bytes(method, &path, &[auth, json_type], body)
                .await;
            let context = format!("{method} {path}");
            assert_enveloped(&answer, &context);
            assert_eq!(answer.status, 404, "{context}: {}", answer.text);
        }
    }

    let run = api
        .post(
            "/v1/runs",
            ADMIN_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "present"}),
        )
        .await;
    let run_id = run.body["run_id"].as_str().expect("a run id").to_string();
    let queries = [
        "/v1/audit-events?run_id=%00".to_string(),
        "/v1/audit-events?run_id=a%00".to_string(),
        "/v1/audit-events?event_type=run%00created".to_string(),
        "/v1/audit-events?mentions=%00".to_string(),
        format!("/v1/runs/{run_id}/trace?event_type=%00"),
        format!("/v1/runs/{run_id}/checkpoints?type=%00"),
        "/v1/human-tasks?run_id=%00".to_string(),
        "/v1/human-tasks?workflow_kind=%00".to_string(),
        "/v1/runs?status=%00".to_string(),
        "/v1/runs?sort_by=%00".to_string(),
        "/v1/runs?limit=1e30".to_string(),
        "/v1/runs?limit=99999999999999999999999999".to_string(),
        "/v1/runs?offset=-99999999999999999999999999".to_string(),
        "/v1/audit-events?limit=%FF".to_string(),
        "/v1/service/events?limit=18446744073709551617".to_string(),
    ];
    for path in &queries {
        let answer = api.send_bytes("GET", path, &[auth], Vec::new()).await;
        assert_enveloped(&answer, path);
        assert_eq!(answer.status, 422, "{path}: {}", answer.text);
    }
    // Invalid UTF-8 in a filter value is no error: it matches nothing (as in kneo-serv).
    for path in [
        "/v1/audit-events?run_id=%FF",
        "/v1/audit-events?mentions=%C3%28",
    ] {
        let answer = api.send_bytes("GET", path, &[auth], Vec::new()).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }

    let create = br#"{"spec_path": "specs/hello.yaml", "input": "smuggled"}"#.to_vec();
    let wrong_types: Vec<Vec<(&str, &str)>> = vec![
        vec![auth, ("content-type", "text/plain")],
        vec![auth, ("content-type", "application/x-www-form-urlencoded")],
        vec![auth, ("content-type", "multipart/form-data; boundary=x")],
        vec![auth, ("content-type", "application/jsonx")],
        vec![auth],
    ];
    for headers in &wrong_types {
        for path in ["/v1/runs", "/v1/specs/run", "/v1/specs/validate"] {
            let answer = api.send_bytes("POST", path, headers, create.clone()).await;
            let context = format!("POST {path} with {headers:?}");
            assert_enveloped(&answer, &context);
            assert_eq!(answer.status, 422, "{context}: {}", answer.text);
            assert_eq!(
                answer.body["detail"][0]["type"], "model_attributes_type",
                "{context}: {}",
                answer.text
            );
        }
    }
    for content_type in [
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.kneo+json",
    ] {
        let answer = api
            .send_bytes(
                "POST",
                "/v1/runs",
                &[auth, ("content-type", content_type)],
                create.clone(),
            )
            .await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.text);
    }
    let runs = api.get("/v1/runs?limit=1", ADMIN_KEY).await;
    assert_eq!(
        runs.body["total"], 4,
        "only the present run and the three JSON bodies ran: {}",
        runs.text
    );

    for timeout in [
        json!(8.3e12),
        json!(1e300),
        json!(-1),
        json!("soon"),
        json!(0),
    ] {
        let answer = api
            .post(
                "/v1/runs",
                ADMIN_KEY,
                &json!({"spec_path": "specs/hello.yaml", "input": "x", "metadata": {"timeout_seconds": timeout}}),
            )
            .await;
        let context = format!("metadata.timeout_seconds {timeout}");
        assert_enveloped(&answer, &context);
        assert_eq!(answer.status, 422, "{context}: {}", answer.text);
        assert_eq!(
            answer.body["detail"][0]["loc"],
            json!(["body", "metadata", "timeout_seconds"]),
            "{context}: {}",
            answer.text
        );
    }
    let fine = api
        .post(
            "/v1/runs",
            ADMIN_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "x", "metadata": {"timeout_seconds": 1e9}}),
        )
        .await;
    assert_eq!(fine.status, 200, "{}", fine.text);

    let address = server.url.trim_start_matches("http://").to_string();
    let long_target = format!("/v1/runs/{}", "a".repeat(20_000));
    let long_query = format!("/v1/runs?status={}", "%FF".repeat(10_000));
    let many_headers: String = (0..150).map(|i| format!("X-Filler-{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "b".repeat(100_000));
    let heads = [
        (
            format!(
                "GET {long_target} HTTP/1.1\r\nHost: x\r\n{ADMIN_AUTH}Connection: close\r\n\r\n"
            ),
            414,
        ),
        (
            format!(
                "GET {long_query} HTTP/1.1\r\nHost: x\r\n{ADMIN_AUTH}Connection: close\r\n\r\n"
            ),
            414,
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}Connection: close\r\n\r\n"),
            431,
        ),
        (
            format!(
                "GET /v1/runs HTTP/1.1\r\nHost: x\r\n{big_header}{ADMIN_AUTH}Connection: close\r\n\r\n"
            ),
            431,
        ),
        (
            format!(
                "POST /v1/runs HTTP/1.1\r\nHost: x\r\n{big_header}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
            431,
        ),
    ];
    for (request, expected) in heads {
        let answer =
            kneo_testkit::http::raw_exchange(&address, request.as_bytes(), Duration::from_secs(30))
                .await;
        let context = format!("{} bytes of request head", request.len());
        assert_eq!(answer.status, expected, "{context}: {}", answer.head);
        assert!(
            answer
                .head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{context}: {}",
            answer.head
        );
        let detail = &answer.json()["detail"];
        assert!(
            detail["error"].is_string() && detail["message"].is_string(),
            "{context}: {}",
            answer.body
        );
    }

    let health = api.send("GET", "/healthz", &[], None).await;
    assert_eq!(health.status, 200, "the service still serves");
    let errors = api.send("GET", "/metrics", &[], None).await;
    assert!(
        errors.text.contains("kneo_http_server_errors_total 0\n"),
        "no request answered 5xx: {}",
        errors.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_envelope_answers_and_no_5xx() {
    malformed_requests(ServerOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_envelope_answers_and_no_5xx_on_postgres() {
    let url = kneo_testkit::postgres::shared_cluster().create_database();
    malformed_requests(ServerOptions::default().postgres(&url)).await;
}

/// A step timeout too large for any clock is a diagnostic on validate and `400 spec_invalid` on
/// a run, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_too_large_for_a_clock_is_a_diagnostic() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    for timeout in ["1e20", "1.8446744073709552e19", "9.3e18"] {
        let spec = format!(
            "version: v1
agent: {{name: root, model: {{provider: dummy, name: m}}}}
workflow:
  type: sequential
  name: w
  steps:
    - {{id: s, kind: function, ref: echo, timeout_seconds: {timeout}}}
components:
  functions:
    echo: {{implementation: kneo.builtin.echo}}
"
        );
        write_spec(&server.dir, "huge-timeout.yaml", &spec);
        let validated = api
            .post(
                "/v1/specs/validate",
                OPERATOR_KEY,
                &json!({"spec_path": "specs/huge-timeout.yaml"}),
            )
            .await;
        assert_eq!(validated.status, 200, "{}", validated.text);
        assert_eq!(validated.body["valid"], false, "{}", validated.text);
        let codes: Vec<&str> = validated.body["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter_map(|d| d["code"].as_str())
            .collect();
        assert!(
            codes.contains(&"E_STEP_TIMEOUT_INVALID"),
            "{timeout}: {}",
            validated.text
        );
        let run = api
            .post(
                "/v1/runs",
                OPERATOR_KEY,
                &json!({"spec_path": "specs/huge-timeout.yaml", "input": "x"}),
            )
            .await;
        assert_eq!(run.status, 400, "{timeout}: {}", run.text);
        assert_eq!(run.error_code(), Some("spec_invalid"), "{}", run.text);
    }
    // The largest timeout kneo-serv accepts (a 64-bit integer) still runs.
    write_spec(
        &server.dir,
        "long-timeout.yaml",
        "version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: w
  steps:
    - {id: s, kind: function, ref: echo, timeout_seconds: 9000000000000000000}
components:
  functions:
    echo: {implementation: kneo.builtin.echo}
",
    );
    let run = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/long-timeout.yaml", "input": "x"}),
        )
        .await;
    assert_eq!(run.body["status"], "completed", "{}", run.text);
}

/// The default spec root is the working directory, which holds `.kneo/`: no spec path reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_directory_is_never_read_as_a_spec() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let blocked = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/approval.yaml", "input": "draft"}),
        )
        .await;
    let continuation_id = blocked.body["continuation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a blocked run: {}", blocked.text))
        .to_string();
    assert!(
        server
            .dir
            .join(format!(".kneo/continuations/{continuation_id}.json"))
            .exists(),
        "the test needs the continuation file"
    );
    for path in [
        format!(".kneo/continuations/{continuation_id}.json"),
        format!("./.kneo/continuations/{continuation_id}.json"),
        format!("specs/../.kneo/continuations/{continuation_id}.json"),
        ".kneo/kneo_runs.sqlite".to_string(),
        ".kneo".to_string(),
    ] {
        let validated = api
            .post(
                "/v1/specs/validate",
                VIEWER_KEY,
                &json!({"spec_path": path}),
            )
            .await;
        assert!(
            !validated.text.contains("pending_human_request") && !validated.text.contains("run_id"),
            "{path}: the state leaked: {}",
            validated.text
        );
        assert_enveloped(&validated, &path);
        let run = api
            .post(
                "/v1/runs",
                OPERATOR_KEY,
                &json!({"spec_path": path, "input": "x"}),
            )
            .await;
        assert_enveloped(&run, &path);
        assert!(!run.text.contains("pending_human_request"), "{}", run.text);
    }
    let confined = api
        .post(
            "/v1/specs/validate",
            VIEWER_KEY,
            &json!({"spec_path": format!(".kneo/continuations/{continuation_id}.json")}),
        )
        .await;
    assert_eq!(confined.status, 422, "{}", confined.text);
    assert_eq!(confined.error_code(), Some("spec_path_confined"));
}

/// A FIFO (or anything but a regular file) inside the spec root is refused before it is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_spec_path_is_refused_without_opening_it() {
    let server = KneoServer::start(ServerOptions::default());
    let fifo = server.dir.join("specs/pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    // A client that waits a long time: were the FIFO opened, the request would hang until a
    // writer came, and this test fails on the client's timeout rather than on a measured time.
    let api = Api::new(&server.url);
    for (path, body) in [
        (
            "/v1/specs/validate",
            json!({"spec_path": "specs/pipe.yaml"}),
        ),
        (
            "/v1/runs",
            json!({"spec_path": "specs/pipe.yaml", "input": "x"}),
        ),
    ] {
        let answer = api.post(path, OPERATOR_KEY, &body).await;
        assert_enveloped(&answer, path);
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
        assert_eq!(
            answer.error_code(),
            Some("invalid_request"),
            "{}",
            answer.text
        );
    }
    std::fs::create_dir(server.dir.join("specs/dir.yaml")).expect("a directory");
    let answer = api
        .post(
            "/v1/specs/validate",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/dir.yaml"}),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
}

/// `decision: selected` with an option the task does not offer is a 422, and the task stays
/// pending for a proper answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selected_option_the_task_does_not_offer_is_refused() {
    let server = KneoServer::start(ServerOptions::default());
    write_spec(
        &server.dir,
        "choice.yaml",
        "version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: choice-workflow
  steps:
    - {id: pick, kind: human, ref: picker}
components:
  humans:
    picker: {description: Pick one., options: [ship, hold]}
",
    );
    let api = Api::new(&server.url);
    for (spec, offered) in [("specs/choice.yaml", true), ("specs/approval.yaml", false)] {
        let blocked = api
            .post(
                "/v1/runs",
                OPERATOR_KEY,
                &json!({"spec_path": spec, "input": "draft"}),
            )
            .await;
        assert_eq!(blocked.body["status"], "blocked", "{}", blocked.text);
        let run_id = blocked.body["run_id"].as_str().expect("run").to_string();
        let continuation_id = blocked.body["continuation_id"]
            .as_str()
            .expect("continuation")
            .to_string();
        let task = api
            .get(&format!("/v1/human-tasks/{continuation_id}"), REVIEWER_KEY)
            .await;
        let request_id = task.body["request"]["id"].as_str().expect("id").to_string();
        let resume = |option: &str| json!({"request_id": request_id, "decision": "selected", "selected_option": option});
        let path = format!("/v1/human-tasks/{continuation_id}/resume");
        let refused = api.post(&path, REVIEWER_KEY, &resume("launch")).await;
        assert_eq!(refused.status, 422, "{spec}: {}", refused.text);
        assert_eq!(
            refused.body["detail"][0]["loc"],
            json!(["body", "selected_option"]),
            "{}",
            refused.text
        );
        let still = api
            .get(&format!("/v1/human-tasks/{continuation_id}"), REVIEWER_KEY)
            .await;
        assert_eq!(
            still.status, 200,
            "the task is still pending: {}",
            still.text
        );
        let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
        assert_eq!(run.body["status"], "blocked", "{}", run.text);
        if offered {
            let picked = api.post(&path, REVIEWER_KEY, &resume("hold")).await;
            assert_eq!(picked.status, 200, "{}", picked.text);
            assert_eq!(picked.body["status"], "completed", "{}", picked.text);
            assert_eq!(picked.body["output_text"], "hold", "{}", picked.text);
        } else {
            let approved = api
                .post(
                    &path,
                    REVIEWER_KEY,
                    &json!({"request_id": request_id, "decision": "approved"}),
                )
                .await;
            assert_eq!(approved.status, 200, "{}", approved.text);
        }
    }
}

fn idempotent(key: &str, auth: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {auth}")),
        ("idempotency-key".into(), key.into()),
    ]
}

async fn send_with(api: &Api, headers: &[(String, String)], body: &Value) -> Answer {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    api.send("POST", "/v1/runs", &headers, Some(body)).await
}

/// Docs and behaviour agree: callers share a scope's key space (as in kneo-serv), and a key must
/// be visible ASCII (a tab is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_shared_by_callers_and_must_be_visible_ascii() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let body = json!({"spec_path": "specs/hello.yaml", "input": "shared", "async_mode": true});
    let first = send_with(&api, &idempotent("shared-key", OPERATOR_KEY), &body).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let other_caller = send_with(&api, &idempotent("shared-key", ADMIN_KEY), &body).await;
    assert_eq!(other_caller.status, 202, "{}", other_caller.text);
    assert_eq!(
        other_caller.body["run_id"], first.body["run_id"],
        "another caller's retry with the same key gets the same run"
    );
    let different = json!({"spec_path": "specs/hello.yaml", "input": "other", "async_mode": true});
    let conflict = send_with(&api, &idempotent("shared-key", ADMIN_KEY), &different).await;
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(conflict.error_code(), Some("idempotency_key_conflict"));

    let tabbed = send_with(&api, &idempotent("tab\there", OPERATOR_KEY), &body).await;
    assert_eq!(tabbed.status, 400, "{}", tabbed.text);
    assert_eq!(tabbed.error_code(), Some("invalid_idempotency_key"));
    let runs = api.get("/v1/runs?limit=1", OPERATOR_KEY).await;
    assert_eq!(runs.body["total"], 1, "{}", runs.text);
}

/// Docs and behaviour agree: the Bearer token decides who calls (as in kneo-serv); an
/// `X-Kneo-Api-Key` beside it is not a second chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_decides_who_the_caller_is() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let valid_bearer_wrong_header = api
        .send(
            "GET",
            "/v1/runs",
            &[
                ("authorization", &format!("Bearer {VIEWER_KEY}")),
                ("x-kneo-api-key", "not-a-key"),
            ],
            None,
        )
        .await;
    assert_eq!(
        valid_bearer_wrong_header.status, 200,
        "{}",
        valid_bearer_wrong_header.text
    );
    let wrong_bearer_valid_header = api
        .send(
            "GET",
            "/v1/runs",
            &[
                ("authorization", "Bearer not-a-key"),
                ("x-kneo-api-key", VIEWER_KEY),
            ],
            None,
        )
        .await;
    assert_eq!(
        wrong_bearer_valid_header.status, 401,
        "{}",
        wrong_bearer_valid_header.text
    );
    // The Bearer key's scopes apply, not the header's.
    let viewer_bearer_admin_header = api
        .send(
            "POST",
            "/v1/runs",
            &[
                ("authorization", &format!("Bearer {VIEWER_KEY}")),
                ("x-kneo-api-key", ADMIN_KEY),
                ("content-type", "application/json"),
            ],
            Some(&json!({"spec_path": "specs/hello.yaml", "input": "x"})),
        )
        .await;
    assert_eq!(
        viewer_bearer_admin_header.status, 403,
        "{}",
        viewer_bearer_admin_header.text
    );
    let header_only = api
        .send("GET", "/v1/runs", &[("x-kneo-api-key", VIEWER_KEY)], None)
        .await;
    assert_eq!(header_only.status, 200, "{}", header_only.text);
}

/// A cyclic graph with a large `max_steps` cannot fill the store: past the run's byte budget
/// (`KNEO_SERV_RUN_MAX_STORED_BYTES`, 1 MiB here) the run fails with `run_too_large`, and what
/// it left in the store stays near the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cyclic_graph_run_cannot_fill_the_store() {
    const BUDGET: u64 = 1024 * 1024;
    let server = KneoServer::start(
        ServerOptions::default().env("KNEO_SERV_RUN_MAX_STORED_BYTES", &BUDGET.to_string()),
    );
    write_spec(
        &server.dir,
        "ping-pong.yaml",
        "version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: graph
  name: ping-pong
  start: ping
  max_steps: 5000
  nodes:
    ping: {id: ping, kind: function, ref: echo}
    pong: {id: pong, kind: function, ref: echo}
  edges:
    - {from: ping, to: pong}
    - {from: pong, to: ping}
components:
  functions:
    echo: {implementation: kneo.builtin.echo}
",
    );
    let api = Api::new(&server.url);
    let run = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/ping-pong.yaml", "input": "x".repeat(1_000)}),
        )
        .await;
    assert_eq!(run.status, 200, "{}", &run.text[..run.text.len().min(500)]);
    assert_eq!(run.body["status"], "failed");
    let stored = api
        .get(
            &format!("/v1/runs/{}", run.body["run_id"].as_str().expect("id")),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(
        stored.body["error"]["type"], "run_too_large",
        "{}",
        stored.body["error"]
    );
    let message = stored.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("KNEO_SERV_RUN_MAX_STORED_BYTES"),
        "{message}"
    );
    let query = format!(
        "SELECT (SELECT COALESCE(SUM(length(document)), 0) FROM checkpoints WHERE run_id = '{id}') \
         + (SELECT COALESCE(SUM(length(document)), 0) FROM trace_events WHERE run_id = '{id}') \
         + (SELECT length(document) FROM runs WHERE id = '{id}')",
        id = stored.body["run_id"].as_str().expect("id")
    );
    let output = std::process::Command::new("sqlite3")
        .arg(server.dir.join(".kneo/kneo_runs.sqlite"))
        .arg(&query)
        .output()
        .expect("this test reads the store with the sqlite3 CLI");
    let bytes: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("sqlite3 said {output:?}"));
    println!("kneo-test: the run stopped with {bytes} bytes stored (budget {BUDGET})");
    assert!(
        bytes <= BUDGET,
        "the run stored {bytes} bytes, over its budget {BUDGET}"
    );
}
