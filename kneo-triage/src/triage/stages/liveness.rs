//! Stage 1, `/healthz`: alive, down (nothing listens), hung (connects, never answers), crashed,
//! or a proxy that cannot reach kneo. When the tool cannot reach the service at all, the stage is
//! not judged and the tool's access says why.

use kneo_client::CallError;

use super::super::{Level, Probes, ServiceIdentity, Verdict};
use super::{AccessView, ms};

pub(crate) fn liveness(probes: &Probes, service: &ServiceIdentity, access: &AccessView) -> Verdict {
    let reply = &probes.healthz;
    let stage = |level, title: &str| Verdict::new(1, "healthz", level, title);
    if access.unreached {
        return Verdict::not_judged(
            1,
            "healthz",
            "/healthz",
            "the tool cannot reach the service from here (see the tool's access)",
        );
    }
    match &reply.result {
        Ok(body) => {
            let name = body.service.as_deref().unwrap_or("unknown service");
            let version = body.version.as_deref().unwrap_or("unknown version");
            let commit = body
                .metadata
                .commit
                .as_deref()
                .map(|c| format!(", commit {c}"))
                .unwrap_or_default();
            stage(Level::Ok, "/healthz: alive").with_detail(format!(
                "{} ({name} {version}{commit}); answered in {}",
                service.flavor.describe(),
                ms(reply.latency)
            ))
        }
        Err(CallError::Timeout { after, .. }) => stage(Level::Fail, "/healthz: hung (connects, never answers)")
            .with_detail(format!(
                "{} accepted the connection and gave no answer within {}: the process is stopped (SIGSTOP, a debugger), deadlocked or starved; it is not down",
                probes.target,
                ms(*after)
            ))
            .with_section("1.5"),
        Err(CallError::Unreachable { reason, .. }) => stage(Level::Fail, "/healthz: process down (connection refused)")
            .with_detail(format!(
                "{} ({reason}): nothing listens there; the process is down or the port is wrong",
                probes.target
            ))
            .with_section("1.3"),
        Err(CallError::Status { status: status @ (502..=504), error: None, .. }) => stage(Level::Fail, "/healthz: a proxy cannot reach kneo")
            .with_detail(format!(
                "HTTP {status} without kneo's error envelope: a proxy answered; check its upstream address and that kneo listens there"
            ))
            .with_section("1.3"),
        Err(CallError::Status { status, error, .. }) => stage(Level::Fail, "/healthz: crashed mid-request")
            .with_detail(format!(
                "HTTP {status}{}; read the service's stderr / container logs",
                error.as_ref().map(|e| format!(" ({})", e.summary())).unwrap_or_default()
            ))
            .with_section("capture and escalate"),
        // The remaining answers (bad bodies, requests not sent) made `access.unreached` true.
        Err(other) => stage(Level::Fail, "/healthz: unexpected answer")
            .with_detail(other.to_string())
            .with_section("1.3"),
    }
}
