//! Connection exhaustion (issue 12): thousands of idle or half-sent connections under a small
//! open-file limit must not lock new clients out, idle connections are closed, and a cap that
//! has no idle connection left to close answers `503` in the envelope.

use std::time::{Duration, Instant};

use kneo_testkit::http::{Api, raw_exchange};
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `KNEO_IDLE_CONNECTIONS` overrides the 2,000 idle connections of the acceptance line.
fn idle_connection_count() -> usize {
    std::env::var("KNEO_IDLE_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

/// Opens `count` connections to `address`; every other one sends half a request head.
async fn hold_connections(address: &str, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for index in 0..count {
        let connect = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(address));
        let mut stream = match connect.await {
            Ok(Ok(stream)) => stream,
            // The server closing older idle ones is fine; failing to connect at all is not.
            other => panic!("connection {index} of {count} could not be made: {other:?}"),
        };
        if index % 2 == 1 {
            let _ = stream
                .write_all(b"GET /v1/runs HTTP/1.1\r\nHost: x\r\nX-Half")
                .await;
        }
        held.push(stream);
    }
    held
}

/// A new `/healthz` connection is answered 200 while `held` connections sit on the server.
async fn assert_healthz_answers(address: &str, context: &str) {
    let answer = raw_exchange(
        address,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(answer.status, 200, "{context}: {}", answer.head);
}

/// 2,000 idle connections (half of them with half a request head) against a server whose hard
/// open-file limit is 1,024 (soft 256: the server raises it at start and says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_under_a_small_file_limit_do_not_lock_out_healthz() {
    let count = idle_connection_count();
    let server = KneoServer::start(ServerOptions::default().open_file_limit(256, 1024));
    let address = server.url.trim_start_matches("http://").to_string();
    let held = hold_connections(&address, count).await;
    assert_healthz_answers(&address, &format!("after {count} idle connections")).await;
    let log = server.log();
    assert!(
        log.contains("\"event\":\"open_file_limit\"") && log.contains("\"after\":1024"),
        "the raised limit is logged: {log}"
    );
    let api = Api::new(&server.url);
    let runs = api.get("/v1/runs", OPERATOR_KEY).await;
    assert_eq!(runs.status, 200, "{}", runs.text);
    let metrics = api.send("GET", "/metrics", &[], None).await;
    let open: usize = metrics
        .text
        .lines()
        .find_map(|line| line.strip_prefix("kneo_http_connections "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connection gauge: {}", metrics.text));
    assert!(
        open < 1024,
        "the server holds fewer connections than its file limit: {open}"
    );
    drop(held);
}

/// A connection that sends nothing, or half a head, is closed after the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed() {
    let server = KneoServer::start(
        ServerOptions::default().env("KNEO_SERV_HTTP_HEADER_READ_TIMEOUT_SECONDS", "1"),
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let mut held = hold_connections(&address, 4).await;
    // Also an idle keep-alive connection after one complete request.
    let mut kept = TcpStream::connect(&address).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    held.push(kept);
    for (index, stream) in held.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        // Bounded only to fail instead of hanging: the server closes within about a second.
        let closed =
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes)).await;
        assert!(
            matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
            "connection {index} was never closed"
        );
    }
}

/// A connection whose request stalls half-way through its body: in flight on the server.
async fn stalled_request(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /v1/specs/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{{\"spec_path\""
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    stream
}

/// The value of an unlabelled metric.
async fn metric(api: &Api, name: &str) -> i64 {
    let text = api.send("GET", "/metrics", &[], None).await.text;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn healthz(address: &str) -> kneo_testkit::http::RawAnswer {
    raw_exchange(
        address,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(30),
    )
    .await
}

/// With every connection busy (a request in flight on each), a new one gets `503
/// too_many_connections` in the envelope; once they finish, new connections are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_with_every_connection_busy_answers_503() {
    const CAP: i64 = 5;
    let server = KneoServer::start(
        ServerOptions::default()
            .env("KNEO_SERV_MAX_CONNECTIONS", &CAP.to_string())
            .env("KNEO_SERV_HTTP_HEADER_READ_TIMEOUT_SECONDS", "3"),
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let api = Api::new(&server.url);
    let mut busy = Vec::new();
    for _ in 0..CAP - 1 {
        busy.push(stalled_request(&address).await);
    }
    // The probe is the fifth connection (closed after each look); it counts itself in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&api, "kneo_http_requests_in_flight").await < CAP {
        assert!(
            Instant::now() < deadline,
            "the stalled requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last slot: a stalled request that has not been dispatched yet is still an idle
    // connection, which a new connection may close; try again until it is in flight first.
    let refused = loop {
        let mut last = stalled_request(&address).await;
        let answer = healthz(&address).await;
        if answer.status == 503 {
            busy.push(last);
            break answer;
        }
        assert_eq!(answer.status, 200, "{}", answer.head);
        assert!(Instant::now() < deadline, "never refused: {}", answer.head);
        let _ = last.shutdown().await;
    };
    assert!(
        refused.head.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        refused.head
    );
    assert_eq!(
        refused.json()["detail"]["error"],
        "too_many_connections",
        "{}",
        refused.body
    );
    // The stalled bodies time out with 408 in the envelope, and the cap frees up.
    for stream in &mut busy {
        let mut bytes = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes)).await;
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthz(&address).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "still refused after the requests ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metric(&api, "kneo_http_connections_refused_total").await >= 1);
}
