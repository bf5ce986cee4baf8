//! The recorded request/response pairs of kneo-serv 1.2.0, for conformance tests.
//!
//! Each file `NN_name.json` holds one exchange:
//! `{"request": {"method", "path", "headers", "body", "note"?}, "response": {"status", "headers", "body"}}`.
//! Bodies are JSON values; a non-JSON body is a JSON string, either the text itself
//! (`45_metrics`) or a placeholder such as `"<1100012 raw bytes>"` (`21_runs_create_payload_too_large`).
//!
//! The directory is `shared/golden/kneo-serv-1.2.0` above the workspace root, or `$KNEO_GOLDEN_DIR`.
//! The second set (`NNN_name.json`, grouped into categories by its `INDEX.md`) is read by [`ext`].

pub mod ext;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::workspace;

/// Overrides the directory the golden files are read from.
pub const GOLDEN_DIR_ENV: &str = "KNEO_GOLDEN_DIR";

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Golden {
    /// The file name without `.json`, e.g. `08_runs_create_sync`.
    pub name: String,
    pub request: Request,
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/v1/runs?status=completed`.
    pub path: String,
    pub headers: Map<String, Value>,
    /// `Value::Null` when the request had no body.
    pub body: Value,
    /// How the recording service was set up, when that differs from the default.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    /// Header names are lower-case.
    pub headers: Map<String, Value>,
    pub body: Value,
}

/// The directory holding the golden files.
pub fn golden_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(GOLDEN_DIR_ENV) {
        return PathBuf::from(dir);
    }
    shared_golden("kneo-serv-1.2.0")
}

/// `shared/golden/<name>` in the nearest directory above the workspace root that has one (the
/// checkout's parent for the main checkout, further up for a worktree), else beside the root.
pub(crate) fn shared_golden(name: &str) -> PathBuf {
    shared_path(&Path::new("golden").join(name))
}

/// Overrides the directory of the extended recordings (`kneo-serv-1.2.0-ext`).
pub use ext::GOLDEN_EXT_DIR_ENV;

/// The directory of the extended recordings (see [`ext::dir`]).
pub fn ext_dir() -> PathBuf {
    ext::dir()
}

/// kneo-serv 1.2.0's own OpenAPI document (`shared/reference/kneo-serv-1.2.0-openapi.json`).
pub fn reference_openapi() -> Value {
    let path = shared_path(Path::new("reference/kneo-serv-1.2.0-openapi.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("cannot read the reference OpenAPI document {path:?}: {error}")
    });
    serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!("the reference OpenAPI document {path:?} is not JSON: {error}")
    })
}

/// `shared/<relative>` in the nearest directory above the workspace root that has it.
fn shared_path(relative: &Path) -> PathBuf {
    let root = workspace::root();
    let relative = Path::new("shared").join(relative);
    root.ancestors()
        .skip(1)
        .map(|dir| dir.join(&relative))
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| root.parent().unwrap_or(root).join(&relative))
}

/// Loads the golden file whose name starts with `<prefix>_`, e.g. `load("08")`.
pub fn load(prefix: &str) -> Golden {
    let wanted = format!("{prefix}_");
    let matches: Vec<PathBuf> = golden_files()
        .into_iter()
        .filter(|path| file_stem(path).starts_with(&wanted))
        .collect();
    match matches.as_slice() {
        [path] => parse_file(path),
        [] => panic!("no golden file named {wanted}*.json in {:?}", golden_dir()),
        several => panic!("golden prefix {prefix:?} is ambiguous: {several:?}"),
    }
}

/// Every golden file, sorted by name (and so by number).
pub fn all() -> Vec<Golden> {
    golden_files().iter().map(|path| parse_file(path)).collect()
}

fn golden_files() -> Vec<PathBuf> {
    json_files(&golden_dir())
}

/// The `*.json` files directly in `dir`, sorted by name.
pub(crate) fn json_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|error| {
        panic!(
            "cannot read the golden directory {dir:?}: {error}; \
             set {GOLDEN_DIR_ENV} (or {}) to the directory holding the recordings",
            ext::GOLDEN_EXT_DIR_ENV
        )
    });
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn parse_file(path: &Path) -> Golden {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read golden file {path:?}: {error}"));
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("golden file {path:?} is not valid JSON: {error}"));
    from_json(file_stem(path), &json).unwrap_or_else(|problem| {
        panic!("golden file {path:?} has an unexpected format: {problem}")
    })
}

fn from_json(name: String, json: &Value) -> Result<Golden, String> {
    let request = field(json, "request")?;
    let response = field(json, "response")?;
    Ok(Golden {
        name,
        request: Request {
            method: string(request, "request.method")?,
            path: string(request, "request.path")?,
            headers: object(request, "request.headers")?,
            body: field(request, "request.body")?.clone(),
            note: request
                .get("note")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        response: Response {
            status: status(response)?,
            headers: object(response, "response.headers")?,
            body: field(response, "response.body")?.clone(),
        },
    })
}

/// `dotted` is the full path for error messages; only its last segment is looked up.
fn field<'a>(parent: &'a Value, dotted: &str) -> Result<&'a Value, String> {
    let key = dotted.rsplit('.').next().unwrap_or(dotted);
    parent
        .get(key)
        .ok_or_else(|| format!("`{dotted}` is missing"))
}

fn string(parent: &Value, dotted: &str) -> Result<String, String> {
    field(parent, dotted)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{dotted}` is not a string"))
}

fn object(parent: &Value, dotted: &str) -> Result<Map<String, Value>, String> {
    field(parent, dotted)?
        .as_object()
        .cloned()
        .ok_or_else(|| format!("`{dotted}` is not an object"))
}

fn status(response: &Value) -> Result<u16, String> {
    field(response, "response.status")?
        .as_u64()
        .and_then(|status| u16::try_from(status).ok())
        .ok_or_else(|| "`response.status` is not a u16".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_01_parses_the_healthz_exchange() {
        let golden = load("01");
        assert_eq!(golden.name, "01_healthz");
        assert_eq!(golden.request.method, "GET");
        assert_eq!(golden.request.path, "/healthz");
        assert_eq!(golden.request.body, Value::Null);
        assert_eq!(golden.response.status, 200);
        assert_eq!(golden.response.headers["content-type"], "application/json");
        assert_eq!(golden.response.body["ok"], true);
    }

    #[test]
    fn all_files_parse_in_numeric_order() {
        let goldens = all();
        assert!(goldens.len() >= 47, "only {} golden files", goldens.len());
        let names: Vec<&str> = goldens.iter().map(|golden| golden.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn non_json_bodies_are_strings() {
        assert!(load("21").request.body.is_string());
        let metrics = load("45").response.body;
        assert!(
            metrics
                .as_str()
                .is_some_and(|text| text.contains("# TYPE kneo_runs_started_total counter")),
            "unexpected metrics body: {metrics}"
        );
    }

    #[test]
    fn note_is_read_when_present() {
        assert!(load("47").request.note.is_some());
        assert_eq!(load("01").request.note, None);
    }

    #[test]
    #[should_panic(expected = "no golden file named 99_*.json")]
    fn unknown_prefix_panics() {
        load("99");
    }

    #[test]
    fn missing_field_is_named() {
        let problem = from_json(
            "x".into(),
            &serde_json::json!({"request": {}, "response": {}}),
        )
        .expect_err("an empty request must be rejected");
        assert_eq!(problem, "`request.method` is missing");
    }
}
