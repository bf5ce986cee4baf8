//! Timestamps: one clock and one text format for everything the service stores or returns.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Formats a timestamp the way kneo-serv 1.2 does on the wire: `2026-11-28T04:38:11.312209+00:00`.
///
/// Fixed microsecond precision keeps the text sortable, which the SQLite store relies on.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// The current time, formatted for the wire.
pub fn now_text() -> String {
    format(now())
}

/// Parses a timestamp written by [`format`] (or any RFC 3339 text).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// A fresh random identifier in the UUID form kneo-serv uses for runs, events and tasks.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_has_fixed_microseconds_and_explicit_offset() {
        let at = parse("2026-11-28T04:38:11Z").expect("valid timestamp");
        assert_eq!(format(at), "2026-11-28T04:38:11.000000+00:00");
    }

    #[test]
    fn formatted_text_sorts_like_time() {
        let earlier = parse("2026-11-28T04:38:11.5Z").expect("valid");
        let later = parse("2026-11-28T04:38:12Z").expect("valid");
        assert!(format(earlier) < format(later));
    }
}
