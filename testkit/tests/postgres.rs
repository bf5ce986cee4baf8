//! Checks the PostgreSQL harness against the real server binaries on this machine.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use kneo_testkit::postgres::{PgCluster, shared_cluster};

/// Runs `sql` with plain `psql`, so the URL itself is what gets tested.
fn psql_at(cluster: &PgCluster, url: &str, sql: &str) -> String {
    let output = Command::new(cluster.bin_dir().join("psql"))
        .arg(url)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql should be runnable from the cluster's bin dir");
    assert!(
        output.status.success(),
        "psql {url} -c {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn postgres_cluster_starts_and_creates_database() {
    let cluster = PgCluster::start_new();
    assert!(cluster.is_running());

    let url = cluster.create_database();
    assert!(
        url.starts_with(&format!(
            "postgres://postgres@127.0.0.1:{}/",
            cluster.port()
        )),
        "unexpected url {url}"
    );
    assert_eq!(psql_at(&cluster, &url, "select 1"), "1");
    psql_at(
        &cluster,
        &url,
        "create table kept (n int); insert into kept values (42)",
    );

    cluster.stop();
    assert!(!cluster.is_running());
    cluster.start();
    assert!(cluster.is_running());

    assert_eq!(psql_at(&cluster, &url, "select 1"), "1");
    assert_eq!(
        psql_at(&cluster, &url, "select n from kept"),
        "42",
        "data must survive a restart"
    );

    let data_dir = cluster.data_dir();
    drop(cluster);
    assert!(!data_dir.exists(), "{data_dir:?} should be removed on drop");
}

#[test]
fn shared_cluster_is_reused_and_hands_out_fresh_databases() {
    let cluster = shared_cluster();
    assert!(std::ptr::eq(cluster, shared_cluster()));

    let first = cluster.create_database();
    let second = cluster.create_database();
    assert_ne!(first, second);
    assert_eq!(cluster.psql(&first, "select current_database() <> ''"), "t");
    assert_eq!(cluster.psql(&second, "select 1"), "1");
}
