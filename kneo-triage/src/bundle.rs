//! Reads a capture bundle back and verifies it without trusting it: every entry path is safe,
//! every file the manifest lists is present with its size and SHA-256, and nothing else is there.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::manifest::{self, Manifest};

/// The largest `manifest.json` read (a real one is a few kilobytes).
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Why a bundle cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a readable tar.gz ({reason}); was it truncated in transfer?", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{} has no manifest.json at its root; is it a kneo-ops capture bundle?", path.display())]
    NoManifest { path: PathBuf },
    #[error("the manifest.json of {} cannot be read: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
}

/// One thing wrong with a readable bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The file's bytes are not what the manifest says.
    ChecksumMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// The manifest lists a stored file the archive does not have.
    Missing {
        path: String,
    },
    /// The archive has a file the manifest does not list as stored.
    Extra {
        path: String,
    },
    /// An absolute path, a `..` component, or a link: refused, never extracted.
    DangerousEntry {
        path: String,
        reason: String,
    },
    Duplicate {
        path: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ChecksumMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: sha256 {actual} does not match the manifest's {expected}"
            ),
            Problem::SizeMismatch {
                path,
                expected,
                actual,
            } => write!(f, "{path}: {actual} bytes, the manifest says {expected}"),
            Problem::Missing { path } => write!(
                f,
                "{path}: listed in the manifest but missing from the archive"
            ),
            Problem::Extra { path } => {
                write!(f, "{path}: in the archive but not listed in the manifest")
            }
            Problem::DangerousEntry { path, reason } => {
                write!(f, "{path}: dangerous entry ({reason})")
            }
            Problem::Duplicate { path } => {
                write!(f, "{path}: appears more than once in the archive")
            }
        }
    }
}

/// The verification result.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub manifest: Manifest,
    /// Files whose checksum was compared.
    pub files_verified: usize,
    pub problems: Vec<Problem>,
}

impl Inspection {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why `path` must not be used inside an archive, if it must not.
pub fn hazard_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.starts_with('/') || path.starts_with('\\') || Path::new(path).is_absolute() {
        return Some("absolute path");
    }
    if path.contains('\\') {
        return Some("backslash in path");
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => {}
            Component::ParentDir => return Some("`..` component"),
            Component::CurDir => return Some("`.` component"),
            Component::RootDir | Component::Prefix(_) => return Some("absolute path"),
        }
    }
    None
}

/// Reads and verifies the bundle at `path`.
pub fn inspect(path: &Path) -> Result<Inspection, BundleError> {
    let file = std::fs::File::open(path).map_err(|source| BundleError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |error: std::io::Error| BundleError::Corrupt {
        path: path.to_path_buf(),
        reason: error.to_string(),
    };
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let mut problems = Vec::new();
    let mut files: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest_bytes: Option<Vec<u8>> = None;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if let Some(reason) = hazard_reason(name.trim_end_matches('/')) {
                problems.push(Problem::DangerousEntry {
                    path: name,
                    reason: reason.into(),
                });
            }
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            problems.push(Problem::DangerousEntry {
                path: name,
                reason: format!("{kind:?} entry; a bundle holds regular files only"),
            });
            continue;
        }
        if let Some(reason) = hazard_reason(&name) {
            problems.push(Problem::DangerousEntry {
                path: name,
                reason: reason.into(),
            });
            continue;
        }
        if files.contains_key(&name)
            || (name == manifest::MANIFEST_PATH && manifest_bytes.is_some())
        {
            problems.push(Problem::Duplicate { path: name });
            continue;
        }
        if name == manifest::MANIFEST_PATH {
            let mut bytes = Vec::new();
            entry
                .by_ref()
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut bytes)
                .map_err(corrupt)?;
            manifest_bytes = Some(bytes);
            continue;
        }
        let mut hasher = Sha256::new();
        let mut buffer = [0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let read = entry.read(&mut buffer).map_err(corrupt)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
        files.insert(name, (size, hex::encode(hasher.finalize())));
    }
    let bytes = manifest_bytes.ok_or_else(|| BundleError::NoManifest {
        path: path.to_path_buf(),
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|error| BundleError::BadManifest {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    if manifest.format != manifest::FORMAT {
        return Err(BundleError::BadManifest {
            path: path.to_path_buf(),
            reason: format!("format {:?} is not {:?}", manifest.format, manifest::FORMAT),
        });
    }
    if manifest.format_version > manifest::FORMAT_VERSION {
        return Err(BundleError::BadManifest {
            path: path.to_path_buf(),
            reason: format!(
                "format version {} is newer than this kneo-ops reads ({}); upgrade kneo-ops",
                manifest.format_version,
                manifest::FORMAT_VERSION
            ),
        });
    }

    let mut verified = 0;
    let mut listed = std::collections::BTreeSet::new();
    for item in &manifest.items {
        if let Some(reason) = hazard_reason(&item.path) {
            problems.push(Problem::DangerousEntry {
                path: item.path.clone(),
                reason: format!("listed in the manifest with an {reason}"),
            });
            continue;
        }
        let Some(expected) = &item.sha256 else {
            continue;
        };
        listed.insert(item.path.as_str());
        match files.get(&item.path) {
            None => problems.push(Problem::Missing {
                path: item.path.clone(),
            }),
            Some((size, actual)) => {
                verified += 1;
                if actual != expected {
                    problems.push(Problem::ChecksumMismatch {
                        path: item.path.clone(),
                        expected: expected.clone(),
                        actual: actual.clone(),
                    });
                } else if *size != item.bytes {
                    problems.push(Problem::SizeMismatch {
                        path: item.path.clone(),
                        expected: item.bytes,
                        actual: *size,
                    });
                }
            }
        }
    }
    for name in files.keys() {
        if !listed.contains(name.as_str()) {
            problems.push(Problem::Extra { path: name.clone() });
        }
    }
    Ok(Inspection {
        manifest,
        files_verified: verified,
        problems,
    })
}

/// The largest single file [`load_probes`] reads into memory.
const MAX_PROBE_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads the probe answers stored in a bundle back into [`crate::triage::Probes`], so the triage tree can be
/// walked offline (`kneo-tui --bundle`): `triage::evaluate(&probes, …)` gives the verdicts the
/// capture saw. `observed_at` is the capture's `created_at`. Unsafe entries are ignored (use
/// [`inspect`] to report them); lease look-ups are not stored, so that rule uses the counts.
pub fn load_probes(path: &Path) -> Result<(Manifest, crate::triage::Probes), BundleError> {
    use crate::manifest::probe_paths as paths;
    use kneo_client::wire::{HealthBody, Readiness};

    let wanted = [
        manifest::MANIFEST_PATH,
        paths::HEALTHZ,
        paths::READYZ,
        paths::HEALTH_DETAIL,
        paths::METRICS,
        paths::SERVICE_EVENTS,
        paths::QUEUED_RUNS,
        paths::RUNNING_RUNS,
        paths::HUMAN_TASKS,
    ];
    let file = std::fs::File::open(path).map_err(|source| BundleError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |error: std::io::Error| BundleError::Corrupt {
        path: path.to_path_buf(),
        reason: error.to_string(),
    };
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file()
            || !wanted.contains(&name.as_str())
            || files.contains_key(&name)
        {
            continue;
        }
        let mut data = Vec::new();
        entry
            .by_ref()
            .take(MAX_PROBE_FILE_BYTES)
            .read_to_end(&mut data)
            .map_err(corrupt)?;
        files.insert(name, data);
    }
    let manifest_bytes =
        files
            .remove(manifest::MANIFEST_PATH)
            .ok_or_else(|| BundleError::NoManifest {
                path: path.to_path_buf(),
            })?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|error| BundleError::BadManifest {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    let observed_at = chrono::DateTime::parse_from_rfc3339(&manifest.created_at)
        .map(|time| time.with_timezone(&chrono::Utc))
        .map_err(|error| BundleError::BadManifest {
            path: path.to_path_buf(),
            reason: format!("created_at: {error}"),
        })?;

    let stored = StoredAnswers {
        manifest: &manifest,
        files: &files,
    };
    let healthz = stored
        .reply(paths::HEALTHZ, |value| {
            serde_json::from_value::<HealthBody>(value).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|| kneo_client::Reply::failed(stored.missing(paths::HEALTHZ)));
    let mut probes = crate::triage::Probes::new(manifest.target.clone(), observed_at, healthz);
    probes.key_given = manifest.options.api_key_given;
    probes.readyz = stored.reply(paths::READYZ, |value| Readiness::from_value(&value));
    probes.health_detail =
        stored.reply(paths::HEALTH_DETAIL, |value| Readiness::from_value(&value));
    probes.metrics = stored
        .text_reply(paths::METRICS)
        .map(|reply| reply.map(|text| kneo_client::wire::MetricsSnapshot::parse(&text)));
    probes.service_events = stored.reply(paths::SERVICE_EVENTS, |value| {
        serde_json::from_value(value).map_err(|e| e.to_string())
    });
    probes.queued_runs = stored.reply(paths::QUEUED_RUNS, |value| {
        serde_json::from_value(value).map_err(|e| e.to_string())
    });
    probes.running_runs = stored.reply(paths::RUNNING_RUNS, |value| {
        serde_json::from_value(value).map_err(|e| e.to_string())
    });
    probes.human_tasks = stored.reply(paths::HUMAN_TASKS, |value| {
        serde_json::from_value(value).map_err(|e| e.to_string())
    });
    Ok((manifest, probes))
}

/// The stored answers of one bundle, turned back into replies.
struct StoredAnswers<'a> {
    manifest: &'a Manifest,
    files: &'a BTreeMap<String, Vec<u8>>,
}

impl StoredAnswers<'_> {
    fn item(&self, path: &str) -> Option<&manifest::Item> {
        self.manifest.items.iter().find(|item| item.path == path)
    }

    /// The call error an item recorded (its status, HTTP status, error text and stored body).
    fn call_error(&self, item: &manifest::Item) -> kneo_client::CallError {
        let url = format!(
            "{}{}",
            self.manifest.target,
            item.source.split_whitespace().nth(1).unwrap_or("")
        );
        let method = "GET".to_string();
        let reason = item
            .error
            .clone()
            .unwrap_or_else(|| "no answer recorded".into());
        let body = self
            .files
            .get(&item.path)
            .map(|data| String::from_utf8_lossy(data).into_owned());
        match (item.status, item.http_status) {
            (manifest::ItemStatus::Timeout, _) => kneo_client::CallError::Timeout {
                method,
                url,
                after: std::time::Duration::from_millis(item.duration_ms),
                // The recorded error says which (the client's own words).
                connected: !reason.contains("could not connect"),
            },
            (_, Some(status)) => kneo_client::CallError::Status {
                method,
                url,
                status,
                error: body
                    .as_deref()
                    .and_then(kneo_client::wire::ErrorBody::from_text)
                    .map(Box::new),
            },
            _ => kneo_client::CallError::Unreachable {
                method,
                url,
                refused: reason.contains("connection refused"),
                reason,
            },
        }
    }

    fn missing(&self, path: &str) -> kneo_client::CallError {
        kneo_client::CallError::Unreachable {
            method: "GET".into(),
            url: format!("{}/{path}", self.manifest.target),
            reason: format!("{path} is not in the bundle"),
            refused: false,
        }
    }

    /// `None` when the item was skipped or never planned (the probe was not made).
    fn text_reply(&self, path: &str) -> Option<kneo_client::Reply<String>> {
        let item = self.item(path)?;
        if item.status == manifest::ItemStatus::Skipped && item.sha256.is_none() {
            return None;
        }
        let body = self
            .files
            .get(path)
            .map(|data| String::from_utf8_lossy(data).into_owned());
        let result = match (&body, item.status) {
            (Some(text), manifest::ItemStatus::Ok) => Ok(text.clone()),
            _ => Err(self.call_error(item)),
        };
        Some(kneo_client::Reply {
            method: "GET".into(),
            url: format!(
                "{}{}",
                self.manifest.target,
                item.source.split_whitespace().nth(1).unwrap_or("")
            ),
            status: item.http_status,
            body,
            latency: std::time::Duration::from_millis(item.duration_ms),
            result,
        })
    }

    fn reply<T>(
        &self,
        path: &str,
        parse: impl FnOnce(serde_json::Value) -> Result<T, String>,
    ) -> Option<kneo_client::Reply<T>> {
        let reply = self.text_reply(path)?;
        let item = self.item(path)?;
        // Failed items stay the failure they were; stored answers are parsed like the client does
        // (a 503 readiness body was stored as `ok`, so it parses into a readiness).
        let result = match &reply.result {
            Err(_) => Err(self.call_error(item)),
            Ok(text) => serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| e.to_string())
                .and_then(parse)
                .map_err(|reason| kneo_client::CallError::BadBody {
                    method: "GET".into(),
                    url: reply.url.clone(),
                    status: item.http_status.unwrap_or(200),
                    reason,
                }),
        };
        Some(kneo_client::Reply {
            method: reply.method,
            url: reply.url,
            status: reply.status,
            body: reply.body,
            latency: reply.latency,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::manifest::{
        Item, ItemStatus, RecordedOptions, RedactionReport, ServiceInfo, Summary, ToolInfo,
    };

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn manifest_for(files: &[(&str, &[u8])]) -> Manifest {
        let items: Vec<Item> = files
            .iter()
            .map(|(path, data)| Item {
                path: path.to_string(),
                source: "test".into(),
                status: ItemStatus::Ok,
                error: None,
                duration_ms: 0,
                bytes: data.len() as u64,
                sha256: Some(sha(data)),
                http_status: None,
            })
            .collect();
        Manifest {
            format: manifest::FORMAT.into(),
            format_version: manifest::FORMAT_VERSION,
            created_at: "2026-11-28T00:00:00Z".into(),
            tool: ToolInfo {
                name: "kneo-ops".into(),
                version: "0".into(),
            },
            target: "http://127.0.0.1:8000".into(),
            service: Some(ServiceInfo::default()),
            health: None,
            options: RecordedOptions::default(),
            duration_ms: 0,
            summary: Summary::of(&items),
            items,
            redaction: RedactionReport::default(),
        }
    }

    /// Writes a tar.gz whose entry names are written raw, so tests can build hostile archives.
    fn write_archive(dir: &Path, entries: &[(&str, &[u8], tar::EntryType)]) -> PathBuf {
        let path = dir.join("bundle.tar.gz");
        let file = std::fs::File::create(&path).expect("create");
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        for (name, data, kind) in entries {
            let mut header = tar::Header::new_gnu();
            let bytes = name.as_bytes();
            header.as_gnu_mut().expect("gnu header").name[..bytes.len()].copy_from_slice(bytes);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder
            .into_inner()
            .expect("tar")
            .finish()
            .expect("gzip")
            .flush()
            .expect("flush");
        path
    }

    fn manifest_entry(manifest: &Manifest) -> Vec<u8> {
        serde_json::to_vec(manifest).expect("manifest json")
    }

    #[test]
    fn an_intact_bundle_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: [(&str, &[u8]); 2] = [
            ("service/healthz.json", b"{}"),
            ("runs/r1/run.json", b"{\"a\":1}"),
        ];
        let manifest = manifest_entry(&manifest_for(&files));
        let path = write_archive(
            dir.path(),
            &[
                ("manifest.json", &manifest, tar::EntryType::Regular),
                (files[0].0, files[0].1, tar::EntryType::Regular),
                (files[1].0, files[1].1, tar::EntryType::Regular),
            ],
        );
        let inspection = inspect(&path).expect("readable");
        assert!(inspection.is_intact(), "{:?}", inspection.problems);
        assert_eq!(inspection.files_verified, 2);
    }

    #[test]
    fn tampered_missing_and_extra_files_are_each_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: [(&str, &[u8]); 2] = [
            ("service/healthz.json", b"{}"),
            ("runs/r1/run.json", b"{\"a\":1}"),
        ];
        let manifest = manifest_entry(&manifest_for(&files));
        let path = write_archive(
            dir.path(),
            &[
                ("manifest.json", &manifest, tar::EntryType::Regular),
                (
                    "service/healthz.json",
                    b"{\"tampered\":true}",
                    tar::EntryType::Regular,
                ),
                ("host/extra.txt", b"x", tar::EntryType::Regular),
            ],
        );
        let problems = inspect(&path).expect("readable").problems;
        assert!(problems.iter().any(|p| matches!(p, Problem::ChecksumMismatch { path, .. } if path == "service/healthz.json")), "{problems:?}");
        assert!(
            problems.contains(&Problem::Missing {
                path: "runs/r1/run.json".into()
            }),
            "{problems:?}"
        );
        assert!(
            problems.contains(&Problem::Extra {
                path: "host/extra.txt".into()
            }),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 3);
        assert!(problems[0].to_string().contains("service/healthz.json"));
    }

    #[test]
    fn traversal_absolute_paths_and_links_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = manifest_entry(&manifest_for(&[]));
        let path = write_archive(
            dir.path(),
            &[
                ("manifest.json", &manifest, tar::EntryType::Regular),
                ("../escape.txt", b"x", tar::EntryType::Regular),
                ("/etc/cron.d/evil", b"x", tar::EntryType::Regular),
                ("runs/link", b"", tar::EntryType::Symlink),
            ],
        );
        let problems = inspect(&path).expect("readable").problems;
        let dangerous_paths: Vec<_> = problems
            .iter()
            .filter_map(|p| {
                if let Problem::DangerousEntry { path, .. } = p {
                    Some(path.as_str())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            dangerous_paths,
            ["../escape.txt", "/etc/cron.d/evil", "runs/link"],
            "{problems:?}"
        );
        assert!(
            !dir.path()
                .parent()
                .expect("parent")
                .join("escape.txt")
                .exists(),
            "nothing is extracted"
        );
    }

    #[test]
    fn unreadable_bundles_are_errors_not_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_gzip = dir.path().join("x.tar.gz");
        std::fs::write(&not_gzip, b"this is not a gzip stream").expect("write");
        assert!(matches!(
            inspect(&not_gzip),
            Err(BundleError::Corrupt { .. })
        ));
        let no_manifest = write_archive(
            dir.path(),
            &[("service/healthz.json", b"{}", tar::EntryType::Regular)],
        );
        assert!(matches!(
            inspect(&no_manifest),
            Err(BundleError::NoManifest { .. })
        ));
        assert!(matches!(
            inspect(&dir.path().join("absent.tar.gz")),
            Err(BundleError::Open { .. })
        ));
        let mut newer = manifest_for(&[]);
        newer.format_version = manifest::FORMAT_VERSION + 1;
        let newer_bytes = manifest_entry(&newer);
        std::fs::remove_file(&no_manifest).expect("remove");
        let path = write_archive(
            dir.path(),
            &[("manifest.json", &newer_bytes, tar::EntryType::Regular)],
        );
        let error = inspect(&path).expect_err("refused");
        assert!(error.to_string().contains("upgrade kneo-ops"), "{error}");
    }

    #[test]
    fn hazard_reasons() {
        assert_eq!(hazard_reason("runs/r1/run.json"), None);
        assert_eq!(hazard_reason("../x"), Some("`..` component"));
        assert_eq!(hazard_reason("a/../../x"), Some("`..` component"));
        assert_eq!(hazard_reason("/x"), Some("absolute path"));
        assert_eq!(hazard_reason("./x"), Some("`.` component"));
        assert_eq!(hazard_reason(""), Some("empty path"));
        assert_eq!(hazard_reason("a\\..\\b"), Some("backslash in path"));
    }
}
