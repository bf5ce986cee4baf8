//! Postgres over TLS, against a real cluster with `ssl=on`, a throwaway CA and a pg_hba.conf that
//! only has `hostssl` lines: every sslmode means what it means to libpq, for the store, backup,
//! restore and the service-event reader alike; certificate and handshake failures get their own
//! kinds; a client certificate and SCRAM channel binding work.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use kneo_server::backup::{self, BackupOptions, RestoreOptions, StoreLocation, no_progress};
use kneo_server::clock;
use kneo_server::postgres_client::{PostgresTarget, SslMode, Verification};
use kneo_server::service_events::history;
use kneo_server::store::postgres::PostgresStore;
use kneo_server::store::{ErrorKind, QueueEntry, RunRecord, ServiceEvent, Store};
use kneo_testkit::postgres::{CLIENT_CERT_ROLE, PgCluster, SCRAM_PASSWORD, SCRAM_ROLE};
use serde_json::json;

/// A wait that only bounds a hang: a refused connection answers in milliseconds.
const HANG_BOUND: Duration = Duration::from_secs(60);

/// One TLS-only cluster for the whole test binary.
fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| PgCluster::start_with_tls(true))
}

async fn new_database() -> String {
    tokio::task::spawn_blocking(|| cluster().create_database())
        .await
        .unwrap()
}

/// `url` (which has no query yet) with `query` appended.
fn with(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// The same database reached as `localhost`, a name the server's certificate does not carry.
fn as_localhost(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

fn ca() -> String {
    cluster()
        .certificates()
        .unwrap()
        .ca_cert()
        .display()
        .to_string()
}

fn other_ca() -> String {
    cluster()
        .certificates()
        .unwrap()
        .other_ca_cert()
        .display()
        .to_string()
}

/// Whether this session runs over TLS, as the server sees it.
async fn server_sees_tls(target: &PostgresTarget) -> bool {
    let (client, connection) = target.connect().await.expect("connects");
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    driver.abort();
    row.get(0)
}

async fn ready_store(url: &str) -> PostgresStore {
    let store = PostgresStore::new(url, 2).expect("the URL is usable");
    tokio::time::timeout(HANG_BOUND, store.ensure_ready())
        .await
        .expect("no hang")
        .unwrap_or_else(|error| panic!("{url}: {} {}", error.kind, error.message));
    store
}

/// The kind a store reports for `url`, within the hang bound.
async fn failure_kind(url: &str) -> (ErrorKind, String) {
    let store = PostgresStore::new(url, 1).expect("the URL is usable");
    let error = tokio::time::timeout(HANG_BOUND, store.probe())
        .await
        .expect("a refused connection must not hang")
        .expect_err("the connection is refused");
    (error.kind, error.message)
}

async fn write_run(store: &PostgresStore) -> String {
    let id = format!("run-tls-{}", &clock::new_id()[..8]);
    let run = RunRecord::new(id.clone(), "over TLS".into(), clock::now_text());
    store
        .create_run(&run, Some(QueueEntry::Queued), &[], None)
        .await
        .unwrap();
    store
        .record_service_event(&ServiceEvent {
            id: clock::new_id(),
            event_type: "service.started".into(),
            created_at: clock::now_text(),
            version: "0.0.0-tls".into(),
            host: "tls-host".into(),
            details: json!({}),
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn require_and_verify_full_serve_the_store_backup_restore_and_history() {
    let source = new_database().await;
    let require = with(&source, "sslmode=require");
    let target = PostgresTarget::from_url(&require).unwrap();
    assert_eq!(target.verification(), Verification::None);
    assert!(
        server_sees_tls(&target).await,
        "sslmode=require runs over TLS"
    );
    let store = ready_store(&require).await;
    let run_id = write_run(&store).await;

    let verify_full = with(
        &source,
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    );
    let target = PostgresTarget::from_url(&verify_full).unwrap();
    assert_eq!(target.verification(), Verification::ChainAndHost);
    assert!(server_sees_tls(&target).await);
    let store = ready_store(&verify_full).await;
    assert!(store.get_run(&run_id).await.unwrap().is_some());

    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("tls.tar.gz");
    backup::backup(
        &StoreLocation::postgres(&verify_full),
        &archive,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .expect("backup over verify-full");

    let restored = new_database().await;
    let restored_verify_ca = with(
        &as_localhost(&restored),
        &format!("sslmode=verify-ca&sslrootcert={}", ca()),
    );
    backup::restore(
        &archive,
        &StoreLocation::postgres(&restored_verify_ca),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .expect("restore over verify-ca");
    let store = ready_store(&with(&restored, "sslmode=require")).await;
    let run = store.get_run(&run_id).await.unwrap().expect("restored");
    assert_eq!(run.input_text.as_deref(), Some("over TLS"));

    let events = history::read(&StoreLocation::postgres(&verify_full))
        .await
        .expect("service events over verify-full");
    assert!(events.iter().any(|event| event.host == "tls-host"));
}

#[tokio::test]
async fn certificate_checks_follow_sslmode_and_refusals_are_certificate_invalid() {
    let url = new_database().await;
    // verify-ca checks the chain only, so the wrong name is fine; verify-full is not.
    let localhost_ca = with(
        &as_localhost(&url),
        &format!("sslmode=verify-ca&sslrootcert={}", ca()),
    );
    ready_store(&localhost_ca).await;
    let localhost_full = with(
        &as_localhost(&url),
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    );
    let (kind, message) = failure_kind(&localhost_full).await;
    assert_eq!(kind, ErrorKind::CertificateInvalid, "{message}");
    assert!(message.contains("does not name the host"), "{message}");

    for mode in ["verify-full", "verify-ca", "require"] {
        // libpq: with a root certificate, require checks the chain too.
        let wrong_ca = with(&url, &format!("sslmode={mode}&sslrootcert={}", other_ca()));
        let (kind, message) = failure_kind(&wrong_ca).await;
        assert_eq!(kind, ErrorKind::CertificateInvalid, "{mode}: {message}");
        assert!(
            message.contains("not signed by a CA in sslrootcert"),
            "{mode}: {message}"
        );
    }
}

#[tokio::test]
async fn sslmode_disable_against_a_tls_only_server_is_tls_failed_not_a_hang() {
    let url = new_database().await;
    let (kind, message) = failure_kind(&with(&url, "sslmode=disable")).await;
    assert_eq!(kind, ErrorKind::TlsFailed, "{message}");
    assert!(message.contains("no encryption"), "{message}");
    // prefer takes the TLS the server offers.
    ready_store(&with(&url, "sslmode=prefer")).await;
}

#[tokio::test]
async fn the_libpq_variables_configure_tls_when_the_url_does_not() {
    let url = new_database().await;
    let ca = ca();
    let env: HashMap<&str, &str> =
        [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())].into();
    let target =
        PostgresTarget::from_url_with(&url, &|name| env.get(name).map(|v| v.to_string())).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::VerifyFull);
    assert!(server_sees_tls(&target).await);
    let other = other_ca();
    let env: HashMap<&str, &str> = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", other.as_str()),
    ]
    .into();
    let target =
        PostgresTarget::from_url_with(&url, &|name| env.get(name).map(|v| v.to_string())).unwrap();
    let error = target
        .connect()
        .await
        .err()
        .expect("the wrong CA is refused");
    assert_eq!(
        kneo_server::postgres_client::failure::tls_failure(&error),
        Some(kneo_server::postgres_client::failure::TlsFailure::Certificate)
    );
}

#[tokio::test]
async fn a_client_certificate_logs_in_and_scram_binds_the_channel() {
    let url = new_database().await;
    let files = cluster().certificates().unwrap();
    let as_role = |role: &str| url.replacen("postgres@", &format!("{role}@"), 1);
    let with_certificate = with(
        &as_role(CLIENT_CERT_ROLE),
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            ca(),
            files.client_cert().display(),
            files.client_key().display()
        ),
    );
    ready_store(&with_certificate).await;
    let without = with(
        &as_role(CLIENT_CERT_ROLE),
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    );
    let (kind, message) = failure_kind(&without).await;
    assert_eq!(
        kind,
        ErrorKind::AuthFailed,
        "the server wants a certificate: {message}"
    );

    // channel_binding=require fails unless the connector binds SCRAM to the certificate.
    let scram = with(
        &as_role(&format!("{SCRAM_ROLE}:{SCRAM_PASSWORD}")),
        &format!(
            "sslmode=verify-full&sslrootcert={}&channel_binding=require",
            ca()
        ),
    );
    ready_store(&scram).await;
    let wrong_password = scram.replace(SCRAM_PASSWORD, "not-the-password");
    let (kind, message) = failure_kind(&wrong_password).await;
    assert_eq!(kind, ErrorKind::AuthFailed, "{message}");
    assert!(!message.contains("not-the-password"), "{message}");

    // A key others can read is refused before connecting, as libpq refuses it.
    let work = tempfile::tempdir().unwrap();
    let open_key = work.path().join("client.key");
    std::fs::copy(files.client_key(), &open_key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = PostgresTarget::from_url(&with(
        &as_role(CLIENT_CERT_ROLE),
        &format!(
            "sslmode=require&sslcert={}&sslkey={}",
            files.client_cert().display(),
            open_key.display()
        ),
    ))
    .unwrap_err();
    assert_eq!(error.setting, "sslkey");
    assert!(error.to_string().contains("chmod 600"), "{error}");
}
