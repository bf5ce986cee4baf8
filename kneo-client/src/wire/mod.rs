//! Typed bodies of the service's answers, lenient by design (unknown fields ignored).
//!
//! - [`health`]: `/healthz`, `/livez`, `/readyz` (200 and the 503 `not_ready` envelope) and
//!   `GET /v1/health`.
//! - [`runs`]: runs, run lists, traces, checkpoints, recovery.
//! - [`human_tasks`], [`audit`], [`service_events`]: the other lists.
//! - [`errors`]: the error envelope `{"detail": {"error", "message", …}}` and the validation list.
//! - [`page`]: the pagination fields every list carries.
//! - [`contract`]: every route's request and response body under kneo-serv's schema names, as the
//!   server's OpenAPI document describes them (`ToSchema` with the `openapi` feature).
//! - [`metrics`]: the Prometheus text of `/metrics`, reduced to unlabelled samples.

pub mod audit;
pub mod contract;
pub mod errors;
pub mod health;
pub mod human_tasks;
pub mod metrics;
pub mod page;
pub mod runs;
pub mod service_events;

pub use audit::{AuditEvent, AuditEventList};
pub use errors::{ErrorBody, ValidationIssue};
pub use health::{HealthBody, HealthMetadata, Readiness, ReadinessCheck, SecretItem};
pub use human_tasks::{HumanTask, HumanTaskDetail, HumanTaskList};
pub use metrics::MetricsSnapshot;
pub use page::PageInfo;
pub use runs::{
    Checkpoint, CheckpointPage, QueueRecord, Run, RunList, RunRecovery, RunStatus, TraceEvent,
    TracePage,
};
pub use service_events::{ServiceEvent, ServiceEventList};
