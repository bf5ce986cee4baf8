//! The escalation bundle (`kneo-ops capture`): everything an engineer being escalated to needs,
//! collected concurrently under one time budget, redacted before anything is written, and
//! stored as a `tar.gz` with `manifest.json` at its root.
//!
//! Each collector gets `min(its own cap, time left in the budget)`; a collector that fails or
//! runs out of time is recorded in the manifest and the capture goes on, so a dead service still
//! yields a bundle (host context plus the recorded failures). Items that would push the stored
//! bytes past `max_bytes` are recorded as skipped.
//!
//! Layout: `tool/`, `host/`, `service/` (health, readiness, events, metrics, recent audit),
//! `queue/`, `triage/`, `runs/<id>/`, `requests/<id>/`, `specs/`.

mod archive;
mod host;
mod items;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kneo_client::{CallError, Client, Reply};
use serde_json::json;
use sha2::Digest;

pub use archive::ArchiveError;
use items::{Collected, Content, PagedList, from_reply, safe_component};

use crate::redaction::{Redactor, RuleCounts};
use kneo_triage::manifest::{
    self, Item, ItemStatus, Manifest, RecordedOptions, RedactionReport, RuleReport, ServiceInfo,
    Summary, ToolInfo,
};
use kneo_triage::probe::{self, ProbeOptions};
use kneo_triage::triage::capabilities::{self, OptionalRoute};
use kneo_triage::triage::{self, Probes, Thresholds};

/// Time caps per kind of collector (each also bounded by the time left in the budget).
#[derive(Debug, Clone)]
pub struct CollectorCaps {
    /// One HTTP call (health, readiness, a run, the probe listings).
    pub http: Duration,
    /// A paged list (trace, checkpoints, audit events), all pages together.
    pub paged: Duration,
    /// `uname`, `statvfs`.
    pub host_command: Duration,
    /// `psql -c 'SELECT version()'`, connection included.
    pub postgres: Duration,
    /// `kneo spec validate` of one spec.
    pub spec_validate: Duration,
}

impl Default for CollectorCaps {
    fn default() -> Self {
        CollectorCaps {
            http: Duration::from_secs(10),
            paged: Duration::from_secs(30),
            host_command: Duration::from_secs(5),
            postgres: Duration::from_secs(10),
            spec_validate: Duration::from_secs(20),
        }
    }
}

/// What to capture, and the limits.
#[derive(Clone)]
pub struct CaptureOptions {
    pub run_ids: Vec<String>,
    pub request_ids: Vec<String>,
    pub specs: Vec<PathBuf>,
    /// Postgres DSN for `SELECT version()`; never written anywhere.
    pub database_url: Option<String>,
    /// How far back "recent" audit events go.
    pub since: Duration,
    /// The whole capture, writing included.
    pub budget: Duration,
    /// Stored bytes (before compression) beyond which items are skipped.
    pub max_bytes: u64,
    /// The service's state directory, for the free-space check.
    pub state_dir: PathBuf,
    /// Whether `state_dir` was given (`--state-dir`): the default `.kneo` missing from the
    /// directory the capture runs in only means the check does not apply here.
    pub state_dir_given: bool,
    pub output: PathBuf,
    /// The `kneo` binary for `spec validate`; found next to this program or on PATH if `None`.
    pub kneo_binary: Option<PathBuf>,
    pub thresholds: Thresholds,
    pub caps: CollectorCaps,
}

impl std::fmt::Debug for CaptureOptions {
    // By hand, so the DSN never reaches a log line or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureOptions")
            .field("run_ids", &self.run_ids)
            .field("request_ids", &self.request_ids)
            .field("specs", &self.specs)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("since", &self.since)
            .field("budget", &self.budget)
            .field("max_bytes", &self.max_bytes)
            .field("state_dir", &self.state_dir)
            .field("output", &self.output)
            .field("kneo_binary", &self.kneo_binary)
            .finish_non_exhaustive()
    }
}

impl CaptureOptions {
    pub fn new(output: PathBuf) -> CaptureOptions {
        CaptureOptions {
            run_ids: Vec::new(),
            request_ids: Vec::new(),
            specs: Vec::new(),
            database_url: None,
            since: Duration::from_secs(3600),
            budget: Duration::from_secs(60),
            max_bytes: 50_000_000,
            state_dir: PathBuf::from(".kneo"),
            state_dir_given: false,
            output,
            kneo_binary: None,
            thresholds: Thresholds::default(),
            caps: CollectorCaps::default(),
        }
    }
}

/// Told about progress while collecting (the CLI draws a bar or prints lines).
pub trait Progress: Send + Sync {
    /// How many items are planned.
    fn planned(&self, _items: usize) {}
    /// One item is done.
    fn collected(&self, _path: &str, _status: ItemStatus, _duration: Duration) {}
    /// Collection is over; the archive is being written.
    fn writing(&self, _output: &Path) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A written bundle.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Size of the `tar.gz`.
    pub archive_bytes: u64,
}

/// Runs the capture. Only a bundle that cannot be written is an error; every collection
/// failure is recorded in the manifest instead.
pub async fn capture(
    client: &Client,
    redactor: &Redactor,
    options: &CaptureOptions,
    progress: &dyn Progress,
) -> Result<Captured, ArchiveError> {
    let started = Instant::now();
    let created_at = Utc::now();
    if options.output.exists() {
        return Err(ArchiveError::Exists {
            path: options.output.clone(),
        });
    }
    // A bundle that cannot be written is known now, not after the whole budget is spent.
    if let Some(parent) = options
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(ArchiveError::Io {
            path: options.output.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the directory {} does not exist", parent.display()),
            ),
        });
    }
    // Writing needs a moment at the end; collectors stop this much before the budget runs out.
    let reserve = (options.budget / 10).min(Duration::from_secs(1));
    let collect_deadline = started + options.budget.saturating_sub(reserve);
    let hard_stop = collect_deadline + Duration::from_millis(250).min(reserve);
    let cap = |limit: Duration| Deadline {
        at: (Instant::now() + limit).min(collect_deadline),
    };

    let collectors = plan(client, options, &cap);
    let planned_items = collectors.iter().map(|c| c.planned.len()).sum::<usize>()
        + PROBE_ITEMS.len()
        + TRIAGE_ITEMS.len()
        + 1;
    progress.planned(planned_items);

    let probe_options = ProbeOptions {
        call_timeout: options.caps.http,
        deadline: Some(collect_deadline),
        service_event_limit: 1000,
        ..ProbeOptions::default()
    };
    let redactor = Arc::new(redactor.clone());
    let probing = async {
        let probes =
            match tokio::time::timeout_at(hard_stop.into(), probe::collect(client, &probe_options))
                .await
            {
                Ok(probes) => probes,
                Err(_) => probes_cut_at_budget(client, created_at),
            };
        let items = probe_items(&probes);
        for item in &items {
            progress.collected(&item.path, item.status, item.duration);
        }
        (probes, prepare_in_background(items, &redactor))
    };
    let collecting = async {
        let mut running: FuturesUnordered<_> = collectors
            .into_iter()
            .map(|collector| async move {
                let planned = collector.planned;
                match tokio::time::timeout_at(hard_stop.into(), collector.run).await {
                    Ok(items) => items,
                    Err(_) => planned
                        .into_iter()
                        .map(|(path, source)| {
                            Collected::failed(
                                path,
                                source,
                                ItemStatus::Timeout,
                                "cut off at the end of the capture budget",
                                Duration::ZERO,
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        let mut preparing = Vec::new();
        while let Some(items) = running.next().await {
            for item in &items {
                progress.collected(&item.path, item.status, item.duration);
            }
            preparing.extend(prepare_in_background(items, &redactor));
        }
        preparing
    };
    let ((probes, probe_preparing), mut preparing) = tokio::join!(probing, collecting);
    preparing.extend(probe_preparing);
    let mut collected = Vec::new();

    let (report, report_counts) =
        redacted_report(&triage::evaluate(&probes, &options.thresholds), &redactor);
    let rendered = triage::render::render_text(
        &report,
        &triage::render::RenderOptions {
            show_ok_children: true,
            ..Default::default()
        },
    );
    let triage_source = "kneo-ops triage over the probes of this capture";
    collected.push(match serde_json::to_vec_pretty(&report) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            Collected::ok(
                TRIAGE_ITEMS[0],
                triage_source,
                Content::Redacted {
                    bytes,
                    counts: report_counts.clone(),
                },
                Duration::ZERO,
            )
        }
        Err(error) => Collected::failed(
            TRIAGE_ITEMS[0],
            triage_source,
            ItemStatus::Error,
            format!("cannot serialize the verdicts: {error}"),
            Duration::ZERO,
        ),
    });
    collected.push(Collected::ok(
        TRIAGE_ITEMS[1],
        triage_source,
        Content::Redacted {
            bytes: rendered.into_bytes(),
            counts: report_counts,
        },
        Duration::ZERO,
    ));
    collected.push(Collected::ok(
        "tool/version.json",
        "kneo-ops itself",
        Content::Json(json!({
            "name": "kneo-ops",
            "version": env!("CARGO_PKG_VERSION"),
            "commit": option_env!("KNEO_BUILD_COMMIT"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        })),
        Duration::ZERO,
    ));
    for item in &collected[collected.len() - 3..] {
        progress.collected(&item.path, item.status, item.duration);
    }

    let mut prepared: Vec<Prepared> = collected
        .into_iter()
        .map(|item| prepare(item, &redactor))
        .collect();
    prepared.extend(finish_preparing(preparing).await);
    let (mut items, mut entries, mut redaction) = store(prepared, options.max_bytes);
    items.sort_by(|a, b| a.path.cmp(&b.path));
    // Errors can quote what a source said (a psql message, a server's body); they are redacted too.
    for item in &mut items {
        if let Some(error) = &item.error {
            let (clean, counts) = redactor.redact_text(error);
            note_counts(&mut redaction, &counts, manifest::MANIFEST_PATH);
            item.error = Some(clean);
        }
    }

    let service = probes.healthz.value().map(|health| ServiceInfo {
        service: health.service.clone(),
        version: health.version.clone(),
        commit: health.metadata.commit.clone(),
    });
    let mut manifest = Manifest {
        format: manifest::FORMAT.into(),
        format_version: manifest::FORMAT_VERSION,
        created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tool: ToolInfo {
            name: "kneo-ops".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        target: client.base_url().to_string(),
        service,
        health: Some(report.health.as_str().into()),
        options: recorded_options(options, client.has_api_key()),
        duration_ms: 0,
        summary: Summary::of(&items),
        items,
        redaction: redaction_report(&redaction),
    };
    manifest.duration_ms = started.elapsed().as_millis() as u64;
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|error| ArchiveError::Io {
            path: options.output.clone(),
            source: error.into(),
        })?;
    entries.push(archive::Entry {
        path: manifest::MANIFEST_PATH.into(),
        data: manifest_bytes,
    });

    progress.writing(&options.output);
    let output = options.output.clone();
    let mtime = created_at.timestamp().max(0) as u64;
    let archive_bytes = tokio::task::spawn_blocking(move || {
        archive::write_atomically(&output, &mut entries, mtime)
    })
    .await
    .map_err(|error| ArchiveError::Io {
        path: options.output.clone(),
        source: std::io::Error::other(error),
    })??;
    Ok(Captured {
        path: options.output.clone(),
        manifest,
        archive_bytes,
    })
}

pub use kneo_triage::manifest::probe_paths;

/// Items derived from the probes, in this order.
const PROBE_ITEMS: [&str; 8] = [
    probe_paths::HEALTHZ,
    probe_paths::READYZ,
    probe_paths::HEALTH_DETAIL,
    probe_paths::METRICS,
    probe_paths::SERVICE_EVENTS,
    probe_paths::QUEUED_RUNS,
    probe_paths::RUNNING_RUNS,
    probe_paths::HUMAN_TASKS,
];
const TRIAGE_ITEMS: [&str; 2] = ["triage/verdicts.json", "triage/verdicts.txt"];

const NEEDS_KEY: &str = "needs an API key: pass --api-key or set KNEO_SERV_API_KEY";

/// A deadline handed to a collector.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
}

impl Deadline {
    fn left(self) -> Duration {
        self.at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }
}

type Run<'a> = Pin<Box<dyn Future<Output = Vec<Collected>> + Send + 'a>>;

/// A collector: the items it plans (so a cut-off still names them) and the work.
struct Collector<'a> {
    planned: Vec<(String, String)>,
    run: Run<'a>,
}

fn one<'a>(
    path: String,
    source: String,
    run: impl Future<Output = Collected> + Send + 'a,
) -> Collector<'a> {
    Collector {
        planned: vec![(path, source)],
        run: Box::pin(async move { vec![run.await] }),
    }
}

fn plan<'a>(
    client: &'a Client,
    options: &'a CaptureOptions,
    cap: &dyn Fn(Duration) -> Deadline,
) -> Vec<Collector<'a>> {
    let caps = &options.caps;
    let authenticated = client.has_api_key();
    let mut collectors = Vec::new();

    let bound = cap(caps.host_command);
    collectors.push(one(
        "host/uname.txt".into(),
        "command: uname -a".into(),
        host::uname(bound.left()),
    ));
    collectors.push(one(
        "host/os-release.txt".into(),
        "file: /etc/os-release".into(),
        host::os_release(),
    ));
    collectors.push(one(
        "host/resources.json".into(),
        "files: /proc".into(),
        host::resources(),
    ));
    let disk_source = format!("statvfs: {}", options.state_dir.display());
    if options.state_dir_given || options.state_dir.is_dir() {
        collectors.push(one(
            "host/disk.json".into(),
            disk_source,
            host::disk(&options.state_dir, bound.left()),
        ));
    } else {
        let reason = format!(
            "no {} in the directory the capture ran in, so the free-space check does not apply here; \
             run the capture on the service's host with --state-dir for it",
            options.state_dir.display()
        );
        collectors.push(one(
            "host/disk.json".into(),
            disk_source.clone(),
            async move { Collected::skipped("host/disk.json", disk_source, reason) },
        ));
    }
    if let Some(dsn) = options.database_url.as_deref() {
        let bound = cap(caps.postgres);
        collectors.push(one(
            "host/postgres-version.txt".into(),
            "psql: SELECT version()".into(),
            host::postgres_version(dsn, bound.left()),
        ));
    }

    let paged = |path: String, items_key: &'static str, created_after| PagedList {
        client,
        path,
        items_key,
        page_size: 1000,
        max_pages: 100,
        deadline: cap(caps.paged).at,
        created_after,
    };
    let keyed = |path: String,
                 source: String,
                 work: Pin<Box<dyn Future<Output = Collected> + Send + 'a>>| {
        if authenticated {
            one(path, source, work)
        } else {
            one(path.clone(), source.clone(), async move {
                Collected::skipped(path, source, NEEDS_KEY)
            })
        }
    };

    let since = chrono::Duration::from_std(options.since).unwrap_or(chrono::Duration::hours(1));
    let recent = paged(
        "/v1/audit-events?sort_by=created_at&sort_order=desc".into(),
        "events",
        Some(Utc::now() - since),
    );
    let source = format!(
        "GET /v1/audit-events (newest first, created in the last {})",
        triage_duration(options.since)
    );
    let path = "service/audit-events-recent.json".to_string();
    collectors.push(keyed(
        path.clone(),
        source.clone(),
        Box::pin(async move { recent.collect(&path, &source).await }),
    ));

    let mut seen = BTreeSet::new();
    for run_id in options.run_ids.iter().filter(|id| seen.insert(id.as_str())) {
        let dir = format!("runs/{}", safe_component(run_id));
        let encoded = kneo_client::client::encode_component(run_id);
        let bound = cap(caps.http);
        let run_path = format!("{dir}/run.json");
        let run_source = format!("GET /v1/runs/{run_id}");
        let route = format!("/v1/runs/{encoded}");
        let (p, s) = (run_path.clone(), run_source.clone());
        collectors.push(keyed(
            run_path,
            run_source,
            Box::pin(async move {
                let reply = client
                    .with_request_timeout(bound.left())
                    .get_json(&route, true)
                    .await;
                from_reply(&p, &s, &reply, false, false)
            }),
        ));
        for (file, route, key, what) in [
            (
                "trace.json",
                format!("/v1/runs/{encoded}/trace"),
                "events",
                format!("GET /v1/runs/{run_id}/trace (all pages)"),
            ),
            (
                "checkpoints.json",
                format!("/v1/runs/{encoded}/checkpoints"),
                "checkpoints",
                format!("GET /v1/runs/{run_id}/checkpoints (all pages)"),
            ),
            (
                "audit-events.json",
                format!("/v1/audit-events?run_id={encoded}"),
                "events",
                format!("GET /v1/audit-events?run_id={run_id} (all pages)"),
            ),
        ] {
            let walk = paged(route, key, None);
            let path = format!("{dir}/{file}");
            let (p, s) = (path.clone(), what.clone());
            collectors.push(keyed(
                path,
                what,
                Box::pin(async move { walk.collect(&p, &s).await }),
            ));
        }
    }

    let mut seen = BTreeSet::new();
    for request_id in options
        .request_ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
    {
        let path = format!("requests/{}/audit-events.json", safe_component(request_id));
        let source = format!("GET /v1/audit-events?mentions={request_id} (all pages)");
        let walk = paged(
            format!(
                "/v1/audit-events?mentions={}",
                kneo_client::client::encode_component(request_id)
            ),
            "events",
            None,
        );
        let (p, s) = (path.clone(), source.clone());
        collectors.push(keyed(
            path,
            source,
            Box::pin(async move { walk.collect(&p, &s).await }),
        ));
    }

    let kneo = options.kneo_binary.clone().or_else(find_kneo_binary);
    for (index, spec) in options.specs.iter().enumerate() {
        let name = spec
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "spec".into());
        let path = format!(
            "specs/{}-{}.validate.json",
            index + 1,
            safe_component(&name)
        );
        let source = format!("command: kneo spec validate {} --json", spec.display());
        let bound = cap(caps.spec_validate);
        let kneo = kneo.clone();
        let (p, s) = (path.clone(), source.clone());
        collectors.push(one(path, source, async move {
            validate_spec(kneo.as_deref(), spec, bound.left(), &p, &s).await
        }));
    }
    collectors
}

fn triage_duration(duration: Duration) -> String {
    kneo_triage::triage::human_duration(duration)
}

/// `kneo` next to this program, else on PATH.
pub fn find_kneo_binary() -> Option<PathBuf> {
    let name = format!("kneo{}", std::env::consts::EXE_SUFFIX);
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|path| path.is_file());
    sibling.or_else(|| process::find_on_path(&name))
}

async fn validate_spec(
    kneo: Option<&Path>,
    spec: &Path,
    bound: Duration,
    path: &str,
    source: &str,
) -> Collected {
    let started = Instant::now();
    let Some(kneo) = kneo else {
        return Collected::failed(
            path,
            source,
            ItemStatus::Error,
            "the kneo binary was found neither next to kneo-ops nor on PATH; pass --kneo-bin",
            Duration::ZERO,
        );
    };
    let args = [
        OsStr::new("spec"),
        OsStr::new("validate"),
        spec.as_os_str(),
        OsStr::new("--json"),
    ];
    match process::run_command(kneo, &args, &[], bound).await {
        Ok(output) => {
            let parsed = serde_json::from_str::<serde_json::Value>(output.stdout.trim())
                .unwrap_or_else(|_| json!(output.stdout));
            let document = json!({
                "command": format!("kneo spec validate {} --json", spec.display()),
                "exit_code": output.exit_code,
                "output": parsed,
                "stderr": output.stderr,
            });
            // 0 valid and 1 invalid are both answers; 2 (unreadable) and signals are failures.
            let mut item = Collected::ok(path, source, Content::Json(document), started.elapsed());
            if !matches!(output.exit_code, Some(0 | 1)) {
                item.status = ItemStatus::Error;
                let reason = output
                    .stdout
                    .trim()
                    .lines()
                    .next()
                    .unwrap_or(output.stderr.trim())
                    .to_string();
                item.error = Some(format!(
                    "kneo spec validate ended with {}: {reason}",
                    output.exit_description()
                ));
            }
            item
        }
        Err(error) => {
            let status = if matches!(error, process::CommandError::Timeout { .. }) {
                ItemStatus::Timeout
            } else {
                ItemStatus::Error
            };
            Collected::failed(path, source, status, error.to_string(), started.elapsed())
        }
    }
}

/// Probes standing in for a probe phase cut off by the budget.
fn probes_cut_at_budget(client: &Client, observed_at: chrono::DateTime<Utc>) -> Probes {
    let timeout = CallError::Timeout {
        method: "GET".into(),
        url: format!("{}/healthz", client.base_url()),
        after: Duration::ZERO,
        // The probes did not finish within the budget: the service was too slow to answer.
        connected: true,
    };
    Probes::new(client.base_url(), observed_at, Reply::failed(timeout))
}

fn probe_items(probes: &Probes) -> Vec<Collected> {
    let missing = |path: &str, source: &str| {
        Collected::failed(
            path,
            source,
            ItemStatus::Timeout,
            "cut off at the end of the capture budget",
            Duration::ZERO,
        )
    };
    let mut items = vec![from_reply(
        PROBE_ITEMS[0],
        "GET /healthz",
        &probes.healthz,
        true,
        false,
    )];
    items.push(match &probes.readyz {
        Some(reply) => from_reply(PROBE_ITEMS[1], "GET /readyz", reply, true, false),
        None => missing(PROBE_ITEMS[1], "GET /readyz"),
    });
    items.push(optional_item(
        PROBE_ITEMS[2],
        "GET /v1/health",
        probes.health_detail.as_ref(),
        OptionalRoute::HealthDetail,
        probes,
        true,
        false,
    ));
    items.push(optional_item(
        PROBE_ITEMS[3],
        "GET /metrics",
        probes.metrics.as_ref(),
        OptionalRoute::Metrics,
        probes,
        false,
        true,
    ));
    items.push(optional_item(
        PROBE_ITEMS[4],
        "GET /v1/service/events?limit=1000",
        probes.service_events.as_ref(),
        OptionalRoute::ServiceEvents,
        probes,
        false,
        false,
    ));
    for (index, source, reply) in [
        (5, "GET /v1/runs?status=queued", probes.queued_runs.as_ref()),
        (
            6,
            "GET /v1/runs?status=running",
            probes.running_runs.as_ref(),
        ),
    ] {
        items.push(match reply {
            Some(reply) => from_reply(PROBE_ITEMS[index], source, reply, false, false),
            None => missing(PROBE_ITEMS[index], source),
        });
    }
    items.push(match &probes.human_tasks {
        Some(reply) => from_reply(PROBE_ITEMS[7], "GET /v1/human-tasks", reply, false, false),
        None => missing(PROBE_ITEMS[7], "GET /v1/human-tasks"),
    });
    items
}

/// An optional route's item: its answer, or `skipped` when the target does not have the route
/// (the 404 body is kept, so an offline triage sees the same absence).
fn optional_item<T>(
    path: &str,
    source: &str,
    reply: Option<&Reply<T>>,
    route: OptionalRoute,
    probes: &Probes,
    evidence: bool,
    as_text: bool,
) -> Collected {
    let Some(reply) = reply else {
        if probes.known_absent.contains(&route) {
            return Collected::skipped(
                path,
                source,
                format!(
                    "the target does not have {} (it answered 404 before)",
                    route.path()
                ),
            );
        }
        return Collected::failed(
            path,
            source,
            ItemStatus::Timeout,
            "cut off at the end of the capture budget",
            Duration::ZERO,
        );
    };
    let mut item = from_reply(path, source, reply, evidence, as_text);
    if capabilities::is_absent(reply) {
        item.status = ItemStatus::Skipped;
        item.error = Some(format!(
            "the target does not have {} (HTTP 404): kneo-serv 1.2 has neither /v1/health nor /v1/service/events",
            route.path()
        ));
    }
    item
}

/// JSON items larger than this (compact) are stored without indentation.
const PRETTY_PRINT_LIMIT: usize = 1_000_000;

/// Replacements per rule, and the files they were made in.
type RedactionTally = BTreeMap<String, (u64, BTreeSet<String>)>;

/// Where an item ranks when `max_bytes` forces a choice (lower is kept first).
fn priority(path: &str) -> u8 {
    match path {
        p if p.starts_with("tool/") || p.starts_with("host/") => 0,
        "service/healthz.json" | "service/readyz.json" | "service/health.json" => 1,
        p if p.starts_with("triage/") => 1,
        p if p.starts_with("queue/") || p == "service/service-events.json" => 2,
        p if p.starts_with("runs/") || p.starts_with("requests/") || p.starts_with("specs/") => 3,
        _ => 4,
    }
}

/// Redacts every item, applies the byte cap, and turns items into manifest entries and files.
/// An item after redaction: what will be stored, its checksum, and what redaction removed.
struct Prepared {
    collected: Collected,
    stored: Option<(Vec<u8>, String)>,
    counts: RuleCounts,
}

/// Redacts and serializes one item (CPU work: run on a blocking thread as items arrive).
fn prepare(mut collected: Collected, redactor: &Redactor) -> Prepared {
    let (stored, counts) = match collected.content.take() {
        Some(content) => {
            let (bytes, counts) = redact_content(content, redactor);
            let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
            (Some((bytes, sha256)), counts)
        }
        None => (None, RuleCounts::default()),
    };
    Prepared {
        collected,
        stored,
        counts,
    }
}

/// An item being prepared on the blocking pool (its path and source name it if that fails).
struct Preparing {
    path: String,
    source: String,
    task: tokio::task::JoinHandle<Prepared>,
}

/// Prepares items on the blocking pool, so redaction overlaps with collection.
fn prepare_in_background(items: Vec<Collected>, redactor: &Arc<Redactor>) -> Vec<Preparing> {
    items
        .into_iter()
        .map(|item| {
            let redactor = Arc::clone(redactor);
            let (path, source) = (item.path.clone(), item.source.clone());
            Preparing {
                path,
                source,
                task: tokio::task::spawn_blocking(move || prepare(item, &redactor)),
            }
        })
        .collect()
}

/// Waits for every prepared item; a preparation that failed is recorded as an error item.
async fn finish_preparing(preparing: Vec<Preparing>) -> Vec<Prepared> {
    let mut prepared = Vec::with_capacity(preparing.len());
    for Preparing { path, source, task } in preparing {
        prepared.push(match task.await {
            Ok(item) => item,
            Err(error) => Prepared {
                collected: Collected::failed(
                    path,
                    source,
                    ItemStatus::Error,
                    format!("redaction failed: {error}"),
                    Duration::ZERO,
                ),
                stored: None,
                counts: RuleCounts::default(),
            },
        });
    }
    prepared
}

/// Applies the byte cap (highest-priority items first) and turns prepared items into manifest
/// entries and archive files.
fn store(
    prepared: Vec<Prepared>,
    max_bytes: u64,
) -> (Vec<Item>, Vec<archive::Entry>, RedactionTally) {
    let mut ordered = prepared;
    ordered.sort_by(|a, b| {
        priority(&a.collected.path)
            .cmp(&priority(&b.collected.path))
            .then_with(|| a.collected.path.cmp(&b.collected.path))
    });
    let mut items = Vec::new();
    let mut entries = Vec::new();
    let mut redaction = RedactionTally::new();
    let mut total: u64 = 0;
    for Prepared {
        collected,
        stored,
        counts,
    } in ordered
    {
        let Collected {
            path,
            source,
            status,
            error,
            duration,
            http_status,
            ..
        } = collected;
        let mut item = Item {
            path: path.clone(),
            source,
            status,
            error,
            duration_ms: duration.as_millis() as u64,
            bytes: 0,
            sha256: None,
            http_status,
        };
        if let Some((bytes, sha256)) = stored {
            let size = bytes.len() as u64;
            if total + size > max_bytes {
                item.status = ItemStatus::Skipped;
                item.error = Some(format!(
                    "not stored: its {} would pass --max-bytes {} ({} already stored)",
                    kneo_triage::units::format_size(size),
                    kneo_triage::units::format_size(max_bytes),
                    kneo_triage::units::format_size(total)
                ));
            } else {
                note_counts(&mut redaction, &counts, &path);
                total += size;
                item.bytes = size;
                item.sha256 = Some(sha256);
                entries.push(archive::Entry { path, data: bytes });
            }
        }
        items.push(item);
    }
    (items, entries, redaction)
}

fn redact_content(content: Content, redactor: &Redactor) -> (Vec<u8>, RuleCounts) {
    match content {
        Content::Json(mut value) => {
            let counts = redactor.redact_json(&mut value);
            // Large documents (a long run's checkpoints) are stored compact: indentation would
            // triple them, and they are read with jq anyway.
            let compact = serde_json::to_vec(&value).unwrap_or_default();
            let mut bytes = if compact.len() > PRETTY_PRINT_LIMIT {
                compact
            } else {
                serde_json::to_vec_pretty(&value).unwrap_or(compact)
            };
            bytes.push(b'\n');
            // A known secret that only appears once serialized (split by escaping) is caught here;
            // pattern rules are not run on JSON text, where they could cut through quoting.
            let text = String::from_utf8_lossy(&bytes);
            let (clean, more) = redactor.redact_literals(&text);
            let mut counts = counts;
            counts.merge(&more);
            (clean.into_bytes(), counts)
        }
        Content::Text(text) => {
            let (clean, counts) = redactor.redact_text(&text);
            (clean.into_bytes(), counts)
        }
        Content::Redacted { bytes, counts } => (bytes, counts),
    }
}

/// The report with what came from the service redacted (titles, details, the target and its
/// identity) and the runbook text left as the tool embeds it: the runbook's own examples
/// (`X-Kneo-Api-Key: $KEY`) are not secrets, and a bundle must show the same fix steps.
fn redacted_report(report: &triage::Report, redactor: &Redactor) -> (triage::Report, RuleCounts) {
    fn redact_tree(verdict: &mut triage::Verdict, redactor: &Redactor, counts: &mut RuleCounts) {
        for text in [&mut verdict.title, &mut verdict.detail] {
            let (clean, found) = redactor.redact_text(text);
            counts.merge(&found);
            *text = clean;
        }
        for child in &mut verdict.children {
            redact_tree(child, redactor, counts);
        }
    }
    let mut report = report.clone();
    let mut counts = RuleCounts::default();
    for verdict in report
        .stages
        .iter_mut()
        .chain([&mut report.access, &mut report.notes])
    {
        redact_tree(verdict, redactor, &mut counts);
    }
    let identity = &mut report.service;
    for text in [
        Some(&mut report.target),
        report.start_with.as_mut(),
        identity.name.as_mut(),
        identity.version.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        let (clean, found) = redactor.redact_text(text);
        counts.merge(&found);
        *text = clean;
    }
    (report, counts)
}

fn note_counts(redaction: &mut RedactionTally, counts: &RuleCounts, path: &str) {
    for (rule, count) in &counts.0 {
        let entry = redaction.entry(rule.clone()).or_default();
        entry.0 += count;
        entry.1.insert(path.to_string());
    }
}

fn redaction_report(redaction: &RedactionTally) -> RedactionReport {
    let rules: Vec<RuleReport> = redaction
        .iter()
        .map(|(rule, (count, files))| RuleReport {
            rule: rule.clone(),
            count: *count,
            files: files.iter().cloned().collect(),
        })
        .collect();
    RedactionReport {
        total: rules.iter().map(|r| r.count).sum(),
        rules,
    }
}

fn recorded_options(options: &CaptureOptions, api_key_given: bool) -> RecordedOptions {
    RecordedOptions {
        run_ids: options.run_ids.clone(),
        request_ids: options.request_ids.clone(),
        specs: options
            .specs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        api_key_given,
        database_url_given: options.database_url.is_some(),
        since_seconds: options.since.as_secs(),
        budget_ms: options.budget.as_millis() as u64,
        max_bytes: options.max_bytes,
        state_dir: options.state_dir.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_item(path: &str, size: usize) -> Collected {
        Collected::ok(
            path,
            "test",
            Content::Text("x".repeat(size)),
            Duration::from_millis(3),
        )
    }

    #[test]
    fn max_bytes_skips_the_lowest_priority_items_with_the_reason() {
        let collected = vec![
            text_item("service/metrics.txt", 600),
            text_item("host/uname.txt", 300),
            text_item("runs/r1/trace.json", 500),
            Collected::failed(
                "service/readyz.json",
                "GET /readyz",
                ItemStatus::Timeout,
                "no answer",
                Duration::from_secs(9),
            ),
        ];
        let redactor = Redactor::new();
        let prepared = collected
            .into_iter()
            .map(|item| prepare(item, &redactor))
            .collect();
        let (items, entries, _) = store(prepared, 1_000);
        let status = |path: &str| {
            items
                .iter()
                .find(|item| item.path == path)
                .map(|item| (item.status, item.bytes, item.sha256.is_some()))
        };
        assert_eq!(
            status("host/uname.txt"),
            Some((ItemStatus::Ok, 300, true)),
            "host context ranks first"
        );
        assert_eq!(
            status("runs/r1/trace.json"),
            Some((ItemStatus::Ok, 500, true))
        );
        assert_eq!(
            status("service/metrics.txt"),
            Some((ItemStatus::Skipped, 0, false))
        );
        assert_eq!(
            status("service/readyz.json"),
            Some((ItemStatus::Timeout, 0, false))
        );
        let skipped = items
            .iter()
            .find(|item| item.path == "service/metrics.txt")
            .and_then(|item| item.error.clone())
            .unwrap_or_default();
        assert!(
            skipped.contains("--max-bytes 1.0 KB") && skipped.contains("600 B"),
            "{skipped}"
        );
        assert_eq!(entries.len(), 2, "skipped and failed items store no file");
    }

    #[test]
    fn stored_json_is_redacted_and_stays_json() {
        let mut redactor = Redactor::new();
        redactor.add_api_key("key-in-use-123");
        let content = Content::Json(
            json!({"text": "token=abc123def and key-in-use-123", "nested": {"password": "p"}, "quote": "a \"password\": \"x\""}),
        );
        let (bytes, counts) = redact_content(content, &redactor);
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("still valid JSON");
        let text = value.to_string();
        assert!(
            !text.contains("key-in-use-123") && !text.contains("abc123def"),
            "{text}"
        );
        assert!(counts.total() >= 3, "{counts:?}");
    }
}
