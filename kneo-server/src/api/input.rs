//! Reading request input strictly: JSON bodies with no unknown fields, query strings with no
//! unknown parameters, and the native 422 validation list for anything of the wrong shape.

use std::collections::HashSet;

use axum::body::Body;
use serde_json::{Map, Value, json};

use super::error::{ApiError, ValidationIssue};
use crate::store::{LIST_WINDOW, PageQuery, SortOrder};

/// The one id in a route's path (`{run_id}`, `{continuation_id}`).
///
/// An id that is not UTF-8 after percent-decoding, or holds a NUL, names nothing that can exist:
/// it is `404 not_found` in the envelope, as kneo-serv answers, and never reaches the store
/// (Postgres refuses NUL in text).
pub struct PathId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found())?;
        if id.contains('\0') {
            return Err(ApiError::not_found());
        }
        Ok(PathId(id))
    }
}

/// How a body is read: at most `max_bytes`, with no pause between two pieces longer than
/// `idle` (a client that stops sending half-way gets `408 request_timeout`, not a held task).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub idle: std::time::Duration,
}

impl BodyLimits {
    pub fn of(config: &crate::config::Config) -> BodyLimits {
        BodyLimits {
            max_bytes: config.limits.max_body_bytes,
            idle: config.http_header_read_timeout,
        }
    }
}

/// Reads a body within `limits`; passing the cap (even without a `Content-Length`) is a 413.
pub async fn read_body(body: Body, limits: BodyLimits) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(limits.idle, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "The request body stopped arriving for {} s (KNEO_SERV_HTTP_HEADER_READ_TIMEOUT_SECONDS); send it whole and promptly.",
                        limits.idle.as_secs_f64()
                    ),
                ));
            }
            Ok(None) => return Ok(axum::body::Bytes::from(bytes)),
            Ok(Some(Err(error))) => {
                return Err(ApiError::invalid_request(format!(
                    "The request body could not be read: {error}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > limits.max_bytes {
                return Err(ApiError::payload_too_large(limits.max_bytes));
            }
            bytes.extend_from_slice(data);
        }
    }
}

/// Reads a JSON object body: up to `max_bytes`, sent as JSON (`application/json` or
/// `application/*+json`), parsed strictly.
///
/// A body with any other content type (text, a form, multipart, or none) is not read as JSON,
/// as kneo-serv refuses it: the native 422 `model_attributes_type`, with the start of the body.
pub async fn read_json_object(
    headers: &axum::http::HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(body, limits).await?;
    if !bytes.iter().all(u8::is_ascii_whitespace) && !is_json_content_type(headers) {
        let text = String::from_utf8_lossy(&bytes);
        let shown: String = text.chars().take(BODY_ECHO_CHARS).collect();
        return Err(ApiError::validation(vec![ValidationIssue {
            kind: "model_attributes_type",
            loc: vec![json!("body")],
            msg: "Input should be a valid dictionary or object to extract fields from (send the body as Content-Type: application/json)".into(),
            input: Some(json!(shown)),
            ctx: None,
        }]));
    }
    parse_json_object(&bytes)
}

/// How much of a body that is not JSON a 422 shows back.
const BODY_ECHO_CHARS: usize = 200;

/// `application/json` or `application/<anything>+json`, any case, with or without parameters.
fn is_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = media_type.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// The message of a native 422 for a string holding a NUL character.
const NUL_MESSAGE: &str = "String should not contain the NUL character (\\u0000)";

/// Parses a JSON object body; anything else is a native 422.
pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(vec![ValidationIssue {
            kind: "missing",
            loc: vec![json!("body")],
            msg: "Field required".into(),
            input: None,
            ctx: None,
        }]));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => match nul_location(&map) {
            // Postgres cannot store NUL in text or JSON, and no legitimate input needs one.
            Some(loc) => Err(ApiError::validation(vec![ValidationIssue {
                kind: "string_pattern_mismatch",
                loc,
                msg: NUL_MESSAGE.into(),
                input: None,
                ctx: None,
            }])),
            None => Ok(map),
        },
        Ok(other) => Err(ApiError::validation(vec![ValidationIssue {
            kind: "model_attributes_type",
            loc: vec![json!("body")],
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            input: Some(other),
            ctx: None,
        }])),
        Err(error) => Err(ApiError::validation(vec![ValidationIssue {
            kind: "json_invalid",
            loc: vec![json!("body"), json!(error.column())],
            msg: format!("JSON decode error: {error}"),
            input: Some(json!({})),
            ctx: None,
        }])),
    }
}

/// Where (as a `loc` list) a string of the body holds a NUL character, if anywhere.
fn nul_location(map: &Map<String, Value>) -> Option<Vec<Value>> {
    fn walk(value: &Value, path: &mut Vec<Value>) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(index, item)| {
                path.push(json!(index));
                let found = walk(item, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::Object(fields) => fields.iter().any(|(key, item)| {
                path.push(json!(key));
                let found = key.contains('\0') || walk(item, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = vec![json!("body")];
    walk(&Value::Object(map.clone()), &mut path).then_some(path)
}

/// Reads the fields of a strict request model, collecting every problem before answering.
pub struct ObjectReader {
    fields: Map<String, Value>,
    seen: HashSet<String>,
    issues: Vec<ValidationIssue>,
}

impl ObjectReader {
    pub fn new(fields: Map<String, Value>) -> ObjectReader {
        ObjectReader {
            fields,
            seen: HashSet::new(),
            issues: Vec::new(),
        }
    }

    fn issue(
        &mut self,
        kind: &'static str,
        field: &str,
        msg: impl Into<String>,
        input: Option<Value>,
    ) {
        self.issues.push(ValidationIssue {
            kind,
            loc: vec![json!("body"), json!(field)],
            msg: msg.into(),
            input,
            ctx: None,
        });
    }

    /// Records a problem found by the caller's own checks of a field.
    pub fn push_issue(&mut self, issue: ValidationIssue) {
        self.issues.push(issue);
    }

    /// The whole object read so far, as pydantic quotes it for a missing field.
    pub fn whole_input(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// The raw value of a field, or `None` when absent or null.
    fn take(&mut self, field: &str) -> Option<Value> {
        self.seen.insert(field.to_string());
        self.fields
            .get(field)
            .filter(|value| !value.is_null())
            .cloned()
    }

    pub fn required_string(&mut self, field: &str, max_chars: Option<usize>) -> String {
        match self.take(field) {
            None => {
                let whole = self.whole_input();
                self.issue("missing", field, "Field required", Some(whole));
                String::new()
            }
            Some(value) => self
                .check_string(field, value, max_chars)
                .unwrap_or_default(),
        }
    }

    pub fn optional_string(&mut self, field: &str, max_chars: Option<usize>) -> Option<String> {
        let value = self.take(field)?;
        self.check_string(field, value, max_chars)
    }

    fn check_string(
        &mut self,
        field: &str,
        value: Value,
        max_chars: Option<usize>,
    ) -> Option<String> {
        let Value::String(text) = value else {
            self.issue(
                "string_type",
                field,
                "Input should be a valid string",
                Some(value),
            );
            return None;
        };
        if let Some(max) = max_chars
            && text.chars().count() > max
        {
            self.issues.push(ValidationIssue {
                kind: "string_too_long",
                loc: vec![json!("body"), json!(field)],
                msg: format!("String should have at most {max} characters"),
                input: Some(json!(format!("<{} characters>", text.chars().count()))),
                ctx: Some(json!({"max_length": max})),
            });
            return None;
        }
        Some(text)
    }

    pub fn optional_bool(&mut self, field: &str) -> Option<bool> {
        match self.take(field)? {
            Value::Bool(flag) => Some(flag),
            other => {
                self.issue(
                    "bool_type",
                    field,
                    "Input should be a valid boolean",
                    Some(other),
                );
                None
            }
        }
    }

    /// An object field, refused when its serialized size passes `max_bytes`.
    pub fn optional_object(
        &mut self,
        field: &str,
        max_bytes: Option<usize>,
    ) -> Option<Map<String, Value>> {
        match self.take(field)? {
            Value::Object(map) => {
                if let Some(max) = max_bytes {
                    let size = serde_json::to_vec(&map)
                        .map(|bytes| bytes.len())
                        .unwrap_or(usize::MAX);
                    if size > max {
                        self.issue(
                            "value_error",
                            field,
                            format!("Value error, {field} is {size} bytes; the limit is {max} bytes (runbook § 6.3)"),
                            None,
                        );
                        return None;
                    }
                }
                Some(map)
            }
            other => {
                self.issue(
                    "dict_type",
                    field,
                    "Input should be a valid dictionary",
                    Some(other),
                );
                None
            }
        }
    }

    pub fn optional_string_list(&mut self, field: &str) -> Option<Vec<String>> {
        match self.take(field)? {
            Value::Array(items) => {
                let mut list = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(text) => list.push(text),
                        other => self.issues.push(ValidationIssue {
                            kind: "string_type",
                            loc: vec![json!("body"), json!(field), json!(index)],
                            msg: "Input should be a valid string".into(),
                            input: Some(other),
                            ctx: None,
                        }),
                    }
                }
                Some(list)
            }
            other => {
                self.issue(
                    "list_type",
                    field,
                    "Input should be a valid list",
                    Some(other),
                );
                None
            }
        }
    }

    /// A string field restricted to `allowed` values.
    pub fn optional_choice(&mut self, field: &str, allowed: &[&str]) -> Option<String> {
        let value = self.take(field)?;
        let text = self.check_string(field, value, None)?;
        if allowed.contains(&text.as_str()) {
            Some(text)
        } else {
            let expected = allowed
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ");
            self.issue(
                "enum",
                field,
                format!("Input should be {expected}"),
                Some(json!(text)),
            );
            None
        }
    }

    /// Any JSON value (for fields whose shape the caller validates itself).
    pub fn optional_value(&mut self, field: &str) -> Option<Value> {
        self.take(field)
    }

    /// Ends reading: unknown fields are `extra_forbidden`; any problem becomes one native 422.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let extra: Vec<(String, Value)> = self
            .fields
            .iter()
            .filter(|(key, _)| !self.seen.contains(*key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        for (key, value) in extra {
            self.issue(
                "extra_forbidden",
                &key,
                "Extra inputs are not permitted",
                Some(value),
            );
        }
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.issues))
        }
    }
}

/// Query parameters of one request, checked against the names the route declares.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Parses `query`; a parameter the route does not declare is `422 unknown_query_parameters`.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<QueryParams, ApiError> {
        let pairs: Vec<(String, String)> = query
            .map(|text| {
                form_urlencoded_pairs(text)
                    .into_iter()
                    .filter(|(key, _)| !key.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut unknown: Vec<String> = pairs
            .iter()
            .map(|(key, _)| key.clone())
            .filter(|key| !allowed.contains(&key.as_str()))
            .collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            return Err(ApiError::unknown_query_parameters(unknown));
        }
        // Postgres cannot compare text with a NUL in it, and no id, name or filter holds one.
        if let Some((name, value)) = pairs.iter().find(|(_, value)| value.contains('\0')) {
            return Err(Self::issue(
                name,
                "string_pattern_mismatch",
                NUL_MESSAGE.into(),
                &value.replace('\0', "\\u0000"),
            ));
        }
        Ok(QueryParams { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn issue(name: &str, kind: &'static str, msg: String, input: &str) -> ApiError {
        Self::issue_with_ctx(name, kind, msg, input, None)
    }

    fn issue_with_ctx(
        name: &str,
        kind: &'static str,
        msg: String,
        input: &str,
        ctx: Option<Value>,
    ) -> ApiError {
        ApiError::validation(vec![ValidationIssue {
            kind,
            loc: vec![json!("query"), json!(name)],
            msg,
            input: Some(json!(input)),
            ctx,
        }])
    }

    /// Every value given for a repeatable parameter (`?providers=a&providers=b`), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// A boolean as pydantic reads one (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `t`/`f`,
    /// `y`/`n`, any case), or `None` when absent.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
            _ => Err(Self::issue(
                name,
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input".into(),
                text,
            )),
        }
    }

    /// An optional integer of at least `min` (`None` when absent).
    pub fn optional_integer(&self, name: &str, min: i64) -> Result<Option<i64>, ApiError> {
        if self.get(name).is_none() {
            return Ok(None);
        }
        self.integer(name, min, i64::MAX, min).map(Some)
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn integer(&self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        let number: i64 = text.trim().parse().map_err(|_| {
            Self::issue(
                name,
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer".into(),
                text,
            )
        })?;
        if number < min {
            return Err(Self::issue_with_ctx(
                name,
                "greater_than_equal",
                format!("Input should be greater than or equal to {min}"),
                text,
                Some(json!({"ge": min})),
            ));
        }
        if number > max {
            return Err(Self::issue_with_ctx(
                name,
                "less_than_equal",
                format!("Input should be less than or equal to {max}"),
                text,
                Some(json!({"le": max})),
            ));
        }
        Ok(number)
    }

    /// One of `allowed`, or `default` when absent.
    pub fn choice<'a>(
        &self,
        name: &str,
        allowed: &[&'a str],
        default: &'a str,
    ) -> Result<&'a str, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        allowed
            .iter()
            .find(|candidate| **candidate == text)
            .copied()
            .ok_or_else(|| {
                let expected = allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Self::issue(name, "enum", format!("Input should be {expected}"), text)
            })
    }

    /// `sort_order`, a literal `'asc'` or `'desc'`.
    pub fn sort_order(&self, default: SortOrder) -> Result<SortOrder, ApiError> {
        match self.get("sort_order") {
            None => Ok(default),
            Some("asc") => Ok(SortOrder::Asc),
            Some("desc") => Ok(SortOrder::Desc),
            Some(other) => Err(Self::issue_with_ctx(
                "sort_order",
                "literal_error",
                "Input should be 'asc' or 'desc'".into(),
                other,
                Some(json!({"expected": "'asc' or 'desc'"})),
            )),
        }
    }

    /// The standard pagination block; `sort_by` is checked against the route's sortable columns.
    pub fn page<'a>(
        &self,
        sortable: &[&'a str],
        default_sort: &'a str,
        default_order: SortOrder,
    ) -> Result<(PageQuery, &'a str), ApiError> {
        let limit = self.integer("limit", 1, 1000, 100)? as usize;
        let offset = self.integer("offset", 0, LIST_WINDOW as i64, 0)? as usize;
        let sort_by = self.choice("sort_by", sortable, default_sort)?;
        let order = self.sort_order(default_order)?;
        Ok((
            PageQuery {
                limit,
                offset,
                order,
                window: LIST_WINDOW,
            },
            sort_by,
        ))
    }
}

/// Splits `a=1&b=two%20words` into decoded pairs (`+` is a space, as in HTML forms).
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => match bytes.get(index + 1..index + 3) {
                Some(&[high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                    let hex = [high, low];
                    let text = std::str::from_utf8(&hex).unwrap_or("00");
                    decoded.push(u8::from_str_radix(text, 16).unwrap_or(0));
                    index += 2;
                }
                _ => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The pagination fields every list response carries.
pub fn page_fields(
    page: &PageQuery,
    sort_by: &str,
    count: usize,
    total: i64,
) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("count".into(), json!(count));
    fields.insert("total".into(), json!(total));
    fields.insert("window".into(), json!(page.window));
    fields.insert("limit".into(), json!(page.limit));
    fields.insert("offset".into(), json!(page.offset));
    fields.insert("sort_by".into(), json!(sort_by));
    fields.insert("sort_order".into(), json!(page.order.as_str()));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_query_parameters_are_named() {
        let error = QueryParams::parse(Some("limit=5&bogus=1&zz=2"), &["limit"])
            .err()
            .expect("refused");
        assert_eq!(error.code(), "unknown_query_parameters");
    }

    #[test]
    fn percent_encoding_is_decoded() {
        let params = QueryParams::parse(
            Some("status=com%70leted&x=a+b&y=%zz&z=%4"),
            &["status", "x", "y", "z"],
        )
        .expect("parsed");
        assert_eq!(params.get("status"), Some("completed"));
        assert_eq!(params.get("x"), Some("a b"));
        assert_eq!(params.get("y"), Some("%zz"));
        assert_eq!(params.get("z"), Some("%4"));
    }

    #[test]
    fn limits_outside_the_range_are_422() {
        let params = QueryParams::parse(Some("limit=0"), &["limit"]).expect("parsed");
        assert_eq!(
            params
                .integer("limit", 1, 1000, 100)
                .err()
                .map(|e| e.code()),
            Some("validation")
        );
        let params = QueryParams::parse(Some("limit=abc"), &["limit"]).expect("parsed");
        assert!(params.integer("limit", 1, 1000, 100).is_err());
    }

    #[test]
    fn extra_body_fields_are_forbidden() {
        let mut reader =
            ObjectReader::new(serde_json::from_str(r#"{"input":"x","nope":1}"#).expect("json"));
        assert_eq!(reader.required_string("input", None), "x");
        let error = reader.finish().expect_err("extra field");
        assert_eq!(error.code(), "validation");
    }

    #[test]
    fn a_nul_character_anywhere_is_refused_with_its_location() {
        let error = parse_json_object(br#"{"input":"ok","metadata":{"note":"a\u0000b"}}"#)
            .expect_err("NUL refused");
        assert!(error.to_string().contains("metadata"), "{error}");
    }

    #[test]
    fn a_non_object_body_is_a_validation_error() {
        assert!(parse_json_object(b"[1,2]").is_err());
        assert!(parse_json_object(b"{bad json").is_err());
        assert!(parse_json_object(b"").is_err());
        assert!(parse_json_object(b"{\"a\":1}").is_ok());
    }
}
