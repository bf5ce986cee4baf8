//! Tests of the network MCP transports against small real servers on loopback: streamable
//! HTTP answering with JSON or with an event stream, and the HTTP+SSE transport.

use super::*;
use crate::engine::settings::McpSettings;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use std::sync::atomic::AtomicUsize;
use tokio::sync::mpsc;

/// What a test server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    missing_token: AtomicUsize,
    missing_session: AtomicUsize,
}

/// The JSON-RPC answer a test server gives to `message` (`None` for a notification).
fn answer(message: &Value) -> Option<Value> {
    let id = message.get("id")?.clone();
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let result = match method {
        "initialize" => {
            json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "serverInfo": {"name": "test"}})
        }
        "tools/list" => json!({"tools": [{"name": "shout"}, {"name": "fail"}]}),
        "tools/call" => {
            let arguments = &message["params"]["arguments"];
            if message["params"]["name"] == "fail" {
                return Some(
                    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "no such account"}], "isError": true}}),
                );
            }
            let text = arguments["text"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase();
            json!({"content": [{"type": "text", "text": text}]})
        }
        _ => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "unknown"}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{address}")
}

/// A streamable HTTP server; `streamed` answers requests as event streams.
async fn streamable(streamed: bool) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let handler = move |State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String| async move {
        seen.requests.fetch_add(1, Ordering::SeqCst);
        if headers.get("x-token").and_then(|v| v.to_str().ok()) != Some("secret-value") {
            seen.missing_token.fetch_add(1, Ordering::SeqCst);
        }
        let message: Value = serde_json::from_str(&body).unwrap();
        let initialize = message["method"] == "initialize";
        if !initialize
            && headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) != Some("session-1")
        {
            seen.missing_session.fetch_add(1, Ordering::SeqCst);
        }
        let Some(reply) = answer(&message) else {
            return StatusCode::ACCEPTED.into_response();
        };
        let mut response = if streamed && !initialize {
            let text = format!(": keep-alive\n\nevent: message\ndata: {reply}\n\n");
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from(text))
                .unwrap()
        } else {
            axum::Json(reply).into_response()
        };
        if initialize {
            response
                .headers_mut()
                .insert(SESSION_HEADER, "session-1".parse().unwrap());
        }
        response
    };
    let router = Router::new()
        .route("/mcp", post(handler))
        .with_state(seen.clone());
    (format!("{}/mcp?token=hidden", serve(router).await), seen)
}

/// An HTTP+SSE server: the stream names `/messages`, answers travel on the stream.
async fn sse_server() -> String {
    type Streams = Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>>;
    let streams: Streams = Arc::default();
    let open = |State(streams): State<Streams>| async move {
        let (sender, receiver) = mpsc::unbounded_channel::<String>();
        let _ = sender.send("event: endpoint\ndata: /messages?session_id=7\n\n".to_string());
        streams.lock().unwrap().push(sender);
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let item = receiver.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(item), receiver))
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap()
    };
    let message = |State(streams): State<Streams>, body: String| async move {
        let message: Value = serde_json::from_str(&body).unwrap();
        if let Some(reply) = answer(&message)
            && let Some(stream) = streams.lock().unwrap().last()
        {
            let _ = stream.send(format!("event: message\ndata: {reply}\n\n"));
        }
        StatusCode::ACCEPTED
    };
    let router = Router::new()
        .route("/sse", get(open))
        .route("/messages", post(message))
        .with_state(streams);
    format!("{}/sse", serve(router).await)
}

fn plan(transport: McpTransport, spec: McpServerSpec) -> McpServerPlan {
    let settings = McpSettings {
        connect_timeout: Duration::from_secs(10),
        call_timeout: Duration::from_secs(10),
        retries: 0,
    };
    McpServerPlan::new("remote", &McpServerSpec { transport, ..spec }, &settings)
}

#[tokio::test]
async fn streamable_http_answers_in_json_with_session_and_headers() {
    for streamed in [false, true] {
        let (url, seen) = streamable(streamed).await;
        let plan = plan(
            McpTransport::Http,
            McpServerSpec {
                url: Some(url),
                headers: BTreeMap::from([("X-Token".into(), "secret-value".into())]),
                ..McpServerSpec::default()
            },
        );
        let sessions = RemoteSessions::default();
        let text = sessions
            .call_tool(&plan, "shout", &json!({"text": "hello"}))
            .await
            .unwrap();
        assert_eq!(text, "HELLO");
        let again = sessions
            .call_tool(&plan, "shout", &json!({"text": "again"}))
            .await
            .unwrap();
        assert_eq!(again, "AGAIN");
        // initialize, initialized, tools/list, then one message per call: one session.
        assert_eq!(
            seen.requests.load(Ordering::SeqCst),
            5,
            "streamed {streamed}"
        );
        assert_eq!(seen.missing_token.load(Ordering::SeqCst), 0);
        assert_eq!(seen.missing_session.load(Ordering::SeqCst), 0);
        let failed = sessions
            .call_tool(&plan, "fail", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(failed, ToolError::Failed("no such account".into()));
        let unknown = sessions
            .call_tool(&plan, "nope", &json!({}))
            .await
            .unwrap_err();
        assert!(
            unknown.to_string().contains("offers shout, fail"),
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn sse_transport_posts_to_the_named_endpoint_and_reads_answers_from_the_stream() {
    let plan = plan(
        McpTransport::Sse,
        McpServerSpec {
            sse_url: Some(sse_server().await),
            ..McpServerSpec::default()
        },
    );
    let sessions = RemoteSessions::default();
    assert_eq!(
        sessions
            .call_tool(&plan, "shout", &json!({"text": "over sse"}))
            .await
            .unwrap(),
        "OVER SSE"
    );
    assert_eq!(
        sessions
            .call_tool(&plan, "shout", &json!({"text": "twice"}))
            .await
            .unwrap(),
        "TWICE"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_its_query_or_headers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let plan = plan(
        McpTransport::Http,
        McpServerSpec {
            url: Some(format!("http://{address}/mcp?token=hidden")),
            headers: BTreeMap::from([("Authorization".into(), "Bearer secret-value".into())]),
            ..McpServerSpec::default()
        },
    );
    let error = RemoteSessions::default()
        .call_tool(&plan, "shout", &json!({}))
        .await
        .unwrap_err();
    let ToolError::Unavailable(message) = error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(
        message.contains(&format!("MCP server 'remote' (http http://{address}/mcp)")),
        "{message}"
    );
    assert!(
        !message.contains("hidden") && !message.contains("secret-value"),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_answering_errors_fails_the_call_with_its_status() {
    let router = Router::new().route(
        "/mcp",
        post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database is down") }),
    );
    let plan = plan(
        McpTransport::Http,
        McpServerSpec {
            url: Some(format!("{}/mcp", serve(router).await)),
            ..McpServerSpec::default()
        },
    );
    let error = RemoteSessions::default()
        .call_tool(&plan, "shout", &json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("HTTP 500 Internal Server Error: database is down"),
        "{error}"
    );
}

#[test]
fn events_are_split_as_bytes_arrive() {
    let mut parser = EventParser::default();
    assert!(
        parser
            .push(b"event: endpoint\ndata: /m", 1024)
            .unwrap()
            .is_empty()
    );
    let events = parser
        .push(
            b"essages\n\n: comment\n\ndata: {\"a\":\ndata: 1}\r\n\r\n",
            1024,
        )
        .unwrap();
    assert_eq!(
        events,
        vec![
            Event {
                name: "endpoint".into(),
                data: "/messages".into()
            },
            Event {
                name: "message".into(),
                data: "{\"a\":\n1}".into()
            },
        ]
    );
    assert!(parser.push(&[b'x'; 2048], 1024).is_err());
}

#[tokio::test]
async fn a_silent_event_stream_fails_the_waiting_call_after_sse_read_timeout() {
    let open = || async {
        let stream = futures_util::stream::once(async {
            Ok::<_, std::convert::Infallible>("event: endpoint\ndata: /messages\n\n".to_string())
        })
        .chain(futures_util::stream::pending());
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap()
    };
    let router = Router::new()
        .route("/sse", get(open))
        .route("/messages", post(|| async { StatusCode::ACCEPTED }));
    let plan = plan(
        McpTransport::Sse,
        McpServerSpec {
            sse_url: Some(format!("{}/sse", serve(router).await)),
            sse_read_timeout: Some(0.3),
            ..McpServerSpec::default()
        },
    );
    let error = RemoteSessions::default()
        .call_tool(&plan, "shout", &json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("sse_read_timeout"), "{error}");
}

#[cfg(feature = "provider-tls")]
#[test]
fn tls_files_are_read_and_named_when_they_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let build = |spec: McpServerSpec| {
        client_for(&plan(
            McpTransport::Http,
            McpServerSpec {
                url: Some("https://mcp.invalid".into()),
                ..spec
            },
        ))
    };
    assert!(
        build(McpServerSpec {
            verify: Some(false),
            ..McpServerSpec::default()
        })
        .is_ok()
    );
    let missing = build(McpServerSpec {
        ca_bundle: Some("/nonexistent/ca.pem".into()),
        ..McpServerSpec::default()
    })
    .unwrap_err();
    assert!(
        missing.contains("ca_bundle \"/nonexistent/ca.pem\" cannot be read"),
        "{missing}"
    );
    let cert = build(McpServerSpec {
        client_cert: Some(not_pem.display().to_string()),
        ..McpServerSpec::default()
    })
    .unwrap_err();
    assert!(
        cert.contains("neither client_key nor client_key_ref"),
        "{cert}"
    );
    let unset = build(McpServerSpec {
        client_cert: Some(not_pem.display().to_string()),
        client_key_ref: Some("KNEO_TEST_UNSET_MCP_KEY".into()),
        ..McpServerSpec::default()
    })
    .unwrap_err();
    assert!(
        unset.contains("KNEO_TEST_UNSET_MCP_KEY, which is not set"),
        "{unset}"
    );
}
