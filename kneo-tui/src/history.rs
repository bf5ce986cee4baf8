//! The last polls, kept in memory (bounded: the oldest sample goes when a new one comes), for the
//! backlog sparkline, the readiness strip and the "backlog rising while no worker" rule.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_triage::triage::{BacklogSample, Health};

/// What one poll saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// `None`: the service did not answer.
    pub health: Option<Health>,
    /// `/readyz` said ready (`None`: no answer).
    pub ready: Option<bool>,
    pub queued: Option<i64>,
    pub running: Option<i64>,
    pub workers: Option<i64>,
    pub latency: Duration,
}

/// A ring of samples, newest last.
#[derive(Debug, Clone)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            samples: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Sample> {
        self.samples.iter()
    }

    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Samples taken within `window` before `now`, oldest first, as the triage rule wants them.
    pub fn backlog_since(&self, now: DateTime<Utc>, window: Duration) -> Vec<BacklogSample> {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        self.samples
            .iter()
            .filter(|sample| now - sample.at <= window)
            .filter_map(|sample| {
                sample.queued.map(|queued| BacklogSample {
                    at: sample.at,
                    queued,
                    workers: sample.workers,
                })
            })
            .collect()
    }

    /// Queue depth of the last `count` samples, oldest first (unknown counts as 0).
    pub fn queue_depths(&self, count: usize) -> Vec<u64> {
        let skip = self.samples.len().saturating_sub(count);
        self.samples
            .iter()
            .skip(skip)
            .map(|sample| sample.queued.unwrap_or(0).max(0) as u64)
            .collect()
    }

    /// One character per sample, oldest first: `·` ready, `✗` not ready, `?` no answer.
    pub fn readiness_strip(&self, count: usize) -> String {
        let skip = self.samples.len().saturating_sub(count);
        self.samples
            .iter()
            .skip(skip)
            .map(|sample| match sample.ready {
                Some(true) => '·',
                Some(false) => '✗',
                None => '?',
            })
            .collect()
    }

    /// How often readiness changed across the kept samples.
    pub fn readiness_flips(&self) -> usize {
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .filter(|(a, b)| a.ready != b.ready)
            .count()
    }

    /// The queue depth trend over the kept samples: first and last known depth.
    pub fn depth_trend(&self) -> Option<(i64, i64)> {
        let first = self.samples.iter().find_map(|s| s.queued)?;
        let last = self.samples.iter().rev().find_map(|s| s.queued)?;
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample(second: u32, ready: Option<bool>, queued: Option<i64>) -> Sample {
        Sample {
            at: Utc
                .with_ymd_and_hms(2026, 11, 28, 12, 0, second)
                .single()
                .expect("time"),
            health: None,
            ready,
            queued,
            running: None,
            workers: Some(0),
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_samples() {
        let mut history = History::new(3);
        for second in 0..5 {
            history.push(sample(second, Some(second % 2 == 0), Some(second as i64)));
        }
        assert_eq!(history.len(), 3);
        assert_eq!(history.queue_depths(10), vec![2, 3, 4]);
        assert_eq!(history.readiness_strip(2), "✗·");
        assert_eq!(history.readiness_flips(), 2);
        assert_eq!(history.depth_trend(), Some((2, 4)));
    }

    #[test]
    fn backlog_window_drops_old_and_unknown_samples() {
        let mut history = History::new(10);
        history.push(sample(0, None, None));
        history.push(sample(10, Some(true), Some(1)));
        history.push(sample(50, Some(true), Some(3)));
        let now = sample(55, None, None).at;
        let recent = history.backlog_since(now, Duration::from_secs(30));
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].queued, 3);
        assert_eq!(history.readiness_strip(10), "?··");
    }
}
