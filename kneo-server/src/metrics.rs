//! Prometheus metrics with the kneo-serv 1.2 names, rendered as text at `GET /metrics`.
//!
//! A handful of atomics is all the service needs: counters are per process (they reset on
//! restart, as kneo-serv's do) and the queue gauges are read from the store at scrape time, so
//! they are true across every process sharing one Postgres.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::store::QueueCounts;

/// Counters and gauges of this process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub runs_started: AtomicU64,
    pub runs_completed: AtomicU64,
    pub runs_failed: AtomicU64,
    pub runs_dead_lettered: AtomicU64,
    pub runs_rejected: AtomicU64,
    pub tokens_input: AtomicU64,
    pub tokens_output: AtomicU64,
    pub workers: AtomicI64,
    pub http_requests: AtomicU64,
    pub http_server_errors: AtomicU64,
    pub human_tasks_requested: AtomicU64,
    pub human_tasks_resumed: AtomicU64,
    pub human_tasks_expired: AtomicU64,
    pub resume_conflicts: AtomicU64,
    /// Error answers by route, status, error code, key name and calling tool.
    pub answers: crate::answers::ErrorAnswers,
    /// Client connections open right now.
    pub http_connections: AtomicI64,
    /// Requests being served right now (each connection has at most one in flight).
    pub http_requests_in_flight: AtomicI64,
    /// Connections answered `503 too_many_connections` because every open one was busy.
    pub http_connections_refused: AtomicU64,
    /// Work of abandoned requests still running (it ends as if the client had waited).
    pub http_abandoned_work_running: AtomicI64,
    /// Requests whose client went away before the answer, by route.
    http_requests_abandoned: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

fn add(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Metrics {
    pub fn run_started(&self) {
        add(&self.runs_started, 1);
    }

    pub fn run_completed(&self) {
        add(&self.runs_completed, 1);
    }

    /// Failed, timed out or hit max iterations, as kneo-serv counts them.
    pub fn run_failed(&self) {
        add(&self.runs_failed, 1);
    }

    pub fn run_dead_lettered(&self) {
        add(&self.runs_dead_lettered, 1);
    }

    pub fn run_rejected(&self) {
        add(&self.runs_rejected, 1);
    }

    pub fn tokens(&self, input: u64, output: u64) {
        add(&self.tokens_input, input);
        add(&self.tokens_output, output);
    }

    pub fn http_request_abandoned(&self, route: &str) {
        let mut abandoned = self
            .http_requests_abandoned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *abandoned.entry(route.to_string()).or_insert(0) += 1;
    }

    pub fn http_response(&self, status: u16) {
        add(&self.http_requests, 1);
        if status >= 500 {
            add(&self.http_server_errors, 1);
        }
    }

    /// The Prometheus text exposition, with the queue gauges from `queue` (None when the store
    /// could not be read: the gauges are then left out rather than reported as zero).
    pub fn render(&self, queue: Option<&QueueCounts>) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let input = get(&self.tokens_input);
        let output = get(&self.tokens_output);
        let mut text = String::new();
        let mut emit = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        emit(
            "kneo_runs_started_total",
            "counter",
            "Runs that began execution.",
            get(&self.runs_started).to_string(),
        );
        emit(
            "kneo_runs_completed_total",
            "counter",
            "Runs that completed successfully.",
            get(&self.runs_completed).to_string(),
        );
        emit(
            "kneo_runs_failed_total",
            "counter",
            "Runs that ended in failure / timeout / max-iterations.",
            get(&self.runs_failed).to_string(),
        );
        emit(
            "kneo_runs_dead_lettered_total",
            "counter",
            "Runs dead-lettered after exceeding the retry cap.",
            get(&self.runs_dead_lettered).to_string(),
        );
        emit(
            "kneo_runs_rejected_total",
            "counter",
            "Runs rejected by queue-depth backpressure (queue at capacity).",
            get(&self.runs_rejected).to_string(),
        );
        emit(
            "kneo_tokens_input_total",
            "counter",
            "Input/prompt tokens consumed across runs.",
            input.to_string(),
        );
        emit(
            "kneo_tokens_output_total",
            "counter",
            "Output/completion tokens produced across runs.",
            output.to_string(),
        );
        emit(
            "kneo_tokens_total",
            "counter",
            "Total tokens (input + output) across runs.",
            (input + output).to_string(),
        );
        if let Some(queue) = queue {
            emit(
                "kneo_runs_queued",
                "gauge",
                "Runs currently queued and awaiting a worker.",
                queue.queued.to_string(),
            );
            emit(
                "kneo_runs_running",
                "gauge",
                "Runs currently leased by a worker.",
                queue.running.to_string(),
            );
            emit(
                "kneo_runs_lease_expired",
                "gauge",
                "Running queue records whose lease expired (their worker probably died).",
                queue.expired_leases.to_string(),
            );
        }
        emit(
            "kneo_worker_count",
            "gauge",
            "Live worker threads in this process.",
            self.workers.load(Ordering::Relaxed).to_string(),
        );
        emit(
            "kneo_http_requests_total",
            "counter",
            "HTTP requests answered.",
            get(&self.http_requests).to_string(),
        );
        emit(
            "kneo_http_server_errors_total",
            "counter",
            "HTTP requests answered with a 5xx status.",
            get(&self.http_server_errors).to_string(),
        );
        emit(
            "kneo_http_connections",
            "gauge",
            "Client connections open.",
            self.http_connections.load(Ordering::Relaxed).to_string(),
        );
        emit(
            "kneo_http_requests_in_flight",
            "gauge",
            "HTTP requests being served.",
            self.http_requests_in_flight
                .load(Ordering::Relaxed)
                .to_string(),
        );
        emit(
            "kneo_http_abandoned_work_running",
            "gauge",
            "Requests whose client went away while the work they started still runs.",
            self.http_abandoned_work_running
                .load(Ordering::Relaxed)
                .to_string(),
        );
        emit(
            "kneo_http_connections_refused_total",
            "counter",
            "Connections refused with 503 because every open connection was busy.",
            get(&self.http_connections_refused).to_string(),
        );
        emit(
            "kneo_human_tasks_requested_total",
            "counter",
            "Human tasks opened by runs reaching a human step.",
            get(&self.human_tasks_requested).to_string(),
        );
        emit(
            "kneo_human_tasks_resumed_total",
            "counter",
            "Human tasks resumed with a decision.",
            get(&self.human_tasks_resumed).to_string(),
        );
        emit(
            "kneo_human_tasks_expired_total",
            "counter",
            "Human tasks that passed their timeout.",
            get(&self.human_tasks_expired).to_string(),
        );
        emit(
            "kneo_human_resume_conflicts_total",
            "counter",
            "Resumes refused with 409 (lock held or run no longer blocked).",
            get(&self.resume_conflicts).to_string(),
        );
        self.answers.render(&mut text);
        // Labelled, so written after the single-value families.
        let _ = write!(
            text,
            "# HELP kneo_http_requests_abandoned_total Requests whose client went away before the answer (the work they started still ran to its end).\n# TYPE kneo_http_requests_abandoned_total counter\n"
        );
        for (route, count) in self
            .http_requests_abandoned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                text,
                "kneo_http_requests_abandoned_total{{route=\"{route}\"}} {count}"
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_has_the_kneo_serv_names_and_real_values() {
        let metrics = Metrics::default();
        metrics.run_started();
        metrics.run_started();
        metrics.run_completed();
        metrics.tokens(3, 4);
        let queue = QueueCounts {
            queued: 7,
            running: 1,
            ..QueueCounts::default()
        };
        let text = metrics.render(Some(&queue));
        assert!(text.contains("kneo_runs_started_total 2\n"), "{text}");
        assert!(text.contains("kneo_runs_completed_total 1\n"));
        assert!(text.contains("kneo_tokens_total 7\n"));
        assert!(text.contains("kneo_runs_queued 7\n"));
        assert!(text.contains("# TYPE kneo_worker_count gauge\n"));
    }

    #[test]
    fn abandoned_requests_are_counted_by_route() {
        let metrics = Metrics::default();
        metrics.http_request_abandoned("/v1/runs");
        metrics.http_request_abandoned("/v1/runs");
        metrics.http_request_abandoned("/v1/human-tasks/{continuation_id}/resume");
        let text = metrics.render(None);
        assert!(text.contains("# TYPE kneo_http_requests_abandoned_total counter\n"));
        assert!(text.contains("kneo_http_requests_abandoned_total{route=\"/v1/runs\"} 2\n"));
        assert!(text.contains(
            "kneo_http_requests_abandoned_total{route=\"/v1/human-tasks/{continuation_id}/resume\"} 1\n"
        ));
    }

    #[test]
    fn queue_gauges_are_omitted_when_the_store_is_unreadable() {
        let text = Metrics::default().render(None);
        assert!(!text.contains("kneo_runs_queued"));
        assert!(text.contains("kneo_runs_started_total 0"));
    }
}
