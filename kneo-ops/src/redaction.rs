//! Redaction of everything a bundle stores: kneo-server's rules (`kneo_server::redact`), plus the
//! literal secrets this run knows — the API key it used, the DSN it was given, and the values
//! of environment variables whose names look secret.
//!
//! Known literals go first, so a planted key is counted under its own rule even where a pattern
//! rule would also have caught it.

use std::collections::BTreeMap;

use serde_json::Value;

/// Rule names for the literals (beside kneo-server's rule names).
pub const RULE_API_KEY_IN_USE: &str = "api_key_in_use";
pub const RULE_DATABASE_URL: &str = "database_url";
pub const RULE_ENV_SECRET: &str = "env_secret";
pub const RULE_URL_PASSWORD: &str = "url_password";

/// What replaces a literal secret (the same marker as kneo-server's).
pub const MARKER: &str = kneo_server::redact::MARKER;

/// Replacements per rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCounts(pub BTreeMap<String, u64>);

impl RuleCounts {
    pub fn add(&mut self, rule: &str, count: u64) {
        if count > 0 {
            *self.0.entry(rule.to_string()).or_default() += count;
        }
    }

    pub fn merge(&mut self, other: &RuleCounts) {
        for (rule, count) in &other.0 {
            self.add(rule, *count);
        }
    }

    fn merge_server(&mut self, report: &kneo_server::redact::Report) {
        for (rule, count) in &report.counts {
            self.add(rule, *count);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Per-document caches of [`Redactor::redact_json`]: a string's redaction (`None` when it has
/// nothing to redact) and whether a key names a secret.
#[derive(Default)]
struct JsonMemo {
    strings: std::collections::HashMap<String, Option<(String, RuleCounts)>>,
    keys: std::collections::HashMap<String, bool>,
}

/// The redaction engine of one capture.
#[derive(Clone, Default)]
pub struct Redactor {
    /// (secret, rule), longest first so a secret containing another is replaced whole.
    literals: Vec<(String, &'static str)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("literal_secrets", &self.literals.len())
            .finish()
    }
}

/// Values too short or too common to replace everywhere.
fn worth_redacting(value: &str) -> bool {
    let value = value.trim();
    value.chars().count() >= 6
        && !matches!(
            value.to_ascii_lowercase().as_str(),
            "true" | "false" | "enabled" | "disabled"
        )
}

/// Whether an environment variable's name says its value is a secret.
pub fn looks_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if matches!(upper.as_str(), "PWD" | "OLDPWD") {
        return false;
    }
    const MARKS: [&str; 9] = [
        "KEY",
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "DSN",
        "DATABASE_URL",
        "AUTH",
    ];
    kneo_server::redact::is_secret_key(name) || MARKS.iter().any(|mark| upper.contains(mark))
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Adds a literal secret under `rule` (values under six characters are ignored: replacing
    /// them everywhere would destroy the bundle without protecting anything).
    pub fn add_secret(&mut self, value: &str, rule: &'static str) {
        let value = value.trim();
        if !worth_redacting(value) || self.literals.iter().any(|(known, _)| known == value) {
            return;
        }
        self.literals.push((value.to_string(), rule));
        self.literals
            .sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
    }

    /// Adds the API key the tool uses (shorter keys are kept too: the tool knows it is a key).
    pub fn add_api_key(&mut self, key: &str) {
        let key = key.trim();
        if key.chars().count() >= 4 && !self.literals.iter().any(|(known, _)| known == key) {
            self.literals.push((key.to_string(), RULE_API_KEY_IN_USE));
            self.literals
                .sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
        }
    }

    /// Adds a DSN and, separately, its password.
    pub fn add_database_url(&mut self, dsn: &str) {
        self.add_secret(dsn, RULE_DATABASE_URL);
        if let Ok(url) = kneo_client::Url::parse(dsn)
            && let Some(password) = url.password()
        {
            self.add_secret(&percent_decode(password), RULE_DATABASE_URL);
            self.add_secret(password, RULE_DATABASE_URL);
        }
    }

    /// Adds the password of a `user:password@` service URL.
    pub fn add_url_credentials(&mut self, url: &str) {
        if let Ok(parsed) = kneo_client::Url::parse(url)
            && let Some(password) = parsed.password()
        {
            self.add_secret(&percent_decode(password), RULE_URL_PASSWORD);
            self.add_secret(password, RULE_URL_PASSWORD);
        }
    }

    /// Adds the values of variables whose names look secret; `KNEO_SERV_API_KEYS`-style values
    /// (`name:key:roles;…`) also contribute each key on its own.
    pub fn add_env_secrets(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in vars {
            if !looks_secret_name(&name) {
                continue;
            }
            self.add_secret(&value, RULE_ENV_SECRET);
            for entry in value.split(';') {
                let mut parts = entry.splitn(3, ':');
                if let (Some(_), Some(secret), Some(_)) = (parts.next(), parts.next(), parts.next())
                {
                    self.add_secret(secret, RULE_ENV_SECRET);
                }
            }
            if value.contains("://") {
                self.add_database_url(&value);
            }
        }
    }

    pub fn literal_count(&self) -> usize {
        self.literals.len()
    }

    /// Replaces the known literals, counting per rule.
    fn replace_literals(&self, text: &str, counts: &mut RuleCounts) -> Option<String> {
        let mut current: Option<String> = None;
        for (secret, rule) in &self.literals {
            let source = current.as_deref().unwrap_or(text);
            let found = source.matches(secret.as_str()).count() as u64;
            if found > 0 {
                counts.add(rule, found);
                current = Some(source.replace(secret.as_str(), MARKER));
            }
        }
        current
    }

    /// Redacts free text.
    pub fn redact_text(&self, text: &str) -> (String, RuleCounts) {
        let mut counts = RuleCounts::default();
        let after_literals = self.replace_literals(text, &mut counts);
        let base = after_literals.as_deref().unwrap_or(text);
        let (redacted, report) = kneo_server::redact::redact_text(base);
        counts.merge_server(&report);
        (redacted.into_owned(), counts)
    }

    /// Replaces only the known literals (for serialized JSON, where the pattern rules could cut
    /// through quoting and break the document).
    pub fn redact_literals(&self, text: &str) -> (String, RuleCounts) {
        let mut counts = RuleCounts::default();
        let replaced = self
            .replace_literals(text, &mut counts)
            .unwrap_or_else(|| text.to_string());
        (replaced, counts)
    }

    /// Redacts a JSON document in place, with kneo-server's semantics (`redact_value`): a value
    /// under a secret-looking key is replaced whole, every other string goes through the known
    /// literals and then kneo-server's text rules.
    ///
    /// Results are memoized per distinct string and key: checkpoints repeat the same messages
    /// hundreds of times, and running every rule on every copy would dominate a capture.
    pub fn redact_json(&self, value: &mut Value) -> RuleCounts {
        let mut counts = RuleCounts::default();
        let mut memo = JsonMemo::default();
        self.walk_json(value, &mut counts, &mut memo);
        counts
    }

    fn walk_json(&self, value: &mut Value, counts: &mut RuleCounts, memo: &mut JsonMemo) {
        match value {
            Value::String(text) => {
                let outcome = match memo.strings.get(text.as_str()) {
                    Some(outcome) => outcome,
                    None => {
                        let (clean, found) = self.redact_text(text);
                        let outcome = (!found.is_empty()).then_some((clean, found));
                        memo.strings.entry(text.clone()).or_insert(outcome)
                    }
                };
                if let Some((clean, found)) = outcome {
                    counts.merge(found);
                    *text = clean.clone();
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| self.walk_json(item, counts, memo)),
            Value::Object(map) => {
                if !self.literals.is_empty() {
                    let keys_with_secrets: Vec<String> = map
                        .keys()
                        .filter(|key| {
                            self.literals
                                .iter()
                                .any(|(secret, _)| key.contains(secret.as_str()))
                        })
                        .cloned()
                        .collect();
                    for key in keys_with_secrets {
                        if let Some(item) = map.remove(&key) {
                            let new_key = self.replace_literals(&key, counts).unwrap_or(key);
                            map.insert(new_key, item);
                        }
                    }
                }
                for (key, item) in map.iter_mut() {
                    let secret_key = match memo.keys.get(key.as_str()) {
                        Some(secret) => *secret,
                        None => *memo
                            .keys
                            .entry(key.clone())
                            .or_insert(kneo_server::redact::is_secret_key(key)),
                    };
                    if secret_key && !item.is_null() && item.as_str() != Some(MARKER) {
                        *item = Value::String(MARKER.into());
                        counts.add("secret_key", 1);
                    } else {
                        self.walk_json(item, counts, memo);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// `%40` → `@` (URL passwords are percent-encoded).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) =
                (hex_value(bytes[index + 1]), hex_value(bytes[index + 2]))
        {
            out.push(high * 16 + low);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_in_use_is_replaced_everywhere_and_counted() {
        let mut redactor = Redactor::new();
        redactor.add_api_key("opskey123");
        let mut value = json!({"input_text": "my key is opskey123", "opskey123": 1, "nested": ["xx opskey123 yy"]});
        let counts = redactor.redact_json(&mut value);
        let text = value.to_string();
        assert!(!text.contains("opskey123"), "{text}");
        assert_eq!(counts.0.get(RULE_API_KEY_IN_USE), Some(&3));
    }

    #[test]
    fn server_rules_still_apply() {
        let redactor = Redactor::new();
        let (text, counts) = redactor
            .redact_text("OPENAI_API_KEY=sk-proj-ABCDEFGHIJKLMNOPQRSTUV and Bearer abcdef123456");
        assert!(
            !text.contains("sk-proj-ABCDEFGHIJKLMNOPQRSTUV") && !text.contains("abcdef123456"),
            "{text}"
        );
        assert!(counts.total() >= 2, "{counts:?}");
    }

    #[test]
    fn env_secrets_and_key_lists_are_learned() {
        let mut redactor = Redactor::new();
        redactor.add_env_secrets([
            (
                "KNEO_SERV_API_KEYS".to_string(),
                "ops:opskey-abc123:operator;rev:revkey-xyz789:reviewer".to_string(),
            ),
            ("MY_DB_PASSWORD".to_string(), "hunter2hunter2".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("PWD".to_string(), "/home/op/secret-project".to_string()),
            ("KNEO_SERV_AUTH_ENABLED".to_string(), "true".to_string()),
        ]);
        let (text, counts) = redactor
            .redact_text("revkey-xyz789 hunter2hunter2 /usr/bin:/bin /home/op/secret-project true");
        assert_eq!(
            text,
            "[REDACTED] [REDACTED] /usr/bin:/bin /home/op/secret-project true"
        );
        assert_eq!(counts.0.get(RULE_ENV_SECRET), Some(&2));
    }

    #[test]
    fn a_dsn_and_its_password_are_learned() {
        let mut redactor = Redactor::new();
        redactor.add_database_url("postgres://kneo:p%40ss-word-1@db:5432/kneo");
        let (text, _) = redactor.redact_text("password p@ss-word-1 and p%40ss-word-1");
        assert!(
            !text.contains("p@ss-word-1") && !text.contains("p%40ss-word-1"),
            "{text}"
        );
    }

    #[test]
    fn names_that_look_secret() {
        for name in [
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "PGPASSWORD",
            "KNEO_SERV_DATABASE_URL",
            "AWS_SECRET_ACCESS_KEY",
            "my_dsn",
        ] {
            assert!(looks_secret_name(name), "{name}");
        }
        for name in ["PATH", "HOME", "PWD", "KNEO_SERV_STATE_DIR", "LANG"] {
            assert!(!looks_secret_name(name), "{name}");
        }
    }

    #[test]
    fn json_redaction_matches_kneo_servers_and_counts_every_copy() {
        let document = json!({
            "password": "hunter2", "nested": {"OPENAI_API_KEY": "x", "api-key": null, "token": "[REDACTED]"},
            "messages": ["Bearer abcdefgh1234", "Bearer abcdefgh1234", "plain", {"note": "mail a@example.com"}],
            "tokens_used": 5
        });
        let mut ours = document.clone();
        let counts = Redactor::new().redact_json(&mut ours);
        let mut theirs = document;
        let report = kneo_server::redact::redact_value(&mut theirs);
        assert_eq!(
            ours, theirs,
            "the same result as kneo-server's redact_value"
        );
        let expected: BTreeMap<String, u64> = report
            .counts
            .iter()
            .map(|(rule, count)| (rule.to_string(), *count))
            .collect();
        assert_eq!(
            counts.0, expected,
            "the same counts, repeated strings included"
        );
        assert_eq!(counts.0.get("bearer_token"), Some(&2));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss%2Fx"), "p@ss/x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1");
    }
}
