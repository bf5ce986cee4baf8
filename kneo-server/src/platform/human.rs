//! Human tasks: listing paused runs, resuming one under a per-continuation lock, and the expiry
//! sweep that applies `on_timeout`.
//!
//! A resume is accepted in one transaction (run `blocked` → `running`, the decision recorded as a
//! checkpoint, the run leased to this process); the continuation is deleted only after that. A
//! crash before the transaction leaves the task pending and resumable; a crash after it leaves a
//! leased run that a worker finishes once the lease expires. Nothing is lost or applied twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Platform, responses};
use crate::api::error::{ApiError, ValidationIssue};
use crate::engine::executor::build_checkpoint;
use crate::store::{
    AuditEvent, Continuation, ErrorKind, Expect, Progress, QueueTransition, RunRecord, RunStatus,
    SaveOutcome,
};

/// How long a resume may hold a continuation's lock (it is released as soon as the resume is
/// accepted; the TTL only matters if the holder dies).
const LOCK_TTL: Duration = Duration::from_secs(60);

/// A reviewer's answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub request_id: String,
    /// `approved`, `rejected`, `edited`, `selected` or `provided`.
    pub decision: String,
    pub content: Option<String>,
    pub selected_option: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
}

pub const DECISIONS: [&str; 5] = ["approved", "rejected", "edited", "selected", "provided"];

/// Filters of `GET /v1/human-tasks`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub run_id: Option<String>,
    pub workflow_kind: Option<String>,
    /// `pending` or `escalated`.
    pub status: Option<String>,
}

fn is_escalated(continuation: &Continuation) -> bool {
    continuation
        .pending_human_request
        .get("escalated_at")
        .is_some_and(|v| !v.is_null())
}

/// `409` for a continuation whose record cannot be read.
fn unreadable(continuation_id: &str, error: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "continuation_unreadable",
        format!("Continuation {continuation_id} exists but cannot be read ({error}); its run cannot be resumed from it (runbook § 8.3)."),
    )
    .with("resource", format!("continuation:{continuation_id}"))
}

fn audit(
    event_type: &str,
    actor: &str,
    run_id: &str,
    continuation_id: &str,
    metadata: Value,
) -> AuditEvent {
    super::audit::event(
        event_type,
        actor,
        Some(run_id),
        Some(continuation_id),
        metadata,
    )
}

impl Platform {
    /// Pending tasks matching `filter`, and the continuations that could not be read.
    pub async fn list_tasks(
        &self,
        filter: &TaskFilter,
    ) -> Result<(Vec<Continuation>, Vec<crate::store::UnreadableContinuation>), ApiError> {
        let listing = self.stores.continuations.list().await?;
        let tasks = listing
            .continuations
            .into_iter()
            .filter(|c| {
                filter
                    .run_id
                    .as_ref()
                    .is_none_or(|run_id| &c.run_id == run_id)
            })
            .filter(|c| {
                filter
                    .workflow_kind
                    .as_ref()
                    .is_none_or(|kind| c.workflow_kind.as_ref() == Some(kind))
            })
            .filter(|c| match filter.status.as_deref() {
                Some("escalated") => is_escalated(c),
                Some("pending") => !is_escalated(c),
                _ => true,
            })
            .collect::<Vec<_>>();
        // A continuation left behind by a crash (its run moved on, or ended) is not a task: it
        // is tidied by the sweep, and until then it must not show as pending work.
        let mut live = Vec::with_capacity(tasks.len());
        for task in tasks {
            if self.is_waiting_on(&task).await? {
                live.push(task);
            }
        }
        Ok((live, listing.unreadable))
    }

    /// Whether the task's run is blocked on exactly this continuation.
    async fn is_waiting_on(&self, continuation: &Continuation) -> Result<bool, ApiError> {
        let run = self.stores.runs.get_run(&continuation.run_id).await?;
        Ok(run.is_some_and(|run| {
            run.status == RunStatus::Blocked
                && run.continuation_id.as_deref() == Some(continuation.id.as_str())
        }))
    }

    /// One task; a torn record is a clear error, not a 404.
    pub async fn get_task(&self, continuation_id: &str) -> Result<Continuation, ApiError> {
        match self.stores.continuations.get(continuation_id).await {
            Ok(Some(continuation)) => Ok(continuation),
            Ok(None) => Err(ApiError::not_found()),
            Err(error) if error.kind == ErrorKind::Corrupt => {
                Err(unreadable(continuation_id, &error.message))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// `POST /v1/human-tasks/{id}/resume`.
    pub async fn resume(
        self: &Arc<Self>,
        continuation_id: &str,
        decision: Decision,
        actor: &str,
        mark: Option<&super::idempotency::Mark>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let lock_name = format!("continuation:{continuation_id}");
        let owner = crate::clock::new_id();
        if !self
            .stores
            .runs
            .try_lock(&lock_name, &owner, LOCK_TTL)
            .await?
        {
            self.metrics
                .resume_conflicts
                .fetch_add(1, Ordering::Relaxed);
            let _ = self
                .stores
                .runs
                .record_audit(&[super::audit::event(
                    "human.resume_conflict",
                    actor,
                    None,
                    Some(continuation_id),
                    json!({"reason": "resource_locked"}),
                )])
                .await;
            return Err(ApiError::resource_locked(&lock_name));
        }
        // The lock is held until the winning resume has answered, not only until it was
        // accepted: a resume that races it then always meets the lock (409 `resource_locked`),
        // rather than sometimes finding the consumed task gone (404). A resume sent after the
        // winner answered finds no task, as kneo-serv answers a second resume (404).
        let finished = match self
            .accept_resume(continuation_id, &decision, actor, mark)
            .await
        {
            Ok((run, plan)) => {
                let holder = self.request_holder.clone();
                let platform = self.clone();
                tokio::spawn(async move { platform.execute(run, plan, holder).await })
                    .await
                    .map_err(|_| ApiError::internal())
            }
            Err(error) => Err(error),
        };
        if let Err(error) = self.stores.runs.unlock(&lock_name, &owner).await {
            tracing::warn!(target: "kneo_serv.platform", %error, lock = %lock_name, "lock release failed; it expires by itself");
        }
        let finished = finished?;
        self.metrics
            .human_tasks_resumed
            .fetch_add(1, Ordering::Relaxed);
        let trace = self.embedded_trace(&finished.id).await;
        Ok((StatusCode::OK, responses::resume_result(&finished, trace)))
    }

    /// Under the lock: checks the task, records the decision and hands the run to this process.
    async fn accept_resume(
        &self,
        continuation_id: &str,
        decision: &Decision,
        actor: &str,
        mark: Option<&super::idempotency::Mark>,
    ) -> Result<(RunRecord, crate::engine::plan::Plan), ApiError> {
        let continuation = self.get_task(continuation_id).await?;
        crate::api::request_log::note_run_id(&continuation.run_id);
        let run = self
            .stores
            .runs
            .get_run(&continuation.run_id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let conflict = |message: String, status: RunStatus| {
            self.metrics
                .resume_conflicts
                .fetch_add(1, Ordering::Relaxed);
            ApiError::run_state_conflict(message, status.as_str())
        };
        if run.status != RunStatus::Blocked
            || run.continuation_id.as_deref() != Some(continuation_id)
        {
            return Err(conflict(
                format!(
                    "The run is {}, not blocked on this task; re-read it before retrying.",
                    run.status
                ),
                run.status,
            ));
        }
        let expected = continuation
            .pending_human_request_id
            .clone()
            .unwrap_or_default();
        if decision.request_id != expected {
            self.stores
                .runs
                .record_audit(&[audit(
                    "human.resume_rejected",
                    actor,
                    &run.id,
                    continuation_id,
                    json!({"reason": "request_id_mismatch", "request_id": decision.request_id}),
                )])
                .await?;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "run_state_conflict",
                "request_id does not match the task's pending request; fetch the task again and answer its current request.",
            )
            .with("status", run.status.as_str()));
        }
        let output = decision_output(&continuation, decision)?;
        let plan = self.plan_for(&run).map_err(ApiError::invalid_request)?;
        let resumed = resumed_run(run, &continuation, decision, &output);
        let step_id = continuation
            .metadata
            .get("step_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut progress = Progress::new(resumed.clone());
        progress.expect = Expect::Status(RunStatus::Blocked);
        progress.queue = Some(QueueTransition::Lease {
            worker_id: self.request_holder.clone(),
            lease: self.config.worker.lease,
        });
        let decision_metadata = json!({
            "request_id": decision.request_id,
            "decision": decision.decision,
            "has_content": decision.content.is_some(),
            "selected_option": decision.selected_option,
            "status": RunStatus::Running.as_str(),
        });
        progress.audit.push(audit(
            "human.decision",
            actor,
            &resumed.id,
            continuation_id,
            decision_metadata.clone(),
        ));
        let resumed_event =
            crate::engine::trace::TraceEvent::new("human_intervention_resumed", &resumed.id, None)
                .with("workflow_name", json!(resumed.workflow_name))
                .with("step_id", step_id.clone())
                .output(&output)
                .metadata(
                    json!({"continuation_id": continuation_id, "decision": decision.decision}),
                )
                .build();
        progress.trace_events.push(resumed_event.clone());
        progress.run.trace_event_count += 1;
        let sequence = resumed
            .metadata
            .get("checkpoint_sequence")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut run_state = progress.run.clone();
        run_state
            .metadata
            .insert("checkpoint_sequence".into(), json!(sequence + 2));
        progress.run = run_state;
        progress.checkpoints = vec![
            build_checkpoint(
                &progress.run,
                "human_resume",
                None,
                sequence + 1,
                &[resumed_event],
                json!({"continuation_id": continuation_id, "decision": decision_metadata}),
                &crate::clock::now_text(),
            ),
            build_checkpoint(
                &progress.run,
                "step_completed",
                Some(&step_id),
                sequence + 2,
                &[],
                json!({
                    "workflow_type": continuation.workflow_kind.as_deref().unwrap_or("sequential"),
                    "input_text": continuation.current_input,
                    "output_text": output,
                    "error": null,
                    "iteration": 1,
                }),
                &crate::clock::now_text(),
            ),
        ];
        progress.idempotency = mark.map(|mark| mark.binding(None));
        let _reserved = self.reserve(&resumed.id);
        match self.stores.runs.save_progress(&progress).await? {
            SaveOutcome::Saved => {}
            SaveOutcome::KeyTaken => {
                return Err(super::idempotency::key_taken(
                    mark.map_or("", |m| m.scope.as_str()),
                ));
            }
            _ => {
                let current = self
                    .stores
                    .runs
                    .get_run(&resumed.id)
                    .await?
                    .map(|r| r.status)
                    .unwrap_or(RunStatus::Blocked);
                return Err(conflict(
                    format!("The run changed to {current} before the decision could be applied."),
                    current,
                ));
            }
        }
        crate::faults::point("after_resume_accepted");
        self.stores.continuations.delete(continuation_id).await?;
        Ok((progress.run, plan))
    }

    /// Applies `on_timeout` to every task whose `expires_at` has passed while its run is blocked.
    /// Returns how many tasks it acted on.
    pub async fn sweep_human_tasks(self: &Arc<Self>) -> Result<usize, ApiError> {
        let listing = self.stores.continuations.list().await?;
        let now = chrono::Utc::now();
        let now_epoch = now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1e6;
        let mut handled = 0;
        for continuation in listing.continuations {
            let Some(run) = self.stores.runs.get_run(&continuation.run_id).await? else {
                // Its run is gone (pruned, or a restore without it): nothing can resume it.
                self.stores.continuations.delete(&continuation.id).await?;
                continue;
            };
            if run.status != RunStatus::Blocked
                || run.continuation_id.as_deref() != Some(continuation.id.as_str())
            {
                if run.status.is_terminal() {
                    // Left behind by a crash after a resume was accepted: tidy it.
                    self.stores.continuations.delete(&continuation.id).await?;
                }
                continue;
            }
            let Some(expires_at) = continuation.expires_at else {
                continue;
            };
            if expires_at > now_epoch {
                continue;
            }
            let on_timeout = continuation
                .pending_human_request
                .get("on_timeout")
                .and_then(Value::as_str)
                .unwrap_or("fail")
                .to_string();
            match on_timeout.as_str() {
                "escalate" if is_escalated(&continuation) => continue,
                "escalate" => self.escalate(continuation, run, expires_at).await?,
                "continue" => {
                    let decision = Decision {
                        request_id: continuation.pending_human_request_id.clone().unwrap_or_default(),
                        decision: "approved".into(),
                        content: None,
                        selected_option: None,
                        metadata: json!({"auto_continued": true, "reason": "timeout", "original_assignee": continuation.pending_human_request.get("assignee")})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    };
                    self.stores
                        .runs
                        .record_audit(&[audit(
                            "human.continued",
                            "system",
                            &run.id,
                            &continuation.id,
                            json!({"expires_at": expires_at}),
                        )])
                        .await?;
                    if let Err(error) = self
                        .resume(&continuation.id, decision, "system", None)
                        .await
                    {
                        self.stores
                            .runs
                            .record_audit(&[audit(
                                "human.continue_failed",
                                "system",
                                &run.id,
                                &continuation.id,
                                json!({"error_type": error.code(), "error_message": format!("{error:?}")}),
                            )])
                            .await?;
                    }
                }
                _ => self.expire(continuation, run, expires_at).await?,
            }
            self.metrics
                .human_tasks_expired
                .fetch_add(1, Ordering::Relaxed);
            handled += 1;
        }
        Ok(handled)
    }

    async fn expire(
        &self,
        continuation: Continuation,
        mut run: RunRecord,
        expires_at: f64,
    ) -> Result<(), ApiError> {
        let now = crate::clock::now_text();
        run.status = RunStatus::Expired;
        run.error = Some(json!({
            "type": "human_task_expired",
            "message": format!("The human task {} was not answered within its timeout_seconds (runbook § 8.2).", continuation.id),
        }));
        run.updated_at = now.clone();
        run.completed_at = Some(now.clone());
        let mut progress = Progress::new(run.clone());
        progress.expect = Expect::Status(RunStatus::Blocked);
        progress.audit.push(audit(
            "human.expired",
            "system",
            &run.id,
            &continuation.id,
            json!({
                "timeout_seconds": continuation.pending_human_request.get("timeout_seconds"),
                "expires_at": expires_at,
                "expired_at": now,
                "on_timeout": "fail",
            }),
        ));
        if self.stores.runs.save_progress(&progress).await? == SaveOutcome::Saved {
            self.stores.continuations.delete(&continuation.id).await?;
            self.metrics.run_failed();
        }
        Ok(())
    }

    async fn escalate(
        &self,
        mut continuation: Continuation,
        mut run: RunRecord,
        expires_at: f64,
    ) -> Result<(), ApiError> {
        let now = crate::clock::now_text();
        if let Some(request) = continuation.pending_human_request.as_object_mut() {
            request.insert("escalated_at".into(), json!(now));
            request.insert("original_expires_at".into(), json!(expires_at));
        }
        self.stores.continuations.put(&continuation).await?;
        run.pending_human_request = Some(continuation.pending_human_request.clone());
        run.updated_at = now;
        let mut progress = Progress::new(run.clone());
        progress.expect = Expect::Status(RunStatus::Blocked);
        progress.audit.push(audit(
            "human.escalated",
            "system",
            &run.id,
            &continuation.id,
            json!({"assignee": continuation.pending_human_request.get("assignee"), "original_expires_at": expires_at}),
        ));
        self.stores.runs.save_progress(&progress).await?;
        Ok(())
    }
}

/// The text a decision hands to the next step.
fn decision_output(continuation: &Continuation, decision: &Decision) -> Result<String, ApiError> {
    let request = &continuation.pending_human_request;
    let invalid = |message: String| ApiError::invalid_request(message);
    match decision.decision.as_str() {
        "approved" => Ok(continuation.current_input.clone().unwrap_or_default()),
        "rejected" => Ok("Rejected by human reviewer".into()),
        "edited" | "provided" => decision.content.clone().ok_or_else(|| {
            invalid(format!(
                "decision {:?} needs `content` with the text to pass on.",
                decision.decision
            ))
        }),
        "selected" => {
            let option = decision
                .selected_option
                .clone()
                .ok_or_else(|| invalid("decision \"selected\" needs `selected_option`.".into()))?;
            let options: Vec<&str> = request
                .get("options")
                .and_then(Value::as_array)
                .map(|o| o.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !options.contains(&option.as_str()) {
                let msg = if options.is_empty() {
                    "The task offers no options to select; answer it with approved, rejected, edited or provided".to_string()
                } else {
                    let offered: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
                    format!(
                        "Input should be one of the task's options: {}",
                        offered.join(", ")
                    )
                };
                // A native 422, as for any other field of the wrong value; nothing is written, so
                // the task stays pending.
                return Err(ApiError::validation(vec![ValidationIssue {
                    kind: "literal_error",
                    loc: vec![json!("body"), json!("selected_option")],
                    msg,
                    input: Some(json!(option)),
                    ctx: None,
                }]));
            }
            Ok(option)
        }
        other => Err(invalid(format!(
            "unknown decision {other:?}; use one of {DECISIONS:?}."
        ))),
    }
}

/// The run as it continues after the human step. A sequential run moves to the next step; a
/// graph run keeps the human node as its position and hands its output to the engine, which
/// routes it through the node's edges (`execution_context.graph.route_from`).
fn resumed_run(
    mut run: RunRecord,
    continuation: &Continuation,
    decision: &Decision,
    output: &str,
) -> RunRecord {
    let step_id = continuation
        .metadata
        .get("step_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let graph_node = continuation
        .current_node_id
        .clone()
        .filter(|_| continuation.workflow_kind.as_deref() == Some("graph"));
    run.status = RunStatus::Running;
    let role = continuation
        .pending_human_request
        .get("response_role")
        .and_then(Value::as_str);
    if let (Some(role), Some(content)) = (role, &decision.content) {
        let mut reply =
            crate::engine::providers::Message::new(role, &crate::redact::redacted_text(content));
        reply.name = Some(step_id.clone());
        run.messages.push(reply.to_json());
    }
    let graph_state = match &graph_node {
        Some(node) => {
            run.visited_nodes.push(node.clone());
            run.current_node_id = Some(node.clone());
            let visits = run
                .metadata
                .get("execution_context")
                .and_then(|context| context.pointer("/graph/visits"))
                .and_then(Value::as_u64)
                .unwrap_or(run.visited_nodes.len() as u64);
            Some(json!({
                "next_node_id": null,
                "visits": visits,
                "finished": false,
                "route_from": {"node_id": node, "output": output, "status": "completed"},
            }))
        }
        None => {
            run.visited_steps.push(step_id.clone());
            let index = continuation.current_step_index.unwrap_or(0);
            run.current_step_index = Some(index + 1);
            None
        }
    };
    if let Some(counts) = run
        .metadata
        .entry("step_iteration_counts")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        let key = format!("{step_id}|");
        let next = counts.get(&key).and_then(Value::as_i64).unwrap_or(0) + 1;
        counts.insert(key, json!(next));
    }
    run.pending_human_request = None;
    run.continuation_id = None;
    run.updated_at = crate::clock::now_text();
    run.metadata.insert(
        "resumed_from_continuation_id".into(),
        json!(continuation.id),
    );
    run.metadata.insert("human_decision".into(), json!({"decision": decision.decision, "request_id": decision.request_id, "metadata": decision.metadata}));
    let mut context = json!({
        "last_event_type": "human_intervention_resumed",
        "current_step_id": step_id,
        "current_node_id": graph_node,
        "visited_steps": run.visited_steps,
        "visited_nodes": run.visited_nodes,
        "last_input_text": continuation.current_input,
        "last_output_text": crate::redact::redacted_text(output),
        "current_iteration": 1,
        "next_input": output,
    });
    if let Some(state) = graph_state {
        context["graph"] = state;
    }
    // What the run's agents remember, and a concurrent workflow's results so far, carry over.
    if let Some(previous) = run.metadata.get("execution_context") {
        for key in ["agent_histories", "orchestration"] {
            if let Some(value) = previous.get(key) {
                context[key] = value.clone();
            }
        }
    }
    run.metadata.insert("execution_context".into(), context);
    run
}
