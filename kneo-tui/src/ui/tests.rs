//! Snapshot tests of every screen at 80×24 and 160×48, in the four situations of
//! `crate::testing` (healthy, a 503 with failing run_state_store and providers, down, stuck
//! queue), drawn into ratatui's `TestBackend` with a fixed "now". Snapshots live in
//! `src/ui/snapshots/`; CI runs with `CI=true`, where a changed screen fails instead of updating.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::app::{Action, App, Screen};
use crate::testing::{self, Scenario};
use crate::view;

/// The screen as text: what a user would read.
fn draw(app: &App, width: u16, height: u16) -> String {
    let model = view::build(app, testing::now(), false);
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(terminal) => terminal,
        Err(error) => panic!("test terminal: {error}"),
    };
    if let Err(error) = terminal.draw(|frame| super::render(frame, &model)) {
        panic!("draw: {error}");
    }
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn screen_name(screen: Screen) -> &'static str {
    match screen {
        Screen::Triage => "triage",
        Screen::Readiness => "readiness",
        Screen::Queue => "queue",
        Screen::Runs => "runs",
        Screen::Tasks => "tasks",
        Screen::Events => "events",
    }
}

#[test]
fn every_screen_in_every_scenario_at_both_sizes() {
    for scenario in Scenario::ALL {
        for screen in Screen::ALL {
            let mut app = testing::app(scenario);
            app.update(Action::Show(screen));
            for (width, height) in [(80, 24), (160, 48)] {
                let name = format!(
                    "{}_{}_{width}x{height}",
                    screen_name(screen),
                    scenario.name()
                );
                insta::assert_snapshot!(name, draw(&app, width, height));
            }
        }
    }
}

#[test]
fn the_failing_branch_shows_its_runbook_section() {
    let app = testing::app(Scenario::Failing503);
    let screen = draw(&app, 80, 24);
    assert!(screen.contains("run_state_store"), "{screen}");
    assert!(screen.contains("§ 2.2"), "{screen}");
    assert!(screen.contains("DEGRADED"), "{screen}");
}

#[test]
fn a_down_service_is_a_verdict_with_the_section_1_guidance() {
    let app = testing::app(Scenario::Down);
    let screen = draw(&app, 80, 24);
    assert!(screen.contains("process down or unreachable"), "{screen}");
    assert!(screen.contains("§ 1"), "{screen}");
    assert!(screen.contains("DOWN"), "{screen}");
    assert!(
        screen.contains("last poll: GET"),
        "the poll error is on screen: {screen}"
    );
}

#[test]
fn the_status_bar_names_target_identity_refresh_and_last_good_poll() {
    let app = testing::app(Scenario::Healthy);
    let screen = draw(&app, 160, 48);
    for expected in [
        "http://127.0.0.1:8000",
        "ops (rw)",
        "every 1s",
        "poll 14 ms ✓",
        "last ok 12:00:00",
    ] {
        assert!(screen.contains(expected), "{expected:?} in {screen}");
    }
}

#[test]
fn a_rejected_key_is_a_verdict_with_section_4_1() {
    let app = testing::app_with(testing::key_refused(401));
    let screen = draw(&app, 100, 30);
    for expected in [
        "HTTP 401 unauthorized",
        "§ 4.1",
        "key rejected (401)",
        "DEGRADED",
    ] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
}

#[test]
fn a_key_without_the_scope_is_a_verdict_with_section_4_2() {
    let app = testing::app_with(testing::key_refused(403));
    let screen = draw(&app, 100, 30);
    for expected in ["HTTP 403 forbidden", "§ 4.2", "key lacks runs:read"] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
}

#[test]
fn a_slow_service_is_a_timeout_verdict() {
    let app = testing::app_with(testing::slow());
    let screen = draw(&app, 100, 30);
    for expected in [
        "process down or unreachable",
        "no answer within 3000 ms",
        "§ 1",
        "DOWN",
    ] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
}

#[test]
fn overlays_and_drill_down() {
    let mut app = testing::app(Scenario::Healthy);
    app.update(Action::ToggleHelp);
    insta::assert_snapshot!("help_80x24", draw(&app, 80, 24));
    insta::assert_snapshot!("help_160x48", draw(&app, 160, 48));
    app.update(Action::Escape);

    app.update(Action::Show(Screen::Runs));
    app.update(Action::Enter);
    let run_id = app
        .runs
        .drill
        .as_ref()
        .map(|d| d.run_id.clone())
        .unwrap_or_default();
    app.update(Action::DrillLoaded {
        run_id,
        data: Box::new(testing::drill_data()),
    });
    insta::assert_snapshot!("drill_run_80x24", draw(&app, 80, 24));
    app.update(Action::Enter);
    insta::assert_snapshot!("drill_trace_160x48", draw(&app, 160, 48));
    app.update(Action::Enter);
    insta::assert_snapshot!("drill_checkpoints_80x24", draw(&app, 80, 24));
    app.update(Action::Enter);
    insta::assert_snapshot!("drill_audit_80x24", draw(&app, 80, 24));

    let mut app = testing::app(Scenario::StuckQueue);
    app.update(Action::Show(Screen::Queue));
    app.update(Action::CancelRun);
    insta::assert_snapshot!("confirm_cancel_80x24", draw(&app, 80, 24));
}

#[test]
fn before_the_first_poll_the_screen_says_it_is_waiting() {
    let app = App::new(testing::source(), crate::app::Settings::default());
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("Waiting for the first answer from http://127.0.0.1:8000"),
        "{screen}"
    );
    assert!(screen.contains("WAITING"), "{screen}");
}

#[test]
fn no_color_renders_the_same_text() {
    let app = testing::app(Scenario::Failing503);
    let model = view::build(&app, testing::now(), true);
    let mut colour = Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|e| panic!("{e}"));
    colour
        .draw(|frame| super::render(frame, &model))
        .unwrap_or_else(|e| panic!("{e}"));
    let coloured: String = colour
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|cell| cell.symbol())
        .collect();
    let plain: String = draw(&app, 80, 24).lines().collect::<Vec<_>>().join("");
    assert_eq!(
        coloured.split_whitespace().collect::<String>(),
        plain.split_whitespace().collect::<String>()
    );
    // Monochrome output carries no colour at all.
    let mono = view::build(&app, testing::now(), false);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|frame| super::render(frame, &mono))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .all(|cell| cell.fg == ratatui::style::Color::Reset
                && (cell.bg == ratatui::style::Color::Reset))
    );
}
