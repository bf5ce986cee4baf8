//! Error answers by who got them: the labelled counters `kneo_http_error_answers_total` and
//! `kneo_http_error_answer_last_seconds` of `GET /metrics`.
//!
//! The runbook's common incidents are about callers ("one consumer gets 403", "409
//! idempotency_key_conflict"); the access log holds them, but triage cannot read logs. So every
//! answer with a 4xx or 5xx status is counted under
//! `{route, method, status, error, key, client}`, with the time of the latest one, and
//! `kneo-ops triage` / kneo-tui name the consumer from it.
//!
//! Label cardinality is bounded by construction: `route` is the route template (`/v1/runs/{run_id}`,
//! or `(unmatched)`), never the raw path; `error` is the envelope's code (a fixed set); `key` is
//! the *name* of a configured key (`(none)` when none was sent, `(unknown)` when it matched no
//! configured key, `anonymous` with auth off), never the key; `client` is `kneo-ops`, `kneo-tui`
//! (the tools name themselves in their `User-Agent`, so their own probes are not taken for a
//! caller's symptom) or `other`. Successes are not counted here: `kneo_http_requests_total` has
//! them, and leaving them out keeps the scrape small. A hard cap on the number of series guards
//! against a bug in any of that.
//!
//! Written by hand like the rest of [`crate::metrics`]: a `metrics` recorder is process-global
//! (tests run several servers in one process), and `prometheus-client` writes OpenMetrics text
//! (`# EOF`, its own `_total` naming) where the kneo-serv metric names and the 0.0.4 text format
//! must stay exactly as they are. One mutex-guarded map and the text format's escaping rules are
//! all this needs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

/// The labels of one series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnswerLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
    pub error: String,
    pub key: String,
    pub client: &'static str,
}

/// How many answers a series counted, and when (seconds since the epoch) the latest came.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    count: u64,
    last_seconds: f64,
}

/// Series beyond this many are folded into one overflow series (labels `(overflow)`).
const MAX_SERIES: usize = 2000;
const OVERFLOW: &str = "(overflow)";

/// The counters of this process.
#[derive(Debug, Default)]
pub struct ErrorAnswers {
    series: Mutex<BTreeMap<AnswerLabels, Tally>>,
}

/// The `client` label of a `User-Agent`.
pub fn client_of(user_agent: Option<&str>) -> &'static str {
    match user_agent {
        Some(agent) if agent.starts_with("kneo-ops/") => "kneo-ops",
        Some(agent) if agent.starts_with("kneo-tui/") => "kneo-tui",
        _ => "other",
    }
}

impl ErrorAnswers {
    /// Counts one error answer, at `now_seconds` (seconds since the epoch).
    pub fn record(&self, labels: AnswerLabels, now_seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let labels = if series.len() >= MAX_SERIES && !series.contains_key(&labels) {
            AnswerLabels {
                route: OVERFLOW.into(),
                method: OVERFLOW.into(),
                status: labels.status,
                error: OVERFLOW.into(),
                key: OVERFLOW.into(),
                client: labels.client,
            }
        } else {
            labels
        };
        let tally = series.entry(labels).or_default();
        tally.count += 1;
        tally.last_seconds = tally.last_seconds.max(now_seconds);
    }

    /// Both families in the text exposition format (nothing at all before the first error).
    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.is_empty() {
            return;
        }
        let _ = write!(
            out,
            "# HELP kneo_http_error_answers_total HTTP answers with a 4xx or 5xx status, by route template, method, status, error code, key name and calling tool.\n\
             # TYPE kneo_http_error_answers_total counter\n"
        );
        for (labels, tally) in series.iter() {
            let _ = writeln!(
                out,
                "kneo_http_error_answers_total{{{}}} {}",
                render_labels(labels),
                tally.count
            );
        }
        let _ = write!(
            out,
            "# HELP kneo_http_error_answer_last_seconds When the latest answer of the series was given (seconds since the epoch).\n\
             # TYPE kneo_http_error_answer_last_seconds gauge\n"
        );
        for (labels, tally) in series.iter() {
            let _ = writeln!(
                out,
                "kneo_http_error_answer_last_seconds{{{}}} {:.3}",
                render_labels(labels),
                tally.last_seconds
            );
        }
    }
}

fn render_labels(labels: &AnswerLabels) -> String {
    format!(
        "route=\"{}\",method=\"{}\",status=\"{}\",error=\"{}\",key=\"{}\",client=\"{}\"",
        escape(&labels.route),
        escape(&labels.method),
        labels.status,
        escape(&labels.error),
        escape(&labels.key),
        labels.client
    )
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(status: u16, key: &str) -> AnswerLabels {
        AnswerLabels {
            route: "/v1/runs/{run_id}".into(),
            method: "POST".into(),
            status,
            error: "forbidden".into(),
            key: key.into(),
            client: "other",
        }
    }

    #[test]
    fn series_count_and_remember_the_latest_answer() {
        let answers = ErrorAnswers::default();
        let mut empty = String::new();
        answers.render(&mut empty);
        assert!(empty.is_empty(), "no families before the first error");
        answers.record(labels(403, "view"), 100.0);
        answers.record(labels(403, "view"), 250.5);
        answers.record(labels(403, "odd\"name"), 90.0);
        let mut text = String::new();
        answers.render(&mut text);
        assert!(
            text.contains("kneo_http_error_answers_total{route=\"/v1/runs/{run_id}\",method=\"POST\",status=\"403\",error=\"forbidden\",key=\"view\",client=\"other\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kneo_http_error_answer_last_seconds{route=\"/v1/runs/{run_id}\",method=\"POST\",status=\"403\",error=\"forbidden\",key=\"view\",client=\"other\"} 250.500\n"),
            "{text}"
        );
        assert!(text.contains("key=\"odd\\\"name\""), "escaped: {text}");
        assert!(text.contains("# TYPE kneo_http_error_answers_total counter\n"));
        let parsed = kneo_client::wire::MetricsSnapshot::parse(&text);
        let read = parsed.series("kneo_http_error_answers_total");
        assert!(
            read.iter().any(|(l, v)| l["key"] == "odd\"name"
                && l["route"] == "/v1/runs/{run_id}"
                && *v == 1.0),
            "the tools read back what the server writes: {read:?}"
        );
    }

    #[test]
    fn too_many_series_fold_into_one() {
        let answers = ErrorAnswers::default();
        for index in 0..MAX_SERIES + 10 {
            answers.record(labels(404, &format!("k{index}")), 1.0);
        }
        let mut text = String::new();
        answers.render(&mut text);
        let lines = text
            .lines()
            .filter(|l| l.starts_with("kneo_http_error_answers_total{"))
            .count();
        assert_eq!(lines, MAX_SERIES + 1);
        assert!(
            text.contains("key=\"(overflow)\",client=\"other\"} 10\n"),
            "{text}"
        );
    }

    #[test]
    fn the_tools_are_told_apart_from_other_callers() {
        assert_eq!(client_of(Some("kneo-ops/0.1.0")), "kneo-ops");
        assert_eq!(client_of(Some("kneo-tui/0.1.0")), "kneo-tui");
        assert_eq!(client_of(Some("kneo-client/0.1.0")), "other");
        assert_eq!(client_of(None), "other");
    }
}
