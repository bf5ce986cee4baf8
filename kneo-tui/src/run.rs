//! The main loop: resolve the source (URL, `--local`, `--bundle`), take the terminal, draw the
//! first frame at once, start the pollers, then turn events into `App::update` calls and their
//! effects into tasks, redrawing after each batch of events. Returns with the terminal restored.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use kneo_client::profile::{TargetOverrides, resolve_target};
use kneo_client::{Client, ClientConfig};
use tokio::sync::watch;

use crate::actions::{self, ActionContext};
use crate::app::{Action, App, Effect, RunsWatch, Source, SourceKind};
use crate::bundle::Bundle;
use crate::cli::Cli;
use crate::event::{self, Event};
use crate::local::LocalServer;
use crate::poll::{self, PollConfig, RefreshHandle};
use crate::terminal::TerminalGuard;
use crate::theme::Theme;
use crate::{keys, ui, view};

/// `KNEO_TUI_TIMING=FILE`: after the first frame (and the first frame with data) the elapsed
/// times are appended to FILE, for the performance procedure (benches/perf.rs).
pub const TIMING_ENV: &str = "KNEO_TUI_TIMING";

/// `KNEO_TUI_FAULT=panic`: panic on the second poll (tests the panic path of terminal restore).
pub const FAULT_ENV: &str = "KNEO_TUI_FAULT";

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let started = Instant::now();
    let cli = <Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kneo-tui: cannot start the async runtime: {error}");
            return kneo_client::Exit::Usage.into();
        }
    };
    let result = runtime.block_on(run(cli, started));
    // Pollers may still be waiting on the network; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => kneo_client::Exit::Success.into(),
        Err(error) => {
            crate::terminal::restore();
            eprintln!("kneo-tui: {error:#}");
            kneo_client::Exit::Usage.into()
        }
    }
}

/// Where the data comes from, resolved before the terminal is taken (so errors print plainly).
enum Resolved {
    Live(Box<LiveTarget>),
    Offline(Box<Bundle>),
}

/// A live service and what reaching it needs.
struct LiveTarget {
    client: Client,
    url: String,
    api_key: Option<String>,
    local: Option<LocalServer>,
}

fn resolve(cli: &Cli) -> anyhow::Result<Resolved> {
    if let Some(path) = &cli.bundle {
        return Ok(Resolved::Offline(Box::new(Bundle::open(path)?)));
    }
    let (url, api_key, local) = if cli.local {
        let kneo = actions::find_sibling_binary("kneo").context(
            "--local needs the kneo binary next to kneo-tui or on PATH; build it with `cargo build --bin kneo`",
        )?;
        let dir = std::env::current_dir().context("cannot read the current directory")?;
        let server = LocalServer::start(&kneo, &dir)?;
        (
            server.url.clone(),
            Some(server.api_key.clone()),
            Some(server),
        )
    } else {
        let target = resolve_target(&TargetOverrides {
            url: cli.url.clone(),
            api_key: cli.api_key.clone(),
            profile: cli.profile.clone(),
        })
        .context("cannot work out which service to watch")?;
        for warning in &target.warnings {
            eprintln!("kneo-tui: warning: {warning}");
        }
        (target.url, target.api_key, None)
    };
    // The name lets the service's answer counters tell the dashboard's polls from its callers.
    let mut config = ClientConfig::new(url.clone())
        .api_key(api_key.clone())
        .user_agent(concat!("kneo-tui/", env!("CARGO_PKG_VERSION")));
    config.connect_timeout = cli.timeout.min(Duration::from_secs(2));
    config.request_timeout = cli.timeout;
    let client = Client::new(config).context("cannot build the HTTP client")?;
    Ok(Resolved::Live(Box::new(LiveTarget {
        client,
        url,
        api_key,
        local,
    })))
}

async fn run(cli: Cli, started: Instant) -> anyhow::Result<()> {
    let resolved = resolve(&cli)?;
    let theme = Theme::from_env(cli.no_color);
    let source = match &resolved {
        Resolved::Live(live) => Source {
            kind: if live.local.is_some() {
                SourceKind::Local
            } else {
                SourceKind::Live
            },
            target: live.client.base_url().to_string(),
            refresh: cli.refresh,
            read_only: cli.read_only,
            has_key: live.client.has_api_key(),
        },
        Resolved::Offline(bundle) => Source {
            kind: SourceKind::Bundle {
                path: bundle.path.clone(),
                created_at: bundle_status(bundle),
            },
            target: bundle.manifest.target.clone(),
            refresh: cli.refresh,
            read_only: cli.read_only,
            has_key: bundle.manifest.options.api_key_given,
        },
    };
    let mut app = App::new(source, cli.settings());

    let mut guard = TerminalGuard::init().context("cannot take over the terminal")?;
    let timing = Timing::from_env(started);
    draw(&mut guard, &mut app, theme)?;
    timing.record("first_frame_ms");

    let (sender, mut receiver) = event::channel();
    let mut tasks = vec![
        event::spawn_input(sender.clone()),
        event::spawn_ticks(sender.clone(), Duration::from_secs(1)),
    ];
    match event::spawn_signals(sender.clone()) {
        Ok(handle) => tasks.push(handle),
        Err(error) => app.message = Some(format!("signals are not handled: {error}")),
    }

    let refresh = RefreshHandle::default();
    let (watch_sender, watch_receiver) = watch::channel(RunsWatch::default());
    let mut pollers = Vec::new();
    let mut context = None;
    let mut offline = None;
    let mut _local = None;
    match resolved {
        Resolved::Live(live) => {
            let LiveTarget {
                client,
                url,
                api_key,
                local,
            } = *live;
            let config = PollConfig {
                refresh: cli.refresh,
                timeout: cli.timeout,
                list_limit: cli.list_limit,
            };
            pollers.push(poll::spawn_probes(
                client.clone(),
                config.clone(),
                refresh.clone(),
                sender.clone(),
            ));
            pollers.push(poll::spawn_details(
                client,
                config,
                refresh.clone(),
                watch_receiver,
                sender.clone(),
            ));
            if let Some(server) = &local {
                // The key this session made is the one thing to copy into another terminal.
                let text = crate::strings::local_key(&server.url, &server.api_key);
                app.log(crate::app::LogEntry {
                    at: Utc::now(),
                    ok: true,
                    text: text.clone(),
                });
                app.message = Some(text);
            }
            context = Some(ActionContext {
                url,
                api_key,
                timeout: cli.timeout,
                output_dir: cli.capture_dir.clone(),
                kneo_ops: actions::find_sibling_binary("kneo-ops"),
            });
            _local = local;
        }
        Resolved::Offline(bundle) => {
            let outcome = bundle.outcome();
            let at = bundle.observed_at();
            app.update(Action::Polled {
                outcome: Box::new(outcome),
                at,
            });
            app.update(Action::RunsLoaded {
                status: None,
                result: bundle.runs(None),
            });
            if !bundle.problems.is_empty() {
                app.message = Some(format!("bundle problems: {}", bundle.problems.join("; ")));
            }
            offline = Some(bundle);
            // The bundle's verdicts are known at once: show them without waiting for an event.
            draw(&mut guard, &mut app, theme)?;
            timing.record("first_data_frame_ms");
        }
    }

    // A deliberate panic on the second poll, for the terminal-restore test.
    let panic_fault = std::env::var(FAULT_ENV).is_ok_and(|value| value == "panic");
    let mut polls_seen = 0u32;
    let mut data_frame_recorded = offline.is_some();
    let outcome = loop {
        let Some(first) = receiver.recv().await else {
            break Ok(());
        };
        let mut batch = vec![first];
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
        }
        let mut quit: Option<anyhow::Result<()>> = None;
        for event in batch {
            let action = match event {
                Event::Key(key) => keys::action_for(&app.mode, &key),
                Event::Resize => None,
                Event::Tick => {
                    if pollers.iter().any(|p| p.is_finished()) {
                        quit = Some(Err(anyhow::anyhow!(
                            "a poller stopped unexpectedly; the dashboard would show stale data"
                        )));
                    }
                    None
                }
                Event::Terminate(_) => {
                    quit = Some(Ok(()));
                    None
                }
                Event::InputClosed(reason) => {
                    quit = Some(Err(anyhow::anyhow!("terminal input failed: {reason}")));
                    None
                }
                Event::App(action) => {
                    if matches!(action, Action::Polled { .. }) {
                        polls_seen += 1;
                        if panic_fault && polls_seen >= 2 {
                            panic!(
                                "{FAULT_ENV}=panic: a deliberate panic to test that the terminal is restored"
                            );
                        }
                    }
                    Some(action)
                }
            };
            let Some(action) = action else {
                continue;
            };
            for effect in app.update(action) {
                match effect {
                    Effect::Quit => quit = Some(Ok(())),
                    Effect::RefreshNow => refresh.refresh_now(),
                    Effect::WatchRuns(wanted) => match &offline {
                        Some(bundle) => {
                            app.update(Action::RunsLoaded {
                                status: wanted.status.clone(),
                                result: bundle.runs(wanted.status.as_deref()),
                            });
                            if let Some(run_id) = wanted.drill {
                                let data = bundle.drill(&run_id);
                                app.update(Action::DrillLoaded {
                                    run_id,
                                    data: Box::new(data),
                                });
                            }
                        }
                        None => {
                            watch_sender.send_replace(wanted);
                        }
                    },
                    Effect::Capture { run_id } => {
                        if let Some(context) = &context {
                            actions::spawn_capture(context.clone(), run_id, sender.clone());
                        }
                    }
                    Effect::Cancel { run_id } => {
                        if let Some(context) = &context {
                            actions::spawn_cancel(context.clone(), run_id, sender.clone());
                        }
                    }
                    Effect::Copy { text } => {
                        let _ = guard.write_raw(actions::osc52(&text).as_bytes());
                    }
                }
            }
        }
        if let Some(outcome) = quit {
            break outcome;
        }
        draw(&mut guard, &mut app, theme)?;
        if !data_frame_recorded && app.latest.is_some() {
            data_frame_recorded = true;
            timing.record("first_data_frame_ms");
        }
    };
    for task in tasks.iter().chain(pollers.iter()) {
        task.abort();
    }
    drop(guard);
    outcome
}

fn bundle_status(bundle: &Bundle) -> String {
    let (items, failed) = bundle.item_counts();
    let created = kneo_triage::triage::parse_time(&bundle.manifest.created_at)
        .map(crate::format::stamp)
        .unwrap_or_else(|| bundle.manifest.created_at.clone());
    crate::strings::status_bundle(&created, items, failed)
}

/// Draws a frame, then tells the app what only rendering knows (the verdict pane's rows).
fn draw(guard: &mut TerminalGuard, app: &mut App, theme: Theme) -> anyhow::Result<()> {
    let model = view::build(app, Utc::now(), theme.color);
    let mut facts = ui::RenderFacts::default();
    guard
        .terminal
        .draw(|frame| facts = ui::render(frame, &model))
        .context("cannot draw on the terminal")?;
    if let Some(pane) = facts.pane.filter(|pane| *pane != app.triage.pane.facts) {
        app.update(Action::PaneDrawn(pane));
    }
    Ok(())
}

/// Elapsed-time records for the performance procedure.
struct Timing {
    file: Option<PathBuf>,
    started: Instant,
}

impl Timing {
    fn from_env(started: Instant) -> Timing {
        Timing {
            file: std::env::var_os(TIMING_ENV).map(PathBuf::from),
            started,
        }
    }

    /// Appends `name=<ms since main> name_since_exec=<ms since the process started>`.
    fn record(&self, name: &str) {
        let Some(file) = &self.file else {
            return;
        };
        let since_main = self.started.elapsed().as_secs_f64() * 1000.0;
        let since_exec = process_age_ms()
            .map(|ms| format!(" {name}_since_exec={ms:.0}"))
            .unwrap_or_default();
        if let Ok(mut out) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = writeln!(out, "{name}={since_main:.1}{since_exec}");
        }
    }
}

/// How long this process has existed, from `/proc` (10 ms resolution).
fn process_age_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22 (starttime), counted after the `)` that ends the command name.
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
    if ticks_per_second <= 0.0 {
        return None;
    }
    Some((uptime - start_ticks / ticks_per_second) * 1000.0)
}
