//! The run path: step policies, timeouts, cancel, continue, backpressure, request logs and
//! service events, against the real server.

use std::time::Duration;

use kneo_testkit::http::Api;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions, VIEWER_KEY};
use serde_json::{Value, json};

use super::write_spec;

const RESILIENT: &str = "version: v1
agent: {name: resilient-root, model: {provider: dummy, name: m}, strategy: {type: simple}}
workflow:
  type: sequential
  name: resilient-pipeline
  steps:
    - {id: fetch,  kind: function, ref: flaky_fetch,  on_error: fallback, fallback_ref: cached_fetch}
    - {id: cached_fetch, kind: function, ref: cached_fetch}
    - {id: enrich, kind: function, ref: flaky_enrich, on_error: continue}
    - {id: report, kind: function, ref: build_report}
components:
  functions:
    flaky_fetch:  {implementation: examples.app_functions.flaky_fetch}
    cached_fetch: {implementation: examples.app_functions.cached_fetch}
    flaky_enrich: {implementation: examples.app_functions.flaky_enrich}
    build_report: {implementation: examples.app_functions.build_report}
";

const RETRYING: &str = "version: v1
agent: {name: retry-root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: retrying
  steps:
    - {id: shaky, kind: function, ref: shaky, on_error: retry, max_retries: 1}
components:
  functions:
    shaky: {implementation: kneo.builtin.fail_first_attempt}
";

const CONTINUABLE: &str = "version: v1
agent: {name: continue-root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: continuable
  steps:
    - {id: first,  kind: function, ref: record}
    - {id: second, kind: function, ref: once}
    - {id: third,  kind: function, ref: record}
components:
  functions:
    record: {implementation: kneo.builtin.record_invocation}
    once:   {implementation: kneo.builtin.fail_first_call}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_fallback_and_continue_behave_as_the_spec_says() {
    let server = KneoServer::start(ServerOptions::default());
    write_spec(&server.dir, "resilient.yaml", RESILIENT);
    write_spec(&server.dir, "retrying.yaml", RETRYING);
    let api = Api::new(&server.url);
    let answer = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/resilient.yaml", "input": "q"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "completed", "{}", answer.text);
    let output = answer.body["output_text"].as_str().unwrap_or_default();
    assert!(
        output.contains("[cached]"),
        "the fallback's output flows on: {output}"
    );
    let run_id = answer.body["run_id"].as_str().expect("run id").to_string();
    let checkpoints = api
        .get(
            &format!("/v1/runs/{run_id}/checkpoints?type=step_failed"),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(
        checkpoints.body["total"], 1,
        "enrich failed and was continued: {}",
        checkpoints.text
    );
    assert_eq!(checkpoints.body["checkpoints"][0]["step_id"], "enrich");

    let answer = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/retrying.yaml", "input": "x"}),
        )
        .await;
    assert_eq!(
        answer.body["status"], "completed",
        "a retry saves it: {}",
        answer.text
    );
    assert_eq!(answer.body["output_text"], "x (attempt 2)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_continues_after_its_last_completed_step() {
    let log = tempfile::NamedTempFile::new().expect("invocation log");
    let log_path = log.path().to_str().expect("utf-8 path").to_string();
    let server = KneoServer::start(ServerOptions::default().env("KNEO_INVOCATION_LOG", &log_path));
    write_spec(&server.dir, "continuable.yaml", CONTINUABLE);
    let api = Api::new(&server.url);
    let answer = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/continuable.yaml", "input": "go"}),
        )
        .await;
    assert_eq!(answer.body["status"], "failed", "{}", answer.text);
    let run_id = answer.body["run_id"].as_str().expect("run id").to_string();
    let recovery = api
        .get(&format!("/v1/runs/{run_id}/recovery"), OPERATOR_KEY)
        .await;
    assert_eq!(
        recovery.body["replay_context"]["can_continue"], true,
        "{}",
        recovery.text
    );

    let continued = api
        .post(
            &format!("/v1/runs/{run_id}/continue"),
            OPERATOR_KEY,
            &json!({}),
        )
        .await;
    assert_eq!(continued.status, 200, "{}", continued.text);
    assert_eq!(continued.body["status"], "completed", "{}", continued.text);
    let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
    assert_eq!(
        run.body["visited_steps"],
        json!(["first", "second", "third"])
    );
    let invocations = std::fs::read_to_string(&log_path).expect("log");
    let first_runs = invocations
        .lines()
        .filter(|line| line.contains(" first "))
        .count();
    assert_eq!(
        first_runs, 1,
        "the completed first step did not run again:\n{invocations}"
    );

    // A completed run cannot be continued; the refusal names its status.
    let again = api
        .post(
            &format!("/v1/runs/{run_id}/continue"),
            OPERATOR_KEY,
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), Some("run_state_conflict"));
    assert_eq!(again.body["detail"]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_and_run_timeouts_end_runs_as_configured() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    // The sleepy fixture's step has timeout_seconds: 1 and sleeps as long as its input says.
    let answer = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/sleepy.yaml", "input": "5"}),
        )
        .await;
    assert_eq!(answer.body["status"], "failed", "{}", answer.text);
    assert_eq!(
        answer.body["metadata"]["error"]["type"], "step_timeout",
        "{}",
        answer.text
    );

    // A run-level timeout (metadata.timeout_seconds) ends the run as timed_out.
    write_spec(
        &server.dir,
        "slow.yaml",
        "version: v1\nagent: {name: s}\nworkflow:\n  type: sequential\n  name: slow\n  steps:\n    - {id: nap, kind: function, ref: sleep}\ncomponents:\n  functions:\n    sleep: {implementation: kneo.builtin.sleep}\n",
    );
    let answer = api
        .post("/v1/runs", OPERATOR_KEY, &json!({"spec_path": "specs/slow.yaml", "input": "5", "metadata": {"timeout_seconds": 1}}))
        .await;
    assert_eq!(answer.body["status"], "timed_out", "{}", answer.text);
    let run_id = answer.body["run_id"].as_str().expect("run id");
    let audit = api
        .get(
            &format!("/v1/audit-events?run_id={run_id}&event_type=run.timed_out"),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(audit.body["total"], 1, "{}", audit.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_queued_run_and_is_final() {
    let server =
        KneoServer::start(ServerOptions::default().env("KNEO_SERV_WORKER_CONCURRENCY", "0"));
    let api = Api::new(&server.url);
    let answer = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/hello.yaml", "input": "x", "async_mode": true}),
        )
        .await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body["status"], "queued");
    let run_id = answer.body["run_id"].as_str().expect("run id").to_string();
    let queued = api.get("/v1/runs?status=queued", OPERATOR_KEY).await;
    assert_eq!(
        queued.body["total"], 1,
        "a queued run lists under status=queued: {}",
        queued.text
    );
    let cancelled = api
        .post(
            &format!("/v1/runs/{run_id}/cancel"),
            OPERATOR_KEY,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.text);
    let again = api
        .post(
            &format!("/v1/runs/{run_id}/cancel"),
            OPERATOR_KEY,
            &json!({}),
        )
        .await;
    assert_eq!(
        (again.status, again.body["status"].clone()),
        (200, json!("cancelled")),
        "a second cancel is a no-op"
    );
    let forbidden = api
        .post(&format!("/v1/runs/{run_id}/cancel"), VIEWER_KEY, &json!({}))
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.body["detail"]["required_scope"], "runs:write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_keeps_the_shed_run() {
    let server = KneoServer::start(
        ServerOptions::default()
            .env("KNEO_SERV_WORKER_CONCURRENCY", "0")
            .env("KNEO_SERV_MAX_QUEUE_DEPTH", "2"),
    );
    let api = Api::new(&server.url);
    let body = json!({"spec_path": "specs/hello.yaml", "input": "x", "async_mode": true});
    for _ in 0..2 {
        assert_eq!(api.post("/v1/runs", OPERATOR_KEY, &body).await.status, 202);
    }
    let shed = api.post("/v1/runs", OPERATOR_KEY, &body).await;
    assert_eq!(shed.status, 503, "{}", shed.text);
    assert_eq!(shed.error_code(), Some("queue_full"));
    assert!(shed.header("retry-after").is_some());
    assert_eq!(shed.body["detail"]["queue_depth"], 2);
    let run_id = shed.body["detail"]["run_id"]
        .as_str()
        .expect("the shed run's id");
    let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
    assert_eq!(run.body["status"], "failed");
    assert_eq!(run.body["error"]["type"], "queue_full");
    let metrics = api.send("GET", "/metrics", &[], None).await;
    assert!(
        metrics.text.contains("kneo_runs_rejected_total 1"),
        "{}",
        metrics.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_one_json_log_line_with_its_request_id() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let answer = api
        .send(
            "GET",
            "/v1/runs",
            &[
                ("authorization", "Bearer opskey123"),
                ("x-request-id", "trace-me-123"),
            ],
            None,
        )
        .await;
    assert_eq!(
        answer.header("x-request-id"),
        Some("trace-me-123"),
        "a client id is echoed"
    );
    let generated = api.send("GET", "/healthz", &[], None).await;
    let generated_id = generated
        .header("x-request-id")
        .expect("generated id")
        .to_string();
    assert_eq!(
        generated_id.len(),
        36,
        "a UUID is generated: {generated_id}"
    );
    // The line is written just after the answer: wait for it, bounded only to fail instead of
    // hanging.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (log, line) = loop {
        let log = server.log();
        let line = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| {
                entry["request_id"] == "trace-me-123" && entry["event"] == "http_request"
            });
        match line {
            Some(line) => break (log, line),
            None if std::time::Instant::now() > deadline => {
                panic!("no access log line for trace-me-123 in:\n{log}")
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(line["target"], "kneo_serv.service");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/v1/runs");
    assert_eq!(line["status_code"], 200);
    assert!(line["duration_ms"].is_number());
    assert!(!log.contains("opskey123"), "the key never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_and_readiness_transitions_are_recorded_as_service_events() {
    let mut server =
        KneoServer::start(ServerOptions::default().env("KNEO_SERV_HEALTH_PROVIDERS", "openai"));
    let api = Api::new(&server.url);
    assert_eq!(api.send("GET", "/readyz", &[], None).await.status, 503);
    server.restart_with(&[("KNEO_SERV_HEALTH_PROVIDERS", "")]);
    assert_eq!(api.send("GET", "/readyz", &[], None).await.status, 200);
    // Events are written just after the answer that observed them: wait for them, bounded
    // only to fail instead of hanging.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let events = loop {
        let events = api
            .get("/v1/service/events?sort_order=asc", OPERATOR_KEY)
            .await;
        let recorded = events.body["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let became_ready = recorded
            .iter()
            .any(|e| e["event_type"] == "readiness.changed" && e["details"]["ready"] == true);
        if became_ready || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    let starts = kinds
        .iter()
        .filter(|kind| **kind == "service.started")
        .count();
    assert_eq!(starts, 2, "{kinds:?}");
    let transitions: Vec<&Value> = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event_type"] == "readiness.changed")
        .collect();
    assert!(
        transitions.iter().any(|e| e["details"]["ready"] == false
            && e["details"]["failing"]["providers"] == "missing_secret"),
        "{}",
        events.text
    );
    assert!(
        transitions.iter().any(|e| e["details"]["ready"] == true),
        "{}",
        events.text
    );
    let start = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event_type"] == "service.started")
        .expect("a start");
    assert_eq!(start["details"]["store_kind"], "sqlite");
    assert_eq!(start["details"]["schema_version"], 2);
    assert!(start["host"].as_str().is_some_and(|host| !host.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_counted_by_route_key_and_tool_and_conflicts_are_audited() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let body = json!({"spec_path": "specs/hello.yaml", "input": "one"});
    assert_eq!(api.post("/v1/runs", VIEWER_KEY, &body).await.status, 403);
    assert_eq!(api.post("/v1/runs", VIEWER_KEY, &body).await.status, 403);
    assert_eq!(
        api.get("/v1/runs/no-such-run", "not-a-key").await.status,
        401
    );
    let probe = api
        .send("GET", "/v1/runs", &[("user-agent", "kneo-ops/0.1.0")], None)
        .await;
    assert_eq!(probe.status, 401);
    let idempotent = |input: &str| {
        let api = api.clone();
        let body = json!({"spec_path": "specs/hello.yaml", "input": input});
        async move {
            api.send(
                "POST",
                "/v1/runs",
                &[
                    ("authorization", "Bearer opskey123"),
                    ("idempotency-key", "same-key-1"),
                ],
                Some(&body),
            )
            .await
        }
    };
    assert_eq!(idempotent("first").await.status, 200);
    let conflict = idempotent("second").await;
    assert_eq!(conflict.error_code(), Some("idempotency_key_conflict"));

    let metrics = api.send("GET", "/metrics", &[], None).await.text;
    for series in [
        r#"kneo_http_error_answers_total{route="/v1/runs",method="POST",status="403",error="forbidden",key="view",client="other"} 2"#,
        r#"kneo_http_error_answers_total{route="/v1/runs/{run_id}",method="GET",status="401",error="unauthorized",key="(unknown)",client="other"} 1"#,
        r#"kneo_http_error_answers_total{route="/v1/runs",method="GET",status="401",error="unauthorized",key="(none)",client="kneo-ops"} 1"#,
        r#"kneo_http_error_answers_total{route="/v1/runs",method="POST",status="409",error="idempotency_key_conflict",key="ops",client="other"} 1"#,
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    assert!(
        !metrics.contains("viewkey123") && !metrics.contains("not-a-key"),
        "key names, never keys: {metrics}"
    );
    assert!(
        metrics.contains("# TYPE kneo_http_requests_total counter\n"),
        "the kneo-serv families keep their names and types"
    );

    let audit = api
        .get(
            "/v1/audit-events?event_type=idempotency.conflict",
            "opskey123",
        )
        .await;
    let events = audit.body["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{}", audit.text);
    assert_eq!(events[0]["actor"], "ops");
    assert_eq!(events[0]["metadata"]["scope"], "runs:create");
    assert_eq!(events[0]["metadata"]["error"], "idempotency_key_conflict");
    assert!(
        !audit.text.contains("same-key-1"),
        "the key itself is not recorded: {}",
        audit.text
    );
}
