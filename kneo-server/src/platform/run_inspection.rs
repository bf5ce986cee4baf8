//! Reading a run's history without changing it: the replay view (`/runs/{id}/replay`), the
//! recovery context (`/runs/{id}/recovery`) and the diff of two checkpoints
//! (`/runs/{id}/checkpoints/diff`).
//!
//! The replay context answers "where would `/continue` pick up, and may it": the steps the
//! checkpoints record as done, the failed step, the input it would get, and the same
//! eligibility rule `/continue` applies.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::PlatformError;
use super::{Platform, is_sequential_workflow};
use crate::engine::executor::expand_checkpoint;
use crate::store::{
    CheckpointQuery, LIST_WINDOW, PageQuery, QueueRecord, RunRecord, RunStatus, SortOrder,
};

/// Changes a diff lists at most; `truncated` says when there were more.
const MAX_DIFF_CHANGES: usize = 200;

/// A run with its checkpoints (expanded as the API shows them) and its queue record.
struct History {
    run: RunRecord,
    checkpoints: Vec<Value>,
    queue: Option<QueueRecord>,
}

/// `{id, sequence, type, created_at, workflow_name, step_id, node_id}` of a checkpoint.
fn checkpoint_summary(checkpoint: &Value) -> Value {
    let field = |key: &str| checkpoint.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "id": field("id"),
        "sequence": field("sequence"),
        "type": field("type"),
        "created_at": field("created_at"),
        "workflow_name": field("workflow_name"),
        "step_id": field("step_id"),
        "node_id": field("node_id"),
    })
}

/// A timeline item of the replay view: the summary plus where the run stood.
fn timeline_item(checkpoint: &Value) -> Value {
    let mut item = checkpoint_summary(checkpoint);
    let state = checkpoint.get("state").cloned().unwrap_or(Value::Null);
    let field = |key: &str| state.get(key).cloned().unwrap_or(Value::Null);
    if let Some(item) = item.as_object_mut() {
        for key in [
            "status",
            "current_step_index",
            "current_step_id",
            "current_node_id",
            "continuation_id",
        ] {
            item.insert(key.into(), field(key));
        }
        item.insert(
            "pending_human_request_id".into(),
            state
                .get("pending_human_request")
                .and_then(|request| request.get("id"))
                .cloned()
                .unwrap_or(Value::Null),
        );
        item.insert("error".into(), field("error"));
    }
    item
}

impl History {
    /// Whether the run's lease (if any) is still held by a live worker.
    fn lease_live(&self) -> bool {
        self.queue
            .as_ref()
            .and_then(|queue| queue.lease_expires_at.as_deref())
            .and_then(crate::clock::parse)
            .is_some_and(|expiry| expiry > crate::clock::now())
    }

    /// What `/continue` would do with this run (kneo-serv's `replay_context`), with the same
    /// eligibility rule `/continue` applies: a sequential workflow run that failed, or that is
    /// running with no live lease (its worker died).
    fn replay_context(&self) -> Value {
        let run = &self.run;
        let mut completed_steps: Vec<String> = Vec::new();
        let mut completed_nodes: Vec<String> = Vec::new();
        let mut failed_step = Value::Null;
        let mut failed_node = Value::Null;
        let mut resume_input = run.input_text.clone().unwrap_or_default();
        let mut workflow_type: Option<String> = None;
        for checkpoint in &self.checkpoints {
            let metadata = checkpoint.get("metadata").cloned().unwrap_or(Value::Null);
            if workflow_type.is_none() {
                workflow_type = metadata
                    .get("workflow_type")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            let text = |key: &str| {
                metadata
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let id = |key: &str| {
                checkpoint
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            match checkpoint.get("type").and_then(Value::as_str) {
                Some("step_completed") => {
                    if let Some(step) = id("step_id")
                        && !completed_steps.contains(&step)
                    {
                        completed_steps.push(step);
                    }
                    if let Some(output) = text("output_text") {
                        resume_input = output;
                    }
                }
                Some("node_completed") => {
                    if let Some(node) = id("node_id")
                        && !completed_nodes.contains(&node)
                    {
                        completed_nodes.push(node);
                    }
                    if let Some(output) = text("output_text") {
                        resume_input = output;
                    }
                }
                Some("step_failed") => {
                    match id("node_id") {
                        Some(node) => failed_node = json!(node),
                        None => failed_step = json!(id("step_id")),
                    }
                    if let Some(input) = text("input_text") {
                        resume_input = input;
                    }
                }
                _ => {}
            }
        }
        let workflow_type = workflow_type.or_else(|| {
            if !completed_nodes.is_empty() {
                Some("graph".into())
            } else if !completed_steps.is_empty() {
                Some("sequential".into())
            } else {
                None
            }
        });
        if failed_step.is_null() && failed_node.is_null() {
            // A failure the checkpoints do not name is found on the run's error.
            failed_step = run
                .error
                .as_ref()
                .and_then(|error| error.get("step_id"))
                .cloned()
                .unwrap_or(Value::Null);
        }
        let can_continue = is_sequential_workflow(run)
            && (run.status == RunStatus::Failed
                || (run.status == RunStatus::Running && !self.lease_live()));
        let can_replay = run.metadata.get("frozen_spec").is_some()
            || run
                .metadata
                .get("spec_path")
                .is_some_and(|path| !path.is_null());
        json!({
            "run_id": run.id,
            "status": run.status.as_str(),
            "workflow_type": workflow_type,
            "next_step_index": completed_steps.len(),
            "completed_steps": completed_steps,
            "completed_nodes": completed_nodes,
            "failed_step": failed_step,
            "failed_node": failed_node,
            "resume_input": resume_input,
            "checkpoint_count": self.checkpoints.len(),
            "can_continue": can_continue,
            "can_replay": can_replay,
            "lease_live": self.lease_live(),
        })
    }
}

impl Platform {
    /// The run and every checkpoint it recorded, in order.
    async fn history(&self, run_id: &str) -> Result<History, PlatformError> {
        let run = self
            .stores
            .runs
            .get_run(run_id)
            .await?
            .ok_or(PlatformError::NotFound)?;
        let checkpoints = self.all_checkpoints(&run).await?;
        let queue = self.stores.runs.queue_entry(run_id).await?;
        Ok(History {
            run,
            checkpoints,
            queue,
        })
    }

    async fn all_checkpoints(&self, run: &RunRecord) -> Result<Vec<Value>, PlatformError> {
        let query = CheckpointQuery {
            page: PageQuery {
                limit: LIST_WINDOW,
                offset: 0,
                order: SortOrder::Asc,
                window: LIST_WINDOW,
            },
            checkpoint_type: None,
        };
        let page = self.stores.runs.list_checkpoints(&run.id, &query).await?;
        let frozen = run.metadata.get("frozen_spec");
        Ok(page
            .items
            .into_iter()
            .map(|checkpoint| expand_checkpoint(checkpoint, frozen))
            .collect())
    }

    /// `GET /v1/runs/{id}/replay`: the run, a timeline of its checkpoints and its replay context.
    pub async fn replay_view(&self, run_id: &str) -> Result<Value, PlatformError> {
        let history = self.history(run_id).await?;
        let run = &history.run;
        Ok(crate::redact::redacted(&json!({
            "run_id": run.id,
            "status": run.status.as_str(),
            "workflow_name": run.workflow_name,
            "workflow_kind": run.workflow_kind,
            "agent_name": run.agent_name,
            "checkpoint_count": history.checkpoints.len(),
            "timeline": history.checkpoints.iter().map(timeline_item).collect::<Vec<_>>(),
            "replay_context": history.replay_context(),
        })))
    }

    /// `GET /v1/runs/{id}/recovery`: where the run stands and whether `/continue` can take it.
    pub async fn recovery_view(&self, run_id: &str) -> Result<Value, PlatformError> {
        let history = self.history(run_id).await?;
        let run = &history.run;
        Ok(crate::redact::redacted(&json!({
            "run_id": run.id,
            "status": run.status.as_str(),
            "workflow_name": run.workflow_name,
            "workflow_kind": run.workflow_kind,
            "current_step_index": run.current_step_index,
            "current_node_id": run.current_node_id,
            "visited_steps": run.visited_steps,
            "visited_nodes": run.visited_nodes,
            "checkpoint_count": history.checkpoints.len(),
            "pending_human_request": run.pending_human_request,
            "continuation_id": run.continuation_id,
            "error": run.error,
            "queue": history.queue,
            "replay_context": history.replay_context(),
        })))
    }

    /// `GET /v1/runs/{id}/checkpoints/diff`: what changed between two checkpoints (by sequence;
    /// by default the last two) in their flattened `state` and `metadata`.
    pub async fn checkpoint_diff(
        &self,
        run_id: &str,
        from_sequence: Option<i64>,
        to_sequence: Option<i64>,
    ) -> Result<Value, PlatformError> {
        // An unknown run has no checkpoints, which is what kneo-serv answers for it too.
        let checkpoints = match self.stores.runs.get_run(run_id).await? {
            Some(run) => self.all_checkpoints(&run).await?,
            None => Vec::new(),
        };
        if checkpoints.len() < 2 {
            return Err(PlatformError::InvalidRequest(
                "At least two checkpoints are required for a diff.".into(),
            ));
        }
        let select = |sequence: Option<i64>, default: usize| -> Result<&Value, PlatformError> {
            match sequence {
                None => Ok(&checkpoints[default]),
                Some(sequence) => checkpoints
                    .iter()
                    .find(|c| c.get("sequence").and_then(Value::as_i64) == Some(sequence))
                    .ok_or_else(|| {
                        PlatformError::InvalidRequest(format!(
                            "Unknown checkpoint sequence: {sequence}"
                        ))
                    }),
            }
        };
        let from = select(from_sequence, checkpoints.len() - 2)?;
        let to = select(to_sequence, checkpoints.len() - 1)?;
        if from.get("id") == to.get("id") {
            return Err(PlatformError::InvalidRequest(
                "Diff checkpoints must be different.".into(),
            ));
        }
        let comparable = |checkpoint: &Value| {
            json!({
                "state": checkpoint.get("state").cloned().unwrap_or(Value::Null),
                "metadata": checkpoint.get("metadata").cloned().unwrap_or(Value::Null),
            })
        };
        let mut body = Map::new();
        body.insert("run_id".into(), json!(run_id));
        body.insert("from_checkpoint".into(), checkpoint_summary(from));
        body.insert("to_checkpoint".into(), checkpoint_summary(to));
        body.extend(diff(&comparable(from), &comparable(to)));
        Ok(crate::redact::redacted(&Value::Object(body)))
    }
}

/// Every leaf of `value` by its path (`state.messages[0].role`); empty containers are leaves.
fn flatten(value: &Value, path: String, into: &mut BTreeMap<String, Value>) {
    let leaf = |path: String| {
        if path.is_empty() {
            "$".to_string()
        } else {
            path
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(child, child_path, into);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                flatten(child, format!("{path}[{index}]"), into);
            }
        }
        other => {
            into.insert(leaf(path), other.clone());
        }
    }
}

/// A value as it may leave the service, judged by its own key (the last segment of its path):
/// flattening hides the real key from a redaction of the assembled diff.
fn redacted_leaf(path: &str, value: &Value) -> Value {
    let key = path
        .rsplit('.')
        .next()
        .unwrap_or(path)
        .split('[')
        .next()
        .unwrap_or_default();
    let wrapped = json!({ key: value });
    crate::redact::redacted(&wrapped)
        .get(key)
        .cloned()
        .unwrap_or(Value::Null)
}

/// `{change_count, added, removed, changed, truncated}` between two documents.
fn diff(before: &Value, after: &Value) -> Map<String, Value> {
    let mut before_flat = BTreeMap::new();
    let mut after_flat = BTreeMap::new();
    flatten(before, String::new(), &mut before_flat);
    flatten(after, String::new(), &mut after_flat);
    let mut paths: Vec<&String> = before_flat.keys().chain(after_flat.keys()).collect();
    paths.sort();
    paths.dedup();
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = 0usize;
    let mut truncated = false;
    for path in paths {
        let entry = match (before_flat.get(path), after_flat.get(path)) {
            (None, Some(value)) => Some((
                &mut added,
                json!({"path": path, "value": redacted_leaf(path, value)}),
            )),
            (Some(value), None) => Some((
                &mut removed,
                json!({"path": path, "value": redacted_leaf(path, value)}),
            )),
            (Some(from), Some(to)) if from != to => Some((
                &mut changed,
                json!({"path": path, "before": redacted_leaf(path, from), "after": redacted_leaf(path, to)}),
            )),
            _ => None,
        };
        let Some((list, change)) = entry else {
            continue;
        };
        total += 1;
        if total <= MAX_DIFF_CHANGES {
            list.push(change);
        } else {
            truncated = true;
        }
    }
    let mut body = Map::new();
    body.insert("change_count".into(), json!(total));
    body.insert("added".into(), Value::Array(added));
    body.insert("removed".into(), Value::Array(removed));
    body.insert("changed".into(), Value::Array(changed));
    body.insert("truncated".into(), json!(truncated));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_lists_added_removed_and_changed_leaves() {
        let before = json!({"state": {"status": "running", "messages": [], "gone": 1}});
        let after = json!({"state": {"status": "blocked", "messages": [{"role": "user"}]}});
        let body = diff(&before, &after);
        assert_eq!(body["change_count"], 4);
        assert_eq!(
            body["added"],
            json!([{"path": "state.messages[0].role", "value": "user"}])
        );
        assert_eq!(
            body["removed"],
            json!([{"path": "state.gone", "value": 1}, {"path": "state.messages", "value": []}])
        );
        assert_eq!(
            body["changed"],
            json!([{"path": "state.status", "before": "running", "after": "blocked"}])
        );
        assert_eq!(body["truncated"], false);
    }

    #[test]
    fn values_are_redacted_by_their_own_key() {
        let after = json!({"state": {"credentials": {"password": "hunter2-plain"}}});
        let body = diff(&json!({}), &after);
        assert!(
            !body["added"].to_string().contains("hunter2-plain"),
            "{body:?}"
        );
    }

    #[test]
    fn a_long_diff_is_truncated() {
        let mut after: Map<String, Value> =
            (0..250).map(|i| (format!("k{i:03}"), json!(i))).collect();
        after.insert("same".into(), json!(0));
        let body = diff(&json!({"same": 0}), &Value::Object(after));
        assert_eq!(body["change_count"], 250);
        assert_eq!(body["added"].as_array().map(Vec::len), Some(200));
        assert_eq!(body["truncated"], true);
    }
}
