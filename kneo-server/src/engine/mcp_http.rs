//! MCP tools over HTTP, the two network transports kneo-serv 1.2 speaks:
//!
//! - `transport: http` (MCP "streamable HTTP"): every JSON-RPC message is posted to `url`; the
//!   server answers with JSON or with an event stream that carries the answer. A
//!   `Mcp-Session-Id` the server hands out at `initialize` goes with every later message.
//! - `transport: sse` (MCP's older HTTP+SSE transport): an event stream opened at `sse_url` first
//!   names the endpoint messages are posted to (its `endpoint` event; `message_url` when the
//!   server names none), then carries every answer as a `message` event.
//!
//! `headers` go with every request. TLS follows `verify`, `ca_bundle` (PEM file of extra trusted
//! CAs) and `client_cert` with `client_key` (a PEM key file) or `client_key_ref` (an environment
//! variable holding the PEM key, or a key file path). Sessions are shared by every run of the
//! process, started on the first call, and replaced when their server went away. Every wait is
//! bounded as for stdio servers; an event stream silent for `sse_read_timeout` while a call waits
//! fails that call. Errors name the server and its address without query string or headers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::mcp::{
    McpServerPlan, PROTOCOL_VERSION, Pending, PendingGuard, RequestError, result_text,
    rpc_error_text,
};
use super::tools::ToolError;
use crate::spec::model::{McpServerSpec, McpTransport};

/// The header a streamable HTTP server names its session with.
const SESSION_HEADER: &str = "mcp-session-id";
/// How long an SSE server may take to name its message endpoint when `message_url` is set.
const ENDPOINT_GRACE: Duration = Duration::from_secs(2);
/// Longest excerpt of an error body quoted in a call's error.
const ERROR_EXCERPT_CHARS: usize = 200;

/// The network part of an `mcp_servers.<name>` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemotePlan {
    pub url: Option<String>,
    pub sse_url: Option<String>,
    pub message_url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub sse_read_timeout: Option<Duration>,
    pub verify: Option<bool>,
    pub ca_bundle: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub client_key_ref: Option<String>,
}

impl RemotePlan {
    pub fn new(spec: &McpServerSpec) -> RemotePlan {
        RemotePlan {
            url: spec.url.clone(),
            sse_url: spec.sse_url.clone(),
            message_url: spec.message_url.clone(),
            headers: spec.headers.clone(),
            sse_read_timeout: spec
                .sse_read_timeout
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
                .map(Duration::from_secs_f64),
            verify: spec.verify,
            ca_bundle: spec.ca_bundle.clone(),
            client_cert: spec.client_cert.clone(),
            client_key: spec.client_key.clone(),
            client_key_ref: spec.client_key_ref.clone(),
        }
    }
}

/// An address for messages: scheme, host, port and path, never the query (it may carry a
/// token).
fn shown_address(address: &str) -> String {
    match reqwest::Url::parse(address) {
        Ok(url) => {
            let port = url
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.path()
            )
        }
        Err(_) => "an address that is not a URL".to_string(),
    }
}

/// A transport error with its causes, without the request URL (its query may carry a token).
fn transport_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The HTTP client of one server, with its TLS settings.
fn client_for(plan: &McpServerPlan) -> Result<reqwest::Client, String> {
    let remote = &plan.remote;
    let builder = reqwest::Client::builder()
        .connect_timeout(plan.settings.connect_timeout)
        .user_agent(concat!("kneo/", env!("CARGO_PKG_VERSION")));
    let builder = with_tls(builder, remote)?;
    builder
        .build()
        .map_err(|error| format!("its HTTP client could not be built: {error}"))
}

#[cfg(feature = "provider-tls")]
fn with_tls(
    mut builder: reqwest::ClientBuilder,
    remote: &RemotePlan,
) -> Result<reqwest::ClientBuilder, String> {
    if remote.verify == Some(false) {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(path) = &remote.ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|error| format!("its ca_bundle {path:?} cannot be read: {error}"))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| format!("its ca_bundle {path:?} is not a PEM bundle: {error}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(path) = &remote.client_cert {
        let mut pem = std::fs::read(path)
            .map_err(|error| format!("its client_cert {path:?} cannot be read: {error}"))?;
        pem.push(b'\n');
        pem.extend(client_key(remote)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
            format!("its client_cert and key do not make a TLS identity: {error}")
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

#[cfg(not(feature = "provider-tls"))]
fn with_tls(
    builder: reqwest::ClientBuilder,
    remote: &RemotePlan,
) -> Result<reqwest::ClientBuilder, String> {
    let tls = remote.verify.is_some()
        || remote.ca_bundle.is_some()
        || remote.client_cert.is_some()
        || [&remote.url, &remote.sse_url]
            .into_iter()
            .flatten()
            .any(|address| address.starts_with("https:"));
    if tls {
        return Err(
            "it needs TLS, and this kneo build has no TLS (build with the provider-tls feature)"
                .into(),
        );
    }
    Ok(builder)
}

/// The PEM client key: `client_key_ref` names an environment variable holding the key (or a
/// key file path); `client_key` is a key file path.
#[cfg(feature = "provider-tls")]
fn client_key(remote: &RemotePlan) -> Result<Vec<u8>, String> {
    let from_file = |path: &str, field: &str| {
        std::fs::read(path).map_err(|error| format!("its {field} file cannot be read: {error}"))
    };
    if let Some(variable) = &remote.client_key_ref {
        let value = std::env::var(variable).map_err(|_| {
            format!("its client_key_ref names the environment variable {variable}, which is not set (runbook § 3.1)")
        })?;
        if value.contains("-----BEGIN") {
            return Ok(value.into_bytes());
        }
        return from_file(value.trim(), "client_key_ref");
    }
    match &remote.client_key {
        Some(key) if key.contains("-----BEGIN") => Ok(key.clone().into_bytes()),
        Some(path) => from_file(path, "client_key"),
        None => Err("it has a client_cert but neither client_key nor client_key_ref".into()),
    }
}

/// One server event: its `event` name and its `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    name: String,
    data: String,
}

/// Splits an event stream into events as bytes arrive.
#[derive(Default)]
struct EventParser {
    buffer: Vec<u8>,
}

impl EventParser {
    /// Adds `bytes`; returns the events they complete. `Err` when one event passes `limit`.
    fn push(&mut self, bytes: &[u8], limit: usize) -> Result<Vec<Event>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        loop {
            let text = &self.buffer;
            let boundary = [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"]
                .iter()
                .filter_map(|separator| {
                    text.windows(separator.len())
                        .position(|window| window == *separator)
                        .map(|at| (at, separator.len()))
                })
                .min();
            let Some((at, length)) = boundary else {
                if self.buffer.len() > limit {
                    return Err(format!(
                        "it sent an event larger than {limit} bytes (max_response_bytes)"
                    ));
                }
                return Ok(events);
            };
            let block = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
            self.buffer.drain(..at + length);
            let mut event = Event {
                name: "message".into(),
                data: String::new(),
            };
            let mut data_lines = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event.name = value.to_string(),
                    "data" => data_lines.push(value.to_string()),
                    _ => {}
                }
            }
            if !data_lines.is_empty() {
                event.data = data_lines.join("\n");
                events.push(event);
            }
        }
    }
}

/// Reads the next chunk of `response`, waiting at most `limit` when one is given.
async fn next_chunk(
    response: &mut reqwest::Response,
    limit: Option<Duration>,
) -> Result<Option<Vec<u8>>, ChunkError> {
    let read = response.chunk();
    let chunk = match limit {
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .map_err(|_| ChunkError::Silent(limit))?,
        None => read.await,
    };
    chunk
        .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
        .map_err(|error| ChunkError::Failed(transport_error(error)))
}

enum ChunkError {
    Silent(Duration),
    Failed(String),
}

/// A JSON-RPC answer to request `id` within a message (an object or a batch).
fn answer_to(message: &Value, id: u64) -> Option<Result<Value, RequestError>> {
    let items: Vec<&Value> = match message {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .find(|item| {
            item.get("id").and_then(Value::as_u64) == Some(id) && item.get("method").is_none()
        })
        .map(|item| match item.get("error") {
            Some(error) => Err(RequestError::Rpc(rpc_error_text(error))),
            None => Ok(item.get("result").cloned().unwrap_or(Value::Null)),
        })
}

fn with_headers(
    mut request: reqwest::RequestBuilder,
    headers: &BTreeMap<String, String>,
) -> reqwest::RequestBuilder {
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
}

/// Reads a failed answer's body for the error, redacted and cut short.
async fn error_excerpt(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body = crate::redact::redacted_text(body.trim());
    let excerpt: String = body.chars().take(ERROR_EXCERPT_CHARS).collect();
    if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    }
}

/// A streamable HTTP session.
struct HttpSession {
    client: reqwest::Client,
    url: String,
    headers: BTreeMap<String, String>,
    session_id: Mutex<Option<String>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    limit: usize,
    read_timeout: Option<Duration>,
}

impl HttpSession {
    fn post(&self, message: &Value) -> reqwest::RequestBuilder {
        let mut request = with_headers(self.client.post(&self.url), &self.headers)
            .header("accept", "application/json, text/event-stream")
            .json(message);
        if let Some(id) = self
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            request = request.header(SESSION_HEADER, id);
        }
        request
    }

    async fn request(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let exchange = async {
            let mut response = self.post(&message).send().await.map_err(|error| {
                RequestError::Died(format!("posting to it failed: {}", transport_error(error)))
            })?;
            if let Some(session) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|value| value.to_str().ok())
            {
                *self
                    .session_id
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(session.to_string());
            }
            let status = response.status();
            if !status.is_success() {
                if status.as_u16() == 404 {
                    // The server forgot the session: the next call starts a new one.
                    self.alive.store(false, Ordering::SeqCst);
                }
                return Err(RequestError::Died(error_excerpt(response).await));
            }
            let streamed = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|kind| kind.starts_with("text/event-stream"));
            if streamed {
                let mut parser = EventParser::default();
                loop {
                    let chunk = match next_chunk(&mut response, self.read_timeout).await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => {
                            return Err(RequestError::Died(
                                "its event stream ended before the answer".into(),
                            ));
                        }
                        Err(ChunkError::Silent(limit)) => {
                            return Err(RequestError::Died(format!(
                                "its event stream was silent for {:.1} s (sse_read_timeout)",
                                limit.as_secs_f64()
                            )));
                        }
                        Err(ChunkError::Failed(error)) => {
                            return Err(RequestError::Died(format!(
                                "reading its answer failed: {error}"
                            )));
                        }
                    };
                    let events = parser
                        .push(&chunk, self.limit)
                        .map_err(RequestError::Died)?;
                    for event in events {
                        let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                            continue;
                        };
                        if let Some(answer) = answer_to(&message, id) {
                            return answer;
                        }
                    }
                }
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|error| {
                RequestError::Died(format!(
                    "reading its answer failed: {}",
                    transport_error(error)
                ))
            })? {
                body.extend_from_slice(&chunk);
                if body.len() > self.limit {
                    return Err(RequestError::Died(format!(
                        "it sent an answer larger than {} bytes (max_response_bytes)",
                        self.limit
                    )));
                }
            }
            let message: Value = serde_json::from_slice(&body)
                .map_err(|error| RequestError::Died(format!("its answer is not JSON: {error}")))?;
            answer_to(&message, id).unwrap_or_else(|| {
                Err(RequestError::Died(
                    "its answer names another request".into(),
                ))
            })
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or(Err(RequestError::Timeout(limit)))
    }

    async fn notify(&self, method: &str, limit: Duration) -> Result<(), RequestError> {
        let message = json!({"jsonrpc": "2.0", "method": method});
        let sent = tokio::time::timeout(limit, self.post(&message).send())
            .await
            .map_err(|_| RequestError::Timeout(limit))?
            .map_err(|error| {
                RequestError::Died(format!("posting to it failed: {}", transport_error(error)))
            })?;
        if sent.status().is_success() {
            Ok(())
        } else {
            Err(RequestError::Died(error_excerpt(sent).await))
        }
    }
}

/// An HTTP+SSE session: answers arrive on the event stream.
struct SseSession {
    client: reqwest::Client,
    post_url: String,
    headers: BTreeMap<String, String>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SseSession {
    async fn post(&self, message: &Value, limit: Duration) -> Result<(), RequestError> {
        let request = with_headers(self.client.post(&self.post_url), &self.headers).json(message);
        let sent = tokio::time::timeout(limit, request.send())
            .await
            .map_err(|_| RequestError::Timeout(limit))?
            .map_err(|error| {
                RequestError::Died(format!("posting to it failed: {}", transport_error(error)))
            })?;
        if sent.status().is_success() {
            Ok(())
        } else {
            Err(RequestError::Died(error_excerpt(sent).await))
        }
    }

    async fn request(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, RequestError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(RequestError::Died("its event stream is closed".into()));
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (sender, receiver) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, sender);
        let _guard = PendingGuard {
            pending: &self.pending,
            id,
        };
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let exchange = async {
            self.post(&message, limit).await?;
            receiver
                .await
                .unwrap_or_else(|_| Err(RequestError::Died("its event stream closed".into())))
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or(Err(RequestError::Timeout(limit)))
    }
}

/// Reads the event stream of an SSE session: the endpoint first, then answers.
async fn sse_reader(
    mut response: reqwest::Response,
    base: reqwest::Url,
    endpoint: oneshot::Sender<String>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
    limit: usize,
    read_timeout: Option<Duration>,
) {
    let mut endpoint = Some(endpoint);
    let mut parser = EventParser::default();
    let reason = loop {
        let chunk = match next_chunk(&mut response, read_timeout).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break "its event stream ended".to_string(),
            Err(ChunkError::Silent(limit)) => {
                if pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty()
                {
                    continue;
                }
                break format!(
                    "its event stream was silent for {:.1} s while a call waited (sse_read_timeout)",
                    limit.as_secs_f64()
                );
            }
            Err(ChunkError::Failed(error)) => {
                break format!("reading its event stream failed: {error}");
            }
        };
        let events = match parser.push(&chunk, limit) {
            Ok(events) => events,
            Err(reason) => break reason,
        };
        for event in events {
            if event.name == "endpoint" {
                if let (Some(sender), Ok(url)) = (endpoint.take(), base.join(event.data.trim())) {
                    let _ = sender.send(url.to_string());
                }
                continue;
            }
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let items: Vec<Value> = match message {
                Value::Array(items) => items,
                other => vec![other],
            };
            for item in items {
                let Some(id) = item.get("id").and_then(Value::as_u64) else {
                    continue;
                };
                if item.get("method").is_some() {
                    continue;
                }
                let sender = pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some(sender) = sender {
                    let result = match item.get("error") {
                        Some(error) => Err(RequestError::Rpc(rpc_error_text(error))),
                        None => Ok(item.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    let _ = sender.send(result);
                }
            }
        }
    };
    alive.store(false, Ordering::SeqCst);
    let waiting: Vec<_> = pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
        .collect();
    for (_, sender) in waiting {
        let _ = sender.send(Err(RequestError::Died(reason.clone())));
    }
}

/// A connected server on either network transport.
enum Remote {
    Http(HttpSession),
    Sse(SseSession),
}

/// A connected server and the tools it listed.
struct Connection {
    remote: Remote,
    tools: Vec<String>,
}

impl Connection {
    fn is_alive(&self) -> bool {
        match &self.remote {
            Remote::Http(session) => session.alive.load(Ordering::SeqCst),
            Remote::Sse(session) => session.alive.load(Ordering::SeqCst),
        }
    }

    fn close(&self) {
        match &self.remote {
            Remote::Http(session) => session.alive.store(false, Ordering::SeqCst),
            Remote::Sse(session) => {
                session.alive.store(false, Ordering::SeqCst);
                session.reader.abort();
            }
        }
    }

    async fn request(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, RequestError> {
        match &self.remote {
            Remote::Http(session) => session.request(method, params, limit).await,
            Remote::Sse(session) => session.request(method, params, limit).await,
        }
    }

    async fn notify(&self, method: &str, limit: Duration) -> Result<(), RequestError> {
        match &self.remote {
            Remote::Http(session) => session.notify(method, limit).await,
            Remote::Sse(session) => {
                session
                    .post(&json!({"jsonrpc": "2.0", "method": method}), limit)
                    .await
            }
        }
    }
}

/// Opens the transport of `plan` and performs the handshake.
async fn connect(plan: &McpServerPlan) -> Result<Connection, String> {
    let client = client_for(plan)?;
    let remote = &plan.remote;
    let limit = plan.settings.connect_timeout;
    let opened = match plan.transport {
        McpTransport::Http => {
            let url = remote.url.clone().ok_or("it has no url")?;
            Remote::Http(HttpSession {
                client,
                url,
                headers: remote.headers.clone(),
                session_id: Mutex::new(None),
                next_id: AtomicU64::new(1),
                alive: AtomicBool::new(true),
                limit: plan.max_message_bytes,
                read_timeout: remote.sse_read_timeout,
            })
        }
        McpTransport::Sse => {
            let address = remote.sse_url.clone().ok_or("it has no sse_url")?;
            let base = reqwest::Url::parse(&address)
                .map_err(|error| format!("its sse_url is not a URL: {error}"))?;
            let response = with_headers(client.get(base.clone()), &remote.headers)
                .header("accept", "text/event-stream")
                .send()
                .await
                .map_err(|error| {
                    format!(
                        "its event stream could not be opened: {}",
                        transport_error(error)
                    )
                })?;
            if !response.status().is_success() {
                return Err(format!(
                    "its event stream could not be opened: {}",
                    error_excerpt(response).await
                ));
            }
            let pending: Arc<Pending> = Arc::default();
            let alive = Arc::new(AtomicBool::new(true));
            let (endpoint_sender, endpoint) = oneshot::channel();
            let reader = tokio::spawn(sse_reader(
                response,
                base,
                endpoint_sender,
                pending.clone(),
                alive.clone(),
                plan.max_message_bytes,
                remote.sse_read_timeout,
            ));
            let wait = if remote.message_url.is_some() {
                ENDPOINT_GRACE.min(limit)
            } else {
                limit
            };
            let post_url = match tokio::time::timeout(wait, endpoint).await {
                Ok(Ok(url)) => url,
                _ => match &remote.message_url {
                    Some(url) => url.clone(),
                    None => {
                        reader.abort();
                        return Err(format!(
                            "its event stream named no message endpoint within {:.1} s (KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS); set message_url if the server expects one",
                            wait.as_secs_f64()
                        ));
                    }
                },
            };
            Remote::Sse(SseSession {
                client,
                post_url,
                headers: remote.headers.clone(),
                pending,
                next_id: AtomicU64::new(1),
                alive,
                reader,
            })
        }
        McpTransport::Stdio => return Err("it is a stdio server".into()),
    };
    let mut connection = Connection {
        remote: opened,
        tools: Vec::new(),
    };
    let describe = |error: RequestError| match error {
        RequestError::Timeout(limit) => format!(
            "it did not finish the MCP handshake within {:.1} s (KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS)",
            limit.as_secs_f64()
        ),
        RequestError::Died(note) => format!("the MCP handshake failed ({note})"),
        RequestError::Rpc(message) => format!("it refused the MCP handshake: {message}"),
    };
    let initialize = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "kneo", "version": crate::VERSION},
    });
    let handshake = async {
        connection.request("initialize", initialize, limit).await?;
        connection
            .notify("notifications/initialized", limit)
            .await?;
        connection.request("tools/list", json!({}), limit).await
    };
    let listing = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(listing)) => listing,
        Ok(Err(error)) => {
            connection.close();
            return Err(describe(error));
        }
        Err(_) => {
            connection.close();
            return Err(describe(RequestError::Timeout(limit)));
        }
    };
    connection.tools = listing
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|tool| tool.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(connection)
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// Live network MCP sessions by server, shared by every run of the process.
#[derive(Clone, Default)]
pub struct RemoteSessions {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

/// What identifies a network server's session: its name, transport and addresses.
fn session_key(plan: &McpServerPlan) -> String {
    let remote = &plan.remote;
    format!(
        "{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
        plan.name, plan.transport, remote.url, remote.sse_url, remote.message_url
    )
}

impl RemoteSessions {
    async fn connection(&self, plan: &McpServerPlan) -> Result<Arc<Connection>, String> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(session_key(plan))
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|connection| connection.is_alive()) {
            return Ok(connection.clone());
        }
        *slot = None;
        let limit = plan.settings.connect_timeout;
        let connection = tokio::time::timeout(limit, connect(plan))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "it did not connect within {:.1} s (KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS)",
                    limit.as_secs_f64()
                ))
            })?;
        let connection = Arc::new(connection);
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Calls `remote_name` on the http or sse server of `plan` with `arguments`.
    pub async fn call_tool(
        &self,
        plan: &McpServerPlan,
        remote_name: &str,
        arguments: &Value,
    ) -> Result<String, ToolError> {
        let server = &plan.name;
        let address = match plan.transport {
            McpTransport::Sse => plan.remote.sse_url.as_deref(),
            _ => plan.remote.url.as_deref(),
        }
        .map(shown_address)
        .unwrap_or_default();
        let who = format!("MCP server '{server}' ({} {address})", plan.transport);
        let attempts = 1 + plan.settings.retries;
        let mut last_failure = String::new();
        for attempt in 1..=attempts {
            let connection = match self.connection(plan).await {
                Ok(connection) => connection,
                Err(reason) => {
                    last_failure = format!(
                        "{who} is unavailable: {reason} (KNEO_SERV_MCP_RETRIES={}, attempt {attempt})",
                        plan.settings.retries
                    );
                    continue;
                }
            };
            if !connection.tools.is_empty()
                && !connection.tools.iter().any(|name| name == remote_name)
            {
                return Err(ToolError::Failed(format!(
                    "{who} has no tool '{remote_name}'; it offers {}",
                    connection.tools.join(", ")
                )));
            }
            let limit = plan.call_timeout();
            let params = json!({"name": remote_name, "arguments": arguments});
            match connection.request("tools/call", params, limit).await {
                Ok(result) => {
                    let text = result_text(&result);
                    return if result.get("isError").and_then(Value::as_bool) == Some(true) {
                        Err(ToolError::Failed(text))
                    } else {
                        Ok(text)
                    };
                }
                Err(RequestError::Rpc(message)) => {
                    return Err(ToolError::Failed(format!(
                        "{who} refused tools/call '{remote_name}': {message}"
                    )));
                }
                Err(RequestError::Timeout(limit)) => {
                    connection.close();
                    return Err(ToolError::Unavailable(format!(
                        "{who} did not answer tools/call '{remote_name}' within {:.1} s \
                         (mcp_servers.{server}.timeout or KNEO_SERV_MCP_TIMEOUT_SECONDS; runbook § 5.3)",
                        limit.as_secs_f64()
                    )));
                }
                Err(RequestError::Died(note)) => {
                    connection.close();
                    last_failure = format!(
                        "{who} failed during tools/call '{remote_name}' ({note}); KNEO_SERV_MCP_RETRIES={}, attempt {attempt}",
                        plan.settings.retries
                    );
                }
            }
        }
        Err(ToolError::Unavailable(last_failure))
    }
}

#[cfg(test)]
mod tests;
