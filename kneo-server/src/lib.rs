//! kneo-server: the kneo run service.
//!
//! Module map:
//! - [`config`]: every `KNEO_SERV_*` variable, read once into a typed [`config::Config`].
//! - [`app`]: builds the shared state and serves the HTTP API on a listener until shutdown.
//! - [`connections`]: the listener's backlog, the connection cap, header-read timeout, file limit.
//! - [`api`]: the axum router, one file per resource, plus auth, errors, limits and request logs.
//! - [`readiness`]: the eight `/readyz` checks and their stable error kinds.
//! - [`postgres_client`]: the one way to open Postgres (libpq settings, rustls TLS).
//! - [`store`]: the storage traits and their SQLite (embedded default) and Postgres backends.
//! - [`spec`]: parse, confine and validate `version: v1` YAML specs.
//! - [`engine`]: executes a validated spec: agents, functions, providers, step policies.
//! - [`platform`]: the run lifecycle on top of the store and the engine (create, cancel, continue).
//! - [`worker`]: queue workers that claim async runs under a lease.
//! - [`service_events`]: the service's own history (starts, readiness transitions).
//! - [`metrics`], [`telemetry`]: Prometheus text and JSON logs; [`answers`]: error answers by
//!   route, status, key name and calling tool (what triage reads about callers).
//! - [`redact`]: secret redaction applied before anything is stored or returned.

pub mod answers;
pub mod api;
pub mod app;
pub mod backup;
pub mod clock;
pub mod config;
pub mod connections;
pub mod drill;
pub mod engine;
pub mod faults;
pub mod metrics;
pub mod platform;
pub mod postgres_client;
pub mod readiness;
pub mod redact;
pub mod service_events;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod worker;

/// The version this build reports in `/healthz` and records in service events.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `service` field of the health bodies, as kneo-serv 1.2 reports it.
pub const SERVICE_NAME: &str = "kneo-serv-platform";
