//! kneo-tui: the on-call terminal dashboard of the kneo run service (DESIGN.md § 7).
//!
//! It walks the triage tree of `kneo_triage::triage` live (or offline from a capture bundle) and
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

#[cfg(test)]
mod dependency_tests {
    /// The dashboard builds on the triage model and the client only: never the server's HTTP
    /// stack, stores or backup engine (DESIGN.md § 7; issue 13 item 11).
    #[test]
    fn the_dashboard_does_not_build_the_server() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = std::process::Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "tree",
                "-p",
                "kneo-tui",
                "-e",
                "normal,build,dev",
                "--prefix",
                "none",
                "--offline",
            ])
            .output()
            .expect("run cargo tree");
        assert!(
            output.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = String::from_utf8_lossy(&output.stdout);
        for forbidden in [
            "axum ",
            "rusqlite ",
            "tokio-postgres ",
            "kneo-server ",
            "kneo-ops ",
        ] {
            assert!(
                !tree.lines().any(|line| line.starts_with(forbidden)),
                "kneo-tui depends on {forbidden}:\n{tree}"
            );
        }
        assert!(
            tree.lines().any(|line| line.starts_with("kneo-triage ")),
            "{tree}"
        );
    }
}
