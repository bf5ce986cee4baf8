//! Rollback drills: a service can present itself as another version, and apply one extra
//! migration, so a team can rehearse "upgrade, fail, roll back" on a staging copy with one
//! binary (and the tests can do the same).
//!
//! - `KNEO_SERV_DRILL_VERSION=0.9.0` reports that version (health bodies, service events).
//! - `KNEO_SERV_DRILL_EXTRA_MIGRATION=true` adds migration [`EXTRA_MIGRATION_VERSION`] (an empty
//!   marker table), as a newer release would; the same binary without it then refuses the
//!   database as `schema_too_new`, exactly like the real previous version.
//! - `KNEO_SERV_DRILL_BROKEN_RELEASE=true` makes the `api` readiness check fail (`internal`), as a
//!   release broken in itself would: the failure `kneo-ops rollback plan` rolls back for (a
//!   failing dependency, such as a missing secret, it refuses to roll back for).
//!
//! Neither is meant for production.

use std::sync::OnceLock;

use crate::store::SCHEMA_VERSION;

/// The version number of the drill's extra migration.
pub const EXTRA_MIGRATION_VERSION: i64 = SCHEMA_VERSION + 1;

/// The extra migration's name and SQL (valid on both backends).
pub const EXTRA_MIGRATION: (&str, &str) = ("drill_marker", "CREATE TABLE drill_marker (note TEXT)");

fn switched_on(variable: &str) -> bool {
    std::env::var(variable)
        .map(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

fn extra_migration_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| switched_on("KNEO_SERV_DRILL_EXTRA_MIGRATION"))
}

/// Whether this process plays a release that is broken in itself (its `api` check fails).
pub fn broken_release() -> bool {
    static BROKEN: OnceLock<bool> = OnceLock::new();
    *BROKEN.get_or_init(|| switched_on("KNEO_SERV_DRILL_BROKEN_RELEASE"))
}

/// The newest schema version this process knows (one more during a drill upgrade).
pub fn known_schema_version() -> i64 {
    if extra_migration_enabled() {
        EXTRA_MIGRATION_VERSION
    } else {
        SCHEMA_VERSION
    }
}

/// The drill's extra migration, when enabled.
pub fn extra_migration() -> Option<(i64, &'static str, &'static str)> {
    extra_migration_enabled().then_some((
        EXTRA_MIGRATION_VERSION,
        EXTRA_MIGRATION.0,
        EXTRA_MIGRATION.1,
    ))
}

/// The version this process reports.
pub fn version() -> &'static str {
    static REPORTED: OnceLock<String> = OnceLock::new();
    REPORTED.get_or_init(|| {
        std::env::var("KNEO_SERV_DRILL_VERSION")
            .ok()
            .map(|version| version.trim().to_string())
            .filter(|version| !version.is_empty())
            .unwrap_or_else(|| crate::VERSION.to_string())
    })
}
