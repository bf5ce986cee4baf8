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
    let body = serde_json::from_value(json!({"ok": true, "service": "kneo-serv-platform", "version": "0.1.0",
        "metadata": {"status": "healthy", "commit": "abc", "started_at": ago(600), "instance_id": "i-1"}}))
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
    probes.key_given = true;
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
        .all()
        .into_iter()
        .find(|verdict| verdict.id == id)
        .unwrap_or_else(|| panic!("no verdict {id} in {:#?}", ids(report)))
}

fn ids(report: &Report) -> Vec<String> {
    report.all().iter().map(|v| v.id.clone()).collect()
}

fn has(report: &Report, id: &str) -> bool {
    report.all().iter().any(|v| v.id == id)
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

fn connect_timeout(path: &str) -> CallError {
    CallError::Timeout {
        method: "GET".into(),
        url: format!("{BASE}{path}"),
        after: Duration::from_millis(1500),
        connected: false,
    }
}

/// A kneo-serv 1.2 that is fine: its `/healthz` has only `status`, and it has neither
/// `/v1/health` nor service events.
fn kneo_serv_1_2() -> Probes {
    let mut probes = healthy();
    let body = serde_json::from_value(json!({"ok": true, "service": "kneo-serv-platform", "version": "1.2.0", "metadata": {"status": "healthy"}}))
        .expect("health body");
    probes.healthz = Reply::answered(format!("{BASE}/healthz"), 200, body);
    probes.health_detail = Some(status_error(
        "/v1/health",
        404,
        json!({"detail": "Not Found"}),
    ));
    probes.service_events = Some(status_error(
        "/v1/service/events",
        404,
        json!({"detail": "Not Found"}),
    ));
    probes
}

/// Every call that carries the key answered `status` with `body`.
fn key_refused(mut probes: Probes, status: u16, body: Value) -> Probes {
    probes.health_detail = Some(status_error("/v1/health", status, body.clone()));
    probes.queued_runs = Some(status_error("/v1/runs?status=queued", status, body.clone()));
    probes.running_runs = Some(status_error(
        "/v1/runs?status=running",
        status,
        body.clone(),
    ));
    probes.human_tasks = Some(status_error("/v1/human-tasks", status, body.clone()));
    probes.service_events = Some(status_error("/v1/service/events", status, body));
    probes
}

fn unauthorized() -> Value {
    json!({"detail": {"error": "unauthorized", "message": "A valid Kneo service API key is required."}})
}

/// The answer counters of a kneo-server whose callers got `series` (labels, count, seconds ago).
fn answers(series: &[(&str, f64, i64)]) -> Reply<MetricsSnapshot> {
    let now = now().timestamp() as f64;
    let mut text = String::from("kneo_worker_count 1\nkneo_runs_queued 0\n");
    for (labels, count, seconds_ago) in series {
        text.push_str(&format!(
            "kneo_http_error_answers_total{{{labels}}} {count}\n"
        ));
        text.push_str(&format!(
            "kneo_http_error_answer_last_seconds{{{labels}}} {}\n",
            now - *seconds_ago as f64
        ));
    }
    metrics(&text)
}

/// Everything the text rendering says, for the "no `!` when healthy" checks.
fn text_of(report: &Report) -> String {
    render_text(
        report,
        &RenderOptions {
            show_ok_children: true,
            ..RenderOptions::default()
        },
    )
}

// ---- overall ----

#[test]
fn a_healthy_service_is_healthy_at_every_stage_with_no_warning_anywhere() {
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
    assert_eq!(report.service.flavor, Flavor::KneoServer);
    assert_eq!(find(&report, "queue").title, "Queue and runs: flowing");
    assert!(report.findings().is_empty());
    assert_eq!(report.start_with, None);
    assert!(report.access.children.is_empty());
    let text = text_of(&report);
    assert!(!text.contains('!') && !text.contains('✗'), "{text}");
    assert!(
        text.contains("· the service started 10 min ago, its first start on this store"),
        "a start is a note: {text}"
    );
}

#[test]
fn a_healthy_kneo_serv_1_2_is_healthy_and_its_missing_routes_are_notes() {
    let report = run_triage(&kneo_serv_1_2());
    assert_eq!(report.service.flavor, Flavor::KneoServ);
    assert_eq!(
        (report.health, report.exit_code()),
        (Health::Healthy, 0),
        "{:#?}",
        report.findings()
    );
    assert!(report.findings().is_empty(), "{:#?}", report.findings());
    assert_eq!(
        report.service.absent_routes,
        [OptionalRoute::HealthDetail, OptionalRoute::ServiceEvents]
    );
    let note = find(&report, "note.kneo_serv");
    assert_eq!(note.kind, Kind::Note);
    assert!(note.title.contains("kneo-serv 1.2.0"), "{}", note.title);
    let text = text_of(&report);
    assert!(!text.contains('!') && !text.contains("404"), "{text}");
    assert_eq!(
        find(&report, "symptoms").title,
        "Symptoms: none in what kneo-serv records"
    );
}

#[test]
fn a_kneo_serv_store_failure_names_section_2_and_says_its_log_has_the_cause() {
    // kneo-serv 1.2's /readyz says `check_failed` for a stopped Postgres, a dropped table and a
    // revoked grant alike (measured against the reference): the cause, and so the sub-section,
    // is only in its log.
    let mut probes = kneo_serv_1_2();
    probes.readyz = Some(readiness(json!({
        "run_state_store": {"name": "run_state_store", "ok": false, "error": "check_failed"}
    })));
    let report = run_triage(&probes);
    assert_eq!((report.health, report.exit_code()), (Health::Degraded, 1));
    assert_eq!(report.start_with.as_deref(), Some("run_state_store (§ 2)"));
    let check = find(&report, "readyz.run_state_store");
    assert!(
        check
            .detail
            .contains("kneo-serv 1.2 gives no cause here; its log does")
            && check
                .detail
                .contains("readiness check 'run_state_store' failed"),
        "{}",
        check.detail
    );
}

#[test]
fn a_route_the_target_lacks_is_not_asked_again_and_stays_a_note() {
    let mut probes = healthy();
    probes.metrics = None;
    probes.known_absent.insert(OptionalRoute::Metrics);
    let report = run_triage(&probes);
    assert_eq!(report.exit_code(), 0);
    assert!(
        find(&report, "note.absent.metrics")
            .title
            .contains("was not asked")
    );
    assert_eq!(
        crate::triage::capabilities::absent_routes(&kneo_serv_1_2())
            .into_iter()
            .collect::<Vec<_>>(),
        [OptionalRoute::HealthDetail, OptionalRoute::ServiceEvents]
    );
}

// ---- stage 1 ----

#[test]
fn a_service_that_connects_and_never_answers_is_hung_with_section_1_5() {
    let mut probes = healthy();
    probes.healthz = Reply::failed(timeout("/healthz"));
    probes.readyz = Some(Reply::failed(timeout("/readyz")));
    probes.queued_runs = Some(Reply::failed(timeout("/v1/runs")));
    let report = run_triage(&probes);
    assert_eq!((report.health, report.exit_code()), (Health::Hung, 2));
    let stage = find(&report, "healthz");
    assert_eq!(
        (stage.level, stage.section.as_deref()),
        (Level::Fail, Some("1.5"))
    );
    assert!(stage.title.contains("hung"), "{}", stage.title);
    assert!(stage.detail.contains("1500 ms"));
    assert_eq!(
        report.findings().len(),
        1,
        "one finding, not four: {:#?}",
        report.findings()
    );
    for id in ["readyz", "queue", "symptoms"] {
        let stage = find(&report, id);
        assert!(
            !stage.judged
                && stage
                    .title
                    .contains("not judged: the service is not answering"),
            "{stage:?}"
        );
        assert_eq!(stage.symbol(), "–");
    }
}

#[test]
fn connection_refused_is_down_with_section_1_3_and_one_finding() {
    let mut probes = healthy();
    probes.healthz = Reply::failed(unreachable("/healthz", true));
    probes.readyz = Some(Reply::failed(unreachable("/readyz", true)));
    probes.queued_runs = Some(Reply::failed(unreachable("/v1/runs", true)));
    probes.running_runs = Some(Reply::failed(unreachable("/v1/runs", true)));
    probes.human_tasks = Some(Reply::failed(unreachable("/v1/human-tasks", true)));
    let report = run_triage(&probes);
    assert_eq!((report.health, report.exit_code()), (Health::Down, 2));
    let stage = find(&report, "healthz");
    assert_eq!(stage.section.as_deref(), Some("1.3"));
    assert!(stage.detail.contains("nothing listens there"));
    assert_eq!(report.findings().len(), 1, "{:#?}", report.findings());
    assert!(
        !text_of(&report).contains("stuck work"),
        "a silent service has no stuck work"
    );
    assert_eq!(
        report.start_with.as_deref(),
        Some("/healthz: process down (connection refused) (§ 1.3)")
    );
}

#[test]
fn a_service_not_reached_from_here_is_the_tools_problem_exit_3() {
    for error in [unreachable("/healthz", false), connect_timeout("/healthz")] {
        let mut probes = healthy();
        probes.healthz = Reply::failed(error);
        let report = run_triage(&probes);
        assert_eq!((report.health, report.exit_code()), (Health::Unknown, 3));
        let access = find(&report, "access.unreachable");
        assert_eq!(
            (access.kind, access.section.as_deref()),
            (Kind::Access, Some("1.3"))
        );
        assert!(
            access.detail.contains("may be fine elsewhere"),
            "{}",
            access.detail
        );
        assert!(!find(&report, "healthz").judged);
    }
}

#[test]
fn healthz_5xx_is_a_crash_and_other_answers_are_not_kneo() {
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
    let report = run_triage(&probes);
    assert!(has(&report, "access.not_kneo"));
    assert_eq!(report.exit_code(), 3);

    probes.healthz = Reply::failed(CallError::BadBody {
        method: "GET".into(),
        url: format!("{BASE}/healthz"),
        status: 200,
        reason: "expected value".into(),
    });
    assert!(has(&run_triage(&probes), "access.not_kneo"));

    probes.healthz = Reply::failed(CallError::InvalidRequest {
        method: "GET".into(),
        url: BASE.into(),
        reason: "bad header".into(),
    });
    let report = run_triage(&probes);
    assert_eq!(find(&report, "access.invalid_request").level, Level::Fail);
    assert_eq!(report.health, Health::Unknown);
}

// ---- stage 2 ----

#[test]
fn readyz_without_an_answer_is_hung_or_down() {
    let mut probes = healthy();
    probes.readyz = Some(Reply::failed(timeout("/readyz")));
    let report = run_triage(&probes);
    assert_eq!(report.health, Health::Hung);
    assert_eq!(find(&report, "readyz").section.as_deref(), Some("1.5"));
    probes.readyz = Some(Reply::failed(unreachable("/readyz", true)));
    let report = run_triage(&probes);
    assert_eq!(report.health, Health::Down);
    assert_eq!(find(&report, "readyz").section.as_deref(), Some("1.3"));
}

#[test]
fn failing_checks_map_to_the_readiness_matrix() {
    // (check, error kind); the section must be the matrix's, and the ones the runbook contract
    // fixes are checked by value too.
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
        ("run_state_store", Some("schema_missing"), "2.4"),
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
        let expected = crate::matrix::runbook_section(check, kind, crate::matrix::Store::Unknown);
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
fn permission_denied_is_section_2_2_on_postgres_and_2_8_on_the_embedded_store() {
    for (queue_kind, expected) in [
        ("PostgresRunStateStore", "2.2"),
        ("SQLiteRunStateStore", "2.8"),
    ] {
        let mut probes = healthy();
        probes.readyz = Some(readiness(json!({
            "run_state_store": {"ok": false, "error": "permission_denied"},
            "queue": {"name": "queue", "ok": true, "kind": queue_kind, "queued": 0, "running": 0, "workers": 1}
        })));
        let report = run_triage(&probes);
        assert_eq!(
            find(&report, "readyz.run_state_store").section.as_deref(),
            Some(expected),
            "{queue_kind}"
        );
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
    assert_eq!(report.start_with.as_deref(), Some("providers (§ 3.2)"));
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
    let report = run_triage(&probes);
    assert!(!find(&report, "readyz").judged);
    assert_eq!(
        find(&report, "access.readyz_auth").section.as_deref(),
        Some("4.3")
    );
    assert_eq!(report.exit_code(), 3);

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
    assert!(!has(&report, "queue.backlog_rising"));
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
fn an_expired_lease_fails_5_1_naming_the_run_and_who_can_reclaim_it() {
    let running = json!([
        {"id": "r-dead", "status": "running", "updated_at": ago(900)},
        {"id": "r-live", "status": "running", "updated_at": ago(1)}]);
    for (workers, words) in [
        (1, "a live worker re-claims it"),
        (0, "no worker runs in the probed process"),
    ] {
        let mut probes = with_queue(healthy(), 0, 2, workers);
        probes.running_runs = Some(runs("/v1/runs?status=running", running.clone()));
        probes.recoveries = vec![recovery("r-dead", &ago(60)), recovery("r-live", &ago(-240))];
        let report = run_triage(&probes);
        let verdict = find(&report, "queue.lease_expired.r-dead");
        assert_eq!(
            (verdict.level, verdict.section.as_deref()),
            (Level::Fail, Some("5.1"))
        );
        assert!(verdict.detail.contains("worker-a-0"));
        assert!(
            verdict.detail.contains(words),
            "{workers} worker(s): {}",
            verdict.detail
        );
        if workers == 0 {
            assert!(
                !verdict
                    .detail
                    .contains("another worker re-claims it on the next poll")
            );
            assert!(
                verdict.detail.contains("/v1/runs/r-dead/continue"),
                "{}",
                verdict.detail
            );
        }
        assert!(!has(&report, "queue.lease_expired.r-live"));
        assert!(
            !has(&report, "queue.silent.r-dead"),
            "a run with an expired lease is not reported twice"
        );
    }
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
        (Level::Fail, Some("5.1"))
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
    assert!(!has(&report, "queue.silent.r-busy"));

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
fn human_tasks_past_their_deadline_fail_8_5_after_the_grace_and_escalated_ones_are_notes() {
    let epoch = |seconds_ago: i64| (now().timestamp() - seconds_ago) as f64;
    let mut probes = healthy();
    probes.human_tasks = Some(tasks(json!([
        {"id": "c-overdue", "run_id": "r1", "expires_at": epoch(3600), "pending_human_request": {}},
        {"id": "c-escalated", "run_id": "r2", "expires_at": epoch(7200), "pending_human_request": {"escalated_at": ago(7000)}},
        {"id": "c-grace", "run_id": "r3", "expires_at": epoch(3)},
        {"id": "c-future", "run_id": "r4", "expires_at": epoch(-86_400)}])));
    let report = run_triage(&probes);
    let overdue = find(&report, "queue.blocked_overdue.c-overdue");
    assert_eq!(
        (overdue.level, overdue.section.as_deref()),
        (Level::Fail, Some("8.5"))
    );
    assert!(
        overdue.title.contains("run r1") && overdue.detail.contains("sweep"),
        "{overdue:?}"
    );
    assert!(
        !overdue.detail.contains("can still be resumed"),
        "{}",
        overdue.detail
    );
    assert_eq!(find(&report, "note.escalated.c-escalated").kind, Kind::Note);
    assert!(
        find(&report, "note.due.c-grace")
            .title
            .contains("grace 10 s")
    );
    assert!(!has(&report, "queue.escalated.c-escalated"));
    assert!(!ids(&report).iter().any(|id| id.contains("c-future")));
    let findings: Vec<_> = report.findings().iter().map(|v| v.id.clone()).collect();
    assert_eq!(findings, ["queue.blocked_overdue.c-overdue"]);

    let no_grace = Thresholds {
        blocked_grace: Duration::ZERO,
        ..Thresholds::default()
    };
    assert!(
        evaluate(&probes, &no_grace)
            .all()
            .iter()
            .any(|v| v.id == "queue.blocked_overdue.c-grace"),
        "the grace is a flag, not hidden"
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

// ---- the tool's access ----

#[test]
fn a_rejected_key_is_the_tools_problem_not_the_services() {
    let probes = key_refused(healthy(), 401, unauthorized());
    let report = run_triage(&probes);
    assert_eq!(
        (report.health, report.exit_code()),
        (Health::Healthy, 3),
        "the service is not degraded by the tool's own key"
    );
    let access = find(&report, "access.key_rejected");
    assert_eq!(
        (access.kind, access.level, access.section.as_deref()),
        (Kind::Access, Level::Fail, Some("4.1"))
    );
    assert!(access.detail.contains("queued runs"), "{}", access.detail);
    assert!(!has(&report, "symptom.401.unauthorized"));
    assert_eq!(
        find(&report, "queue").title,
        "Queue and runs: counts only (runs not listed: the tool's key was rejected (401))"
    );
    assert!(!text_of(&report).contains("stuck work"));
    assert_eq!(
        report.start_with.as_deref(),
        Some("the tool's API key was rejected (401) (§ 4.1)")
    );
}

#[test]
fn no_key_on_a_service_that_needs_one_is_said_so() {
    let mut probes = key_refused(healthy(), 401, unauthorized());
    probes.key_given = false;
    let report = run_triage(&probes);
    assert_eq!(report.exit_code(), 3);
    assert_eq!(
        find(&report, "access.no_key").section.as_deref(),
        Some("4.3")
    );
}

#[test]
fn a_service_with_auth_off_needs_no_key() {
    let mut probes = healthy();
    probes.key_given = false;
    let report = run_triage(&probes);
    assert_eq!(report.exit_code(), 0);
    assert!(report.access.children.is_empty());
}

#[test]
fn a_key_without_a_scope_is_the_tools_problem_pointing_at_4_2() {
    let mut probes = healthy();
    probes.service_events = Some(status_error(
        "/v1/service/events",
        403,
        json!({"detail": {"error": "forbidden", "message": "Missing required scope: audit:read", "required_scope": "audit:read"}}),
    ));
    let report = run_triage(&probes);
    let access = find(&report, "access.scope.audit:read").clone();
    assert_eq!(
        (access.kind, access.section.as_deref()),
        (Kind::Access, Some("4.2"))
    );
    assert!(
        access.title.contains("lacks audit:read"),
        "{}",
        access.title
    );
    assert!(
        access.detail.contains("service events"),
        "{}",
        access.detail
    );
    assert!(!has(&report, "symptom.403.forbidden"));
    assert_eq!((report.health, report.exit_code()), (Health::Healthy, 3));
}

// ---- stage 4 ----

#[test]
fn other_callers_403s_and_conflicts_are_symptoms_naming_the_consumer() {
    let mut probes = healthy();
    probes.metrics = Some(answers(&[
        (
            r#"route="/v1/runs",method="POST",status="403",error="forbidden",key="view",client="other""#,
            3.0,
            20,
        ),
        (
            r#"route="/v1/runs",method="POST",status="409",error="idempotency_key_conflict",key="ci",client="other""#,
            2.0,
            40,
        ),
        (
            r#"route="/v1/human-tasks/{continuation_id}/resume",method="POST",status="409",error="resource_locked",key="rev",client="other""#,
            1.0,
            50,
        ),
        (
            r#"route="/v1/runs",method="GET",status="401",error="unauthorized",key="(unknown)",client="kneo-tui""#,
            9.0,
            5,
        ),
        (
            r#"route="/v1/runs",method="GET",status="403",error="forbidden",key="old",client="other""#,
            4.0,
            3600,
        ),
    ]));
    let report = run_triage(&probes);
    let forbidden = find(&report, "symptom.callers.403.forbidden");
    assert_eq!(
        (
            forbidden.kind,
            forbidden.level,
            forbidden.section.as_deref()
        ),
        (Kind::Service, Level::Warn, Some("4.2"))
    );
    assert_eq!(
        forbidden.title,
        "key view got HTTP 403 forbidden on POST /v1/runs"
    );
    assert!(
        forbidden
            .detail
            .contains("3 × POST /v1/runs (latest 20 s ago)"),
        "{}",
        forbidden.detail
    );
    assert!(
        !forbidden.detail.contains("key old"),
        "answers older than the window do not count"
    );
    assert_eq!(
        find(&report, "symptom.callers.409.idempotency_key_conflict")
            .section
            .as_deref(),
        Some("5.4")
    );
    assert_eq!(
        find(&report, "symptom.callers.409.resource_locked")
            .section
            .as_deref(),
        Some("8.1")
    );
    assert!(
        !has(&report, "symptom.callers.401.unauthorized"),
        "the tools' own answers are not callers' symptoms"
    );
    assert_eq!((report.health, report.exit_code()), (Health::Degraded, 1));
}

#[test]
fn the_tools_other_error_answers_use_the_symptom_table_unless_readiness_explains_them() {
    let store_down = json!({"detail": {"error": "store_unavailable", "message": "retry (runbook § 2)", "kind": "unavailable"}});
    let mut probes = healthy();
    probes.queued_runs = Some(status_error(
        "/v1/runs?status=queued",
        503,
        store_down.clone(),
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

    let mut outage = healthy();
    outage.readyz = Some(readiness(
        json!({"run_state_store": {"ok": false, "error": "connection_refused"}}),
    ));
    outage.queued_runs = Some(status_error(
        "/v1/runs?status=queued",
        503,
        store_down.clone(),
    ));
    outage.running_runs = Some(status_error(
        "/v1/runs?status=running",
        503,
        store_down.clone(),
    ));
    outage.human_tasks = Some(status_error("/v1/human-tasks", 503, store_down));
    let report = run_triage(&outage);
    assert!(
        !has(&report, "symptom.503.store_unavailable"),
        "readiness already explains it: {:?}",
        ids(&report)
    );
    assert_eq!(
        report.start_with.as_deref(),
        Some("run_state_store (§ 2.2)")
    );
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

fn history(items: Value) -> Probes {
    let mut probes = healthy();
    probes.service_events = Some(events(items));
    probes
}

#[test]
fn a_restart_is_a_note_and_only_a_loop_with_crash_evidence_is_a_symptom() {
    let clean = history(json!([
        {"event_type": "service.started", "created_at": ago(900), "host": "h", "details": {"pid": 1}},
        {"event_type": "service.stopped", "created_at": ago(70), "host": "h", "details": {"pid": 1}},
        {"event_type": "service.started", "created_at": ago(60), "host": "h", "details": {"pid": 2, "version": "0.1.0"}}]));
    let report = run_triage(&clean);
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings());
    assert_eq!(
        find(&report, "note.started").title,
        "the service started 60 s ago (version 0.1.0), after a clean stop; 2 starts in the last 15 min"
    );

    let killed = history(json!([
        {"event_type": "service.started", "created_at": ago(300), "host": "h", "details": {"pid": 1}},
        {"event_type": "service.started", "created_at": ago(60), "host": "h", "details": {"pid": 2}}]));
    let report = run_triage(&killed);
    assert_eq!(report.exit_code(), 0, "one kill and restart is not a loop");
    assert!(
        find(&report, "note.started")
            .title
            .contains("after a crash")
    );

    let killed_then_restored = history(json!([
        {"event_type": "service.started", "created_at": ago(400), "host": "h", "details": {"pid": 1}},
        {"event_type": "service.started", "created_at": ago(300), "host": "h", "details": {"pid": 2}},
        {"event_type": "service.started", "created_at": ago(100), "host": "h", "details": {"pid": 3}}]));
    assert_eq!(
        run_triage(&killed_then_restored).exit_code(),
        0,
        "a kill and a restore (which loses the clean stop) are two deliberate starts, not a loop"
    );

    let looping = history(json!([
        {"event_type": "service.started", "created_at": ago(400), "host": "h", "details": {"pid": 1}},
        {"event_type": "service.started", "created_at": ago(300), "host": "h", "details": {"pid": 2}},
        {"event_type": "service.started", "created_at": ago(200), "host": "h", "details": {"pid": 3}},
        {"event_type": "service.started", "created_at": ago(100), "host": "h", "details": {"pid": 4}}]));
    let report = run_triage(&looping);
    let verdict = find(&report, "symptom.restart_loop");
    assert_eq!(verdict.level, Level::Warn);
    assert!(
        verdict.title.contains("4 starts") && verdict.title.contains("3 after a crash"),
        "{}",
        verdict.title
    );
    assert_eq!(report.exit_code(), 1);

    let two_hosts = history(json!([
        {"event_type": "service.started", "created_at": ago(300), "host": "a", "details": {"pid": 1}},
        {"event_type": "service.started", "created_at": ago(200), "host": "b", "details": {"pid": 1}},
        {"event_type": "service.started", "created_at": ago(100), "host": "c", "details": {"pid": 1}}]));
    assert!(
        !has(&run_triage(&two_hosts), "symptom.restart_loop"),
        "three instances starting is not a loop"
    );
}

#[test]
fn a_5xx_burst_is_a_symptom_unless_a_readiness_failure_explains_it() {
    let unexplained = history(json!([
        {"event_type": "service.started", "created_at": ago(3000)},
        {"event_type": "http.5xx_burst", "created_at": ago(120), "details": {"count": 12, "window_seconds": 5}},
        {"event_type": "http.5xx_burst", "created_at": ago(86_400), "details": {"count": 99}}]));
    let report = run_triage(&unexplained);
    let burst = find(&report, "symptom.5xx_burst");
    assert_eq!(
        (burst.level, burst.section.as_deref()),
        (Level::Warn, Some("capture and escalate"))
    );
    assert!(
        burst.detail.starts_with("12 server errors"),
        "old bursts do not count: {}",
        burst.detail
    );

    let explained = history(json!([
        {"event_type": "service.started", "created_at": ago(3000)},
        {"event_type": "readiness.changed", "created_at": ago(200), "details": {"ready": false, "failing": {"run_state_store": "connection_refused"}}},
        {"event_type": "http.5xx_burst", "created_at": ago(150), "details": {"count": 30, "window_seconds": 5}},
        {"event_type": "readiness.changed", "created_at": ago(100), "details": {"ready": true}}]));
    let report = run_triage(&explained);
    assert!(!has(&report, "symptom.5xx_burst"), "{:?}", ids(&report));
    assert!(
        find(&report, "note.5xx_during_outage")
            .title
            .starts_with("30 server errors")
    );
    assert_eq!(
        report.exit_code(),
        0,
        "after the outage the service is healthy again"
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

// ---- the report ----

#[test]
fn findings_list_the_leaves_worst_first_then_the_tools_access() {
    let mut probes = with_queue(healthy(), 0, 1, 1);
    probes.readyz = Some(readiness(
        json!({"providers": {"ok": false, "error": "missing_secret"}, "queue": {"ok": true, "queued": 0, "running": 1, "workers": 1}}),
    ));
    probes.running_runs = Some(runs(
        "/v1/runs?status=running",
        json!([{"id": "r-quiet", "status": "running", "updated_at": ago(600)}]),
    ));
    probes.service_events = Some(status_error(
        "/v1/service/events",
        403,
        json!({"detail": {"error": "forbidden", "required_scope": "audit:read"}}),
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
            ("queue.silent.r-quiet".to_string(), Level::Warn),
            ("access.scope.audit:read".to_string(), Level::Warn)
        ]
    );
    assert_eq!(report.exit_code(), 1, "the service's state comes first");
}

#[test]
fn the_text_rendering_shows_symbols_sections_rendered_fix_steps_and_where_to_start() {
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
    assert!(!text.contains("**"), "markdown is rendered: {text}");
    assert!(
        text.lines().all(|line| line.chars().count() <= 110),
        "text is wrapped: {text}"
    );
    let all = text_of(&run_triage(&probes));
    assert!(all.contains("✓ api"), "{all}");
    if crate::runbook::section("3.2").is_some() {
        assert!(text.contains("Fix (§ 3.2"), "{text}");
    } else {
        assert!(text.contains("See docs/troubleshooting.md § 3.2"), "{text}");
    }
}

#[test]
fn the_json_form_carries_the_verdict_kinds_exit_code_and_start_line() {
    let value = serde_json::to_value(run_triage(&healthy())).expect("serializes");
    assert_eq!(value["health"], "healthy");
    assert_eq!(value["exit_code"], 0);
    assert_eq!(value["start_with"], Value::Null);
    assert_eq!(value["service"]["flavor"], "kneo-server");
    assert_eq!(value["stages"][0]["level"], "ok");
    assert_eq!(value["stages"][0]["kind"], "service");
    assert_eq!(value["stages"][0]["id"], "healthz");
    assert_eq!(value["access"]["kind"], "access");
    assert_eq!(value["notes"]["children"][0]["kind"], "note");
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
