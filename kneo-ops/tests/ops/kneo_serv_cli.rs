//! `kneo-ops backup`, `verify`, `restore` and `import` on a kneo-serv 1.2 store (the fixture
//! recorded from the real kneo-serv), as a user runs them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{run_kneo_ops, text};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kneo-server/tests/fixtures/kneo-serv-1.2/sqlite")
}

/// A copy of the recorded kneo-serv store in `<dir>/app/.kneo`.
fn kneo_serv_store(dir: &Path) -> PathBuf {
    let state_dir = dir.join("app/.kneo");
    std::fs::create_dir_all(state_dir.join("continuations")).expect("state dir");
    std::fs::copy(
        fixture().join("kneo_runs.sqlite"),
        state_dir.join("kneo_runs.sqlite"),
    )
    .expect("copy");
    for entry in std::fs::read_dir(fixture().join("continuations")).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(
            entry.path(),
            state_dir.join("continuations").join(entry.file_name()),
        )
        .expect("copy");
    }
    state_dir
}

fn both(output: &std::process::Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

#[test]
fn a_kneo_serv_store_is_backed_up_verified_restored_and_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path();
    let state_dir = kneo_serv_store(work).display().to_string();
    // Nothing listens here: the "is a service running on the target" check must say no.
    let nobody = "http://127.0.0.1:9";

    let (refused, _) = run_kneo_ops(
        &[
            "backup",
            "--from",
            "kneo-server",
            "--state-dir",
            &state_dir,
            "-o",
            "x.tar.gz",
        ],
        &[],
        work,
    );
    assert_eq!(refused.status.code(), Some(1), "{}", both(&refused));
    assert!(both(&refused).contains("kneo-serv"), "{}", both(&refused));

    let (backed_up, _) = run_kneo_ops(
        &[
            "backup",
            "--state-dir",
            &state_dir,
            "-o",
            "kneo-serv.tar.gz",
        ],
        &[],
        work,
    );
    assert_eq!(backed_up.status.code(), Some(0), "{}", both(&backed_up));
    assert!(text(&backed_up.stdout).contains("kneo-serv 1.2, schema version 4"));

    let (verified, _) = run_kneo_ops(&["verify", "--deep", "kneo-serv.tar.gz"], &[], work);
    assert_eq!(verified.status.code(), Some(0), "{}", both(&verified));
    assert!(
        text(&verified.stdout).contains("archive of a kneo-serv 1.2 sqlite store"),
        "{}",
        both(&verified)
    );

    let (listed, _) = run_kneo_ops(&["backup", "list", "--backups", "."], &[], work);
    assert!(
        text(&listed.stdout).contains("kneo-serv"),
        "{}",
        both(&listed)
    );

    // Back into kneo-serv: a fresh state directory it would serve.
    let (restored, _) = run_kneo_ops(
        &[
            "restore",
            "kneo-serv.tar.gz",
            "--state-dir",
            "back/.kneo",
            "--url",
            nobody,
        ],
        &[],
        work,
    );
    assert_eq!(restored.status.code(), Some(0), "{}", both(&restored));
    assert!(work.join("back/.kneo/kneo_runs.sqlite").is_file());
    assert_eq!(
        std::fs::read_dir(work.join("back/.kneo/continuations"))
            .expect("continuations")
            .count(),
        2
    );

    // The plan, as JSON, writes nothing.
    let (planned, _) = run_kneo_ops(
        &[
            "import",
            "kneo-serv.tar.gz",
            "--state-dir",
            "server/.kneo",
            "--dry-run",
            "--json",
        ],
        &[],
        work,
    );
    assert_eq!(planned.status.code(), Some(0), "{}", both(&planned));
    let plan: Value = serde_json::from_slice(&planned.stdout).expect("JSON");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["plan"]["carried"]["runs"], 8, "{plan:#}");
    assert_eq!(plan["plan"]["continuations"], 2);
    assert!(
        plan["plan"]["not_carried"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert!(!work.join("server/.kneo/kneo_runs.sqlite").exists());

    let (planned, _) = run_kneo_ops(
        &[
            "import",
            "kneo-serv.tar.gz",
            "--state-dir",
            "server/.kneo",
            "--dry-run",
        ],
        &[],
        work,
    );
    let plan = text(&planned.stdout);
    for needle in [
        "plan: import",
        "runs: 8",
        "not carried: nothing",
        "dry run: nothing was written",
    ] {
        assert!(plan.contains(needle), "{needle:?} not in:\n{plan}");
    }

    // `restore --into kneo-server` is the import.
    let (imported, _) = run_kneo_ops(
        &[
            "restore",
            "kneo-serv.tar.gz",
            "--into",
            "kneo-server",
            "--state-dir",
            "server/.kneo",
            "--url",
            nobody,
        ],
        &[],
        work,
    );
    assert_eq!(imported.status.code(), Some(0), "{}", both(&imported));
    assert!(
        text(&imported.stdout).starts_with("imported"),
        "{}",
        both(&imported)
    );
    let (again, _) = run_kneo_ops(
        &[
            "import",
            "kneo-serv.tar.gz",
            "--state-dir",
            "server/.kneo",
            "--url",
            nobody,
        ],
        &[],
        work,
    );
    assert_eq!(again.status.code(), Some(1), "{}", both(&again));
    assert!(both(&again).contains("--force"), "{}", both(&again));

    // The kneo-server store it made backs up as a kneo-server store.
    let (server_backup, _) = run_kneo_ops(
        &[
            "backup",
            "--from",
            "kneo-server",
            "--state-dir",
            "server/.kneo",
            "-o",
            "server.tar.gz",
        ],
        &[],
        work,
    );
    assert_eq!(
        server_backup.status.code(),
        Some(0),
        "{}",
        both(&server_backup)
    );
    let (not_importable, _) = run_kneo_ops(
        &[
            "import",
            "server.tar.gz",
            "--state-dir",
            "other/.kneo",
            "--url",
            nobody,
        ],
        &[],
        work,
    );
    assert_eq!(not_importable.status.code(), Some(1));
    assert!(
        both(&not_importable).contains("kneo-ops restore"),
        "{}",
        both(&not_importable)
    );
}
