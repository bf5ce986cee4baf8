//! The readiness failure matrix: which runbook section explains a failing `/readyz` check.
//!
//! This is the one copy of the table. kneo-server writes it into each failing check's `runbook`
//! field, and the triage tree (kneo-ops, kneo-tui) looks failing checks up here, so the service
//! and the tools never disagree about where to read.

/// Which store the service runs on: some kinds mean different things on each (a
/// `permission_denied` is a file's mode on the embedded store, a missing grant on Postgres).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// SQLite and continuation files under `KNEO_SERV_STATE_DIR`.
    Embedded,
    Postgres,
    /// Not told (kneo-serv 1.2's checks do not always say).
    Unknown,
}

impl Store {
    /// The store a readiness answer describes, from the kinds its `queue` and
    /// `continuation_store` checks report.
    pub fn of(readiness: &kneo_client::wire::Readiness) -> Store {
        ["queue", "continuation_store"]
            .into_iter()
            .filter_map(|name| readiness.check(name)?.kind.as_deref())
            .map(Store::from_kind)
            .find(|store| *store != Store::Unknown)
            .unwrap_or(Store::Unknown)
    }

    /// From the `kind` the `queue` or `continuation_store` check reports
    /// (`SQLiteRunStateStore`, `PostgresRunStateStore`, `files`, `postgres`).
    pub fn from_kind(kind: &str) -> Store {
        let kind = kind.to_ascii_lowercase();
        if kind.contains("postgres") {
            Store::Postgres
        } else if kind.contains("sqlite") || kind == "files" {
            Store::Embedded
        } else {
            Store::Unknown
        }
    }
}

/// Where the runbook explains a failing check (`check` is its name, `kind` its stable error kind).
pub fn runbook_section(check: &str, kind: Option<&str>, store: Store) -> &'static str {
    /// Kinds that mean the database cannot be reached or logged into.
    const UNREACHABLE: [&str; 5] = [
        "connection_refused",
        "auth_failed",
        "timeout",
        "database_missing",
        "unavailable",
    ];
    /// Kinds that mean the TLS session with Postgres failed.
    const TLS: [&str; 2] = ["tls_failed", "certificate_invalid"];
    /// Kinds that mean the embedded store's files are missing, unwritable or damaged.
    const FILES: [&str; 4] = ["not_found", "permission_denied", "io_error", "corrupt"];
    match (check, kind) {
        ("api", _) => "1.3",
        (_, Some("schema_too_new")) => "2.7",
        ("run_state_store", Some("schema_missing")) => "2.4",
        ("run_state_store", Some("locked")) => "2.3",
        ("continuation_store", Some("corrupt")) => "8.3",
        ("run_state_store" | "continuation_store" | "queue", Some(kind)) if TLS.contains(&kind) => {
            "2.9"
        }
        ("run_state_store" | "continuation_store" | "queue", Some(kind))
            if UNREACHABLE.contains(&kind) =>
        {
            "2.2"
        }
        // On Postgres a refused table operation is a grant (§ 2.2); only the embedded store's
        // files have modes (§ 2.8).
        ("run_state_store" | "continuation_store" | "queue", Some("permission_denied"))
            if store != Store::Embedded =>
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
            assert!(!runbook_section(name, None, Store::Unknown).is_empty());
        }
        assert_eq!(
            runbook_section("run_state_store", Some("schema_too_new"), Store::Postgres),
            "2.7"
        );
        assert_eq!(runbook_section("providers", None, Store::Unknown), "3.2");
        for kind in ["tls_failed", "certificate_invalid"] {
            for check in ["run_state_store", "continuation_store", "queue"] {
                assert_eq!(runbook_section(check, Some(kind), Store::Postgres), "2.9");
            }
        }
    }

    #[test]
    fn permission_denied_depends_on_the_store() {
        let section = |check, store| runbook_section(check, Some("permission_denied"), store);
        assert_eq!(section("run_state_store", Store::Postgres), "2.2");
        assert_eq!(section("run_state_store", Store::Unknown), "2.2");
        assert_eq!(section("run_state_store", Store::Embedded), "2.8");
        assert_eq!(section("continuation_store", Store::Embedded), "2.8");
        assert_eq!(section("queue", Store::Postgres), "2.2");
        assert_eq!(Store::from_kind("PostgresRunStateStore"), Store::Postgres);
        assert_eq!(Store::from_kind("SQLiteRunStateStore"), Store::Embedded);
        assert_eq!(Store::from_kind("files"), Store::Embedded);
        assert_eq!(Store::from_kind("something"), Store::Unknown);
    }
}
