//! The credential inventory (`GET /v1/security/credentials`): which secrets the service can see,
//! by name and environment variable, present or missing. Never a value: a present secret is
//! reported as `[REDACTED]`.

use serde_json::{Map, Value, json};

use super::{Platform, audit};
use crate::redact::MARKER;

/// Providers listed when the caller names none, with the variable each reads.
const DEFAULT_PROVIDERS: [(&str, &str); 5] = [
    ("openai", "OPENAI_API_KEY"),
    ("openai-agents", "OPENAI_API_KEY"),
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("google", "GOOGLE_API_KEY"),
    ("google-adk", "GOOGLE_API_KEY"),
];

/// The variables that hold the service's own API keys.
const SERVICE_TOKENS: [&str; 3] = [
    "KNEO_SERV_API_KEY",
    "KNEO_SERV_API_KEYS",
    "KNEO_SERV_ADMIN_API_KEY",
];

/// What the caller asked for; `None` lists take the defaults.
#[derive(Debug, Clone, Default)]
pub struct InventoryRequest {
    pub providers: Option<Vec<String>>,
    pub extras: Option<Vec<String>>,
    pub include_service_tokens: bool,
}

/// The variable a provider's key is read from: the known ones, else `<PROVIDER>_API_KEY`.
pub fn provider_variable(provider: &str) -> String {
    let normalized = provider.trim().to_ascii_lowercase();
    DEFAULT_PROVIDERS
        .iter()
        .find(|(name, _)| *name == normalized)
        .map(|(_, variable)| variable.to_string())
        .unwrap_or_else(|| {
            format!(
                "{}_API_KEY",
                normalized.to_ascii_uppercase().replace('-', "_")
            )
        })
}

/// One entry: `{name, env_var, present, value, status, expires_at, last_checked}`.
fn entry(name: String, variable: &str) -> Value {
    let present = std::env::var_os(variable).is_some_and(|value| !value.is_empty());
    json!({
        "name": name,
        "env_var": variable,
        "present": present,
        "value": if present { Some(MARKER) } else { None },
        "status": if present { "present" } else { "missing" },
        "expires_at": null,
        "last_checked": null,
    })
}

fn present_names(section: &Map<String, Value>) -> Vec<String> {
    section
        .iter()
        .filter(|(_, entry)| entry["present"] == json!(true))
        .map(|(name, _)| name.clone())
        .collect()
}

impl Platform {
    /// The inventory, audited as `credential.inventory_accessed` (names and presence only).
    pub async fn credential_inventory(&self, request: &InventoryRequest, actor: &str) -> Value {
        let providers: Vec<String> = request.providers.clone().unwrap_or_else(|| {
            DEFAULT_PROVIDERS
                .iter()
                .map(|(name, _)| name.to_string())
                .collect()
        });
        let provider_section: Map<String, Value> = providers
            .iter()
            .map(|name| {
                let variable = provider_variable(name);
                (name.clone(), entry(format!("provider:{name}"), &variable))
            })
            .collect();
        let extra_section: Map<String, Value> = request
            .extras
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|name| (name.clone(), entry(format!("extra:{name}"), name)))
            .collect();
        let service_section: Map<String, Value> = if request.include_service_tokens {
            SERVICE_TOKENS
                .iter()
                .map(|variable| {
                    (
                        variable.to_string(),
                        entry(format!("service:{variable}"), variable),
                    )
                })
                .collect()
        } else {
            Map::new()
        };
        let event = audit::event(
            "credential.inventory_accessed",
            actor,
            None,
            None,
            json!({
                "providers_requested": request.providers,
                "extras_requested": request.extras,
                "include_service_references": request.include_service_tokens,
                "provider_count": provider_section.len(),
                "extra_count": extra_section.len(),
                "service_reference_count": service_section.len(),
                "providers_present": present_names(&provider_section),
                "extras_present": present_names(&extra_section),
                "service_references_present": present_names(&service_section),
            }),
        );
        if let Err(error) = self.stores.runs.record_audit(&[event]).await {
            tracing::warn!(target: "kneo_serv.platform", %error, "recording credential.inventory_accessed failed");
        }
        json!({
            "providers": provider_section,
            "extra": extra_section,
            "service_tokens": service_section,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_variables_follow_the_known_table_then_the_naming_rule() {
        assert_eq!(provider_variable("openai-agents"), "OPENAI_API_KEY");
        assert_eq!(provider_variable(" Google "), "GOOGLE_API_KEY");
        assert_eq!(provider_variable("my-llm"), "MY_LLM_API_KEY");
    }

    #[test]
    fn an_entry_never_holds_the_value() {
        let entry = entry("extra:PATH".into(), "PATH");
        assert_eq!(entry["present"], true);
        assert_eq!(entry["value"], MARKER);
        assert_eq!(entry["status"], "present");
        let missing = super::entry("extra:X".into(), "KNEO_TEST_SURELY_UNSET_VARIABLE");
        assert_eq!(missing["value"], Value::Null);
        assert_eq!(missing["status"], "missing");
    }
}
