//! Child processes with a deadline: the one place the kneo crates spawn a child, bound it in
//! time, signal it and its process group, and read its output.
//!
//! - [`run`]: runs a program to completion: input on stdin, stdout and stderr capped, a
//!   deadline past which it is killed (with its process group when it has one of its own).
//! - [`group`]: spawns a long-lived child as the leader of a new process group and kills the
//!   group (MCP servers, which keep their pipes open between calls).
//! - [`capped`]: reads a stream keeping at most a given number of bytes, its head or its tail.
//! - [`server`]: a child that runs until told to stop (a kneo server under test or under
//!   `kneo-tui --local`): the first line it prints, within a limit, and a stop that sends
//!   SIGTERM, waits a grace period, then kills.
//! - [`watchdog`]: runs a command once this process is gone, however it ended (a clean exit,
//!   a panic, or SIGKILL).
//!
//! Signals go through rustix's checked wrappers, so this crate, like every kneo crate, makes no
//! raw system call of its own.
//! It sits at the bottom of the crate graph (it depends on tokio and rustix only), so the
//! server, the ops tool, the dashboard and the test harness can all call it.

pub mod capped;
pub mod group;
pub mod run;
pub mod server;
pub mod watchdog;

pub use capped::{Cap, Captured};
pub use group::{ProcessGroup, spawn_in_own_group};
pub use run::{Finished, Run, RunError};
pub use watchdog::Watchdog;

/// What the tests of several modules look at: whether a process still runs.
#[cfg(test)]
mod test_support {
    use std::time::Duration;

    /// Whether `pid` runs (a zombie, which only waits to be reaped, counts as gone).
    pub(crate) fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    }

    /// Waits for `pid` to be gone; the bound only keeps a broken kill from hanging the test.
    pub(crate) async fn gone(pid: u32) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}
