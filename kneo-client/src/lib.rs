//! kneo-client: the wire types of the kneo run service and an async HTTP client for them.
//!
//! Module map:
//! - [`wire`]: typed, lenient bodies of every answer the service gives (health, readiness, runs,
//!   traces, checkpoints, human tasks, audit events, service events, the error envelope, the
//!   Prometheus text). Unknown fields are ignored and optional fields are optional, because these
//!   types parse a service's answers and must survive kneo-serv 1.2 as well as kneo-server.
//! - [`client`]: [`Client`], one method per route, each time-bounded.
//! - [`reply`]: [`Reply`], what every call returns: HTTP status, raw body, latency, and either
//!   the typed value or a [`CallError`] that tells refused/unreachable, timeout, HTTP error status
//!   (with the envelope) and bad body apart.
//! - [`profile`]: where the target URL and API key come from (flags, `KNEO_SERV_URL`,
//!   `KNEO_SERV_API_KEY`, the CLI profile file at `KNEO_SERV_PROFILES_PATH`).
//! - [`profile_edit`]: writing that file (`kneo config profile set | use | delete`), 0600.
//! - [`exit`]: [`Exit`], the exit codes shared by `kneo`, `kneo-ops` and `kneo-tui`.

pub mod client;
pub mod exit;
pub mod profile;
pub mod profile_edit;
pub mod reply;
pub mod wire;

pub use client::{AuthScheme, Client, ClientConfig, ClientError};
pub use exit::Exit;
pub use profile::{DEFAULT_URL, ProfileError, Target, TargetOverrides};
pub use reply::{CallError, Reply};
/// URL parsing (reqwest's), re-exported so callers need no reqwest dependency of their own.
pub use reqwest::Url;
