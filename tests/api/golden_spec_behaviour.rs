//! Spec behaviour of kneo-serv 1.2: every run exchange of the ext recordings' C categories
//! (guardrails, workflows, graph runtime, memory, agent, skills, tools runtime) replayed in order
//! against a fresh kneo server, comparing what a user of a spec sees: the HTTP status, the run
//! status, the error code and type, `metadata.workflow.visited_*`, `metadata.memory`, the
//! output, the agents' message counts, and the trace event types (kneo's own events may come in
//! between: step events, and `guardrail_triggered` naming the guardrail).
//!
//! Route views (`/runs/{id}/graph`, `/specs/graph`, `/specs/explain`) are replayed by the route
//! module, validation verdicts (`/specs/validate`, `/specs/policy-report`) by the spec tests.
//! Where kneo differs on purpose, [`DIVERGENCES`] says what kneo answers instead, with the reason
//! (docs/service_api.md, "Where kneo differs on purpose").

use kneo_testkit::golden::{Golden, ext};
use kneo_testkit::http::{Answer, Api};
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, ServerOptions};
use kneo_tests::replay::{IdMap, replay};
use serde_json::Value;

/// The categories whose run exchanges are spec behaviour.
const CATEGORIES: [&str; 7] = [
    "C-guardrails",
    "C-workflows",
    "C-graph",
    "C-memory",
    "C-agent",
    "C-skills",
    "C-tools",
];

/// What kneo answers where it differs from a recording on purpose.
#[derive(Debug, Clone, Copy)]
struct Divergence {
    /// The status and error code kneo answers instead (`None`: as recorded).
    status: Option<(u16, Option<&'static str>)>,
    /// The run status kneo reports instead (`None`: as recorded).
    run_status: Option<&'static str>,
    /// The run's error type instead (`None`: as recorded).
    error_type: Option<&'static str>,
    /// Output, message counts and checkpoints follow kneo's behaviour, not the recording's.
    own_output: bool,
    why: &'static str,
}

const AS_RECORDED: Divergence = Divergence {
    status: None,
    run_status: None,
    error_type: None,
    own_output: false,
    why: "",
};

const fn answers(status: u16, code: Option<&'static str>, why: &'static str) -> Divergence {
    Divergence {
        status: Some((status, code)),
        own_output: true,
        why,
        ..AS_RECORDED
    }
}

const AGENT_JUDGE: &str =
    "type: agent guardrails run their judge (kneo-serv answers 404 Unknown component reference)";
const STEP_OUTPUT_REWRITE: &str = "a workflow-stage redact/revise reaches the next step and the output (kneo-serv rewrites only the checkpoint)";
const MAX_ITERATIONS: &str = "a run stopped at max iterations answers status failed, as it is stored (kneo-serv's body says max_iterations)";
const RUNTIME_REFUSED: &str = "a runtime that cannot run the agent is a validation error, so validate and run agree (kneo-serv answers 500)";

/// Recording number → what kneo answers instead, and why.
const DIVERGENCES: &[(&str, Divergence)] = &[
    (
        "188",
        answers(422, Some("guardrail_violation"), AGENT_JUDGE),
    ),
    (
        "189",
        Divergence {
            error_type: Some("GuardrailViolation"),
            own_output: true,
            why: AGENT_JUDGE,
            ..AS_RECORDED
        },
    ),
    (
        "199",
        answers(422, Some("guardrail_violation"), AGENT_JUDGE),
    ),
    (
        "211",
        answers(422, Some("guardrail_violation"), AGENT_JUDGE),
    ),
    (
        "222",
        answers(422, Some("guardrail_violation"), AGENT_JUDGE),
    ),
    (
        "225",
        Divergence {
            own_output: true,
            why: STEP_OUTPUT_REWRITE,
            ..AS_RECORDED
        },
    ),
    (
        "226",
        Divergence {
            own_output: true,
            why: STEP_OUTPUT_REWRITE,
            ..AS_RECORDED
        },
    ),
    (
        "228",
        Divergence {
            own_output: true,
            why: STEP_OUTPUT_REWRITE,
            ..AS_RECORDED
        },
    ),
    (
        "229",
        Divergence {
            own_output: true,
            why: STEP_OUTPUT_REWRITE,
            ..AS_RECORDED
        },
    ),
    (
        "230",
        Divergence {
            own_output: true,
            why: STEP_OUTPUT_REWRITE,
            ..AS_RECORDED
        },
    ),
    (
        "231",
        answers(
            422,
            Some("guardrail_violation"),
            "workflow guardrails check every step's output, function steps included",
        ),
    ),
    (
        "237",
        answers(
            400,
            Some("spec_invalid"),
            "an unknown function guardrail ref is a validation error (kneo-serv: 404 at run)",
        ),
    ),
    (
        "294",
        Divergence {
            run_status: Some("failed"),
            why: MAX_ITERATIONS,
            ..AS_RECORDED
        },
    ),
    (
        "297",
        Divergence {
            run_status: Some("failed"),
            why: MAX_ITERATIONS,
            ..AS_RECORDED
        },
    ),
    (
        "311",
        answers(
            200,
            None,
            "an agent summarizer runs (kneo-serv answers 404 Unknown component reference)",
        ),
    ),
    (
        "312",
        answers(
            400,
            Some("spec_invalid"),
            "an unknown memory policy is a validation error, so validate and run agree",
        ),
    ),
    (
        "320",
        Divergence {
            run_status: Some("failed"),
            own_output: true,
            why: MAX_ITERATIONS,
            ..AS_RECORDED
        },
    ),
    (
        "321",
        Divergence {
            own_output: true,
            why: MAX_ITERATIONS,
            ..AS_RECORDED
        },
    ),
    (
        "322",
        Divergence {
            run_status: Some("failed"),
            own_output: true,
            why: MAX_ITERATIONS,
            ..AS_RECORDED
        },
    ),
    (
        "327",
        Divergence {
            run_status: Some("failed"),
            own_output: true,
            why: "provider openai calls the OpenAI-compatible endpoint in every mode (no key here: MissingSecretError)",
            ..AS_RECORDED
        },
    ),
    ("329", answers(400, Some("spec_invalid"), RUNTIME_REFUSED)),
    (
        "330",
        Divergence {
            own_output: true,
            run_status: Some("completed"),
            error_type: Some(""),
            why: "the newest run is another one: 329 never created its run",
            ..AS_RECORDED
        },
    ),
    (
        "331",
        answers(
            200,
            None,
            "fallback_mode: bridge rescues an agent native mode cannot run (kneo-serv answers 500)",
        ),
    ),
    (
        "332",
        answers(
            200,
            None,
            "native openai calls the endpoint (no key here: the run fails with MissingSecretError)",
        ),
    ),
    ("333", answers(400, Some("spec_invalid"), RUNTIME_REFUSED)),
    (
        "381",
        answers(
            200,
            None,
            "not yet: kneo does not check tool arguments against the tool's JSON Schema",
        ),
    ),
    (
        "384",
        answers(
            200,
            None,
            "kneo keeps its own permission keys (network, allow, …) beside kneo-serv's",
        ),
    ),
];

fn divergence(golden: &Golden) -> Divergence {
    DIVERGENCES
        .iter()
        .find(|(number, _)| golden.name.starts_with(&format!("{number}_")))
        .map_or(AS_RECORDED, |(_, divergence)| *divergence)
}

/// Route views and validation verdicts, replayed elsewhere.
fn replayed_elsewhere(golden: &Golden) -> bool {
    let path = &golden.request.path;
    path.contains("/graph") || path.starts_with("/v1/specs/")
}

/// What a user of a spec sees in one answer.
#[derive(Debug, Default, PartialEq)]
struct Facts {
    error: Option<String>,
    violation_type: Option<String>,
    run_status: Option<String>,
    error_type: Option<String>,
    output: Option<String>,
    visited_steps: Option<Value>,
    visited_nodes: Option<Value>,
    memory: Option<Value>,
    /// `message_count` of the agents' `run_completed` events.
    message_counts: Vec<Value>,
    trace_types: Vec<String>,
    checkpoints: Vec<(String, Value)>,
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_string)
}

/// The facts of a run body (a run response, a run record or a list's first item), a trace or
/// a checkpoint page.
fn facts(body: &Value) -> Facts {
    let run = body
        .get("runs")
        .and_then(|runs| runs.get(0))
        .unwrap_or(body);
    let metadata = run.get("metadata").cloned().unwrap_or(Value::Null);
    let workflow = metadata.get("workflow").cloned().unwrap_or(Value::Null);
    let embedded = metadata
        .pointer("/trace/events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let events = body
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or(embedded);
    Facts {
        error: text(body.pointer("/detail/error")),
        violation_type: text(body.pointer("/detail/violation_type")),
        run_status: text(run.get("status")),
        error_type: run
            .get("error")
            .and_then(|error| error.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string),
        output: text(run.get("output_text")),
        visited_steps: workflow.get("visited_steps").cloned(),
        visited_nodes: workflow.get("visited_nodes").cloned(),
        memory: metadata.get("memory").cloned(),
        message_counts: events
            .iter()
            .filter(|event| event["type"] == "run_completed")
            .map(|event| event["metadata"]["message_count"].clone())
            .collect(),
        trace_types: body
            .get("events")
            .and_then(Value::as_array)
            .map(|events| {
                events
                    .iter()
                    .filter_map(|event| text(event.get("type")))
                    .collect()
            })
            .unwrap_or_default(),
        checkpoints: body
            .get("checkpoints")
            .and_then(Value::as_array)
            .map(|checkpoints| {
                checkpoints
                    .iter()
                    .map(|checkpoint| {
                        (
                            text(checkpoint.get("type")).unwrap_or_default(),
                            checkpoint.get("step_id").cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Whether `wanted` occurs in `seen` in order (other items may come in between).
fn in_order(wanted: &[String], seen: &[String]) -> bool {
    let mut seen = seen.iter();
    wanted.iter().all(|item| seen.any(|other| other == item))
}

/// Compares our answer with the recording, allowing what `divergence` says.
fn compare(golden: &Golden, answer: &Answer, divergence: Divergence) {
    let context = format!(
        "golden {} ({} {})",
        golden.name, golden.request.method, golden.request.path
    );
    let reason = if divergence.why.is_empty() {
        String::new()
    } else {
        format!(" [kneo differs on purpose: {}]", divergence.why)
    };
    let status = divergence
        .status
        .map_or(golden.response.status, |(status, _)| status);
    assert_eq!(
        answer.status, status,
        "{context}{reason}: status; body {}",
        answer.text
    );
    let recorded = facts(&golden.response.body);
    let ours = facts(&answer.body);
    if let Some((_, code)) = divergence.status {
        // kneo's own answer: its status and error code are the contract here.
        assert_eq!(ours.error.as_deref(), code, "{context}{reason}: error code");
        return;
    }
    assert_eq!(
        ours.error, recorded.error,
        "{context}: error code; {}",
        answer.text
    );
    assert_eq!(
        ours.violation_type, recorded.violation_type,
        "{context}: violation_type"
    );
    if status >= 400 {
        return;
    }
    let run_status = divergence
        .run_status
        .map(str::to_string)
        .or(recorded.run_status.clone());
    assert_eq!(ours.run_status, run_status, "{context}{reason}: run status");
    let error_type = match divergence.error_type {
        Some("") => None,
        Some(kind) => Some(kind.to_string()),
        None => recorded.error_type.clone(),
    };
    assert_eq!(ours.error_type, error_type, "{context}{reason}: error type");
    if divergence.own_output {
        return;
    }
    if recorded.output.is_some() && recorded.run_status.as_deref() != Some("max_iterations") {
        assert_eq!(ours.output, recorded.output, "{context}: output_text");
    }
    assert_eq!(
        ours.visited_steps, recorded.visited_steps,
        "{context}: metadata.workflow.visited_steps"
    );
    assert_eq!(
        ours.visited_nodes, recorded.visited_nodes,
        "{context}: metadata.workflow.visited_nodes"
    );
    assert_eq!(ours.memory, recorded.memory, "{context}: metadata.memory");
    if !recorded.message_counts.is_empty() {
        assert_eq!(
            ours.message_counts, recorded.message_counts,
            "{context}: the agents' run_completed message counts"
        );
    }
    assert!(
        in_order(&recorded.trace_types, &ours.trace_types),
        "{context}: trace event types {:?} not in order in ours {:?}",
        recorded.trace_types,
        ours.trace_types
    );
    assert_eq!(
        ours.checkpoints, recorded.checkpoints,
        "{context}: checkpoints"
    );
}

/// A list request with filters this server does not serve yet falls back to the newest run.
async fn replay_list(api: &Api, ids: &IdMap, golden: &Golden) -> Answer {
    let answer = replay(api, ids, golden).await;
    if answer.status == 422 && answer.error_code() == Some("unknown_query_parameters") {
        let mut fallback = golden.clone();
        fallback.request.path = "/v1/runs?limit=1".into();
        return replay(api, ids, &fallback).await;
    }
    answer
}

async fn replay_categories(server: &KneoServer) {
    let api = Api::new(&server.url);
    for category in CATEGORIES {
        let mut ids = IdMap::default();
        let recordings = ext::category(category);
        assert!(!recordings.is_empty(), "no recordings in {category}");
        for golden in recordings {
            if replayed_elsewhere(&golden) {
                continue;
            }
            let is_list =
                golden.request.method == "GET" && golden.request.path.starts_with("/v1/runs?");
            let answer = if is_list {
                replay_list(&api, &ids, &golden).await
            } else {
                replay(&api, &ids, &golden).await
            };
            compare(&golden, &answer, divergence(&golden));
            if answer.status < 300 {
                ids.learn(&golden.response.body, &answer.body);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_behaviour_replays_on_the_embedded_store() {
    let server = KneoServer::start(ServerOptions::default().golden_ext_specs());
    replay_categories(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_behaviour_replays_on_postgres() {
    let url = shared_cluster().create_database();
    let server = KneoServer::start(ServerOptions::default().golden_ext_specs().postgres(&url));
    replay_categories(&server).await;
}

/// The divergences the table allows are the ones docs/service_api.md lists, by number.
#[test]
fn every_divergence_is_documented() {
    let docs = std::fs::read_to_string(kneo_testkit::workspace::root().join("docs/service_api.md"))
        .expect("read docs/service_api.md");
    let section = docs
        .split("## Where kneo differs on purpose")
        .nth(1)
        .expect("docs/service_api.md has a \"Where kneo differs on purpose\" section");
    let table_cells: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix('|'))
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split(','))
        .map(str::trim)
        .collect();
    for (number, _) in DIVERGENCES {
        assert!(
            section.contains(&format!("#{number}")) || table_cells.contains(number),
            "divergence #{number} is not listed in docs/service_api.md"
        );
    }
}
