//! The request lifecycle rule: work that changes state belongs to the server, not to the
//! connection that asked for it.
//!
//! hyper drops a handler's future when its client disconnects, at whatever `.await` it had
//! reached. A handler may therefore do anything that changes nothing (check the caller's scope,
//! read and validate input) in its own future, but once it is about to make its first write it
//! hands the rest to [`run_owned`]: a task the server owns, that graceful shutdown waits for.
//! What it started then runs to the same end whether the client waits or not: the run completes
//! or fails as it would have, the idempotency record is completed with the answer (a retry with
//! the same key gets it), locks are released, audit and trace are written. A client that gave up
//! is counted (`kneo_http_requests_abandoned_total{route}`) and logged with its request id and
//! the run it made.
//!
//! Every state-changing route follows it: run creation (`/runs`, `/specs/run`, sync and async),
//! cancel, continue, and human-task resume. `/specs/validate` writes nothing. kneo serves no
//! policy, credential or backup routes.

use std::future::Future;

use super::error::ApiError;
use super::request_log;
use crate::app::AppState;

/// Runs `work` to its end in a task the server owns and answers with its result, unless the
/// client has gone by then (the work goes on regardless).
pub async fn run_owned<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    let scope = request_log::current_request();
    let span = tracing::Span::current();
    let owned = async move {
        let Some(scope) = scope else {
            return work.await;
        };
        scope.work_started();
        let result = request_log::within(scope.clone(), work).await;
        scope.work_finished(match &result {
            Ok(_) => "answered".to_string(),
            Err(error) => format!("{} {}", error.status().as_u16(), error.code()),
        });
        result
    };
    let owned = tracing::Instrument::instrument(owned, span);
    state.platform.spawn_owned(owned).await.map_err(|error| {
        tracing::error!(target: "kneo_serv.service", %error, "owned request work failed");
        ApiError::internal()
    })?
}
