//! Running a claimed run: the executor with a store-backed recorder, a lease heartbeat, the run
//! deadline and cancellation, and the metrics and audit that follow its outcome.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Platform;
use crate::engine::executor::{self, Boundary, ExecutionSettings, Interrupt, Outcome, Recorder};
use crate::engine::plan::Plan;
use crate::store::{
    AuditEvent, Continuation, Expect, Progress, QueueStatus, QueueTransition, RunRecord, RunStatus,
    SaveOutcome,
};

/// Writes the executor's boundaries through the store, as the lease holder.
struct StoreRecorder<'a> {
    platform: &'a Platform,
    holder: String,
    /// Trace events written so far (up to [`EMBEDDED_TRACE_LIMIT`]), so a response can embed
    /// the trace without reading it back.
    written: std::sync::Mutex<Vec<serde_json::Value>>,
    /// Trace and checkpoint bytes this execution appended, for the run's store budget.
    appended_bytes: std::sync::atomic::AtomicU64,
}

/// The bytes a JSON value takes when stored.
fn stored_size(value: &impl serde::Serialize) -> u64 {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len() as u64)
}

/// Turns a boundary that would pass the run's store budget into the run's failure: nothing more
/// of the run is stored, and the error says what to change.
fn fail_over_budget(progress: &mut Progress, footprint: u64, budget: u64) {
    let now = crate::clock::now_text();
    let message = format!(
        "The run would take {footprint} bytes in the store (its state, trace and checkpoints), over KNEO_SERV_RUN_MAX_STORED_BYTES={budget}; \
         lower the workflow's max_steps or the size of its inputs and outputs, or raise the budget (runbook § 5.3)."
    );
    let run = &mut progress.run;
    run.status = RunStatus::Failed;
    run.error = Some(
        json!({"type": "run_too_large", "message": message, "stored_bytes": footprint, "max_stored_bytes": budget}),
    );
    run.updated_at = now.clone();
    run.completed_at = Some(now);
    progress.trace_events.clear();
    progress.checkpoints.clear();
    progress.queue = Some(QueueTransition::Finish {
        status: QueueStatus::Failed,
        error: Some("run_too_large".into()),
    });
    let metadata = json!({"error": run.error});
    progress.audit = vec![audit("run.failed", run, metadata)];
}

/// Most trace events a run response embeds (the full trace is at `/trace`).
pub const EMBEDDED_TRACE_LIMIT: usize = 1_000;

fn audit(event_type: &str, run: &RunRecord, metadata: serde_json::Value) -> AuditEvent {
    super::audit::event(
        event_type,
        "system",
        Some(&run.id),
        run.continuation_id.as_deref(),
        metadata,
    )
}

#[async_trait]
impl Recorder for StoreRecorder<'_> {
    async fn boundary(&self, boundary: Boundary) -> Result<(), Interrupt> {
        let mut progress = Progress::new(boundary.run);
        progress.trace_events = boundary.trace_events;
        progress.checkpoints = boundary.checkpoints;
        progress.lease_holder = Some(self.holder.clone());
        let budget = self.platform.config.run_max_stored_bytes;
        let mut over_budget = false;
        if budget > 0 {
            let appended: u64 = progress.trace_events.iter().map(stored_size).sum::<u64>()
                + progress.checkpoints.iter().map(stored_size).sum::<u64>();
            let before = self
                .appended_bytes
                .fetch_add(appended, std::sync::atomic::Ordering::Relaxed);
            let footprint = before + appended + stored_size(&progress.run);
            if footprint > budget {
                fail_over_budget(&mut progress, footprint, budget);
                over_budget = true;
            }
        }
        if boundary.finished && !over_budget {
            let run = &progress.run;
            // Completion is not audited (kneo-serv does not either); a pause is, as the human
            // task it opens.
            let queue_status = match run.status {
                RunStatus::Completed | RunStatus::Blocked => QueueStatus::Completed,
                _ => QueueStatus::Failed,
            };
            let error = run
                .error
                .as_ref()
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string);
            progress.queue = Some(QueueTransition::Finish {
                status: queue_status,
                error,
            });
            if run.status == RunStatus::Blocked {
                let metadata = json!({"request": run.pending_human_request, "step_id": run.metadata.get("pending_step_id")});
                progress.audit.push(audit("human.requested", run, metadata));
            } else if run.status == RunStatus::Failed {
                progress
                    .audit
                    .push(audit("run.failed", run, json!({"error": run.error})));
                if let Some(guardrail) = run
                    .error
                    .as_ref()
                    .and_then(|error| error.get("guardrail_id"))
                    .filter(|id| id.is_string())
                {
                    // Who stopped the run and where; the message names patterns, never the text.
                    let error = run.error.as_ref();
                    let metadata = json!({
                        "guardrail_id": guardrail,
                        "violation_type": error.and_then(|e| e.get("type")),
                        "step_id": error.and_then(|e| e.get("step_id")),
                    });
                    progress
                        .audit
                        .push(audit("guardrail.blocked", run, metadata));
                }
            }
        }
        match self.platform.stores.runs.save_progress(&progress).await {
            Ok(SaveOutcome::Saved) if over_budget => {
                tracing::warn!(target: "kneo_serv.platform", event = "run_too_large", run_id = %progress.run.id,
                    "run failed: it passed its store budget (KNEO_SERV_RUN_MAX_STORED_BYTES)");
                self.platform.metrics.run_failed();
                Err(Interrupt::Refused(Some(RunStatus::Failed)))
            }
            Ok(SaveOutcome::Saved) => {
                let mut written = self
                    .written
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = EMBEDDED_TRACE_LIMIT.saturating_sub(written.len());
                written.extend(progress.trace_events.into_iter().take(room));
                Ok(())
            }
            Ok(SaveOutcome::Refused { current }) => Err(Interrupt::Refused(current)),
            Ok(SaveOutcome::LeaseLost) => Err(Interrupt::LeaseLost),
            // Execution writes bind no idempotency key; a refusal means the run moved on.
            Ok(SaveOutcome::KeyTaken) => Err(Interrupt::Refused(None)),
            Err(error) => Err(Interrupt::Store(error)),
        }
    }

    async fn pause(&self, continuation: &Continuation) -> Result<(), Interrupt> {
        self.platform
            .stores
            .continuations
            .put(continuation)
            .await
            .map_err(Interrupt::Store)
    }
}

impl Platform {
    /// Executes `run` (already leased by `holder` and marked running) to its end, a pause or an
    /// interruption, and returns its stored state afterwards.
    pub async fn execute(
        self: &Arc<Self>,
        run: RunRecord,
        plan: Plan,
        holder: String,
    ) -> RunRecord {
        self.execute_collecting(run, plan, holder).await.0
    }

    /// Like [`Platform::execute`], also returning the trace events this execution wrote.
    pub async fn execute_collecting(
        self: &Arc<Self>,
        run: RunRecord,
        plan: Plan,
        holder: String,
    ) -> (RunRecord, Vec<serde_json::Value>) {
        let run_id = run.id.clone();
        let cancel = CancellationToken::new();
        self.register_running(&run_id, cancel.clone());
        let heartbeat = self.spawn_heartbeat(&run_id, &holder, cancel.clone());
        let settings = ExecutionSettings {
            trace_max_events: self.config.trace_max_events,
        };
        let recorder = StoreRecorder {
            platform: self,
            holder: holder.clone(),
            written: std::sync::Mutex::new(Vec::new()),
            appended_bytes: std::sync::atomic::AtomicU64::new(0),
        };
        let deadline = executor::remaining(&run);
        let work = executor::execute(&plan, run, &recorder, &cancel, &settings);
        let outcome = match deadline {
            Some(limit) => tokio::time::timeout(limit, work).await.ok(),
            None => Some(work.await),
        };
        heartbeat.abort();
        self.unregister_running(&run_id);
        let run = match outcome {
            Some(Outcome::Finished(run)) => {
                match run.status {
                    RunStatus::Completed => self.metrics.run_completed(),
                    _ => self.metrics.run_failed(),
                }
                if let Some(usage) = &run.usage {
                    let get = |key: &str| usage.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
                    self.metrics
                        .tokens(get("input_tokens"), get("output_tokens"));
                }
                run
            }
            Some(Outcome::Blocked(run)) => {
                self.metrics
                    .human_tasks_requested
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                run
            }
            Some(Outcome::Interrupted(interrupt)) => {
                self.after_interrupt(&run_id, &holder, interrupt).await
            }
            None => self.time_out(&run_id, Some(&holder)).await,
        };
        let events = recorder
            .written
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (run, events)
    }

    /// Reads back a run whose execution stopped early, logging why.
    async fn after_interrupt(&self, run_id: &str, holder: &str, interrupt: Interrupt) -> RunRecord {
        match &interrupt {
            Interrupt::Store(error) => {
                tracing::warn!(target: "kneo_serv.platform", run_id, %error, "run interrupted by a store error; its lease returns it to the queue");
                // Hand the run back at once so it is not stuck until the lease expires.
                let _ = self.stores.runs.release_lease(run_id, holder).await;
            }
            Interrupt::LeaseLost => {
                tracing::warn!(target: "kneo_serv.platform", run_id, "lease lost; another worker holds the run now")
            }
            Interrupt::Refused(status) => {
                tracing::info!(target: "kneo_serv.platform", run_id, status = ?status, "run stopped: its stored status no longer allows progress")
            }
            Interrupt::Cancelled => {
                tracing::info!(target: "kneo_serv.platform", run_id, "run stopped after cancellation")
            }
        }
        match self.stores.runs.get_run(run_id).await {
            Ok(Some(run)) => run,
            _ => {
                let mut placeholder =
                    RunRecord::new(run_id.to_string(), String::new(), crate::clock::now_text());
                placeholder.status = RunStatus::Running;
                placeholder
            }
        }
    }

    /// Marks a run `timed_out` (its deadline passed), deleting a continuation it was waiting on.
    pub async fn time_out(&self, run_id: &str, holder: Option<&str>) -> RunRecord {
        let Ok(Some(mut run)) = self.stores.runs.get_run(run_id).await else {
            return RunRecord::new(run_id.to_string(), String::new(), crate::clock::now_text());
        };
        if run.status.is_terminal() {
            return run;
        }
        let now = crate::clock::now_text();
        let continuation = run
            .continuation_id
            .clone()
            .filter(|_| run.status == RunStatus::Blocked);
        run.status = RunStatus::TimedOut;
        run.error = Some(json!({
            "type": "timed_out",
            "message": format!("The run passed its deadline {} (timeout_seconds); see runbook § 5.3", run.deadline_at.clone().unwrap_or_default()),
        }));
        run.updated_at = now.clone();
        run.completed_at = Some(now);
        let mut progress = Progress::new(run.clone());
        progress.expect = Expect::NonTerminal;
        progress.queue = Some(QueueTransition::Finish {
            status: QueueStatus::Failed,
            error: Some("timed_out".into()),
        });
        progress.audit.push(audit(
            "run.timed_out",
            &run,
            json!({"deadline_at": run.deadline_at}),
        ));
        let _ = holder;
        match self.stores.runs.save_progress(&progress).await {
            Ok(SaveOutcome::Saved) => {
                self.metrics.run_failed();
                if let Some(id) = continuation {
                    let _ = self.stores.continuations.delete(&id).await;
                }
                self.cancel_local(run_id);
                run
            }
            _ => self
                .stores
                .runs
                .get_run(run_id)
                .await
                .ok()
                .flatten()
                .unwrap_or(run),
        }
    }

    /// Renews the lease while the run executes; a lost lease cancels the local execution.
    fn spawn_heartbeat(
        &self,
        run_id: &str,
        holder: &str,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.stores.runs.clone();
        let lease = self.config.worker.lease;
        let (run_id, holder) = (run_id.to_string(), holder.to_string());
        let period = (lease / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match store.renew_lease(&run_id, &holder, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        cancel.cancel();
                        return;
                    }
                    // A store hiccup is not proof the lease is gone; the next write decides.
                    Err(_) => {}
                }
            }
        })
    }
}
