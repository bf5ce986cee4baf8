//! Graph workflows and `on_error` on a real server, on both stores: spec_format.md § 6.2 (both
//! branches), § 6.3, `status_is: failed` routing, `max_steps`, a human node whose answer routes
//! through the edges, and a graph run that survives `kill -9` without re-running a completed node.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::time::{Duration, Instant};

use engine_support::{Client, event_types, fixed_answer_script, write_spec};
use kneo_testkit::server::{KneoServer, REVIEWER_KEY, ServerOptions};
use serde_json::{Value, json};

/// § 6.2 with `command:` functions that answer fixed strings; `review` answers `verdict`.
fn review_graph(server: &KneoServer, verdict: &str) -> String {
    let retrieve = fixed_answer_script(server, "retrieve", "retrieved facts");
    let review = fixed_answer_script(server, &format!("review_{verdict}"), verdict);
    let revise = fixed_answer_script(server, "revise", "revised draft");
    format!(
        r#"version: v1
agent: {{name: graph-root, model: {{provider: dummy, name: m}}, strategy: {{type: simple}}}}
workflow:
  type: graph
  name: review-graph
  start: retrieve
  max_steps: 10
  nodes:
    retrieve: {{id: retrieve, kind: function, ref: retrieve}}
    review:   {{id: review,   kind: function, ref: review}}
    revise:   {{id: revise,   kind: function, ref: revise}}
    finalize: {{id: finalize, kind: function, ref: finalize}}
  edges:
    - {{from: retrieve, to: review}}
    - {{from: review, to: revise,   condition: {{type: output_contains, value: REVISION_REQUIRED}}}}
    - {{from: review, to: finalize, condition: {{type: output_contains, value: APPROVED}}}}
    - {{from: revise, to: finalize}}
components:
  functions:
    retrieve: {{command: [sh, {retrieve}]}}
    review:   {{command: [sh, {review}]}}
    revise:   {{command: [sh, {revise}]}}
    finalize: {{implementation: examples.human_functions.publish_report}}
"#
    )
}

const RESILIENT: &str = r#"version: v1
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
"#;

const FAILURE_BRANCH: &str = r#"version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: graph
  name: failure-branch
  start: fetch
  nodes:
    fetch:   {id: fetch,   kind: function, ref: cached}
    enrich:  {id: enrich,  kind: function, ref: flaky, on_error: continue}
    recover: {id: recover, kind: function, ref: shout}
    report:  {id: report,  kind: function, ref: report}
  edges:
    - {from: fetch, to: enrich}
    - {from: enrich, to: recover, condition: {type: status_is, value: failed}}
    - {from: enrich, to: report}
    - {from: recover, to: report}
components:
  functions:
    cached: {implementation: examples.app_functions.cached_fetch}
    flaky:  {implementation: examples.app_functions.flaky_enrich}
    shout:  {implementation: kneo.builtin.uppercase}
    report: {implementation: examples.app_functions.build_report}
"#;

const ENDLESS_LOOP: &str = r#"version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: graph
  name: ping-pong
  start: ping
  max_steps: 3
  nodes:
    ping: {id: ping, kind: function, ref: echo}
    pong: {id: pong, kind: function, ref: echo}
  edges:
    - {from: ping, to: pong}
    - {from: pong, to: ping}
components:
  functions:
    echo: {implementation: kneo.builtin.echo}
"#;

const HUMAN_GATE: &str = r#"version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: graph
  name: graph-human-approval
  start: draft
  nodes:
    draft:   {id: draft,   kind: function, ref: draft_report}
    approve: {id: approve, kind: human,    ref: reviewer}
    archive: {id: archive, kind: function, ref: archive}
    publish: {id: publish, kind: function, ref: publish_report}
  edges:
    - {from: draft, to: approve}
    - {from: approve, to: archive, condition: {type: output_contains, value: Rejected by human reviewer}}
    - {from: approve, to: publish}
components:
  functions:
    draft_report:   {implementation: examples.human_functions.draft_report}
    publish_report: {implementation: examples.human_functions.publish_report}
    archive:        {implementation: kneo.builtin.uppercase}
  humans:
    reviewer: {description: Approve the draft.}
"#;

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn graph_branches(server: &KneoServer, client: &Client) {
    for (verdict, visited, output) in [
        (
            "APPROVED",
            vec!["retrieve", "review", "finalize"],
            "Published: APPROVED",
        ),
        (
            "REVISION_REQUIRED",
            vec!["retrieve", "review", "revise", "finalize"],
            "Published: revised draft",
        ),
    ] {
        let path = write_spec(
            server,
            &format!("review_{verdict}.yaml"),
            &review_graph(server, verdict),
        );
        let result = client.run(&path, "quarterly numbers").await;
        assert_eq!(result["status"], "completed", "{verdict}: {result}");
        assert_eq!(result["output_text"], output);
        let run_id = result["run_id"].as_str().expect("run id");
        let run = client.run_state(run_id).await;
        assert_eq!(strings(&run["visited_nodes"]), visited, "{run}");
        assert_eq!(run["current_node_id"], Value::Null);
        assert_eq!(run["metadata"]["workflow"]["visited_nodes"], json!(visited));

        let trace = client.trace(run_id).await;
        let started: Vec<&str> = trace
            .iter()
            .filter(|event| event["type"] == "node_started")
            .filter_map(|event| event["current_node_id"].as_str())
            .collect();
        assert_eq!(started, visited, "node_started events: {trace:?}");
        let completed = trace
            .iter()
            .filter(|event| event["type"] == "node_completed")
            .count();
        assert_eq!(completed, visited.len());
        assert!(
            event_types(&trace).contains(&"command_completed".to_string()),
            "command functions leave their output in the trace"
        );

        let checkpoints = client.checkpoints(run_id).await;
        let per_node: Vec<&str> = checkpoints
            .iter()
            .filter(|checkpoint| checkpoint["type"] == "step_completed")
            .filter_map(|checkpoint| checkpoint["node_id"].as_str())
            .collect();
        assert_eq!(per_node, visited, "one checkpoint per node");
    }
}

async fn on_error_policies(server: &KneoServer, client: &Client) {
    let path = write_spec(server, "resilient.yaml", RESILIENT);
    let result = client.run(&path, "sales data").await;
    assert_eq!(result["status"], "completed", "{result}");
    let output = result["output_text"].as_str().unwrap_or_default();
    assert!(output.contains("[cached]"), "{output}");

    let path = write_spec(server, "failure_branch.yaml", FAILURE_BRANCH);
    let result = client.run(&path, "sales data").await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["output_text"], "Report: [CACHED] SALES DATA");
    let run_id = result["run_id"].as_str().expect("run id");
    let run = client.run_state(run_id).await;
    assert_eq!(
        strings(&run["visited_nodes"]),
        ["fetch", "enrich", "recover", "report"]
    );
    let checkpoints = client.checkpoints(run_id).await;
    let failed = checkpoints
        .iter()
        .find(|checkpoint| checkpoint["type"] == "step_failed")
        .expect("a step_failed checkpoint for the continued node");
    assert_eq!(failed["node_id"], "enrich");
    let trace = client.trace(run_id).await;
    let node_failed = trace
        .iter()
        .find(|event| event["type"] == "node_failed")
        .expect("node_failed");
    assert_eq!(node_failed["current_node_id"], "enrich");
    assert_eq!(node_failed["metadata"]["next_node_id"], "recover");

    let path = write_spec(server, "ping_pong.yaml", ENDLESS_LOOP);
    let result = client.run(&path, "x").await;
    assert_eq!(result["status"], "failed", "{result}");
    let run = client
        .run_state(result["run_id"].as_str().expect("id"))
        .await;
    // kneo-serv's error type; the message says what happened and the fix.
    assert_eq!(run["error"]["type"], "max_iterations");
    let message = run["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_steps=3"), "{message}");
    assert_eq!(
        run["metadata"]["workflow"]["termination"], "max_steps",
        "{run}"
    );
    assert_eq!(strings(&run["visited_nodes"]), ["ping", "pong", "ping"]);
}

async fn human_node_routes_its_answer(server: &KneoServer, client: &Client) {
    let path = write_spec(server, "graph_human.yaml", HUMAN_GATE);
    for (decision, visited, output) in [
        (
            "rejected",
            vec!["draft", "approve", "archive"],
            "REJECTED BY HUMAN REVIEWER",
        ),
        (
            "approved",
            vec!["draft", "approve", "publish"],
            "Published: Draft report for: Q3",
        ),
    ] {
        let blocked = client.run(&path, "Q3").await;
        assert_eq!(blocked["status"], "blocked", "{blocked}");
        let run_id = blocked["run_id"].as_str().expect("run id").to_string();
        let continuation = blocked["continuation_id"]
            .as_str()
            .expect("a continuation")
            .to_string();
        let run = client.run_state(&run_id).await;
        assert_eq!(run["current_node_id"], "approve");
        assert_eq!(strings(&run["visited_nodes"]), ["draft"]);
        let request_id = run["pending_human_request"]["id"]
            .as_str()
            .expect("request id")
            .to_string();
        let resumed = client
            .send_as(
                REVIEWER_KEY,
                reqwest::Method::POST,
                &format!("/v1/human-tasks/{continuation}/resume"),
                Some(json!({"request_id": request_id, "decision": decision})),
            )
            .await;
        assert_eq!(resumed.status, 200, "{}", resumed.text);
        assert_eq!(resumed.body["status"], "completed", "{}", resumed.text);
        assert_eq!(resumed.body["output_text"], output);
        let run = client.run_state(&run_id).await;
        assert_eq!(strings(&run["visited_nodes"]), visited, "{run}");
    }
}

async fn scenarios(server: &KneoServer) {
    let client = Client::new(server);
    graph_branches(server, &client).await;
    on_error_policies(server, &client).await;
    human_node_routes_its_answer(server, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_and_on_error_on_the_embedded_store() {
    let server = KneoServer::start(ServerOptions::default());
    scenarios(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_and_on_error_on_postgres() {
    let database = kneo_testkit::postgres::shared_cluster().create_database();
    let server = KneoServer::start(ServerOptions::default().postgres(&database));
    scenarios(&server).await;
}

const COUNTED_GRAPH: &str = r#"version: v1
agent: {name: root, model: {provider: dummy, name: m}}
workflow:
  type: graph
  name: counted-graph
  start: first
  nodes:
    first: {id: first, kind: function, ref: record}
    nap:   {id: nap,   kind: function, ref: sleep}
    last:  {id: last,  kind: function, ref: record}
  edges:
    - {from: first, to: nap}
    - {from: nap, to: last}
components:
  functions:
    record: {implementation: kneo.builtin.record_invocation}
    sleep:  {implementation: kneo.builtin.sleep}
"#;

/// `kill -9` while a graph run sleeps in its second node: after a restart the run continues
/// from that node; the first node, which completed before the kill, never runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_run_continues_after_its_last_completed_node_after_kill_9() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let log_path = log.path().display().to_string();
    let mut server =
        KneoServer::start(ServerOptions::default().env("KNEO_INVOCATION_LOG", &log_path));
    let path = write_spec(&server, "counted_graph.yaml", COUNTED_GRAPH);
    let client = Client::new(&server);
    let run_id = client.submit(&path, "3", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = client.run_state(&run_id).await;
        if run["current_node_id"] == "nap" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never reached nap: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    server.restart();
    let client = Client::new(&server);
    let run = client.wait_for_end(&run_id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(strings(&run["visited_nodes"]), ["first", "nap", "last"]);
    let log = std::fs::read_to_string(&log_path).expect("log");
    let firsts = log
        .lines()
        .filter(|line| line.contains(&format!("{run_id} first ")))
        .count();
    assert_eq!(firsts, 1, "the completed node ran again: {log}");
    assert!(log.contains(&format!("{run_id} last ")), "{log}");
}
