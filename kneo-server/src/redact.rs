//! Secret redaction, applied before anything is stored, returned, logged or bundled.
//!
//! Two kinds of rule: a key that names a secret (`password`, `api_key`, `authorization`, …) has
//! its whole value replaced, and text that looks like a secret (bearer tokens, `sk-…` provider
//! keys, DSN passwords, emails, private keys, `password=…` assignments) is replaced in place.
//! Every replacement is counted per rule, so a capture bundle can report what it removed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What replaces a secret.
pub const MARKER: &str = "[REDACTED]";
/// What replaces an email address (kneo-serv's marker for them).
pub const EMAIL_MARKER: &str = "[REDACTED_EMAIL]";

/// How many replacements each rule made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub counts: BTreeMap<&'static str, u64>,
}

impl Report {
    fn add(&mut self, rule: &'static str, count: u64) {
        if count > 0 {
            *self.counts.entry(rule).or_default() += count;
        }
    }

    pub fn merge(&mut self, other: &Report) {
        for (rule, count) in &other.counts {
            self.add(rule, *count);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// A text rule: its name in reports, what it finds and what it writes instead.
struct TextRule {
    name: &'static str,
    pattern: Regex,
    replacement: &'static str,
}

fn rule(name: &'static str, pattern: &str, replacement: &'static str) -> TextRule {
    // The patterns are constants of this file; a typo is a programming error caught by the tests.
    let pattern = Regex::new(pattern)
        .unwrap_or_else(|error| panic!("redaction rule {name} does not compile: {error}"));
    TextRule {
        name,
        pattern,
        replacement,
    }
}

/// Rules in the order they apply: DSN credentials before emails, since `user:pass@host.tld`
/// would otherwise read as an email.
static TEXT_RULES: LazyLock<Vec<TextRule>> = LazyLock::new(|| {
    vec![
        rule(
            "private_key",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            "[REDACTED PRIVATE KEY]",
        ),
        rule(
            "dsn_password",
            r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@",
            "${1}[REDACTED]@",
        ),
        rule(
            "bearer_token",
            r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{6,}",
            "${1}[REDACTED]",
        ),
        rule(
            "provider_key",
            r"\b(sk|pk|rk)-[A-Za-z0-9_-]{16,}",
            "[REDACTED]",
        ),
        rule(
            "aws_access_key",
            r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
            "[REDACTED]",
        ),
        rule(
            "github_token",
            r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
            "[REDACTED]",
        ),
        rule(
            "slack_token",
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
            "[REDACTED]",
        ),
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            "[REDACTED]",
        ),
        rule(
            "secret_assignment",
            r#"(?i)\b((?:[a-z0-9_]*_)?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth)\b["']?\s*[:=]\s*["']?)[^\s"',;&]{3,}"#,
            "${1}[REDACTED]",
        ),
        rule(
            "email",
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            EMAIL_MARKER,
        ),
        rule("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", "[REDACTED]"),
    ]
});

/// Every text rule in one automaton, for the common case of text with no secret at all.
static ANY_RULE: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    regex::RegexSet::new(TEXT_RULES.iter().map(|rule| rule.pattern.as_str()))
        .unwrap_or_else(|error| panic!("the redaction rules do not combine: {error}"))
});

/// Whether a JSON key names a secret, so its whole value must go.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "id_token",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "session_id",
        "private_key",
        "client_secret",
        "client_key",
        "secret_key",
        "access_key",
        "credentials",
        "x_kneo_api_key",
        "bearer",
        "dsn",
        "database_url",
        "connection_string",
    ];
    const SUFFIXES: &[&str] = &[
        "_password",
        "_secret",
        "_token",
        "_api_key",
        "_apikey",
        "_private_key",
        "_dsn",
    ];
    EXACT.contains(&key.as_str()) || SUFFIXES.iter().any(|suffix| key.ends_with(suffix))
}

/// Redacts secret-looking text inside a string.
pub fn redact_text(text: &str) -> (Cow<'_, str>, Report) {
    let mut report = Report::default();
    // Most text holds no secret: one pass of the combined set settles that, instead of one
    // pass per rule. Only the rules that matched run, in rule order.
    let matched = ANY_RULE.matches(text);
    if !matched.matched_any() {
        return (Cow::Borrowed(text), report);
    }
    let mut current: Cow<'_, str> = Cow::Borrowed(text);
    for rule in matched.iter().map(|index| &TEXT_RULES[index]) {
        let count = rule.pattern.find_iter(&current).count() as u64;
        if count == 0 {
            continue;
        }
        report.add(rule.name, count);
        current = Cow::Owned(
            rule.pattern
                .replace_all(&current, rule.replacement)
                .into_owned(),
        );
    }
    (current, report)
}

/// Redacts a JSON value in place: secret keys lose their value, strings lose secret-looking text.
pub fn redact_value(value: &mut Value) -> Report {
    let mut report = Report::default();
    redact_into(value, &mut report);
    report
}

fn redact_into(value: &mut Value, report: &mut Report) {
    match value {
        Value::String(text) => {
            let (redacted, found) = redact_text(text);
            if !found.is_empty() {
                *text = redacted.into_owned();
                report.merge(&found);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact_into(item, report)),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if is_secret_key(key) && !item.is_null() && item.as_str() != Some(MARKER) {
                    *item = Value::String(MARKER.into());
                    report.add("secret_key", 1);
                } else {
                    redact_into(item, report);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A copy of `value` with secrets removed.
pub fn redacted(value: &Value) -> Value {
    let mut copy = value.clone();
    redact_value(&mut copy);
    copy
}

/// A string with secrets removed.
pub fn redacted_text(text: &str) -> String {
    redact_text(text).0.into_owned()
}

/// A DSN with its password masked, for logs and error messages.
pub fn redact_dsn(url: &str) -> String {
    redacted_text(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_lose_their_values() {
        let mut value = json!({"password": "hunter2", "nested": {"OPENAI_API_KEY": "x", "api-key": "y"}, "tokens_used": 5});
        let report = redact_value(&mut value);
        assert_eq!(value["password"], MARKER);
        assert_eq!(value["nested"]["OPENAI_API_KEY"], MARKER);
        assert_eq!(value["nested"]["api-key"], MARKER);
        assert_eq!(value["tokens_used"], 5, "counts of tokens are not secrets");
        assert_eq!(report.counts.get("secret_key"), Some(&3));
    }

    #[test]
    fn secret_text_is_replaced_in_place() {
        let cases = [
            ("Authorization: Bearer abcdef123456", "abcdef123456"),
            (
                "key sk-proj-ABCDEFGHIJKLMNOPQRSTUV used",
                "sk-proj-ABCDEFGHIJKLMNOPQRSTUV",
            ),
            (
                "postgres://kneo:s3cr3t-pw@db.internal:5432/kneo",
                "s3cr3t-pw",
            ),
            ("mail reviewer@example.com now", "reviewer@example.com"),
            ("password=hunter2&x=1", "hunter2"),
            ("SSN=123-45-6789", "123-45-6789"),
            ("AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
            (
                "ghp_abcdefghijklmnopqrstuvwxyz0123",
                "ghp_abcdefghijklmnopqrstuvwxyz0123",
            ),
        ];
        for (text, secret) in cases {
            let (redacted, report) = redact_text(text);
            assert!(!redacted.contains(secret), "{text:?} → {redacted:?}");
            assert!(report.total() >= 1, "{text:?}");
        }
    }

    #[test]
    fn a_dsn_keeps_its_user_and_host() {
        assert_eq!(
            redact_dsn("postgres://kneo:pw@db:5432/x"),
            "postgres://kneo:[REDACTED]@db:5432/x"
        );
        assert_eq!(redact_dsn("postgres://db:5432/x"), "postgres://db:5432/x");
    }

    #[test]
    fn emails_get_the_email_marker() {
        assert_eq!(redacted_text("reviewer@example.com"), EMAIL_MARKER);
    }

    #[test]
    fn plain_text_is_untouched_and_borrowed() {
        let (text, report) = redact_text("Final answer: hi there");
        assert!(matches!(text, Cow::Borrowed(_)));
        assert!(report.is_empty());
    }

    #[test]
    fn redaction_is_idempotent() {
        let mut value =
            json!({"token": "abc", "text": "Bearer abcdefgh and sk-ABCDEFGHIJKLMNOPQRST"});
        redact_value(&mut value);
        let once = value.clone();
        let report = redact_value(&mut value);
        assert_eq!(value, once);
        assert!(report.is_empty(), "{report:?}");
    }
}
