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
    draw_with_facts(app, width, height).0
}

/// The screen, and what rendering tells the app back (as the main loop does).
fn draw_with_facts(app: &App, width: u16, height: u16) -> (String, super::RenderFacts) {
    let model = view::build(app, testing::now(), false);
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(terminal) => terminal,
        Err(error) => panic!("test terminal: {error}"),
    };
    let mut facts = super::RenderFacts::default();
    if let Err(error) = terminal.draw(|frame| facts = super::render(frame, &model)) {
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
    (out, facts)
}

/// Draws, then hands the pane's facts to the app, as the main loop does after every frame.
fn draw_and_learn(app: &mut App, width: u16, height: u16) -> String {
    let (screen, facts) = draw_with_facts(app, width, height);
    if let Some(pane) = facts.pane {
        app.update(Action::PaneDrawn(pane));
    }
    screen
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
fn a_down_service_is_one_verdict_with_the_section_1_3_fix_steps() {
    let app = testing::app(Scenario::Down);
    let screen = draw(&app, 80, 24);
    for expected in [
        "Start with: /healthz: process down (connection refused) (§ 1.3)",
        "DOWN",
        "§ 1.3 The service does not listen",
        "1. The port is taken",
        "last poll: GET",
        "not judged: the service i",
    ] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
    assert!(!screen.contains("stuck work"), "{screen}");
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
fn a_healthy_service_shows_no_warning_on_any_screen() {
    for screen in Screen::ALL {
        let mut app = testing::app(Scenario::Healthy);
        app.update(Action::Show(screen));
        for (width, height) in [(80, 24), (160, 48)] {
            let text = draw(&app, width, height);
            assert!(
                !text.contains('!') && !text.contains('✗'),
                "{screen:?} at {width}x{height}:\n{text}"
            );
        }
    }
}

#[test]
fn a_rejected_key_is_the_tools_problem_in_the_status_bar_not_the_header() {
    let app = testing::app_with(testing::key_refused(401));
    let screen = draw(&app, 100, 30);
    for expected in [
        "the tool's API key was rejected (401) (§ 4.1)",
        "✗ key rejected (401)",
        "HEALTHY",
    ] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
    for unexpected in ["DEGRADED", "stuck work", "could not list"] {
        assert!(!screen.contains(unexpected), "{unexpected:?} in\n{screen}");
    }
}

#[test]
fn a_key_without_the_scope_is_the_tools_problem_with_section_4_2() {
    let app = testing::app_with(testing::key_refused(403));
    let screen = draw(&app, 100, 30);
    for expected in ["lacks runs:read", "§ 4.2", "✗ key lacks runs:read"] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
    assert!(!screen.contains("DEGRADED"), "{screen}");
}

#[test]
fn a_service_that_connects_and_never_answers_is_hung() {
    let app = testing::app_with(testing::slow());
    let screen = draw(&app, 100, 30);
    for expected in ["hung (connects, never answers)", "§ 1.5", "HUNG"] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
}

#[test]
fn long_errors_wrap_and_the_runbook_pane_scrolls_at_80x24() {
    let mut app = testing::app(Scenario::Down);
    let first = draw_and_learn(&mut app, 80, 24);
    insta::assert_snapshot!("pane_wrapped_error_80x24", first);
    assert!(
        first.contains("(connection") && first.contains("refused): nothing listens there"),
        "the error wraps instead of being cut:\n{first}"
    );
    assert!(first.contains("Verdict and runbook 1-18/23"), "{first}");
    app.update(Action::ScrollDown);
    let scrolled = draw_and_learn(&mut app, 80, 24);
    insta::assert_snapshot!("pane_scrolled_80x24", scrolled);
    assert!(
        scrolled.contains("Verdict and runbook 4-21/23"),
        "{scrolled}"
    );
    for _ in 0..50 {
        app.update(Action::ScrollDown);
    }
    let bottom = draw_and_learn(&mut app, 80, 24);
    assert!(
        bottom.contains("Verdict and runbook 6-23/23") && bottom.contains("deployed."),
        "scrolling stops at the end of the text, which is on screen:\n{bottom}"
    );
    app.update(Action::ScrollUp);
    assert_eq!(
        app.triage.pane.scroll, 2,
        "clamped at the end, so one K goes back"
    );
}

#[test]
fn enter_on_a_runbook_reference_opens_that_section_and_esc_comes_back() {
    let mut app = testing::app(Scenario::Failing503);
    draw_and_learn(&mut app, 80, 24);
    app.update(Action::Enter);
    assert!(
        app.triage.pane.focused,
        "⏎ on a finding gives the pane the keys"
    );
    let focused = draw_and_learn(&mut app, 80, 24);
    assert!(focused.contains("Esc back"), "{focused}");
    assert!(
        focused.contains("↑↓ pick a § reference"),
        "the hint line says how: {focused}"
    );
    let references = app.triage.pane.facts.references.clone();
    assert!(references.contains(&"2.4".to_string()), "{references:?}");
    let target = references.iter().position(|n| n == "2.4").unwrap_or(0);
    for _ in 0..target {
        app.update(Action::Down);
        draw_and_learn(&mut app, 80, 24);
    }
    app.update(Action::Enter);
    let opened = draw_and_learn(&mut app, 80, 24);
    insta::assert_snapshot!("pane_opened_reference_80x24", opened);
    assert!(opened.contains("§ 2.4 Schema missing"), "{opened}");
    assert!(opened.contains("(Esc goes back)"), "{opened}");
    app.update(Action::Escape);
    let back = draw_and_learn(&mut app, 80, 24);
    assert!(back.contains("§ 2.2 Postgres unreachable"), "{back}");
    app.update(Action::Escape);
    assert!(!app.triage.pane.focused);
}

#[test]
fn screens_keep_the_last_answers_marked_stale_while_the_service_is_down() {
    let mut app = testing::app(Scenario::StuckQueue);
    app.update(Action::Polled {
        outcome: Box::new(crate::app::PollOutcome {
            probes: testing::probes(Scenario::Down),
            failed_runs: None,
            elapsed: std::time::Duration::from_millis(1),
        }),
        at: testing::now(),
    });
    app.update(Action::RunsLoaded {
        status: None,
        result: testing::runs_list(Scenario::Down),
    });
    app.update(Action::Show(Screen::Queue));
    let queue = draw(&app, 80, 24);
    assert!(
        queue.contains("stale: the service is not answering"),
        "{queue}"
    );
    assert!(
        queue.contains("STUCK"),
        "the last known queue is still there:\n{queue}"
    );
    app.update(Action::Show(Screen::Runs));
    let runs = draw(&app, 80, 24);
    assert!(runs.contains("stale: the last fetch failed"), "{runs}");
    assert!(runs.contains("nightly-report"), "{runs}");
    app.update(Action::Show(Screen::Triage));
    let triage = draw(&app, 80, 24);
    assert!(
        triage.contains("DOWN") && !triage.contains("stale"),
        "{triage}"
    );
}

#[test]
fn a_service_with_auth_off_needs_no_key() {
    let mut probes = testing::probes(Scenario::Healthy);
    probes.key_given = false;
    let mut app = App::new(
        crate::app::Source {
            has_key: false,
            ..testing::source()
        },
        crate::app::Settings::default(),
    );
    if let Some(Ok(detail)) = probes.health_detail.as_mut().map(|r| r.result.as_mut()) {
        detail.identity =
            Some(serde_json::json!({"name": "anonymous", "scopes": ["runs:read", "runs:write"]}));
    }
    app.update(Action::Polled {
        outcome: Box::new(crate::app::PollOutcome {
            probes,
            failed_runs: None,
            elapsed: std::time::Duration::from_millis(3),
        }),
        at: testing::now(),
    });
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("no key (auth off)") && screen.contains("HEALTHY"),
        "{screen}"
    );
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
        .draw(|frame| {
            super::render(frame, &model);
        })
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
        .draw(|frame| {
            super::render(frame, &mono);
        })
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
