//! kneo-ops: scripted operations for the kneo run service.
//!
//! The triage model, the runbook, the probes and the bundle reader live in `kneo_triage` (shared
//! with kneo-tui); this crate adds what only the scripted operations need.
//!
//! Module map:
//! - [`capture`]: the escalation bundle (`kneo-ops capture`): collectors, redaction, archive.
//! - [`redaction`]: kneo-server's redaction rules plus the secrets this run knows about.
//! - [`archives`]: the local backup directory: list and prune archives.
//! - [`rollback`]: the rollback plan after a failed upgrade.

pub mod archives;
pub mod capture;
pub mod redaction;
pub mod rollback;
