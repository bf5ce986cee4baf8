//! Conformance with the kneo-serv 1.2.0 recordings: every golden request replayed in order against
//! a fresh server, the status, headers, field names and types compared with the recording.
//!
//! Ids differ between the recording and our run, so the replay learns which of our ids stands
//! for which recorded one (from responses that create things) and rewrites later requests
//! ([`kneo_tests::replay`], shared with the ext modules).

use std::time::Duration;

use kneo_testkit::golden;
use kneo_testkit::http::Api;
use kneo_testkit::postgres::shared_cluster;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions};
use kneo_tests::replay::{IdMap, check, replay};
use serde_json::json;

/// Recordings whose responses create the things later requests refer to.
const LEARN_FROM: [&str; 7] = ["08", "13", "22", "26", "28", "39", "09"];

async fn replay_all(server: &KneoServer) {
    let api = Api::new(&server.url);
    let mut ids = IdMap::default();
    let recordings = golden::all();
    // An empty or partial golden directory would make this replay prove nothing.
    assert!(
        recordings.len() >= 47,
        "only {} golden recordings found",
        recordings.len()
    );
    for golden in recordings {
        let prefix = &golden.name[..2];
        match prefix {
            "47" => continue, // needs a server started with missing secrets: see below
            "14" => {
                let run_id = ids.apply("4375e65a-546d-470f-81b2-56ddcb30c300");
                api.wait_terminal(&run_id, OPERATOR_KEY, Duration::from_secs(20))
                    .await;
            }
            _ => {}
        }
        let answer = replay(&api, &ids, &golden).await;
        if prefix == "29" {
            // kneo-serv accepted a wrong request_id; kneo refuses it and changes nothing.
            assert_eq!(
                answer.status, 409,
                "wrong request_id must be refused: {}",
                answer.text
            );
            assert_eq!(answer.error_code(), Some("run_state_conflict"));
            let request_id = ids.apply("900cf473-8a57-4cda-bfa2-b71af9ad31dd");
            let path = ids.apply(&golden.request.path);
            let body = json!({"request_id": request_id, "decision": "approved"});
            let answer = api
                .send(
                    "POST",
                    &path,
                    &[("x-kneo-api-key", REVIEWER_KEY)],
                    Some(&body),
                )
                .await;
            check(&golden, &answer);
            assert_eq!(
                answer.body["output_text"],
                "Published: Draft report for: Q3 numbers"
            );
            continue;
        }
        check(&golden, &answer);
        if LEARN_FROM.contains(&prefix) {
            ids.learn(&golden.response.body, &answer.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_recordings_replay_on_the_embedded_store() {
    let server = KneoServer::start(ServerOptions::default());
    replay_all(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_recordings_replay_on_postgres() {
    let url = shared_cluster().create_database();
    let server = KneoServer::start(ServerOptions::default().postgres(&url));
    replay_all(&server).await;
}

/// Golden 47: missing provider and MCP secrets make `/readyz` 503 with per-item presence, and
/// the value of the secret that is set appears nowhere (body or log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secrets_make_readiness_fail_without_leaking_values() {
    let secret = "sk-anthropic-canary-0123456789abcdef";
    let options = ServerOptions::default()
        .env("KNEO_SERV_HEALTH_PROVIDERS", "openai,anthropic")
        .env("KNEO_SERV_HEALTH_MCP_SECRETS", "github")
        .env("ANTHROPIC_API_KEY", secret);
    let server = KneoServer::start(options);
    let api = Api::new(&server.url);
    let golden = golden::load("47");
    let answer = replay(&api, &IdMap::default(), &golden).await;
    check(&golden, &answer);
    let checks = &answer.body["detail"]["metadata"]["checks"];
    assert_eq!(checks["providers"]["items"]["openai"]["present"], false);
    assert_eq!(checks["providers"]["items"]["anthropic"]["present"], true);
    assert_eq!(checks["mcp"]["items"]["github"]["present"], false);
    assert!(
        !answer.text.contains(secret),
        "the secret leaked into /readyz"
    );
    let detail = api.get("/v1/health", OPERATOR_KEY).await;
    assert!(
        !detail.text.contains(secret),
        "the secret leaked into /v1/health"
    );
    assert!(
        !server.log().contains(secret),
        "the secret leaked into the log"
    );
}
