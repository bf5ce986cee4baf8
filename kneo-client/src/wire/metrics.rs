//! The Prometheus text of `GET /metrics`, reduced to the samples triage reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Unlabelled samples by metric name; labelled samples are kept under their full series name,
/// e.g. `name{label="x"}`, and read back with their labels by [`MetricsSnapshot::series`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    pub samples: BTreeMap<String, f64>,
}

impl MetricsSnapshot {
    /// Parses the text exposition format; lines that are not samples are skipped.
    pub fn parse(text: &str) -> MetricsSnapshot {
        let mut samples = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The series ends at the last space before the value (label values may hold spaces).
            let series_end = match line.find('{') {
                Some(open) if open < line.find(char::is_whitespace).unwrap_or(line.len()) => {
                    match closing_brace(&line[open..]) {
                        Some(close) => open + close + 1,
                        None => continue,
                    }
                }
                _ => line.find(char::is_whitespace).unwrap_or(line.len()),
            };
            let (series, rest) = line.split_at(series_end);
            let Some(value) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            samples.insert(series.trim().to_string(), value);
        }
        MetricsSnapshot { samples }
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.samples.get(name).copied()
    }

    /// `kneo_worker_count`: live workers in the scraped process.
    pub fn worker_count(&self) -> Option<i64> {
        self.get("kneo_worker_count").map(|v| v as i64)
    }

    /// `kneo_runs_queued`: runs waiting for a worker (left out when the store is unreadable).
    pub fn queued(&self) -> Option<i64> {
        self.get("kneo_runs_queued").map(|v| v as i64)
    }

    pub fn running(&self) -> Option<i64> {
        self.get("kneo_runs_running").map(|v| v as i64)
    }

    /// `kneo_runs_lease_expired`: running records whose worker probably died.
    pub fn expired_leases(&self) -> Option<i64> {
        self.get("kneo_runs_lease_expired").map(|v| v as i64)
    }

    /// Every sample of the labelled metric `name`, with its labels.
    pub fn series(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let prefix = format!("{name}{{");
        self.samples
            .range(prefix.clone()..)
            .take_while(|(series, _)| series.starts_with(&prefix))
            .filter_map(|(series, value)| {
                let inner = series.strip_prefix(&prefix)?.strip_suffix('}')?;
                Some((parse_labels(inner)?, *value))
            })
            .collect()
    }
}

/// Where the label list that `text` opens with ends: the first `}` outside a quoted value (route
/// templates such as `/v1/runs/{run_id}` are label values).
fn closing_brace(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(index),
            _ => {}
        }
    }
    None
}

/// `a="x",b="y\"z"` → `{a: x, b: y"z}`; `None` when the text is not a label list.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (index, c) = chars.next()?;
            match c {
                '"' => break index,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        };
        labels.insert(name.trim().to_string(), value);
        rest = after[end + 2..].trim_start_matches(',').trim_start();
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_and_comments_skipped() {
        let text = "# HELP kneo_worker_count Live worker threads.\n# TYPE kneo_worker_count gauge\nkneo_worker_count 2\n\
                    kneo_runs_queued 7\nhttp_requests{path=\"/a b\"} 3 1700000000\nbroken_line\n";
        let snapshot = MetricsSnapshot::parse(text);
        assert_eq!(snapshot.worker_count(), Some(2));
        assert_eq!(snapshot.queued(), Some(7));
        assert_eq!(snapshot.get("http_requests{path=\"/a b\"}"), Some(3.0));
        assert_eq!(snapshot.running(), None);
        assert_eq!(snapshot.samples.len(), 3);
    }

    #[test]
    fn labelled_series_are_read_with_their_labels() {
        let text = "kneo_http_error_answers_total{route=\"/v1/runs\",status=\"403\",key=\"view\"} 3\n\
                    kneo_http_error_answers_total{route=\"/a,\\\"b\\\"\",status=\"409\",key=\"\"} 1\n\
                    kneo_http_error_answers_total{route=\"/v1/runs/{run_id}\",status=\"404\",key=\"\"} 2\n\
                    kneo_http_error_answers_totalish{x=\"1\"} 9\n";
        let snapshot = MetricsSnapshot::parse(text);
        let series = snapshot.series("kneo_http_error_answers_total");
        assert_eq!(series.len(), 3, "{series:?}");
        assert!(
            series
                .iter()
                .any(|(labels, value)| labels["route"] == "/v1/runs/{run_id}" && *value == 2.0),
            "a brace inside a value does not end the labels: {series:?}"
        );
        let forbidden = series
            .iter()
            .find(|(labels, _)| labels["status"] == "403")
            .expect("the 403 series");
        assert_eq!(forbidden.0["key"], "view");
        assert_eq!(forbidden.1, 3.0);
        assert!(
            series
                .iter()
                .any(|(labels, _)| labels["route"] == "/a,\"b\"" && labels["key"].is_empty()),
            "escaped quotes and commas inside values: {series:?}"
        );
    }
}
