//! `Idempotency-Key`: a replay returns the original answer, a different payload under the same
//! key is a conflict, and a duplicate that arrives while the first is running is told so.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::error::ApiError;
use crate::store::{IdempotencyBegin, IdempotencyRequest, Store};

/// Longest key accepted (after trimming).
pub const MAX_KEY_CHARS: usize = 256;

/// The validated key of a request, if it sent one.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = |message: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("{message} (runbook § 5.5)"),
        )
    };
    let text = raw
        .to_str()
        .map_err(|_| invalid("Idempotency-Key must be visible ASCII text."))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(invalid("Idempotency-Key must not be empty."));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(invalid("Idempotency-Key must be 256 characters or fewer."));
    }
    Ok(Some(key.to_string()))
}

/// JSON with object keys sorted at every level, so equal payloads hash equally.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                sorted.insert(key.clone(), canonical(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

pub fn payload_hash(payload: &Value) -> String {
    let text = serde_json::to_string(&canonical(payload)).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What to do with a request that carries a key.
pub enum Admission {
    /// Execute it, then [`complete`] or [`abandon`].
    Proceed,
    /// Answer with this stored response.
    Replay { status: StatusCode, body: Value },
}

/// Checks the key against earlier requests in `scope`.
pub async fn admit(
    store: &dyn Store,
    scope: &str,
    key: &str,
    payload: &Value,
    lock_ttl: std::time::Duration,
) -> Result<Admission, ApiError> {
    let request = IdempotencyRequest {
        scope: scope.to_string(),
        key: key.to_string(),
        request_hash: payload_hash(payload),
        lock_ttl,
    };
    match store.idempotency_begin(&request).await? {
        IdempotencyBegin::Started => Ok(Admission::Proceed),
        IdempotencyBegin::Replay { status, body } => Ok(Admission::Replay {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
        }),
        IdempotencyBegin::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_conflict",
            "Idempotency-Key was already used with a different request payload.",
        )
        .with("scope", scope)),
        IdempotencyBegin::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_progress",
            "A request with this Idempotency-Key is still being processed; retry after it finishes.",
        )
        .with("scope", scope)),
    }
}

/// Records a refused reuse of a key (`idempotency.conflict`, actor = the caller's key name), so
/// triage can name the consumer (runbook § 5.4). The key itself is not recorded.
pub async fn audit_conflict(store: &dyn Store, caller: &str, scope: &str, error: &ApiError) {
    if !matches!(
        error.code(),
        "idempotency_key_conflict" | "idempotency_key_in_progress"
    ) {
        return;
    }
    let event = super::audit::event(
        "idempotency.conflict",
        caller,
        None,
        None,
        serde_json::json!({"scope": scope, "error": error.code()}),
    );
    // Best effort, like every audit of a refusal: the refusal itself is what the caller needs.
    let _ = store.record_audit(&[event]).await;
}

pub async fn complete(store: &dyn Store, scope: &str, key: &str, status: StatusCode, body: &Value) {
    if let Err(error) = store
        .idempotency_complete(scope, key, status.as_u16(), body)
        .await
    {
        tracing::warn!(target: "kneo_serv.service", %error, scope, "could not store an idempotent response; a replay will run again");
    }
}

pub async fn abandon(store: &dyn Store, scope: &str, key: &str) {
    if let Err(error) = store.idempotency_abandon(scope, key).await {
        tracing::warn!(target: "kneo_serv.service", %error, scope, "could not release an idempotency record; it frees itself after the lock TTL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        assert_eq!(
            payload_hash(&json!({"a": 1, "b": {"x": 1, "y": 2}})),
            payload_hash(&json!({"b": {"y": 2, "x": 1}, "a": 1}))
        );
        assert_ne!(
            payload_hash(&json!({"a": 1})),
            payload_hash(&json!({"a": 2}))
        );
    }

    #[test]
    fn keys_are_validated() {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", "k".repeat(257).parse().expect("header"));
        assert_eq!(
            key_from(&headers).err().map(|e| e.code()),
            Some("invalid_idempotency_key")
        );
        headers.insert(
            "idempotency-key",
            "  golden-key-1 ".parse().expect("header"),
        );
        assert_eq!(
            key_from(&headers).expect("valid"),
            Some("golden-key-1".into())
        );
    }
}
