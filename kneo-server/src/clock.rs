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

/// Parses an ISO-8601 timestamp the way kneo-serv's list filters accept one: with `Z` or an
/// offset, naive (taken as UTC), with `T` or a space between date and time, or a bare date
/// (midnight UTC).
pub fn parse_iso(text: &str) -> Option<DateTime<Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let text = text.trim();
    if let Some(at) = parse(text) {
        return Some(at);
    }
    let with_offset = [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
    ];
    if let Some(at) = with_offset
        .iter()
        .find_map(|format| DateTime::parse_from_str(text, format).ok())
    {
        return Some(at.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    if let Some(at) = naive
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    {
        return Some(Utc.from_utc_datetime(&at));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|at| Utc.from_utc_datetime(&at))
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
    fn iso_bounds_in_every_form_kneo_serv_accepts() {
        let utc = |text| parse_iso(text).map(format);
        assert_eq!(
            utc("2000-01-01T00:00:00Z").as_deref(),
            Some("2000-01-01T00:00:00.000000+00:00")
        );
        assert_eq!(
            utc("2000-01-01T00:00:00").as_deref(),
            Some("2000-01-01T00:00:00.000000+00:00")
        );
        assert_eq!(
            utc("2999-01-01T00:00:00+02:00").as_deref(),
            Some("2998-12-31T22:00:00.000000+00:00")
        );
        assert_eq!(
            utc("2026-12-02T18:15:59.330120+00:00").as_deref(),
            Some("2026-12-02T18:15:59.330120+00:00")
        );
        assert_eq!(
            utc("2026-12-02").as_deref(),
            Some("2026-12-02T00:00:00.000000+00:00")
        );
        assert_eq!(utc("yesterday"), None);
    }

    #[test]
    fn formatted_text_sorts_like_time() {
        let earlier = parse("2026-11-28T04:38:11.5Z").expect("valid");
        let later = parse("2026-11-28T04:38:12Z").expect("valid");
        assert!(format(earlier) < format(later));
    }
}
