//! The docs (`docs/`, `README.md`) name no path of the machine they were written on.
//!
//! A reader runs the commands in the docs from their own checkout, so a command that names
//! `/home/alice/src/kneo/target/release/kneo` works on one machine only. Commands say
//! `target/release/kneo`, `cargo run`, or a variable set from the checkout (`BIN="$PWD/target/release"`).
//!
//! The rule, applied to every absolute path (`/…`) and home-relative path (`~/…`) in the text:
//!
//! 1. A path that starts in a home or checkout directory of a development machine (`/home/`,
//!    `/root/`, `/Users/`, `/work/`) is the development machine's.
//! 2. A path that runs through a directory only a checkout has is a checkout's, wherever it
//!    starts (`/tmp/build/target/debug/kneo` too): a build directory (`target/release`,
//!    `target/debug`), a directory named like one of the workspace's members (read from the root
//!    `Cargo.toml`), or `.git`.
//!
//! Everything else passes: API routes (`/v1/runs`), system paths (`/usr/lib/postgresql`,
//! `/proc/<pid>/cwd`), deployment examples (`/srv/kneo`, `/var/backups/kneo`), scratch files
//! (`/tmp/bench`), and URLs (`http://127.0.0.1:8800/v1/runs` is not a path on disk).

// A test target: a failing check panics with what was expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use kneo_testkit::workspace;

mod readme;

/// First components that are a person's home or a checkout location, not a deployment's.
const DEVELOPMENT_ROOTS: [&str; 4] = ["home", "root", "Users", "work"];

/// Cargo profile directories that sit under `target/`.
const BUILD_PROFILES: [&str; 2] = ["release", "debug"];

/// Why a path in the docs belongs to a development machine, or `None` when it does not.
fn machine_path_reason(path: &str, members: &[String]) -> Option<String> {
    let components: Vec<&str> = path
        .trim_start_matches('~')
        .split('/')
        .filter(|component| !component.is_empty())
        .collect();
    if path.starts_with('/')
        && let Some(first) = components.first()
        && DEVELOPMENT_ROOTS.contains(first)
    {
        return Some(format!(
            "it starts in /{first}/, a development machine's directory"
        ));
    }
    for pair in components.windows(2) {
        if pair[0] == "target" && BUILD_PROFILES.contains(&pair[1]) {
            return Some(format!(
                "it runs through a build directory (target/{})",
                pair[1]
            ));
        }
    }
    components.iter().find_map(|component| {
        if *component == ".git" {
            Some("it runs through a checkout's .git directory".to_string())
        } else if members.iter().any(|member| member == component) {
            Some(format!("it runs through {component}/, a workspace member"))
        } else {
            None
        }
    })
}

/// Characters after which a `/` or `~/` starts a path (rather than continuing a word,
/// a variable like `$BASE/v1`, or a URL like `http://host/…`).
fn starts_a_path(previous: Option<char>) -> bool {
    match previous {
        None => true,
        Some(c) => c.is_whitespace() || "`'\"([=,".contains(c),
    }
}

/// Characters that end a path in running text, code and tables.
fn ends_a_path(c: char) -> bool {
    c.is_whitespace() || "`'\")],;|<>".contains(c)
}

/// The absolute and home-relative paths in one line of text.
fn paths_in(line: &str) -> Vec<&str> {
    let mut paths = Vec::new();
    let mut previous = None;
    let mut chars = line.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let next = chars.peek().map(|&(_, next)| next);
        let opens = match c {
            '/' => next != Some('/'),
            '~' => next == Some('/'),
            _ => false,
        };
        if opens && starts_a_path(previous) {
            let rest = &line[start..];
            let end = rest.find(ends_a_path).unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(['.', ':']);
            if path.len() > 1 {
                paths.push(path);
            }
            // Skip the path, so a `/` inside it does not start another one.
            while chars.peek().is_some_and(|&(index, _)| index < start + end) {
                chars.next();
            }
            previous = rest[..end].chars().last();
            continue;
        }
        previous = Some(c);
    }
    paths
}

/// The workspace's member directories, from the `members = [...]` line of the root manifest.
fn workspace_members(root: &Path) -> Vec<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("read the root Cargo.toml");
    let line = manifest
        .lines()
        .find(|line| line.trim_start().starts_with("members"))
        .expect("the root Cargo.toml has a one-line `members = [...]`");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(|member| member.rsplit('/').next().unwrap_or(member).to_string())
        .collect()
}

/// `README.md` and every file under `docs/`, recursively.
fn doc_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut directories = vec![root.join("docs")];
    while let Some(directory) = directories.pop() {
        let entries =
            fs::read_dir(&directory).unwrap_or_else(|e| panic!("read {directory:?}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                directories.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn docs_name_no_path_of_a_development_machine() {
    let root = workspace::root();
    let members = workspace_members(root);
    assert!(
        members.iter().any(|member| member == "kneo-server"),
        "members read from Cargo.toml: {members:?}"
    );
    let mut findings = Vec::new();
    let files = doc_files(root);
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (index, line) in text.lines().enumerate() {
            for path in paths_in(line) {
                if let Some(reason) = machine_path_reason(path, &members) {
                    findings.push(format!("{shown}:{}: {path} ({reason})", index + 1));
                }
            }
        }
    }
    assert!(files.len() > 5, "found only {files:?}");
    assert!(
        findings.is_empty(),
        "docs name paths of a development machine; write them relative to the checkout \
         (`target/release/kneo`, `cargo run -p …`, or BIN=\"$PWD/target/release\" set in the \
         checkout):\n  {}",
        findings.join("\n  ")
    );
}

#[test]
fn the_rule_flags_checkout_paths_and_passes_deployment_and_api_paths() {
    let members: Vec<String> = ["kneo-server", "kneo-ops", "testkit", "tests"]
        .map(String::from)
        .to_vec();
    let flagged = |line: &str| -> Vec<String> {
        paths_in(line)
            .into_iter()
            .filter(|path| machine_path_reason(path, &members).is_some())
            .map(String::from)
            .collect()
    };
    for line in [
        "  /work/main/target/release/kneo service serve --port 8800 &",
        "run `/home/alice/src/kneo/kneo-server/src/main.rs`",
        "KNEO=/tmp/build/target/debug/kneo-ops",
        "see (/root/kneo/README.md)",
        "cp ~/src/kneo/target/release/kneo /usr/local/bin/",
        "/opt/checkout/kneo-ops/tests/ops/support.rs",
        "/srv/src/kneo/.git/config",
    ] {
        assert_eq!(flagged(line).len(), 1, "{line:?} should be flagged once");
    }
    for line in [
        "curl -s \"$BASE/v1/runs?status=blocked\" > /tmp/blocked",
        "`GET /v1/runs/{run_id}/trace` and `/readyz`",
        "KNEO_SERV_DATABASE_URL=postgres://postgres@127.0.0.1:5499/kneo",
        "export PATH=/usr/lib/postgresql/16/bin:$PATH",
        "ls -l /proc/<pid>/cwd; cat /etc/os-release",
        "cd /srv/kneo && kneo-ops backup --out /var/backups/kneo/nightly.tar.gz",
        "mkdir -p /tmp/bench/specs && cd /tmp/bench",
        "target/release/kneo service serve; \"$BIN/kneo-load\" --url http://127.0.0.1:8800",
        "see https://example.org/work/home/target/release/",
        "KNEO_BENCH_KEEP=/tmp/pg100k.tar.gz",
    ] {
        assert_eq!(flagged(line), Vec::<String>::new(), "{line:?} should pass");
    }
}
