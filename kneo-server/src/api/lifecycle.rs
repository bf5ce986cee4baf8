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
    let span = tracing::Span::current();
    let owned = hand_over(request_log::current_request(), work);
    let owned = tracing::Instrument::instrument(owned, span);
    state.platform.spawn_owned(owned).await.map_err(|error| {
        tracing::error!(target: "kneo_serv.service", %error, "owned request work failed");
        ApiError::internal()
    })?
}

/// The task that runs `work` for `scope`'s request and records its end. Its start is recorded
/// here, before the task exists: the handler may be dropped as soon as it is spawned, before it
/// first runs, and the client's going must then count as abandoned work still running.
fn hand_over<T, F>(
    scope: Option<std::sync::Arc<request_log::RequestScope>>,
    work: F,
) -> impl Future<Output = Result<T, ApiError>> + Send + 'static
where
    F: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    if let Some(scope) = &scope {
        scope.work_started();
    }
    async move {
        let Some(scope) = scope else {
            return work.await;
        };
        let result = request_log::within(scope.clone(), work).await;
        scope.work_finished(match &result {
            Ok(_) => "answered".to_string(),
            Err(error) => format!("{} {}", error.status().as_u16(), error.code()),
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use futures_util::FutureExt;

    use super::*;
    use crate::metrics::Metrics;

    /// A client that goes away after its handler handed the work over but before the server's
    /// task first ran (a current-thread runtime runs the spawned task only once the handler
    /// yields) is counted as abandoned work while the work runs, and no longer once it ended:
    /// the gauge went to -1 when the task marked its start only once it ran.
    #[tokio::test(flavor = "current_thread")]
    async fn a_client_gone_before_the_owned_task_first_ran_leaves_the_gauge_at_zero() {
        let metrics = Arc::new(Metrics::default());
        let scope = Arc::new(request_log::RequestScope::new(
            "request-1".to_string(),
            "/v1/runs".to_string(),
            metrics.clone(),
        ));
        let tracker = tokio_util::task::TaskTracker::new();
        let spawner = tracker.clone();
        let mut handler = Box::pin(request_log::within(scope.clone(), async move {
            let owned = hand_over(request_log::current_request(), async {
                Ok::<_, ApiError>(())
            });
            spawner.spawn(owned).await
        }));
        assert!((&mut handler).now_or_never().is_none(), "the answer waits");
        drop(handler);
        scope.abandoned();
        assert_eq!(
            metrics.http_abandoned_work_running.load(Ordering::Relaxed),
            1
        );
        tracker.close();
        tracker.wait().await;
        assert_eq!(
            metrics.http_abandoned_work_running.load(Ordering::Relaxed),
            0
        );
    }
}
