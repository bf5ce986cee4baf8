//! kneo-ops: scripted operations for the kneo run service.
//!
//! Module map:
//! - [`runbook`]: `docs/troubleshooting.md` and `docs/incident_response.md`, embedded at build
//!   time and parsed into sections (`section("3.2")`).
//! - [`triage`]: the verdict tree of DESIGN.md § 5, a pure function of [`triage::Probes`];
//!   shared with kneo-tui.
//! - [`probe`]: collects [`triage::Probes`] from a live service, concurrently and time-bounded.
//! - [`capture`]: the escalation bundle (`kneo-ops capture`): collectors, redaction, archive.
//! - [`bundle`]: reads a bundle back: verifies it (`kneo-ops bundle inspect`) and loads its probe
//!   answers for an offline triage ([`bundle::load_probes`], `kneo-tui --bundle`).
//! - [`manifest`]: the bundle's `manifest.json` types, shared by [`capture`] and [`bundle`].
//! - [`redaction`]: kneo-server's redaction rules plus the secrets this run knows about.
//! - [`units`]: `60s`/`1h` durations and `50MB` sizes on the command line.

pub mod archives;
pub mod bundle;
pub mod capture;
pub mod manifest;
pub mod probe;
pub mod redaction;
pub mod rollback;
pub mod runbook;
pub mod triage;
pub mod units;
