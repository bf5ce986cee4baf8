//! Trace events in kneo-serv's shape, redacted as they are made.

use serde_json::{Map, Value, json};

/// Longest preview of an input or output kept in a trace event.
const PREVIEW_CHARS: usize = 500;

/// A redacted, bounded preview of a text.
pub fn preview(text: &str) -> String {
    let redacted = crate::redact::redacted_text(text);
    if redacted.chars().count() <= PREVIEW_CHARS {
        redacted
    } else {
        let cut: String = redacted.chars().take(PREVIEW_CHARS).collect();
        format!("{cut}…")
    }
}

/// A trace event under construction.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    fields: Map<String, Value>,
}

impl TraceEvent {
    pub fn new(event_type: &str, run_id: &str, parent_event_id: Option<&str>) -> TraceEvent {
        let mut fields = Map::new();
        fields.insert("type".into(), json!(event_type));
        fields.insert("run_id".into(), json!(run_id));
        fields.insert("event_id".into(), json!(crate::clock::new_id()));
        fields.insert("timestamp".into(), json!(crate::clock::now_text()));
        fields.insert("parent_event_id".into(), json!(parent_event_id));
        for key in [
            "span_id",
            "parent_span_id",
            "agent_name",
            "workflow_name",
            "step_id",
            "runtime_mode",
            "model_provider",
            "model_name",
            "tool_name",
            "guardrail_id",
            "memory_policy",
            "input_preview",
            "output_preview",
        ] {
            fields.insert(key.into(), Value::Null);
        }
        fields.insert("metadata".into(), json!({}));
        fields.insert("error".into(), Value::Null);
        TraceEvent { fields }
    }

    /// Sets a top-level field (`agent_name`, `step_id`, …).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> TraceEvent {
        self.fields.insert(key.into(), value.into());
        self
    }

    pub fn input(self, text: &str) -> TraceEvent {
        self.with("input_preview", preview(text))
    }

    pub fn output(self, text: &str) -> TraceEvent {
        self.with("output_preview", preview(text))
    }

    /// Sets `metadata` (redacted).
    pub fn metadata(self, metadata: Value) -> TraceEvent {
        self.with("metadata", crate::redact::redacted(&metadata))
    }

    pub fn error(self, error_type: &str, message: &str) -> TraceEvent {
        self.with(
            "error",
            json!({"type": error_type, "message": crate::redact::redacted_text(message)}),
        )
    }

    pub fn event_id(&self) -> String {
        self.fields
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn build(self) -> Value {
        Value::Object(self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_every_golden_field() {
        let event = TraceEvent::new("run_started", "r1", None)
            .input("hi there")
            .build();
        for key in [
            "type",
            "run_id",
            "event_id",
            "timestamp",
            "parent_event_id",
            "agent_name",
            "input_preview",
            "metadata",
            "error",
        ] {
            assert!(event.get(key).is_some(), "missing {key}");
        }
        assert_eq!(event["input_preview"], "hi there");
    }

    #[test]
    fn previews_are_redacted_and_bounded() {
        assert_eq!(preview("token=abcdef"), "token=[REDACTED]");
        assert!(preview(&"x".repeat(2000)).chars().count() <= PREVIEW_CHARS + 1);
    }
}
