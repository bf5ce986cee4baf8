//! Rolling back after a failed upgrade: [`plan`] decides from the service's history and the
//! archives at hand; the `kneo-ops rollback` command shows the plan or carries it out.

pub mod plan;

pub use plan::{BackupCandidate, Deploy, HistoryEvent, Plan, Step, StepCommands, Verdict};
