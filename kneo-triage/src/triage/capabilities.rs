//! What the target is, learned from its answers: kneo-server or kneo-serv 1.2 (from `/healthz`),
//! and which optional routes it lacks (from a 404 on them). A route the target does not have is a
//! note, never a symptom, and a poller stops asking for it ([`absent_routes`]).

use std::collections::BTreeSet;

use kneo_client::{CallError, Reply};
use serde::Serialize;

use super::{Probes, Verdict};

/// Which service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// kneo-server: `/healthz` carries `instance_id` / `started_at`.
    KneoServer,
    /// The Python kneo-serv (1.x): `/healthz` has only `status`.
    KneoServ,
    /// No health answer to tell.
    Unknown,
}

impl Flavor {
    pub fn describe(self) -> &'static str {
        match self {
            Flavor::KneoServer => "kneo-server",
            Flavor::KneoServ => "kneo-serv",
            Flavor::Unknown => "unknown service",
        }
    }
}

/// The kneo-server routes kneo-serv 1.2 does not have (and `/metrics`, which a service can turn
/// off with `KNEO_SERV_METRICS_ENABLED=false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionalRoute {
    HealthDetail,
    ServiceEvents,
    Metrics,
}

impl OptionalRoute {
    pub const ALL: [OptionalRoute; 3] = [
        OptionalRoute::HealthDetail,
        OptionalRoute::ServiceEvents,
        OptionalRoute::Metrics,
    ];

    pub fn path(self) -> &'static str {
        match self {
            OptionalRoute::HealthDetail => "/v1/health",
            OptionalRoute::ServiceEvents => "/v1/service/events",
            OptionalRoute::Metrics => "/metrics",
        }
    }

    /// The route a probe URL calls, when it is an optional one.
    pub fn of_url(url: &str) -> Option<OptionalRoute> {
        let path = super::stages::path_of(url);
        OptionalRoute::ALL
            .into_iter()
            .find(|route| route.path() == path)
    }
}

/// What the answers showed the target to be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceIdentity {
    pub flavor: Flavor,
    /// `service` and `version` of `/healthz`.
    pub name: Option<String>,
    pub version: Option<String>,
    /// Optional routes the target does not have.
    pub absent_routes: Vec<OptionalRoute>,
}

/// Whether a reply says the route does not exist (404).
pub fn is_absent<T>(reply: &Reply<T>) -> bool {
    matches!(reply.error(), Some(CallError::Status { status: 404, .. }))
}

/// The optional routes this poll (or an earlier one) showed to be absent.
pub fn absent_routes(probes: &Probes) -> BTreeSet<OptionalRoute> {
    let mut absent = probes.known_absent.clone();
    let answered: [(OptionalRoute, bool); 3] = [
        (
            OptionalRoute::HealthDetail,
            probes.health_detail.as_ref().is_some_and(is_absent),
        ),
        (
            OptionalRoute::ServiceEvents,
            probes.service_events.as_ref().is_some_and(is_absent),
        ),
        (
            OptionalRoute::Metrics,
            probes.metrics.as_ref().is_some_and(is_absent),
        ),
    ];
    absent.extend(
        answered
            .into_iter()
            .filter(|(_, absent)| *absent)
            .map(|(route, _)| route),
    );
    absent
}

pub fn learn(probes: &Probes) -> ServiceIdentity {
    let body = probes.healthz.value();
    let flavor = match body {
        None => Flavor::Unknown,
        Some(body) if body.metadata.instance_id.is_some() || body.metadata.started_at.is_some() => {
            Flavor::KneoServer
        }
        Some(body) if body.version.as_deref().is_some_and(|v| v.starts_with("1.")) => {
            Flavor::KneoServ
        }
        Some(_) => Flavor::Unknown,
    };
    ServiceIdentity {
        flavor,
        name: body.and_then(|b| b.service.clone()),
        version: body.and_then(|b| b.version.clone()),
        absent_routes: absent_routes(probes).into_iter().collect(),
    }
}

/// Notes about the target: what it is not able to tell, so nobody reads its silence as a fault.
pub fn notes(probes: &Probes, service: &ServiceIdentity) -> Vec<Verdict> {
    let mut notes = Vec::new();
    if service.flavor == Flavor::KneoServ {
        notes.push(
            Verdict::note(
                "note.kneo_serv",
                format!(
                    "the target is kneo-serv {}: judged from /readyz, runs, human tasks and /metrics",
                    service.version.as_deref().unwrap_or("1.x")
                ),
            )
            .with_detail(
                "kneo-serv has no /v1/health and no service events (kneo-server's), and does not count the \
                 answers it gives by status, so other callers' 401, 403 and 409 answers cannot be seen from here",
            ),
        );
    }
    for route in &service.absent_routes {
        if service.flavor == Flavor::KneoServ
            && matches!(
                route,
                OptionalRoute::HealthDetail | OptionalRoute::ServiceEvents
            )
        {
            continue;
        }
        let known_before = probes.known_absent.contains(route);
        notes.push(Verdict::note(
            format!("note.absent.{}", route_id(*route)),
            format!(
                "GET {} {}: this target does not have it",
                route.path(),
                if known_before {
                    "was not asked (it answered 404 before)"
                } else {
                    "answered 404"
                }
            ),
        ));
    }
    notes
}

fn route_id(route: OptionalRoute) -> &'static str {
    match route {
        OptionalRoute::HealthDetail => "health_detail",
        OptionalRoute::ServiceEvents => "service_events",
        OptionalRoute::Metrics => "metrics",
    }
}
