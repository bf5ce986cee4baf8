//! An environment policy put through the API blocks runs in its environment, on both stores,
//! and keeps doing so after a restart and after `kneo-ops backup` → `kneo-ops restore`.

use kneo_testkit::http::Api;
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use serde_json::{Value, json};

use crate::backup_cli::ops;

/// The calls of these tests, made from a blocking test through testkit's client.
struct Calls {
    runtime: tokio::runtime::Runtime,
}

impl Calls {
    fn new() -> Calls {
        Calls {
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
        }
    }

    fn send(&self, method: &str, url: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let bearer = format!("Bearer {OPERATOR_KEY}");
        let answer = self.runtime.block_on(Api::new(url).send(
            method,
            path,
            &[("authorization", &bearer)],
            body.as_ref(),
        ));
        (answer.status, answer.body)
    }

    fn put_policy(&self, server: &KneoServer) {
        let (status, body) = self.send(
            "PUT",
            &server.url,
            "/v1/policies/environment/staging",
            Some(json!({"require_human_review": true})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["policy"]["require_human_review"], true);
    }

    /// The stored policy of `staging`.
    fn policy(&self, server: &KneoServer) -> Value {
        let (status, body) =
            self.send("GET", &server.url, "/v1/policies/environment/staging", None);
        assert_eq!(status, 200, "{body}");
        body["policy"].clone()
    }

    /// A run of the spec without a human step in `environment`: status and error code.
    fn run_in(&self, server: &KneoServer, environment: &str) -> (u16, Option<String>) {
        let (status, body) = self.send(
            "POST",
            &server.url,
            "/v1/runs",
            Some(
                json!({"input": "hi", "spec_path": "specs/hello.yaml", "environment": environment}),
            ),
        );
        let code = body["detail"]["error"].as_str().map(str::to_string);
        (status, code)
    }

    fn assert_gated(&self, server: &KneoServer, when: &str) {
        assert_eq!(
            self.run_in(server, "staging"),
            (403, Some("environment_policy_blocked".into())),
            "{when}: a run in staging is blocked"
        );
        assert_eq!(
            self.run_in(server, "qa").0,
            200,
            "{when}: another environment is not"
        );
        assert_eq!(
            self.policy(server)["require_human_review"],
            true,
            "{when}: the policy is still stored"
        );
    }
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_policy_blocks_runs_across_a_restart_and_a_restore_on_the_embedded_store() {
    let api = Calls::new();
    let mut server = KneoServer::start(ServerOptions::default());
    assert_eq!(api.run_in(&server, "staging").0, 200, "no policy yet");
    api.put_policy(&server);
    api.assert_gated(&server, "after the put");
    server.restart();
    api.assert_gated(&server, "after a restart");

    let backups = tempfile::tempdir().expect("tempdir");
    let archive = backups.path().join("policies.tar.gz").display().to_string();
    let state = server.dir.join(".kneo").display().to_string();
    let made = ops(&["backup", "--state-dir", &state, "-o", &archive]);
    assert!(made.status.success(), "{}", text(&made));
    server.stop();

    let target = tempfile::tempdir().expect("tempdir");
    kneo_testkit::fixtures::write_specs(target.path());
    let target_state = target.path().join(".kneo").display().to_string();
    let restored = ops(&[
        "restore",
        &archive,
        "--state-dir",
        &target_state,
        "--url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(restored.status.code(), Some(0), "{}", text(&restored));
    let restored_server = KneoServer::start_in(target.path(), ServerOptions::default());
    api.assert_gated(&restored_server, "after backup and restore");
}

#[test]
fn a_policy_blocks_runs_across_a_restart_and_a_restore_on_postgres() {
    let api = Calls::new();
    let url = shared_cluster().create_database();
    let mut server = KneoServer::start(ServerOptions::default().postgres(&url));
    api.put_policy(&server);
    api.assert_gated(&server, "after the put");
    server.restart();
    api.assert_gated(&server, "after a restart");

    let backups = tempfile::tempdir().expect("tempdir");
    let archive = backups.path().join("policies.tar.gz").display().to_string();
    let made = ops(&["backup", "--database-url", &url, "-o", &archive]);
    assert!(made.status.success(), "{}", text(&made));
    server.stop();

    let target_url = shared_cluster().create_database();
    let restored = ops(&[
        "restore",
        &archive,
        "--database-url",
        &target_url,
        "--url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(restored.status.code(), Some(0), "{}", text(&restored));
    let restored_server = KneoServer::start(ServerOptions::default().postgres(&target_url));
    api.assert_gated(&restored_server, "after backup and restore");
}
