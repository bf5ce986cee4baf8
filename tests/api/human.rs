//! Human tasks under pressure: concurrent resumes, crashes at the two dangerous moments, a torn
//! continuation file, and the expiry sweep's three `on_timeout` policies.

use std::time::{Duration, Instant};

use kneo_testkit::http::{Answer, Api};
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, REVIEWER_KEY, ServerOptions};
use serde_json::{Value, json};

use super::write_spec;

async fn start_approval(api: &Api, input: &str) -> (String, String) {
    let answer = api
        .post(
            "/v1/runs",
            OPERATOR_KEY,
            &json!({"spec_path": "specs/approval.yaml", "input": input}),
        )
        .await;
    assert_eq!(answer.body["status"], "blocked", "{}", answer.text);
    (
        answer.body["run_id"].as_str().expect("run").to_string(),
        answer.body["continuation_id"]
            .as_str()
            .expect("continuation")
            .to_string(),
    )
}

async fn request_id(api: &Api, continuation_id: &str) -> String {
    let task = api
        .get(&format!("/v1/human-tasks/{continuation_id}"), REVIEWER_KEY)
        .await;
    task.body["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request id: {}", task.text))
        .to_string()
}

async fn resume(api: &Api, continuation_id: &str, request_id: &str) -> Answer {
    api.post(
        &format!("/v1/human-tasks/{continuation_id}/resume"),
        REVIEWER_KEY,
        &json!({"request_id": request_id, "decision": "approved"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_concurrent_resumes_give_one_200_and_409s() {
    one_hundred_concurrent_resumes(ServerOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_concurrent_resumes_on_postgres() {
    let url = kneo_testkit::postgres::shared_cluster().create_database();
    one_hundred_concurrent_resumes(ServerOptions::default().postgres(&url)).await;
}

/// 100 resumes at once: one wins. A loser that meets the winner's lock gets 409
/// `resource_locked` naming it; one that comes after the winner consumed the continuation finds
/// nothing to resume (404, as golden 34 records for a second resume).
async fn one_hundred_concurrent_resumes(options: ServerOptions) {
    let server = KneoServer::start(options);
    let api = Api::new(&server.url);
    let (run_id, continuation_id) = start_approval(&api, "race").await;
    let request_id = request_id(&api, &continuation_id).await;
    let attempts = (0..100).map(|_| {
        let (api, continuation_id, request_id) =
            (api.clone(), continuation_id.clone(), request_id.clone());
        tokio::spawn(async move { resume(&api, &continuation_id, &request_id).await })
    });
    let answers: Vec<Answer> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|a| a.expect("task"))
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 1, "exactly one resume wins");
    let lock = format!("continuation:{continuation_id}");
    let mut locked = 0;
    for answer in answers.iter().filter(|a| a.status != 200) {
        match answer.status {
            409 => {
                let code = answer.error_code().unwrap_or_default();
                assert!(
                    ["resource_locked", "run_state_conflict"].contains(&code),
                    "{}",
                    answer.text
                );
                if code == "resource_locked" {
                    assert_eq!(answer.body["detail"]["resource"], lock.as_str());
                    locked += 1;
                }
            }
            404 => assert_eq!(answer.error_code(), Some("not_found"), "{}", answer.text),
            _ => panic!("a losing resume answered {}", answer.text),
        }
    }
    let gone = answers.iter().filter(|a| a.status == 404).count();
    eprintln!("100 resumes: 1 won, {locked} met the lock, {gone} found the task gone");
    assert!(
        locked > 0,
        "no loser met the winner's lock: the race did not happen"
    );
    let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
    assert_eq!(run.body["status"], "completed");
    let decisions = api
        .get(
            &format!("/v1/audit-events?run_id={run_id}&event_type=human.decision"),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(
        decisions.body["total"], 1,
        "the decision applied once: {}",
        decisions.text
    );
    let published = run.body["visited_steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| **s == "publish")
        .count();
    assert_eq!(published, 1, "the run completed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_request_id_is_rejected_and_changes_nothing() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let (run_id, continuation_id) = start_approval(&api, "careful").await;
    let wrong = resume(&api, &continuation_id, "wrong").await;
    assert_eq!(wrong.status, 409, "{}", wrong.text);
    assert_eq!(wrong.error_code(), Some("run_state_conflict"));
    let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
    assert_eq!(run.body["status"], "blocked", "nothing changed");
    let task = api
        .get(&format!("/v1/human-tasks/{continuation_id}"), REVIEWER_KEY)
        .await;
    assert_eq!(task.status, 200, "the task is still there");
    let right = resume(
        &api,
        &continuation_id,
        &request_id(&api, &continuation_id).await,
    )
    .await;
    assert_eq!(right.body["status"], "completed", "{}", right.text);
}

async fn tasks_of(api: &Api, run_id: &str) -> Vec<Value> {
    let list = api
        .get(&format!("/v1/human-tasks?run_id={run_id}"), REVIEWER_KEY)
        .await;
    list.body["tasks"].as_array().cloned().unwrap_or_default()
}

/// `kill -9` between "continuation written" and "run marked blocked": after a restart the task is
/// pending and resumable, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_writing_the_continuation_leaves_a_resumable_task() {
    let mut server = KneoServer::start(
        ServerOptions::default().env("KNEO_SERV_FAULTS", "after_continuation_write"),
    );
    let api = Api::new(&server.url);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let _ = client
        .post(format!("{}/v1/runs", server.url))
        .header("authorization", format!("Bearer {OPERATOR_KEY}"))
        .json(
            &json!({"spec_path": "specs/approval.yaml", "input": "crash one", "async_mode": false}),
        )
        .send()
        .await;
    assert!(
        server.wait_for_exit(Duration::from_secs(60)),
        "the fault point did not fire"
    );
    server.restart_with(&[("KNEO_SERV_FAULTS", "")]);
    let listed = api.get("/v1/runs?limit=1", OPERATOR_KEY).await;
    let run_id = listed.body["runs"][0]["id"]
        .as_str()
        .expect("the run survived")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = api.get(&format!("/v1/runs/{run_id}"), OPERATOR_KEY).await;
        if run.body["status"] == "blocked" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run never came back to blocked: {}",
            run.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tasks = tasks_of(&api, &run_id).await;
    assert_eq!(tasks.len(), 1, "one task, not a duplicate: {tasks:?}");
    let continuation_id = run.body["continuation_id"]
        .as_str()
        .expect("continuation")
        .to_string();
    let done = resume(
        &api,
        &continuation_id,
        &request_id(&api, &continuation_id).await,
    )
    .await;
    assert_eq!(done.body["status"], "completed", "{}", done.text);
    assert_eq!(
        done.body["output_text"],
        "Published: Draft report for: crash one"
    );
}

/// `kill -9` between "resume accepted" and "run completed": after a restart the run completes,
/// the decision applied once, and the task is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_accepting_a_resume_finishes_the_run_once() {
    let mut server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let (run_id, continuation_id) = start_approval(&api, "crash two").await;
    let request = request_id(&api, &continuation_id).await;
    server.restart_with(&[("KNEO_SERV_FAULTS", "after_resume_accepted")]);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let _ = client
        .post(format!(
            "{}/v1/human-tasks/{continuation_id}/resume",
            server.url
        ))
        .header("authorization", format!("Bearer {REVIEWER_KEY}"))
        .json(&json!({"request_id": request, "decision": "approved"}))
        .send()
        .await;
    assert!(
        server.wait_for_exit(Duration::from_secs(60)),
        "the fault point did not fire"
    );
    server.restart_with(&[("KNEO_SERV_FAULTS", "")]);
    let run = api
        .wait_terminal(&run_id, OPERATOR_KEY, Duration::from_secs(60))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output_text"], "Published: Draft report for: crash two");
    let decisions = api
        .get(
            &format!("/v1/audit-events?run_id={run_id}&event_type=human.decision"),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(decisions.body["total"], 1);
    assert!(
        tasks_of(&api, &run_id).await.is_empty(),
        "no task left behind"
    );
    let again = resume(&api, &continuation_id, &request).await;
    assert!([404, 409].contains(&again.status), "{}", again.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_continuation_file_is_reported_and_the_others_keep_working() {
    let server = KneoServer::start(ServerOptions::default());
    let api = Api::new(&server.url);
    let (_, torn) = start_approval(&api, "torn").await;
    let (good_run, good) = start_approval(&api, "good").await;
    let path = server
        .dir
        .join(".kneo/continuations")
        .join(format!("{torn}.json"));
    let bytes = std::fs::read(&path).expect("continuation file");
    std::fs::write(&path, &bytes[..bytes.len() / 3]).expect("truncate");

    let list = api.get("/v1/human-tasks", REVIEWER_KEY).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body["unreadable"][0]["continuation_id"],
        torn.as_str(),
        "{}",
        list.text
    );
    assert!(
        list.body["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .any(|t| t["id"] == good.as_str())
    );
    let broken = api
        .get(&format!("/v1/human-tasks/{torn}"), REVIEWER_KEY)
        .await;
    assert_eq!(broken.status, 409, "{}", broken.text);
    assert_eq!(broken.error_code(), Some("continuation_unreadable"));
    assert!(
        broken.body["detail"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("§ 8.3")
    );
    let done = resume(&api, &good, &request_id(&api, &good).await).await;
    assert_eq!(done.body["status"], "completed");
    let _ = good_run;
}

fn timed_spec(on_timeout: &str) -> String {
    kneo_testkit::fixtures::APPROVAL
        .replace("timeout_seconds: 86400", "timeout_seconds: 1")
        .replace("on_timeout: escalate", &format!("on_timeout: {on_timeout}"))
}

async fn wait_for_audit(api: &Api, run_id: &str, event_type: &str) -> Value {
    // The task expires after 1 s and the sweep runs every second: bounded only to fail
    // instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = api
            .get(
                &format!("/v1/audit-events?run_id={run_id}&event_type={event_type}"),
                OPERATOR_KEY,
            )
            .await;
        if events.body["total"].as_i64().unwrap_or(0) > 0 {
            return events.body;
        }
        assert!(Instant::now() < deadline, "no {event_type} for {run_id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The in-process sweep (every second in tests) applies `on_timeout`: fail → `expired`,
/// continue → the run goes on as approved, escalate → stays blocked and is escalated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tasks_follow_their_on_timeout_policy() {
    let server = KneoServer::start(ServerOptions::default());
    for policy in ["fail", "continue", "escalate"] {
        write_spec(
            &server.dir,
            &format!("timed-{policy}.yaml"),
            &timed_spec(policy),
        );
    }
    let api = Api::new(&server.url);
    let start = |policy: &'static str| {
        let api = api.clone();
        async move {
            let answer = api
                .post(
                    "/v1/runs",
                    OPERATOR_KEY,
                    &json!({"spec_path": format!("specs/timed-{policy}.yaml"), "input": policy}),
                )
                .await;
            answer.body["run_id"].as_str().expect("run").to_string()
        }
    };
    let (failing, continuing, escalating) = (
        start("fail").await,
        start("continue").await,
        start("escalate").await,
    );

    wait_for_audit(&api, &failing, "human.expired").await;
    let run = api.get(&format!("/v1/runs/{failing}"), OPERATOR_KEY).await;
    assert_eq!(run.body["status"], "expired");
    assert_eq!(run.body["error"]["type"], "human_task_expired");

    wait_for_audit(&api, &continuing, "human.continued").await;
    let run = api
        .wait_terminal(&continuing, OPERATOR_KEY, Duration::from_secs(60))
        .await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output_text"], "Published: Draft report for: continue");

    wait_for_audit(&api, &escalating, "human.escalated").await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // two more sweeps
    let escalations = api
        .get(
            &format!("/v1/audit-events?run_id={escalating}&event_type=human.escalated"),
            OPERATOR_KEY,
        )
        .await;
    assert_eq!(escalations.body["total"], 1, "escalation fires once");
    let run = api
        .get(&format!("/v1/runs/{escalating}"), OPERATOR_KEY)
        .await;
    assert_eq!(run.body["status"], "blocked");
    let escalated = api
        .get("/v1/human-tasks?status=escalated", REVIEWER_KEY)
        .await;
    let task = escalated.body["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["run_id"] == escalating.as_str())
        .cloned()
        .expect("escalated task");
    assert!(task["pending_human_request"]["escalated_at"].is_string());
    let pending = api
        .get("/v1/human-tasks?status=pending", REVIEWER_KEY)
        .await;
    assert!(
        !pending.body["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .any(|t| t["run_id"] == escalating.as_str())
    );
    // An escalated task can still be answered.
    let continuation_id = task["id"].as_str().expect("id").to_string();
    let done = resume(
        &api,
        &continuation_id,
        &request_id(&api, &continuation_id).await,
    )
    .await;
    assert_eq!(done.body["status"], "completed", "{}", done.text);
}
