//! The Prometheus text of `GET /metrics`, reduced to the samples triage reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Unlabelled samples by metric name (kneo's metrics carry no labels); labelled samples are kept
/// under their full series name, e.g. `name{label="x"}`.
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
            let series_end = match line.find('}') {
                Some(close) => close + 1,
                None => line.find(char::is_whitespace).unwrap_or(line.len()),
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
}
