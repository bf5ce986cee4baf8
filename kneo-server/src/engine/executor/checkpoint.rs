//! Checkpoints and durable boundaries: the one place where the executor builds checkpoint
//! documents and hands a boundary (run row, trace delta, checkpoints) to the [`Recorder`], so
//! limits on what a run may store apply in one place.
//!
//! [`Recorder`]: super::Recorder

use serde_json::{Value, json};

use super::state::Execution;
use super::{Boundary, Interrupt};
use crate::store::RunRecord;

/// Longest list a checkpoint's state snapshot keeps (its newest items), as kneo-serv's
/// `KNEO_SERV_CHECKPOINT_MAX_LIST_ITEMS`; the full lists are on the run row.
pub(super) const PREVIEW_LIST_ITEMS: usize = 20;
/// Most keys a snapshot's object keeps (`KNEO_SERV_CHECKPOINT_MAX_DICT_ITEMS`).
const PREVIEW_DICT_ITEMS: usize = 50;

impl Execution<'_> {
    pub(super) fn next_sequence(&self) -> i64 {
        self.run
            .metadata
            .get("checkpoint_sequence")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1
    }

    /// Writes a boundary: the run as it is now, the trace since the last one, and a checkpoint.
    pub(super) async fn checkpoint(
        &mut self,
        checkpoint_type: &str,
        step_id: Option<&str>,
        metadata: Value,
        finished: bool,
    ) -> Result<(), Interrupt> {
        if !finished && self.cancel.is_cancelled() {
            return Err(Interrupt::Cancelled);
        }
        self.build_checkpoint_now(checkpoint_type, step_id, metadata);
        let boundary = Boundary {
            run: self.run.clone(),
            trace_events: std::mem::take(&mut self.pending),
            checkpoints: std::mem::take(&mut self.deferred),
            finished,
        };
        self.recorder.boundary(boundary).await
    }

    /// Records a checkpoint that is written with the next boundary instead of on its own. The
    /// start of a run has nothing to resume from, so its checkpoint need not cost a transaction.
    pub(super) fn defer_checkpoint(
        &mut self,
        checkpoint_type: &str,
        step_id: Option<&str>,
        metadata: Value,
    ) {
        self.build_checkpoint_now(checkpoint_type, step_id, metadata);
    }

    /// Builds the next checkpoint from the run's current state and the trace events not yet in a
    /// checkpoint (those events stay pending until the boundary writes them).
    fn build_checkpoint_now(
        &mut self,
        checkpoint_type: &str,
        step_id: Option<&str>,
        metadata: Value,
    ) {
        let now = crate::clock::now_text();
        self.run.updated_at = now.clone();
        let sequence = self.next_sequence();
        self.run
            .metadata
            .insert("checkpoint_sequence".into(), json!(sequence));
        let in_checkpoints: usize = self
            .deferred
            .iter()
            .map(|checkpoint| checkpoint["trace_events"].as_array().map_or(0, Vec::len))
            .sum();
        let delta = &self.pending[in_checkpoints.min(self.pending.len())..];
        let mut checkpoint = build_checkpoint(
            &self.run,
            checkpoint_type,
            step_id,
            sequence,
            delta,
            metadata,
            &now,
        );
        if let Some(node) = &self.current_node {
            checkpoint["node_id"] = json!(node);
        }
        self.deferred.push(checkpoint);
    }
}

/// Bounds every list and object in a snapshot, so a long run's checkpoints do not each repeat
/// its whole history (which would make the run's checkpoints grow with the square of its
/// length). True when anything was cut.
fn bound_preview(object: &mut serde_json::Map<String, Value>) -> bool {
    fn bound(value: &mut Value) -> bool {
        match value {
            Value::Array(items) => {
                let mut cut = items.len() > PREVIEW_LIST_ITEMS;
                if cut {
                    items.drain(..items.len() - PREVIEW_LIST_ITEMS);
                }
                for item in items.iter_mut() {
                    cut |= bound(item);
                }
                cut
            }
            Value::Object(fields) => bound_preview(fields),
            _ => false,
        }
    }
    let mut cut = object.len() > PREVIEW_DICT_ITEMS;
    if cut {
        let keep: Vec<String> = object.keys().take(PREVIEW_DICT_ITEMS).cloned().collect();
        object.retain(|key, _| keep.contains(key));
    }
    for value in object.values_mut() {
        cut |= bound(value);
    }
    cut
}

/// The checkpoint document in kneo-serv's shape, as stored. `state` carries the run with only
/// its last 20 messages and without the parts the run row or the checkpoint itself already hold
/// (the frozen spec, the trace delta): [`expand_checkpoint`] puts them back when a checkpoint is
/// read, so stored checkpoints stay small however long the run gets.
pub fn build_checkpoint(
    run: &RunRecord,
    checkpoint_type: &str,
    step_id: Option<&str>,
    sequence: i64,
    trace_events: &[Value],
    metadata: Value,
    now: &str,
) -> Value {
    let mut state = serde_json::to_value(run).unwrap_or_else(|_| json!({}));
    if let Some(state) = state.as_object_mut() {
        let message_count = run.messages.len();
        let recent: Vec<Value> = run
            .messages
            .iter()
            .skip(message_count.saturating_sub(20))
            .cloned()
            .collect();
        state.insert("messages".into(), Value::Array(recent));
        if let Some(metadata) = state.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("checkpoint_sequence");
            metadata.remove("frozen_spec");
        }
        if bound_preview(state) {
            state.insert(
                "preview".into(),
                json!({"max_list_items": PREVIEW_LIST_ITEMS, "max_dict_items": PREVIEW_DICT_ITEMS}),
            );
        }
    }
    json!({
        "id": crate::clock::new_id(),
        "run_id": run.id,
        "type": checkpoint_type,
        "workflow_name": run.workflow_name,
        "step_id": step_id,
        "node_id": null,
        "sequence": sequence,
        "iteration": 1,
        "state": crate::redact::redacted(&state),
        "trace_events": trace_events,
        "metadata": crate::redact::redacted(&metadata),
        "created_at": now,
    })
}

/// A stored checkpoint as the API returns it: `state.trace_events` and `state.metadata.trace`
/// (the checkpoint's own trace delta) and `state.metadata.frozen_spec` (the run's) put back.
pub fn expand_checkpoint(mut checkpoint: Value, frozen_spec: Option<&Value>) -> Value {
    let trace = checkpoint
        .get("trace_events")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let run_id = checkpoint.get("run_id").cloned().unwrap_or(Value::Null);
    if let Some(state) = checkpoint.get_mut("state").and_then(Value::as_object_mut) {
        state.insert("trace_events".into(), trace.clone());
        if let Some(metadata) = state.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("trace".into(), json!({"run_id": run_id, "events": trace}));
            if let Some(frozen) = frozen_spec {
                metadata.insert("frozen_spec".into(), frozen.clone());
            }
        }
    }
    checkpoint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_snapshots_keep_only_the_newest_list_items() {
        let mut run = RunRecord::new("r".into(), "in".into(), crate::clock::now_text());
        run.visited_steps = (0..500).map(|i| format!("s{i}")).collect();
        let checkpoint = build_checkpoint(
            &run,
            "step_completed",
            Some("s499"),
            7,
            &[],
            json!({}),
            "now",
        );
        let visited = checkpoint["state"]["visited_steps"]
            .as_array()
            .expect("a list");
        assert_eq!(visited.len(), PREVIEW_LIST_ITEMS);
        assert_eq!(
            visited.last(),
            Some(&json!("s499")),
            "the newest items stay"
        );
        assert_eq!(
            checkpoint["state"]["preview"]["max_list_items"],
            PREVIEW_LIST_ITEMS
        );
    }

    #[test]
    fn small_snapshots_are_left_whole() {
        let run = RunRecord::new("r".into(), "in".into(), crate::clock::now_text());
        let checkpoint = build_checkpoint(&run, "run_started", None, 1, &[], json!({}), "now");
        assert!(checkpoint["state"].get("preview").is_none());
    }
}
