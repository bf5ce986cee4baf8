//! Model providers: what an agent step calls to turn a prompt into an answer.
//!
//! `dummy` is deterministic and needs no credentials (`Final answer: <input>`), which is what the
//! offline specs and the golden recordings use.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

/// One chat message of a run's thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
    pub name: Option<String>,
}

impl Message {
    /// The wire shape kneo-serv stores in `messages`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "role": self.role,
            "content": self.content,
            "name": self.name,
            "tool_call_id": null,
            "metadata": {"tool_calls": []},
        })
    }
}

/// What a provider is asked.
#[derive(Debug, Clone)]
pub struct Completion {
    pub model: String,
    pub system_prompt: Option<String>,
    pub messages: Vec<Message>,
}

/// What a provider answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// A secret the provider needs is not set (runbook § 3.1).
    #[error(
        "MissingSecretError: provider {provider} needs the environment variable {env_var}, which is not set (runbook § 3.1)"
    )]
    MissingSecret { provider: String, env_var: String },
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// The runtime name kneo-serv reports, e.g. `simple@dummy`.
    fn runtime_name(&self) -> String;
    async fn complete(&self, request: Completion) -> Result<Answer, ProviderError>;
}

/// The deterministic in-process provider.
pub struct DummyProvider;

#[async_trait]
impl Provider for DummyProvider {
    fn runtime_name(&self) -> String {
        "simple@dummy".into()
    }

    async fn complete(&self, request: Completion) -> Result<Answer, ProviderError> {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == "user")
            .or(request.messages.last())
            .map(|message| message.content.clone())
            .unwrap_or_default();
        Ok(Answer {
            text: format!("Final answer: {last}"),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}

/// The provider a spec's `model.provider` names, or why there is none.
pub fn provider_for(name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
    match name {
        "dummy" => Ok(Arc::new(DummyProvider)),
        other => Err(ProviderError::Failed(format!(
            "provider {other:?} is not available in this build; use `dummy` or an OpenAI-compatible provider \
             (docs/extending.md)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dummy_answers_with_the_last_user_message() {
        let answer = DummyProvider
            .complete(Completion {
                model: "demo-model".into(),
                system_prompt: Some("Say hello.".into()),
                messages: vec![Message {
                    role: "user".into(),
                    content: "hi there".into(),
                    name: None,
                }],
            })
            .await
            .expect("answer");
        assert_eq!(answer.text, "Final answer: hi there");
    }
}
