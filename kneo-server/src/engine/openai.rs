//! The OpenAI-compatible chat-completions provider (`model.provider: openai` or
//! `openai-agents`): OpenAI itself, or any compatible endpoint (vLLM, Ollama, …) named by
//! `model.extra.base_url` or `OPENAI_BASE_URL`.
//!
//! The key comes from the environment variable that `model.extra.api_key_ref` names
//! (`OPENAI_API_KEY` by default) and is read at each call, so a missing secret fails the run
//! that needs it (`MissingSecretError`, runbook § 3.1) rather than the whole service. It is sent
//! as `Authorization: Bearer` and never logged, stored or put in an error message.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::providers::{Answer, Completion, Provider, ProviderError, ToolCall};
use super::settings::ProviderSettings;
use crate::spec::model::ModelSpec;

/// The endpoint used when neither the spec nor `OPENAI_BASE_URL` names one.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The key's environment variable when the spec names none.
pub const DEFAULT_KEY_VARIABLE: &str = "OPENAI_API_KEY";
/// Largest response body read from a provider.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Longest excerpt of an error body quoted in a run's error.
const ERROR_EXCERPT_CHARS: usize = 300;

/// Where the key comes from.
#[derive(Clone)]
enum KeySource {
    /// The name of an environment variable.
    Variable(String),
    /// `model.extra.api_key`: a literal key (escape hatch; the spec's own value).
    Literal(String),
}

pub struct OpenAiProvider {
    provider: String,
    endpoint: String,
    key: KeySource,
    client: Result<reqwest::Client, String>,
    settings: ProviderSettings,
    /// `model.max_tokens`: output tokens per call, sent as `max_tokens`.
    max_tokens: Option<u64>,
    /// `model.timeout_seconds`, else `KNEO_SERV_PROVIDER_TIMEOUT_SECONDS`: one request's limit.
    request_timeout: Option<std::time::Duration>,
}

fn extra_string(model: &ModelSpec, key: &str) -> Option<String> {
    model
        .extra
        .as_ref()
        .and_then(|extra| extra.get(key))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// Why one attempt failed, and whether another may help.
struct AttemptFailure {
    message: String,
    retryable: bool,
    timed_out: bool,
}

impl OpenAiProvider {
    pub fn new(
        model: &ModelSpec,
        runtime: &super::RuntimeServices,
    ) -> Result<OpenAiProvider, ProviderError> {
        let base = extra_string(model, "base_url")
            .or_else(|| runtime.provider_settings.openai_base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ProviderError::Failed(format!(
                "model.extra.base_url {base:?} of provider {} is not an http(s) URL; write it like {DEFAULT_BASE_URL}",
                model.provider
            )));
        }
        let key = match (
            extra_string(model, "api_key_ref"),
            extra_string(model, "api_key"),
        ) {
            (Some(variable), _) => KeySource::Variable(variable),
            (None, Some(literal)) => KeySource::Literal(literal),
            (None, None) => KeySource::Variable(DEFAULT_KEY_VARIABLE.to_string()),
        };
        Ok(OpenAiProvider {
            provider: model.provider.clone(),
            endpoint: format!("{}/chat/completions", base.trim_end_matches('/')),
            key,
            client: runtime.http_client(),
            settings: runtime.provider_settings.clone(),
            max_tokens: model.max_tokens,
            request_timeout: model
                .timeout_seconds
                .map(std::time::Duration::from_secs)
                .or(runtime.provider_settings.timeout),
        })
    }

    fn api_key(&self) -> Result<String, ProviderError> {
        match &self.key {
            KeySource::Literal(key) => Ok(key.clone()),
            KeySource::Variable(variable) => std::env::var(variable)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| ProviderError::MissingSecret {
                    provider: self.provider.clone(),
                    env_var: variable.clone(),
                }),
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        key: &str,
        body: &Value,
    ) -> Result<Value, AttemptFailure> {
        let mut request = client.post(&self.endpoint).bearer_auth(key).json(body);
        if let Some(timeout) = self.request_timeout {
            request = request.timeout(timeout);
        }
        let mut response = request.send().await.map_err(|error| AttemptFailure {
            message: format!(
                "provider {}: POST {} failed: {}",
                self.provider,
                self.endpoint,
                describe(&error, self.request_timeout)
            ),
            retryable: error.is_connect() || (error.is_timeout() && self.settings.retry_on_timeout),
            timed_out: error.is_timeout(),
        })?;
        let status = response.status();
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(AttemptFailure {
                            message: format!(
                                "provider {}: the answer from {} is larger than {MAX_RESPONSE_BYTES} bytes",
                                self.provider, self.endpoint
                            ),
                            retryable: false,
                            timed_out: false,
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => {
                    return Err(AttemptFailure {
                        message: format!(
                            "provider {}: reading the answer from {} failed: {}",
                            self.provider,
                            self.endpoint,
                            describe(&error, self.request_timeout)
                        ),
                        retryable: !error.is_timeout() || self.settings.retry_on_timeout,
                        timed_out: error.is_timeout(),
                    });
                }
            }
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let excerpt: String = crate::redact::redacted_text(text.trim())
                .chars()
                .take(ERROR_EXCERPT_CHARS)
                .collect();
            return Err(AttemptFailure {
                message: format!(
                    "provider {}: {} answered HTTP {status}: {excerpt}",
                    self.provider, self.endpoint
                ),
                retryable: status.as_u16() == 429 || status.is_server_error(),
                timed_out: false,
            });
        }
        serde_json::from_slice(&bytes).map_err(|error| AttemptFailure {
            message: format!(
                "provider {}: the answer from {} is not JSON ({error})",
                self.provider, self.endpoint
            ),
            retryable: false,
            timed_out: false,
        })
    }
}

fn describe(error: &reqwest::Error, timeout: Option<Duration>) -> String {
    if error.is_timeout() {
        match timeout {
            Some(limit) => format!(
                "no answer within {:.1} s (KNEO_SERV_PROVIDER_TIMEOUT_SECONDS; runbook § 5.3)",
                limit.as_secs_f64()
            ),
            None => "the request timed out (runbook § 5.3)".to_string(),
        }
    } else if error.is_connect() {
        format!("could not connect ({error})")
    } else {
        error.to_string()
    }
}

/// The chat-completions request body.
fn request_body(request: &Completion) -> Value {
    let mut messages = Vec::new();
    if let Some(prompt) = &request.system_prompt {
        messages.push(json!({"role": "system", "content": prompt}));
    }
    for message in &request.messages {
        let mut wire = Map::new();
        wire.insert("role".into(), json!(message.role));
        wire.insert("content".into(), json!(message.content));
        if let Some(id) = &message.tool_call_id {
            wire.insert("tool_call_id".into(), json!(id));
        }
        if !message.tool_calls.is_empty() {
            let calls: Vec<Value> = message
                .tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments.to_string()},
                    })
                })
                .collect();
            wire.insert("tool_calls".into(), Value::Array(calls));
        }
        messages.push(Value::Object(wire));
    }
    let mut body = json!({"model": request.model, "messages": messages});
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// Reads `choices[0].message` and `usage` from a chat-completions answer.
fn parse_answer(provider: &str, body: &Value) -> Result<Answer, ProviderError> {
    let message = body.pointer("/choices/0/message").ok_or_else(|| {
        ProviderError::Failed(format!(
            "provider {provider}: the answer has no choices[0].message"
        ))
    })?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut tool_calls = Vec::new();
    for (position, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(text)) if text.trim().is_empty() => json!({}),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|error| {
                ProviderError::Failed(format!(
                    "provider {provider}: tool call {name:?} has arguments that are not JSON ({error})"
                ))
            })?,
            Some(other) => other.clone(),
            None => json!({}),
        };
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("call_{}", position + 1));
        tool_calls.push(ToolCall {
            id,
            name,
            arguments,
        });
    }
    let tokens = |key: &str| {
        body.pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Answer {
        text,
        tool_calls,
        input_tokens: tokens("prompt_tokens"),
        output_tokens: tokens("completion_tokens"),
    })
}

#[async_trait]
impl Provider for OpenAiProvider {
    async fn complete(&self, request: Completion) -> Result<Answer, ProviderError> {
        let key = self.api_key()?;
        let client = self.client.as_ref().map_err(|error| {
            ProviderError::Failed(format!(
                "provider {}: the HTTP client could not be built: {error}",
                self.provider
            ))
        })?;
        let mut body = request_body(&request);
        if let Some(max_tokens) = self.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        let attempts = 1 + self.settings.retries;
        let mut backoff = self.settings.retry_backoff;
        for attempt in 1..=attempts {
            match self.attempt(client, &key, &body).await {
                Ok(answer) => return parse_answer(&self.provider, &answer),
                Err(failure) if failure.retryable && attempt < attempts => {
                    tracing::info!(target: "kneo_serv.engine", provider = %self.provider, attempt, error = %failure.message, "provider call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(failure) => {
                    let message = if attempt > 1 {
                        format!(
                            "{} (after {attempt} attempts; KNEO_SERV_PROVIDER_RETRIES={})",
                            failure.message, self.settings.retries
                        )
                    } else {
                        failure.message
                    };
                    return Err(if failure.timed_out {
                        ProviderError::Timeout(message)
                    } else {
                        ProviderError::Failed(message)
                    });
                }
            }
        }
        Err(ProviderError::Failed(format!(
            "provider {}: no attempt was made",
            self.provider
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::providers::{Message, ToolDefinition};
    use super::*;

    #[test]
    fn requests_carry_system_prompt_tools_and_tool_results() {
        let mut assistant = Message::new("assistant", "");
        assistant.tool_calls.push(ToolCall {
            id: "c1".into(),
            name: "shout".into(),
            arguments: json!({"text": "hi"}),
        });
        let mut result = Message::new("tool", "HI");
        result.tool_call_id = Some("c1".into());
        let body = request_body(&Completion {
            model: "gpt-4o-mini".into(),
            system_prompt: Some("Be brief.".into()),
            messages: vec![Message::new("user", "hi"), assistant, result],
            tools: vec![ToolDefinition {
                name: "shout".into(),
                description: "Upper-cases text.".into(),
                parameters: json!({"type": "object"}),
            }],
            temperature: Some(0.2),
        });
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"text\":\"hi\"}"
        );
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tools"][0]["function"]["name"], "shout");
        assert_eq!(body["temperature"], 0.2);
    }

    #[test]
    fn answers_give_text_tool_calls_and_usage() {
        let answer = parse_answer(
            "openai",
            &json!({
                "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "word_count", "arguments": "{\"text\":\"a b\"}"}}
                ]}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
            }),
        )
        .expect("parsed");
        assert_eq!(answer.tool_calls[0].id, "call_9");
        assert_eq!(answer.tool_calls[0].arguments, json!({"text": "a b"}));
        assert_eq!((answer.input_tokens, answer.output_tokens), (12, 5));
        assert!(parse_answer("openai", &json!({"choices": []})).is_err());
    }
}
