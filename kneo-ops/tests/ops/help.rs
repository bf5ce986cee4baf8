//! Every subcommand explains itself, with examples and exit codes.

use crate::support::*;

#[test]
fn every_subcommand_has_help_with_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (top, _) = run_kneo_ops(&["--help"], &[], dir.path());
    let top = text(&top.stdout);
    for word in [
        "triage",
        "capture",
        "bundle",
        "Examples:",
        "KNEO_SERV_API_KEY",
    ] {
        assert!(top.contains(word), "kneo-ops --help lacks {word}:\n{top}");
    }
    for (args, needles) in [
        (
            vec!["triage", "--help"],
            vec![
                "0  healthy",
                "3  cannot judge: fix the tool's access first",
                "--json",
                "--queued-max-age",
                "Examples:",
            ],
        ),
        (
            vec!["capture", "--help"],
            vec![
                "--run-id",
                "--budget",
                "--max-bytes",
                "manifest.json",
                "Exit codes: 0 every item ok",
                "Examples:",
            ],
        ),
        (
            vec!["import", "--help"],
            vec![
                "--dry-run",
                "kneo-serv",
                "Exit codes: 0 imported",
                "Examples:",
            ],
        ),
        (
            vec!["backup", "--help"],
            vec!["--from", "kneo-serv", "Examples:"],
        ),
        (
            vec!["bundle", "inspect", "--help"],
            vec!["Exit codes: 0 intact, 1 damaged", "Examples:"],
        ),
    ] {
        let (output, _) = run_kneo_ops(&args, &[], dir.path());
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let help = text(&output.stdout);
        for needle in needles {
            assert!(
                help.contains(needle),
                "{args:?} help lacks {needle:?}:\n{help}"
            );
        }
    }
    let (version, _) = run_kneo_ops(&["--version"], &[], dir.path());
    assert!(
        text(&version.stdout).starts_with("kneo-ops "),
        "{}",
        text(&version.stdout)
    );
}
