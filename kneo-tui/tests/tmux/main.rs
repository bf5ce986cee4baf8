//! End-to-end tests: the real `kneo-tui` binary in a detached tmux session of fixed size,
//! against a real `kneo` server (on Postgres where the test needs to stop the database), read
//! back with `tmux capture-pane`. Every wait polls the screen against a deadline; no fixed sleeps.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod bundle;
mod local;
mod matrix;
mod outage;
mod profile;
mod restore;
