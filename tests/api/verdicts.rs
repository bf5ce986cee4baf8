//! Validation and execution agree (issue 15, item 7): for every spec of the extended
//! recordings, `kneo spec validate --json`, `POST /v1/specs/validate` and a sync `POST /v1/runs`
//! give one verdict. A valid spec is never refused by the run; an invalid one is refused with the
//! same error codes (`400 spec_invalid`), or as kneo-serv's runs refuse them: `400
//! invalid_request` for a version kneo cannot read or a missing skill source, `422
//! spec_path_confined` for a skill source outside the spec root.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use kneo_testkit::http::Api;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use serde_json::{Value, json};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).expect("read a directory").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a spec file");
        }
    }
}

fn error_codes(diagnostics: &Value) -> BTreeSet<String> {
    diagnostics
        .as_array()
        .into_iter()
        .flatten()
        .filter(|diagnostic| diagnostic["severity"] == "error")
        .filter_map(|diagnostic| diagnostic["code"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_http_validation_and_runs_give_one_verdict() {
    let recordings = kneo_testkit::golden::ext_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&recordings.join("specs"), &dir.path().join("specs"));
    let server = KneoServer::start_in(dir.path(), ServerOptions::default());
    let api = Api::new(&server.url);

    let mut files: Vec<_> = std::fs::read_dir(recordings.join("cli_validate"))
        .expect("read cli_validate")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    assert!(files.len() >= 190, "only {} recorded specs", files.len());
    let mut problems = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for file in &files {
        let recording: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        let spec_path = recording["spec"].as_str().expect("spec").to_owned();
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();

        let output = Command::new(kneo_testkit::bins::bin_path("kneo"))
            .args(["spec", "validate", &spec_path, "--json"])
            .current_dir(dir.path())
            .output()
            .expect("run kneo spec validate");
        let cli: Value = serde_json::from_slice(&output.stdout).expect("CLI JSON");

        // File specs go by path; inline ones (written out as JSON files) go in the body.
        let source = if spec_path.starts_with("specs/inline/") {
            let text = std::fs::read_to_string(dir.path().join(&spec_path)).expect("read spec");
            json!({"spec": serde_json::from_str::<Value>(&text).expect("spec JSON")})
        } else {
            json!({"spec_path": spec_path})
        };
        let http = api.post("/v1/specs/validate", OPERATOR_KEY, &source).await;
        let mut run_body = source.clone();
        run_body["input"] = json!("please search the web for https://docs.example.com/x");
        let run = api.post("/v1/runs", OPERATOR_KEY, &run_body).await;

        let cli_valid = cli["valid"] == true;
        let cli_errors = error_codes(&cli["diagnostics"]);
        if http.status != 200
            || http.body["valid"] != cli["valid"]
            || error_codes(&http.body["diagnostics"]) != cli_errors
        {
            problems.push(format!(
                "{name}: CLI valid={cli_valid} {cli_errors:?}, POST /v1/specs/validate {} {}",
                http.status, http.text
            ));
        }
        let refused = matches!(
            (run.status, run.error_code()),
            (400, Some("spec_invalid" | "invalid_request")) | (422, Some("spec_path_confined"))
        );
        if cli_valid {
            valid += 1;
            if refused {
                problems.push(format!(
                    "{name}: valid, but the run was refused: {}",
                    run.text
                ));
            }
        } else {
            invalid += 1;
            let run_errors = error_codes(&run.body["detail"]["diagnostics"]);
            let same = match run.error_code() {
                Some("spec_invalid") => run_errors == cli_errors,
                Some("invalid_request") => {
                    cli_errors.contains("E_SPEC_VERSION")
                        || cli_errors.contains("E_SKILL_SOURCE_UNREADABLE")
                }
                Some("spec_path_confined") => {
                    cli_errors.contains("E_SKILL_SOURCE_CONFINED")
                        || cli_errors.contains("E_SCHEMA")
                }
                _ => false,
            };
            if !(refused && same) {
                problems.push(format!(
                    "{name}: invalid ({cli_errors:?}), but the run answered {}: {}",
                    run.status, run.text
                ));
            }
        }
    }
    println!(
        "{} specs: {valid} valid, {invalid} invalid, one verdict each",
        files.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
