//! Outages under a running dashboard: Postgres stopped under the server, and the server killed.
//! The dashboard keeps running, names the branch and its runbook section, and recovers.

use kneo_testkit::postgres::PgCluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};

use crate::support::{SCREEN_BOUND, Session, tui_command};

/// The dashboard polls every second; the test allows two refreshes plus start-up slack.
const REFRESH: &str = "1s";

fn healthy(screen: &str) -> bool {
    screen.contains("HEALTHY") && screen.contains("last ok")
}

/// Alive, ready and HEALTHY again: a restart is a note, and the 5xx answers of an outage that
/// readiness explained are not a second finding.
fn recovered(screen: &str) -> bool {
    screen.contains("✓ /healthz: alive")
        && screen.contains("✓ /readyz: dependencies healthy")
        && screen.contains("HEALTHY")
}

#[test]
fn postgres_stopped_under_the_server_turns_the_tree_to_run_state_store_and_back() {
    let cluster = PgCluster::start_new();
    let database = cluster.create_database();
    let server = KneoServer::start(ServerOptions::default().postgres(&database));
    let tui = Session::start(
        100,
        30,
        &tui_command(&[
            "--url",
            &server.url,
            "--api-key",
            OPERATOR_KEY,
            "--refresh",
            REFRESH,
        ]),
    );
    tui.wait_for("a healthy first poll", SCREEN_BOUND, healthy);
    let screen = tui.screen();
    assert!(
        screen.contains("ops (rw)"),
        "the operator key's identity:\n{screen}"
    );

    cluster.stop();
    let took = tui.wait_for(
        "the run_state_store branch with its § 2 section",
        SCREEN_BOUND,
        |screen| {
            screen.contains("DEGRADED")
                && screen.contains("✗ run_state_store")
                && screen.contains("§ 2")
        },
    );
    eprintln!(
        "outage shown {} ms after Postgres stopped",
        took.as_millis()
    );
    let screen = tui.screen();
    assert!(
        screen.contains("Postgres unreachable"),
        "the runbook text of § 2.2 is beside the tree:\n{screen}"
    );

    cluster.start();
    let took = tui.wait_for("recovery after Postgres returns", SCREEN_BOUND, recovered);
    eprintln!(
        "recovery shown {} ms after Postgres returned",
        took.as_millis()
    );
    assert!(tui.command_alive());
}

#[test]
fn a_killed_server_is_a_down_verdict_and_the_dashboard_recovers_when_it_returns() {
    let mut server = KneoServer::start(ServerOptions::default());
    let tui = Session::start(
        80,
        24,
        &tui_command(&[
            "--url",
            &server.url,
            "--api-key",
            OPERATOR_KEY,
            "--refresh",
            REFRESH,
        ]),
    );
    tui.wait_for("a healthy first poll", SCREEN_BOUND, healthy);

    server.kill();
    tui.wait_for(
        "the down verdict with the § 1 guidance",
        SCREEN_BOUND,
        |screen| {
            screen.contains("DOWN")
                && screen.contains("process down (connection refused)")
                && screen.contains("§ 1.3 The service does not listen")
        },
    );
    assert!(tui.command_alive(), "the dashboard keeps running");
    let screen = tui.screen();
    assert!(
        screen.contains("connection refused"),
        "the poll error is on screen:\n{screen}"
    );

    server.restart();
    tui.wait_for(
        "recovery once the server is back on its port",
        SCREEN_BOUND,
        recovered,
    );
    assert!(tui.command_alive());
}
