//! What of an agent's history reaches the model.
//!
//! An agent keeps a history for the length of a run, as kneo-serv's compiled agents do: every
//! step that runs the same component agent sees the turns it had before in this run
//! ([`AgentHistories`], stored with the run so a resumed or taken-over run keeps it). Before the
//! model is called, the agent's `memory` policy ([`MemoryPlan`]) transforms the thread (history
//! plus the new user message): `full` keeps it, `sliding_window` keeps the newest messages,
//! `summary` folds the turns before the last user message into one system message, `retrieval`
//! puts retrieved notes first. kneo-serv's `metadata.memory` records the counts before and after.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};

use super::agent::{Failure, StepContext};
use super::component;
use super::plan::ComponentCall;
use super::providers::Message;
use crate::spec::model::{AppendMode, MemoryPolicy};

/// An agent's memory policy, as compiled.
pub use super::plan::MemoryPlan;

impl MemoryPlan {
    /// The thread the model sees instead of `messages` (the history and the new user
    /// message; the system prompt is not part of it).
    pub async fn apply(
        &self,
        messages: Vec<Message>,
        context: &StepContext,
    ) -> Result<Vec<Message>, Failure> {
        match self.policy {
            MemoryPolicy::Full => Ok(messages),
            MemoryPolicy::SlidingWindow => Ok(sliding_window(
                messages,
                usize::try_from(self.max_messages).unwrap_or(usize::MAX),
                self.preserve_system_messages,
            )),
            MemoryPolicy::Summary => match &self.summarizer {
                Some(summarizer) => summarize(messages, summarizer, context).await,
                None => Ok(messages),
            },
            MemoryPolicy::Retrieval => match &self.retriever {
                Some(retriever) => retrieve(messages, retriever, self.top_k, context).await,
                None => Ok(messages),
            },
        }
    }
}

fn is_system(message: &Message) -> bool {
    message.role == "system"
}

/// The newest `max_messages` messages; with `preserve_system_messages`, system messages stay
/// ahead of the window and count against it.
pub fn sliding_window(
    messages: Vec<Message>,
    max_messages: usize,
    preserve_system_messages: bool,
) -> Vec<Message> {
    if max_messages == 0 {
        return if preserve_system_messages {
            messages.into_iter().filter(is_system).collect()
        } else {
            Vec::new()
        };
    }
    if messages.len() <= max_messages {
        return messages;
    }
    if !preserve_system_messages {
        let skip = messages.len() - max_messages;
        return messages.into_iter().skip(skip).collect();
    }
    let (system, others): (Vec<Message>, Vec<Message>) = messages.into_iter().partition(is_system);
    let room = max_messages.saturating_sub(system.len());
    let skip = others.len().saturating_sub(room);
    system
        .into_iter()
        .chain(others.into_iter().skip(skip).take(room))
        .collect()
}

async fn summarize(
    messages: Vec<Message>,
    summarizer: &ComponentCall,
    context: &StepContext,
) -> Result<Vec<Message>, Failure> {
    let last_user = messages.iter().rposition(|message| message.role == "user");
    let mut earlier = messages;
    let held_out = match last_user {
        Some(index) => earlier.split_off(index),
        None => Vec::new(),
    };
    let (system, to_summarize): (Vec<Message>, Vec<Message>) =
        earlier.into_iter().partition(is_system);
    if to_summarize.is_empty() {
        return Ok(system.into_iter().chain(held_out).collect());
    }
    let text = to_summarize
        .iter()
        .map(|message| format!("{}: {}", message.role, message.content))
        .collect::<Vec<_>>()
        .join("\n");
    let summary = component::call(summarizer, &text, context).await?;
    let folded = Message::new("system", &format!("Conversation summary:\n{summary}"));
    Ok(system
        .into_iter()
        .chain(std::iter::once(folded))
        .chain(held_out)
        .collect())
}

async fn retrieve(
    messages: Vec<Message>,
    retriever: &ComponentCall,
    top_k: u64,
    context: &StepContext,
) -> Result<Vec<Message>, Failure> {
    let Some(query) = messages
        .iter()
        .rev()
        .find(|message| message.role == "user")
        .map(|message| message.content.clone())
    else {
        return Ok(messages);
    };
    // Retrievers take `{"query", "top_k"}` as JSON text (docs/extending.md).
    let request = json!({"query": query, "top_k": top_k}).to_string();
    let notes = component::call(retriever, &request, context).await?;
    let retrieved = Message::new("system", &format!("Relevant retrieved memory:\n{notes}"));
    Ok(std::iter::once(retrieved).chain(messages).collect())
}

/// The histories of a run's agents, by their history key (the component key; `agent` for the
/// root agent). Shared by the steps of a run, stored in `execution_context.agent_histories`.
#[derive(Clone, Default)]
pub struct AgentHistories(Arc<Mutex<BTreeMap<String, Vec<Message>>>>);

impl AgentHistories {
    /// The histories a stored run had (`execution_context.agent_histories`), or none.
    pub fn from_context(context: Option<&Value>) -> AgentHistories {
        let mut histories = BTreeMap::new();
        if let Some(stored) = context
            .and_then(|context| context.get("agent_histories"))
            .and_then(Value::as_object)
        {
            for (key, messages) in stored {
                let messages = messages
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|item| {
                                let field = |name: &str| {
                                    item.get(name).and_then(Value::as_str).unwrap_or_default()
                                };
                                Message::new(field("role"), field("content"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                histories.insert(key.clone(), messages);
            }
        }
        AgentHistories(Arc::new(Mutex::new(histories)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Message>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The history of the agent with `key`.
    pub fn get(&self, key: &str) -> Vec<Message> {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    /// Records a finished turn as `append_mode` says.
    pub fn record_turn(&self, key: &str, append_mode: AppendMode, input: &str, output: &str) {
        let mut turn = Vec::new();
        if matches!(append_mode, AppendMode::Auto | AppendMode::UserOnly) {
            turn.push(Message::new("user", input));
        }
        if matches!(append_mode, AppendMode::Auto | AppendMode::AssistantOnly) {
            turn.push(Message::new("assistant", output));
        }
        if !turn.is_empty() {
            self.lock().entry(key.to_string()).or_default().extend(turn);
        }
    }

    /// Whether no agent has a history yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The stored form (redacted): `{key: [{role, content}]}`.
    pub fn to_json(&self) -> Value {
        let histories = self.lock();
        let stored: Map<String, Value> = histories
            .iter()
            .map(|(key, messages)| {
                let items: Vec<Value> = messages
                    .iter()
                    .map(|message| json!({"role": message.role, "content": crate::redact::redacted_text(&message.content)}))
                    .collect();
                (key.clone(), Value::Array(items))
            })
            .collect();
        Value::Object(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(roles: &[&str]) -> Vec<Message> {
        roles
            .iter()
            .enumerate()
            .map(|(index, role)| Message::new(role, &format!("m{index}")))
            .collect()
    }

    fn contents(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|message| message.content.clone())
            .collect()
    }

    #[test]
    fn sliding_windows_keep_the_newest_and_the_system_messages() {
        let messages = thread(&["system", "user", "assistant", "user", "assistant"]);
        assert_eq!(
            contents(&sliding_window(messages.clone(), 3, true)),
            ["m0", "m3", "m4"]
        );
        assert_eq!(
            contents(&sliding_window(messages.clone(), 2, false)),
            ["m3", "m4"]
        );
        assert_eq!(contents(&sliding_window(messages.clone(), 0, true)), ["m0"]);
        assert!(sliding_window(messages.clone(), 0, false).is_empty());
        assert_eq!(sliding_window(messages.clone(), 9, true).len(), 5);
        // System messages that fill the window leave no room for the others.
        assert_eq!(contents(&sliding_window(messages, 1, true)), ["m0"]);
    }

    #[test]
    fn histories_follow_the_append_mode_and_survive_the_run_row() {
        let histories = AgentHistories::default();
        histories.record_turn("chatty", AppendMode::Auto, "q1", "a1");
        histories.record_turn("chatty", AppendMode::UserOnly, "q2", "a2");
        histories.record_turn("chatty", AppendMode::Never, "q3", "a3");
        histories.record_turn("other", AppendMode::AssistantOnly, "q", "a");
        assert_eq!(contents(&histories.get("chatty")), ["q1", "a1", "q2"]);
        let stored = json!({"agent_histories": histories.to_json()});
        let restored = AgentHistories::from_context(Some(&stored));
        assert_eq!(contents(&restored.get("chatty")), ["q1", "a1", "q2"]);
        assert_eq!(restored.get("other")[0].role, "assistant");
        assert!(AgentHistories::from_context(None).is_empty());
    }
}
