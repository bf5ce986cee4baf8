//! kneo-tui: the on-call terminal dashboard of the kneo run service (DESIGN.md § 7).
//!
//! It walks the triage tree of `kneo_ops::triage` live (or offline from a capture bundle) and
//! shows, beside each verdict, the runbook text that says what to do.
//!
//! Module map (the shape of the ratatui `simple-async` template, with television's pure render):
//! - [`cli`]: command-line flags and how they become a [`app::Source`] and thresholds.
//! - [`app`]: the state and `App::update(Action)`, which returns [`app::Effect`]s for the
//!   main loop to carry out; nothing in it touches the terminal or the network.
//! - [`view`]: [`view::ViewModel`], the snapshot the UI draws from, built from the state and an
//!   injected "now" (so snapshot tests are deterministic).
//! - [`ui`]: `ui::render(frame, &ViewModel)`, a pure function; one module per screen.
//! - [`event`]: the event task that merges terminal input, signals and a clock tick.
//! - [`keys`]: every key binding, in one table (also what the help overlay lists).
//! - [`strings`]: every piece of UI text.
//! - [`poll`]: the poller tasks (probes, run lists, drill-downs); they never block input.
//! - [`history`]: the last polls kept in memory, for sparklines and readiness flips.
//! - [`stuck`]: stuck-run detection for the Queue screen (DESIGN.md § 5, stage 3).
//! - [`actions`]: capture through `kneo-ops`, cancel a run, copy ids (OSC 52).
//! - [`bundle`]: reads a `kneo-ops capture` bundle back into probes, for `--bundle`.
//! - [`local`]: `--local`, an embedded `kneo service serve` on a free loopback port.
//! - [`terminal`]: raw mode and the alternate screen, restored on every way out.
//! - [`theme`]: colours, or none at all under `NO_COLOR`.
//! - [`format`]: ages, times and truncation shared by the views.
//! - [`run`]: the main loop that ties these together.

pub mod actions;
pub mod app;
pub mod bundle;
pub mod cli;
pub mod event;
pub mod format;
pub mod history;
pub mod keys;
pub mod local;
pub mod poll;
pub mod run;
pub mod strings;
pub mod stuck;
pub mod terminal;
#[cfg(test)]
pub mod testing;
pub mod theme;
pub mod ui;
pub mod view;
