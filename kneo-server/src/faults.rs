//! Fault points for crash tests: named places where the process can be made to die on purpose.
//!
//! `KNEO_SERV_FAULTS=after_continuation_write,after_resume_accepted` makes the process abort
//! (as `kill -9` would kill it) the first time execution reaches one of the named points. Unset,
//! a point costs one relaxed atomic load. Never set this in production.

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("KNEO_SERV_FAULTS")
            .map(|names| {
                names
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Aborts the process if the fault point `name` is armed.
pub fn point(name: &str) {
    if armed().iter().any(|armed| armed == name) {
        eprintln!("kneo: fault point {name} reached; aborting as requested by KNEO_SERV_FAULTS");
        std::process::abort();
    }
}
