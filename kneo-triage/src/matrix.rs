//! The readiness failure matrix: which runbook section explains a failing `/readyz` check.
//!
//! This is the one copy of the table. kneo-server writes it into each failing check's `runbook`
//! field, and the triage tree (kneo-ops, kneo-tui) looks failing checks up here, so the service
//! and the tools never disagree about where to read.

/// Where the runbook explains a failing check (`check` is its name, `kind` its stable error kind).
pub fn runbook_section(check: &str, kind: Option<&str>) -> &'static str {
    /// Kinds that mean the database cannot be reached or logged into.
    const UNREACHABLE: [&str; 5] = [
        "connection_refused",
        "auth_failed",
        "timeout",
        "database_missing",
        "unavailable",
    ];
    /// Kinds that mean the embedded store's files are missing, unwritable or damaged.
    const FILES: [&str; 4] = ["not_found", "permission_denied", "io_error", "corrupt"];
    match (check, kind) {
        ("api", _) => "1.3",
        (_, Some("schema_too_new")) => "2.7",
        ("run_state_store", Some("schema_missing")) => "2.4",
        ("run_state_store", Some("locked")) => "2.3",
        ("continuation_store", Some("corrupt")) => "8.3",
        ("run_state_store" | "continuation_store" | "queue", Some(kind))
            if UNREACHABLE.contains(&kind) =>
        {
            "2.2"
        }
        ("run_state_store" | "continuation_store", Some(kind)) if FILES.contains(&kind) => "2.8",
        ("run_state_store" | "continuation_store", _) => "2",
        ("queue", _) => "5.1",
        ("providers" | "mcp", _) => "3.2",
        _ => "extending",
    }
}

/// The eight check names, in the order the services report them.
pub const CHECK_NAMES: [&str; 8] = [
    "api",
    "run_state_store",
    "continuation_store",
    "queue",
    "runtime_registry",
    "tool_registry",
    "providers",
    "mcp",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_a_runbook_section() {
        for name in CHECK_NAMES {
            assert!(!runbook_section(name, None).is_empty());
        }
        assert_eq!(
            runbook_section("run_state_store", Some("schema_too_new")),
            "2.7"
        );
        assert_eq!(runbook_section("providers", None), "3.2");
    }
}
