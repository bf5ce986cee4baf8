//! MCP tools over stdio: JSON-RPC 2.0, one JSON message per line. The network transports
//! (`http`, `sse`) are in [`super::mcp_http`]; [`McpSessions`] holds the sessions of both.
//!
//! A server is spawned on the first call that needs it (`initialize`,
//! `notifications/initialized`, `tools/list`), in its own process group with a cleared
//! environment plus `PATH` and its spec's `env`. The session is kept in [`McpSessions`] and
//! reused by later calls of any run; a session whose server died is replaced on the next call.
//! Every wait is bounded: connecting by `KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS`, each call by
//! the server's `timeout` or `KNEO_SERV_MCP_TIMEOUT_SECONDS`. A server that stays silent past
//! its call timeout is killed, so it cannot hold a worker or pile up requests.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kneo_process::capped::{CappedBuffer, read_capped_into};
use kneo_process::{Cap, ProcessGroup};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::oneshot;

use super::mcp_http::{RemotePlan, RemoteSessions};
use super::settings::McpSettings;
use super::tools::ToolError;
use crate::spec::model::{McpServerSpec, McpTransport};

/// The MCP protocol revision kneo asks for.
pub(super) const PROTOCOL_VERSION: &str = "2025-03-26";
/// Largest message read from a server when its spec sets no `max_response_bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Stderr kept from a server, to explain why it died.
const STDERR_TAIL_BYTES: usize = 4 * 1024;
/// `PATH` when the service itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A compiled `mcp_servers.<name>` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerPlan {
    pub name: String,
    pub transport: McpTransport,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// The spec's `timeout`: overrides `KNEO_SERV_MCP_TIMEOUT_SECONDS` for this server.
    pub call_timeout: Option<Duration>,
    pub max_message_bytes: usize,
    pub settings: McpSettings,
    /// Addresses, headers and TLS of an `http` or `sse` server.
    pub remote: RemotePlan,
}

impl McpServerPlan {
    pub fn new(name: &str, spec: &McpServerSpec, settings: &McpSettings) -> McpServerPlan {
        McpServerPlan {
            name: name.into(),
            transport: spec.transport,
            command: spec.command.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            call_timeout: spec
                .timeout
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
                .map(Duration::from_secs_f64),
            max_message_bytes: spec
                .max_response_bytes
                .map(|bytes| bytes.clamp(1024, 64 * 1024 * 1024) as usize)
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            settings: settings.clone(),
            remote: RemotePlan::new(spec),
        }
    }

    pub(super) fn call_timeout(&self) -> Duration {
        self.call_timeout.unwrap_or(self.settings.call_timeout)
    }

    /// Sessions are shared by servers with the same name and the same process definition.
    fn session_key(&self) -> String {
        format!(
            "{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            self.name, self.command, self.args, self.env, self.cwd
        )
    }
}

/// Why a request got no result.
#[derive(Debug)]
pub(super) enum RequestError {
    /// No answer within the limit; the server may still be working.
    Timeout(Duration),
    /// The server exited or its output could not be read.
    Died(String),
    /// The server answered with a JSON-RPC error.
    Rpc(String),
}

/// Requests waiting for their answer, by JSON-RPC id.
pub(super) type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Value, RequestError>>>>;

/// One running server.
struct Session {
    server: String,
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    process_group: ProcessGroup,
    /// Names of the tools `tools/list` returned.
    tools: Mutex<Vec<String>>,
}

/// Removes a request from the pending map when its caller stops waiting.
pub(super) struct PendingGuard<'a> {
    pub(super) pending: &'a Pending,
    pub(super) id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Session {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Kills the server's whole process group.
    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.process_group.kill();
    }

    async fn write(&self, message: &Value) -> Result<(), RequestError> {
        let line = format!("{message}\n");
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|error| RequestError::Died(format!("writing to it failed: {error}")))?;
        stdin
            .flush()
            .await
            .map_err(|error| RequestError::Died(format!("writing to it failed: {error}")))
    }

    async fn request(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, RequestError> {
        if !self.is_alive() {
            return Err(RequestError::Died("it is not running".into()));
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
        // The reader marks the session dead before failing what is pending: a request added
        // after that would wait for nothing.
        if !self.is_alive() {
            return Err(RequestError::Died("it is not running".into()));
        }
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let exchange = async {
            if let Err(write_error) = self.write(&message).await {
                // The server is gone; its reader explains why (exit status, stderr) shortly.
                return match tokio::time::timeout(Duration::from_secs(2), receiver).await {
                    Ok(Ok(result)) => result,
                    _ => Err(write_error),
                };
            }
            receiver
                .await
                .unwrap_or_else(|_| Err(RequestError::Died("it closed its output".into())))
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or(Err(RequestError::Timeout(limit)))
    }

    async fn notify(&self, method: &str) -> Result<(), RequestError> {
        self.write(&json!({"jsonrpc": "2.0", "method": method}))
            .await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one line of at most `limit` bytes; `Ok(None)` at end of output.
async fn read_message(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    limit: usize,
) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    loop {
        let buffer = reader
            .fill_buf()
            .await
            .map_err(|error| format!("reading its output failed: {error}"))?;
        if buffer.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let (take, done) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        line.extend_from_slice(&buffer[..take]);
        reader.consume(take);
        if line.len() > limit {
            return Err(format!(
                "it sent a message larger than {limit} bytes (max_response_bytes)"
            ));
        }
        if done {
            return Ok(Some(line));
        }
    }
}

pub(super) fn rpc_error_text(error: &Value) -> String {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("unknown error");
    match error.get("code").and_then(Value::as_i64) {
        Some(code) => format!("{message} (JSON-RPC error {code})"),
        None => message.to_string(),
    }
}

/// Answers requests the server sends us (`ping`), and routes responses to their callers.
async fn read_loop(
    stdout: impl AsyncRead + Unpin,
    limit: usize,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
    replies: tokio::sync::mpsc::UnboundedSender<Value>,
) -> String {
    let mut reader = BufReader::new(stdout);
    let reason = loop {
        let line = match read_message(&mut reader, limit).await {
            Ok(Some(line)) => line,
            Ok(None) => break "it closed its output".to_string(),
            Err(reason) => break reason,
        };
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            // Servers sometimes log to stdout; a line that is not JSON is not an answer.
            continue;
        };
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            if !id.is_null() {
                let reply = if method == "ping" {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("kneo does not handle {method}")}})
                };
                let _ = replies.send(reply);
            }
            continue;
        }
        let Some(id) = id.as_u64() else { continue };
        let sender = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(sender) = sender {
            let result = match message.get("error") {
                Some(error) => Err(RequestError::Rpc(rpc_error_text(error))),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = sender.send(result);
        }
    };
    alive.store(false, Ordering::SeqCst);
    reason
}

/// Why the server died, for the errors of the calls it took down with it.
fn death_note(reason: &str, status: Option<std::process::ExitStatus>, stderr: &[u8]) -> String {
    let status = match status.and_then(|status| status.code()) {
        Some(code) => format!(", exit status {code}"),
        None if status.is_some() => ", killed by a signal".to_string(),
        None => String::new(),
    };
    let stderr = crate::redact::redacted_text(String::from_utf8_lossy(stderr).trim());
    let stderr = if stderr.is_empty() {
        String::new()
    } else {
        let chars: Vec<char> = stderr.chars().collect();
        let start = chars.len().saturating_sub(300);
        format!("; stderr: {}", chars[start..].iter().collect::<String>())
    };
    format!("{reason}{status}{stderr}")
}

/// Spawns the server and performs the handshake.
async fn connect(plan: &McpServerPlan) -> Result<Arc<Session>, String> {
    let program = plan
        .command
        .clone()
        .filter(|command| !command.trim().is_empty())
        .ok_or_else(|| "it has no command to start".to_string())?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&plan.args)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
        )
        .envs(&plan.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &plan.cwd {
        command.current_dir(cwd);
    }
    let (mut child, process_group) = kneo_process::spawn_in_own_group(&mut command)
        .map_err(|error| format!("{program:?} could not be started: {error}"))?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("its standard streams could not be opened".into());
    };
    let pending: Arc<Pending> = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    let stderr_tail = Arc::new(Mutex::new(CappedBuffer::new(Cap::tail(STDERR_TAIL_BYTES))));
    let (replies, mut reply_queue) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let session = Arc::new(Session {
        server: plan.name.clone(),
        stdin: tokio::sync::Mutex::new(stdin),
        pending: pending.clone(),
        next_id: AtomicU64::new(1),
        alive: alive.clone(),
        process_group,
        tools: Mutex::new(Vec::new()),
    });
    let tail = stderr_tail.clone();
    tokio::spawn(async move { read_capped_into(stderr, &tail).await });
    // Answers to the server's own requests go out through a weak handle, so this task never
    // keeps a dropped session (and its server) alive.
    let writer = Arc::downgrade(&session);
    tokio::spawn(async move {
        while let Some(reply) = reply_queue.recv().await {
            let Some(session) = writer.upgrade() else {
                return;
            };
            let _ = session.write(&reply).await;
        }
    });
    let limit = plan.max_message_bytes;
    tokio::spawn(async move {
        let reason = read_loop(stdout, limit, pending.clone(), alive, replies).await;
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        // Give the stderr reader a moment to collect the last words.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let note = death_note(
            &reason,
            status,
            stderr_tail
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bytes(),
        );
        let waiting: Vec<_> = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (_, sender) in waiting {
            let _ = sender.send(Err(RequestError::Died(note.clone())));
        }
    });

    let limit = plan.settings.connect_timeout;
    let describe = |error: RequestError| match error {
        RequestError::Timeout(limit) => format!(
            "it did not finish the MCP handshake within {:.1} s (KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS)",
            limit.as_secs_f64()
        ),
        RequestError::Died(note) => format!("it exited during the MCP handshake ({note})"),
        RequestError::Rpc(message) => format!("it refused the MCP handshake: {message}"),
    };
    let initialize = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "kneo", "version": crate::VERSION},
    });
    let handshake = async {
        session.request("initialize", initialize, limit).await?;
        session.notify("notifications/initialized").await?;
        let listing = session.request("tools/list", json!({}), limit).await?;
        Ok::<Value, RequestError>(listing)
    };
    let listing = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(listing)) => listing,
        Ok(Err(error)) => {
            session.kill();
            return Err(describe(error));
        }
        Err(_) => {
            session.kill();
            return Err(describe(RequestError::Timeout(limit)));
        }
    };
    let names: Vec<String> = listing
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
    *session.tools.lock().unwrap_or_else(PoisonError::into_inner) = names;
    Ok(session)
}

/// The text of a `tools/call` result: its text contents joined, other contents as JSON.
pub(super) fn result_text(result: &Value) -> String {
    let Some(contents) = result.get("content").and_then(Value::as_array) else {
        return result.to_string();
    };
    contents
        .iter()
        .map(
            |content| match content.get("text").and_then(Value::as_str) {
                Some(text) => text.to_string(),
                None => content.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// The session of one server, if one is running; locked while it is being started.
type SessionSlot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

/// Live MCP sessions by server, shared by every run of the process.
#[derive(Clone, Default)]
pub struct McpSessions {
    slots: Arc<Mutex<HashMap<String, SessionSlot>>>,
    remote: RemoteSessions,
}

impl McpSessions {
    /// A running session for `plan`, started if there is none or the last one died.
    async fn session(&self, plan: &McpServerPlan) -> Result<Arc<Session>, String> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(plan.session_key())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(session) = slot.as_ref().filter(|session| session.is_alive()) {
            return Ok(session.clone());
        }
        *slot = None;
        let limit = plan.settings.connect_timeout;
        let session = tokio::time::timeout(limit, connect(plan))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "it did not start within {:.1} s (KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS)",
                    limit.as_secs_f64()
                ))
            })?;
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Whether a live session for the server exists (for tests and diagnostics).
    pub fn is_connected(&self, plan: &McpServerPlan) -> bool {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&plan.session_key())
            .cloned();
        slot.and_then(|slot| {
            slot.try_lock()
                .ok()
                .map(|session| session.as_ref().is_some_and(|s| s.is_alive()))
        })
        .unwrap_or(false)
    }

    /// Calls `remote_name` on the server with `arguments`.
    pub async fn call_tool(
        &self,
        plan: &McpServerPlan,
        remote_name: &str,
        arguments: &Value,
    ) -> Result<String, ToolError> {
        let server = &plan.name;
        if plan.transport != McpTransport::Stdio {
            return self.remote.call_tool(plan, remote_name, arguments).await;
        }
        let attempts = 1 + plan.settings.retries;
        let mut last_failure = String::new();
        for attempt in 1..=attempts {
            let session = match self.session(plan).await {
                Ok(session) => session,
                Err(reason) => {
                    last_failure = format!(
                        "MCP server '{server}' is unavailable: {reason} (KNEO_SERV_MCP_RETRIES={}, attempt {attempt})",
                        plan.settings.retries
                    );
                    continue;
                }
            };
            let known = session
                .tools
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if !known.is_empty() && !known.iter().any(|name| name == remote_name) {
                return Err(ToolError::Failed(format!(
                    "MCP server '{server}' has no tool '{remote_name}'; it offers {}",
                    known.join(", ")
                )));
            }
            let limit = plan.call_timeout();
            let params = json!({"name": remote_name, "arguments": arguments});
            match session.request("tools/call", params, limit).await {
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
                        "MCP server '{server}' refused tools/call '{remote_name}': {message}"
                    )));
                }
                Err(RequestError::Timeout(limit)) => {
                    // A silent server is not trusted with the next call: it is restarted.
                    session.kill();
                    return Err(ToolError::Unavailable(format!(
                        "MCP server '{server}' did not answer tools/call '{remote_name}' within {:.1} s \
                         (mcp_servers.{server}.timeout or KNEO_SERV_MCP_TIMEOUT_SECONDS; runbook § 5.3); the server was stopped",
                        limit.as_secs_f64()
                    )));
                }
                Err(RequestError::Died(note)) => {
                    session.kill();
                    last_failure = format!(
                        "MCP server '{}' exited during tools/call '{remote_name}' ({note}); KNEO_SERV_MCP_RETRIES={}, attempt {attempt}",
                        session.server, plan.settings.retries
                    );
                }
            }
        }
        Err(ToolError::Unavailable(last_failure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell_server(script: &str, settings: McpSettings) -> McpServerPlan {
        McpServerPlan {
            name: "test".into(),
            transport: McpTransport::Stdio,
            command: Some("sh".into()),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::new(),
            cwd: None,
            call_timeout: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            settings,
            remote: RemotePlan::default(),
        }
    }

    #[tokio::test]
    async fn a_silent_server_fails_the_handshake_within_the_connect_timeout() {
        let settings = McpSettings {
            connect_timeout: Duration::from_millis(300),
            ..McpSettings::default()
        };
        // Never answers: only the connect timeout can end the handshake.
        let plan = shell_server("exec sleep 600", settings);
        // The outer bound only turns a missing connect timeout into a failure instead of a hang.
        let error = tokio::time::timeout(
            Duration::from_secs(60),
            McpSessions::default().call_tool(&plan, "anything", &json!({})),
        )
        .await
        .expect("the 300 ms connect timeout never fired")
        .expect_err("no handshake");
        let ToolError::Unavailable(message) = error else {
            panic!("expected Unavailable, got {error:?}")
        };
        assert!(message.contains("MCP server 'test'"), "{message}");
        assert!(
            message.contains("within 0.3 s (KNEO_SERV_MCP_CONNECT_TIMEOUT_SECONDS)"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_server_that_exits_at_once_is_reported_with_its_stderr() {
        let plan = shell_server("echo 'no config' >&2; exit 4", McpSettings::default());
        let error = McpSessions::default()
            .call_tool(&plan, "anything", &json!({}))
            .await
            .expect_err("it exits");
        let message = error.to_string();
        assert!(message.contains("exit status 4"), "{message}");
        assert!(message.contains("no config"), "{message}");
    }

    #[test]
    fn results_join_their_text_contents() {
        let result =
            json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        assert_eq!(result_text(&result), "a\nb");
    }
}
