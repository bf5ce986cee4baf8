//! Collects [`Probes`] from a live service: every call concurrent and time-bounded, so a hung
//! dependency shows up as a timeout verdict instead of a hung tool.
//!
//! The routes that need a key are asked even without one: a service with auth off answers them,
//! and one with auth on says 401, which triage reports as the tool's access (not the service's
//! state). Optional routes the target is known not to have are not asked again.

use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use chrono::Utc;
use kneo_client::Client;
use kneo_client::client::{HumanTaskQuery, PageRequest, RunQuery};

use crate::triage::{OptionalRoute, Probes};

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Upper bound of each call.
    pub call_timeout: Duration,
    /// No call runs past this instant (each gets `min(call_timeout, time left)`).
    pub deadline: Option<Instant>,
    /// Rows asked for in the run and task listings.
    pub list_limit: u32,
    /// Running runs whose lease is looked up (`/v1/runs/{id}/recovery`), oldest update first.
    pub lease_checks: usize,
    /// Service events read for the 5xx-burst and restart rules.
    pub service_event_limit: u32,
    /// Optional routes an earlier answer showed the target does not have (not asked).
    pub known_absent: BTreeSet<OptionalRoute>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            call_timeout: Duration::from_secs(5),
            deadline: None,
            list_limit: 100,
            lease_checks: 10,
            service_event_limit: 200,
            known_absent: BTreeSet::new(),
        }
    }
}

impl ProbeOptions {
    /// The bound for a call starting now.
    fn bound(&self) -> Duration {
        let left = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        left.map_or(self.call_timeout, |left| left.min(self.call_timeout))
            .max(Duration::from_millis(1))
    }
}

/// Probes the service behind `client`.
pub async fn collect(client: &Client, options: &ProbeOptions) -> Probes {
    let observed_at = Utc::now();
    let bounded = client.with_request_timeout(options.bound());
    let wanted = |route: OptionalRoute| !options.known_absent.contains(&route);
    let page =
        |sort_by: &str, order: &str| PageRequest::new(options.list_limit, 0).sorted(sort_by, order);
    let queued_query = RunQuery {
        status: Some("queued".into()),
        page: page("created_at", "asc"),
    };
    let running_query = RunQuery {
        status: Some("running".into()),
        page: page("updated_at", "asc"),
    };
    let task_query = HumanTaskQuery {
        page: page("expires_at", "asc"),
        ..HumanTaskQuery::default()
    };
    let events_page = PageRequest::new(options.service_event_limit, 0).sorted("created_at", "desc");

    let (
        healthz,
        readyz,
        metrics,
        health_detail,
        queued_runs,
        running_runs,
        human_tasks,
        service_events,
    ) = tokio::join!(
        bounded.healthz(),
        bounded.readyz(),
        maybe(wanted(OptionalRoute::Metrics), bounded.metrics()),
        maybe(wanted(OptionalRoute::HealthDetail), bounded.health_detail()),
        bounded.list_runs(&queued_query),
        bounded.list_runs(&running_query),
        bounded.list_human_tasks(&task_query),
        maybe(
            wanted(OptionalRoute::ServiceEvents),
            bounded.list_service_events(&events_page)
        ),
    );

    // Leases need the running runs' ids, so they come second.
    let running_ids: Vec<String> = running_runs
        .value()
        .map(|list| {
            list.runs
                .iter()
                .take(options.lease_checks)
                .map(|run| run.run_id.clone())
                .collect()
        })
        .unwrap_or_default();
    let lease_client = client.with_request_timeout(options.bound());
    let recoveries =
        futures_util::future::join_all(running_ids.iter().map(|id| lease_client.run_recovery(id)))
            .await;

    let mut probes = Probes::new(client.base_url(), observed_at, healthz);
    probes.key_given = client.has_api_key();
    probes.known_absent = options.known_absent.clone();
    probes.readyz = Some(readyz);
    probes.metrics = metrics;
    probes.health_detail = health_detail;
    probes.queued_runs = Some(queued_runs);
    probes.running_runs = Some(running_runs);
    probes.human_tasks = Some(human_tasks);
    probes.service_events = service_events;
    probes.recoveries = recoveries;
    probes
}

/// Runs `call` only when `wanted`.
async fn maybe<T>(wanted: bool, call: impl Future<Output = T>) -> Option<T> {
    if wanted { Some(call.await) } else { None }
}
