//! What other callers hit: kneo-server counts its error answers by route template, status, error
//! code, key name and calling tool (`kneo_http_error_answers_total`, with the time of the latest
//! in `kneo_http_error_answer_last_seconds`). Series answered within the window that the symptom
//! table knows (401 § 4.1, 403 § 4.2, 409 § 5.4 / § 8.1, …) become symptoms naming the consumer;
//! the tools' own answers (`client` `kneo-ops` / `kneo-tui`) never do.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::symptoms;
use super::super::{Level, Probes, Thresholds, Verdict, human_duration};

const COUNTS: &str = "kneo_http_error_answers_total";
const LAST: &str = "kneo_http_error_answer_last_seconds";

/// One series: who, where, how often, how long ago the latest.
struct Series {
    key: String,
    method: String,
    route: String,
    count: f64,
    ago: Duration,
}

fn consumer(key: &str) -> String {
    match key {
        "(none)" => "callers without a key".into(),
        "(unknown)" => "callers with an unknown key".into(),
        "anonymous" => "anonymous callers".into(),
        name => format!("key {name}"),
    }
}

pub(crate) fn findings(probes: &Probes, thresholds: &Thresholds) -> Vec<Verdict> {
    let Some(metrics) = probes.metrics.as_ref().and_then(|m| m.value()) else {
        return Vec::new();
    };
    let now = probes.observed_at.timestamp_millis() as f64 / 1000.0;
    let last: BTreeMap<String, f64> = metrics
        .series(LAST)
        .into_iter()
        .map(|(labels, value)| (series_key(&labels), value))
        .collect();
    let mut grouped: BTreeMap<(u16, String), Vec<Series>> = BTreeMap::new();
    for (labels, count) in metrics.series(COUNTS) {
        let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
        if label("client") != "other" {
            continue;
        }
        let Ok(status) = label("status").parse::<u16>() else {
            continue;
        };
        // 5xx answers are judged by readiness and the burst rule, not per caller.
        if !(400..500).contains(&status) {
            continue;
        }
        let Some(latest) = last.get(&series_key(&labels)) else {
            continue;
        };
        let ago = Duration::from_secs_f64((now - latest).max(0.0));
        if ago > thresholds.recent_events {
            continue;
        }
        grouped
            .entry((status, label("error")))
            .or_default()
            .push(Series {
                key: label("key"),
                method: label("method"),
                route: label("route"),
                count,
                ago,
            });
    }
    let window = human_duration(thresholds.recent_events);
    grouped
        .into_iter()
        .filter_map(|((status, error), mut series)| {
            let first_route = series.first().map(|s| s.route.clone()).unwrap_or_default();
            let symptom = symptoms::lookup(status, Some(error.as_str()), &first_route)?;
            series.sort_by_key(|s| s.ago);
            let mut keys: Vec<&str> = series.iter().map(|s| s.key.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            let who = match keys.as_slice() {
                [one] => consumer(one),
                many => format!("{} consumers", many.len()),
            };
            let place = match series.as_slice() {
                [one] => format!(" on {} {}", one.method, one.route),
                _ => String::new(),
            };
            let lines: Vec<String> = series
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} × {} {} (latest {} ago)",
                        consumer(&s.key),
                        s.count,
                        s.method,
                        s.route,
                        human_duration(s.ago)
                    )
                })
                .collect();
            let code = if error.is_empty() {
                String::new()
            } else {
                format!(" {error}")
            };
            Some(
                Verdict::new(
                    4,
                    format!("symptom.callers.{status}{}", if error.is_empty() { String::new() } else { format!(".{error}") }),
                    Level::Warn,
                    format!("{who} got HTTP {status}{code}{place}"),
                )
                .with_detail(format!(
                    "{}: {} (answers counted by the service since it started; shown while the latest is under {window} old)",
                    symptom.meaning,
                    lines.join("; ")
                ))
                .with_section(symptom.section),
            )
        })
        .collect()
}

fn series_key(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}
