//! The validation finding type shared by the schema and semantic passes, serialized exactly as
//! kneo-serv 1.2 returns it from `POST /v1/specs/validate`.

use serde::{Deserialize, Serialize};

/// How serious a finding is. Only `Error` makes a spec invalid; `lint` also fails on warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// One finding about a spec.
///
/// Field order is the wire order of golden `44_specs_validate_bad.json`
/// (`code, severity, message, path, suggestion`), and `suggestion` is serialized as `null` when
/// absent rather than omitted, because that is what clients of kneo-serv 1.2 receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable machine-readable code (`E_*` errors, `W_*` warnings); environment policies match
    /// on it (`blocked_diagnostic_codes`), so codes never change meaning.
    pub code: String,
    pub severity: Severity,
    /// What is wrong with the value at `path`, in one sentence.
    pub message: String,
    /// Dotted location of the offending value, e.g. `agent.tools` or `workflow.steps[1].ref`;
    /// the empty string means the document as a whole.
    pub path: String,
    /// How to fix it, when there is something more specific to say than the message.
    pub suggestion: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, path, message)
    }

    pub fn warning(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, path, message)
    }

    pub fn info(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, code, path, message)
    }

    fn new(
        severity: Severity,
        code: &str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code: code.to_owned(),
            severity,
            message: message.into(),
            path: path.into(),
            suggestion: None,
        }
    }

    /// Attaches the fix. Builder style keeps each check a single expression.
    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Appends `.key` to a diagnostic path (no leading dot at the document root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends `[index]` to a diagnostic path.
pub(crate) fn index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// The candidate closest to `input` by edit distance, if it is close enough to be a plausible
/// typo (so `modle` suggests `model`, but `zzz` suggests nothing).
pub(crate) fn closest_match<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let threshold = (input.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| (edit_distance(input, candidate), *candidate))
        .filter(|(distance, _)| *distance <= threshold)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// A quoted, comma-separated list for messages: `'a', 'b', 'c'`.
pub(crate) fn quoted_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|item| format!("'{}'", item.as_ref()))
        .collect();
    if quoted.is_empty() {
        "(none)".to_owned()
    } else {
        quoted.join(", ")
    }
}

/// Levenshtein distance over chars; inputs are short keys, so the O(n·m) table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b_chars.len() + 1);
        current.push(i + 1);
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            let insertion = current[j] + 1;
            let deletion = previous[j + 1] + 1;
            current.push(substitution.min(insertion).min(deletion));
        }
        previous = current;
    }
    previous[b_chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_wire_order_with_null_suggestion() {
        let diagnostic = Diagnostic::error(
            "E_TOOL_REF",
            "agent.tools",
            "Tool 'missing' is referenced but not defined.",
        );
        let text = serde_json::to_string(&diagnostic).unwrap();
        assert_eq!(
            text,
            r#"{"code":"E_TOOL_REF","severity":"error","message":"Tool 'missing' is referenced but not defined.","path":"agent.tools","suggestion":null}"#
        );
    }

    #[test]
    fn severity_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"warning\""
        );
        assert_eq!(serde_json::to_string(&Severity::Info).unwrap(), "\"info\"");
    }

    #[test]
    fn closest_match_finds_typos_only() {
        let keys = ["name", "model", "memory", "tools"];
        assert_eq!(closest_match("modle", &keys), Some("model"));
        assert_eq!(closest_match("tool", &keys), Some("tools"));
        assert_eq!(closest_match("zzzzzzzz", &keys), None);
    }

    #[test]
    fn paths_join_from_the_root() {
        assert_eq!(join("", "agent"), "agent");
        assert_eq!(join("agent", "tools"), "agent.tools");
        assert_eq!(index("workflow.steps", 2), "workflow.steps[2]");
    }
}
