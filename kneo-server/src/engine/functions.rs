//! The function registry: Rust functions that `kind: function` steps run, built by factories.
//!
//! kneo-serv imports Python callables by dotted path (`examples.human_functions.draft_report`).
//! kneo registers Rust functions under those names instead: a factory builds the function once
//! per compiled spec, so a function can hold configuration or clients. This is the extension
//! point described in `docs/extending.md`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// What a function step receives.
#[derive(Debug, Clone)]
pub struct FunctionInput {
    /// The previous step's output (the run input for the first step).
    pub text: String,
    pub run_id: String,
    pub step_id: String,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
}

/// Why a function failed; the message ends up in the run's error and the trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FunctionError(pub String);

/// A step function: text in, text out.
#[async_trait]
pub trait StepFunction: Send + Sync {
    async fn call(&self, input: FunctionInput) -> Result<String, FunctionError>;
}

/// Builds a function for one compiled spec.
pub type FunctionFactory = Arc<dyn Fn() -> Arc<dyn StepFunction> + Send + Sync>;

/// Registered functions by implementation name.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    factories: BTreeMap<String, FunctionFactory>,
}

impl FunctionRegistry {
    /// Registers `factory` under `implementation` (replacing an earlier registration).
    pub fn register(&mut self, implementation: &str, factory: FunctionFactory) {
        self.factories.insert(implementation.to_string(), factory);
    }

    /// Registers a plain synchronous text function.
    pub fn register_fn(
        &mut self,
        implementation: &str,
        function: fn(&str) -> Result<String, FunctionError>,
    ) {
        self.register(
            implementation,
            Arc::new(move || Arc::new(PlainFunction(function)) as Arc<dyn StepFunction>),
        );
    }

    pub fn contains(&self, implementation: &str) -> bool {
        self.factories.contains_key(implementation)
    }

    /// Builds the function registered under `implementation`.
    pub fn build(&self, implementation: &str) -> Option<Arc<dyn StepFunction>> {
        self.factories.get(implementation).map(|factory| factory())
    }

    pub fn names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    /// The registry with kneo's built-in and example functions.
    pub fn with_builtins() -> FunctionRegistry {
        let mut registry = FunctionRegistry::default();
        registry.register_fn("examples.human_functions.draft_report", |text| {
            Ok(format!("Draft report for: {text}"))
        });
        registry.register_fn("examples.human_functions.publish_report", |text| {
            Ok(format!("Published: {text}"))
        });
        registry.register_fn("examples.app_functions.flaky_fetch", |_| {
            Err(FunctionError(
                "flaky_fetch: the upstream source did not answer".into(),
            ))
        });
        registry.register_fn("examples.app_functions.cached_fetch", |text| {
            Ok(format!("[cached] {text}"))
        });
        registry.register_fn("examples.app_functions.flaky_enrich", |_| {
            Err(FunctionError(
                "flaky_enrich: the enrichment service refused the request".into(),
            ))
        });
        registry.register_fn("examples.app_functions.build_report", |text| {
            Ok(format!("Report: {text}"))
        });
        registry.register_fn("kneo.builtin.echo", |text| Ok(text.to_string()));
        registry.register_fn("kneo.builtin.uppercase", |text| Ok(text.to_uppercase()));
        registry.register_fn("kneo.builtin.fail", |text| {
            Err(FunctionError(format!("kneo.builtin.fail: {text}")))
        });
        registry.register(
            "kneo.builtin.sleep",
            Arc::new(|| Arc::new(Sleep) as Arc<dyn StepFunction>),
        );
        registry.register(
            "kneo.builtin.fail_first_attempt",
            Arc::new(|| Arc::new(FailFirstAttempt) as Arc<dyn StepFunction>),
        );
        registry.register(
            "kneo.builtin.fail_first_call",
            Arc::new(|| Arc::new(FailFirstCall) as Arc<dyn StepFunction>),
        );
        registry.register(
            "kneo.builtin.record_invocation",
            Arc::new(|| Arc::new(RecordInvocation) as Arc<dyn StepFunction>),
        );
        super::golden_helpers::register_functions(&mut registry);
        registry
    }
}

struct PlainFunction(fn(&str) -> Result<String, FunctionError>);

#[async_trait]
impl StepFunction for PlainFunction {
    async fn call(&self, input: FunctionInput) -> Result<String, FunctionError> {
        (self.0)(&input.text)
    }
}

/// Sleeps for the number of seconds its input names (default 1), then passes the input on.
/// Used to exercise step and run timeouts.
struct Sleep;

#[async_trait]
impl StepFunction for Sleep {
    async fn call(&self, input: FunctionInput) -> Result<String, FunctionError> {
        let seconds = input
            .text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(1.0);
        tokio::time::sleep(Duration::from_secs_f64(seconds.min(86_400.0))).await;
        Ok(input.text)
    }
}

/// Fails on the first attempt and succeeds on retries: shows `max_retries` at work.
struct FailFirstAttempt;

#[async_trait]
impl StepFunction for FailFirstAttempt {
    async fn call(&self, input: FunctionInput) -> Result<String, FunctionError> {
        if input.attempt <= 1 {
            Err(FunctionError(
                "fail_first_attempt: failing attempt 1 on purpose".into(),
            ))
        } else {
            Ok(format!("{} (attempt {})", input.text, input.attempt))
        }
    }
}

/// Fails the first time it runs for a given run and step in this process, then succeeds: shows
/// `POST /v1/runs/{id}/continue` picking a failed run up where it stopped.
struct FailFirstCall;

#[async_trait]
impl StepFunction for FailFirstCall {
    async fn call(&self, input: FunctionInput) -> Result<String, FunctionError> {
        use std::collections::HashSet;
        use std::sync::{Mutex, OnceLock, PoisonError};
        static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        let first = SEEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(format!("{}/{}", input.run_id, input.step_id));
        if first {
            Err(FunctionError(
                "fail_first_call: failing the first call for this run on purpose".into(),
            ))
        } else {
            Ok(input.text)
        }
    }
}

/// Appends `run_id step_id attempt` to the file named by `KNEO_INVOCATION_LOG` and passes the
/// input on: lets crash tests count how often each step really ran.
struct RecordInvocation;

#[async_trait]
impl StepFunction for RecordInvocation {
    async fn call(&self, input: FunctionInput) -> Result<String, FunctionError> {
        let Some(path) = std::env::var_os("KNEO_INVOCATION_LOG") else {
            return Err(FunctionError(
                "record_invocation needs KNEO_INVOCATION_LOG to name a file".into(),
            ));
        };
        let line = format!("{} {} {}\n", input.run_id, input.step_id, input.attempt);
        let written = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(line.as_bytes())?;
            file.sync_data()
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(input.text),
            Ok(Err(error)) => Err(FunctionError(format!(
                "record_invocation could not write its log: {error}"
            ))),
            Err(error) => Err(FunctionError(format!(
                "record_invocation task failed: {error}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str, attempt: u32) -> FunctionInput {
        FunctionInput {
            text: text.into(),
            run_id: "r".into(),
            step_id: "s".into(),
            attempt,
        }
    }

    #[tokio::test]
    async fn example_functions_behave_as_the_golden_recording() {
        let registry = FunctionRegistry::with_builtins();
        let draft = registry
            .build("examples.human_functions.draft_report")
            .expect("registered");
        assert_eq!(
            draft.call(input("Q3 numbers", 1)).await,
            Ok("Draft report for: Q3 numbers".into())
        );
        let publish = registry
            .build("examples.human_functions.publish_report")
            .expect("registered");
        assert_eq!(publish.call(input("x", 1)).await, Ok("Published: x".into()));
    }

    #[tokio::test]
    async fn fail_first_attempt_succeeds_on_retry() {
        let registry = FunctionRegistry::with_builtins();
        let function = registry
            .build("kneo.builtin.fail_first_attempt")
            .expect("registered");
        assert!(function.call(input("x", 1)).await.is_err());
        assert_eq!(
            function.call(input("x", 2)).await,
            Ok("x (attempt 2)".into())
        );
    }

    #[test]
    fn unknown_names_are_not_registered() {
        assert!(!FunctionRegistry::with_builtins().contains("examples.missing"));
    }
}
