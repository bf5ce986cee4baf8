//! Replaying recorded kneo-serv 1.2.0 exchanges against a kneo server and comparing the answers:
//! the one harness every golden test module uses (the first 47 recordings, the ext categories).
//!
//! Ids and timestamps differ between the recording and our run, so the replay learns which of
//! our values stands for which recorded one (from the responses it sees) and rewrites later
//! requests with them ([`IdMap`]). An answer is compared with the recording by [`check`]: status,
//! content type, request id, `www-authenticate`, body shape ([`kneo_testkit::shape`]) and the exact
//! error identifiers.

use std::collections::HashMap;

use kneo_testkit::golden::Golden;
use kneo_testkit::shape::assert_shape;
use serde_json::Value;

use kneo_testkit::http::{Answer, Api};

/// Recorded ids (and timestamps) mapped to ours.
#[derive(Default)]
pub struct IdMap(HashMap<String, String>);

fn looks_like_id(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4
}

/// `2026-12-02T18:15:59.330120+00:00`: the stored timestamp form, which list filters quote back.
fn looks_like_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() >= 20
        && bytes.get(4) == Some(&b'-')
        && bytes.get(10) == Some(&b'T')
        && bytes[..4].iter().all(u8::is_ascii_digit)
}

impl IdMap {
    /// Walks a recorded body and ours side by side and pairs up ids and timestamps found at the
    /// same place. The first pairing of a recorded value wins.
    pub fn learn(&mut self, recorded: &Value, ours: &Value) {
        match (recorded, ours) {
            (Value::String(recorded), Value::String(ours))
                if (looks_like_id(recorded) || looks_like_timestamp(recorded))
                    && !ours.is_empty() =>
            {
                self.0
                    .entry(recorded.clone())
                    .or_insert_with(|| ours.clone());
            }
            (Value::Object(recorded), Value::Object(ours)) => {
                for (key, value) in recorded {
                    if let Some(other) = ours.get(key) {
                        self.learn(value, other);
                    }
                }
            }
            (Value::Array(recorded), Value::Array(ours)) => {
                for (value, other) in recorded.iter().zip(ours) {
                    self.learn(value, other);
                }
            }
            _ => {}
        }
    }

    /// Our value for a recorded one (the recorded one when none was learned).
    pub fn get(&self, recorded: &str) -> String {
        self.0
            .get(recorded)
            .cloned()
            .unwrap_or_else(|| recorded.to_string())
    }

    /// Rewrites every learned value in `text`, also in its percent-encoded form (query strings).
    pub fn apply(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_string(), |text, (recorded, ours)| {
                text.replace(recorded, ours)
                    .replace(&percent_encoded(recorded), &percent_encoded(ours))
            })
    }
}

/// The form a query string carries a value in (`:` and `+` encoded, as the recorder sent them).
fn percent_encoded(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

/// Sends a recorded request (ids rewritten) to our server.
pub async fn replay(api: &Api, ids: &IdMap, golden: &Golden) -> Answer {
    let path = ids.apply(&golden.request.path);
    let headers: Vec<(String, String)> = golden
        .request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_string()))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    match &golden.request.body {
        Value::String(placeholder) if placeholder.contains("raw bytes") => {
            let size: usize = placeholder
                .trim_start_matches('<')
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{}: no byte count in {placeholder:?}", golden.name));
            let mut body = br#"{"input":""#.to_vec();
            body.resize(size - 2, b'x');
            body.extend_from_slice(br#""}"#);
            api.send_bytes(&golden.request.method, &path, &headers, body)
                .await
        }
        Value::Null => {
            api.send(&golden.request.method, &path, &headers, None)
                .await
        }
        body => {
            let body: Value =
                serde_json::from_str(&ids.apply(&body.to_string())).unwrap_or_else(|error| {
                    panic!("{}: rewritten body is not JSON: {error}", golden.name)
                });
            api.send(&golden.request.method, &path, &headers, Some(&body))
                .await
        }
    }
}

/// Status, headers and body shape as recorded.
pub fn check(golden: &Golden, answer: &Answer) {
    let context = format!(
        "golden {} ({} {})",
        golden.name, golden.request.method, golden.request.path
    );
    assert_eq!(
        answer.status, golden.response.status,
        "{context}: status; body {}",
        answer.text
    );
    let recorded_type = golden
        .response
        .headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let media_type = recorded_type.split(';').next().unwrap_or_default();
    assert!(
        answer
            .header("content-type")
            .unwrap_or_default()
            .starts_with(media_type),
        "{context}: content-type {:?}",
        answer.header("content-type")
    );
    assert!(
        answer
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty()),
        "{context}: x-request-id missing"
    );
    if let Some(challenge) = golden
        .response
        .headers
        .get("www-authenticate")
        .and_then(Value::as_str)
    {
        assert_eq!(
            answer.header("www-authenticate"),
            Some(challenge),
            "{context}: www-authenticate"
        );
    }
    match &golden.response.body {
        Value::String(text) => {
            for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
                assert!(
                    answer.text.contains(line),
                    "{context}: metrics lack {line:?}:\n{}",
                    answer.text
                );
            }
        }
        body => {
            assert_shape(&context, body, &answer.body);
            assert_same_error_codes(&context, body, &answer.body);
        }
    }
}

/// The contract's identifiers are exact: an error body's `detail.error`, and the `type` of each
/// item of a validation error list, must be the recorded ones, not just strings.
pub fn assert_same_error_codes(context: &str, recorded: &Value, ours: &Value) {
    let detail = |body: &Value| body.get("detail").cloned().unwrap_or(Value::Null);
    match (detail(recorded), detail(ours)) {
        (Value::Object(recorded), ours) => {
            if let Some(code) = recorded.get("error").and_then(Value::as_str) {
                assert_eq!(
                    ours.get("error").and_then(Value::as_str),
                    Some(code),
                    "{context}: error code; ours {ours}"
                );
            }
        }
        (Value::Array(recorded), Value::Array(ours)) => {
            let types = |items: &[Value]| -> Vec<Option<String>> {
                items
                    .iter()
                    .map(|item| item.get("type").and_then(Value::as_str).map(str::to_string))
                    .collect()
            };
            assert_eq!(
                types(&ours),
                types(&recorded),
                "{context}: validation error types"
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_timestamps_are_learned_and_rewritten_also_when_percent_encoded() {
        let mut ids = IdMap::default();
        ids.learn(
            &json!({"run_id": "0430b8c9-e8ca-4b1f-b6c9-3854be82cdee", "created_at": "2026-12-02T18:15:59.330120+00:00", "status": "completed"}),
            &json!({"run_id": "11111111-2222-3333-4444-555555555555", "created_at": "2027-01-01T00:00:00.000001+00:00", "status": "completed"}),
        );
        assert_eq!(
            ids.apply("/v1/runs/0430b8c9-e8ca-4b1f-b6c9-3854be82cdee/replay"),
            "/v1/runs/11111111-2222-3333-4444-555555555555/replay"
        );
        assert_eq!(
            ids.apply("/v1/runs?created_after=2026-12-02T18%3A15%3A59.330120%2B00%3A00"),
            "/v1/runs?created_after=2027-01-01T00%3A00%3A00.000001%2B00%3A00"
        );
        assert_eq!(ids.get("completed"), "completed");
    }
}
