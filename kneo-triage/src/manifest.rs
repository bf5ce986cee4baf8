//! `manifest.json`, the index of a capture bundle: what was collected from where, with what
//! outcome, and what redaction removed. Written by [`crate::capture`], read by [`crate::bundle`]
//! (and by kneo-tui's offline mode).
//!
//! Every collected item is listed, collected or not. An item has a file in the archive exactly
//! when its `sha256` is set; `manifest.json` itself is not listed.

use serde::{Deserialize, Serialize};

/// The `format` field of every capture manifest.
pub const FORMAT: &str = "kneo-capture";
/// Bumped when a reader of an older version could misread the manifest.
pub const FORMAT_VERSION: u32 = 1;
/// Where the manifest sits in the archive.
pub const MANIFEST_PATH: &str = "manifest.json";

/// Where the probe answers are stored in a bundle (written by `kneo-ops capture`, read back by
/// [`crate::bundle::load_probes`]).
pub mod probe_paths {
    pub const HEALTHZ: &str = "service/healthz.json";
    pub const READYZ: &str = "service/readyz.json";
    pub const HEALTH_DETAIL: &str = "service/health.json";
    pub const METRICS: &str = "service/metrics.txt";
    pub const SERVICE_EVENTS: &str = "service/service-events.json";
    pub const QUEUED_RUNS: &str = "queue/queued-runs.json";
    pub const RUNNING_RUNS: &str = "queue/running-runs.json";
    pub const HUMAN_TASKS: &str = "queue/human-tasks.json";
}

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Collected completely.
    Ok,
    /// The source failed (refused, HTTP error, command failed); `error` says how.
    Error,
    /// The source did not finish within its time bound; partial content may be stored.
    Timeout,
    /// Not collected or not stored (no API key, over `--max-bytes`); `error` says why.
    Skipped,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Ok => "ok",
            ItemStatus::Error => "error",
            ItemStatus::Timeout => "timeout",
            ItemStatus::Skipped => "skipped",
        }
    }
}

/// One collected item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Path inside the archive (relative, `/`-separated).
    pub path: String,
    /// Where it came from: `GET /readyz`, `command: uname -a`, `file: /etc/os-release`, …
    pub source: String,
    pub status: ItemStatus,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
    /// Bytes stored (after redaction); 0 when nothing was stored.
    #[serde(default)]
    pub bytes: u64,
    /// SHA-256 of the stored bytes; `None` when nothing was stored.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The HTTP status the source answered with, for HTTP items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// The service's identity, from `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
}

/// The options the capture ran with; secrets are recorded only as "given or not".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedOptions {
    #[serde(default)]
    pub run_ids: Vec<String>,
    #[serde(default)]
    pub request_ids: Vec<String>,
    #[serde(default)]
    pub specs: Vec<String>,
    #[serde(default)]
    pub api_key_given: bool,
    #[serde(default)]
    pub database_url_given: bool,
    #[serde(default)]
    pub since_seconds: u64,
    #[serde(default)]
    pub budget_ms: u64,
    #[serde(default)]
    pub max_bytes: u64,
    #[serde(default)]
    pub state_dir: String,
}

/// Counts of items by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub items: usize,
    pub ok: usize,
    pub error: usize,
    pub timeout: usize,
    pub skipped: usize,
    /// Bytes stored, before compression.
    pub bytes: u64,
}

impl Summary {
    pub fn of(items: &[Item]) -> Summary {
        let count = |status| items.iter().filter(|item| item.status == status).count();
        Summary {
            items: items.len(),
            ok: count(ItemStatus::Ok),
            error: count(ItemStatus::Error),
            timeout: count(ItemStatus::Timeout),
            skipped: count(ItemStatus::Skipped),
            bytes: items.iter().map(|item| item.bytes).sum(),
        }
    }

    /// No item failed or timed out. Skipped items carry their reason (the item does not apply
    /// here, the target lacks the route, no key, `--max-bytes`) and fail nothing.
    pub fn none_failed(&self) -> bool {
        self.error == 0 && self.timeout == 0
    }
}

/// What one redaction rule removed, and from which files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleReport {
    pub rule: String,
    pub count: u64,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionReport {
    /// Replacements over all rules and files.
    pub total: u64,
    pub rules: Vec<RuleReport>,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub tool: ToolInfo,
    /// The service URL, credentials stripped.
    pub target: String,
    #[serde(default)]
    pub service: Option<ServiceInfo>,
    /// `healthy`, `degraded` or `down`, from the triage stored in the bundle.
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default)]
    pub options: RecordedOptions,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub summary: Summary,
    pub items: Vec<Item>,
    #[serde(default)]
    pub redaction: RedactionReport,
}
