//! Request `overrides` are merged over the spec before it is validated and run (kneo-serv 1.2's
//! deep merge: mappings merge, lists replace, `null` / `{__delete__: true}` remove), so
//! `POST /v1/specs/validate` and `POST /v1/runs` with the same overrides agree, and the file
//! behind `spec_path` is left as written for the next run.

use kneo_testkit::http::{Answer, Api};
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use serde_json::{Value, json};

use super::write_spec;

/// A draft step, then a human review: without overrides a run blocks at the review.
const REVIEWED: &str = "version: v1
agent: {name: root, model: {provider: dummy, name: echo}, system_prompt: x}
components:
  agents:
    writer: {name: writer, model: {provider: dummy, name: echo}, system_prompt: w}
  humans:
    rev: {request_type: approval}
workflow:
  name: reviewed
  type: sequential
  steps:
    - {id: draft, kind: agent, ref: writer}
    - {id: review, kind: human, ref: rev}
";

fn only_the_draft() -> Value {
    json!({"workflow": {"steps": [{"id": "draft", "kind": "agent", "ref": "writer"}]}})
}

async fn run(api: &Api, request: Value) -> Answer {
    api.post("/v1/runs", OPERATOR_KEY, &request).await
}

fn error_codes(answer: &Answer) -> Vec<String> {
    answer.body["diagnostics"]
        .as_array()
        .or_else(|| answer.body["detail"]["diagnostics"].as_array())
        .into_iter()
        .flatten()
        .filter(|diagnostic| diagnostic["severity"] == "error")
        .filter_map(|diagnostic| diagnostic["code"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_change_what_runs_and_what_validates() {
    let server = KneoServer::start(ServerOptions::default());
    write_spec(&server.dir, "reviewed.yaml", REVIEWED);
    let api = Api::new(&server.url);
    let path = json!("specs/reviewed.yaml");

    // As kneo-serv: the plain spec blocks at the review, the overridden one runs only the draft.
    let plain = run(&api, json!({"spec_path": path, "input": "hello"})).await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert_eq!(plain.body["status"], "blocked", "{}", plain.text);
    let overridden = run(
        &api,
        json!({"spec_path": path, "input": "hello", "overrides": only_the_draft()}),
    )
    .await;
    assert_eq!(overridden.status, 200, "{}", overridden.text);
    assert_eq!(
        overridden.body["status"], "completed",
        "{}",
        overridden.text
    );
    assert_eq!(
        overridden.body["metadata"]["workflow"]["visited_steps"],
        json!(["draft"]),
        "{}",
        overridden.text
    );

    // The file is unchanged for the next run without overrides (the spec cache holds it as written).
    let again = run(&api, json!({"spec_path": path, "input": "hello"})).await;
    assert_eq!(again.body["status"], "blocked", "{}", again.text);

    // Inline specs too; removing the workflow leaves a plain agent run.
    let spec = json!({
        "version": "v1",
        "agent": {"name": "root", "model": {"provider": "dummy", "name": "echo"}},
        "workflow": {"name": "one", "type": "sequential", "steps": [{"id": "only", "kind": "agent", "ref": "agent"}]},
    });
    let no_workflow = run(
        &api,
        json!({"spec": spec, "input": "hello", "overrides": {"workflow": {"__delete__": true}}}),
    )
    .await;
    assert_eq!(
        no_workflow.body["status"], "completed",
        "{}",
        no_workflow.text
    );
    assert_eq!(
        no_workflow.body["metadata"]["workflow"],
        Value::Null,
        "{}",
        no_workflow.text
    );

    // A key the schema refuses, given as an override: invalid at validate, refused at run.
    let bogus = json!({"agent": {"bogus": 1}});
    let validated = api
        .post(
            "/v1/specs/validate",
            OPERATOR_KEY,
            &json!({"spec_path": path, "overrides": bogus}),
        )
        .await;
    assert_eq!(validated.status, 200, "{}", validated.text);
    assert_eq!(validated.body["valid"], false, "{}", validated.text);
    assert_eq!(error_codes(&validated), ["E_SCHEMA"], "{}", validated.text);
    let refused = run(
        &api,
        json!({"spec_path": path, "input": "hello", "overrides": bogus}),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.error_code(),
        Some("spec_invalid"),
        "{}",
        refused.text
    );
    assert_eq!(error_codes(&refused), ["E_SCHEMA"], "{}", refused.text);

    // `null` removes a key: without its system prompt the agent is still valid.
    let validated = api
        .post(
            "/v1/specs/validate",
            OPERATOR_KEY,
            &json!({"spec_path": path, "overrides": {"agent": {"system_prompt": null}}}),
        )
        .await;
    assert_eq!(validated.body["valid"], true, "{}", validated.text);
}
