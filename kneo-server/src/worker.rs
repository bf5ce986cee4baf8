//! Queue workers: claim async runs under a lease and execute them.
//!
//! In-process workers run inside `kneo service serve` (`KNEO_SERV_WORKER_CONCURRENCY`); on
//! Postgres, `kneo service worker` runs the same loop in separate processes. A worker that dies
//! keeps its lease until it expires; then any worker re-claims the run and continues it after its
//! last completed step.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::platform::Platform;
use crate::store::{
    ClaimRequest, Expect, Progress, QueueStatus, QueueTransition, RunStatus, SaveOutcome,
};

/// Starts the configured number of in-process workers.
pub fn spawn_in_process(state: &AppState, stopped: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    (0..state.config.worker.concurrency)
        .map(|index| {
            let worker_id = format!("worker-{}-{index}", state.instance.id);
            tokio::spawn(run_worker(
                state.platform.clone(),
                worker_id,
                stopped.clone(),
            ))
        })
        .collect()
}

/// One worker: claim, execute, repeat, until `stopped` turns true.
pub async fn run_worker(
    platform: Arc<Platform>,
    worker_id: String,
    mut stopped: watch::Receiver<bool>,
) {
    platform.metrics.workers.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "kneo_serv.platform", event = "worker_started", worker_id = %worker_id);
    let idle_wait = platform.config.worker.poll_interval;
    let mut failures: u32 = 0;
    while !*stopped.borrow() {
        let request = ClaimRequest {
            worker_id: worker_id.clone(),
            // This loop executes one run at a time, and none while it claims.
            reclaim_own_leases: true,
            lease: platform.config.worker.lease,
            max_attempts: platform.config.worker.max_attempts,
            limit: 1,
        };
        let claimed = match platform.stores.runs.claim_runs(&request).await {
            Ok(result) => {
                failures = 0;
                for run in &result.dead_lettered {
                    platform.metrics.run_dead_lettered();
                    platform.metrics.run_failed();
                    tracing::warn!(target: "kneo_serv.platform", event = "run_dead_lettered", run_id = %run.id, "run dead-lettered (runbook § 5.6) after repeated lease expiry (runbook § 5.1)");
                }
                result.claimed
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                // Once when the trouble starts, then every 20th retry: an outage must not flood the log.
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(target: "kneo_serv.platform", worker_id = %worker_id, kind = error.kind.as_str(), failures,
                        "claiming runs failed; retrying with backoff (runbook § 2.2)");
                }
                Vec::new()
            }
        };
        if claimed.is_empty() {
            // Backs off after store failures so an outage is not hammered.
            let wait = if failures > 0 {
                idle_wait * failures.min(10)
            } else {
                idle_wait
            };
            tokio::select! {
                _ = stopped.changed() => {}
                _ = platform.queue_signal.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for claim in claimed {
            execute_claim(&platform, &worker_id, claim.run, claim.attempt).await;
        }
    }
    platform.metrics.workers.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(target: "kneo_serv.platform", event = "worker_stopped", worker_id = %worker_id);
}

async fn execute_claim(
    platform: &Arc<Platform>,
    worker_id: &str,
    mut run: crate::store::RunRecord,
    attempt: i64,
) {
    let now = crate::clock::now_text();
    if run.started_at.is_none() {
        run.started_at = Some(now.clone());
    }
    run.status = RunStatus::Running;
    run.updated_at = now;
    let plan = platform.plan_for(&run);
    let mut progress = Progress::new(run.clone());
    progress.expect = Expect::NonTerminal;
    progress.lease_holder = Some(worker_id.to_string());
    if let Err(message) = &plan {
        // A run whose spec cannot be compiled any more would fail on every attempt: fail it now.
        progress.run.status = RunStatus::Failed;
        progress.run.error = Some(json!({"type": "spec_invalid", "message": message}));
        progress.run.completed_at = Some(progress.run.updated_at.clone());
        progress.queue = Some(QueueTransition::Finish {
            status: QueueStatus::Failed,
            error: Some(message.clone()),
        });
    }
    match platform.stores.runs.save_progress(&progress).await {
        Ok(SaveOutcome::Saved) => {}
        Ok(outcome) => {
            tracing::info!(target: "kneo_serv.platform", run_id = %run.id, ?outcome, "claimed run no longer runnable");
            return;
        }
        Err(error) => {
            tracing::warn!(target: "kneo_serv.platform", run_id = %run.id, %error, "could not start a claimed run; releasing it");
            let _ = platform.stores.runs.release_lease(&run.id, worker_id).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
    }
    let Ok(plan) = plan else {
        platform.metrics.run_failed();
        return;
    };
    if attempt == 1 {
        platform.metrics.run_started();
    } else {
        tracing::info!(target: "kneo_serv.platform", event = "run_reclaimed", run_id = %run.id, attempt, "continuing a run after its lease expired");
    }
    platform
        .execute(progress.run, plan, worker_id.to_string())
        .await;
}
