//! Converting between record fields and Postgres column values.
//!
//! Records carry timestamps as RFC 3339 text; the columns are `timestamptz` so Postgres compares
//! them as times. Going out, every timestamp is formatted by [`crate::clock::format`], the one
//! text format the service returns. Documents are `jsonb`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clock;
use crate::store::StoreError;

pub(super) type Timestamp = DateTime<Utc>;

/// The longest lease or TTL passed to Postgres: far beyond any real one, and far inside the range of
/// `interval` arithmetic on `now()`, so a silly configuration cannot make a statement fail.
const LONGEST_INTERVAL_SECONDS: f64 = 100.0 * 365.0 * 24.0 * 3600.0;

/// A required timestamp field of a record; text that is not RFC 3339 is refused, naming the field.
pub(super) fn timestamp(text: &str, field: &str) -> Result<Timestamp, StoreError> {
    clock::parse(text).ok_or_else(|| {
        StoreError::internal(format!(
            "{field} is {text:?}, which is not an RFC 3339 timestamp"
        ))
    })
}

/// An optional timestamp field of a record.
pub(super) fn optional_timestamp(
    text: Option<&str>,
    field: &str,
) -> Result<Option<Timestamp>, StoreError> {
    text.map(|text| timestamp(text, field)).transpose()
}

/// A timestamp inside a free-form document (a trace event, a checkpoint). Such documents come from
/// the engine and may lack the field; they are stored with a NULL column, which sorts first, as
/// the empty text does on SQLite.
pub(super) fn document_timestamp(document: &Value, key: &str) -> Option<Timestamp> {
    document
        .get(key)
        .and_then(Value::as_str)
        .and_then(clock::parse)
}

/// A text field inside a free-form document, empty when missing (as on SQLite).
pub(super) fn document_text<'a>(document: &'a Value, key: &str) -> &'a str {
    document
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A timestamp leaving the store.
pub(super) fn text(at: Timestamp) -> String {
    clock::format(at)
}

/// A duration as seconds for `now() + $n::float8 * interval '1 second'`.
pub(super) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64().min(LONGEST_INTERVAL_SECONDS)
}

/// A record as a `jsonb` value.
pub(super) fn to_document<T: Serialize>(value: &T, what: &str) -> Result<Value, StoreError> {
    serde_json::to_value(value)
        .map_err(|error| StoreError::internal(format!("serializing {what}: {error}")))
}

/// A stored document as a record; one that does not fit the record is reported as corrupt.
pub(super) fn from_document<T: DeserializeOwned>(
    document: Value,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_value(document).map_err(|error| {
        StoreError::corrupt(format!(
            "{what} does not have the shape of its record: {error}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_wire_format() {
        let at = timestamp("2026-11-28T04:38:11.312209Z", "created_at").expect("valid");
        assert_eq!(text(at), "2026-11-28T04:38:11.312209+00:00");
        let error = timestamp("yesterday", "the run's created_at").expect_err("invalid");
        assert!(
            error
                .message
                .contains("the run's created_at is \"yesterday\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn absurd_durations_are_clamped() {
        assert_eq!(seconds(Duration::from_millis(1500)), 1.5);
        assert_eq!(seconds(Duration::MAX), LONGEST_INTERVAL_SECONDS);
    }
}
