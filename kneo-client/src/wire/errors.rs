//! The error envelope: `{"detail": {"error": <code>, "message": <text>, …}}`.
//!
//! Request-shape problems come as a validation list instead (`{"detail": [{type, loc, msg}]}`),
//! and kneo-serv's readiness docs show the code at the top level (`{"error": "not_ready"}`);
//! [`ErrorBody::from_value`] reads all of them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a 422 validation list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationIssue {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub loc: Vec<Value>,
    #[serde(default)]
    pub msg: Option<String>,
}

/// What an error answer said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable snake_case code (`unauthorized`, `forbidden`, `not_found`, `resource_locked`,
    /// …); `validation` for a validation list.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The scope a 403 says is missing.
    pub required_scope: Option<String>,
    /// Every other key beside `error` and `message` (`status`, `resource`, `metadata`, …).
    pub extra: Map<String, Value>,
    pub validation: Vec<ValidationIssue>,
}

impl ErrorBody {
    /// Reads an error answer; `None` when the body is not an envelope at all.
    pub fn from_value(body: &Value) -> Option<ErrorBody> {
        let object = body.as_object()?;
        match object.get("detail") {
            Some(Value::Object(detail)) => Some(from_fields(detail)),
            Some(Value::Array(issues)) => Some(ErrorBody {
                code: Some("validation".into()),
                message: issues
                    .first()
                    .and_then(|issue| issue.get("msg"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                validation: issues
                    .iter()
                    .filter_map(|issue| serde_json::from_value(issue.clone()).ok())
                    .collect(),
                ..ErrorBody::default()
            }),
            Some(Value::String(message)) => Some(ErrorBody {
                message: Some(message.clone()),
                ..ErrorBody::default()
            }),
            _ if object.get("error").is_some_and(Value::is_string) => Some(from_fields(object)),
            _ => None,
        }
    }

    /// Reads an error answer from its raw text.
    pub fn from_text(text: &str) -> Option<ErrorBody> {
        serde_json::from_str::<Value>(text)
            .ok()
            .as_ref()
            .and_then(ErrorBody::from_value)
    }

    /// `code: message` for error lines.
    pub fn summary(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => "no error code".into(),
        }
    }
}

fn from_fields(fields: &Map<String, Value>) -> ErrorBody {
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    let extra = fields
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "error" | "message"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    ErrorBody {
        code: text("error"),
        message: text("message"),
        required_scope: text("required_scope"),
        extra,
        validation: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_reads_code_message_and_extras() {
        let body = json!({"detail": {"error": "forbidden", "message": "Missing required scope: runs:write", "required_scope": "runs:write"}});
        let error = ErrorBody::from_value(&body).expect("an envelope");
        assert_eq!(error.code.as_deref(), Some("forbidden"));
        assert_eq!(error.required_scope.as_deref(), Some("runs:write"));
        assert_eq!(
            error.summary(),
            "forbidden: Missing required scope: runs:write"
        );
        assert!(error.extra.contains_key("required_scope"));
    }

    #[test]
    fn a_validation_list_reads_as_code_validation() {
        let body = json!({"detail": [{"type": "missing", "loc": ["body", "input"], "msg": "Field required", "input": {}}]});
        let error = ErrorBody::from_value(&body).expect("an envelope");
        assert_eq!(error.code.as_deref(), Some("validation"));
        assert_eq!(error.validation.len(), 1);
        assert_eq!(error.message.as_deref(), Some("Field required"));
    }

    #[test]
    fn top_level_codes_and_plain_details_are_accepted() {
        let error = ErrorBody::from_value(&json!({"error": "not_ready", "metadata": {}}))
            .expect("an envelope");
        assert_eq!(error.code.as_deref(), Some("not_ready"));
        let plain = ErrorBody::from_text(r#"{"detail": "Not Found"}"#).expect("an envelope");
        assert_eq!(plain.summary(), "Not Found");
        assert_eq!(ErrorBody::from_text("<html>502</html>"), None);
        assert_eq!(ErrorBody::from_value(&json!({"ok": true})), None);
    }
}
