//! An HTTP client bound to one test server that returns status, headers and body together, so
//! a test can assert on what a user of the API would see (also on error answers).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// One HTTP exchange, as a test sees it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `detail.error` of an error envelope.
    pub fn error_code(&self) -> Option<&str> {
        self.body
            .get("detail")
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
    }
}

/// A client for one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            // Below the server's 10 s idle keep-alive limit, so a pooled connection is not
            // reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .unwrap_or_else(|error| panic!("cannot build the test HTTP client: {error}"));
        Api {
            base: base.trim_end_matches('/').to_string(),
            client,
        }
    }

    /// Sends a request; `headers` are name/value pairs; `body` is JSON (or None).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|error| panic!("{method:?} is not an HTTP method: {error}"));
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        Answer::read(response).await
    }

    /// Sends raw bytes as the body.
    pub async fn send_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|error| panic!("{method:?} is not an HTTP method: {error}"));
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        Answer::read(response).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.send(
            "GET",
            path,
            &[("authorization", &format!("Bearer {key}"))],
            None,
        )
        .await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send(
            "POST",
            path,
            &[("authorization", &format!("Bearer {key}"))],
            Some(body),
        )
        .await
    }

    /// Polls `GET /v1/runs/{id}` until the run is terminal (or `limit` passes).
    pub async fn wait_terminal(&self, run_id: &str, key: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answer = self.get(&format!("/v1/runs/{run_id}"), key).await;
            let status = answer.body["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ["completed", "failed", "cancelled", "timed_out", "expired"]
                .contains(&status.as_str())
            {
                return answer.body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "run {run_id} still {status} after {limit:?}: {}",
                    answer.text
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Answer {
    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }
}

/// An answer read off a raw TCP exchange: the status line's code, the head, and the body.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `request` as raw bytes on a new connection to `address` (`127.0.0.1:PORT`) and reads
/// the answer until the server closes the connection (send `Connection: close`), or `limit`:
/// for requests no HTTP client would send (oversize heads, half-sent requests).
pub async fn raw_exchange(address: &str, request: &[u8], limit: Duration) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        // The server may answer and close before the whole request was written.
        let _ = stream.write_all(request).await;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        bytes
    };
    let bytes = tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {address} within {limit:?}"));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    RawAnswer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
