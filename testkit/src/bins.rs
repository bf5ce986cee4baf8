//! Paths to the workspace's binaries for black-box tests, built on demand.
//!
//! Cargo only builds a package's binaries for that same package's integration tests, so a
//! test crate that runs `kneo` from another package would otherwise find a missing or stale
//! executable. [`bin_path`] therefore runs `cargo build --bin <name>` once per test process
//! (a no-op of well under a second when nothing changed) and then returns the path.
//! `cargo test` releases its build lock before it runs the tests, so this nested build does
//! not deadlock.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use crate::workspace;

/// The path of the workspace binary `name`, e.g. `bin_path("kneo")`.
///
/// The binary is built (once per process) into the target directory and profile of the
/// running test, so `cargo test --release` gets a release binary.
pub fn bin_path(name: &str) -> PathBuf {
    // Held during the build: concurrent tests wait for the first build instead of racing it.
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);

    let profile_dir = profile_dir();
    if !built.contains(name) {
        cargo_build(name, &profile_dir);
        built.insert(name.to_string());
    }

    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "`cargo build --bin {name}` succeeded but {path:?} does not exist; \
         is `{name}` a [[bin]] of a workspace member?"
    );
    path
}

/// `target/<profile>`: test executables live in `target/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|error| panic!("cannot locate the running test executable: {error}"));
    let exe_dir = exe
        .parent()
        .unwrap_or_else(|| panic!("test executable {exe:?} has no parent directory"));
    if exe_dir.file_name().is_some_and(|dir| dir == "deps") {
        exe_dir.parent().unwrap_or(exe_dir).to_path_buf()
    } else {
        exe_dir.to_path_buf()
    }
}

fn cargo_build(name: &str, profile_dir: &Path) {
    let target_dir = profile_dir
        .parent()
        .unwrap_or_else(|| panic!("profile dir {profile_dir:?} has no parent target dir"));
    let profile = profile_dir
        .file_name()
        .and_then(|dir| dir.to_str())
        .unwrap_or("debug");

    // CARGO is set by `cargo test`; it points at the cargo that built this test.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace::root())
        .args(["build", "--bin", name, "--target-dir"])
        .arg(target_dir)
        .args(profile_args(profile));

    let output = command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}; is cargo on PATH?"));
    if !output.status.success() {
        panic!(
            "{command:?} failed with {} while locating the `{name}` binary:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
}

/// Cargo names the `dev` profile's directory `debug`; every other profile uses its own name.
fn profile_args(profile_dir_name: &str) -> Vec<String> {
    match profile_dir_name {
        "debug" => Vec::new(),
        "release" => vec!["--release".to_string()],
        other => vec!["--profile".to_string(), other.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_is_the_parent_of_deps() {
        let dir = profile_dir();
        assert!(
            dir.join("deps").is_dir(),
            "{dir:?} should contain the deps/ directory of test executables"
        );
    }

    #[test]
    fn profile_dir_names_map_to_cargo_flags() {
        assert!(profile_args("debug").is_empty());
        assert_eq!(profile_args("release"), ["--release"]);
        assert_eq!(profile_args("bench-fast"), ["--profile", "bench-fast"]);
    }

    #[test]
    #[should_panic(expected = "while locating the `no-such-kneo-binary` binary")]
    fn unknown_binary_panics_with_the_cargo_error() {
        bin_path("no-such-kneo-binary");
    }
}
