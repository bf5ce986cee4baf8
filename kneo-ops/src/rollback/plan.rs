//! Deciding whether to roll back, and to what: a pure function from the service's history
//! (service events) and the archives at hand to a plan with its reasons.
//!
//! The rule of the runbook ("When to roll back"): only when the trouble began right after a
//! deploy. So the plan finds the deploy (the first start of the running version after a start
//! of another one), the first failure after it (a readiness turning false, or a burst of 5xx),
//! and refuses when the service was already failing before the deploy, or when that first
//! failure is a dependency (a store, a secret, a registry): a rollback does not cure those.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

/// One service event, as `GET /v1/service/events` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub version: String,
    pub details: Value,
}

/// A backup archive that could be restored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupCandidate {
    pub path: String,
    pub created_at: DateTime<Utc>,
    /// The server version recorded in the archive's manifest.
    pub server_version: Option<String>,
    pub schema_version: i64,
    /// A `kneo-ops verify --deep` record for this exact archive says it restores.
    pub verified: bool,
}

/// The deploy the plan is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    pub previous_version: String,
    pub running_version: String,
    pub at: DateTime<Utc>,
}

/// What the plan concludes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Roll back: the steps are safe to run.
    RollBack,
    /// No start of another version is recorded: there is no deploy to undo.
    NoDeploy { reason: String },
    /// Nothing failed since the deploy.
    NoFailureSinceDeploy { reason: String },
    /// The service was already failing before the deploy: diagnose instead of rolling back.
    DeployNotTheTrigger { reason: String },
    /// The first failure after the deploy is a dependency, which the runbook section fixes and a
    /// rollback does not.
    DependencyFailure {
        reason: String,
        check: String,
        kind: String,
        section: String,
    },
    /// No usable backup from the previous version, taken before the deploy.
    NoBackup { reason: String },
}

/// A step of the rollback, with the command that performs it (if any).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub title: String,
    pub command: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub deploy: Option<Deploy>,
    pub first_failure: Option<FailureSeen>,
    pub backup: Option<BackupCandidate>,
    /// Why other archives were not chosen.
    pub rejected_backups: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

/// The first failure after the deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureSeen {
    pub at: DateTime<Utc>,
    pub what: String,
    /// Time from the deploy to this failure.
    pub after_deploy_seconds: i64,
}

/// How the steps are carried out.
#[derive(Debug, Clone, Default)]
pub struct StepCommands {
    pub stop: Option<String>,
    pub start: Option<String>,
    /// What `kneo-ops restore` gets as its target, e.g. `--state-dir .kneo`.
    pub restore_target: String,
    pub url: String,
}

/// A 5xx burst this close before a deploy means trouble had started already.
const QUIET_BEFORE_DEPLOY: i64 = 30;

fn is_start(event: &HistoryEvent) -> bool {
    event.event_type == "service.started"
}

/// A failure signal: readiness turning false, or a burst of 5xx answers.
fn failure(event: &HistoryEvent) -> Option<String> {
    match event.event_type.as_str() {
        "readiness.changed" if event.details.get("ready") == Some(&Value::Bool(false)) => {
            let failing: Vec<String> = event
                .details
                .get("failing")
                .and_then(Value::as_object)
                .map(|checks| {
                    checks
                        .iter()
                        .map(|(check, kind)| {
                            format!("{check} ({})", kind.as_str().unwrap_or("failed"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(format!(
                "readiness failed: {}",
                if failing.is_empty() {
                    "unknown checks".into()
                } else {
                    failing.join(", ")
                }
            ))
        }
        "http.5xx_burst" => {
            let count = event
                .details
                .get("count")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Some(format!("a burst of {count} 5xx answers"))
        }
        _ => None,
    }
}

/// Checks whose failure is a dependency's (a store, a secret, a registry), not the new version's.
const DEPENDENCY_CHECKS: [&str; 6] = [
    "run_state_store",
    "continuation_store",
    "providers",
    "mcp",
    "tool_registry",
    "runtime_registry",
];

/// The failing dependency of a readiness failure: `(check, kind)`. A store whose schema is
/// newer than the binary is the version's doing (§ 2.7), not a dependency's.
fn failing_dependency(event: &HistoryEvent) -> Option<(String, String)> {
    if event.event_type != "readiness.changed"
        || event.details.get("ready") != Some(&Value::Bool(false))
    {
        return None;
    }
    let failing = event.details.get("failing")?.as_object()?;
    DEPENDENCY_CHECKS.iter().find_map(|check| {
        let kind = failing.get(*check)?.as_str().unwrap_or("failed");
        (kind != "schema_too_new").then(|| (check.to_string(), kind.to_string()))
    })
}

/// Finds the deploy: the first start of the running version after the last start of another.
pub fn find_deploy(events: &[HistoryEvent]) -> Result<Deploy, String> {
    let starts: Vec<&HistoryEvent> = events.iter().filter(|e| is_start(e)).collect();
    let Some(last) = starts.last() else {
        return Err("no service start is recorded in the service events".into());
    };
    let running = last.version.clone();
    let Some(previous_index) = starts.iter().rposition(|start| start.version != running) else {
        return Err(format!(
            "every recorded start ran version {running}: nothing was deployed over another version"
        ));
    };
    let deploy_start = starts[previous_index + 1];
    Ok(Deploy {
        previous_version: starts[previous_index].version.clone(),
        running_version: running,
        at: deploy_start.at,
    })
}

/// Builds the plan from the history (oldest first is not required) and the archives at hand.
pub fn plan(
    history: &[HistoryEvent],
    backups: &[BackupCandidate],
    commands: &StepCommands,
) -> Plan {
    let mut events = history.to_vec();
    events.sort_by_key(|event| event.at);
    let mut plan = Plan {
        verdict: Verdict::RollBack,
        deploy: None,
        first_failure: None,
        backup: None,
        rejected_backups: Vec::new(),
        steps: Vec::new(),
    };
    let deploy = match find_deploy(&events) {
        Ok(deploy) => deploy,
        Err(reason) => {
            plan.verdict = Verdict::NoDeploy { reason };
            return plan;
        }
    };
    plan.deploy = Some(deploy.clone());

    // Was the service already in trouble when the deploy happened? Then the deploy is probably
    // not the trigger. The plan still names a backup and the steps, for `run --force`.
    let before: Vec<&HistoryEvent> = events.iter().filter(|e| e.at < deploy.at).collect();
    let last_readiness = before
        .iter()
        .rev()
        .find(|e| e.event_type == "readiness.changed");
    let quiet_since = deploy.at - Duration::minutes(QUIET_BEFORE_DEPLOY);
    let burst_before = before
        .iter()
        .rev()
        .find(|e| e.event_type == "http.5xx_burst" && e.at >= quiet_since);
    if let Some(event) =
        last_readiness.filter(|e| e.details.get("ready") == Some(&Value::Bool(false)))
    {
        plan.verdict = Verdict::DeployNotTheTrigger {
            reason: format!(
                "the service was already failing before the deploy at {}: {} since {} (and not recovered before the deploy); \
                 the deploy is probably not the trigger — diagnose with kneo-ops triage first",
                deploy.at.to_rfc3339(),
                failure(event).unwrap_or_default(),
                event.at.to_rfc3339()
            ),
        };
    } else if let Some(event) = burst_before {
        plan.verdict = Verdict::DeployNotTheTrigger {
            reason: format!(
                "{} at {}, within {QUIET_BEFORE_DEPLOY} minutes before the deploy at {}: the deploy is probably not the trigger",
                failure(event).unwrap_or_default(),
                event.at.to_rfc3339(),
                deploy.at.to_rfc3339()
            ),
        };
    }
    match events
        .iter()
        .filter(|e| e.at >= deploy.at)
        .find_map(|e| failure(e).map(|what| (e, what)))
    {
        Some((event, what)) => {
            let at = event.at;
            plan.first_failure = Some(FailureSeen {
                at,
                what,
                after_deploy_seconds: (at - deploy.at).num_seconds(),
            });
            if plan.verdict == Verdict::RollBack
                && let Some((check, kind)) = failing_dependency(event)
            {
                let section = kneo_triage::matrix::runbook_section(
                    &check,
                    Some(&kind),
                    kneo_triage::matrix::Store::Unknown,
                )
                .to_string();
                plan.verdict = Verdict::DependencyFailure {
                    reason: format!(
                        "the first failure after the deploy is a dependency: {check} failed with {kind} at {}; a rollback \
                         does not cure a dependency, follow runbook § {section} instead (incident_response.md, \"When to roll back\")",
                        at.to_rfc3339()
                    ),
                    check,
                    kind,
                    section,
                };
            }
        }
        None if plan.verdict == Verdict::RollBack => {
            plan.verdict = Verdict::NoFailureSinceDeploy {
                reason: format!(
                    "no readiness failure or 5xx burst is recorded since the deploy of {} at {}",
                    deploy.running_version,
                    deploy.at.to_rfc3339()
                ),
            };
        }
        None => {}
    }

    let mut usable: Vec<&BackupCandidate> = Vec::new();
    for backup in backups {
        let rejection =
            if backup.server_version.as_deref() != Some(deploy.previous_version.as_str()) {
                Some(format!(
                    "taken on version {}, not the previous version {}",
                    backup.server_version.as_deref().unwrap_or("unknown"),
                    deploy.previous_version
                ))
            } else if backup.created_at > deploy.at {
                Some(format!(
                    "taken at {}, after the deploy at {}",
                    backup.created_at.to_rfc3339(),
                    deploy.at.to_rfc3339()
                ))
            } else if !backup.verified {
                Some("not verified by restoring it (run kneo-ops verify --deep on it)".into())
            } else {
                None
            };
        match rejection {
            Some(reason) => plan.rejected_backups.push((backup.path.clone(), reason)),
            None => usable.push(backup),
        }
    }
    let Some(chosen) = usable.into_iter().max_by_key(|backup| backup.created_at) else {
        if plan.verdict != Verdict::RollBack {
            return plan;
        }
        plan.verdict = Verdict::NoBackup {
            reason: format!(
                "no verified backup taken on version {} before the deploy at {} was found",
                deploy.previous_version,
                deploy.at.to_rfc3339()
            ),
        };
        return plan;
    };
    plan.backup = Some(chosen.clone());
    plan.steps = vec![
        Step {
            title: format!("Stop the service (version {})", deploy.running_version),
            command: commands.stop.clone(),
        },
        Step {
            title: format!(
                "Restore {} (taken {} on version {})",
                chosen.path,
                chosen.created_at.to_rfc3339(),
                deploy.previous_version
            ),
            command: Some(format!(
                "kneo-ops restore {} {} --force",
                chosen.path, commands.restore_target
            )),
        },
        Step {
            title: format!("Start the previous version {}", deploy.previous_version),
            command: commands.start.clone(),
        },
        Step {
            title: format!(
                "Verify that {}/readyz answers 200 and /healthz reports {}",
                commands.url, deploy.previous_version
            ),
            command: None,
        },
    ];
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
            + Duration::minutes(minutes)
    }

    fn event(kind: &str, minutes: i64, version: &str, details: Value) -> HistoryEvent {
        HistoryEvent {
            event_type: kind.into(),
            at: at(minutes),
            version: version.into(),
            details,
        }
    }

    fn backup(path: &str, minutes: i64, version: &str, verified: bool) -> BackupCandidate {
        BackupCandidate {
            path: path.into(),
            created_at: at(minutes),
            server_version: Some(version.into()),
            schema_version: 1,
            verified,
        }
    }

    fn upgrade_that_broke() -> Vec<HistoryEvent> {
        vec![
            event("service.started", 0, "1.0.0", json!({})),
            event("readiness.changed", 1, "1.0.0", json!({"ready": true})),
            event("service.started", 60, "1.1.0", json!({})),
            event(
                "readiness.changed",
                61,
                "1.1.0",
                json!({"ready": false, "failing": {"run_state_store": "schema_too_new"}}),
            ),
        ]
    }

    #[test]
    fn a_failure_right_after_a_deploy_rolls_back_to_the_newest_verified_backup_before_it() {
        let backups = [
            backup("old.tar.gz", 10, "1.0.0", true),
            backup("newest-before.tar.gz", 50, "1.0.0", true),
            backup("unverified.tar.gz", 55, "1.0.0", false),
            backup("after.tar.gz", 70, "1.0.0", true),
            backup("other-version.tar.gz", 58, "0.9.0", true),
        ];
        let commands = StepCommands {
            stop: Some("systemctl stop kneo".into()),
            start: Some("systemctl start kneo".into()),
            restore_target: "--state-dir .kneo".into(),
            url: "http://x".into(),
        };
        let plan = plan(&upgrade_that_broke(), &backups, &commands);
        assert_eq!(plan.verdict, Verdict::RollBack);
        assert_eq!(
            plan.backup.as_ref().map(|b| b.path.as_str()),
            Some("newest-before.tar.gz")
        );
        let deploy = plan.deploy.expect("deploy");
        assert_eq!(
            (
                deploy.previous_version.as_str(),
                deploy.running_version.as_str()
            ),
            ("1.0.0", "1.1.0")
        );
        assert_eq!(
            plan.first_failure.expect("failure").after_deploy_seconds,
            60
        );
        assert_eq!(plan.rejected_backups.len(), 3);
        assert_eq!(plan.steps.len(), 4);
        assert_eq!(
            plan.steps[0].command.as_deref(),
            Some("systemctl stop kneo")
        );
        assert!(
            plan.steps[1]
                .command
                .as_deref()
                .unwrap_or_default()
                .contains("newest-before.tar.gz")
        );
    }

    #[test]
    fn failures_that_began_before_the_deploy_stop_the_plan() {
        let mut history = upgrade_that_broke();
        history.push(event(
            "readiness.changed",
            30,
            "1.0.0",
            json!({"ready": false, "failing": {"providers": "missing_secret"}}),
        ));
        let plan = plan(
            &history,
            &[backup("b.tar.gz", 20, "1.0.0", true)],
            &StepCommands::default(),
        );
        assert!(
            matches!(plan.verdict, Verdict::DeployNotTheTrigger { .. }),
            "{:?}",
            plan.verdict
        );
        // Refused, but `run --force` still has a backup and steps to carry out.
        assert_eq!(
            plan.backup.as_ref().map(|b| b.path.as_str()),
            Some("b.tar.gz")
        );
        assert_eq!(plan.steps.len(), 4);
    }

    #[test]
    fn a_dependency_failing_after_the_deploy_is_not_a_reason_to_roll_back() {
        let history = vec![
            event("service.started", 0, "1.0.0", json!({})),
            event("service.started", 60, "1.1.0", json!({})),
            event(
                "readiness.changed",
                61,
                "1.1.0",
                json!({"ready": false, "failing": {"providers": "missing_secret"}}),
            ),
        ];
        let plan = plan(
            &history,
            &[backup("b.tar.gz", 20, "1.0.0", true)],
            &StepCommands::default(),
        );
        match &plan.verdict {
            Verdict::DependencyFailure {
                reason,
                check,
                kind,
                section,
            } => {
                assert_eq!(
                    (check.as_str(), kind.as_str(), section.as_str()),
                    ("providers", "missing_secret", "3.2")
                );
                assert!(reason.contains("runbook § 3.2"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plan.steps.len(), 4, "--force still has the steps");

        for (failing, dependency) in [
            (json!({"run_state_store": "connection_refused"}), true),
            (
                json!({"continuation_store": "not_found", "queue": "timeout"}),
                true,
            ),
            (json!({"mcp": "missing_secret"}), true),
            (json!({"run_state_store": "schema_too_new"}), false),
            (json!({"queue": "timeout"}), false),
        ] {
            let mut history = history.clone();
            history[2] = event(
                "readiness.changed",
                61,
                "1.1.0",
                json!({"ready": false, "failing": failing.clone()}),
            );
            let verdict = super::plan(
                &history,
                &[backup("b.tar.gz", 20, "1.0.0", true)],
                &StepCommands::default(),
            )
            .verdict;
            assert_eq!(
                matches!(verdict, Verdict::DependencyFailure { .. }),
                dependency,
                "{failing}: {verdict:?}"
            );
        }
        let mut burst = history.clone();
        burst[2] = event("http.5xx_burst", 61, "1.1.0", json!({"count": 40}));
        assert_eq!(
            super::plan(
                &burst,
                &[backup("b.tar.gz", 20, "1.0.0", true)],
                &StepCommands::default()
            )
            .verdict,
            Verdict::RollBack,
            "5xx answers that start with the new version are its doing"
        );
    }

    #[test]
    fn a_5xx_burst_shortly_before_the_deploy_stops_the_plan() {
        let mut history = upgrade_that_broke();
        history.push(event("http.5xx_burst", 45, "1.0.0", json!({"count": 12})));
        let plan = plan(
            &history,
            &[backup("b.tar.gz", 20, "1.0.0", true)],
            &StepCommands::default(),
        );
        assert!(matches!(plan.verdict, Verdict::DeployNotTheTrigger { .. }));
    }

    #[test]
    fn without_another_version_there_is_no_deploy() {
        let history = vec![
            event("service.started", 0, "1.1.0", json!({})),
            event("service.started", 5, "1.1.0", json!({})),
        ];
        assert!(matches!(
            plan(&history, &[], &StepCommands::default()).verdict,
            Verdict::NoDeploy { .. }
        ));
    }

    #[test]
    fn no_failure_since_the_deploy_means_nothing_to_undo() {
        let history = vec![
            event("service.started", 0, "1.0.0", json!({})),
            event("service.started", 60, "1.1.0", json!({})),
        ];
        assert!(matches!(
            plan(&history, &[], &StepCommands::default()).verdict,
            Verdict::NoFailureSinceDeploy { .. }
        ));
        let with_backup = plan(
            &history,
            &[backup("b.tar.gz", 20, "1.0.0", true)],
            &StepCommands::default(),
        );
        assert!(matches!(
            with_backup.verdict,
            Verdict::NoFailureSinceDeploy { .. }
        ));
        assert!(with_backup.backup.is_some(), "--force can still use it");
    }

    #[test]
    fn no_backup_of_the_previous_version_is_said_so() {
        let plan = plan(
            &upgrade_that_broke(),
            &[backup("x.tar.gz", 70, "1.1.0", true)],
            &StepCommands::default(),
        );
        assert!(matches!(plan.verdict, Verdict::NoBackup { .. }));
        assert_eq!(plan.rejected_backups.len(), 1);
    }
}
