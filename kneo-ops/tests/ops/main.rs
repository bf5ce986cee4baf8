//! Acceptance tests of kneo-ops against the real `kneo` server and small fake services.
//!
//! One test binary (faster to link); each module is one area.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_cli;
mod bundle_cli;
mod capture_budget;
mod capture_canary;
mod capture_dead;
mod capture_real;
mod environment_policies;
mod help;
mod kneo_serv_cli;
mod rollback_drill;
mod support;
mod triage_real;
