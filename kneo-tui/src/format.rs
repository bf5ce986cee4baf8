//! Ages, clock times, durations and truncation shared by the views: every one takes "now" as a
//! parameter, so a snapshot renders the same text on every run.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `3 s`, `12 min`, `3.5 h`, `2 d` (the same words as kneo-ops' verdicts).
pub fn duration(duration: Duration) -> String {
    kneo_triage::triage::human_duration(duration)
}

/// A refresh interval as given on the command line: `500ms`, `1s`, `2s`, `1m`.
pub fn interval(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(60_000) && millis >= 60_000 {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// A latency: `3 ms`, `1.2 s`.
pub fn latency(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis} ms")
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// How long before `now` the service timestamp `text` was; `None` when it does not parse.
pub fn age_of(now: DateTime<Utc>, text: &str) -> Option<Duration> {
    let then = kneo_triage::triage::parse_time(text)?;
    Some((now - then).to_std().unwrap_or(Duration::ZERO))
}

/// `age_of` as text, `?` when unknown.
pub fn age_text(now: DateTime<Utc>, text: Option<&str>) -> String {
    text.and_then(|t| age_of(now, t))
        .map(duration)
        .unwrap_or_else(|| "?".into())
}

/// `HH:MM:SS` in UTC.
pub fn clock(time: DateTime<Utc>) -> String {
    time.format("%H:%M:%S").to_string()
}

/// `MM-DD HH:MM:SS` in UTC, for timelines that cross days.
pub fn stamp(time: DateTime<Utc>) -> String {
    time.format("%m-%d %H:%M:%S").to_string()
}

/// Seconds since the epoch (human tasks' `expires_at`) as a time.
pub fn from_epoch(seconds: f64) -> Option<DateTime<Utc>> {
    let millis = (seconds * 1000.0).round();
    if !millis.is_finite() {
        return None;
    }
    DateTime::from_timestamp_millis(millis as i64)
}

/// The first `width` characters of `text`, with `…` when it was cut.
pub fn truncate(text: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A line broken into rows of at most `width` columns at spaces, for panes that scroll by row.
/// `§ 2.4` never breaks between the mark and the number; a list item's or an indented line's
/// continuation rows hang under its text; a word longer than the row is cut.
pub fn wrap_line(line: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    if line.chars().count() <= width {
        return vec![line.to_string()];
    }
    let indent = line.len() - line.trim_start_matches(' ').len();
    let body = &line[indent..];
    let marker = body
        .split_once(' ')
        .filter(|(first, _)| {
            *first == "-" || *first == "*" || first.trim_end_matches('.').parse::<u32>().is_ok()
        })
        .map(|(first, _)| first.chars().count() + 1)
        .unwrap_or(0);
    let hang = " ".repeat((indent + marker).min(width / 2));
    // Glue the mark to its number so the pair wraps as one word.
    let glued = body.replace("§ ", "§\u{1}");
    let mut rows: Vec<String> = Vec::new();
    let mut row = " ".repeat(indent);
    for word in glued.split(' ').filter(|w| !w.is_empty()) {
        let word = word.replace('\u{1}', " ");
        let used = row.chars().count();
        let fresh = row.trim().is_empty();
        if !fresh && used + 1 + word.chars().count() > width {
            rows.push(std::mem::replace(&mut row, hang.clone()));
        }
        let mut word = word.as_str().to_string();
        while row.chars().count() + word.chars().count() > width {
            let room = width.saturating_sub(row.chars().count()).max(1);
            let cut: String = word.chars().take(room).collect();
            word = word.chars().skip(room).collect();
            row.push_str(&cut);
            rows.push(std::mem::replace(&mut row, hang.clone()));
        }
        if !row.trim().is_empty() {
            row.push(' ');
        }
        row.push_str(&word);
    }
    if !row.trim().is_empty() {
        rows.push(row);
    }
    rows
}

/// The first 8 characters of a UUID-like id (enough to tell runs apart on screen).
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// One line from a JSON error value: a string as is, an object's `message`/`type`, else JSON.
pub fn error_text(error: &serde_json::Value) -> String {
    match error {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(map) => {
            let kind = map
                .get("type")
                .or_else(|| map.get("error"))
                .and_then(|v| v.as_str());
            let message = map.get("message").and_then(|v| v.as_str());
            match (kind, message) {
                (Some(kind), Some(message)) => format!("{kind}: {message}"),
                (None, Some(message)) => message.to_string(),
                (Some(kind), None) => kind.to_string(),
                (None, None) => error.to_string(),
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn intervals_read_like_the_flag() {
        assert_eq!(interval(Duration::from_secs(2)), "2s");
        assert_eq!(interval(Duration::from_millis(500)), "500ms");
        assert_eq!(interval(Duration::from_secs(120)), "2m");
        assert_eq!(latency(Duration::from_millis(12)), "12 ms");
        assert_eq!(latency(Duration::from_millis(3400)), "3.4 s");
    }

    #[test]
    fn ages_are_measured_from_the_given_now() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
            .single()
            .expect("time");
        assert_eq!(
            age_text(now, Some("2026-11-28T11:55:00+00:00")),
            "5 min".to_string()
        );
        assert_eq!(age_text(now, Some("garbage")), "?");
        assert_eq!(age_text(now, None), "?");
        assert_eq!(
            from_epoch(1_795_867_200.0).map(clock),
            Some("12:00:00".to_string())
        );
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(short_id("0123456789abcdef"), "01234567");
    }

    #[test]
    fn long_lines_wrap_at_spaces_keeping_section_marks_whole() {
        let rows = wrap_line(
            "- § 1.1 Start refused: auth is enabled but no API keys are configured (runbook § 1.1)",
            30,
        );
        assert!(rows.iter().all(|row| row.chars().count() <= 30), "{rows:?}");
        assert_eq!(rows[0], "- § 1.1 Start refused: auth is");
        assert!(rows[1].starts_with("  "), "continuations hang: {rows:?}");
        assert!(
            rows.iter().any(|row| row.contains("(runbook § 1.1)")),
            "the mark and its number stay together: {rows:?}"
        );
        let long = wrap_line(&"x".repeat(25), 10);
        assert_eq!(long, ["xxxxxxxxxx", "xxxxxxxxxx", "xxxxx"]);
    }

    #[test]
    fn errors_read_as_one_line() {
        assert_eq!(
            error_text(&json!({"type": "ProviderError", "message": "boom"})),
            "ProviderError: boom"
        );
        assert_eq!(error_text(&json!("plain")), "plain");
        assert_eq!(error_text(&json!(null)), "");
    }
}
