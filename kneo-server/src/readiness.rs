//! The eight readiness checks of `/readyz`, each time-bounded, with stable error kinds.
//!
//! Unauthenticated callers see only `error` (a stable kind such as `connection_refused`) and a
//! generic message; the full cause, which may name hosts or files, is kept in
//! [`Readiness::details`] for the authenticated `GET /v1/health` and for the log.

use std::future::Future;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::store::{ErrorKind, StoreError};

/// The check names, in the order kneo-serv reports them.
pub use kneo_triage::matrix::CHECK_NAMES;
use kneo_triage::matrix::Store;
/// Where the runbook explains a failing check: the readiness matrix shared with the tools.
pub use kneo_triage::matrix::runbook_section;

/// The result of one readiness evaluation.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub ready: bool,
    /// `metadata.checks` as `/readyz` returns it.
    pub checks: Map<String, Value>,
    /// Full failure messages by check name (authenticated callers only).
    pub details: Map<String, Value>,
}

impl Readiness {
    /// Names of the failing checks.
    pub fn failing(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(_, check)| check.get("ok") == Some(&Value::Bool(false)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A generic, secret-free sentence for each failure kind.
fn public_message(check: &str, kind: ErrorKind) -> String {
    let what = match check {
        "run_state_store" => "The run state store",
        "continuation_store" => "The continuation store",
        "queue" => "The run queue",
        "api" => "The API",
        _ => "The dependency",
    };
    let why = match kind {
        ErrorKind::ConnectionRefused => "refuses connections",
        ErrorKind::AuthFailed => "rejected the service's credentials",
        ErrorKind::Timeout => "did not answer in time",
        ErrorKind::SchemaMissing => "has no kneo schema",
        ErrorKind::SchemaTooNew => "has a schema newer than this binary knows",
        ErrorKind::PermissionDenied => "denies the service permission",
        ErrorKind::NotFound => "is missing",
        ErrorKind::DatabaseMissing => "names a database that does not exist",
        ErrorKind::Corrupt => "holds unreadable records",
        ErrorKind::Locked => "is locked by another process",
        ErrorKind::Io => "fails with an I/O error",
        ErrorKind::TlsFailed => "failed the TLS handshake",
        ErrorKind::CertificateInvalid => "has a TLS certificate problem",
        ErrorKind::Unavailable | ErrorKind::Internal => "is unavailable",
    };
    format!("{what} {why}.")
}

/// Runs a probe under the readiness time bound; a hang becomes a `timeout` failure.
async fn bounded<T>(
    limit: Duration,
    probe: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, probe).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(
            ErrorKind::Timeout,
            format!("the probe did not finish within {} ms", limit.as_millis()),
        )),
    }
}

/// A check entry that failed, and the detail for authenticated callers.
fn failed(
    name: &str,
    error: &StoreError,
    store: Store,
    mut entry: Map<String, Value>,
    details: &mut Map<String, Value>,
) -> Value {
    entry.insert("ok".into(), json!(false));
    entry.insert("error".into(), json!(error.kind.as_str()));
    entry.insert("message".into(), json!(public_message(name, error.kind)));
    entry.insert(
        "runbook".into(),
        json!(format!(
            "§ {}",
            runbook_section(name, Some(error.kind.as_str()), store)
        )),
    );
    details.insert(name.into(), json!({"error": error.kind.as_str(), "message": crate::redact::redacted_text(&error.message)}));
    Value::Object(entry)
}

fn entry(name: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("name".into(), json!(name));
    map.insert("ok".into(), json!(true));
    map
}

/// One secret the providers or mcp check looks for.
fn secret_item(name: String, env_var: String) -> (Value, bool) {
    let present = std::env::var_os(&env_var).is_some_and(|value| !value.is_empty());
    let value = if present {
        json!(crate::redact::MARKER)
    } else {
        Value::Null
    };
    (
        json!({"name": name, "env_var": env_var, "present": present, "value": value}),
        present,
    )
}

/// The env var holding a provider's key (kneo-serv's default mappings).
pub fn provider_env_var(provider: &str) -> String {
    match provider {
        "openai" | "openai-agents" => "OPENAI_API_KEY".into(),
        "anthropic" => "ANTHROPIC_API_KEY".into(),
        "google" | "google-adk" => "GOOGLE_API_KEY".into(),
        other => format!(
            "{}_API_KEY",
            other.to_ascii_uppercase().replace(['-', '.'], "_")
        ),
    }
}

fn secrets_check(name: &str, items: Vec<(String, String, String)>) -> Value {
    let mut check = entry(name);
    if items.is_empty() {
        check.insert("configured".into(), json!(false));
        return Value::Object(check);
    }
    let mut all_present = true;
    let mut listed = Map::new();
    for (key, display_name, env_var) in items {
        let (item, present) = secret_item(display_name, env_var);
        all_present &= present;
        listed.insert(key, item);
    }
    check.insert("ok".into(), json!(all_present));
    check.insert("items".into(), Value::Object(listed));
    if !all_present {
        check.insert("error".into(), json!("missing_secret"));
        check.insert(
            "message".into(),
            json!("One or more listed secrets are not set in the service's environment."),
        );
        check.insert("runbook".into(), json!("§ 3.2"));
    }
    Value::Object(check)
}

/// Evaluates all eight checks concurrently; answers within the probe timeout even if a store hangs.
pub async fn evaluate(state: &AppState) -> Readiness {
    let limit = state.config.health_probe_timeout;
    let stores = &state.stores;
    let (run_state, continuations, queue) = tokio::join!(
        bounded(limit, stores.runs.probe()),
        bounded(limit, stores.continuations.probe()),
        bounded(limit, stores.runs.queue_counts()),
    );
    let mut checks = Map::new();
    let mut details = Map::new();
    let store = match stores.runs.kind() {
        crate::store::StoreKind::Sqlite => Store::Embedded,
        crate::store::StoreKind::Postgres => Store::Postgres,
    };

    let mut api = entry("api");
    api.insert("status".into(), json!("ready"));
    let api = if crate::drill::broken_release() {
        let error = StoreError::new(
            ErrorKind::Internal,
            "this release is broken on purpose (KNEO_SERV_DRILL_BROKEN_RELEASE)",
        );
        failed("api", &error, store, api, &mut details)
    } else {
        Value::Object(api)
    };
    checks.insert("api".into(), api);

    let run_state_check = match &run_state {
        Ok(()) => Value::Object(entry("run_state_store")),
        Err(error) => failed(
            "run_state_store",
            error,
            store,
            entry("run_state_store"),
            &mut details,
        ),
    };
    checks.insert("run_state_store".into(), run_state_check);

    let mut continuation_entry = entry("continuation_store");
    continuation_entry.insert("kind".into(), json!(state.stores.continuation_kind));
    let continuation_check = match &continuations {
        Ok(()) => Value::Object(continuation_entry),
        Err(error) => failed(
            "continuation_store",
            error,
            store,
            continuation_entry,
            &mut details,
        ),
    };
    checks.insert("continuation_store".into(), continuation_check);

    let mut queue_entry = entry("queue");
    queue_entry.insert("kind".into(), json!(stores.runs.kind().queue_kind()));
    queue_entry.insert("durable".into(), json!(true));
    let queue_check = match &queue {
        Ok(counts) => {
            queue_entry.insert("queued".into(), json!(counts.queued));
            queue_entry.insert("running".into(), json!(counts.running));
            queue_entry.insert("failed".into(), json!(counts.failed));
            queue_entry.insert("expired_leases".into(), json!(counts.expired_leases));
            queue_entry.insert(
                "oldest_queued_age_seconds".into(),
                json!(counts.oldest_queued_age_seconds),
            );
            queue_entry.insert(
                "workers".into(),
                json!(
                    state
                        .metrics
                        .workers
                        .load(std::sync::atomic::Ordering::Relaxed)
                ),
            );
            Value::Object(queue_entry)
        }
        Err(error) => failed("queue", error, store, queue_entry, &mut details),
    };
    checks.insert("queue".into(), queue_check);

    let runtimes = state.engine.runtime_names();
    let mut runtime_entry = entry("runtime_registry");
    runtime_entry.insert("ok".into(), json!(!runtimes.is_empty()));
    runtime_entry.insert("count".into(), json!(runtimes.len()));
    runtime_entry.insert("names".into(), json!(runtimes));
    checks.insert("runtime_registry".into(), Value::Object(runtime_entry));

    let tools = state.engine.tool_names();
    let mut tool_entry = entry("tool_registry");
    tool_entry.insert("count".into(), json!(tools.len()));
    tool_entry.insert("names".into(), json!(tools));
    checks.insert("tool_registry".into(), Value::Object(tool_entry));

    let providers = state
        .config
        .health_providers
        .iter()
        .map(|provider| {
            (
                provider.clone(),
                format!("provider:{provider}"),
                provider_env_var(provider),
            )
        })
        .collect();
    checks.insert("providers".into(), secrets_check("providers", providers));
    let mcp = state
        .config
        .health_mcp_secrets
        .iter()
        .map(|secret| (secret.clone(), format!("extra:{secret}"), secret.clone()))
        .collect();
    checks.insert("mcp".into(), secrets_check("mcp", mcp));

    let ready = checks
        .values()
        .all(|check| check.get("ok") == Some(&Value::Bool(true)));
    Readiness {
        ready,
        checks,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_map_to_their_env_vars() {
        assert_eq!(provider_env_var("openai"), "OPENAI_API_KEY");
        assert_eq!(provider_env_var("anthropic"), "ANTHROPIC_API_KEY");
        assert_eq!(provider_env_var("my-llm"), "MY_LLM_API_KEY");
    }

    #[test]
    fn public_messages_never_carry_details() {
        let text = public_message("run_state_store", ErrorKind::ConnectionRefused);
        assert_eq!(text, "The run state store refuses connections.");
    }
}
