//! Query strings and path segments, percent-encoded by hand (reqwest's `query` feature is off).

/// Paging of a list call. `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// 1–1000 on kneo-server.
    pub limit: Option<u32>,
    pub offset: Option<u64>,
    pub sort_by: Option<String>,
    /// `asc` or `desc`.
    pub sort_order: Option<String>,
}

impl PageRequest {
    pub fn new(limit: u32, offset: u64) -> PageRequest {
        PageRequest {
            limit: Some(limit),
            offset: Some(offset),
            ..PageRequest::default()
        }
    }

    pub fn sorted(mut self, sort_by: &str, sort_order: &str) -> PageRequest {
        self.sort_by = Some(sort_by.to_string());
        self.sort_order = Some(sort_order.to_string());
        self
    }

    pub(crate) fn append_to(&self, query: &mut QueryString) {
        query.push_opt("limit", self.limit.map(|v| v.to_string()));
        query.push_opt("offset", self.offset.map(|v| v.to_string()));
        query.push_opt("sort_by", self.sort_by.clone());
        query.push_opt("sort_order", self.sort_order.clone());
    }
}

/// Filters of `GET /v1/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// `queued`, `running`, `blocked`, `failed`, … (`queued` lists runs waiting in the queue).
    pub status: Option<String>,
    pub page: PageRequest,
}

/// Filters of `GET /v1/audit-events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub run_id: Option<String>,
    pub event_type: Option<String>,
    /// Events whose metadata mentions this text (kneo-server; request ids, continuation ids).
    pub mentions: Option<String>,
    pub page: PageRequest,
}

/// Filters of `GET /v1/human-tasks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HumanTaskQuery {
    /// `pending` or `escalated`; `None` lists both.
    pub status: Option<String>,
    pub run_id: Option<String>,
    pub page: PageRequest,
}

/// An `a=1&b=2` string under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryString {
    pairs: Vec<(String, String)>,
}

impl QueryString {
    pub(crate) fn push(&mut self, key: &str, value: impl Into<String>) {
        self.pairs.push((key.to_string(), value.into()));
    }

    pub(crate) fn push_opt(&mut self, key: &str, value: Option<String>) {
        if let Some(value) = value {
            self.push(key, value);
        }
    }

    /// `?a=1&b=2`, or an empty string when there is nothing to add.
    pub(crate) fn render(&self) -> String {
        if self.pairs.is_empty() {
            return String::new();
        }
        let joined: Vec<String> = self
            .pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("?{}", joined.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an id can never add a path
/// segment or a query parameter.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_segments_are_encoded() {
        assert_eq!(encode("a/b?c=d&e f"), "a%2Fb%3Fc%3Dd%26e%20f");
        assert_eq!(encode("run-1_x.y~"), "run-1_x.y~");
        let mut query = QueryString::default();
        query.push("mentions", "req 1&x");
        PageRequest::new(100, 0)
            .sorted("created_at", "desc")
            .append_to(&mut query);
        assert_eq!(
            query.render(),
            "?mentions=req%201%26x&limit=100&offset=0&sort_by=created_at&sort_order=desc"
        );
        assert_eq!(QueryString::default().render(), "");
    }
}
