//! Hand-built probes for the unit and snapshot tests: a healthy service, a 503 with failing
//! `run_state_store` and `providers`, a down service, and a stuck queue, all at a fixed "now".

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use kneo_client::wire::{
    ErrorBody, HealthBody, HumanTaskList, MetricsSnapshot, Readiness, RunList, RunRecovery,
    ServiceEventList,
};
use kneo_client::{CallError, Reply};
use kneo_triage::triage::Probes;
use serde_json::{Value, json};

use crate::app::{Action, App, DrillData, PollOutcome, Settings, Source, SourceKind};

pub const BASE: &str = "http://127.0.0.1:8000";

/// Every snapshot's "now".
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `seconds` before [`now`], as the service writes times.
pub fn ago(seconds: i64) -> String {
    (now() - chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn epoch_in(seconds: i64) -> f64 {
    (now() + chrono::Duration::seconds(seconds)).timestamp() as f64
}

/// The four situations every screen is snapshotted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Healthy,
    Failing503,
    Down,
    StuckQueue,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Healthy,
        Scenario::Failing503,
        Scenario::Down,
        Scenario::StuckQueue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::Failing503 => "failing_503",
            Scenario::Down => "down",
            Scenario::StuckQueue => "stuck_queue",
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> T {
    match serde_json::from_value(value) {
        Ok(parsed) => parsed,
        Err(error) => panic!("fixture does not parse: {error}"),
    }
}

fn healthz_ok() -> Reply<HealthBody> {
    Reply::answered(
        format!("{BASE}/healthz"),
        200,
        parse(
            json!({"ok": true, "service": "kneo-serv-platform", "version": "0.1.0",
            "metadata": {"status": "healthy", "commit": "4f2c9e1", "started_at": ago(3600), "instance_id": "inst-1"}}),
        ),
    )
    .with_latency(Duration::from_millis(3))
}

fn checks(overrides: Value) -> Value {
    let mut checks = json!({
        "api": {"name": "api", "ok": true, "status": "ready"},
        "run_state_store": {"name": "run_state_store", "ok": true},
        "continuation_store": {"name": "continuation_store", "ok": true, "kind": "files"},
        "queue": {"name": "queue", "ok": true, "queued": 1, "running": 2, "failed": 1, "expired_leases": 0, "workers": 4},
        "runtime_registry": {"name": "runtime_registry", "ok": true, "count": 2, "names": ["dummy", "openai"]},
        "tool_registry": {"name": "tool_registry", "ok": true, "count": 3},
        "providers": {"name": "providers", "ok": true, "configured": true, "items": {
            "openai": {"name": "provider:openai", "env_var": "OPENAI_API_KEY", "present": true}}},
        "mcp": {"name": "mcp", "ok": true, "configured": false}
    });
    if let (Some(map), Some(overrides)) = (checks.as_object_mut(), overrides.as_object()) {
        for (name, value) in overrides {
            map.insert(name.clone(), value.clone());
        }
    }
    checks
}

fn readiness(overrides: Value, detailed: Option<Value>) -> (Reply<Readiness>, Reply<Readiness>) {
    let checks = checks(overrides);
    let ready = checks
        .as_object()
        .is_some_and(|c| c.values().all(|check| check["ok"] == json!(true)));
    let body = if ready {
        json!({"ok": true, "service": "kneo-serv-platform", "version": "0.1.0", "metadata": {"ready": true, "checks": checks}})
    } else {
        json!({"detail": {"error": "not_ready", "message": "One or more readiness checks failed.", "metadata": {"ready": false, "checks": checks}}})
    };
    let status = if ready { 200 } else { 503 };
    let readyz = Readiness::from_value(&body).unwrap_or_default();
    let detail_body = json!({"ok": ready, "service": "kneo-serv-platform", "version": "0.1.0", "metadata": {
        "ready": ready, "checks": checks, "details": detailed.unwrap_or(json!({})), "store_kind": "postgres",
        "instance": {"id": "inst-1", "host": "kneo-a", "pid": 4242, "started_at": ago(3600)},
        "identity": {"name": "ops", "scopes": ["runs:read", "runs:write", "human:read", "audit:read"]}}});
    let detail = Readiness::from_value(&detail_body).unwrap_or_default();
    (
        Reply::answered(format!("{BASE}/readyz"), status, readyz)
            .with_latency(Duration::from_millis(4)),
        Reply::answered(format!("{BASE}/v1/health"), status, detail)
            .with_latency(Duration::from_millis(6)),
    )
}

fn runs(url: &str, items: Value) -> Reply<RunList> {
    let count = items.as_array().map(Vec::len).unwrap_or(0);
    Reply::answered(
        format!("{BASE}{url}"),
        200,
        parse(json!({"runs": items, "count": count, "total": count, "limit": 100, "offset": 0})),
    )
}

fn tasks(items: Value) -> Reply<HumanTaskList> {
    let count = items.as_array().map(Vec::len).unwrap_or(0);
    Reply::answered(
        format!("{BASE}/v1/human-tasks"),
        200,
        parse(json!({"tasks": items, "count": count, "total": count})),
    )
}

fn events(items: Value) -> Reply<ServiceEventList> {
    Reply::answered(
        format!("{BASE}/v1/service/events"),
        200,
        parse(json!({"events": items})),
    )
}

fn metrics(text: &str) -> Reply<MetricsSnapshot> {
    Reply::answered(format!("{BASE}/metrics"), 200, MetricsSnapshot::parse(text))
}

fn unreachable<T>(path: &str) -> Reply<T> {
    Reply::failed(CallError::Unreachable {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        reason: "connection refused".into(),
        refused: true,
    })
    .with_latency(Duration::from_millis(1))
}

fn status_error<T>(path: &str, status: u16, body: Value) -> Reply<T> {
    Reply::failed(CallError::Status {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        status,
        error: ErrorBody::from_value(&body).map(Box::new),
    })
}

fn run(id: &str, status: &str, workflow: &str, created: i64, updated: i64) -> Value {
    json!({"id": id, "status": status, "workflow_name": workflow, "workflow_kind": "sequential",
        "current_step_id": if status == "running" { json!("draft") } else { Value::Null },
        "created_at": ago(created), "updated_at": ago(updated)})
}

fn started_events() -> Value {
    json!([
        {"id": "ev-3", "event_type": "readiness.changed", "created_at": ago(3500), "version": "0.1.0", "host": "kneo-a",
            "details": {"ready": true, "failing": {}, "previous_ready": null}},
        {"id": "ev-2", "event_type": "service.started", "created_at": ago(3600), "version": "0.1.0", "host": "kneo-a",
            "details": {"version": "0.1.0", "schema_version": 4, "store_kind": "postgres", "pid": 4242}},
        {"id": "ev-1", "event_type": "service.stopped", "created_at": ago(3700), "version": "0.0.9", "host": "kneo-a",
            "details": {"pid": 4100}}
    ])
}

/// The probes of one scenario at `observed_at`.
pub fn probes(scenario: Scenario) -> Probes {
    let mut probes = match scenario {
        Scenario::Healthy => healthy(),
        Scenario::Failing503 => failing_503(),
        Scenario::Down => down(),
        Scenario::StuckQueue => stuck_queue(),
    };
    probes.key_given = true;
    probes
}

fn healthy() -> Probes {
    let mut probes = Probes::new(BASE, now(), healthz_ok());
    let (readyz, detail) = readiness(json!({}), None);
    probes.readyz = Some(readyz);
    probes.health_detail = Some(detail);
    probes.queued_runs = Some(runs(
        "/v1/runs?status=queued",
        json!([run(
            "7c1e0a52-9d3b-4f0e-8a61-0c2f5b7d9e14",
            "created",
            "nightly-report",
            12,
            12
        )]),
    ));
    probes.running_runs = Some(runs(
        "/v1/runs?status=running",
        json!([
            run(
                "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a37",
                "running",
                "approval-workflow",
                95,
                8
            ),
            run(
                "a91b7e44-2c6f-4d83-b5e0-7f1a3c9d2e58",
                "running",
                "summarize",
                40,
                3
            )
        ]),
    ));
    probes.human_tasks = Some(tasks(json!([
        {"id": "c0d4e8f2-1a3b-4c5d-8e9f-0a1b2c3d4e5f", "run_id": "5e8d2c1a-7b4f-4a9e-b3d6-2f1e0c9a8b7d",
         "workflow_name": "approval-workflow", "expires_at": epoch_in(7200), "created_at": ago(600),
         "pending_human_request": {"title": "Approve the Q3 report draft", "escalated_at": null}},
        {"id": "d1e5f9a3-2b4c-4d6e-9f0a-1b2c3d4e5f60", "run_id": "6f9e3d2b-8c5a-4b0f-c4e7-3a2f1d0b9c8e",
         "workflow_name": "refund-approval", "expires_at": epoch_in(240), "created_at": ago(3300),
         "pending_human_request": {"title": "Refund over the limit: approve?", "escalated_at": null}}
    ])));
    probes.service_events = Some(events(started_events()));
    probes.metrics = Some(metrics(
        "kneo_worker_count 4\nkneo_runs_queued 1\nkneo_runs_running 2\n",
    ));
    probes
}

fn failing_503() -> Probes {
    let mut probes = Probes::new(BASE, now(), healthz_ok());
    let (readyz, detail) = readiness(
        json!({
            "run_state_store": {"name": "run_state_store", "ok": false, "error": "connection_refused",
                "message": "The run state store refuses connections.", "runbook": "§ 2.2"},
            "providers": {"name": "providers", "ok": false, "configured": true, "error": "missing_secret",
                "message": "One or more listed secrets are not set in the service's environment.", "runbook": "§ 3.2",
                "items": {"openai": {"name": "provider:openai", "env_var": "OPENAI_API_KEY", "present": false}}}
        }),
        Some(json!({"run_state_store": {"error": "connection_refused",
            "message": "connect to db.internal:5432 (database kneo): connection refused"}})),
    );
    probes.readyz = Some(readyz);
    probes.health_detail = Some(detail);
    let unavailable = json!({"detail": {"error": "store_unavailable", "message": "The run state store is unavailable.", "kind": "connection_refused"}});
    probes.queued_runs = Some(status_error("/v1/runs", 503, unavailable.clone()));
    probes.running_runs = Some(status_error("/v1/runs", 503, unavailable.clone()));
    probes.human_tasks = Some(status_error("/v1/human-tasks", 503, unavailable.clone()));
    let mut events = started_events();
    if let Some(list) = events.as_array_mut() {
        list.insert(
            0,
            json!({"id": "ev-4", "event_type": "readiness.changed", "created_at": ago(45), "version": "0.1.0", "host": "kneo-a",
                "details": {"ready": false, "failing": {"run_state_store": "connection_refused", "providers": "missing_secret"}, "previous_ready": true}}),
        );
    }
    probes.service_events = Some(Reply::answered(
        format!("{BASE}/v1/service/events"),
        200,
        parse(json!({"events": events})),
    ));
    probes.metrics = Some(metrics("kneo_worker_count 4\n"));
    probes
}

fn down() -> Probes {
    let mut probes = Probes::new(BASE, now(), unreachable("/healthz"));
    probes.readyz = Some(unreachable("/readyz"));
    probes.health_detail = Some(unreachable("/v1/health"));
    probes.queued_runs = Some(unreachable("/v1/runs"));
    probes.running_runs = Some(unreachable("/v1/runs"));
    probes.human_tasks = Some(unreachable("/v1/human-tasks"));
    probes.service_events = Some(unreachable("/v1/service/events"));
    probes.metrics = Some(unreachable("/metrics"));
    probes
}

fn stuck_queue() -> Probes {
    let mut probes = Probes::new(BASE, now(), healthz_ok());
    let (readyz, detail) = readiness(
        json!({"queue": {"name": "queue", "ok": true, "queued": 3, "running": 2, "failed": 4, "expired_leases": 1, "workers": 0}}),
        None,
    );
    probes.readyz = Some(readyz);
    probes.health_detail = Some(detail);
    probes.queued_runs = Some(runs(
        "/v1/runs?status=queued",
        json!([
            run(
                "b2c4d6e8-0a1b-4c3d-9e5f-7a8b9c0d1e2f",
                "created",
                "nightly-report",
                1500,
                1500
            ),
            run(
                "c3d5e7f9-1b2c-4d4e-8f6a-8b9c0d1e2f3a",
                "created",
                "summarize",
                420,
                420
            ),
            run(
                "d4e6f8a0-2c3d-4e5f-9a7b-9c0d1e2f3a4b",
                "created",
                "summarize",
                20,
                20
            )
        ]),
    ));
    probes.running_runs = Some(runs(
        "/v1/runs?status=running",
        json!([
            run(
                "e5f7a9b1-3d4e-4f6a-8b8c-0d1e2f3a4b5c",
                "running",
                "approval-workflow",
                2000,
                1900
            ),
            run(
                "f6a8b0c2-4e5f-4a7b-9c9d-1e2f3a4b5c6d",
                "running",
                "summarize",
                700,
                650
            )
        ]),
    ));
    let recovery: RunRecovery = parse(
        json!({"run_id": "e5f7a9b1-3d4e-4f6a-8b8c-0d1e2f3a4b5c", "status": "running",
        "queue": {"status": "running", "attempts": 1, "lease_owner": "worker-kneo-a-2", "lease_expires_at": ago(240)}}),
    );
    probes.recoveries = vec![Reply::answered(
        format!("{BASE}/v1/runs/e5f7a9b1-3d4e-4f6a-8b8c-0d1e2f3a4b5c/recovery"),
        200,
        recovery,
    )];
    probes.human_tasks = Some(tasks(json!([
        {"id": "a7b9c1d3-5f6a-4b8c-8d0e-2f3a4b5c6d7e", "run_id": "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d",
         "workflow_name": "approval-workflow", "expires_at": epoch_in(-900), "created_at": ago(87000),
         "pending_human_request": {"title": "Approve the vendor contract", "escalated_at": null}},
        {"id": "b8c0d2e4-6a7b-4c9d-9e1f-3a4b5c6d7e8f", "run_id": "b1c2d3e4-f5a6-4b7c-9d8e-0f1a2b3c4d5e",
         "workflow_name": "refund-approval", "expires_at": epoch_in(-400), "created_at": ago(4000),
         "pending_human_request": {"title": "Refund over the limit: approve?", "escalated_at": ago(300)}}
    ])));
    probes.service_events = Some(events(started_events()));
    probes.metrics = Some(metrics(
        "kneo_worker_count 0\nkneo_runs_queued 3\nkneo_runs_running 2\n",
    ));
    probes
}

/// Healthy, except that every route needing a key answers `status` (401 or 403).
pub fn key_refused(status: u16) -> Probes {
    let mut probes = probes(Scenario::Healthy);
    let body = if status == 401 {
        json!({"detail": {"error": "unauthorized", "message": "A valid Kneo service API key is required."}})
    } else {
        json!({"detail": {"error": "forbidden", "message": "Missing required scope: runs:read", "required_scope": "runs:read"}})
    };
    probes.health_detail = Some(status_error("/v1/health", status, body.clone()));
    probes.queued_runs = Some(status_error("/v1/runs", status, body.clone()));
    probes.running_runs = Some(status_error("/v1/runs", status, body.clone()));
    probes.human_tasks = Some(status_error("/v1/human-tasks", status, body.clone()));
    probes.service_events = Some(status_error("/v1/service/events", status, body));
    probes
}

/// A service that accepts connections but answers nothing within the time bound.
pub fn slow() -> Probes {
    let timeout = |path: &str| CallError::Timeout {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        after: Duration::from_secs(3),
        connected: true,
    };
    let mut probes = Probes::new(
        BASE,
        now(),
        Reply::failed(timeout("/healthz")).with_latency(Duration::from_secs(3)),
    );
    probes.readyz = Some(Reply::failed(timeout("/readyz")));
    probes.metrics = Some(Reply::failed(timeout("/metrics")));
    probes
}

/// An app after one poll of `probes`.
pub fn app_with(probes: Probes) -> App {
    let mut app = App::new(source(), Settings::default());
    app.update(Action::Polled {
        outcome: Box::new(PollOutcome {
            probes,
            failed_runs: None,
            elapsed: Duration::from_millis(9),
        }),
        at: now(),
    });
    app
}

/// The recent failed runs a poll brings along.
pub fn failed_runs(scenario: Scenario) -> Option<Reply<RunList>> {
    match scenario {
        Scenario::Healthy | Scenario::StuckQueue => Some(runs(
            "/v1/runs?status=failed",
            json!([{"id": "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d", "status": "failed", "workflow_name": "summarize",
                "error": {"type": "ProviderTimeout", "message": "provider call exceeded 30 s"},
                "created_at": ago(800), "updated_at": ago(700), "completed_at": ago(700)}]),
        )),
        Scenario::Failing503 => Some(status_error(
            "/v1/runs",
            503,
            json!({"detail": {"error": "store_unavailable", "message": "The run state store is unavailable."}}),
        )),
        Scenario::Down => Some(unreachable("/v1/runs")),
    }
}

/// The Runs screen's list for a scenario.
pub fn runs_list(scenario: Scenario) -> Result<RunList, String> {
    match scenario {
        Scenario::Down => Err("GET http://127.0.0.1:8000/v1/runs: unreachable (connection refused); is the service running there? (runbook § 1)".into()),
        Scenario::Failing503 => Err("HTTP 503 store_unavailable: The run state store is unavailable.".into()),
        Scenario::Healthy | Scenario::StuckQueue => {
            let probes = probes(scenario);
            let mut all = Vec::new();
            for list in [&probes.running_runs, &probes.queued_runs] {
                if let Some(list) = list.as_ref().and_then(|r| r.value()) {
                    all.extend(list.runs.iter().cloned());
                }
            }
            if let Some(failed) = failed_runs(scenario).and_then(|r| r.into_result().ok()) {
                all.extend(failed.runs);
            }
            all.push(parse(json!({"id": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", "status": "completed",
                "workflow_name": "summarize", "created_at": ago(1300), "updated_at": ago(1200)})));
            let total = all.len() as u64;
            Ok(RunList {
                runs: all,
                page: kneo_client::wire::PageInfo {
                    total: Some(total),
                    count: Some(total),
                    ..Default::default()
                },
            })
        }
    }
}

/// A live source at [`BASE`] with a key, polling every second.
pub fn source() -> Source {
    Source {
        kind: SourceKind::Live,
        target: BASE.into(),
        refresh: Duration::from_secs(1),
        read_only: false,
        has_key: true,
    }
}

/// An app that has seen five polls of `scenario`, one a second up to [`now`] (the stuck queue's
/// backlog rises across them), and has its runs list.
pub fn app(scenario: Scenario) -> App {
    let mut app = App::new(source(), Settings::default());
    for step in (0..5i64).rev() {
        let mut probes = probes(scenario);
        probes.observed_at = now() - chrono::Duration::seconds(step);
        if scenario == Scenario::StuckQueue {
            // The backlog grows one run a second while no worker drains it.
            let queued = [3i64, 2, 2, 1, 1][step as usize];
            let metrics =
                format!("kneo_worker_count 0\nkneo_runs_queued {queued}\nkneo_runs_running 2\n");
            probes.metrics = Some(metrics_reply(&metrics));
            if let Some(Ok(readiness)) = probes.readyz.as_mut().map(|r| r.result.as_mut())
                && let Some(queue) = readiness.checks.iter_mut().find(|c| c.name == "queue")
            {
                queue.queued = Some(queued);
            }
        }
        let outcome = PollOutcome {
            probes,
            failed_runs: failed_runs(scenario),
            elapsed: Duration::from_millis(if scenario == Scenario::Down { 1 } else { 14 }),
        };
        app.update(Action::Polled {
            outcome: Box::new(outcome),
            at: now() - chrono::Duration::seconds(step),
        });
    }
    app.update(Action::RunsLoaded {
        status: None,
        result: runs_list(scenario),
    });
    app
}

fn metrics_reply(text: &str) -> Reply<MetricsSnapshot> {
    metrics(text)
}

/// A drill-down's data for the first running run of the healthy scenario.
pub fn drill_data() -> DrillData {
    let run_id = "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a37";
    DrillData {
        run: Ok(parse(
            json!({"run_id": run_id, "status": "running", "workflow_name": "approval-workflow",
            "current_step_id": "draft", "current_step_index": 1, "trace_event_count": 4,
            "input_text": "Draft report for: Q3 numbers", "created_at": ago(95), "updated_at": ago(8)}),
        )),
        trace: Ok(parse(json!({"run_id": run_id, "events": [
            {"type": "workflow_started", "timestamp": ago(95), "workflow_name": "approval-workflow"},
            {"type": "step_started", "timestamp": ago(94), "step_id": "draft"},
            {"type": "llm_call", "timestamp": ago(60), "agent_name": "drafter"},
            {"type": "step_completed", "timestamp": ago(8), "step_id": "draft"}
        ], "total": 4}))),
        checkpoints: Ok(parse(json!({"run_id": run_id, "checkpoints": [
            {"sequence": 1, "type": "run_started", "created_at": ago(95)},
            {"sequence": 2, "type": "step_completed", "step_id": "draft", "created_at": ago(8)}
        ]}))),
        audit: Ok(parse(json!({"events": [
            {"id": "au-1", "event_type": "run.created", "run_id": run_id, "actor": "ops",
             "metadata": {"async_mode": true, "target": "workflow"}, "created_at": ago(96)}
        ]}))),
    }
}
