//! Capture against the real kneo server with a blocked run and a failed run.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_of_a_real_server_holds_every_item_and_verifies() {
    let server = KneoServer::start(ServerOptions::default());
    let dir = server.dir.clone();
    let api = Api::new(&server.url);

    let blocked = api
        .post(
            "/v1/runs",
            KEY,
            &json!({"spec_path": "specs/approval.yaml", "input": "Q3 numbers"}),
        )
        .await;
    assert_eq!(
        (blocked.status, blocked.body["status"].as_str()),
        (200, Some("blocked")),
        "{}",
        blocked.text
    );
    let blocked = blocked.body;
    let failed = api
        .post(
            "/v1/runs",
            KEY,
            &json!({"spec_path": "specs/failing.yaml", "input": "boom"}),
        )
        .await;
    assert_eq!(
        (failed.status, failed.body["status"].as_str()),
        (200, Some("failed")),
        "{}",
        failed.text
    );
    let failed = failed.body;
    let blocked_id = blocked["run_id"].as_str().expect("run id").to_string();
    let failed_id = failed["run_id"].as_str().expect("run id").to_string();
    // A resume with a wrong request id is refused and audited with that id.
    let continuation = blocked["continuation_id"]
        .as_str()
        .expect("continuation id");
    let request_id = "req-escalation-42";
    let refused = api
        .post(
            &format!("/v1/human-tasks/{continuation}/resume"),
            KEY,
            &json!({"request_id": request_id, "decision": "approved"}),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);

    let cluster = kneo_testkit::postgres::shared_cluster();
    let dsn = cluster
        .create_database()
        .replacen("postgres@", "postgres:Canary-Db-Passw0rd@", 1);
    let state_dir = dir.join(".kneo");
    let bundle = dir.join("bundle.tar.gz");
    let (output, elapsed) = run_kneo_ops_async(
        &[
            "capture",
            "--url",
            &server.url,
            "--run-id",
            &blocked_id,
            "--run-id",
            &failed_id,
            "--request-id",
            request_id,
            "--spec",
            "specs/approval.yaml",
            "--database-url",
            &dsn,
            "--state-dir",
            state_dir.to_str().expect("utf-8 path"),
            "-o",
            bundle.to_str().expect("utf-8 path"),
            "--json",
        ],
        &[("KNEO_SERV_API_KEY", KEY)],
        &dir,
    )
    .await;
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "capture failed in {elapsed:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        !stdout.contains("Canary-Db-Passw0rd") && !stderr.contains("Canary-Db-Passw0rd"),
        "the DSN password is never printed"
    );
    let summary: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(
        summary["summary"]["ok"], summary["summary"]["items"],
        "{summary:#}"
    );

    let files = read_bundle(&bundle);
    let manifest = manifest(&files);
    let mut expected = vec![
        "tool/version.json".to_string(),
        "host/uname.txt".into(),
        "host/os-release.txt".into(),
        "host/resources.json".into(),
        "host/disk.json".into(),
        "host/postgres-version.txt".into(),
        "service/healthz.json".into(),
        "service/readyz.json".into(),
        "service/health.json".into(),
        "service/metrics.txt".into(),
        "service/service-events.json".into(),
        "service/audit-events-recent.json".into(),
        "queue/queued-runs.json".into(),
        "queue/running-runs.json".into(),
        "queue/human-tasks.json".into(),
        "triage/verdicts.json".into(),
        "triage/verdicts.txt".into(),
        format!("requests/{request_id}/audit-events.json"),
        "specs/1-approval.yaml.validate.json".into(),
    ];
    for run in [&blocked_id, &failed_id] {
        for file in [
            "run.json",
            "trace.json",
            "checkpoints.json",
            "audit-events.json",
        ] {
            expected.push(format!("runs/{run}/{file}"));
        }
    }
    for path in &expected {
        let entry = item(&manifest, path);
        assert_eq!(entry["status"], "ok", "{path}: {entry}");
        assert!(
            entry["sha256"].as_str().is_some_and(|s| s.len() == 64),
            "{path}: {entry}"
        );
        assert!(
            files.contains_key(path.as_str()),
            "{path} is in the archive"
        );
    }
    assert_eq!(
        manifest["items"].as_array().map(Vec::len),
        Some(expected.len()),
        "no unexpected items"
    );
    assert_eq!(manifest["format"], "kneo-capture");
    assert_eq!(manifest["service"]["service"], "kneo-serv-platform");
    assert_eq!(manifest["target"], server.url.as_str());
    assert_eq!(manifest["options"]["database_url_given"], true);

    // The content is what was asked for.
    let postgres = text(&files["host/postgres-version.txt"]);
    assert!(postgres.contains("PostgreSQL"), "{postgres}");
    let run: Value =
        serde_json::from_slice(&files[&format!("runs/{blocked_id}/run.json")]).expect("run json");
    assert_eq!(run["status"], "blocked");
    let trace: Value = serde_json::from_slice(&files[&format!("runs/{failed_id}/trace.json")])
        .expect("trace json");
    assert_eq!(
        trace["events"].as_array().map(Vec::len).map(|n| n as u64),
        trace["total"].as_u64(),
        "all trace pages"
    );
    let mentions: Value =
        serde_json::from_slice(&files[&format!("requests/{request_id}/audit-events.json")])
            .expect("audit json");
    assert!(
        mentions["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event_type"] == "human.resume_rejected")),
        "{mentions:#}"
    );
    let validation: Value = serde_json::from_slice(&files["specs/1-approval.yaml.validate.json"])
        .expect("validate json");
    assert_eq!(validation["output"]["valid"], true);
    let verdicts: Value = serde_json::from_slice(&files["triage/verdicts.json"]).expect("verdicts");
    assert_eq!(
        verdicts["health"], "degraded",
        "the refused resume above is a caller's symptom the service counted"
    );
    assert_eq!(
        verdicts["start_with"],
        "key root got HTTP 409 run_state_conflict on POST /v1/human-tasks/{continuation_id}/resume (§ 8.4)",
        "the consumer is named by its key's name (KEY is testkit's admin key, root)"
    );
    // The runbook's own text is the tool's, not the service's: redaction leaves it whole.
    let stored = text(&files["triage/verdicts.json"]);
    assert!(
        stored.contains("X-Kneo-Api-Key: $KEY") && !stored.contains("[REDACTED]"),
        "the verdicts keep the runbook's examples:\n{stored}"
    );
    let rendered = text(&files["triage/verdicts.txt"]);
    assert!(!rendered.contains("[REDACTED]"), "{rendered}");
    assert!(text(&files["service/readyz.json"]).contains("run_state_store"));
    assert!(text(&files["service/metrics.txt"]).contains("kneo_worker_count"));

    // Nothing secret in any byte: the key in use and the DSN password.
    for (path, data) in &files {
        let content = text(data);
        assert!(!content.contains(KEY), "{path} holds the API key");
        assert!(
            !content.contains("Canary-Db-Passw0rd"),
            "{path} holds the DSN password"
        );
        assert!(
            !content.contains("reviewer@example.com"),
            "{path} holds an email"
        );
    }

    // A clean layout.
    let listing = std::process::Command::new("tar")
        .args(["-tzf", bundle.to_str().expect("utf-8")])
        .output()
        .expect("run tar");
    assert!(listing.status.success(), "{}", text(&listing.stderr));
    let names: Vec<String> = text(&listing.stdout).lines().map(str::to_string).collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('/') && !n.split('/').any(|part| part == ".." || part == ".")),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted");
    for directory in [
        "service/",
        "host/",
        "queue/",
        "triage/",
        "tool/",
        "specs/",
        &format!("runs/{blocked_id}/"),
        &format!("runs/{failed_id}/"),
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(directory)),
            "no {directory} in {names:?}"
        );
    }
    assert!(names.contains(&"manifest.json".to_string()));

    // The same tree walks offline from the bundle (what kneo-tui --bundle does).
    let (_, probes) = kneo_triage::bundle::load_probes(&bundle).expect("probes from the bundle");
    let offline =
        kneo_triage::triage::evaluate(&probes, &kneo_triage::triage::Thresholds::default());
    assert_eq!(
        serde_json::to_value(&offline.stages).expect("json"),
        verdicts["stages"],
        "offline verdicts equal the captured ones"
    );

    // bundle inspect verifies every checksum.
    let (inspected, _) = run_kneo_ops_async(
        &["bundle", "inspect", bundle.to_str().expect("utf-8")],
        &[],
        &dir,
    )
    .await;
    let report = text(&inspected.stdout);
    assert_eq!(
        inspected.status.code(),
        Some(0),
        "{report}\n{}",
        text(&inspected.stderr)
    );
    assert!(
        report.contains(&format!("Intact: {} file(s) match", expected.len())),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_away_from_the_service_directory_skips_the_disk_check_and_exits_0() {
    let server = KneoServer::start(ServerOptions::default());
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let (output, _) = run_kneo_ops_async(
        &["capture", "--url", &server.url, "-o", "away.tar.gz"],
        &[("KNEO_SERV_API_KEY", KEY)],
        elsewhere.path(),
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "an item that does not apply is skipped, not an error\nstdout: {stdout}\nstderr: {}",
        text(&output.stderr)
    );
    assert!(stdout.contains("0 error, 0 timeout, 1 skipped"), "{stdout}");
    let manifest = manifest(&read_bundle(&elsewhere.path().join("away.tar.gz")));
    let disk = item(&manifest, "host/disk.json");
    assert_eq!(disk["status"], "skipped", "{disk}");
    assert!(
        disk["error"].as_str().is_some_and(
            |reason| reason.contains("does not apply here") && reason.contains("--state-dir")
        ),
        "{disk}"
    );
}
