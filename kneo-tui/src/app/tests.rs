//! `App::update` transitions, on the fixtures of `crate::testing`.

use super::*;
use crate::testing::{self, Scenario};

fn key(app: &mut App, action: Action) -> Vec<Effect> {
    app.update(action)
}

#[test]
fn the_selection_follows_the_worst_finding_until_the_user_moves() {
    let app = testing::app(Scenario::Failing503);
    assert_eq!(
        app.triage.selected.as_deref(),
        Some("readyz.run_state_store")
    );
    let mut app = app;
    key(&mut app, Action::Down);
    assert!(!app.triage.follow);
    let moved = app.triage.selected.clone();
    // A new poll keeps the user's choice.
    let outcome = PollOutcome {
        probes: testing::probes(Scenario::Failing503),
        failed_runs: None,
        elapsed: Duration::from_millis(5),
    };
    app.update(Action::Polled {
        outcome: Box::new(outcome),
        at: testing::now(),
    });
    assert_eq!(app.triage.selected, moved);
}

#[test]
fn a_service_going_down_moves_the_selection_to_the_new_finding() {
    let mut app = testing::app(Scenario::Healthy);
    let outcome = PollOutcome {
        probes: testing::probes(Scenario::Down),
        failed_runs: None,
        elapsed: Duration::from_millis(1),
    };
    app.update(Action::Polled {
        outcome: Box::new(outcome),
        at: testing::now(),
    });
    assert_eq!(app.triage.selected.as_deref(), Some("healthz"));
    let latest = app.latest.as_ref().expect("polled");
    assert_eq!(latest.report.health, Health::Down);
    // The transition is recorded for the Events screen.
    assert_eq!(app.observed.last().map(|o| o.health), Some(Health::Down));
    // The last good poll stays at the last poll that answered.
    assert!(app.last_good_at.is_some());
}

#[test]
fn enter_and_back_fold_the_tree() {
    let mut app = testing::app(Scenario::Healthy);
    let count = app.row_count();
    // Healthy: every stage is folded; opening the readiness stage shows its eight checks.
    assert_eq!(count, 4);
    app.triage.selected = Some("readyz".into());
    key(&mut app, Action::Enter);
    assert_eq!(app.row_count(), 12);
    key(&mut app, Action::Back);
    assert_eq!(app.row_count(), 4);
}

#[test]
fn screens_switch_by_key_command_and_tab() {
    let mut app = testing::app(Scenario::Healthy);
    key(&mut app, Action::Show(Screen::Queue));
    assert_eq!(app.screen, Screen::Queue);
    key(&mut app, Action::NextScreen);
    assert_eq!(app.screen, Screen::Runs);
    key(&mut app, Action::StartCommand);
    for c in "events".chars() {
        key(&mut app, Action::Input(c));
    }
    key(&mut app, Action::Submit);
    assert_eq!(app.screen, Screen::Events);
    assert_eq!(app.mode, Mode::Normal);
    key(&mut app, Action::StartCommand);
    for c in "runs failed".chars() {
        key(&mut app, Action::Input(c));
    }
    let effects = key(&mut app, Action::Submit);
    assert_eq!(app.screen, Screen::Runs);
    assert_eq!(app.runs.status.as_deref(), Some("failed"));
    assert_eq!(
        effects,
        vec![Effect::WatchRuns(RunsWatch {
            visible: true,
            status: Some("failed".into()),
            drill: None
        })]
    );
    key(&mut app, Action::StartCommand);
    for c in "nope".chars() {
        key(&mut app, Action::Input(c));
    }
    key(&mut app, Action::Submit);
    assert!(
        app.message
            .as_deref()
            .unwrap_or("")
            .contains("unknown command :nope")
    );
}

#[test]
fn search_filters_the_runs_list_and_escape_clears_it() {
    let mut app = testing::app(Scenario::Healthy);
    key(&mut app, Action::StartSearch);
    assert_eq!(app.screen, Screen::Runs);
    let all = app.filtered_runs().len();
    for c in "approval".chars() {
        key(&mut app, Action::Input(c));
    }
    assert_eq!(app.filtered_runs().len(), 1);
    key(&mut app, Action::Submit);
    assert_eq!(app.runs.search, "approval", "Enter keeps the search");
    key(&mut app, Action::StartSearch);
    key(&mut app, Action::Escape);
    assert_eq!(app.filtered_runs().len(), all);
}

#[test]
fn the_status_key_cycles_filters_and_asks_for_a_new_list() {
    let mut app = testing::app(Scenario::Healthy);
    app.screen = Screen::Runs;
    let effects = key(&mut app, Action::CycleStatus);
    assert_eq!(app.runs.status.as_deref(), Some("queued"));
    assert!(app.runs.list.is_none(), "the old list is dropped");
    assert!(matches!(effects.as_slice(), [Effect::WatchRuns(_)]));
    // A late answer for the old filter is ignored.
    app.update(Action::RunsLoaded {
        status: None,
        result: testing::runs_list(Scenario::Healthy),
    });
    assert!(app.runs.list.is_none());
}

#[test]
fn enter_drills_from_run_to_audit_and_escape_climbs_back() {
    let mut app = testing::app(Scenario::Healthy);
    app.screen = Screen::Runs;
    let first = app.filtered_runs()[0].run_id.clone();
    let effects = key(&mut app, Action::Enter);
    assert_eq!(
        effects,
        vec![Effect::WatchRuns(RunsWatch {
            visible: true,
            status: None,
            drill: Some(first.clone())
        })]
    );
    app.update(Action::DrillLoaded {
        run_id: first.clone(),
        data: Box::new(testing::drill_data()),
    });
    for level in [
        DrillLevel::Trace,
        DrillLevel::Checkpoints,
        DrillLevel::Audit,
    ] {
        key(&mut app, Action::Enter);
        assert_eq!(app.runs.drill.as_ref().map(|d| d.level), Some(level));
    }
    key(&mut app, Action::Enter);
    assert_eq!(
        app.runs.drill.as_ref().map(|d| d.level),
        Some(DrillLevel::Audit),
        "audit is the deepest level"
    );
    for _ in 0..3 {
        key(&mut app, Action::Back);
    }
    assert_eq!(
        app.runs.drill.as_ref().map(|d| d.level),
        Some(DrillLevel::Run)
    );
    let effects = key(&mut app, Action::Back);
    assert!(app.runs.drill.is_none());
    assert_eq!(
        effects,
        vec![Effect::WatchRuns(RunsWatch {
            visible: true,
            ..RunsWatch::default()
        })],
        "closing the drill-down stops fetching it"
    );
}

#[test]
fn the_runs_list_is_watched_only_while_it_shows() {
    let mut app = testing::app(Scenario::Healthy);
    let effects = key(&mut app, Action::Show(Screen::Runs));
    assert_eq!(
        effects,
        vec![Effect::WatchRuns(RunsWatch {
            visible: true,
            ..RunsWatch::default()
        })]
    );
    let effects = key(&mut app, Action::Show(Screen::Events));
    assert_eq!(effects, vec![Effect::WatchRuns(RunsWatch::default())]);
    assert!(key(&mut app, Action::Show(Screen::Queue)).is_empty());
}

#[test]
fn the_queue_screen_opens_the_selected_stuck_run() {
    let mut app = testing::app(Scenario::StuckQueue);
    app.screen = Screen::Queue;
    let rows = app.queue_rows();
    assert!(rows[0].stuck.is_some(), "stuck rows come first: {rows:?}");
    let effects = key(&mut app, Action::Enter);
    assert_eq!(app.screen, Screen::Runs);
    assert_eq!(
        effects,
        vec![Effect::WatchRuns(RunsWatch {
            visible: true,
            status: None,
            drill: Some(rows[0].run_id.clone())
        })]
    );
}

#[test]
fn capture_and_cancel_ask_first_and_run_on_yes() {
    let mut app = testing::app(Scenario::StuckQueue);
    app.screen = Screen::Queue;
    let run_id = app.queue_rows()[0].run_id.clone();
    assert!(key(&mut app, Action::Capture).is_empty());
    assert_eq!(
        app.mode,
        Mode::Confirm(Pending::Capture {
            run_id: run_id.clone()
        })
    );
    assert_eq!(
        key(&mut app, Action::Yes),
        vec![Effect::Capture {
            run_id: run_id.clone()
        }]
    );
    key(&mut app, Action::CancelRun);
    assert!(key(&mut app, Action::No).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    key(&mut app, Action::CancelRun);
    assert_eq!(key(&mut app, Action::Yes), vec![Effect::Cancel { run_id }]);
}

#[test]
fn read_only_disables_every_action() {
    let mut app = testing::app(Scenario::StuckQueue);
    app.source.read_only = true;
    app.screen = Screen::Queue;
    for action in [Action::Capture, Action::CancelRun, Action::Copy] {
        assert!(key(&mut app, action).is_empty());
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(app.message.as_deref(), Some(strings::READ_ONLY));
    }
}

#[test]
fn cancel_is_refused_before_sending_when_the_key_cannot_write() {
    let mut app = testing::app(Scenario::StuckQueue);
    app.screen = Screen::Queue;
    if let Some(Ok(detail)) = app
        .latest
        .as_mut()
        .and_then(|l| l.probes.health_detail.as_mut())
        .map(|r| r.result.as_mut())
    {
        detail.identity = Some(serde_json::json!({"name": "view", "scopes": ["runs:read"]}));
    }
    assert!(key(&mut app, Action::CancelRun).is_empty());
    assert_eq!(app.message.as_deref(), Some(strings::CANNOT_WRITE));
}

#[test]
fn copy_sends_the_selected_id_and_logs_it() {
    let mut app = testing::app(Scenario::Healthy);
    app.screen = Screen::Tasks;
    let effects = key(&mut app, Action::Copy);
    let first_task = app.sorted_tasks()[0].id.clone();
    assert_eq!(
        effects,
        vec![Effect::Copy {
            text: first_task.clone()
        }]
    );
    assert!(
        app.action_log
            .last()
            .is_some_and(|e| e.text.contains(&first_task))
    );
}

#[test]
fn bundles_refuse_actions_that_need_the_service() {
    let mut app = testing::app(Scenario::StuckQueue);
    app.source.kind = SourceKind::Bundle {
        path: "b.tar.gz".into(),
        created_at: String::new(),
    };
    app.screen = Screen::Queue;
    assert!(key(&mut app, Action::CancelRun).is_empty());
    assert_eq!(app.message.as_deref(), Some(strings::OFFLINE));
}

#[test]
fn help_and_log_overlays_close_with_escape() {
    let mut app = testing::app(Scenario::Healthy);
    key(&mut app, Action::ToggleHelp);
    assert_eq!(app.mode, Mode::Help);
    key(&mut app, Action::Down);
    assert_eq!(app.mode, Mode::Help, "other keys do nothing under the help");
    key(&mut app, Action::Escape);
    assert_eq!(app.mode, Mode::Normal);
    key(&mut app, Action::ToggleLog);
    key(&mut app, Action::ToggleLog);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(key(&mut app, Action::Quit), vec![Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn stuck_rows_name_each_rule() {
    let app = testing::app(Scenario::StuckQueue);
    let reasons: Vec<String> = app
        .queue_rows()
        .into_iter()
        .filter_map(|row| row.stuck)
        .collect();
    for expected in [
        "queued > 60 s, no worker",
        "lease expired 4 min ago",
        "no checkpoint for 10 min",
        "blocked 15 min past expires_at",
        "escalated, 6 min past expires_at",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected:?} in {reasons:?}"
        );
    }
    // The young queued run is not stuck.
    assert_eq!(
        reasons.iter().filter(|r| r.starts_with("queued")).count(),
        2
    );
}

#[test]
fn the_backlog_rule_sees_the_history() {
    let app = testing::app(Scenario::StuckQueue);
    let latest = app.latest.as_ref().expect("polled");
    let rising = latest
        .report
        .stages
        .iter()
        .flat_map(Verdict::walk)
        .find(|v| v.id == "queue.backlog_rising");
    assert!(
        rising.is_some(),
        "the history feeds kneo-ops' rising-backlog rule"
    );
    assert_eq!(app.history.queue_depths(10), vec![1, 1, 2, 2, 3]);
}
