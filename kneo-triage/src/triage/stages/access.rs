//! The tool's own view: answers that are about the tool (its key, its scopes, its path to the
//! service), not about the service. They never make the service degraded; they have their own
//! exit code and their own line in kneo-tui's status bar.

use std::collections::{BTreeMap, BTreeSet};

use kneo_client::{CallError, Reply};

use super::super::{Level, Probes, Verdict};
use super::ms;

/// What the tool's access let it see.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessView {
    pub verdicts: Vec<Verdict>,
    /// Why the run and task listings were not read, when the tool's access was the reason.
    pub listings_blocked: Option<String>,
    /// URLs whose error answers are about the tool (not symptoms of the service).
    pub urls: BTreeSet<String>,
    /// The service was not reached from here at all (its state is unknown).
    pub unreached: bool,
}

/// The key's name, when `GET /v1/health` told it.
fn key_name(probes: &Probes) -> Option<String> {
    probes
        .health_detail
        .as_ref()?
        .value()?
        .identity
        .as_ref()?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

pub(crate) fn access(probes: &Probes) -> AccessView {
    let mut view = AccessView::default();
    reach(probes, &mut view);
    if view.unreached {
        return view;
    }
    if let Some(CallError::Status {
        status: status @ (401 | 403 | 407),
        ..
    }) = probes.readyz.as_ref().and_then(|r| r.error())
    {
        view.verdicts.push(
            Verdict::access("access.readyz_auth", Level::Fail, format!("/readyz answered {status}: something in front demands auth"))
                .with_detail("kneo's /readyz needs no key; a proxy or gateway between the tool and the service asks for one, so readiness was not read")
                .with_section("4.3"),
        );
    }
    credentials(probes, &mut view);
    view
}

/// `/healthz` tells whether the tool reaches the service at all.
fn reach(probes: &Probes, view: &mut AccessView) {
    let target = &probes.target;
    let problem = match probes.healthz.error() {
        Some(CallError::Unreachable {
            refused: false,
            reason,
            ..
        }) => Some(
            Verdict::access(
                "access.unreachable",
                Level::Fail,
                format!("cannot reach {target} from here"),
            )
            .with_detail(format!(
                "{reason}; the service may be fine elsewhere: check the address, DNS and the network path (firewall, VPN) from this host"
            )),
        ),
        Some(CallError::Timeout {
            connected: false,
            after,
            ..
        }) => Some(
            Verdict::access("access.unreachable", Level::Fail, format!("cannot reach {target} from here"))
                .with_detail(format!(
                    "the connection did not complete within {}: a firewall that drops packets, a wrong address or a network path problem; the service may be fine elsewhere",
                    ms(*after)
                )),
        ),
        Some(CallError::InvalidRequest { reason, .. }) => Some(
            Verdict::access("access.invalid_request", Level::Fail, "the tool could not send its request")
                .with_detail(format!("{reason} (TLS, a proxy or the URL in the way)")),
        ),
        Some(CallError::Status {
            status: status @ (401 | 403 | 407),
            ..
        }) => Some(
            Verdict::access("access.healthz_auth", Level::Fail, format!("/healthz answered {status}: something in front demands auth"))
                .with_detail("kneo's /healthz needs no key: a proxy or gateway answers for it, so the service itself was not reached"),
        ),
        Some(CallError::Status { status, .. }) if *status < 500 => Some(
            Verdict::access("access.not_kneo", Level::Fail, format!("something else answers at {target}"))
                .with_detail(format!("/healthz answered HTTP {status}: is this the kneo service (not a proxy path or another app)?")),
        ),
        Some(CallError::BadBody { reason, .. }) => Some(
            Verdict::access("access.not_kneo", Level::Fail, format!("something else answers at {target}"))
                .with_detail(format!("the /healthz body is not kneo's ({reason}): is this the kneo service?")),
        ),
        _ => None,
    };
    if let Some(problem) = problem {
        view.unreached = true;
        view.verdicts.push(problem.with_section("1.3"));
    }
}

/// One call that carries the key: what it reads, its URL and its error.
type Call<'a> = (&'static str, &'a str, Option<&'a CallError>);

fn push<'a, T>(calls: &mut Vec<Call<'a>>, what: &'static str, reply: Option<&'a Reply<T>>) {
    if let Some(reply) = reply {
        calls.push((what, &reply.url, reply.error()));
    }
}

/// Every call that carries the key.
fn authenticated_calls(probes: &Probes) -> Vec<Call<'_>> {
    let mut calls = Vec::new();
    push(
        &mut calls,
        "GET /v1/health (readiness detail, the key's identity)",
        probes.health_detail.as_ref(),
    );
    push(&mut calls, "queued runs", probes.queued_runs.as_ref());
    push(&mut calls, "running runs", probes.running_runs.as_ref());
    push(&mut calls, "human tasks", probes.human_tasks.as_ref());
    push(&mut calls, "service events", probes.service_events.as_ref());
    for reply in &probes.recoveries {
        push(&mut calls, "run leases", Some(reply));
    }
    calls
}

/// 401s and 403s on the calls that carry the key.
fn credentials(probes: &Probes, view: &mut AccessView) {
    let mut rejected: Vec<&str> = Vec::new();
    let mut lacking: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut listings_refused = false;
    for (what, url, error) in authenticated_calls(probes) {
        let Some(CallError::Status { status, error, .. }) = error else {
            continue;
        };
        match status {
            401 => rejected.push(what),
            403 => {
                let scope = error
                    .as_ref()
                    .and_then(|e| e.required_scope.clone())
                    .unwrap_or_else(|| "a scope".into());
                lacking.entry(scope).or_default().push(what);
            }
            _ => continue,
        }
        view.urls.insert(url.to_string());
        listings_refused |= matches!(what, "queued runs" | "running runs" | "human tasks");
    }
    if !rejected.is_empty() {
        rejected.dedup();
        let what = rejected.join(", ");
        let verdict = if probes.key_given {
            view.listings_blocked = Some("the tool's key was rejected (401)".into());
            Verdict::access("access.key_rejected", Level::Fail, "the tool's API key was rejected (401)")
                .with_detail(format!(
                    "not read: {what}; give the tool a key the service has (KNEO_SERV_API_KEY or --api-key); a key added to KNEO_SERV_API_KEYS works only after the service restarts"
                ))
                .with_section("4.1")
        } else {
            view.listings_blocked = Some("no API key given".into());
            Verdict::access("access.no_key", Level::Warn, "no API key given, and the service requires one")
                .with_detail(format!("not read: {what}; set KNEO_SERV_API_KEY (an operator key reads everything triage needs)"))
                .with_section("4.3")
        };
        view.verdicts.push(verdict);
    }
    let whose = key_name(probes)
        .map(|name| format!("the tool's key ({name})"))
        .unwrap_or_else(|| "the tool's key".into());
    for (scope, mut whats) in lacking {
        whats.dedup();
        if view.listings_blocked.is_none() && listings_refused {
            view.listings_blocked = Some(format!("{whose} lacks {scope}"));
        }
        view.verdicts.push(
            Verdict::access(
                format!("access.scope.{scope}"),
                Level::Warn,
                format!("{whose} lacks {scope}"),
            )
            .with_detail(format!(
                "not read: {}; give the key a role that grants {scope} (operator grants everything triage reads)",
                whats.join(", ")
            ))
            .with_section("4.2"),
        );
    }
}
