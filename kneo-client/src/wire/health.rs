//! `/healthz`, `/livez`, `/readyz` and `GET /v1/health` bodies.
//!
//! `/readyz` answers 200 with `{"ok", "service", "version", "metadata": {"ready", "checks"}}` or
//! 503 with the envelope `{"detail": {"error": "not_ready", "message", "metadata": {"checks"}}}`.
//! kneo-serv's docs also show `not_ready` at the top level (`{"error": "not_ready", "metadata"}`),
//! so [`Readiness::from_value`] accepts all three shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of `/healthz` and `/livez`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthBody {
    #[serde(default)]
    pub ok: Option<bool>,
    /// `kneo-serv-platform` for both kneo-serv 1.2 and kneo-server.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub metadata: HealthMetadata,
}

/// `metadata` of `/healthz`: kneo-server adds the commit and the instance it answers from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthMetadata {
    /// `healthy` (`/healthz`) or `alive` (`/livez`).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// One secret a `providers` or `mcp` check looked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretItem {
    /// `provider:openai` or `extra:github`.
    #[serde(default)]
    pub name: Option<String>,
    /// The variable the service reads, e.g. `OPENAI_API_KEY`.
    #[serde(default)]
    pub env_var: Option<String>,
    #[serde(default)]
    pub present: bool,
}

/// One of the eight readiness checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ok: bool,
    /// The stable failure kind (`connection_refused`, `auth_failed`, `missing_secret`, …).
    #[serde(default)]
    pub error: Option<String>,
    /// The public, secret-free sentence.
    #[serde(default)]
    pub message: Option<String>,
    /// The runbook section the server itself names (`§ 2.2`), when it does.
    #[serde(default)]
    pub runbook: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub durable: Option<bool>,
    /// Queue counts (`queue` check).
    #[serde(default)]
    pub queued: Option<i64>,
    #[serde(default)]
    pub running: Option<i64>,
    #[serde(default)]
    pub failed: Option<i64>,
    /// Running records whose lease expired (kneo-server only).
    #[serde(default)]
    pub expired_leases: Option<i64>,
    /// Age in seconds of the oldest queued run (kneo-server; absent from kneo-serv).
    #[serde(default)]
    pub oldest_queued_age_seconds: Option<f64>,
    /// Live workers in the answering process (kneo-server only).
    #[serde(default)]
    pub workers: Option<i64>,
    /// Registry sizes and names (`runtime_registry`, `tool_registry`).
    #[serde(default)]
    pub count: Option<i64>,
    #[serde(default)]
    pub names: Vec<String>,
    /// Whether any secret is listed for `providers` / `mcp`.
    #[serde(default)]
    pub configured: Option<bool>,
    #[serde(default)]
    pub items: BTreeMap<String, SecretItem>,
    /// The full failure message, from `GET /v1/health` (authenticated callers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_message: Option<String>,
}

impl ReadinessCheck {
    /// Env vars of listed secrets that are not set in the service's environment.
    pub fn missing_secrets(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|(_, item)| !item.present)
            .map(|(key, item)| item.env_var.clone().unwrap_or_else(|| key.clone()))
            .collect()
    }
}

/// Readiness as `/readyz` or `GET /v1/health` reports it, whatever the envelope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// The checks in the order the service listed them.
    #[serde(default)]
    pub checks: Vec<ReadinessCheck>,
    /// `not_ready` when the answer was the error envelope.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// `GET /v1/health` only: `sqlite` or `postgres`.
    #[serde(default)]
    pub store_kind: Option<String>,
    /// `GET /v1/health` only: the answering instance (id, host, pid, started_at).
    #[serde(default)]
    pub instance: Option<Value>,
    /// `GET /v1/health` only: who the key belongs to and its scopes.
    #[serde(default)]
    pub identity: Option<Value>,
}

impl Readiness {
    /// Reads any of the three readiness shapes; the error says what was missing.
    pub fn from_value(body: &Value) -> Result<Readiness, String> {
        let Some(object) = body.as_object() else {
            return Err("the readiness body is not a JSON object".into());
        };
        // The 503 envelope nests everything under `detail`; kneo-serv's docs also show it bare.
        let (envelope, top) = match object.get("detail").and_then(Value::as_object) {
            Some(detail) => (Some(detail), detail),
            None if object.get("error").is_some() => (Some(object), object),
            None => (None, object),
        };
        let Some(metadata) = top.get("metadata").and_then(Value::as_object) else {
            return Err("the readiness body has no `metadata` object".into());
        };
        let details = metadata.get("details").and_then(Value::as_object);
        let checks = match metadata.get("checks") {
            Some(Value::Object(checks)) => checks
                .iter()
                .map(|(name, check)| read_check(name, check, details))
                .collect(),
            Some(_) => return Err("`metadata.checks` is not an object".into()),
            None => Vec::new(),
        };
        let error = envelope
            .and_then(|e| e.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let ready = match metadata.get("ready").and_then(Value::as_bool) {
            Some(ready) => ready,
            None if error.is_some() => false,
            None => match object.get("ok").and_then(Value::as_bool) {
                Some(ok) => ok,
                None => checks.iter().all(|c: &ReadinessCheck| c.ok),
            },
        };
        let text = |map: &Map<String, Value>, key: &str| {
            map.get(key).and_then(Value::as_str).map(str::to_string)
        };
        Ok(Readiness {
            ready,
            service: text(object, "service"),
            version: text(object, "version"),
            checks,
            error,
            message: envelope.and_then(|e| text(e, "message")),
            store_kind: text(metadata, "store_kind"),
            instance: metadata.get("instance").cloned(),
            identity: metadata.get("identity").cloned(),
        })
    }

    /// The checks that failed.
    pub fn failing(&self) -> impl Iterator<Item = &ReadinessCheck> {
        self.checks.iter().filter(|check| !check.ok)
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&ReadinessCheck> {
        self.checks.iter().find(|check| check.name == name)
    }
}

fn read_check(name: &str, value: &Value, details: Option<&Map<String, Value>>) -> ReadinessCheck {
    let mut check =
        match value {
            Value::Object(_) => serde_json::from_value::<ReadinessCheck>(value.clone())
                .unwrap_or_else(|_| ReadinessCheck {
                    ok: value.get("ok").and_then(Value::as_bool).unwrap_or(false),
                    error: value
                        .get("error")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    ..ReadinessCheck::default()
                }),
            Value::Bool(ok) => ReadinessCheck {
                ok: *ok,
                ..ReadinessCheck::default()
            },
            _ => ReadinessCheck::default(),
        };
    if check.name.is_empty() {
        check.name = name.to_string();
    }
    if let Some(detail) = details.and_then(|d| d.get(name)) {
        check.detail_message = detail
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checks() -> Value {
        json!({
            "api": {"name": "api", "ok": true, "status": "ready"},
            "run_state_store": {"name": "run_state_store", "ok": false, "error": "connection_refused",
                "message": "The run state store refuses connections.", "runbook": "§ 2.2"},
            "queue": {"name": "queue", "ok": true, "queued": 3, "running": 1, "workers": 2, "expired_leases": 0, "future_field": 1},
            "providers": {"name": "providers", "ok": false, "items": {
                "openai": {"name": "provider:openai", "env_var": "OPENAI_API_KEY", "present": false, "value": null}}}
        })
    }

    #[test]
    fn a_ready_body_reads_with_its_checks_in_order() {
        let body = json!({"ok": true, "service": "kneo-serv-platform", "version": "1.2.0",
            "metadata": {"ready": true, "checks": {"api": {"name": "api", "ok": true}, "mcp": {"ok": true, "configured": false}}}});
        let readiness = Readiness::from_value(&body).expect("reads");
        assert!(readiness.ready);
        assert_eq!(readiness.version.as_deref(), Some("1.2.0"));
        let names: Vec<_> = readiness.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["api", "mcp"],
            "a check without `name` takes its key"
        );
    }

    #[test]
    fn the_503_envelope_reads_as_not_ready() {
        let body = json!({"detail": {"error": "not_ready", "message": "One or more readiness checks failed.",
            "metadata": {"ready": false, "checks": checks()}}});
        let readiness = Readiness::from_value(&body).expect("reads");
        assert!(!readiness.ready);
        assert_eq!(readiness.error.as_deref(), Some("not_ready"));
        let failing: Vec<_> = readiness.failing().map(|c| c.name.as_str()).collect();
        assert_eq!(failing, ["run_state_store", "providers"]);
        assert_eq!(readiness.check("queue").and_then(|q| q.workers), Some(2));
        assert_eq!(
            readiness
                .check("providers")
                .map(ReadinessCheck::missing_secrets),
            Some(vec!["OPENAI_API_KEY".to_string()])
        );
    }

    #[test]
    fn not_ready_at_the_top_level_is_accepted() {
        let body = json!({"error": "not_ready", "metadata": {"checks": checks()}});
        let readiness = Readiness::from_value(&body).expect("reads");
        assert!(
            !readiness.ready,
            "an error envelope without `ready` means not ready"
        );
        assert_eq!(readiness.failing().count(), 2);
    }

    #[test]
    fn health_detail_merges_full_messages_into_checks() {
        let body = json!({"ok": false, "metadata": {"ready": false, "checks": checks(), "store_kind": "postgres",
            "details": {"run_state_store": {"error": "connection_refused", "message": "connect to db:5432 refused"}}}});
        let readiness = Readiness::from_value(&body).expect("reads");
        assert_eq!(readiness.store_kind.as_deref(), Some("postgres"));
        let store = readiness.check("run_state_store").expect("present");
        assert_eq!(
            store.detail_message.as_deref(),
            Some("connect to db:5432 refused")
        );
    }

    #[test]
    fn bodies_without_metadata_are_refused_with_the_reason() {
        assert!(
            Readiness::from_value(&json!({"ok": true}))
                .unwrap_err()
                .contains("metadata")
        );
        assert!(
            Readiness::from_value(&json!([1]))
                .unwrap_err()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn healthz_golden_body_parses() {
        let body = json!({"ok": true, "service": "kneo-serv-platform", "version": "1.2.0", "metadata": {"status": "healthy"}});
        let health: HealthBody = serde_json::from_value(body).expect("parses");
        assert_eq!(health.metadata.status.as_deref(), Some("healthy"));
        assert_eq!(health.metadata.commit, None);
    }
}
