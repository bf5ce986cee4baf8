//! Finds the root of the cargo workspace the tests run in, so other modules can resolve paths.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The directory holding the workspace's `Cargo.toml` (the one with a `[workspace]` table).
///
/// Search starts from the crate under test (`CARGO_MANIFEST_DIR`, set by `cargo test` at
/// run time), then from this crate's own source directory, then from the test executable;
/// any of them sits inside the workspace, so walking up from it finds the root.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(find_root)
}

fn find_root() -> PathBuf {
    let starts = search_starts();
    starts
        .iter()
        .find_map(|start| start.ancestors().find(|dir| is_workspace_root(dir)))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            panic!(
                "no cargo workspace root (a Cargo.toml containing `[workspace]`) above any of {starts:?}; \
                 run the tests with `cargo test` from inside the kneo workspace"
            )
        })
}

fn search_starts() -> Vec<PathBuf> {
    let mut starts = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    starts
}

fn is_workspace_root(dir: &Path) -> bool {
    fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.lines().any(|line| line.trim() == "[workspace]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_directory_with_the_workspace_manifest() {
        let root = root();
        assert!(is_workspace_root(root), "{root:?} is not a workspace root");
        assert!(
            root.join("testkit").is_dir(),
            "{root:?} does not contain testkit/"
        );
    }
}
