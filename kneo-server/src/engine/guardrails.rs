//! Guardrails: checks on the text an agent takes in, gives back, gets from a tool, or passes
//! between workflow steps, and what a failed check does there.
//!
//! Checks ([`GuardrailCheck`]): `regex` (any pattern found), `keyword` (any keyword found,
//! without regard to case), `function` (a function component answers `true`, `false` or
//! `{"passed", "reason", "revised_text"}`) and `agent` (a component agent judges; a reply that
//! starts with the word `PASS` passes, anything else is the reason).
//!
//! What a failed check does, per stage ([`Stage`]), as in kneo-serv 1.2:
//! - `warn` lets the text through (traced);
//! - `redact` replaces a tool result or a step output with a marker;
//! - `revise` replaces the final output or a step output with the check's `revised_text`
//!   (when the check gives one; otherwise it blocks, and on the tool stage it always blocks);
//! - everything else (`block`, `retry`, `escalate`, `human_review`) ends the run with a
//!   [`Violation`]: 422 `guardrail_violation` on a sync run, the run failed with that error.
//!
//! Checks of a stage run in order; a later check sees the text an earlier one rewrote.
//! Violations and rewrites are traced as `guardrail_triggered` events naming the guardrail id;
//! messages name the patterns or keywords, never the text they matched.

use serde_json::{Value, json};

use super::agent::{Failure, StepContext};
pub use super::plan::{GuardrailCheck, GuardrailPlan};
use super::trace::TraceEvent;
use crate::spec::model::GuardrailAction;

/// Where a guardrail checks (kneo-serv's four stages).
pub use crate::spec::model::GuardrailStage as Stage;

/// The marker a `redact` leaves in a tool result.
pub const TOOL_REDACTION: &str = "[redacted by tool result guardrail]";
/// The marker a `redact` leaves in a workflow step's output.
pub const WORKFLOW_REDACTION: &str = "[redacted by workflow guardrail]";

/// The error types a violation leaves on the run, as kneo-serv names them.
pub const GUARDRAIL_VIOLATION: &str = "GuardrailViolation";
pub const TOOL_RESULT_VIOLATION: &str = "ToolResultGuardrailViolation";

/// A tool call refused before it ran (a host outside the permissions' domains).
pub const TOOL_MIDDLEWARE_VIOLATION: &str = "ToolMiddlewareViolation";

/// Whether a failure is a guardrail's verdict (or a refused tool call): it ends the run
/// whatever the step's `max_retries` and `on_error` say.
pub fn is_violation(failure: &Failure) -> bool {
    matches!(
        failure.kind,
        GUARDRAIL_VIOLATION | TOOL_RESULT_VIOLATION | TOOL_MIDDLEWARE_VIOLATION
    )
}

/// A check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    passed: bool,
    reason: Option<String>,
    revised_text: Option<String>,
}

impl Verdict {
    fn pass() -> Verdict {
        Verdict {
            passed: true,
            reason: None,
            revised_text: None,
        }
    }

    fn fail(reason: String) -> Verdict {
        Verdict {
            passed: false,
            reason: Some(reason),
            revised_text: None,
        }
    }
}

/// A Python-style list of strings, as kneo-serv's messages quote patterns and keywords.
fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| {
            let escaped = item.replace('\\', "\\\\").replace('\n', "\\n");
            if item.contains('\'') && !item.contains('"') {
                format!("\"{escaped}\"")
            } else {
                format!("'{}'", escaped.replace('\'', "\\'"))
            }
        })
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// How a function guardrail's answer reads: `true`/`false`, or an object.
fn function_verdict(name: &str, answer: &str) -> Result<Verdict, Failure> {
    let malformed = || {
        Failure::new(
            "function_error",
            format!(
                "guardrail function {name} answered {:?}; it must answer true, false or \
                 {{\"passed\": bool, \"reason\": text, \"revised_text\": text}} (docs/extending.md)",
                super::trace::preview(answer)
            ),
        )
    };
    match serde_json::from_str::<Value>(answer.trim()) {
        Ok(Value::Bool(passed)) => Ok(Verdict {
            passed,
            reason: None,
            revised_text: None,
        }),
        Ok(Value::Object(fields)) => {
            let passed = fields
                .get("passed")
                .and_then(Value::as_bool)
                .ok_or_else(malformed)?;
            let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
            Ok(Verdict {
                passed,
                reason: text("reason"),
                revised_text: text("revised_text"),
            })
        }
        _ => Err(malformed()),
    }
}

/// The prompt an agent guardrail's judge gets.
fn judge_prompt(payload: &str) -> String {
    format!(
        "Review the following payload for policy, safety, or factuality issues.\n\
         Reply with the single word PASS as the first word if acceptable. \
         If not acceptable, do NOT begin with PASS — explain the issue and \
         provide a revision if possible.\n\nPayload:\n{payload}"
    )
}

/// Whether a judge's reply passes: the word `PASS` first (not `Password…`).
fn judge_passes(reply: &str) -> bool {
    let reply = reply.trim_start();
    reply
        .get(..4)
        .is_some_and(|head| head.eq_ignore_ascii_case("pass"))
        && !reply[4..]
            .chars()
            .next()
            .is_some_and(|next| next.is_alphanumeric() || next == '_')
}

impl GuardrailCheck {
    async fn verdict(&self, text: &str, context: &StepContext) -> Result<Verdict, Failure> {
        match self {
            GuardrailCheck::Regex(patterns) => {
                let matched: Vec<&str> = patterns
                    .iter()
                    .filter(|regex| regex.is_match(text))
                    .map(regex::Regex::as_str)
                    .collect();
                Ok(if matched.is_empty() {
                    Verdict::pass()
                } else {
                    Verdict::fail(format!(
                        "Regex guardrail matched: {}",
                        quoted_list(&matched)
                    ))
                })
            }
            GuardrailCheck::Keyword(keywords) => {
                let haystack = text.to_lowercase();
                let found: Vec<&str> = keywords
                    .iter()
                    .filter(|keyword| haystack.contains(&keyword.to_lowercase()))
                    .map(String::as_str)
                    .collect();
                Ok(if found.is_empty() {
                    Verdict::pass()
                } else {
                    Verdict::fail(format!("Blocked keywords found: {}", quoted_list(&found)))
                })
            }
            GuardrailCheck::Function(function) => {
                let answer = super::component::call(function, text, context).await?;
                function_verdict(super::component::name(function), &answer)
            }
            GuardrailCheck::Agent(judge) => {
                let judge_context = context.detached();
                let reply = super::agent::run_agent(judge, &judge_prompt(text), &judge_context)
                    .await?
                    .text;
                context.events.extend(judge_context.events.drain());
                let reply = reply.trim().to_string();
                Ok(if judge_passes(&reply) {
                    Verdict::pass()
                } else {
                    Verdict::fail(reply)
                })
            }
        }
    }
}

/// What applying a stage's guardrails left.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The text to go on with (rewritten by `redact` or `revise`).
    pub text: String,
    /// Ids of the guardrails that revised the text (kneo-serv's `metadata.guardrails`).
    pub revised_by: Vec<String>,
}

/// The violation message kneo-serv gives for `id` failing with `reason` at `stage`.
fn violation(stage: Stage, id: &str, reason: Option<&str>) -> Failure {
    let reason = reason.unwrap_or("None");
    let (kind, message) = match stage {
        Stage::Tool => (
            TOOL_RESULT_VIOLATION,
            format!("Tool result guardrail '{id}' failed: {reason}"),
        ),
        _ => (
            GUARDRAIL_VIOLATION,
            format!("Guardrail '{id}' failed: {reason}"),
        ),
    };
    let mut failure = Failure::new(kind, message);
    failure.guardrail = Some(id.to_string());
    failure
}

/// Runs `checks` of `stage` over `text` in order; `Err` is the violation that ends the run.
pub async fn apply(
    stage: Stage,
    checks: &[GuardrailPlan],
    text: &str,
    context: &StepContext,
) -> Result<Applied, Failure> {
    let mut applied = Applied {
        text: text.to_string(),
        revised_by: Vec::new(),
    };
    for guardrail in checks {
        let verdict = guardrail.check.verdict(&applied.text, context).await?;
        if verdict.passed {
            continue;
        }
        let outcome = match (stage, guardrail.action) {
            (_, GuardrailAction::Warn) => "warned",
            (Stage::Tool, GuardrailAction::Redact) => {
                applied.text = TOOL_REDACTION.to_string();
                "redacted"
            }
            (Stage::Workflow, GuardrailAction::Redact) => {
                applied.text = WORKFLOW_REDACTION.to_string();
                "redacted"
            }
            (Stage::Output | Stage::Workflow, GuardrailAction::Revise)
                if verdict.revised_text.is_some() =>
            {
                applied.text = verdict.revised_text.clone().unwrap_or_default();
                applied.revised_by.push(guardrail.id.clone());
                "revised"
            }
            _ => "blocked",
        };
        let failure = (outcome == "blocked")
            .then(|| violation(stage, &guardrail.id, verdict.reason.as_deref()));
        let mut event = TraceEvent::new("guardrail_triggered", &context.run_id, None)
            .with("step_id", json!(context.step_id))
            .with("guardrail_id", guardrail.id.clone())
            .metadata(json!({
                "stage": stage.as_str(),
                "action": guardrail.action.as_str(),
                "outcome": outcome,
            }));
        if let Some(failure) = &failure {
            event = event.error(failure.kind, &failure.message);
        }
        context.events.push(event);
        if outcome == "warned" {
            tracing::warn!(
                target: "kneo_serv.engine",
                run_id = %context.run_id,
                guardrail_id = %guardrail.id,
                stage = stage.as_str(),
                reason = %crate::redact::redacted_text(verdict.reason.as_deref().unwrap_or_default()),
                "guardrail warned"
            );
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> StepContext {
        StepContext::new("run-1", Some("step".into()), 1)
    }

    fn keyword(id: &str, action: GuardrailAction, words: &[&str]) -> GuardrailPlan {
        GuardrailPlan {
            id: id.into(),
            stage: Stage::Input,
            action,
            check: GuardrailCheck::Keyword(words.iter().map(|w| w.to_string()).collect()),
        }
    }

    #[tokio::test]
    async fn a_block_names_the_guardrail_and_the_pattern_never_the_text() {
        let checks = [GuardrailPlan {
            id: "regex-check".into(),
            stage: Stage::Input,
            action: GuardrailAction::Block,
            check: GuardrailCheck::Regex(vec![
                regex::Regex::new("forb[a-z]+en").expect("compiles"),
            ]),
        }];
        let context = context();
        let failure = apply(Stage::Input, &checks, "the forbidden thing", &context)
            .await
            .expect_err("blocks");
        assert_eq!(failure.kind, GUARDRAIL_VIOLATION);
        assert_eq!(
            failure.message,
            "Guardrail 'regex-check' failed: Regex guardrail matched: ['forb[a-z]+en']"
        );
        assert_eq!(failure.guardrail.as_deref(), Some("regex-check"));
        let events = context.events.drain();
        let event = events[0].clone().build();
        assert_eq!(event["type"], "guardrail_triggered");
        assert_eq!(event["guardrail_id"], "regex-check");
        assert!(!event.to_string().contains("forbidden thing"));
        let clean = apply(Stage::Input, &checks, "all fine", &context)
            .await
            .expect("passes");
        assert_eq!(clean.text, "all fine");
    }

    #[tokio::test]
    async fn per_stage_actions_follow_kneo_serv() {
        let context = context();
        let redact = [keyword("kw", GuardrailAction::Redact, &["Secret"])];
        let tool = apply(Stage::Tool, &redact, "a secret here", &context)
            .await
            .expect("redacts");
        assert_eq!(tool.text, TOOL_REDACTION);
        let step = apply(Stage::Workflow, &redact, "a secret here", &context)
            .await
            .expect("redacts");
        assert_eq!(step.text, WORKFLOW_REDACTION);
        // A keyword check gives no revised text, so revise blocks; on the tool stage too.
        let revise = [keyword("kw", GuardrailAction::Revise, &["secret"])];
        for stage in [Stage::Output, Stage::Tool, Stage::Workflow] {
            let failure = apply(stage, &revise, "secret", &context)
                .await
                .expect_err("blocks");
            assert!(is_violation(&failure));
        }
        let tool_failure = apply(Stage::Tool, &revise, "secret", &context)
            .await
            .expect_err("blocks");
        assert_eq!(tool_failure.kind, TOOL_RESULT_VIOLATION);
        assert_eq!(
            tool_failure.message,
            "Tool result guardrail 'kw' failed: Blocked keywords found: ['secret']"
        );
        let warn = [
            keyword("first", GuardrailAction::Warn, &["secret"]),
            keyword("second", GuardrailAction::Escalate, &["secret"]),
        ];
        let failure = apply(Stage::Input, &warn, "secret", &context)
            .await
            .expect_err("the second blocks");
        assert_eq!(failure.guardrail.as_deref(), Some("second"));
    }

    #[test]
    fn function_answers_read_as_verdicts() {
        assert_eq!(function_verdict("f", "true"), Ok(Verdict::pass()));
        let verdict = function_verdict(
            "f",
            r#"{"passed": false, "reason": "nope", "revised_text": "fixed"}"#,
        )
        .expect("reads");
        assert!(!verdict.passed);
        assert_eq!(verdict.revised_text.as_deref(), Some("fixed"));
        let error = function_verdict("guard", "maybe").expect_err("malformed");
        assert!(
            error.message.contains("guard answered"),
            "{}",
            error.message
        );
    }

    #[test]
    fn judges_pass_on_the_word_pass_only() {
        assert!(judge_passes("PASS - looks fine"));
        assert!(judge_passes("pass."));
        assert!(judge_passes("PASS"));
        assert!(!judge_passes("Password leak detected"));
        assert!(!judge_passes("The payload fails"));
        assert_eq!(quoted_list(&["it's", "a"]), "[\"it's\", 'a']");
    }
}
