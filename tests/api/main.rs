//! Black-box API tests: the real `kneo` binary on loopback, on the embedded store and on a real
//! throwaway Postgres.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abandoned;
mod attack;
mod cli;
mod conformance;
mod connections;
mod crashes;
mod degraded;
mod golden;
mod golden_routes;
mod golden_spec_behaviour;
mod human;
mod inputs;
mod overrides;
mod retries;
mod runs;
mod scale;
mod verdicts;

use std::path::Path;

/// Writes an extra spec file into a test server's spec root.
pub fn write_spec(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join("specs").join(name), text).expect("write a spec file");
}
