//! Stage 2, `/readyz`: each failing check with the section the readiness matrix names (the same
//! table the server's own `runbook` field comes from), and the full message of `GET /v1/health`
//! where the target has it.

use std::collections::BTreeMap;

use kneo_client::CallError;
use kneo_client::wire::ReadinessCheck;

use super::super::{Level, Probes, Verdict};
use super::{AccessView, ms, silence};
use crate::matrix::{self, Store};

pub(crate) fn readiness(probes: &Probes, access: &AccessView) -> Verdict {
    let stage = |level, title: &str| Verdict::new(2, "readyz", level, title);
    if let Some(why) = silence(probes, access) {
        return Verdict::not_judged(2, "readyz", "/readyz", why);
    }
    let Some(reply) = &probes.readyz else {
        return stage(Level::Ok, "/readyz: not probed");
    };
    let readiness = match &reply.result {
        Ok(readiness) => readiness,
        Err(CallError::Timeout {
            after,
            connected: true,
            ..
        }) => {
            return stage(Level::Fail, "/readyz: hung (connects, never answers)")
                .with_detail(format!(
                    "/healthz answered, /readyz gave no answer within {}; kneo bounds every readiness probe (1.5 s), so the process itself is stuck",
                    ms(*after)
                ))
                .with_section("1.5");
        }
        Err(error @ (CallError::Timeout { .. } | CallError::Unreachable { .. })) => {
            return stage(Level::Fail, "/readyz: unreachable (treat as down)")
                .with_detail(error.to_string())
                .with_section("1.3");
        }
        Err(CallError::Status {
            status: 401 | 403 | 407,
            ..
        }) => {
            return Verdict::not_judged(
                2,
                "readyz",
                "/readyz",
                "something in front demands auth (see the tool's access)",
            );
        }
        Err(error) => {
            return stage(Level::Fail, "/readyz: unexpected answer")
                .with_detail(error.to_string())
                .with_section("1.2");
        }
    };

    let details: BTreeMap<&str, &ReadinessCheck> = probes
        .health_detail
        .as_ref()
        .and_then(|reply| reply.value())
        .map(|detail| {
            detail
                .checks
                .iter()
                .map(|check| (check.name.as_str(), check))
                .collect()
        })
        .unwrap_or_default();
    let store = Store::of(readiness);
    let children: Vec<Verdict> = readiness
        .checks
        .iter()
        .map(|check| check_verdict(check, details.get(check.name.as_str()).copied(), store))
        .collect();
    let failing: Vec<&str> = readiness
        .failing()
        .map(|check| check.name.as_str())
        .collect();
    let status = reply
        .status
        .map(|s| format!("HTTP {s}, "))
        .unwrap_or_default();

    if readiness.ready && failing.is_empty() {
        return stage(Level::Ok, "/readyz: dependencies healthy")
            .with_detail(format!(
                "{status}{} checks ok; answered in {}",
                readiness.checks.len(),
                ms(reply.latency)
            ))
            .with_children(children);
    }
    if failing.is_empty() {
        return stage(Level::Fail, "/readyz: not ready, and no check says why")
            .with_detail(format!(
                "{status}the body names no failing check; read it in full"
            ))
            .with_section("1.2")
            .with_children(children);
    }
    stage(
        Level::Fail,
        format!(
            "/readyz: {} of {} checks failing: {}",
            failing.len(),
            readiness.checks.len(),
            failing.join(", ")
        )
        .as_str(),
    )
    .with_detail(format!("{status}answered in {}", ms(reply.latency)))
    .with_section("1.2")
    .with_children(children)
}

/// kneo-serv 1.2's one error word for any failing check: it never says why on `/readyz`.
const KNEO_SERV_ANY_FAILURE: &str = "check_failed";

fn check_verdict(
    check: &ReadinessCheck,
    detailed: Option<&ReadinessCheck>,
    store: Store,
) -> Verdict {
    let id = format!("readyz.{}", check.name);
    if check.ok {
        return Verdict::new(2, id, Level::Ok, check.name.as_str())
            .with_detail(check_summary(check));
    }
    let section = matrix::runbook_section(&check.name, check.error.as_deref(), store);
    let mut parts = Vec::new();
    parts.push(match (&check.error, &check.message) {
        (Some(error), Some(message)) => format!("{error}: {message}"),
        (Some(error), None) => error.clone(),
        (None, Some(message)) => message.clone(),
        (None, None) => "failed".into(),
    });
    let missing = check.missing_secrets();
    if !missing.is_empty() {
        parts.push(format!(
            "not set in the service's environment: {}",
            missing.join(", ")
        ));
    }
    if let Some(full) = detailed
        .and_then(|d| d.detail_message.as_deref())
        .or(check.detail_message.as_deref())
    {
        parts.push(format!("detail: {full}"));
    }
    if check.error.as_deref() == Some(KNEO_SERV_ANY_FAILURE) {
        parts.push(format!(
            "kneo-serv 1.2 gives no cause here; its log does (\"readiness check '{}' failed: …\"), \
             and that cause picks the sub-section of § {section}",
            check.name
        ));
    }
    if section == "extending" {
        parts.push("see docs/extending.md (registering runtimes and tools)".into());
    }
    Verdict::new(2, id, Level::Fail, check.name.as_str())
        .with_detail(parts.join("; "))
        .with_section(section)
}

fn check_summary(check: &ReadinessCheck) -> String {
    match check.name.as_str() {
        "queue" => {
            let mut parts = vec![
                format!("{} queued", check.queued.unwrap_or(0)),
                format!("{} running", check.running.unwrap_or(0)),
                format!("{} failed", check.failed.unwrap_or(0)),
            ];
            if let Some(workers) = check.workers {
                parts.push(format!("{workers} worker(s)"));
            }
            parts.join(", ")
        }
        "runtime_registry" | "tool_registry" => format!("{} registered", check.count.unwrap_or(0)),
        "providers" | "mcp" if check.configured == Some(false) => "none listed".into(),
        "providers" | "mcp" => format!("{} secret(s) present", check.items.len()),
        _ => check
            .status
            .clone()
            .or_else(|| check.kind.clone())
            .unwrap_or_else(|| "ok".into()),
    }
}
