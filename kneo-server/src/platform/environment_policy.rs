//! Environment policies: per-environment gates a spec must pass before it runs or compiles there
//! (`/v1/policies/environment/...`), stored durably, enforced on `POST /v1/runs`,
//! `POST /v1/specs/run` and the compile routes, audited on every change (`policy.changed`), and
//! previewable against the runs already made in that environment.
//!
//! A policy judges the spec as it will deploy (layers applied) through its policy report
//! ([`super::policy_report`]); only `E_ENV_POLICY_*` findings block. A spec that is not a spec at
//! all is left to validation, which answers `400 spec_invalid` instead of a misleading 403.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::PlatformError;
use super::{Platform, audit, layering, policy_report};
use crate::spec::diagnostic::{Diagnostic, Severity};
use crate::store::{EnvironmentPolicyRecord, PageQuery, RunQuery, RunSort, SortOrder};

/// The store lock that serializes policy writes, so a previous policy is never lost between the
/// read and the write of two concurrent `PUT`s.
const WRITE_LOCK: &str = "environment-policies";
const WRITE_LOCK_TTL: Duration = Duration::from_secs(30);

/// Runs of the environment a preview replays at most (the newest first).
const PREVIEW_SCAN_LIMIT: usize = 500;

/// One environment's gates (kneo-serv's `EnvironmentPolicyEnforcement`), every field with its
/// default so a partial `PUT` stores a whole policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentPolicy {
    /// A disabled policy is kept but gates nothing.
    pub enabled: bool,
    /// Every warning of the spec becomes a blocking finding.
    pub fail_on_warnings: bool,
    /// Diagnostic codes that block wherever they occur.
    pub blocked_diagnostic_codes: Vec<String>,
    /// The spec needs an enabled human step in a workflow.
    pub require_human_review: bool,
    /// Agents that include tools must say which permissions they have.
    pub require_tool_permissions: bool,
    /// No agent may have unrestricted tools (shell, file system, open network).
    pub deny_unrestricted_tools: bool,
    /// At least one agent needs a guardrail.
    pub require_guardrails: bool,
}

impl Default for EnvironmentPolicy {
    fn default() -> Self {
        EnvironmentPolicy {
            enabled: true,
            fail_on_warnings: false,
            blocked_diagnostic_codes: Vec::new(),
            require_human_review: false,
            require_tool_permissions: false,
            deny_unrestricted_tools: false,
            require_guardrails: false,
        }
    }
}

impl EnvironmentPolicy {
    /// The policy as stored and returned: every field, in kneo-serv's order.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }

    /// Reads a stored policy; fields a newer writer added are ignored, missing ones defaulted.
    pub fn from_stored(value: &Value) -> EnvironmentPolicy {
        let defaults = EnvironmentPolicy::default().to_json();
        let mut merged = defaults.as_object().cloned().unwrap_or_default();
        if let Some(stored) = value.as_object() {
            for (key, field) in stored {
                if merged.contains_key(key) {
                    merged.insert(key.clone(), field.clone());
                }
            }
        }
        serde_json::from_value(Value::Object(merged)).unwrap_or_default()
    }

    /// The findings that block `document` (already layered) in `environment`.
    pub fn blocking_findings(
        &self,
        environment: &str,
        document: &Value,
        diagnostics: &[Diagnostic],
    ) -> Vec<Diagnostic> {
        if !self.enabled || policy_report::schema_invalid(diagnostics) {
            return Vec::new();
        }
        let report = policy_report::report(document, diagnostics);
        let mut findings = Vec::new();
        for diagnostic in diagnostics {
            let suggestion = diagnostic.suggestion.clone();
            if self.blocked_diagnostic_codes.contains(&diagnostic.code) {
                findings.push(finding(
                    "E_ENV_POLICY_DIAGNOSTIC",
                    format!(
                        "Environment '{environment}' blocks diagnostic {}.",
                        diagnostic.code
                    ),
                    &diagnostic.path,
                    suggestion.clone(),
                ));
            }
            if self.fail_on_warnings && diagnostic.severity == Severity::Warning {
                findings.push(finding(
                    "E_ENV_POLICY_WARNING",
                    format!(
                        "Environment '{environment}' treats warning {} as an error.",
                        diagnostic.code
                    ),
                    &diagnostic.path,
                    suggestion,
                ));
            }
        }
        let human_steps = report["human_review"]["workflow_steps"]
            .as_array()
            .map_or(0, Vec::len);
        if self.require_human_review && human_steps == 0 {
            findings.push(finding(
                "E_ENV_POLICY_HUMAN_REVIEW",
                format!("Environment '{environment}' requires a human approval workflow step."),
                "workflow",
                Some("Add a human step before deployment or disable require_human_review for this environment.".into()),
            ));
        }
        let tool_policies = report["tools"]["agent_policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for item in &tool_policies {
            let agent = item["agent"].as_str().unwrap_or("agent");
            let includes = item["include"].as_array().is_some_and(|i| !i.is_empty());
            if self.require_tool_permissions && includes && item["permissions"].is_null() {
                findings.push(finding(
                    "E_ENV_POLICY_TOOL_PERMISSIONS",
                    format!("Environment '{environment}' requires explicit tool permissions for {agent}."),
                    &format!("{agent}.tools.permissions"),
                    Some("Use tools.include with an explicit permissions object.".into()),
                ));
            }
        }
        for item in &tool_policies {
            let agent = item["agent"].as_str().unwrap_or("agent");
            if self.deny_unrestricted_tools && item["unrestricted"] == json!(true) {
                findings.push(finding(
                    "E_ENV_POLICY_UNRESTRICTED_TOOLS",
                    format!("Environment '{environment}' denies unrestricted tools for {agent}."),
                    &format!("{agent}.tools"),
                    Some(
                        "Restrict network domains and disable shell/filesystem write access."
                            .into(),
                    ),
                ));
            }
        }
        let guarded = report["guardrails"]["agents"]
            .as_array()
            .is_some_and(|agents| agents.iter().any(|a| a["configured"] == json!(true)));
        if self.require_guardrails && !guarded {
            findings.push(finding(
                "E_ENV_POLICY_GUARDRAILS",
                format!("Environment '{environment}' requires at least one guardrail."),
                "agent.guardrails",
                Some("Configure input, output, tool, or workflow guardrails.".into()),
            ));
        }
        findings
    }

    /// Whether this policy (`None`: no policy) blocks the document.
    fn blocks(
        policy: Option<&EnvironmentPolicy>,
        environment: &str,
        document: &Value,
        diagnostics: &[Diagnostic],
    ) -> bool {
        policy.is_some_and(|policy| {
            !policy
                .blocking_findings(environment, document, diagnostics)
                .is_empty()
        })
    }
}

fn finding(code: &str, message: String, path: &str, suggestion: Option<String>) -> Diagnostic {
    let diagnostic = Diagnostic::error(code, path, message);
    match suggestion {
        Some(suggestion) => diagnostic.suggest(suggestion),
        None => diagnostic,
    }
}

/// The names of the fields whose values differ (every field when there was no policy).
fn changed_fields(previous: Option<&Value>, current: &Value) -> Vec<String> {
    let empty = Map::new();
    let current = current.as_object().unwrap_or(&empty);
    let mut fields: Vec<String> = match previous.and_then(Value::as_object) {
        None => current.keys().cloned().collect(),
        Some(previous) => previous
            .keys()
            .chain(current.keys())
            .filter(|key| previous.get(*key) != current.get(*key))
            .cloned()
            .collect(),
    };
    fields.sort();
    fields.dedup();
    fields
}

/// `{field: {from, to}}` for every field the candidate changes (from `null` without a policy).
fn policy_diff(current: Option<&Value>, candidate: &Value) -> Map<String, Value> {
    let mut diff = Map::new();
    if let Some(candidate) = candidate.as_object() {
        for (field, to) in candidate {
            let from = current
                .and_then(|c| c.get(field))
                .cloned()
                .unwrap_or(Value::Null);
            if from != *to {
                diff.insert(field.clone(), json!({"from": from, "to": to}));
            }
        }
    }
    diff
}

/// A stored policy and the one it replaced.
#[derive(Debug, Clone)]
pub struct PolicyChange {
    pub previous: Option<Value>,
    pub current: Value,
}

/// What a candidate policy would change (`POST .../preview`).
#[derive(Debug, Clone)]
pub struct PolicyPreview {
    pub diff: Map<String, Value>,
    pub affected_run_ids: Vec<String>,
    pub newly_blocking: Vec<String>,
    pub runs_evaluated: usize,
}

impl Platform {
    /// Every stored policy, by environment name.
    pub async fn environment_policies(&self) -> Result<Map<String, Value>, PlatformError> {
        let stored = self.stores.runs.list_environment_policies().await?;
        Ok(stored
            .into_iter()
            .map(|record| {
                let policy = EnvironmentPolicy::from_stored(&record.policy).to_json();
                (record.environment, policy)
            })
            .collect())
    }

    /// The stored policy of one environment, if any.
    pub async fn environment_policy(
        &self,
        environment: &str,
    ) -> Result<Option<EnvironmentPolicy>, PlatformError> {
        Ok(self
            .stores
            .runs
            .get_environment_policy(environment)
            .await?
            .map(|record| EnvironmentPolicy::from_stored(&record.policy)))
    }

    /// Stores `policy` for `environment` and records `policy.changed` with both versions.
    pub async fn put_environment_policy(
        &self,
        environment: &str,
        policy: &EnvironmentPolicy,
        actor: &str,
    ) -> Result<PolicyChange, PlatformError> {
        let owner = crate::clock::new_id();
        let store = &self.stores.runs;
        if !store.try_lock(WRITE_LOCK, &owner, WRITE_LOCK_TTL).await? {
            return Err(PlatformError::Locked(WRITE_LOCK.into()));
        }
        let written = self.write_policy(environment, policy, actor).await;
        if let Err(error) = store.unlock(WRITE_LOCK, &owner).await {
            tracing::warn!(target: "kneo_serv.platform", %error, "releasing the environment policy lock failed; it expires by itself");
        }
        written
    }

    async fn write_policy(
        &self,
        environment: &str,
        policy: &EnvironmentPolicy,
        actor: &str,
    ) -> Result<PolicyChange, PlatformError> {
        let store = &self.stores.runs;
        let previous = store
            .get_environment_policy(environment)
            .await?
            .map(|record| EnvironmentPolicy::from_stored(&record.policy).to_json());
        let current = policy.to_json();
        store
            .put_environment_policy(&EnvironmentPolicyRecord {
                environment: environment.to_string(),
                policy: current.clone(),
                updated_at: crate::clock::now_text(),
            })
            .await?;
        let changed = audit::event(
            "policy.changed",
            actor,
            None,
            None,
            json!({
                "surface": "environment_policy_enforcement",
                "environment": environment,
                "previous": previous,
                "current": current,
                "changed_fields": changed_fields(previous.as_ref(), &current),
            }),
        );
        store.record_audit(&[changed]).await?;
        Ok(PolicyChange { previous, current })
    }

    /// `403 environment_policy_blocked` when the stored policy of `environment` blocks the
    /// (layered) document; nothing without an environment or a policy.
    pub async fn enforce_environment_policy(
        &self,
        environment: Option<&str>,
        document: &Value,
        diagnostics: &[Diagnostic],
    ) -> Result<(), PlatformError> {
        let Some(environment) = environment.filter(|e| !e.is_empty()) else {
            return Ok(());
        };
        let Some(policy) = self.environment_policy(environment).await? else {
            return Ok(());
        };
        let findings = policy.blocking_findings(environment, document, diagnostics);
        if findings.is_empty() {
            return Ok(());
        }
        let message = findings
            .iter()
            .map(|d| format!("ERROR {}: {}", d.code, d.message))
            .collect::<Vec<_>>()
            .join("\n");
        Err(PlatformError::EnvironmentPolicyBlocked {
            message,
            diagnostics: findings,
        })
    }

    /// What `candidate` would change for `environment`: the field diff against the stored
    /// policy, and which of the environment's runs (their frozen specs, newest first) it would
    /// block or unblock. Nothing is stored.
    pub async fn preview_environment_policy(
        &self,
        environment: &str,
        candidate: &EnvironmentPolicy,
    ) -> Result<PolicyPreview, PlatformError> {
        let current = self.environment_policy(environment).await?;
        let diff = policy_diff(
            current.as_ref().map(EnvironmentPolicy::to_json).as_ref(),
            &candidate.to_json(),
        );
        let runs = self
            .stores
            .runs
            .list_runs(&RunQuery {
                page: PageQuery {
                    limit: PREVIEW_SCAN_LIMIT,
                    offset: 0,
                    order: SortOrder::Desc,
                    window: PREVIEW_SCAN_LIMIT,
                },
                status: None,
                sort: RunSort::CreatedAt,
                filter: Default::default(),
            })
            .await?;
        let documents: Vec<(String, Value)> = runs
            .items
            .into_iter()
            .filter(|run| {
                run.metadata.get("environment").and_then(Value::as_str) == Some(environment)
            })
            .filter_map(|run| {
                let base = run.metadata.get("frozen_spec")?.get("base")?;
                let layers = layering::frozen_layers(&run.metadata);
                let document = layering::layered(base, &layers).ok()?;
                Some((run.id, document))
            })
            .collect();
        let engine = self.engine.clone();
        let environment = environment.to_string();
        let candidate = candidate.clone();
        tokio::task::spawn_blocking(move || {
            let mut preview = PolicyPreview {
                diff,
                affected_run_ids: Vec::new(),
                newly_blocking: Vec::new(),
                runs_evaluated: documents.len(),
            };
            for (run_id, document) in documents {
                let diagnostics =
                    crate::spec::validate::validate(&document, engine.as_ref()).diagnostics;
                let now = EnvironmentPolicy::blocks(
                    current.as_ref(),
                    &environment,
                    &document,
                    &diagnostics,
                );
                let then = EnvironmentPolicy::blocks(
                    Some(&candidate),
                    &environment,
                    &document,
                    &diagnostics,
                );
                if now != then {
                    preview.affected_run_ids.push(run_id.clone());
                    if then {
                        preview.newly_blocking.push(run_id);
                    }
                }
            }
            preview
        })
        .await
        .map_err(|_| PlatformError::Internal("the policy preview task stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval_spec() -> Value {
        json!({
            "version": "v1",
            "agent": {"name": "a", "model": {"provider": "dummy", "name": "m"}},
            "workflow": {"type": "sequential", "name": "w", "steps": [
                {"id": "ok", "kind": "human", "ref": "boss"}
            ]},
            "components": {"humans": {"boss": {"description": "Approve."}}},
        })
    }

    #[test]
    fn a_partial_policy_takes_the_defaults() {
        let policy = EnvironmentPolicy::from_stored(&json!({"fail_on_warnings": true, "other": 1}));
        assert!(policy.enabled && policy.fail_on_warnings);
        assert_eq!(
            policy.to_json().as_object().map(|o| o.len()),
            Some(7),
            "every field is stored"
        );
    }

    #[test]
    fn human_review_and_guardrails_are_required_when_the_policy_says_so() {
        let policy = EnvironmentPolicy {
            require_human_review: true,
            require_guardrails: true,
            ..EnvironmentPolicy::default()
        };
        let hello = json!({"version": "v1", "agent": {"name": "hello"}});
        let codes: Vec<String> = policy
            .blocking_findings("staging", &hello, &[])
            .into_iter()
            .map(|d| d.code)
            .collect();
        assert_eq!(
            codes,
            ["E_ENV_POLICY_HUMAN_REVIEW", "E_ENV_POLICY_GUARDRAILS"]
        );
        let codes: Vec<String> = policy
            .blocking_findings("staging", &approval_spec(), &[])
            .into_iter()
            .map(|d| d.code)
            .collect();
        assert_eq!(codes, ["E_ENV_POLICY_GUARDRAILS"]);
    }

    #[test]
    fn a_disabled_policy_blocks_nothing() {
        let policy = EnvironmentPolicy {
            enabled: false,
            require_human_review: true,
            ..EnvironmentPolicy::default()
        };
        assert!(
            policy
                .blocking_findings("x", &json!({"agent": {}}), &[])
                .is_empty()
        );
    }

    #[test]
    fn blocked_codes_and_warnings_become_findings() {
        let warning = Diagnostic::warning("W_TOOL_POLICY_UNRESTRICTED", "agent.tools", "open");
        let blocked = EnvironmentPolicy {
            blocked_diagnostic_codes: vec!["W_TOOL_POLICY_UNRESTRICTED".into()],
            ..EnvironmentPolicy::default()
        };
        let findings =
            blocked.blocking_findings("b", &json!({"agent": {}}), std::slice::from_ref(&warning));
        assert_eq!(findings[0].code, "E_ENV_POLICY_DIAGNOSTIC");
        assert_eq!(findings[0].path, "agent.tools");
        let strict = EnvironmentPolicy {
            fail_on_warnings: true,
            ..EnvironmentPolicy::default()
        };
        assert_eq!(
            strict.blocking_findings("s", &json!({"agent": {}}), &[warning])[0].code,
            "E_ENV_POLICY_WARNING"
        );
    }

    #[test]
    fn diffs_and_changed_fields_compare_field_by_field() {
        let stored = EnvironmentPolicy {
            require_human_review: true,
            ..EnvironmentPolicy::default()
        }
        .to_json();
        let relaxed = EnvironmentPolicy::default().to_json();
        assert_eq!(
            Value::Object(policy_diff(Some(&stored), &relaxed)),
            json!({"require_human_review": {"from": true, "to": false}})
        );
        assert_eq!(policy_diff(None, &relaxed).len(), 7);
        assert_eq!(
            changed_fields(Some(&stored), &relaxed),
            ["require_human_review"]
        );
        assert_eq!(changed_fields(None, &relaxed).len(), 7);
    }
}
