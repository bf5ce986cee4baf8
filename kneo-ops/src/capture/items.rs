//! Collected items before redaction, how HTTP replies become items, and paged collection.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kneo_client::{CallError, Client, Reply};
use serde_json::{Map, Value, json};

use kneo_triage::manifest::ItemStatus;

/// What an item holds, before redaction.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    Json(Value),
    Text(String),
    /// Bytes the caller already redacted (with what it removed), stored as they are: the
    /// verdicts, whose runbook text is the tool's own and must not be mangled by the rules.
    Redacted {
        bytes: Vec<u8>,
        counts: crate::redaction::RuleCounts,
    },
}

impl Content {
    /// JSON when the text parses, text otherwise.
    pub(crate) fn from_body(body: String) -> Content {
        match serde_json::from_str::<Value>(&body) {
            Ok(value) => Content::Json(value),
            Err(_) => Content::Text(body),
        }
    }
}

/// One item, collected (or not).
#[derive(Debug, Clone)]
pub(crate) struct Collected {
    pub path: String,
    pub source: String,
    pub status: ItemStatus,
    pub error: Option<String>,
    pub duration: Duration,
    pub http_status: Option<u16>,
    pub content: Option<Content>,
}

impl Collected {
    pub(crate) fn ok(
        path: impl Into<String>,
        source: impl Into<String>,
        content: Content,
        duration: Duration,
    ) -> Collected {
        Collected {
            path: path.into(),
            source: source.into(),
            status: ItemStatus::Ok,
            error: None,
            duration,
            http_status: None,
            content: Some(content),
        }
    }

    pub(crate) fn failed(
        path: impl Into<String>,
        source: impl Into<String>,
        status: ItemStatus,
        error: impl Into<String>,
        duration: Duration,
    ) -> Collected {
        Collected {
            path: path.into(),
            source: source.into(),
            status,
            error: Some(error.into()),
            duration,
            http_status: None,
            content: None,
        }
    }

    pub(crate) fn skipped(
        path: impl Into<String>,
        source: impl Into<String>,
        reason: impl Into<String>,
    ) -> Collected {
        Collected::failed(path, source, ItemStatus::Skipped, reason, Duration::ZERO)
    }
}

/// The manifest status of a call error.
pub(crate) fn status_of(error: &CallError) -> ItemStatus {
    match error {
        CallError::Timeout { .. } => ItemStatus::Timeout,
        _ => ItemStatus::Error,
    }
}

/// An item from one reply. `evidence` items (health endpoints) are ok whenever the service
/// answered with a body other than a 4xx: a 503 `/readyz` body is exactly what is wanted.
pub(crate) fn from_reply<T>(
    path: &str,
    source: &str,
    reply: &Reply<T>,
    evidence: bool,
    as_text: bool,
) -> Collected {
    let answered_evidence = evidence
        && reply.body.is_some()
        && reply
            .status
            .is_some_and(|status| !(400..500).contains(&status));
    let (status, error) = match reply.error() {
        None => (ItemStatus::Ok, None),
        Some(_) if answered_evidence => (ItemStatus::Ok, None),
        Some(error) => (status_of(error), Some(error.to_string())),
    };
    let content = reply.body.clone().map(|body| {
        if as_text {
            Content::Text(body)
        } else {
            Content::from_body(body)
        }
    });
    Collected {
        path: path.into(),
        source: source.into(),
        status,
        error,
        duration: reply.latency,
        http_status: reply.status,
        content,
    }
}

/// A list walked page by page into one document.
pub(crate) struct PagedList<'a> {
    pub client: &'a Client,
    /// Path and query without `limit`/`offset`, e.g. `/v1/audit-events?run_id=r1`.
    pub path: String,
    /// The array holding the items (`events`, `checkpoints`).
    pub items_key: &'static str,
    pub page_size: u32,
    pub max_pages: usize,
    pub deadline: Instant,
    /// Stop at items created before this (the list must be sorted newest first).
    pub created_after: Option<DateTime<Utc>>,
}

impl PagedList<'_> {
    /// Walks the list; a failing page keeps the pages before it and says which page failed.
    pub(crate) async fn collect(self, item_path: &str, source: &str) -> Collected {
        let started = Instant::now();
        let separator = if self.path.contains('?') { '&' } else { '?' };
        let mut head: Option<Map<String, Value>> = None;
        let mut items: Vec<Value> = Vec::new();
        let mut offset: u64 = 0;
        let mut pages = 0usize;
        let mut http_status = None;
        let mut failure: Option<(ItemStatus, String)> = None;
        let mut reached_window = false;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                failure = Some((
                    ItemStatus::Timeout,
                    format!("time bound reached after {pages} page(s)"),
                ));
                break;
            }
            let url = format!(
                "{}{separator}limit={}&offset={offset}",
                self.path, self.page_size
            );
            let reply = self
                .client
                .with_request_timeout(left)
                .get_json(&url, true)
                .await;
            http_status = reply.status.or(http_status);
            let mut page = match reply.result {
                Ok(Value::Object(page)) => page,
                Ok(_) => {
                    failure = Some((
                        ItemStatus::Error,
                        format!("page {} of {} is not a JSON object", pages + 1, self.path),
                    ));
                    break;
                }
                Err(error) => {
                    let status = status_of(&error);
                    if pages == 0 {
                        let mut item = Collected::failed(
                            item_path,
                            source,
                            status,
                            error.to_string(),
                            started.elapsed(),
                        );
                        item.http_status = reply.status;
                        item.content = reply.body.map(Content::from_body);
                        return item;
                    }
                    failure = Some((
                        status,
                        format!(
                            "page {} failed after {} item(s): {error}",
                            pages + 1,
                            items.len()
                        ),
                    ));
                    break;
                }
            };
            pages += 1;
            let Some(Value::Array(page_items)) = page.remove(self.items_key) else {
                failure = Some((
                    ItemStatus::Error,
                    format!(
                        "page {pages} of {} has no `{}` list",
                        self.path, self.items_key
                    ),
                ));
                break;
            };
            let count = page_items.len() as u64;
            let total = page.get("total").and_then(Value::as_u64);
            let window = page.get("window").and_then(Value::as_u64);
            let mut older_seen = false;
            for item in page_items {
                let too_old = self.created_after.is_some_and(|cutoff| {
                    item.get("created_at")
                        .and_then(Value::as_str)
                        .and_then(kneo_triage::triage::parse_time)
                        .is_some_and(|created| created < cutoff)
                });
                if too_old {
                    older_seen = true;
                } else {
                    items.push(item);
                }
            }
            if head.is_none() {
                head = Some(page);
            }
            offset += count;
            let reachable = match (total, window) {
                (Some(total), Some(window)) => Some(total.min(window)),
                (Some(total), None) => Some(total),
                _ => None,
            };
            reached_window = matches!((total, window), (Some(total), Some(window)) if total > window && offset >= window);
            let exhausted = count == 0
                || reachable.map_or(count < u64::from(self.page_size), |reachable| {
                    offset >= reachable
                });
            if exhausted || older_seen {
                break;
            }
            if pages >= self.max_pages {
                failure = Some((
                    ItemStatus::Error,
                    format!(
                        "stopped after {pages} pages ({} items); the list is longer",
                        items.len()
                    ),
                ));
                break;
            }
        }
        let mut document = head.unwrap_or_default();
        document.insert("count".into(), json!(items.len()));
        document.insert("offset".into(), json!(0));
        document.insert("limit".into(), json!(items.len()));
        document.insert(self.items_key.into(), Value::Array(items));
        document.insert("collected_pages".into(), json!(pages));
        if reached_window {
            document.insert("truncated_at_window".into(), json!(true));
        }
        let (status, error) = match failure {
            Some((status, error)) => (status, Some(error)),
            None => (ItemStatus::Ok, None),
        };
        Collected {
            path: item_path.into(),
            source: source.into(),
            status,
            error,
            duration: started.elapsed(),
            http_status,
            content: Some(Content::Json(Value::Object(document))),
        }
    }
}

/// A path component from an id given on the command line: safe characters only, never `.` or
/// `..`, and a short hash when anything had to change (so distinct ids stay distinct).
pub(crate) fn safe_component(id: &str) -> String {
    use sha2::Digest;
    let mut cleaned: String = id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.starts_with('.') || cleaned.is_empty() {
        cleaned.insert_str(0, "id_");
    }
    if cleaned != id {
        let digest = hex::encode(sha2::Sha256::digest(id.as_bytes()));
        cleaned.push('-');
        cleaned.push_str(&digest[..8]);
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_distinct_components() {
        assert_eq!(
            safe_component("f8a73a28-be8e-44a6-b053-e286f21c121e"),
            "f8a73a28-be8e-44a6-b053-e286f21c121e"
        );
        let traversal = safe_component("../../etc/passwd");
        assert!(
            !traversal.contains('/') && !traversal.starts_with('.'),
            "{traversal}"
        );
        assert_ne!(safe_component("a/b"), safe_component("a_b"));
        assert!(safe_component("..").starts_with("id_"));
        assert!(safe_component("").starts_with("id_"));
    }

    #[test]
    fn evidence_items_keep_5xx_bodies_as_ok() {
        let reply: Reply<()> = Reply::failed(CallError::Status {
            method: "GET".into(),
            url: "u".into(),
            status: 503,
            error: None,
        })
        .with_body("{\"x\":1}");
        let item = from_reply("service/readyz.json", "GET /readyz", &reply, true, false);
        assert_eq!((item.status, item.http_status), (ItemStatus::Ok, Some(503)));
        assert!(matches!(item.content, Some(Content::Json(_))));
        let plain = from_reply("queue/x.json", "GET /v1/runs", &reply, false, false);
        assert_eq!(plain.status, ItemStatus::Error);
        let unauthorized: Reply<()> = Reply::failed(CallError::Status {
            method: "GET".into(),
            url: "u".into(),
            status: 401,
            error: None,
        })
        .with_body("{}");
        assert_eq!(
            from_reply(
                "service/health.json",
                "GET /v1/health",
                &unauthorized,
                true,
                false
            )
            .status,
            ItemStatus::Error
        );
    }
}
