//! `--bundle FILE`: a `kneo-ops capture` bundle read back into the same [`Probes`] a live poll
//! produces, so the same triage tree is walked offline from the recorded bodies.
//!
//! The probe answers are read by `kneo_triage::bundle::load_probes` (shared with kneo-ops, so both
//! tools turn a recorded item into the same reply: a stored body with its HTTP status, or the
//! failure the item recorded); the bundle is verified with `kneo_triage::bundle::inspect` (problems
//! are shown, not fatal). This module adds what only the dashboard needs: the captured runs'
//! files (`runs/<id>/run.json`, `trace.json`, `checkpoints.json`, `audit-events.json`) for the
//! Runs screen and its drill-down.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use kneo_client::wire::{AuditEventList, CheckpointPage, Run, RunList, TracePage};
use kneo_triage::manifest::Manifest;
use kneo_triage::triage::Probes;

use crate::app::{DrillData, Fetched, PollOutcome};

/// Largest run file read from a bundle (the cap bounds memory).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A bundle, read.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// The probe answers as the capture recorded them.
    probes: Probes,
    /// The captured runs' files by archive path (`runs/…` only).
    files: BTreeMap<String, Vec<u8>>,
    /// What `kneo-ops bundle inspect` would complain about.
    pub problems: Vec<String>,
}

impl Bundle {
    /// Reads and verifies the bundle at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Bundle> {
        if let Some(reason) =
            kneo_triage::archive::wrong_kind(path, &kneo_triage::archive::ArchiveKind::Bundle)
        {
            anyhow::bail!("cannot open {}: {reason}", path.display());
        }
        let inspection = kneo_triage::bundle::inspect(path)
            .with_context(|| format!("cannot open the bundle {}", path.display()))?;
        let (manifest, probes) = kneo_triage::bundle::load_probes(path)
            .with_context(|| format!("cannot read the probes of {}", path.display()))?;
        let files = read_run_files(path)?;
        Ok(Bundle {
            path: path.to_path_buf(),
            manifest,
            probes,
            files,
            problems: inspection
                .problems
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }

    /// Builds a bundle from parts (tests).
    pub fn from_parts(
        path: PathBuf,
        manifest: Manifest,
        probes: Probes,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Bundle {
        Bundle {
            path,
            manifest,
            probes,
            files,
            problems: Vec::new(),
        }
    }

    /// When the capture was taken: "now" for every age shown.
    pub fn observed_at(&self) -> DateTime<Utc> {
        self.probes.observed_at
    }

    fn item(&self, path: &str) -> Option<&kneo_triage::manifest::Item> {
        self.manifest.items.iter().find(|item| item.path == path)
    }

    /// The probes as they were at capture time.
    pub fn probes(&self) -> Probes {
        self.probes.clone()
    }

    /// A poll outcome standing for the capture.
    pub fn outcome(&self) -> PollOutcome {
        PollOutcome {
            probes: self.probes(),
            failed_runs: None,
            elapsed: Duration::from_millis(self.manifest.duration_ms),
        }
    }

    /// Run ids with a `runs/<id>/` directory in the bundle.
    fn captured_run_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = self
            .manifest
            .items
            .iter()
            .filter_map(|item| item.path.strip_prefix("runs/"))
            .filter_map(|rest| rest.split_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        dirs.dedup();
        dirs
    }

    /// Every run the bundle knows: the captured ones first, then queued and running ones.
    pub fn runs(&self, status: Option<&str>) -> Fetched<RunList> {
        let mut runs: Vec<Run> = Vec::new();
        for dir in self.captured_run_dirs() {
            if let Some(Ok(run)) = self
                .files
                .get(&format!("runs/{dir}/run.json"))
                .map(|bytes| serde_json::from_slice::<Run>(bytes))
            {
                runs.push(run);
            }
        }
        let queue_lists = [&self.probes.queued_runs, &self.probes.running_runs];
        for list in queue_lists.into_iter().flatten().filter_map(|r| r.value()) {
            for run in &list.runs {
                if !runs.iter().any(|known| known.run_id == run.run_id) {
                    runs.push(run.clone());
                }
            }
        }
        runs.retain(|run| match status {
            None => true,
            // A queued run's row says `created`.
            Some("queued") => matches!(run.status.as_str(), "created" | "queued"),
            Some(wanted) => run.status.as_str() == wanted,
        });
        let total = runs.len() as u64;
        Ok(RunList {
            runs,
            page: kneo_client::wire::PageInfo {
                count: Some(total),
                total: Some(total),
                ..Default::default()
            },
        })
    }

    /// The drill-down of one run from its `runs/<id>/` files.
    pub fn drill(&self, run_id: &str) -> DrillData {
        let dir = self
            .captured_run_dirs()
            .into_iter()
            .find(|dir| dir == run_id)
            .unwrap_or_else(|| run_id.to_string());
        let file = |name: &str| format!("runs/{dir}/{name}");
        let missing = |what: &str| {
            format!("not in this bundle (capture with --run-id {run_id} to include the {what})")
        };
        let read = |name: &str, what: &str| -> Result<&Vec<u8>, String> {
            match self.files.get(&file(name)) {
                Some(bytes) => Ok(bytes),
                None => Err(self
                    .item(&file(name))
                    .and_then(|item| item.error.clone())
                    .unwrap_or_else(|| missing(what))),
            }
        };
        let run: Fetched<Run> = read("run.json", "run")
            .and_then(|b| serde_json::from_slice(b).map_err(|e| e.to_string()))
            .or_else(|error| {
                // A queued or running run is in the queue lists even without its own files.
                self.runs(None)
                    .ok()
                    .and_then(|list| list.runs.into_iter().find(|r| r.run_id == run_id))
                    .ok_or(error)
            });
        DrillData {
            run,
            trace: read("trace.json", "trace")
                .and_then(|b| serde_json::from_slice::<TracePage>(b).map_err(|e| e.to_string())),
            checkpoints: read("checkpoints.json", "checkpoints").and_then(|b| {
                serde_json::from_slice::<CheckpointPage>(b).map_err(|e| e.to_string())
            }),
            audit: read("audit-events.json", "audit events").and_then(|b| {
                serde_json::from_slice::<AuditEventList>(b).map_err(|e| e.to_string())
            }),
        }
    }

    /// `N items, M not ok`.
    pub fn item_counts(&self) -> (usize, usize) {
        let summary = &self.manifest.summary;
        (summary.items, summary.items.saturating_sub(summary.ok))
    }
}

/// The `runs/…` files of the bundle at `path` (dangerous paths are skipped; `inspect` names them).
fn read_run_files(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the bundle {}", path.display()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let mut files = BTreeMap::new();
    let entries = archive
        .entries()
        .with_context(|| format!("{} is not a readable tar.gz", path.display()))?;
    for entry in entries {
        let mut entry =
            entry.with_context(|| format!("{} is not a readable tar.gz", path.display()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file()
            || !name.starts_with("runs/")
            || kneo_triage::bundle::hazard_reason(&name).is_some()
        {
            continue;
        }
        let mut data = Vec::new();
        entry
            .by_ref()
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut data)
            .with_context(|| format!("cannot read {name} in {}", path.display()))?;
        files.insert(name, data);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::json;

    use super::*;
    use crate::app::{Action, App, Screen, Settings, Source, SourceKind};

    const RUN: &str = "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a37";

    fn item(
        path: &str,
        source: &str,
        status: &str,
        http: Option<u16>,
        error: Option<&str>,
    ) -> serde_json::Value {
        json!({"path": path, "source": source, "status": status, "http_status": http, "error": error,
            "duration_ms": 4, "bytes": 0, "sha256": null})
    }

    /// A bundle of a service whose run state store refused connections, with one captured run.
    fn write_bundle(dir: &Path) -> PathBuf {
        let readyz = json!({"detail": {"error": "not_ready", "message": "One or more readiness checks failed.",
            "metadata": {"ready": false, "checks": {
                "api": {"name": "api", "ok": true},
                "run_state_store": {"name": "run_state_store", "ok": false, "error": "connection_refused",
                    "message": "The run state store refuses connections.", "runbook": "§ 2.2"}}}}});
        let files: Vec<(String, Vec<u8>)> = vec![
            ("service/healthz.json".into(), br#"{"ok": true, "service": "kneo-serv-platform", "version": "0.1.0", "metadata": {"status": "healthy"}}"#.to_vec()),
            ("service/readyz.json".into(), readyz.to_string().into_bytes()),
            (format!("runs/{RUN}/run.json"), json!({"run_id": RUN, "status": "failed", "workflow_name": "summarize",
                "error": {"type": "ProviderTimeout", "message": "provider call exceeded 30 s"},
                "created_at": "2026-11-28T11:50:00+00:00", "updated_at": "2026-11-28T11:55:00+00:00"}).to_string().into_bytes()),
            (format!("runs/{RUN}/trace.json"), json!({"run_id": RUN, "events": [
                {"type": "run_started", "timestamp": "2026-11-28T11:50:00+00:00"},
                {"type": "run_failed", "timestamp": "2026-11-28T11:55:00+00:00", "error": "provider timeout"}]}).to_string().into_bytes()),
        ];
        let manifest = json!({
            "format": "kneo-capture", "format_version": 1, "created_at": "2026-11-28T12:00:00.000Z",
            "tool": {"name": "kneo-ops", "version": "0.1.0"}, "target": "http://10.0.0.5:8000",
            "items": [
                item("service/healthz.json", "GET /healthz", "ok", Some(200), None),
                item("service/readyz.json", "GET /readyz", "ok", Some(503), None),
                item("service/health.json", "GET /v1/health", "skipped", None, Some("needs an API key")),
                item(&format!("runs/{RUN}/run.json"), "GET /v1/runs/…", "ok", Some(200), None),
                item(&format!("runs/{RUN}/trace.json"), "GET /v1/runs/…/trace", "ok", Some(200), None),
                item(&format!("runs/{RUN}/checkpoints.json"), "GET /v1/runs/…/checkpoints", "timeout", None, Some("time bound reached after 0 page(s)")),
            ]
        });
        let path = dir.join("bundle.tar.gz");
        let file = std::fs::File::create(&path).expect("create");
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        let mut append = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, data)
                .expect("append");
        };
        append("manifest.json", manifest.to_string().as_bytes());
        for (name, data) in &files {
            append(name, data);
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

    #[test]
    fn a_bundle_walks_the_tree_and_opens_its_runs_offline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bundle = Bundle::open(&write_bundle(dir.path())).expect("opens");
        assert!(
            bundle.problems.iter().any(|p| p.contains("not listed")),
            "files without checksums are reported: {:?}",
            bundle.problems
        );
        let mut app = App::new(
            Source {
                kind: SourceKind::Bundle {
                    path: bundle.path.clone(),
                    created_at: "x".into(),
                },
                target: bundle.manifest.target.clone(),
                refresh: Duration::from_secs(2),
                read_only: false,
                has_key: false,
            },
            Settings::default(),
        );
        app.update(Action::Polled {
            outcome: Box::new(bundle.outcome()),
            at: bundle.observed_at(),
        });
        let latest = app.latest.as_ref().expect("evaluated");
        assert_eq!(latest.report.health, kneo_triage::triage::Health::Degraded);
        assert_eq!(
            app.triage.selected.as_deref(),
            Some("readyz.run_state_store")
        );

        let runs = bundle.runs(None).expect("runs");
        assert_eq!(runs.runs.len(), 1);
        assert_eq!(bundle.runs(Some("running")).map(|l| l.runs.len()), Ok(0));
        let drill = bundle.drill(RUN);
        assert_eq!(drill.run.map(|r| r.status.to_string()), Ok("failed".into()));
        assert_eq!(drill.trace.map(|t| t.events.len()), Ok(2));
        let checkpoints = drill.checkpoints.err().unwrap_or_default();
        assert!(checkpoints.contains("time bound reached"), "{checkpoints}");
        assert!(
            drill.audit.err().unwrap_or_default().contains("--run-id"),
            "a file the capture did not take says how to get it"
        );

        app.update(Action::Show(Screen::Runs));
        app.update(Action::RunsLoaded {
            status: None,
            result: bundle.runs(None),
        });
        assert_eq!(app.filtered_runs().len(), 1);
    }
}
