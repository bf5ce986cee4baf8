//! Stage 4, symptoms: what other callers hit ([`super::callers`]), the tool's own error answers
//! that nothing else explains, restart loops and unexplained 5xx bursts ([`super::history`]),
//! and dead-lettered runs.
//!
//! Not a symptom: the tool's own 401/403 (the tool's access), a 404 on a route the target does
//! not have (a note), and a 5xx while `/readyz` already names the failing dependency.

use std::collections::BTreeMap;

use kneo_client::CallError;
use kneo_client::wire::ErrorBody;

use super::super::capabilities::{OptionalRoute, ServiceIdentity};
use super::super::symptoms;
use super::super::{Level, Probes, Thresholds, Verdict};
use super::{AccessView, callers, history, path_of, silence};
use crate::matrix::{self, Store};

/// Error answers with the same status and code, and where they came from.
struct ErrorAnswer {
    symptom: Option<symptoms::Symptom>,
    paths: Vec<String>,
    message: String,
}

/// The symptom row of one error answer; `store_unavailable` follows the store kind it carries,
/// through the same matrix as `/readyz`.
fn symptom_of(
    status: u16,
    error: Option<&ErrorBody>,
    path: &str,
    store: Store,
) -> Option<symptoms::Symptom> {
    let mut symptom = symptoms::lookup(status, error.and_then(|e| e.code.as_deref()), path)?;
    let kind = error
        .and_then(|e| e.extra.get("kind"))
        .and_then(|kind| kind.as_str());
    if symptom.code == Some("store_unavailable") && kind.is_some() {
        symptom.section = matrix::runbook_section("run_state_store", kind, store);
    }
    Some(symptom)
}

pub(crate) fn symptoms(
    probes: &Probes,
    thresholds: &Thresholds,
    service: &ServiceIdentity,
    access: &AccessView,
) -> Verdict {
    if let Some(why) = silence(probes, access) {
        return Verdict::not_judged(4, "symptoms", "Symptoms", why);
    }
    let readiness = probes.readiness();
    let not_ready = readiness.is_some_and(|r| !r.ready);
    let store = readiness.map(Store::of).unwrap_or(Store::Unknown);

    // /healthz and /readyz have their own stages; every other answer may be a symptom.
    let mut answers: Vec<(Option<&CallError>, &str)> = Vec::new();
    for reply in [&probes.health_detail].into_iter().flatten() {
        answers.push((reply.error(), &reply.url));
    }
    for reply in [&probes.queued_runs, &probes.running_runs]
        .into_iter()
        .flatten()
    {
        answers.push((reply.error(), &reply.url));
    }
    if let Some(reply) = &probes.human_tasks {
        answers.push((reply.error(), &reply.url));
    }
    if let Some(reply) = &probes.service_events {
        answers.push((reply.error(), &reply.url));
    }
    if let Some(reply) = &probes.metrics {
        answers.push((reply.error(), &reply.url));
    }
    for reply in &probes.recoveries {
        answers.push((reply.error(), &reply.url));
    }

    let mut grouped: BTreeMap<(u16, String), ErrorAnswer> = BTreeMap::new();
    for (failure, url) in answers {
        let Some(CallError::Status { status, error, .. }) = failure else {
            continue;
        };
        let optional_absent = *status == 404 && OptionalRoute::of_url(url).is_some();
        let explained_by_readiness = *status >= 500 && not_ready;
        if access.urls.contains(url) || optional_absent || explained_by_readiness {
            continue;
        }
        let path = path_of(url);
        let code = error
            .as_ref()
            .and_then(|e| e.code.clone())
            .unwrap_or_default();
        let entry = grouped
            .entry((*status, code))
            .or_insert_with(|| ErrorAnswer {
                symptom: symptom_of(*status, error.as_deref(), &path, store),
                paths: Vec::new(),
                message: error
                    .as_ref()
                    .map(|e| e.summary())
                    .unwrap_or_else(|| "no error envelope".into()),
            });
        if !entry.paths.contains(&path) {
            entry.paths.push(path);
        }
    }

    let mut findings: Vec<Verdict> = grouped
        .into_iter()
        .map(|((status, code), answer)| {
            let level = if status >= 500 {
                Level::Fail
            } else {
                Level::Warn
            };
            let (id, code_text) = if code.is_empty() {
                (format!("symptom.{status}"), String::new())
            } else {
                (format!("symptom.{status}.{code}"), format!(" {code}"))
            };
            let meaning = answer
                .symptom
                .map(|s| s.meaning)
                .unwrap_or("an answer the runbook has no entry for");
            let verdict = Verdict::new(
                4,
                id,
                level,
                format!("the tool got HTTP {status}{code_text}: {meaning}"),
            )
            .with_detail(format!(
                "{} (from {})",
                answer.message,
                answer.paths.join(", ")
            ));
            match answer.symptom {
                Some(symptom) => verdict.with_section(symptom.section),
                None => verdict.with_section("capture and escalate"),
            }
        })
        .collect();

    findings.extend(callers::findings(probes, thresholds));
    findings.extend(history::findings(probes, thresholds));
    let dead_lettered = probes
        .metrics
        .as_ref()
        .and_then(|m| m.value())
        .and_then(|m| m.get("kneo_runs_dead_lettered_total"));
    if let Some(dead) = dead_lettered.filter(|count| *count > 0.0) {
        findings.push(
            Verdict::new(4, "symptom.dead_lettered", Level::Warn, format!("{dead} run(s) dead-lettered since the service started"))
                .with_detail("their workers kept losing the lease (crash, freeze or store outage); see the run.dead_lettered audit events")
                .with_section("5.6"),
        );
    }
    let title = if !findings.is_empty() {
        "Symptoms: error answers found"
    } else if service.flavor == super::super::Flavor::KneoServ {
        "Symptoms: none in what kneo-serv records"
    } else {
        "Symptoms: no error answers"
    };
    Verdict::new(4, "symptoms", Level::Ok, title).with_children(findings)
}
