//! Model providers: what an agent step calls to turn a thread into an answer or tool calls.
//!
//! - `dummy` runs in process and needs no credentials. It answers `Final answer: <last user
//!   message>`, and it is scriptable through its system prompt (see [`DummyProvider`]), so
//!   offline specs can exercise routing and tool calls deterministically.
//! - `openai` / `openai-agents` speak the OpenAI chat-completions protocol over HTTP
//!   ([`super::openai`]).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::spec::model::ModelSpec;

/// One chat message of a thread.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    /// On a `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
    /// On an `assistant` message: the tools the model asked for.
    pub tool_calls: Vec<ToolCall>,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        }
    }

    /// The wire shape kneo-serv stores in `messages`.
    pub fn to_json(&self) -> Value {
        let calls: Vec<Value> = self
            .tool_calls
            .iter()
            .map(|call| json!({"id": call.id, "name": call.name}))
            .collect();
        json!({
            "role": self.role,
            "content": self.content,
            "name": self.name,
            "tool_call_id": self.tool_call_id,
            "metadata": {"tool_calls": calls},
        })
    }
}

/// A tool the model may call: name, description and JSON Schema of the arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's id for the call; the result message quotes it back.
    pub id: String,
    pub name: String,
    /// The arguments object (providers that send a JSON string are decoded).
    pub arguments: Value,
}

/// What a provider is asked.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub model: String,
    pub system_prompt: Option<String>,
    pub messages: Vec<Message>,
    /// Tools the model may call; empty for a plain completion.
    pub tools: Vec<ToolDefinition>,
    pub temperature: Option<f64>,
}

/// What a provider answered: text, or tool calls to make before asking again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
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
    /// The provider did not answer within `KNEO_SERV_PROVIDER_TIMEOUT_SECONDS`.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Provider: Send + Sync {
    async fn complete(&self, request: Completion) -> Result<Answer, ProviderError>;
}

/// The deterministic in-process provider.
///
/// Without a script it behaves as kneo-serv's dummy: it answers `Final answer: <last user
/// message>`; offered tools and asked to "search", it calls `web_search` with the message as
/// `query` once, then answers `Final answer based on tool results: <results>`. Lines of the
/// system prompt script it (each on a line of its own):
/// - `REPLY <text>`: answer `<text>` instead;
/// - `CALL_TOOL <tool_name> <json arguments>`: first call that tool (several lines call several
///   tools, one per turn, in order); once every scripted call has a result, answer
///   `Final answer: <last tool result>`.
pub struct DummyProvider;

/// A scripted tool call from a `CALL_TOOL` line.
fn scripted_calls(system_prompt: &str) -> Vec<(String, Value)> {
    system_prompt
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CALL_TOOL "))
        .filter_map(|rest| {
            let rest = rest.trim();
            let (name, arguments) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
            let arguments = serde_json::from_str(arguments.trim()).unwrap_or_else(|_| json!({}));
            (!name.is_empty()).then(|| (name.to_string(), arguments))
        })
        .collect()
}

fn scripted_reply(system_prompt: &str) -> Option<String> {
    system_prompt
        .lines()
        .find_map(|line| line.trim().strip_prefix("REPLY "))
        .map(|text| text.trim().to_string())
}

#[async_trait]
impl Provider for DummyProvider {
    async fn complete(&self, request: Completion) -> Result<Answer, ProviderError> {
        let prompt = request.system_prompt.as_deref().unwrap_or_default();
        let calls = scripted_calls(prompt);
        let results: Vec<&Message> = request
            .messages
            .iter()
            .filter(|message| message.role == "tool")
            .collect();
        if let Some((name, arguments)) = calls.get(results.len()) {
            return Ok(Answer {
                tool_calls: vec![ToolCall {
                    id: format!("call_{}", results.len() + 1),
                    name: name.clone(),
                    arguments: arguments.clone(),
                }],
                ..Answer::default()
            });
        }
        if !calls.is_empty()
            && let Some(last) = results.last()
        {
            return Ok(Answer {
                text: format!("Final answer: {}", last.content),
                ..Answer::default()
            });
        }
        if let Some(reply) = scripted_reply(prompt) {
            return Ok(Answer {
                text: reply,
                ..Answer::default()
            });
        }
        Ok(unscripted_answer(&request))
    }
}

/// kneo-serv's dummy: a search request with tools at hand calls `web_search` once; tool results
/// fold into the answer; otherwise it answers the last user message.
fn unscripted_answer(request: &Completion) -> Answer {
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == "user")
        .map(|message| message.content.clone())
        .unwrap_or_default();
    let tool_results: Vec<&str> = request
        .messages
        .iter()
        .filter(|message| message.role == "tool")
        .map(|message| message.content.as_str())
        .collect();
    if !request.tools.is_empty()
        && tool_results.is_empty()
        && last_user.to_lowercase().contains("search")
    {
        return Answer {
            text: "I need to search.".into(),
            tool_calls: vec![ToolCall {
                id: "web_search_1".into(),
                name: "web_search".into(),
                arguments: json!({"query": last_user}),
            }],
            ..Answer::default()
        };
    }
    if !tool_results.is_empty() {
        return Answer {
            text: format!(
                "Final answer based on tool results: {}",
                tool_results.join("\n")
            ),
            ..Answer::default()
        };
    }
    Answer {
        text: format!("Final answer: {last_user}"),
        ..Answer::default()
    }
}

/// The provider a spec's `model` names, or why there is none.
pub fn provider_for(
    model: &ModelSpec,
    runtime: &super::RuntimeServices,
) -> Result<Arc<dyn Provider>, ProviderError> {
    match model.provider.as_str() {
        "dummy" => Ok(Arc::new(DummyProvider)),
        "openai" | "openai-agents" => Ok(Arc::new(super::openai::OpenAiProvider::new(
            model, runtime,
        )?)),
        other => Err(ProviderError::Failed(format!(
            "provider {other:?} is not available in this build; use `dummy`, `openai` or `openai-agents` \
             (an OpenAI-compatible endpoint via model.extra.base_url; docs/extending.md)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(system_prompt: &str, messages: Vec<Message>) -> Completion {
        Completion {
            model: "demo-model".into(),
            system_prompt: Some(system_prompt.into()),
            messages,
            ..Completion::default()
        }
    }

    #[tokio::test]
    async fn dummy_answers_with_the_last_user_message() {
        let answer = DummyProvider
            .complete(ask("Say hello.", vec![Message::new("user", "hi there")]))
            .await
            .expect("answer");
        assert_eq!(answer.text, "Final answer: hi there");
    }

    #[tokio::test]
    async fn dummy_replies_what_its_script_says() {
        let answer = DummyProvider
            .complete(ask(
                "Review it.\nREPLY APPROVED",
                vec![Message::new("user", "x")],
            ))
            .await
            .expect("answer");
        assert_eq!(answer.text, "APPROVED");
    }

    #[tokio::test]
    async fn dummy_calls_scripted_tools_then_answers_with_the_result() {
        let prompt = "Count.\nCALL_TOOL word_count {\"text\": \"a b c\"}";
        let first = DummyProvider
            .complete(ask(prompt, vec![Message::new("user", "go")]))
            .await
            .expect("answer");
        assert_eq!(first.tool_calls.len(), 1);
        assert_eq!(first.tool_calls[0].name, "word_count");
        assert_eq!(first.tool_calls[0].arguments, json!({"text": "a b c"}));
        let mut result = Message::new("tool", "3");
        result.tool_call_id = Some(first.tool_calls[0].id.clone());
        let second = DummyProvider
            .complete(ask(prompt, vec![Message::new("user", "go"), result]))
            .await
            .expect("answer");
        assert!(second.tool_calls.is_empty());
        assert_eq!(second.text, "Final answer: 3");
    }
}
