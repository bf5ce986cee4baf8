//! Every branch of the verdict tree, on hand-built probes.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use kneo_client::wire::{
    ErrorBody, HealthBody, HumanTaskList, MetricsSnapshot, Readiness, RunList, RunRecovery,
    ServiceEventList,
};
use kneo_client::{CallError, Reply};
use serde_json::{Value, json};

use super::render::{RenderOptions, render_text};
use super::*;

const BASE: &str = "http://127.0.0.1:8000";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("a valid time")
}

/// `seconds` before [`now`], in the service's format.
fn ago(seconds: i64) -> String {
    (now() - chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn healthz_ok() -> Reply<HealthBody> {
    let body = serde_json::from_value(json!({"ok": true, "service": "kneo-serv-platform", "version": "0.1.0", "metadata": {"status": "healthy", "commit": "abc"}}))
        .expect("health body");
    Reply::answered(format!("{BASE}/healthz"), 200, body).with_latency(Duration::from_millis(3))
}

fn checks_json(overrides: Value) -> Value {
    let mut checks = json!({
        "api": {"name": "api", "ok": true, "status": "ready"},
        "run_state_store": {"name": "run_state_store", "ok": true},
        "continuation_store": {"name": "continuation_store", "ok": true},
        "queue": {"name": "queue", "ok": true, "queued": 0, "running": 0, "failed": 0, "expired_leases": 0, "workers": 1},
        "runtime_registry": {"name": "runtime_registry", "ok": true, "count": 2},
        "tool_registry": {"name": "tool_registry", "ok": true, "count": 0},
        "providers": {"name": "providers", "ok": true, "configured": false},
        "mcp": {"name": "mcp", "ok": true, "configured": false}
    });
    if let (Some(checks), Some(overrides)) = (checks.as_object_mut(), overrides.as_object()) {
        for (name, value) in overrides {
            checks.insert(name.clone(), value.clone());
        }
    }
    checks
}

fn readiness(overrides: Value) -> Reply<Readiness> {
    let checks = checks_json(overrides);
    let ready = checks
        .as_object()
        .is_some_and(|c| c.values().all(|check| check["ok"] == json!(true)));
    let body = if ready {
        json!({"ok": true, "service": "kneo-serv-platform", "version": "0.1.0", "metadata": {"ready": true, "checks": checks}})
    } else {
        json!({"detail": {"error": "not_ready", "message": "One or more readiness checks failed.", "metadata": {"ready": false, "checks": checks}}})
    };
    let parsed = Readiness::from_value(&body).expect("readiness");
    Reply::answered(
        format!("{BASE}/readyz"),
        if ready { 200 } else { 503 },
        parsed,
    )
}

fn runs(url: &str, items: Value) -> Reply<RunList> {
    let count = items.as_array().map(Vec::len).unwrap_or(0);
    let list = serde_json::from_value(
        json!({"runs": items, "count": count, "total": count, "limit": 100, "offset": 0}),
    )
    .expect("run list");
    Reply::answered(format!("{BASE}{url}"), 200, list)
}

fn tasks(items: Value) -> Reply<HumanTaskList> {
    let list =
        serde_json::from_value(json!({"tasks": items, "total": items.as_array().map(Vec::len)}))
            .expect("task list");
    Reply::answered(format!("{BASE}/v1/human-tasks"), 200, list)
}

fn events(items: Value) -> Reply<ServiceEventList> {
    Reply::answered(
        format!("{BASE}/v1/service/events"),
        200,
        serde_json::from_value(json!({"events": items})).expect("events"),
    )
}

fn metrics(text: &str) -> Reply<MetricsSnapshot> {
    Reply::answered(format!("{BASE}/metrics"), 200, MetricsSnapshot::parse(text))
}

fn status_error<T>(path: &str, status: u16, body: Value) -> Reply<T> {
    Reply::failed(CallError::Status {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        status,
        error: ErrorBody::from_value(&body).map(Box::new),
    })
}

fn healthy() -> Probes {
    let mut probes = Probes::new(BASE, now(), healthz_ok());
    probes.readyz = Some(readiness(json!({})));
    probes.queued_runs = Some(runs("/v1/runs?status=queued", json!([])));
    probes.running_runs = Some(runs("/v1/runs?status=running", json!([])));
    probes.human_tasks = Some(tasks(json!([])));
    probes.service_events = Some(events(
        json!([{"event_type": "service.started", "created_at": ago(600)}]),
    ));
    probes.metrics = Some(metrics("kneo_worker_count 1\nkneo_runs_queued 0\n"));
    probes
}

fn run_triage(probes: &Probes) -> Report {
    evaluate(probes, &Thresholds::default())
}

fn find<'a>(report: &'a Report, id: &str) -> &'a Verdict {
    report
        .stages
        .iter()
        .flat_map(Verdict::walk)
        .find(|verdict| verdict.id == id)
        .unwrap_or_else(|| {
            panic!(
                "no verdict {id} in {:#?}",
                report
                    .stages
                    .iter()
                    .flat_map(Verdict::walk)
                    .map(|v| &v.id)
                    .collect::<Vec<_>>()
            )
        })
}

fn unreachable(path: &str, refused: bool) -> CallError {
    CallError::Unreachable {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        reason: if refused {
            "connection refused".into()
        } else {
            "no route to host".into()
        },
        refused,
    }
}

fn timeout(path: &str) -> CallError {
    CallError::Timeout {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        after: Duration::from_millis(1500),
        connected: true,
    }
}

// ---- overall ----

#[test]
fn a_healthy_service_is_healthy_at_every_stage() {
    let report = run_triage(&healthy());
    assert_eq!(report.health, Health::Healthy);
    assert_eq!(report.exit_code(), 0);
    assert!(
        report.stages.iter().all(|stage| stage.level == Level::Ok),
        "{report:#?}"
    );
    assert_eq!(
        report.stages.iter().map(|s| s.stage).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(find(&report, "queue").title, "Queue and runs: flowing");
    assert!(report.findings().is_empty());
}

// ---- stage 1 ----

#[test]
fn healthz_timeout_is_down_with_section_1() {
    let mut probes = healthy();
    probes.healthz = Reply::failed(timeout("/healthz"));
    let report = run_triage(&probes);
    assert_eq!(report.health, Health::Down);
    assert_eq!(report.exit_code(), 2);
    let stage = find(&report, "healthz");
    assert_eq!(
        (stage.level, stage.section.as_deref()),
        (Level::Fail, Some("1"))
    );
    assert!(stage.title.contains("process down or unreachable"));
    assert!(stage.detail.contains("1500 ms"));
}

#[test]
fn healthz_refused_and_unreachable_say_which() {
    let mut probes = healthy();
    probes.healthz = Reply::failed(unreachable("/healthz", true));
    let refused = run_triage(&probes);
    assert_eq!(refused.health, Health::Down);
    assert!(
        find(&refused, "healthz")
            .detail
            .contains("nothing listens there")
    );
    probes.healthz = Reply::failed(unreachable("/healthz", false));
    assert!(
        find(&run_triage(&probes), "healthz")
            .detail
            .contains("cannot be reached")
    );
}

#[test]
fn healthz_5xx_is_a_crash_and_other_answers_are_unexpected() {
    let mut probes = healthy();
    probes.healthz = status_error(
        "/healthz",
        500,
        json!({"detail": {"error": "internal_error", "message": "An internal error occurred."}}),
    );
    let crashed = run_triage(&probes);
    let stage = find(&crashed, "healthz");
    assert_eq!(stage.title, "/healthz: crashed mid-request");
    assert!(
        stage.detail.contains("HTTP 500 (internal_error"),
        "{}",
        stage.detail
    );
    assert_eq!(crashed.health, Health::Down);

    probes.healthz = Reply::failed(CallError::Status {
        method: "GET".into(),
        url: format!("{BASE}/healthz"),
        status: 502,
        error: None,
    });
    let proxied = find(&run_triage(&probes), "healthz").clone();
    assert_eq!(
        (proxied.title.as_str(), proxied.section.as_deref()),
        ("/healthz: a proxy cannot reach kneo", Some("1.3"))
    );

    probes.healthz = status_error("/healthz", 404, json!({"detail": "Not Found"}));
    assert_eq!(
        find(&run_triage(&probes), "healthz").title,
        "/healthz: unexpected answer"
    );

    probes.healthz = Reply::failed(CallError::BadBody {
        method: "GET".into(),
        url: format!("{BASE}/healthz"),
        status: 200,
        reason: "expected value".into(),
    });
    assert_eq!(
        find(&run_triage(&probes), "healthz").title,
        "/healthz: not a kneo health answer"
    );

    probes.healthz = Reply::failed(CallError::InvalidRequest {
        method: "GET".into(),
        url: BASE.into(),
        reason: "bad header".into(),
    });
    assert_eq!(find(&run_triage(&probes), "healthz").level, Level::Fail);
}

// ---- stage 2 ----

#[test]
fn readyz_without_an_answer_counts_as_down() {
    let mut probes = healthy();
    probes.readyz = Some(Reply::failed(timeout("/readyz")));
    let report = run_triage(&probes);
    assert_eq!(
        report.health,
        Health::Down,
        "a /readyz timeout is handled like a /healthz timeout"
    );
    assert_eq!(find(&report, "readyz").section.as_deref(), Some("1"));
    probes.readyz = Some(Reply::failed(unreachable("/readyz", true)));
    assert_eq!(run_triage(&probes).health, Health::Down);
}

#[test]
fn failing_checks_map_to_the_servers_matrix() {
    // (check, error kind); the section must be the one kneo-server's own matrix names, and the
    // ones the runbook contract fixes are checked by value too.
    let cases = [
        ("run_state_store", Some("connection_refused")),
        ("run_state_store", Some("auth_failed")),
        ("run_state_store", Some("schema_missing")),
        ("run_state_store", Some("schema_too_new")),
        ("run_state_store", Some("locked")),
        ("api", Some("unavailable")),
        ("continuation_store", Some("permission_denied")),
        ("continuation_store", Some("corrupt")),
        ("queue", Some("timeout")),
        ("providers", Some("missing_secret")),
        ("mcp", Some("missing_secret")),
        ("runtime_registry", None),
    ];
    let fixed = [
        ("run_state_store", Some("connection_refused"), "2.2"),
        ("providers", Some("missing_secret"), "3.2"),
        ("mcp", Some("missing_secret"), "3.2"),
        ("runtime_registry", None, "extending"),
    ];
    for (check, kind) in cases {
        let mut failing = json!({"ok": false});
        if let Some(kind) = kind {
            failing["error"] = json!(kind);
        }
        let mut probes = healthy();
        probes.readyz = Some(readiness(json!({ check: failing })));
        let report = run_triage(&probes);
        assert_eq!(report.health, Health::Degraded, "{check}");
        let stage = find(&report, "readyz");
        assert_eq!(
            (stage.level, stage.section.as_deref()),
            (Level::Fail, Some("1.2")),
            "{check}"
        );
        assert!(stage.title.contains(check), "{}", stage.title);
        let verdict = find(&report, &format!("readyz.{check}"));
        let expected = crate::matrix::runbook_section(check, kind);
        assert_eq!(
            (verdict.level, verdict.section.as_deref()),
            (Level::Fail, Some(expected)),
            "{check} {kind:?}"
        );
        if let Some((_, _, section)) = fixed.iter().find(|(c, k, _)| *c == check && *k == kind) {
            assert_eq!(
                verdict.section.as_deref(),
                Some(*section),
                "{check} {kind:?}"
            );
        }
    }
}

#[test]
fn missing_provider_secrets_are_named_with_section_3_2() {
    let mut probes = healthy();
    probes.readyz = Some(readiness(
        json!({"providers": {"name": "providers", "ok": false, "error": "missing_secret",
        "items": {"openai": {"name": "provider:openai", "env_var": "OPENAI_API_KEY", "present": false, "value": null}}}}),
    ));
    let report = run_triage(&probes);
    let verdict = find(&report, "readyz.providers");
    assert_eq!(verdict.section.as_deref(), Some("3.2"));
    assert_eq!(verdict.section_label().as_deref(), Some("§ 3.2"));
    assert!(
        verdict.detail.contains("OPENAI_API_KEY"),
        "{}",
        verdict.detail
    );
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn the_registry_checks_point_at_extending() {
    let mut probes = healthy();
    probes.readyz = Some(readiness(
        json!({"tool_registry": {"ok": false, "count": 0}}),
    ));
    let verdict = find(&run_triage(&probes), "readyz.tool_registry").clone();
    assert_eq!(verdict.section_label().as_deref(), Some("extending"));
    assert!(verdict.runbook.is_none());
    assert!(verdict.detail.contains("docs/extending.md"));
}

#[test]
fn health_detail_adds_the_full_message() {
    let mut probes = healthy();
    probes.readyz = Some(readiness(
        json!({"run_state_store": {"ok": false, "error": "connection_refused"}}),
    ));
    let detail_body = json!({"ok": false, "metadata": {"ready": false, "checks": checks_json(json!({"run_state_store": {"ok": false, "error": "connection_refused"}})),
        "details": {"run_state_store": {"error": "connection_refused", "message": "error connecting to server: Connection refused (os error 111)"}}}});
    probes.health_detail = Some(Reply::answered(
        format!("{BASE}/v1/health"),
        503,
        Readiness::from_value(&detail_body).expect("detail"),
    ));
    let verdict = find(&run_triage(&probes), "readyz.run_state_store").clone();
    assert!(
        verdict
            .detail
            .contains("detail: error connecting to server"),
        "{}",
        verdict.detail
    );
}

#[test]
fn odd_readyz_answers_have_their_own_verdicts() {
    let mut probes = healthy();
    probes.readyz = Some(status_error(
        "/readyz",
        401,
        json!({"detail": {"error": "unauthorized"}}),
    ));
    assert_eq!(
        find(&run_triage(&probes), "readyz").section.as_deref(),
        Some("4.3")
    );

    probes.readyz = Some(status_error("/readyz", 502, json!({})));
    let report = run_triage(&probes);
    assert_eq!(find(&report, "readyz").section.as_deref(), Some("1.2"));
    assert_eq!(
        report.health,
        Health::Degraded,
        "a proxy's 502 on /readyz is an answer, not silence"
    );

    let not_ready =
        Readiness::from_value(&json!({"error": "not_ready", "metadata": {"checks": {}}}))
            .expect("parses");
    probes.readyz = Some(Reply::answered(format!("{BASE}/readyz"), 503, not_ready));
    let verdict = find(&run_triage(&probes), "readyz").clone();
    assert_eq!(verdict.title, "/readyz: not ready, and no check says why");

    probes.readyz = None;
    let report = run_triage(&probes);
    assert_eq!(find(&report, "readyz").title, "/readyz: not probed");
    assert_eq!(report.health, Health::Healthy);
}

// ---- stage 3 ----

fn with_queue(mut probes: Probes, queued: i64, running: i64, workers: i64) -> Probes {
    probes.readyz = Some(readiness(
        json!({"queue": {"name": "queue", "ok": true, "queued": queued, "running": running, "failed": 0, "expired_leases": 0, "workers": workers}}),
    ));
    probes
}

#[test]
fn stale_queued_runs_with_no_or_idle_workers_fail_5_1() {
    let stale = json!([{"id": "q-old", "status": "created", "created_at": ago(300), "updated_at": ago(300)},
                       {"id": "q-new", "status": "created", "created_at": ago(5)}]);
    let mut probes = with_queue(healthy(), 2, 0, 0);
    probes.queued_runs = Some(runs("/v1/runs?status=queued", stale.clone()));
    let report = run_triage(&probes);
    let verdict = find(&report, "queue.stale_queued");
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Fail, Some("5.1"))
    );
    assert!(
        verdict.title.starts_with("1 queued run(s)") && verdict.title.contains("no worker"),
        "{}",
        verdict.title
    );
    assert!(
        verdict.detail.contains("q-old") && !verdict.detail.contains("q-new"),
        "{}",
        verdict.detail
    );
    assert_eq!(
        find(&report, "queue").title,
        "Queue and runs: stuck work found"
    );

    let mut idle = with_queue(healthy(), 2, 0, 2);
    idle.queued_runs = Some(runs("/v1/runs?status=queued", stale.clone()));
    let verdict = find(&run_triage(&idle), "queue.stale_queued").clone();
    assert_eq!(verdict.level, Level::Fail);
    assert!(verdict.title.contains("idle"));

    let mut busy = with_queue(healthy(), 2, 3, 3);
    busy.queued_runs = Some(runs("/v1/runs?status=queued", stale));
    let verdict = find(&run_triage(&busy), "queue.stale_queued").clone();
    assert_eq!(verdict.level, Level::Warn);
    assert!(verdict.title.contains("busy"));
}

#[test]
fn young_queued_runs_without_a_worker_warn() {
    let mut probes = with_queue(healthy(), 3, 0, 0);
    probes.queued_runs = Some(runs(
        "/v1/runs?status=queued",
        json!([{"id": "q1", "status": "created", "created_at": ago(2)}]),
    ));
    let verdict = find(&run_triage(&probes), "queue.no_worker").clone();
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Warn, Some("5.1"))
    );
    assert!(verdict.detail.contains("kneo service worker"));
}

#[test]
fn worker_count_falls_back_to_metrics() {
    let mut probes = healthy();
    probes.readyz = None;
    probes.metrics = Some(metrics(
        "kneo_worker_count 0\nkneo_runs_queued 4\nkneo_runs_running 0\n",
    ));
    assert_eq!(
        (
            probes.worker_count(),
            probes.queued_count(),
            probes.running_count()
        ),
        (Some(0), Some(4), Some(0))
    );
    assert_eq!(
        find(&run_triage(&probes), "queue.no_worker").level,
        Level::Warn
    );
}

#[test]
fn a_rising_backlog_with_no_worker_fails_and_a_flat_one_does_not() {
    let mut probes = with_queue(healthy(), 40, 0, 0);
    probes.backlog_history = vec![BacklogSample {
        at: now() - chrono::Duration::seconds(30),
        queued: 10,
        workers: Some(0),
    }];
    let verdict = find(&run_triage(&probes), "queue.backlog_rising").clone();
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Fail, Some("5.1"))
    );
    assert!(
        verdict.detail.contains("from 10 to 40 over 30 s"),
        "{}",
        verdict.detail
    );

    probes.backlog_history = vec![BacklogSample {
        at: now() - chrono::Duration::seconds(30),
        queued: 40,
        workers: Some(0),
    }];
    let report = run_triage(&probes);
    assert!(
        report
            .stages
            .iter()
            .flat_map(Verdict::walk)
            .all(|v| v.id != "queue.backlog_rising")
    );
    assert_eq!(
        find(&report, "queue.no_worker").level,
        Level::Warn,
        "a flat backlog with no worker still warns"
    );
    assert_eq!(
        probes.backlog_sample().map(|s| (s.queued, s.workers)),
        Some((40, Some(0)))
    );
}

fn recovery(run_id: &str, lease_expires_at: &str) -> Reply<RunRecovery> {
    let body = json!({"run_id": run_id, "status": "running", "queue": {"status": "running", "lease_owner": "worker-a-0", "lease_expires_at": lease_expires_at}});
    Reply::answered(
        format!("{BASE}/v1/runs/{run_id}/recovery"),
        200,
        serde_json::from_value(body).expect("recovery"),
    )
}

#[test]
fn an_expired_lease_fails_5_3_naming_the_run() {
    let mut probes = with_queue(healthy(), 0, 2, 1);
    probes.running_runs = Some(runs(
        "/v1/runs?status=running",
        json!([
        {"id": "r-dead", "status": "running", "updated_at": ago(900)},
        {"id": "r-live", "status": "running", "updated_at": ago(1)}]),
    ));
    probes.recoveries = vec![recovery("r-dead", &ago(60)), recovery("r-live", &ago(-240))];
    let report = run_triage(&probes);
    let verdict = find(&report, "queue.lease_expired.r-dead");
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Fail, Some("5.3"))
    );
    assert!(verdict.detail.contains("worker-a-0"));
    let ids: Vec<_> = report
        .stages
        .iter()
        .flat_map(Verdict::walk)
        .map(|v| v.id.as_str())
        .collect();
    assert!(!ids.contains(&"queue.lease_expired.r-live"));
    assert!(
        !ids.contains(&"queue.silent.r-dead"),
        "a run with an expired lease is not reported twice"
    );
}

#[test]
fn expired_leases_counted_by_the_server_fail_without_run_details() {
    let mut probes = healthy();
    probes.readyz = Some(readiness(
        json!({"queue": {"name": "queue", "ok": true, "queued": 0, "running": 1, "expired_leases": 1, "workers": 1}}),
    ));
    let verdict = find(&run_triage(&probes), "queue.lease_expired").clone();
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Fail, Some("5.3"))
    );
}

#[test]
fn a_running_run_silent_past_the_heartbeat_warns_5_3() {
    let mut probes = with_queue(healthy(), 0, 2, 1);
    probes.running_runs = Some(runs(
        "/v1/runs?status=running",
        json!([
        {"id": "r-quiet", "status": "running", "current_step_id": "fetch", "updated_at": ago(600)},
        {"id": "r-busy", "status": "running", "updated_at": ago(10)}]),
    ));
    let report = run_triage(&probes);
    let verdict = find(&report, "queue.silent.r-quiet");
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Warn, Some("5.3"))
    );
    assert!(verdict.detail.contains("step fetch"));
    assert!(
        report
            .stages
            .iter()
            .flat_map(Verdict::walk)
            .all(|v| v.id != "queue.silent.r-busy")
    );

    let relaxed = Thresholds {
        heartbeat: Duration::from_secs(3600),
        ..Thresholds::default()
    };
    assert_eq!(
        evaluate(&probes, &relaxed).health,
        Health::Healthy,
        "thresholds are configurable"
    );
}

#[test]
fn blocked_runs_past_their_deadline_point_at_8_2() {
    let epoch = |seconds_ago: i64| (now().timestamp() - seconds_ago) as f64;
    let mut probes = healthy();
    probes.human_tasks = Some(tasks(json!([
        {"id": "c-overdue", "run_id": "r1", "expires_at": epoch(3600), "pending_human_request": {}},
        {"id": "c-escalated", "run_id": "r2", "expires_at": epoch(7200), "pending_human_request": {"escalated_at": ago(7000)}},
        {"id": "c-grace", "run_id": "r3", "expires_at": epoch(30)},
        {"id": "c-future", "run_id": "r4", "expires_at": epoch(-86_400)}])));
    let report = run_triage(&probes);
    let overdue = find(&report, "queue.blocked_overdue.c-overdue");
    assert_eq!(
        (overdue.level, overdue.section.as_deref()),
        (Level::Fail, Some("8.2"))
    );
    assert!(
        overdue.title.contains("run r1") && overdue.detail.contains("sweep"),
        "{overdue:?}"
    );
    let escalated = find(&report, "queue.escalated.c-escalated");
    assert_eq!(
        (escalated.level, escalated.section.as_deref()),
        (Level::Warn, Some("8.2"))
    );
    let ids: Vec<_> = report
        .stages
        .iter()
        .flat_map(Verdict::walk)
        .map(|v| v.id.as_str())
        .collect();
    assert!(
        !ids.iter()
            .any(|id| id.contains("c-grace") || id.contains("c-future")),
        "{ids:?}"
    );
}

#[test]
fn unreadable_continuations_fail_8_3() {
    let mut probes = healthy();
    let list = serde_json::from_value(
        json!({"tasks": [], "unreadable": [{"continuation_id": "c9", "error": "torn write"}],
        "warning": "1 continuation record(s) could not be read; see runbook § 8.2"}),
    )
    .expect("list");
    probes.human_tasks = Some(Reply::answered(format!("{BASE}/v1/human-tasks"), 200, list));
    let verdict = find(&run_triage(&probes), "queue.unreadable_continuations").clone();
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Fail, Some("8.3"))
    );
}

#[test]
fn without_a_key_the_queue_stage_uses_counts_only() {
    let mut probes = healthy();
    probes.queued_runs = None;
    probes.running_runs = None;
    probes.human_tasks = None;
    probes.service_events = None;
    let report = run_triage(&probes);
    assert_eq!(
        find(&report, "queue").title,
        "Queue and runs: counts only (runs not listed without an API key)"
    );
    assert_eq!(report.health, Health::Healthy);
}

// ---- stage 4 ----

#[test]
fn a_rejected_key_is_a_401_symptom_pointing_at_4_1() {
    let unauthorized = json!({"detail": {"error": "unauthorized", "message": "A valid Kneo service API key is required."}});
    let mut probes = healthy();
    probes.queued_runs = Some(status_error(
        "/v1/runs?status=queued",
        401,
        unauthorized.clone(),
    ));
    probes.running_runs = Some(status_error(
        "/v1/runs?status=running",
        401,
        unauthorized.clone(),
    ));
    probes.human_tasks = Some(status_error("/v1/human-tasks", 401, unauthorized));
    let report = run_triage(&probes);
    let symptom = find(&report, "symptom.401.unauthorized");
    assert_eq!(
        (symptom.level, symptom.section.as_deref()),
        (Level::Fail, Some("4.1"))
    );
    assert!(
        symptom.detail.contains("/v1/runs") && symptom.detail.contains("/v1/human-tasks"),
        "{}",
        symptom.detail
    );
    assert_eq!(
        find(&report, "symptoms").children.len(),
        1,
        "one verdict per (status, code), listing every path"
    );
    assert_eq!(
        find(&report, "queue.unlisted.queued_runs").level,
        Level::Warn
    );
    assert_eq!(report.health, Health::Degraded);
}

#[test]
fn a_missing_scope_is_a_403_symptom_pointing_at_4_2() {
    let mut probes = healthy();
    probes.service_events = Some(status_error(
        "/v1/service/events",
        403,
        json!({"detail": {"error": "forbidden", "message": "Missing required scope: audit:read", "required_scope": "audit:read"}}),
    ));
    let symptom = find(&run_triage(&probes), "symptom.403.forbidden").clone();
    assert_eq!(symptom.section.as_deref(), Some("4.2"));
    assert!(symptom.detail.contains("audit:read"));
}

#[test]
fn other_error_answers_use_the_symptom_table() {
    let mut probes = healthy();
    probes.queued_runs = Some(status_error(
        "/v1/runs?status=queued",
        503,
        json!({"detail": {"error": "store_unavailable", "message": "retry (runbook § 2)", "kind": "unavailable"}}),
    ));
    probes.running_runs = Some(status_error(
        "/v1/runs?status=running",
        422,
        json!({"detail": {"error": "unknown_query_parameters", "message": "Unrecognized"}}),
    ));
    let report = run_triage(&probes);
    let store = find(&report, "symptom.503.store_unavailable");
    assert_eq!(
        (store.level, store.section.as_deref()),
        (Level::Fail, Some("2.2"))
    );
    let query = find(&report, "symptom.422.unknown_query_parameters");
    assert_eq!(
        (query.level, query.section_label().as_deref()),
        (Level::Warn, Some("0.11.0 note"))
    );
}

#[test]
fn recent_5xx_bursts_and_restart_loops_warn() {
    let mut probes = healthy();
    probes.service_events = Some(events(json!([
        {"event_type": "http.5xx_burst", "created_at": ago(120), "details": {"count": 12}},
        {"event_type": "http.5xx_burst", "created_at": ago(86_400), "details": {"count": 99}},
        {"event_type": "service.started", "created_at": ago(60)},
        {"event_type": "service.started", "created_at": ago(300)}])));
    let report = run_triage(&probes);
    let burst = find(&report, "symptom.5xx_burst");
    assert_eq!(
        (burst.level, burst.section.as_deref()),
        (Level::Warn, Some("1"))
    );
    assert!(
        burst.detail.starts_with("12 server errors"),
        "old bursts do not count: {}",
        burst.detail
    );
    assert_eq!(find(&report, "symptom.restarts").level, Level::Warn);
}

// ---- the report ----

#[test]
fn findings_list_the_leaves_worst_first() {
    let mut probes = with_queue(healthy(), 0, 1, 1);
    probes.readyz = Some(readiness(
        json!({"providers": {"ok": false, "error": "missing_secret"}, "queue": {"ok": true, "queued": 0, "running": 1, "workers": 1}}),
    ));
    probes.running_runs = Some(runs(
        "/v1/runs?status=running",
        json!([{"id": "r-quiet", "status": "running", "updated_at": ago(600)}]),
    ));
    let report = run_triage(&probes);
    let findings: Vec<_> = report
        .findings()
        .iter()
        .map(|v| (v.id.clone(), v.level))
        .collect();
    assert_eq!(
        findings,
        [
            ("readyz.providers".to_string(), Level::Fail),
            ("queue.silent.r-quiet".to_string(), Level::Warn)
        ]
    );
}

#[test]
fn the_text_rendering_shows_symbols_sections_and_where_to_start() {
    let mut probes = healthy();
    probes.readyz = Some(readiness(
        json!({"providers": {"ok": false, "error": "missing_secret",
        "items": {"openai": {"env_var": "OPENAI_API_KEY", "present": false}}}}),
    ));
    let text = render_text(&run_triage(&probes), &RenderOptions::default());
    assert!(text.contains("Overall: DEGRADED (exit 1)"), "{text}");
    assert!(text.contains("✓ 1 /healthz: alive"), "{text}");
    assert!(
        text.contains("✗ 2 /readyz: 1 of 8 checks failing: providers  [§ 1.2]"),
        "{text}"
    );
    assert!(text.contains("✗ providers  [§ 3.2]"), "{text}");
    assert!(text.contains("OPENAI_API_KEY"), "{text}");
    assert!(text.contains("Start with: providers (§ 3.2)"), "{text}");
    assert!(!text.contains("✓ api"), "ok children are hidden by default");
    let all = render_text(
        &run_triage(&probes),
        &RenderOptions {
            show_ok_children: true,
            ..RenderOptions::default()
        },
    );
    assert!(all.contains("✓ api"), "{all}");
    if crate::runbook::section("3.2").is_some() {
        assert!(text.contains("Fix (§ 3.2"), "{text}");
    } else {
        assert!(text.contains("See docs/troubleshooting.md § 3.2"), "{text}");
    }
}

#[test]
fn the_json_form_uses_lowercase_levels_and_health() {
    let value = serde_json::to_value(run_triage(&healthy())).expect("serializes");
    assert_eq!(value["health"], "healthy");
    assert_eq!(value["stages"][0]["level"], "ok");
    assert_eq!(value["stages"][0]["id"], "healthz");
    assert!(
        value["stages"][1]["children"]
            .as_array()
            .is_some_and(|c| c.len() == 8)
    );
}

#[test]
fn timestamps_and_ages_read_the_services_formats() {
    assert!(parse_time("2026-11-28T04:38:11.306669+00:00").is_some());
    assert!(parse_time("2026-11-28T04:38:11Z").is_some());
    assert!(parse_time("2026-11-28 04:38:11.5").is_some());
    assert!(parse_time("yesterday").is_none());
    assert_eq!(human_duration(Duration::from_secs(95)), "95 s");
    assert_eq!(human_duration(Duration::from_secs(720)), "12 min");
    assert_eq!(human_duration(Duration::from_secs(12_600)), "3.5 h");
    assert_eq!(human_duration(Duration::from_secs(200_000)), "2 d");
}

#[test]
fn store_unavailable_follows_the_kind_it_carries() {
    let mut probes = healthy();
    probes.queued_runs = Some(status_error(
        "/v1/runs?status=queued",
        503,
        json!({"detail": {"error": "store_unavailable", "kind": "locked"}}),
    ));
    assert_eq!(
        find(&run_triage(&probes), "symptom.503.store_unavailable")
            .section
            .as_deref(),
        Some("2.3")
    );
}

#[test]
fn dead_lettered_runs_warn_5_6() {
    let mut probes = healthy();
    probes.metrics = Some(metrics(
        "kneo_worker_count 1\nkneo_runs_dead_lettered_total 2\n",
    ));
    let verdict = find(&run_triage(&probes), "symptom.dead_lettered").clone();
    assert_eq!(
        (verdict.level, verdict.section.as_deref()),
        (Level::Warn, Some("5.6"))
    );
}
