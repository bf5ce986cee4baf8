//! kneo-triage: the triage model of the kneo run service (DESIGN.md § 5), shared by kneo-ops and
//! kneo-tui, with no dependency on the server: only the wire types of kneo-client.
//!
//! Module map:
//! - [`runbook`]: `docs/troubleshooting.md` and `docs/incident_response.md`, embedded at build
//!   time and parsed into sections (`section("3.2")`).
//! - [`matrix`]: the readiness failure matrix (failing check and kind → runbook section); the
//!   server's readiness `runbook` field comes from the same table.
//! - [`triage`]: the verdict tree, a pure function of [`triage::Probes`].
//! - [`probe`]: collects [`triage::Probes`] from a live service, concurrently and time-bounded.
//! - [`bundle`]: reads a `kneo-ops capture` bundle back: verifies it (`kneo-ops bundle inspect`)
//!   and loads its probe answers for an offline triage ([`bundle::load_probes`],
//!   `kneo-tui --bundle`).
//! - [`manifest`]: the bundle's `manifest.json` types and where the probe answers are stored.
//! - [`archive`]: what an archive is (a backup, a bundle, or neither), for every command that
//!   reads one.
//! - [`units`]: `60s`/`1h` durations and `50MB` sizes on the command line.

pub mod archive;
pub mod bundle;
pub mod manifest;
pub mod matrix;
pub mod probe;
pub mod runbook;
pub mod triage;
pub mod units;
