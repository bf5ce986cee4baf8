//! `kneo-ops bundle inspect` exit codes on intact, tampered and unreadable bundles.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::support::*;

/// A bundle captured from a closed port: quick, and it has files and a manifest.
fn small_bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let url = format!("http://127.0.0.1:{CLOSED_PORT}");
    let (output, _) = run_kneo_ops(
        &[
            "capture",
            "--url",
            &url,
            "--budget",
            "10s",
            "-o",
            "small.tar.gz",
        ],
        &[],
        dir,
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    dir.join("small.tar.gz")
}

fn rewrite(
    source: &std::path::Path,
    target: &std::path::Path,
    change: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: Option<(&str, &[u8])>,
) {
    let files = read_bundle(source);
    let file = std::fs::File::create(target).expect("create");
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    for (path, data) in files {
        if let Some(data) = change(&path, data) {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, &path, data.as_slice())
                .expect("append");
        }
    }
    if let Some((path, data)) = extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, data)
            .expect("append");
    }
    builder
        .into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .flush()
        .expect("flush");
}

#[test]
fn inspect_exits_0_intact_1_damaged_2_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = small_bundle(dir.path());
    let (intact, _) = run_kneo_ops(&["bundle", "inspect", "small.tar.gz"], &[], dir.path());
    assert_eq!(intact.status.code(), Some(0), "{}", text(&intact.stdout));
    assert!(
        text(&intact.stdout).contains("service/healthz.json"),
        "the items are listed"
    );

    let tampered = dir.path().join("tampered.tar.gz");
    rewrite(
        &bundle,
        &tampered,
        |path, data| match path {
            "host/uname.txt" => Some(b"Linux tampered".to_vec()),
            "host/os-release.txt" => None,
            _ => Some(data),
        },
        Some(("host/smuggled.txt", b"x")),
    );
    let (damaged, _) = run_kneo_ops(&["bundle", "inspect", "tampered.tar.gz"], &[], dir.path());
    let report = text(&damaged.stdout);
    assert_eq!(damaged.status.code(), Some(1), "{report}");
    assert!(report.contains("host/uname.txt: sha256"), "{report}");
    assert!(
        report.contains("host/os-release.txt: listed in the manifest but missing"),
        "{report}"
    );
    assert!(
        report.contains("host/smuggled.txt: in the archive but not listed"),
        "{report}"
    );

    let (as_json, _) = run_kneo_ops(
        &["bundle", "inspect", "tampered.tar.gz", "--json"],
        &[],
        dir.path(),
    );
    let document: serde_json::Value = serde_json::from_slice(&as_json.stdout).expect("json");
    assert_eq!(document["intact"], false);
    assert_eq!(document["problems"].as_array().map(Vec::len), Some(3));

    std::fs::write(dir.path().join("garbage.tar.gz"), b"not a bundle").expect("write");
    let (unreadable, _) = run_kneo_ops(&["bundle", "inspect", "garbage.tar.gz"], &[], dir.path());
    assert_eq!(unreadable.status.code(), Some(2));
    assert!(
        text(&unreadable.stderr).contains("not a readable tar.gz"),
        "{}",
        text(&unreadable.stderr)
    );
}

#[test]
fn capture_refuses_to_overwrite_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("taken.tar.gz"), b"keep").expect("write");
    let url = format!("http://127.0.0.1:{CLOSED_PORT}");
    let (output, _) = run_kneo_ops(
        &["capture", "--url", &url, "-o", "taken.tar.gz"],
        &[],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("already exists"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("taken.tar.gz")).expect("read"),
        b"keep"
    );
}

#[test]
fn a_bundle_and_a_backup_say_what_they_are_to_the_commands_that_read_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = small_bundle(dir.path());
    let server = kneo_testkit::server::KneoServer::start(Default::default());
    let state_dir = server.dir.join(".kneo").display().to_string();
    let (made, _) = run_kneo_ops(
        &["backup", "--state-dir", &state_dir, "-o", "backup.tar.gz"],
        &[],
        dir.path(),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    drop(server);
    let bundle = bundle.display().to_string();

    for args in [
        vec!["verify", bundle.as_str()],
        vec!["restore", bundle.as_str(), "--state-dir", "restored"],
    ] {
        let (output, _) = run_kneo_ops(&args, &[], dir.path());
        let said = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.contains("is an escalation bundle (kneo-ops capture), not a backup")
                && said.contains("kneo-ops bundle inspect"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("FAIL"), "{said}");
    }
    assert!(
        !dir.path().join("restored").exists(),
        "nothing was restored"
    );

    let (inspected, _) = run_kneo_ops(&["bundle", "inspect", "backup.tar.gz"], &[], dir.path());
    let said = text(&inspected.stderr);
    assert_eq!(inspected.status.code(), Some(2), "{said}");
    assert!(
        said.contains("is a kneo backup archive (kneo-ops backup), not an escalation bundle")
            && said.contains("kneo-ops verify"),
        "{said}"
    );

    let tui = std::process::Command::new(kneo_testkit::bins::bin_path("kneo-tui"))
        .args(["--bundle", "backup.tar.gz"])
        .current_dir(dir.path())
        .output()
        .expect("run kneo-tui");
    let said = text(&tui.stderr);
    assert_eq!(tui.status.code(), Some(2), "{said}");
    assert!(said.contains("is a kneo backup archive"), "{said}");
}
