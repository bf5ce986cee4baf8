//! Every recorded kneo-serv 1.2.0 answer parses into its wire type (the compatibility contract).

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kneo_client::wire::{
    AuditEventList, CheckpointPage, ErrorBody, HealthBody, HumanTaskDetail, HumanTaskList,
    MetricsSnapshot, Readiness, Run, RunList, TracePage,
};
use kneo_testkit::golden;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn parse<T: DeserializeOwned>(name: &str) -> T {
    let recorded = golden::load(name);
    serde_json::from_value(recorded.response.body.clone()).unwrap_or_else(|error| {
        panic!(
            "golden {} does not parse as {}: {error}",
            recorded.name,
            std::any::type_name::<T>()
        )
    })
}

#[test]
fn health_bodies_parse() {
    let health: HealthBody = parse("01");
    assert_eq!(health.version.as_deref(), Some("1.2.0"));
    let live: HealthBody = parse("02");
    assert_eq!(live.metadata.status.as_deref(), Some("alive"));
    for name in ["03", "04", "46"] {
        let readiness =
            Readiness::from_value(&golden::load(name).response.body).expect("readiness parses");
        assert!(readiness.ready, "{name}");
        assert_eq!(readiness.checks.len(), 8, "{name}");
    }
    let not_ready =
        Readiness::from_value(&golden::load("47").response.body).expect("the 503 envelope parses");
    assert!(!not_ready.ready);
    let failing: Vec<_> = not_ready.failing().map(|c| c.name.clone()).collect();
    assert_eq!(failing, ["providers", "mcp"]);
    assert_eq!(
        not_ready.check("providers").map(|c| c.missing_secrets()),
        Some(vec!["OPENAI_API_KEY".to_string()])
    );
}

#[test]
fn run_bodies_parse() {
    let run: Run = parse("09");
    assert!(run.status.is_terminal());
    let trace: TracePage = parse("10");
    assert_eq!(trace.events.len(), 2);
    let checkpoints: CheckpointPage = parse("11");
    assert_eq!(
        checkpoints.checkpoints.first().and_then(|c| c.sequence),
        Some(1)
    );
    let list: RunList = parse("15");
    assert!(!list.runs.is_empty());
    let filtered: RunList = parse("16");
    assert!(filtered.page.total.is_some());
}

#[test]
fn human_task_and_audit_bodies_parse() {
    let tasks: HumanTaskList = parse("27");
    assert!(tasks.tasks.iter().all(|t| t.expires_at.is_some()));
    let task: HumanTaskDetail = parse("28");
    assert!(!task.continuation_id.is_empty());
    let audit: AuditEventList = parse("38");
    assert_eq!(audit.events.len(), 2);
    let recent: AuditEventList = parse("42");
    assert_eq!(recent.page.total, Some(580));
}

#[test]
fn error_bodies_parse() {
    for recorded in golden::all() {
        let status = recorded.response.status;
        if status < 400 || recorded.name.starts_with("47") {
            continue;
        }
        let body: &Value = &recorded.response.body;
        let error = ErrorBody::from_value(body).unwrap_or_else(|| {
            panic!(
                "{}: HTTP {status} body is not an envelope: {body}",
                recorded.name
            )
        });
        assert!(
            error.code.is_some() || error.message.is_some(),
            "{}",
            recorded.name
        );
    }
}

#[test]
fn metrics_text_parses() {
    let recorded = golden::load("45");
    let text = recorded.response.body.as_str().expect("metrics are text");
    let metrics = MetricsSnapshot::parse(text);
    assert!(
        metrics.get("kneo_runs_started_total").is_some(),
        "{:?}",
        metrics.samples.keys().collect::<Vec<_>>()
    );
}
