//! The symptom table: an HTTP status plus the envelope's error code → where the runbook explains
//! it (operations reference § 8.1, DESIGN.md § 5 stage 4).

use serde::Serialize;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Symptom {
    pub status: u16,
    /// The envelope's `error`; `None` matches any code for this status.
    pub code: Option<&'static str>,
    pub meaning: &'static str,
    /// A troubleshooting section number (`4.1`) or another reference (`0.11.0 note`).
    pub section: &'static str,
}

const fn row(
    status: u16,
    code: Option<&'static str>,
    meaning: &'static str,
    section: &'static str,
) -> Symptom {
    Symptom {
        status,
        code,
        meaning,
        section,
    }
}

/// The table, most specific rows first.
pub const SYMPTOMS: &[Symptom] = &[
    row(
        400,
        Some("invalid_idempotency_key"),
        "Idempotency-Key empty, too long or not ASCII",
        "5.5",
    ),
    row(400, Some("spec_invalid"), "invalid spec", "6.1"),
    row(401, None, "missing or invalid API key", "4.1"),
    row(403, None, "the key lacks the route's scope", "4.2"),
    row(
        404,
        Some("human_task"),
        "continuation gone (human task answered, expired or deleted)",
        "8.2",
    ),
    row(
        409,
        Some("idempotency_key_conflict"),
        "Idempotency-Key reused with a different body",
        "5.4",
    ),
    row(
        409,
        Some("idempotency_key_in_progress"),
        "the first request with this Idempotency-Key is still running",
        "5.4",
    ),
    row(
        409,
        Some("resource_locked"),
        "another resume holds the continuation's lock",
        "8.1",
    ),
    row(
        409,
        Some("continuation_unreadable"),
        "the continuation record cannot be read",
        "8.3",
    ),
    row(
        409,
        Some("run_state_conflict"),
        "the run's status forbids resume/continue",
        "8.4",
    ),
    row(
        409,
        Some("human_task_expired"),
        "the human task passed its deadline",
        "8.2",
    ),
    row(413, None, "request body over the size limit", "6.3"),
    row(
        422,
        Some("spec_path_confined"),
        "spec path outside the spec root",
        "6.4",
    ),
    row(
        422,
        Some("guardrail_violation"),
        "a guardrail blocked the run",
        "0.9.0 note",
    ),
    row(
        422,
        Some("unknown_query_parameters"),
        "undeclared query parameter",
        "0.11.0 note",
    ),
    row(503, Some("not_ready"), "readiness failed", "1.2"),
    row(
        503,
        Some("store_unavailable"),
        "a store the service needs is unavailable",
        "2.2",
    ),
    row(
        503,
        Some("queue_full"),
        "queue backpressure (KNEO_SERV_MAX_QUEUE_DEPTH)",
        "5.7",
    ),
    row(
        500,
        Some("internal_error"),
        "internal error; the cause is in the server log",
        "capture and escalate",
    ),
    row(502, None, "a proxy cannot reach kneo", "1.3"),
    row(504, None, "a proxy cannot reach kneo", "1.3"),
];

/// The row for an error answer. `path` refines 404s: only a missing human task has a section.
pub fn lookup(status: u16, code: Option<&str>, path: &str) -> Option<Symptom> {
    if status == 404 {
        return path
            .contains("/human-tasks/")
            .then(|| SYMPTOMS.iter().copied().find(|s| s.status == 404))
            .flatten();
    }
    let exact = SYMPTOMS
        .iter()
        .find(|s| s.status == status && s.code.is_some() && s.code == code);
    let any_code = || {
        SYMPTOMS
            .iter()
            .find(|s| s.status == status && s.code.is_none())
    };
    let server_error = || (500..600).contains(&status).then_some(&SERVER_ERROR);
    exact.or_else(any_code).or_else(server_error).copied()
}

/// Any other 5xx.
const SERVER_ERROR: Symptom = row(
    500,
    None,
    "server error; the cause is in the server log",
    "1",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_their_sections() {
        let section =
            |status, code: Option<&str>, path| lookup(status, code, path).map(|s| s.section);
        assert_eq!(section(401, Some("unauthorized"), "/v1/runs"), Some("4.1"));
        assert_eq!(section(403, Some("forbidden"), "/v1/runs"), Some("4.2"));
        assert_eq!(
            section(409, Some("idempotency_key_conflict"), "/v1/runs"),
            Some("5.4")
        );
        assert_eq!(
            section(409, Some("resource_locked"), "/v1/human-tasks/c/resume"),
            Some("8.1")
        );
        assert_eq!(
            section(400, Some("invalid_idempotency_key"), "/v1/runs"),
            Some("5.5")
        );
        assert_eq!(
            section(503, Some("store_unavailable"), "/v1/runs"),
            Some("2.2")
        );
        assert_eq!(section(503, Some("queue_full"), "/v1/runs"), Some("5.7"));
        assert_eq!(
            section(409, Some("run_state_conflict"), "/v1/human-tasks/c/resume"),
            Some("8.4")
        );
        assert_eq!(
            section(409, Some("continuation_unreadable"), "/v1/human-tasks/c"),
            Some("8.3")
        );
        assert_eq!(
            section(422, Some("spec_path_confined"), "/v1/runs"),
            Some("6.4")
        );
        assert_eq!(
            section(500, Some("internal_error"), "/v1/runs"),
            Some("capture and escalate")
        );
        assert_eq!(section(502, None, "/v1/runs"), Some("1.3"), "a proxy's 502");
        assert_eq!(
            section(507, None, "/v1/runs"),
            Some("1"),
            "any 5xx without a row is § 1"
        );
        assert_eq!(
            section(404, Some("not_found"), "/v1/human-tasks/c1"),
            Some("8.2")
        );
        assert_eq!(
            section(404, Some("not_found"), "/v1/runs/r1"),
            None,
            "a missing run is a wrong id, not a runbook case"
        );
        assert_eq!(section(409, Some("something_new"), "/v1/runs"), None);
    }
}
