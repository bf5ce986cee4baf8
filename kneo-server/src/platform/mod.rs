//! The run lifecycle on top of the store and the engine: create (sync or async), list, get,
//! cancel, continue, human tasks, and the sweep of overdue runs and expired tasks.
//!
//! - [`execution`]: running a run under its lease, deadline and cancellation.
//! - [`human`]: human tasks: list, get, resume with locking, expiry.
//! - [`idempotency`]: `Idempotency-Key` handling.
//! - [`responses`]: response bodies in kneo-serv's shapes.
//! - [`specs`]: loading and validating specs from a path or inline.

pub mod audit;
pub mod credentials;
pub mod environment_policy;
pub mod error;
pub mod execution;
pub mod human;
pub mod idempotency;
pub mod layering;
pub mod policy_report;
pub mod responses;
pub mod run_inspection;
pub mod skills_catalog;
pub mod spec_cache;
pub mod spec_inspection;
pub mod specs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::error::ApiError;
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::plan::Plan;
use crate::metrics::Metrics;
use crate::store::{
    AuditEvent, CreateOutcome, Expect, Progress, QueueEntry, QueueStatus, QueueTransition,
    RunRecord, RunStatus, SaveOutcome, Stores, TraceQuery,
};
use idempotency::Mark;
use layering::SkillsOverlay;
use specs::SpecRequest;

/// The longest run deadline `metadata.timeout_seconds` may ask for (about 31 years): far enough
/// for any real run, near enough that every clock and timestamp type can hold it.
pub const MAX_RUN_TIMEOUT_SECONDS: f64 = 1e9;

/// The deadline `seconds` from now; `seconds` was checked against [`MAX_RUN_TIMEOUT_SECONDS`].
fn run_deadline(seconds: f64) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let out_of_range = || {
        ApiError::invalid_request(format!(
            "metadata.timeout_seconds {seconds} is out of range; give 0 < seconds ≤ {MAX_RUN_TIMEOUT_SECONDS}."
        ))
    };
    let delta = chrono::Duration::from_std(
        std::time::Duration::try_from_secs_f64(seconds).map_err(|_| out_of_range())?,
    )
    .map_err(|_| out_of_range())?;
    crate::clock::now()
        .checked_add_signed(delta)
        .ok_or_else(out_of_range)
}

/// How long a lease of this process must have gone without a write or renewal before the sweep
/// hands it back when nothing here executes it (writes come far more often while a run executes).
const STRANDED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// A run marked as executing here until dropped ([`Platform::reserve`]).
struct Reservation<'a> {
    platform: &'a Platform,
    run_id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.platform.unregister_running(&self.run_id);
    }
}

/// The validated body of `POST /v1/runs` (and `POST /v1/specs/run`).
#[derive(Debug, Clone)]
pub struct CreateRun {
    pub input: String,
    /// The spec and its layers (`environment`, `overlays`, `overrides`).
    pub spec: SpecRequest,
    pub target: String,
    pub metadata: Map<String, Value>,
    pub async_mode: bool,
    pub skills: Option<SkillsOverlay>,
    pub session_id: Option<String>,
    /// Created through `POST /v1/specs/run`: audited as `spec.run` instead of `run.created`.
    pub via_specs_run: bool,
    /// `metadata.timeout_seconds`: the run's deadline, range-checked when the body was read.
    pub timeout_seconds: Option<f64>,
}

/// Shared run-lifecycle logic.
pub struct Platform {
    pub config: Arc<Config>,
    pub stores: Stores,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Lease owner used when this process executes a run inside a request.
    pub request_holder: String,
    /// Runs executing in this process, so a cancel can stop them at once.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Wakes in-process workers when a run is queued.
    pub queue_signal: Notify,
    /// Spec files already parsed and validated.
    spec_cache: spec_cache::SpecCache,
    /// Request work the server owns ([`crate::api::lifecycle`]): it outlives its connection,
    /// and shutdown waits for it.
    owned: tokio_util::task::TaskTracker,
}

impl Platform {
    pub fn new(
        config: Arc<Config>,
        stores: Stores,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        instance_id: String,
    ) -> Platform {
        Platform {
            config,
            stores,
            engine,
            metrics,
            request_holder: format!("api-{instance_id}"),
            running: Mutex::new(HashMap::new()),
            queue_signal: Notify::new(),
            spec_cache: spec_cache::SpecCache::default(),
            owned: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Runs request work in a task the server owns (see [`crate::api::lifecycle`]).
    pub fn spawn_owned<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.owned.spawn(work)
    }

    /// Waits up to `grace` for owned request work to end (at shutdown); false if some is left.
    pub async fn finish_owned_work(&self, grace: std::time::Duration) -> bool {
        self.owned.close();
        tokio::time::timeout(grace, self.owned.wait()).await.is_ok()
    }

    fn register_running(&self, run_id: &str, token: CancellationToken) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.to_string(), token);
    }

    /// Marks `run_id` as executing in this process from before the write that leases it to
    /// this process, so the stranded-lease sweep never hands back a run about to execute.
    fn reserve(&self, run_id: &str) -> Reservation<'_> {
        self.register_running(run_id, CancellationToken::new());
        Reservation {
            platform: self,
            run_id: run_id.to_string(),
        }
    }

    /// Hands back to the queue every run leased to this process's request holder that it is not
    /// executing: left over from a store exchange that failed (a sync run whose first write or
    /// lease release met a Postgres outage). A worker then continues it from its last checkpoint.
    pub async fn release_stranded_leases(&self) {
        let held = match self
            .stores
            .runs
            .leases_of(&self.request_holder, STRANDED_AFTER)
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::debug!(target: "kneo_serv.platform", %error, "could not read this process's leases");
                return;
            }
        };
        for run_id in held {
            let executing = self
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&run_id);
            if executing {
                continue;
            }
            match self
                .stores
                .runs
                .release_lease(&run_id, &self.request_holder)
                .await
            {
                Ok(()) => {
                    tracing::warn!(target: "kneo_serv.platform", event = "stranded_lease_released", run_id = %run_id,
                        "handed back a run this process had leased but was not executing (a store write failed); a worker continues it")
                }
                Err(error) => {
                    tracing::debug!(target: "kneo_serv.platform", %error, run_id = %run_id, "could not hand back a stranded run yet")
                }
            }
        }
    }

    fn unregister_running(&self, run_id: &str) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
    }

    /// Stops a run executing in this process (its stored status was already changed).
    fn cancel_local(&self, run_id: &str) {
        if let Some(token) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
        {
            token.cancel();
        }
    }

    /// The trace a run response embeds (bounded; the full trace is at `/trace`).
    pub async fn embedded_trace(&self, run_id: &str) -> Vec<Value> {
        let page = crate::store::PageQuery {
            order: crate::store::SortOrder::Asc,
            limit: 1_000,
            ..Default::default()
        };
        let query = TraceQuery {
            page,
            event_type: None,
        };
        self.stores
            .runs
            .list_trace(run_id, &query)
            .await
            .map(|page| page.items)
            .unwrap_or_default()
    }

    /// Compiles the spec frozen in a run's metadata for the run's own target.
    pub fn plan_for(&self, run: &RunRecord) -> Result<Plan, String> {
        let target = run
            .metadata
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or("workflow")
            .to_string();
        self.plan_for_target(run, &target)
    }

    /// Compiles the spec frozen in a run's metadata (with its layers) for `target`.
    pub fn plan_for_target(&self, run: &RunRecord, target: &str) -> Result<Plan, String> {
        let frozen = run
            .metadata
            .get("frozen_spec")
            .and_then(|frozen| frozen.get("base"))
            .ok_or_else(|| format!("run {} has no frozen spec", run.id))?;
        let document = layering::layered(frozen, &layering::frozen_layers(&run.metadata))
            .map_err(|error| format!("run {}: {error}", run.id))?;
        let validation = specs::validate_for_this_build(&document, self.engine.as_ref(), None);
        let spec = validation.spec.ok_or_else(|| {
            let errors: Vec<String> = validation
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.code, d.message))
                .collect();
            format!(
                "the frozen spec of run {} no longer validates: {}",
                run.id,
                errors.join("; ")
            )
        })?;
        let skills = run
            .metadata
            .get("frozen_spec")
            .and_then(|frozen| frozen.get("skills"))
            .and_then(Value::as_object);
        crate::engine::plan::compile_run(&spec, target, self.engine.as_ref(), skills)
            .map_err(|error| error.to_string())
    }

    /// Reads every skill the spec declares, once, for the run being created (kneo-serv freezes
    /// them the same way): a later change to a bundle does not change the run.
    async fn freeze_skills(
        &self,
        spec: &crate::spec::model::Spec,
    ) -> Result<serde_json::Map<String, Value>, ApiError> {
        if spec.skills.is_empty() {
            return Ok(serde_json::Map::new());
        }
        let root = self.config.spec_root.clone();
        let skills = spec.skills.clone();
        let frozen =
            tokio::task::spawn_blocking(move || crate::engine::skills::freeze(&root, &skills))
                .await
                .map_err(|_| ApiError::internal())?;
        frozen.map_err(|error| match error {
            crate::engine::skills::SkillError::Confined => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "spec_path_confined",
                error.to_string(),
            ),
            _ => ApiError::invalid_request(error.to_string()),
        })
    }

    /// `POST /v1/runs`: creates a run and executes it in the request (200) or queues it (202).
    pub async fn create_run(
        self: &Arc<Self>,
        request: CreateRun,
        actor: &str,
        mark: Option<&Mark>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let loaded = self
            .load_run_spec(&request.spec, request.skills.as_ref())
            .await?;
        self.enforce_environment_policy(
            request.spec.environment.as_deref(),
            &loaded.document,
            &loaded.diagnostics,
        )
        .await?;
        let skills = self.freeze_skills(&loaded.spec).await?;
        let plan = crate::engine::plan::compile_run(
            &loaded.spec,
            &request.target,
            self.engine.as_ref(),
            Some(&skills),
        )
        .map_err(|error| specs::spec_invalid(vec![specs::compile_diagnostic(&error)]))?;
        let now = crate::clock::now_text();
        let mut run = RunRecord::new(
            crate::clock::new_id(),
            crate::redact::redacted_text(&request.input),
            now.clone(),
        );
        run.agent_name = Some(plan.agent.name.clone());
        run.workflow_name = plan.workflow.as_ref().map(|w| w.name.clone());
        run.workflow_kind = Some(if plan.workflow.is_some() {
            "workflow".into()
        } else {
            "agent".into()
        });
        let timeout_seconds = request.timeout_seconds;
        if let Some(seconds) = timeout_seconds {
            run.deadline_at = Some(crate::clock::format(run_deadline(seconds)?));
        }
        let metadata = &mut run.metadata;
        metadata.insert("spec_path".into(), json!(loaded.spec_path));
        metadata.insert(
            "spec".into(),
            // An inline spec is recorded as sent (redacted), as kneo-serv records it.
            if loaded.spec_path.is_none() {
                crate::redact::redacted(&loaded.value)
            } else {
                Value::Null
            },
        );
        let layers = &request.spec;
        metadata.insert("target".into(), json!(request.target));
        metadata.insert("environment".into(), json!(layers.environment));
        metadata.insert("overlays".into(), json!(layers.overlays));
        metadata.insert(
            "overrides".into(),
            crate::redact::redacted(&Value::Object(layers.overrides.clone())),
        );
        metadata.insert(
            "skills_overlay".into(),
            request
                .skills
                .as_ref()
                .map(SkillsOverlay::to_json)
                .unwrap_or(Value::Null),
        );
        metadata.insert("timeout_seconds".into(), json!(timeout_seconds));
        metadata.insert(
            "frozen_spec".into(),
            json!({"base": loaded.value, "overlays": loaded.overlays, "skills": skills}),
        );
        metadata.insert(
            "caller_metadata".into(),
            crate::redact::redacted(&Value::Object(request.metadata.clone())),
        );
        run.session_id = request.session_id.clone();
        let created = audit::run_created(actor, &request, &loaded, &run);
        crate::api::request_log::note_run_id(&run.id);
        if request.async_mode {
            self.enqueue(run, created, mark).await
        } else {
            self.run_in_request(run, created, plan, mark).await
        }
    }

    async fn enqueue(
        &self,
        mut run: RunRecord,
        created: AuditEvent,
        mark: Option<&Mark>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let limit = self.config.worker.max_queue_depth;
        if limit > 0 {
            let counts = self.stores.runs.queue_counts().await?;
            if counts.queued as u64 >= limit {
                // The shed run is kept, failed, so nobody wonders where it went.
                self.metrics.run_rejected();
                run.status = RunStatus::Failed;
                run.error = Some(
                    json!({"type": "queue_full", "message": format!("The queue held {} runs (KNEO_SERV_MAX_QUEUE_DEPTH={limit}).", counts.queued)}),
                );
                run.completed_at = Some(run.created_at.clone());
                self.stores
                    .runs
                    .create_run(&run, None, &[created], None)
                    .await?;
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue_full",
                    format!(
                        "The run queue is full ({} queued, limit {limit}); retry later.",
                        counts.queued
                    ),
                )
                .with("queue_depth", counts.queued)
                .with("limit", limit)
                .with("run_id", run.id.clone())
                .retry_after(5));
            }
        }
        // The 202 is decided once the run is queued, so the key is completed with it in the same
        // transaction: a crash after the commit leaves nothing for a retry to redo.
        let accepted = responses::run_accepted(&run);
        let binding = mark.map(|mark| mark.binding(Some((StatusCode::ACCEPTED, &accepted))));
        let outcome = self
            .stores
            .runs
            .create_run(&run, Some(QueueEntry::Queued), &[created], binding.as_ref())
            .await?;
        if outcome == CreateOutcome::KeyTaken {
            return Err(idempotency::key_taken(
                mark.map_or("", |m| m.scope.as_str()),
            ));
        }
        crate::faults::point("after_run_created");
        self.queue_signal.notify_waiters();
        Ok((StatusCode::ACCEPTED, accepted))
    }

    async fn run_in_request(
        self: &Arc<Self>,
        mut run: RunRecord,
        created: AuditEvent,
        plan: Plan,
        mark: Option<&Mark>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let holder = self.request_holder.clone();
        run.status = RunStatus::Running;
        run.started_at = Some(run.created_at.clone());
        let entry = QueueEntry::Leased {
            worker_id: holder.clone(),
            lease: self.config.worker.lease,
        };
        let binding = mark.map(|mark| mark.binding(None));
        let _reserved = self.reserve(&run.id);
        let outcome = self
            .stores
            .runs
            .create_run(&run, Some(entry), &[created], binding.as_ref())
            .await?;
        if outcome == CreateOutcome::KeyTaken {
            return Err(idempotency::key_taken(
                mark.map_or("", |m| m.scope.as_str()),
            ));
        }
        crate::faults::point("after_run_created");
        self.metrics.run_started();
        // The run executes in its own task: a client that hangs up does not abandon it half-way.
        let platform = self.clone();
        let (finished, trace) = tokio::spawn(async move {
            platform.execute_collecting(run, plan, holder).await
        })
        .await
        .map_err(|error| {
            tracing::error!(target: "kneo_serv.platform", %error, "run execution task failed");
            ApiError::internal()
        })?;
        if let Some(violation) = responses::guardrail_violation(&finished) {
            return Err(violation);
        }
        Ok((StatusCode::OK, responses::run_result(&finished, trace)))
    }

    /// `POST /v1/runs/{id}/cancel`: cancels a non-terminal run; a terminal run is returned as is.
    pub async fn cancel(&self, run_id: &str, actor: &str) -> Result<RunRecord, ApiError> {
        for _ in 0..5 {
            let mut run = self
                .stores
                .runs
                .get_run(run_id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            if run.status.is_terminal() {
                return Ok(run);
            }
            let previous = run.status;
            let now = crate::clock::now_text();
            run.status = RunStatus::Cancelled;
            run.error =
                Some(json!({"message": "Run cancellation requested.", "type": "cancelled"}));
            run.updated_at = now.clone();
            run.completed_at = Some(now.clone());
            let mut progress = Progress::new(run.clone());
            progress.expect = Expect::Status(previous);
            progress.queue = Some(QueueTransition::Finish {
                status: QueueStatus::Completed,
                error: Some("cancelled".into()),
            });
            progress.audit.push(audit::event(
                "run.cancelled",
                actor,
                Some(&run.id),
                run.continuation_id.as_deref(),
                json!({"previous_status": previous.as_str()}),
            ));
            if self.stores.runs.save_progress(&progress).await? == SaveOutcome::Saved {
                if previous == RunStatus::Blocked
                    && let Some(continuation_id) = &run.continuation_id
                {
                    self.stores.continuations.delete(continuation_id).await?;
                }
                self.cancel_local(run_id);
                return Ok(run);
            }
            // The status moved under us (a step finished): look again.
        }
        Err(ApiError::run_state_conflict(
            "The run kept changing while it was being cancelled; retry.",
            "running",
        ))
    }

    /// `POST /v1/runs/{id}/continue`: re-enters a failed sequential run after its last completed
    /// step (or a running one whose lease expired: crash recovery).
    pub async fn continue_run(
        self: &Arc<Self>,
        run_id: &str,
        actor: &str,
        mark: Option<&Mark>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let mut run = self
            .stores
            .runs
            .get_run(run_id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let expect = match run.status {
            RunStatus::Failed => Expect::Reopen(RunStatus::Failed),
            RunStatus::Running => {
                let entry = self.stores.runs.queue_entry(run_id).await?;
                let lease_live = entry
                    .as_ref()
                    .and_then(|e| e.lease_expires_at.as_deref())
                    .is_some_and(|expiry| expiry > crate::clock::now_text().as_str());
                if lease_live {
                    return Err(ApiError::run_state_conflict(
                        "The run is running under a live worker lease; continuing it would execute it twice.",
                        run.status.as_str(),
                    ));
                }
                Expect::Status(RunStatus::Running)
            }
            status => {
                return Err(ApiError::run_state_conflict(
                    format!(
                        "Only failed runs (or running runs whose lease expired) can be continued; this run is {status}."
                    ),
                    status.as_str(),
                )
                .with("run_id", run_id));
            }
        };
        if !is_sequential_workflow(&run) {
            return Err(ApiError::run_state_conflict(
                "Only sequential workflow runs can be continued from a checkpoint.",
                run.status.as_str(),
            ));
        }
        let plan = self.plan_for(&run).map_err(ApiError::invalid_request)?;
        if plan.kind() != "sequential" {
            return Err(ApiError::run_state_conflict(
                "Only sequential workflow runs can be continued from a checkpoint.",
                run.status.as_str(),
            ));
        }
        let holder = self.request_holder.clone();
        let now = crate::clock::now_text();
        run.status = RunStatus::Running;
        run.error = None;
        run.completed_at = None;
        run.updated_at = now.clone();
        let mut progress = Progress::new(run.clone());
        progress.expect = expect;
        progress.queue = Some(QueueTransition::Lease {
            worker_id: holder.clone(),
            lease: self.config.worker.lease,
        });
        progress.audit.push(audit::event(
            "run.continued",
            actor,
            Some(&run.id),
            None,
            json!({"from_step_index": run.current_step_index}),
        ));
        progress.idempotency = mark.map(|mark| mark.binding(None));
        let _reserved = self.reserve(&run.id);
        match self.stores.runs.save_progress(&progress).await? {
            SaveOutcome::Saved => {}
            SaveOutcome::KeyTaken => {
                return Err(idempotency::key_taken(
                    mark.map_or("", |m| m.scope.as_str()),
                ));
            }
            _ => {
                let current = self
                    .stores
                    .runs
                    .get_run(run_id)
                    .await?
                    .map(|r| r.status.as_str())
                    .unwrap_or("unknown");
                return Err(ApiError::run_state_conflict(
                    "The run changed while it was being continued.",
                    current,
                ));
            }
        }
        self.metrics.run_started();
        let platform = self.clone();
        let finished = tokio::spawn(async move { platform.execute(run, plan, holder).await })
            .await
            .map_err(|_| ApiError::internal())?;
        let trace = self.embedded_trace(&finished.id).await;
        Ok((StatusCode::OK, responses::run_result(&finished, trace)))
    }

    /// Marks runs past their deadline `timed_out`, and applies expired human tasks' `on_timeout`.
    pub async fn sweep(self: &Arc<Self>) {
        let now = crate::clock::now_text();
        if let Ok(overdue) = self.stores.runs.overdue_runs(&now, 100).await {
            for run in overdue {
                self.time_out(&run.id, None).await;
            }
        }
        if let Err(error) = self.sweep_human_tasks().await {
            tracing::warn!(target: "kneo_serv.platform", %error, "human task sweep failed");
        }
        self.release_stranded_leases().await;
    }
}

/// Only sequential workflows resume from a checkpoint with `/continue` (as in kneo-serv).
pub fn is_sequential_workflow(run: &RunRecord) -> bool {
    run.workflow_kind.as_deref() == Some("workflow")
        && run.metadata.get("execution_context").is_some()
        && run
            .metadata
            .get("workflow_type")
            .and_then(Value::as_str)
            .is_none_or(|kind| kind == "sequential")
}
