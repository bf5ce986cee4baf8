//! The one list of routes: the router is built from it and so is the OpenAPI document
//! ([`super::openapi`]), so a route cannot be served without being documented, or documented
//! without being served.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, on};

use super::{
    audit, health, human_tasks, metrics, policies, run_filters, run_inspection, runs, security,
    service_events, skills, specs,
};
use crate::app::AppState;

/// Which trees a route is mounted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// At the root and under `/v1`.
    Both,
    /// At the root only (`/metrics`, the API description).
    RootOnly,
}

/// Everything the document says about one operation.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: Method,
    /// Without the `/v1` prefix, with `{name}` path parameters.
    pub path: &'static str,
    pub tree: Tree,
    /// The scope a key needs; `None` for the unauthenticated routes.
    pub scope: Option<&'static str>,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Query parameters the route declares (any other is `422 unknown_query_parameters`).
    pub query: &'static [&'static str],
    /// Query parameters that may repeat (`?providers=a&providers=b`).
    pub repeated: &'static [&'static str],
    /// The request body's schema name, if the route takes one.
    pub body: Option<&'static str>,
    /// Success status and the response schema name (`None`: not JSON).
    pub success: &'static [(u16, Option<&'static str>)],
    /// The route accepts `Idempotency-Key`.
    pub idempotent: bool,
    /// A kneo route kneo-serv 1.2 does not have.
    pub kneo_only: bool,
}

/// A documented route and its handler.
pub struct Route {
    pub doc: RouteDoc,
    pub handler: MethodRouter<AppState>,
}

const PAGE: [&str; 4] = ["limit", "offset", "sort_by", "sort_order"];

fn route<H, T>(doc: RouteDoc, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = axum::routing::MethodFilter::try_from(doc.method.clone())
        .unwrap_or(axum::routing::MethodFilter::GET);
    Route {
        handler: on(filter, handler),
        doc,
    }
}

/// A documented operation with the common defaults.
fn doc(
    method: Method,
    path: &'static str,
    scope: Option<&'static str>,
    tag: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        tree: Tree::Both,
        scope,
        summary: "",
        tag,
        query: &[],
        repeated: &[],
        body: None,
        success: &[(200, None)],
        idempotent: false,
        kneo_only: false,
    }
}

impl RouteDoc {
    fn summary(mut self, summary: &'static str) -> RouteDoc {
        self.summary = summary;
        self
    }
    fn query(mut self, query: &'static [&'static str]) -> RouteDoc {
        self.query = query;
        self
    }
    fn body(mut self, schema: &'static str) -> RouteDoc {
        self.body = Some(schema);
        self
    }
    fn answers(mut self, success: &'static [(u16, Option<&'static str>)]) -> RouteDoc {
        self.success = success;
        self
    }
    fn idempotent(mut self) -> RouteDoc {
        self.idempotent = true;
        self
    }
    fn kneo_only(mut self) -> RouteDoc {
        self.kneo_only = true;
        self
    }
    fn root_only(mut self) -> RouteDoc {
        self.tree = Tree::RootOnly;
        self
    }
}

/// The query parameters of `GET /runs`.
pub const RUN_LIST_QUERY: [&str; 12] = [
    "status",
    run_filters::PARAMETERS[0],
    run_filters::PARAMETERS[1],
    run_filters::PARAMETERS[2],
    run_filters::PARAMETERS[3],
    run_filters::PARAMETERS[4],
    run_filters::PARAMETERS[5],
    run_filters::PARAMETERS[6],
    PAGE[0],
    PAGE[1],
    PAGE[2],
    PAGE[3],
];

/// Every route of the API, in document order.
pub fn all() -> Vec<Route> {
    use Method as M;
    let health = |path| {
        doc(M::GET, path, None, "health")
            .answers(&[(200, Some("HealthResponse")), (503, Some("ErrorResponse"))])
    };
    let runs_read = Some("runs:read");
    let runs_write = Some("runs:write");
    let specs_read = Some("specs:read");
    vec![
        route(
            health("/healthz").summary("Liveness, with instance details"),
            health::healthz,
        ),
        route(health("/livez").summary("Process liveness"), health::livez),
        route(
            health("/readyz").summary("The eight readiness checks"),
            health::readyz,
        ),
        route(
            doc(M::GET, "/health", runs_read, "health")
                .summary("Readiness with full failure messages (kneo)")
                .kneo_only(),
            health::health_detail,
        ),
        route(
            doc(M::POST, "/runs", runs_write, "runs")
                .summary("Create a run: sync (200) or async (202)")
                .body("RunCreateRequest")
                .answers(&[
                    (200, Some("RunCreateResponse")),
                    (202, Some("RunCreateResponse")),
                ])
                .idempotent(),
            runs::create,
        ),
        route(
            doc(M::GET, "/runs", runs_read, "runs")
                .summary("List runs")
                .query(&RUN_LIST_QUERY)
                .answers(&[(200, Some("RunListResponse"))]),
            runs::list,
        ),
        route(
            doc(M::GET, "/runs/{run_id}", runs_read, "runs")
                .summary("A run")
                .answers(&[(200, Some("RunStatusResponse"))]),
            runs::get,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/policy-report", runs_read, "runs")
                .summary("Policy report of the spec the run was started with")
                .answers(&[(200, Some("SpecPolicyReportResponse"))]),
            run_inspection::policy_report,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/graph", runs_read, "runs")
                .summary("The run's workflow graph and where the run is")
                .answers(&[(200, Some("RunGraphResponse"))]),
            run_inspection::graph,
        ),
        route(
            doc(M::POST, "/runs/{run_id}/cancel", runs_write, "runs")
                .summary("Cancel a run")
                .answers(&[(200, Some("RunStatusResponse"))]),
            runs::cancel,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/recovery", runs_read, "runs")
                .summary("Where the run stands; whether /continue can take it")
                .answers(&[(200, Some("RunRecoveryResponse"))]),
            run_inspection::recovery,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/replay", runs_read, "runs")
                .summary("Timeline of the run's checkpoints and its replay context")
                .answers(&[(200, Some("RunReplayResponse"))]),
            run_inspection::replay,
        ),
        route(
            doc(M::POST, "/runs/{run_id}/continue", runs_write, "runs")
                .summary("Run a failed sequential workflow again from its last completed step")
                .answers(&[(200, Some("RunCreateResponse"))])
                .idempotent(),
            runs::continue_run,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/checkpoints/diff", runs_read, "runs")
                .summary("What changed between two checkpoints")
                .query(&["from_sequence", "to_sequence"])
                .answers(&[(200, Some("CheckpointDiffResponse"))]),
            run_inspection::checkpoints_diff,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/trace", runs_read, "runs")
                .summary("Trace events")
                .query(&["event_type", PAGE[0], PAGE[1], PAGE[2], PAGE[3]])
                .answers(&[(200, Some("TraceResponse"))]),
            runs::trace,
        ),
        route(
            doc(M::GET, "/runs/{run_id}/checkpoints", runs_read, "runs")
                .summary("Checkpoints")
                .query(&["type", PAGE[0], PAGE[1], PAGE[2], PAGE[3]])
                .answers(&[(200, Some("CheckpointListResponse"))]),
            runs::checkpoints,
        ),
        route(
            doc(M::POST, "/specs/validate", specs_read, "specs")
                .summary("Validate a spec (with its layers)")
                .body("SpecValidateRequest")
                .answers(&[(200, Some("SpecValidateResponse"))]),
            specs::validate,
        ),
        route(
            doc(M::POST, "/specs/compile", specs_read, "specs")
                .summary("Compile a spec")
                .body("SpecCompileRequest")
                .answers(&[(200, Some("SpecCompileResponse"))]),
            specs::compile,
        ),
        route(
            doc(M::POST, "/specs/explain", specs_read, "specs")
                .summary("The root agent, root workflow and component agents of a spec")
                .body("SpecExplainRequest")
                .answers(&[(200, Some("SpecExplainResponse"))]),
            specs::explain,
        ),
        route(
            doc(M::POST, "/specs/graph", specs_read, "specs")
                .summary("The workflow graph of a spec")
                .body("SpecGraphRequest")
                .answers(&[(200, Some("SpecGraphResponse"))]),
            specs::graph,
        ),
        route(
            doc(M::POST, "/specs/policy-report", specs_read, "specs")
                .summary("Policy report of a spec")
                .body("SpecPolicyReportRequest")
                .answers(&[(200, Some("SpecPolicyReportResponse"))]),
            specs::policy_report,
        ),
        route(
            doc(M::POST, "/specs/run", runs_write, "specs")
                .summary("Create a run (as POST /runs)")
                .body("RunCreateRequest")
                .answers(&[
                    (200, Some("RunCreateResponse")),
                    (202, Some("RunCreateResponse")),
                ])
                .idempotent(),
            runs::create_from_specs_run,
        ),
        route(
            doc(M::GET, "/skills", specs_read, "skills")
                .summary("The skills catalog")
                .query(&PAGE)
                .answers(&[(200, Some("SkillsListResponse"))]),
            skills::list,
        ),
        route(
            doc(M::GET, "/human-tasks", Some("human:read"), "human")
                .summary("Pending human tasks")
                .query(&[
                    "run_id",
                    "workflow_kind",
                    "status",
                    PAGE[0],
                    PAGE[1],
                    PAGE[2],
                    PAGE[3],
                ])
                .answers(&[(200, Some("HumanTaskListResponse"))]),
            human_tasks::list,
        ),
        route(
            doc(
                M::GET,
                "/human-tasks/{continuation_id}",
                Some("human:read"),
                "human",
            )
            .summary("One human task")
            .answers(&[(200, Some("HumanTaskResponse"))]),
            human_tasks::get,
        ),
        route(
            doc(
                M::POST,
                "/human-tasks/{continuation_id}/resume",
                Some("human:write"),
                "human",
            )
            .summary("Answer a human task")
            .body("HumanResumeRequest")
            .answers(&[(200, Some("HumanResumeResponse"))])
            .idempotent(),
            human_tasks::resume,
        ),
        route(
            doc(M::GET, "/audit-events", Some("audit:read"), "audit")
                .summary("Audit log, newest first")
                .query(&[
                    "event_type",
                    "run_id",
                    "mentions",
                    PAGE[0],
                    PAGE[1],
                    PAGE[2],
                    PAGE[3],
                ])
                .answers(&[(200, Some("AuditEventListResponse"))]),
            audit::list,
        ),
        route(
            RouteDoc {
                repeated: &["providers", "extras"],
                ..doc(
                    M::GET,
                    "/security/credentials",
                    Some("credentials:read"),
                    "security",
                )
                .summary("Credential inventory: names, sources, presence; never values")
                .query(&["providers", "extras", "include_service_tokens"])
                .answers(&[(200, Some("CredentialInventoryResponse"))])
            },
            security::credentials,
        ),
        route(
            doc(
                M::GET,
                "/policies/environment",
                Some("policies:read"),
                "policies",
            )
            .summary("Every stored environment policy")
            .answers(&[(200, Some("EnvironmentPolicyListResponse"))]),
            policies::list,
        ),
        route(
            doc(
                M::GET,
                "/policies/environment/{environment}",
                Some("policies:read"),
                "policies",
            )
            .summary("One environment's policy")
            .answers(&[(200, Some("EnvironmentPolicyResponse"))]),
            policies::get,
        ),
        route(
            doc(
                M::PUT,
                "/policies/environment/{environment}",
                Some("policies:write"),
                "policies",
            )
            .summary("Store an environment's policy")
            .body("EnvironmentPolicyRequest")
            .answers(&[(200, Some("EnvironmentPolicyResponse"))]),
            policies::put,
        ),
        route(
            doc(
                M::POST,
                "/policies/environment/{environment}/preview",
                Some("policies:read"),
                "policies",
            )
            .summary("What a candidate policy would change")
            .body("EnvironmentPolicyRequest")
            .answers(&[(200, Some("EnvironmentPolicyPreviewResponse"))]),
            policies::preview,
        ),
        route(
            doc(M::GET, "/service/events", Some("audit:read"), "service")
                .summary("The service's own history (kneo)")
                .query(&PAGE)
                .kneo_only(),
            service_events::list,
        ),
        route(
            doc(M::GET, "/metrics", None, "metrics")
                .summary("Prometheus text")
                .root_only(),
            metrics::metrics,
        ),
        route(
            doc(M::GET, "/openapi.json", None, "meta")
                .summary("This document")
                .root_only(),
            super::openapi::document,
        ),
        route(
            doc(M::GET, "/docs", None, "meta")
                .summary("A browsable page of this document")
                .root_only(),
            super::openapi::docs_page,
        ),
        route(
            doc(M::GET, "/redoc", None, "meta")
                .summary("The same page (kneo-serv's second viewer address)")
                .root_only(),
            super::openapi::docs_page,
        ),
        route(
            doc(M::GET, "/docs/oauth2-redirect", None, "meta")
                .summary("Kept for viewers that expect it; kneo has no OAuth flow")
                .root_only(),
            super::openapi::oauth2_redirect,
        ),
    ]
}
