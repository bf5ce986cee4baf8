//! `Idempotency-Key`: a replay returns the original answer, a different payload under the same
//! key is a conflict, and a duplicate that arrives while the first is running is told so.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Platform;
use crate::api::error::ApiError;
use crate::store::{
    IdempotencyBegin, IdempotencyBinding, IdempotencyRequest, RunRecord, RunStatus, Store,
};

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
    // Printable ASCII only: `to_str` lets a tab through, and a key with a control character in
    // it is almost always a copy-and-paste accident that would never match its retry.
    let text = raw
        .to_str()
        .ok()
        .filter(|text| text.bytes().all(|byte| (b' '..=b'~').contains(&byte)))
        .ok_or_else(|| invalid("Idempotency-Key must be visible ASCII text."))?;
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

/// A key this request holds: bind it with the first write ([`Mark::binding`]).
#[derive(Debug, Clone)]
pub struct Mark {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

impl Mark {
    /// The binding a write carries: with `answer` the record is completed in the same
    /// transaction (the answer is already decided), without it the record is bound to the run.
    pub fn binding(&self, answer: Option<(StatusCode, &Value)>) -> IdempotencyBinding {
        IdempotencyBinding {
            scope: self.scope.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            answer: answer.map(|(status, body)| (status.as_u16(), body.clone())),
        }
    }
}

/// What to do with a request that carries a key.
pub enum Admission {
    /// Execute it under this mark, then [`complete`] or [`abandon`].
    Proceed(Mark),
    /// Answer with this stored response.
    Replay { status: StatusCode, body: Value },
    /// The key's run exists: answer from it.
    Bound { run_id: String },
}

fn in_progress(scope: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_in_progress",
        "A request with this Idempotency-Key is still being processed; retry after it finishes (runbook § 5.4).",
    )
    .with("scope", scope)
    .retry_after(1)
}

/// `409 idempotency_key_in_progress` for a write whose key another request bound first.
pub fn key_taken(scope: &str) -> ApiError {
    in_progress(scope)
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
        IdempotencyBegin::Started => Ok(Admission::Proceed(Mark {
            scope: request.scope,
            key: request.key,
            request_hash: request.request_hash,
        })),
        IdempotencyBegin::Replay { status, body } => Ok(Admission::Replay {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
        }),
        IdempotencyBegin::Bound { run_id } => Ok(Admission::Bound { run_id }),
        IdempotencyBegin::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_conflict",
            "Idempotency-Key was already used with a different request payload.",
        )
        .with("scope", scope)),
        IdempotencyBegin::InProgress => Err(in_progress(scope)),
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
        tracing::warn!(target: "kneo_serv.service", %error, scope, "could not store an idempotent response; a retry is answered from its run");
    }
}

pub async fn abandon(store: &dyn Store, mark: &Mark) {
    if let Err(error) = store
        .idempotency_abandon(&mark.scope, &mark.key, &mark.request_hash)
        .await
    {
        tracing::warn!(target: "kneo_serv.service", %error, scope = %mark.scope, "could not release an idempotency record; it frees itself after the lock TTL");
    }
}

/// Whether a run stands where the request that started (or resumed) it would have answered: it
/// ended, or paused for a human. A sync request never answers while its run is created or
/// running.
fn answerable(run: &RunRecord) -> bool {
    !matches!(run.status, RunStatus::Created | RunStatus::Running)
}

impl Platform {
    /// Runs `work` under the request's `Idempotency-Key`, if it sent one.
    ///
    /// The work gets the [`Mark`] to bind with its first write; once bound, the key can never
    /// make a second run. A retry gets the stored answer, or (the answer not stored yet: the
    /// first request still executing, or its process died) the answer built from the key's run
    /// once that run has finished, and `409 idempotency_key_in_progress` before.
    /// A refused reuse of the key (`409`) is audited under `caller`.
    pub async fn idempotently<F, Fut>(
        &self,
        caller: &str,
        scope: &str,
        key: Option<String>,
        payload: &Value,
        work: F,
    ) -> Result<(StatusCode, Value), ApiError>
    where
        F: FnOnce(Option<Mark>) -> Fut,
        Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
    {
        let Some(key) = key else {
            return work(None).await;
        };
        let answer = self.idempotently_keyed(scope, &key, payload, work).await;
        if let Err(error) = &answer {
            audit_conflict(self.stores.runs.as_ref(), caller, scope, error).await;
        }
        answer
    }

    async fn idempotently_keyed<F, Fut>(
        &self,
        scope: &str,
        key: &str,
        payload: &Value,
        work: F,
    ) -> Result<(StatusCode, Value), ApiError>
    where
        F: FnOnce(Option<Mark>) -> Fut,
        Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
    {
        let store = self.stores.runs.as_ref();
        match admit(store, scope, key, payload, self.config.idempotency_lock_ttl).await? {
            Admission::Replay { status, body } => Ok((status, body)),
            Admission::Bound { run_id } => self.answer_from_run(scope, key, &run_id).await,
            Admission::Proceed(mark) => {
                crate::faults::point("after_idempotency_mark");
                match work(Some(mark.clone())).await {
                    Ok((status, body)) => {
                        complete(store, scope, key, status, &body).await;
                        Ok((status, body))
                    }
                    Err(error) => {
                        abandon(store, &mark).await;
                        Err(error)
                    }
                }
            }
        }
    }

    /// The answer of a key bound to `run_id` whose own request did not store it.
    async fn answer_from_run(
        &self,
        scope: &str,
        key: &str,
        run_id: &str,
    ) -> Result<(StatusCode, Value), ApiError> {
        let run = self.stores.runs.get_run(run_id).await?;
        let Some(run) = run.filter(answerable) else {
            return Err(in_progress(scope).with("run_id", run_id));
        };
        let trace = self.embedded_trace(&run.id).await;
        let body = if scope == "human:resume" {
            super::responses::resume_result(&run, trace)
        } else {
            super::responses::run_result(&run, trace)
        };
        complete(self.stores.runs.as_ref(), scope, key, StatusCode::OK, &body).await;
        Ok((StatusCode::OK, body))
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
        headers.insert("idempotency-key", "tab\there".parse().expect("header"));
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
