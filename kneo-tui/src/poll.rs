//! The pollers, each on its own tokio task (async-github's pattern): they fetch, then send the
//! result into the event channel. The UI never awaits the network, and every call is bounded by
//! `--timeout`, so a hung service shows up as a timeout verdict, not a frozen screen.
//!
//! - [`spawn_probes`]: every `--refresh`, `kneo_triage::probe::collect` (health, readiness, queue,
//!   human tasks, service events, metrics, leases) plus the recent failed runs. It learns once
//!   per target which optional routes the target lacks (kneo-serv 1.2 has no `/v1/health` and no
//!   service events) and stops asking for them, until `/healthz` shows another service.
//! - [`spawn_details`]: the Runs screen's list (with its status filter) and the open
//!   drill-down (run, trace, checkpoints, audit events), refetched each refresh and at once when
//!   the filter or the run changes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kneo_client::client::{AuditQuery, PageRequest, RunQuery};
use kneo_client::{Client, Reply};
use kneo_triage::probe::{self, ProbeOptions};
use kneo_triage::triage::OptionalRoute;
use tokio::sync::{Notify, watch};

use crate::app::{Action, DrillData, Fetched, PollOutcome, RunsWatch};
use crate::event::{Event, Sender};

/// How the pollers poll.
#[derive(Debug, Clone)]
pub struct PollConfig {
    pub refresh: Duration,
    /// Bound on each call, and on a whole poll.
    pub timeout: Duration,
    /// Rows asked for in lists.
    pub list_limit: u32,
}

/// Wakes the pollers before their next tick (the `r` key).
#[derive(Debug, Clone, Default)]
pub struct RefreshHandle {
    probes: Arc<Notify>,
    details: Arc<Notify>,
}

impl RefreshHandle {
    pub fn refresh_now(&self) {
        self.probes.notify_one();
        self.details.notify_one();
    }
}

/// Runs the probe poller until the channel closes.
pub fn spawn_probes(
    client: Client,
    config: PollConfig,
    refresh: RefreshHandle,
    sender: Sender,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(config.refresh);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut learned = Learned::default();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = refresh.probes.notified() => { interval.reset(); }
            }
            let outcome = poll_once(&client, &config, &learned.absent).await;
            learned.learn(&outcome.probes);
            let action = Action::Polled {
                outcome: Box::new(outcome),
                at: Utc::now(),
            };
            if sender.send(Event::App(action)).await.is_err() {
                return;
            }
        }
    })
}

/// What the probe poller learned about its target.
#[derive(Debug, Default)]
struct Learned {
    /// `service` and `version` of the `/healthz` the learning holds for.
    identity: Option<(Option<String>, Option<String>)>,
    absent: BTreeSet<OptionalRoute>,
}

impl Learned {
    fn learn(&mut self, probes: &kneo_triage::triage::Probes) {
        let Some(body) = probes.healthz.value() else {
            // A target that does not answer teaches nothing.
            return;
        };
        let identity = Some((body.service.clone(), body.version.clone()));
        if identity != self.identity {
            // Another service answers (an upgrade, a failover): learn it again.
            self.identity = identity;
            self.absent.clear();
        }
        self.absent
            .extend(kneo_triage::triage::capabilities::absent_routes(probes));
    }
}

/// One poll: the triage probes and the failed runs, side by side, bounded by the timeout.
/// `absent` are the optional routes the target is known not to have.
pub async fn poll_once(
    client: &Client,
    config: &PollConfig,
    absent: &BTreeSet<OptionalRoute>,
) -> PollOutcome {
    let started = Instant::now();
    let options = ProbeOptions {
        call_timeout: config.timeout,
        deadline: Some(started + config.timeout),
        list_limit: config.list_limit,
        lease_checks: 10,
        service_event_limit: 200,
        known_absent: absent.clone(),
    };
    let bounded = client.with_request_timeout(config.timeout);
    let failed_query = RunQuery {
        status: Some("failed".into()),
        page: PageRequest::new(config.list_limit.min(50), 0).sorted("updated_at", "desc"),
    };
    // Asked without a key too: a service with auth off answers.
    let failed = async { Some(bounded.list_runs(&failed_query).await) };
    let (probes, failed_runs) = tokio::join!(probe::collect(client, &options), failed);
    PollOutcome {
        probes,
        failed_runs,
        elapsed: started.elapsed(),
    }
}

/// Runs the details poller: the runs list and the drill-down that `watch` names.
pub fn spawn_details(
    client: Client,
    config: PollConfig,
    refresh: RefreshHandle,
    mut watch: watch::Receiver<RunsWatch>,
    sender: Sender,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(config.refresh);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = refresh.details.notified() => { interval.reset(); }
                changed = watch.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    interval.reset();
                }
            }
            let wanted = watch.borrow_and_update().clone();
            if !wanted.visible && wanted.drill.is_none() {
                continue;
            }
            let bounded = client.with_request_timeout(config.timeout);
            let list = async {
                if wanted.visible {
                    Some(fetch_runs(&bounded, wanted.status.as_deref(), config.list_limit).await)
                } else {
                    None
                }
            };
            let drill = async {
                match &wanted.drill {
                    Some(run_id) => Some(fetch_drill(&bounded, run_id).await),
                    None => None,
                }
            };
            let (list, drill) = tokio::join!(list, drill);
            let mut actions: Vec<Action> = list
                .map(|result| Action::RunsLoaded {
                    status: wanted.status.clone(),
                    result,
                })
                .into_iter()
                .collect();
            if let (Some(run_id), Some(data)) = (wanted.drill, drill) {
                actions.push(Action::DrillLoaded {
                    run_id,
                    data: Box::new(data),
                });
            }
            for action in actions {
                if sender.send(Event::App(action)).await.is_err() {
                    return;
                }
            }
        }
    })
}

async fn fetch_runs(
    client: &Client,
    status: Option<&str>,
    limit: u32,
) -> Fetched<kneo_client::wire::RunList> {
    let query = RunQuery {
        status: status.map(str::to_string),
        page: PageRequest::new(limit, 0).sorted("updated_at", "desc"),
    };
    fetched(client.list_runs(&query).await)
}

/// Run, trace, checkpoints and audit events of one run, concurrently.
pub async fn fetch_drill(client: &Client, run_id: &str) -> DrillData {
    let page = PageRequest::new(500, 0);
    let audit = AuditQuery {
        run_id: Some(run_id.to_string()),
        page: PageRequest::new(200, 0).sorted("created_at", "desc"),
        ..AuditQuery::default()
    };
    let (run, trace, checkpoints, audit) = tokio::join!(
        client.get_run(run_id),
        client.run_trace(run_id, &page),
        client.run_checkpoints(run_id, &page),
        client.list_audit_events(&audit),
    );
    DrillData {
        run: fetched(run),
        trace: fetched(trace),
        checkpoints: fetched(checkpoints),
        audit: fetched(audit),
    }
}

/// A reply as a value or the one-line reason there is none.
pub fn fetched<T>(reply: Reply<T>) -> Fetched<T> {
    reply.result.map_err(|error| match &error {
        kneo_client::CallError::Status { status, error, .. } => match error {
            Some(body) => format!("HTTP {status} {}", body.summary()),
            None => format!("HTTP {status}"),
        },
        other => other.to_string(),
    })
}
