//! `kneo-ops backup`, `verify`, `restore`, `backup list|prune` as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

use kneo_testkit::bins::bin_path;
use kneo_testkit::http::Api;
use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use serde_json::{Value, json};

pub fn ops(args: &[&str]) -> Output {
    Command::new(bin_path("kneo-ops"))
        .args(args)
        .env_remove("KNEO_SERV_DATABASE_URL")
        .env_remove("KNEO_SERV_URL")
        .output()
        .expect("run kneo-ops")
}

/// `restore` of `archive` into an empty state directory exits 1 and creates no store.
fn assert_restore_refused(archive: &str, url: &str) {
    let empty = tempfile::tempdir().expect("tempdir");
    let state_dir = empty.path().join(".kneo");
    let refused = ops(&[
        "restore",
        archive,
        "--state-dir",
        &state_dir.display().to_string(),
        "--url",
        url,
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(!state_dir.join("kneo_runs.sqlite").exists());
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The failure kinds `kneo-ops verify` printed (`FAIL <kind>: <detail> (<entry>)`), in order.
fn failure_kinds(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("FAIL "))
        .map(|rest| rest.split(':').next().unwrap_or_default().to_string())
        .collect()
}

pub fn make_runs(url: &str, count: usize) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let api = Api::new(url);
        let mut ids = Vec::new();
        for index in 0..count {
            let run = api
                .post(
                    "/v1/runs",
                    OPERATOR_KEY,
                    &json!({"spec_path": "specs/hello.yaml", "input": format!("keep {index}")}),
                )
                .await;
            assert_eq!(run.status, 200, "{}", run.text);
            ids.push(run.body["run_id"].as_str().expect("run id").to_string());
        }
        ids
    })
}

fn state(dir: &Path) -> String {
    dir.join(".kneo").display().to_string()
}

#[test]
fn backup_verify_restore_round_trip_with_refusals() {
    let mut server = KneoServer::start(ServerOptions::default());
    make_runs(&server.url, 5);
    let backups = tempfile::tempdir().expect("tempdir");
    let archive = backups.path().join("one.tar.gz");
    let archive_text = archive.display().to_string();

    let made = ops(&[
        "backup",
        "--state-dir",
        &state(&server.dir),
        "-o",
        &archive_text,
        "--json",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    let summary: Value = serde_json::from_slice(&made.stdout).expect("JSON summary");
    assert_eq!(
        summary["manifest"]["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["name"] == "runs")
            .expect("runs")["rows"],
        5
    );
    let again = ops(&[
        "backup",
        "--state-dir",
        &state(&server.dir),
        "-o",
        &archive_text,
    ]);
    assert!(
        !again.status.success() && text(&again).contains("already exists"),
        "{}",
        text(&again)
    );

    let verified = ops(&["verify", &archive_text]);
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    let deep = ops(&["verify", "--deep", &archive_text]);
    assert_eq!(deep.status.code(), Some(0), "{}", text(&deep));
    assert!(backups.path().join("one.tar.gz.verified.json").is_file());
    let listed = ops(&[
        "backup",
        "list",
        "--backups",
        &backups.path().display().to_string(),
    ]);
    assert!(
        text(&listed).contains("verified") && text(&listed).contains("5 runs"),
        "{}",
        text(&listed)
    );

    // Refused: restoring under a service that answers.
    let target = tempfile::tempdir().expect("tempdir");
    let target_state = target.path().join(".kneo").display().to_string();
    let refused = ops(&[
        "restore",
        &archive_text,
        "--state-dir",
        &target_state,
        "--url",
        &server.url,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("answers at"), "{}", text(&refused));
    assert!(
        !target.path().join(".kneo/kneo_runs.sqlite").exists(),
        "nothing changed"
    );

    server.stop();
    let nobody = "http://127.0.0.1:9";
    let restored = ops(&[
        "restore",
        &archive_text,
        "--state-dir",
        &target_state,
        "--url",
        nobody,
    ]);
    assert_eq!(restored.status.code(), Some(0), "{}", text(&restored));
    // Refused: the target now holds data, and --force was not given.
    let before =
        std::fs::read(target.path().join(".kneo/kneo_runs.sqlite")).expect("restored file");
    let refused = ops(&[
        "restore",
        &archive_text,
        "--state-dir",
        &target_state,
        "--url",
        nobody,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    assert_eq!(
        std::fs::read(target.path().join(".kneo/kneo_runs.sqlite")).expect("file"),
        before,
        "nothing changed"
    );
    let forced = ops(&[
        "restore",
        &archive_text,
        "--state-dir",
        &target_state,
        "--url",
        nobody,
        "--force",
    ]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert!(
        text(&forced).contains("previous contents were saved"),
        "{}",
        text(&forced)
    );

    // A flipped byte, and no sidecar to compare the whole file with: the content checks name
    // the problem, the JSON report names the same, restore refuses.
    let mut bytes = std::fs::read(&archive).expect("archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let broken = backups.path().join("broken.tar.gz");
    let broken_text = broken.display().to_string();
    std::fs::write(&broken, &bytes).expect("write");
    let checked = ops(&["verify", &broken_text]);
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked));
    let named = failure_kinds(&checked);
    assert!(!named.is_empty(), "no failure named:\n{}", text(&checked));
    let as_json = ops(&["verify", "--json", &broken_text]);
    assert_eq!(as_json.status.code(), Some(1), "{}", text(&as_json));
    let report: Value = serde_json::from_slice(&as_json.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    let in_json: Vec<String> = report["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|failure| failure["kind"].as_str().expect("kind").to_string())
        .collect();
    assert_eq!(named, in_json, "{}", text(&checked));
    assert_restore_refused(&broken_text, nobody);

    // A flipped gzip magic byte: the file is read but is not a kneo archive; that is a named
    // failure (1), not "no verdict" (2).
    let mut bytes = std::fs::read(&archive).expect("archive");
    bytes[0] ^= 0x04;
    let not_gzip = backups.path().join("not-gzip.tar.gz");
    let not_gzip_text = not_gzip.display().to_string();
    std::fs::write(&not_gzip, &bytes).expect("write");
    let checked = ops(&["verify", &not_gzip_text]);
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked));
    assert_eq!(failure_kinds(&checked), ["not_an_archive"]);
    assert!(
        text(&checked).contains("gzip magic bytes 1f 8b (found 1b8b)"),
        "{}",
        text(&checked)
    );
    let as_json = ops(&["verify", "--json", &not_gzip_text]);
    assert_eq!(as_json.status.code(), Some(1), "{}", text(&as_json));
    let report: Value = serde_json::from_slice(&as_json.stdout).expect("JSON report");
    assert_eq!(report["failures"][0]["kind"], "not_an_archive", "{report}");
    let deep = ops(&["verify", "--deep", &not_gzip_text]);
    assert_eq!(deep.status.code(), Some(1), "{}", text(&deep));
    assert_eq!(failure_kinds(&deep), ["not_an_archive"]);
    assert_restore_refused(&not_gzip_text, nobody);

    // No verdict (2): a file that cannot be read at all.
    let missing = backups.path().join("missing.tar.gz");
    let checked = ops(&["verify", &missing.display().to_string()]);
    assert_eq!(checked.status.code(), Some(2), "{}", text(&checked));
    assert!(
        text(&checked).contains("no verdict") && text(&checked).contains("missing.tar.gz"),
        "{}",
        text(&checked)
    );
    let checked = ops(&["verify", &backups.path().display().to_string()]);
    assert_eq!(
        checked.status.code(),
        Some(2),
        "a directory: {}",
        text(&checked)
    );

    let pruned = ops(&[
        "backup",
        "prune",
        "--backups",
        &backups.path().display().to_string(),
        "--keep",
        "0",
        "--dry-run",
    ]);
    // The verified archive is kept even with --keep 0, aloud. (Whether broken.tar.gz is
    // readable enough to be pruned depends on where the flipped byte fell.)
    let said = text(&pruned);
    assert!(
        said.contains("it is the only verified archive")
            && !said.contains(&format!("would delete {archive_text}\n")),
        "{said}"
    );
}

#[test]
fn backups_are_private_deep_verify_counts_each_run_once_and_prune_keeps_the_last_verified() {
    use std::os::unix::fs::PermissionsExt;
    let server = KneoServer::start(ServerOptions::default());
    make_runs(&server.url, 2);
    let blocked: Value = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client")
                .post(format!("{}/v1/runs", server.url))
                .header("authorization", format!("Bearer {OPERATOR_KEY}"))
                .json(&json!({"spec_path": "specs/approval.yaml", "input": "a blocked run"}))
                .send()
                .await
                .expect("create")
                .json()
                .await
                .expect("json")
        });
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    let backups = tempfile::tempdir().expect("tempdir");
    let archive = |name: &str| backups.path().join(name).display().to_string();
    for name in ["a.tar.gz", "b.tar.gz", "c.tar.gz"] {
        let made = ops(&[
            "backup",
            "--state-dir",
            &state(&server.dir),
            "-o",
            &archive(name),
        ]);
        assert!(made.status.success(), "{}", text(&made));
    }
    let mode = std::fs::metadata(archive("a.tar.gz"))
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "archives are written 0600, like bundles"
    );

    let deep = ops(&["verify", "--deep", &archive("a.tar.gz")]);
    assert_eq!(deep.status.code(), Some(0), "{}", text(&deep));
    assert!(
        text(&deep).contains("3 run(s) read back"),
        "each of the 3 runs once, the blocked one too: {}",
        text(&deep)
    );

    let pruned = ops(&[
        "backup",
        "prune",
        "--backups",
        &backups.path().display().to_string(),
        "--keep",
        "1",
    ]);
    assert_eq!(pruned.status.code(), Some(0), "{}", text(&pruned));
    assert!(
        text(&pruned).contains("it is the only verified archive"),
        "{}",
        text(&pruned)
    );
    assert!(
        std::path::Path::new(&archive("a.tar.gz")).exists(),
        "the only verified archive stays"
    );
    assert!(!std::path::Path::new(&archive("b.tar.gz")).exists());
    assert!(
        std::path::Path::new(&archive("c.tar.gz")).exists(),
        "--keep 1 keeps the newest"
    );

    // A directory that holds other files but no kneo store is refused like a non-empty store.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::fs::write(elsewhere.path().join("notes.txt"), "mine").expect("write");
    let refused = ops(&[
        "restore",
        &archive("a.tar.gz"),
        "--state-dir",
        &elsewhere.path().display().to_string(),
        "--url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("1 entries that are not a kneo store, e.g. \"notes.txt\"")
            && text(&refused).contains("--force"),
        "{}",
        text(&refused)
    );
    assert!(!elsewhere.path().join("kneo_runs.sqlite").exists());
}
