//! [`Client`]: one async method per route of the kneo run service, each call time-bounded.
//!
//! The client never retries and never follows a proxy (`.no_proxy()`): an ops tool must report
//! what the service itself answered, and an `HTTP_PROXY` meant for the internet must not capture
//! calls to an internal service. Every call returns a [`Reply`]; nothing here panics or hides a
//! failure.

mod query;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use query::{AuditQuery, HumanTaskQuery, PageRequest, RunQuery, encode as encode_component};
use query::{QueryString, encode};

use crate::reply::{CallError, Reply};
use crate::wire::{
    AuditEventList, CheckpointPage, ErrorBody, HealthBody, HumanTaskDetail, HumanTaskList,
    MetricsSnapshot, Readiness, Run, RunList, RunRecovery, ServiceEventList, TracePage,
};

/// How the API key travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <key>` (the default, as kneo-client's).
    #[default]
    Bearer,
    /// `X-Kneo-Api-Key: <key>`.
    KneoApiKey,
}

/// Where and how to call.
#[derive(Clone)]
pub struct ClientConfig {
    /// `http://host:port`, optionally with a path prefix behind a reverse proxy.
    pub base_url: String,
    pub api_key: Option<String>,
    pub auth_scheme: AuthScheme,
    /// Bound on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Bound on a whole call: connect, send, and read the full body.
    pub request_timeout: Duration,
    /// The `User-Agent` sent: the tools name themselves (`kneo-ops/0.1.0`, `kneo-tui/0.1.0`), so
    /// the service's answer counters can tell their own probes from other callers.
    pub user_agent: String,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            api_key: None,
            auth_scheme: AuthScheme::Bearer,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            user_agent: DEFAULT_USER_AGENT.to_string(),
        }
    }

    /// Names the calling tool in the `User-Agent` (`kneo-ops/0.1.0`).
    pub fn user_agent(mut self, agent: impl Into<String>) -> ClientConfig {
        self.user_agent = agent.into();
        self
    }

    pub fn api_key(mut self, key: Option<String>) -> ClientConfig {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }
}

impl std::fmt::Debug for ClientConfig {
    // By hand, so the key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &strip_credentials(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("auth_scheme", &self.auth_scheme)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// The `User-Agent` of a client that does not name its tool.
pub const DEFAULT_USER_AGENT: &str = concat!("kneo-client/", env!("CARGO_PKG_VERSION"));

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the service URL {url:?} is not usable: {reason}; give it as http://host:port (e.g. {default})", default = crate::profile::DEFAULT_URL)]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// The async client. Cloning is cheap (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    /// The base URL without credentials, for messages.
    display_base: String,
    api_key: Option<String>,
    auth_scheme: AuthScheme,
    request_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.display_base)
            .field("authenticated", &self.api_key.is_some())
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let parsed =
            reqwest::Url::parse(&config.base_url).map_err(|error| ClientError::InvalidUrl {
                url: strip_credentials(&config.base_url),
                reason: error.to_string(),
            })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl {
                url: strip_credentials(&config.base_url),
                reason: format!("the scheme {:?} is not http or https", parsed.scheme()),
            });
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // Below the server's idle keep-alive limit (kneo closes a connection that sends no
            // request for 10 s by default; kneo-serv's uvicorn after 5 s), so a pooled
            // connection is not reused just as the server closes it.
            .pool_idle_timeout(std::time::Duration::from_secs(4))
            .user_agent(config.user_agent.as_str())
            .build()
            .map_err(|error| ClientError::Build(error_chain(&error)))?;
        let base = config.base_url.trim_end_matches('/').to_string();
        Ok(Client {
            http,
            display_base: strip_credentials(&base),
            base,
            api_key: config.api_key.filter(|k| !k.is_empty()),
            auth_scheme: config.auth_scheme,
            request_timeout: config.request_timeout,
        })
    }

    /// The target, without credentials.
    pub fn base_url(&self) -> &str {
        &self.display_base
    }

    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The same client with another per-call time bound (used to fit calls into a deadline).
    pub fn with_request_timeout(&self, timeout: Duration) -> Client {
        let mut bounded = self.clone();
        bounded.request_timeout = timeout;
        bounded
    }

    // ---- health (unauthenticated) ----

    /// `GET /healthz`: the process answers.
    pub async fn healthz(&self) -> Reply<HealthBody> {
        self.get_typed("/healthz", false).await
    }

    /// `GET /livez`: process liveness.
    pub async fn livez(&self) -> Reply<HealthBody> {
        self.get_typed("/livez", false).await
    }

    /// `GET /readyz`: 200 ready or 503 `not_ready`; both parse into [`Readiness`].
    pub async fn readyz(&self) -> Reply<Readiness> {
        self.get_readiness("/readyz", false).await
    }

    /// `GET /v1/health`: the readiness checks with full failure messages (needs `runs:read`).
    pub async fn health_detail(&self) -> Reply<Readiness> {
        self.get_readiness("/v1/health", true).await
    }

    /// `GET /metrics`: Prometheus text (unauthenticated).
    pub async fn metrics(&self) -> Reply<MetricsSnapshot> {
        self.get_text("/metrics", false)
            .await
            .map(|text| MetricsSnapshot::parse(&text))
    }

    // ---- runs ----

    pub async fn list_runs(&self, query: &RunQuery) -> Reply<RunList> {
        let mut qs = QueryString::default();
        qs.push_opt("status", query.status.clone());
        query.page.append_to(&mut qs);
        self.get_typed(&format!("/v1/runs{}", qs.render()), true)
            .await
    }

    pub async fn get_run(&self, run_id: &str) -> Reply<Run> {
        self.get_typed(&format!("/v1/runs/{}", encode(run_id)), true)
            .await
    }

    pub async fn run_trace(&self, run_id: &str, page: &PageRequest) -> Reply<TracePage> {
        let mut qs = QueryString::default();
        page.append_to(&mut qs);
        self.get_typed(
            &format!("/v1/runs/{}/trace{}", encode(run_id), qs.render()),
            true,
        )
        .await
    }

    pub async fn run_checkpoints(&self, run_id: &str, page: &PageRequest) -> Reply<CheckpointPage> {
        let mut qs = QueryString::default();
        page.append_to(&mut qs);
        self.get_typed(
            &format!("/v1/runs/{}/checkpoints{}", encode(run_id), qs.render()),
            true,
        )
        .await
    }

    /// `GET /v1/runs/{id}/recovery` (kneo-server): the queue record and lease of a run.
    pub async fn run_recovery(&self, run_id: &str) -> Reply<RunRecovery> {
        self.get_typed(&format!("/v1/runs/{}/recovery", encode(run_id)), true)
            .await
    }

    // ---- human tasks, audit, service events ----

    pub async fn list_human_tasks(&self, query: &HumanTaskQuery) -> Reply<HumanTaskList> {
        let mut qs = QueryString::default();
        qs.push_opt("status", query.status.clone());
        qs.push_opt("run_id", query.run_id.clone());
        query.page.append_to(&mut qs);
        self.get_typed(&format!("/v1/human-tasks{}", qs.render()), true)
            .await
    }

    pub async fn get_human_task(&self, continuation_id: &str) -> Reply<HumanTaskDetail> {
        self.get_typed(
            &format!("/v1/human-tasks/{}", encode(continuation_id)),
            true,
        )
        .await
    }

    pub async fn list_audit_events(&self, query: &AuditQuery) -> Reply<AuditEventList> {
        let mut qs = QueryString::default();
        qs.push_opt("run_id", query.run_id.clone());
        qs.push_opt("event_type", query.event_type.clone());
        qs.push_opt("mentions", query.mentions.clone());
        query.page.append_to(&mut qs);
        self.get_typed(&format!("/v1/audit-events{}", qs.render()), true)
            .await
    }

    /// `GET /v1/service/events` (kneo-server; needs `audit:read`).
    pub async fn list_service_events(&self, page: &PageRequest) -> Reply<ServiceEventList> {
        let mut qs = QueryString::default();
        page.append_to(&mut qs);
        self.get_typed(&format!("/v1/service/events{}", qs.render()), true)
            .await
    }

    // ---- raw access ----

    /// Any JSON route; `path_and_query` starts with `/`.
    pub async fn get_json(&self, path_and_query: &str, authenticated: bool) -> Reply<Value> {
        self.get_typed(path_and_query, authenticated).await
    }

    /// Any route, as text; a non-2xx status is an error.
    pub async fn get_text(&self, path_and_query: &str, authenticated: bool) -> Reply<String> {
        let raw = self.send(Method::GET, path_and_query, authenticated).await;
        raw.finish(|status, text| {
            if is_success(status) {
                Ok(text.to_string())
            } else {
                Err(status_error(status, text))
            }
        })
    }

    // ---- plumbing ----

    async fn get_typed<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        authenticated: bool,
    ) -> Reply<T> {
        let raw = self.send(Method::GET, path_and_query, authenticated).await;
        raw.finish(|status, text| {
            if !is_success(status) {
                return Err(status_error(status, text));
            }
            serde_json::from_str::<T>(text).map_err(|error| Failure::BadBody(error.to_string()))
        })
    }

    async fn get_readiness(&self, path: &str, authenticated: bool) -> Reply<Readiness> {
        let raw = self.send(Method::GET, path, authenticated).await;
        raw.finish(|status, text| {
            if !(is_success(status) || status == 503) {
                return Err(status_error(status, text));
            }
            let value: Value = match serde_json::from_str(text) {
                Ok(value) => value,
                Err(error) if status == 503 => {
                    return Err(status_error(status, &error.to_string()));
                }
                Err(error) => return Err(Failure::BadBody(error.to_string())),
            };
            match Readiness::from_value(&value) {
                Ok(readiness) => Ok(readiness),
                // A 503 that is not a readiness body (a proxy's, say) is an error status.
                Err(_) if status == 503 => Err(status_error(status, text)),
                Err(reason) => Err(Failure::BadBody(reason)),
            }
        })
    }

    async fn send(&self, method: Method, path_and_query: &str, authenticated: bool) -> RawReply {
        let url = format!("{}{}", self.base, path_and_query);
        let display_url = format!("{}{}", self.display_base, path_and_query);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .timeout(self.request_timeout);
        if authenticated && let Some(key) = &self.api_key {
            request = match self.auth_scheme {
                AuthScheme::Bearer => {
                    request.header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"))
                }
                AuthScheme::KneoApiKey => request.header("X-Kneo-Api-Key", key.as_str()),
            };
        }
        let started = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Ok(text) => Ok((status, text)),
                    Err(error) => Err((Some(status), error)),
                }
            }
            Err(error) => Err((None, error)),
        };
        RawReply {
            method: method.to_string(),
            url: display_url,
            latency: started.elapsed(),
            timeout: self.request_timeout,
            outcome,
        }
    }
}

/// What came back before parsing.
struct RawReply {
    method: String,
    url: String,
    latency: Duration,
    timeout: Duration,
    outcome: Result<(u16, String), (Option<u16>, reqwest::Error)>,
}

/// Why parsing an answer failed (turned into a [`CallError`] with the call's facts).
enum Failure {
    Status(u16, Option<Box<ErrorBody>>),
    BadBody(String),
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn status_error(status: u16, text: &str) -> Failure {
    Failure::Status(status, ErrorBody::from_text(text).map(Box::new))
}

impl RawReply {
    fn finish<T>(self, parse: impl FnOnce(u16, &str) -> Result<T, Failure>) -> Reply<T> {
        let RawReply {
            method,
            url,
            latency,
            timeout,
            outcome,
        } = self;
        match outcome {
            Ok((status, text)) => {
                let result = parse(status, &text).map_err(|failure| match failure {
                    Failure::Status(status, error) => CallError::Status {
                        method: method.clone(),
                        url: url.clone(),
                        status,
                        error,
                    },
                    Failure::BadBody(reason) => CallError::BadBody {
                        method: method.clone(),
                        url: url.clone(),
                        status,
                        reason,
                    },
                });
                Reply {
                    method,
                    url,
                    status: Some(status),
                    body: Some(text),
                    latency,
                    result,
                }
            }
            Err((status, error)) => {
                let error = classify(&method, &url, timeout, &error);
                Reply {
                    method,
                    url,
                    status,
                    body: None,
                    latency,
                    result: Err(error),
                }
            }
        }
    }
}

fn classify(method: &str, url: &str, timeout: Duration, error: &reqwest::Error) -> CallError {
    let (method, url) = (method.to_string(), url.to_string());
    if error.is_timeout() {
        return CallError::Timeout {
            method,
            url,
            after: timeout,
            // reqwest marks a timeout while connecting as a connect error too.
            connected: !error.is_connect(),
        };
    }
    if error.is_builder() {
        return CallError::InvalidRequest {
            method,
            url,
            reason: error_chain(error),
        };
    }
    let refused = source_io_kind(error) == Some(std::io::ErrorKind::ConnectionRefused);
    let reason = if refused {
        "connection refused".to_string()
    } else {
        error_chain(error)
    };
    CallError::Unreachable {
        method,
        url,
        reason,
        refused,
    }
}

fn source_io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = error.source();
    }
    None
}

/// The innermost causes of an error, without the URL reqwest puts in its own message.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = Vec::new();
    let mut current = error.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !messages.contains(&text) {
            messages.push(text);
        }
        current = cause.source();
    }
    if messages.is_empty() {
        error.to_string()
    } else {
        messages.join(": ")
    }
}

/// A URL without `user:password@`, for messages and manifests.
pub fn strip_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let text = parsed.to_string();
            // Url adds a trailing slash to an empty path; keep the caller's form.
            if url.ends_with('/') {
                text
            } else {
                text.trim_end_matches('/').to_string()
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
