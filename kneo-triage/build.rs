//! Embeds the runbook (`docs/troubleshooting.md`, `docs/incident_response.md`) at build time.
//!
//! The files are copied into `OUT_DIR`, where `kneo_ops::runbook` includes them. A missing file
//! embeds an empty text and a warning: the tools then show section numbers without the text,
//! and the build never fails for want of documentation.

use std::env;
use std::fs;
use std::path::PathBuf;

const RUNBOOK_FILES: [&str; 2] = ["troubleshooting.md", "incident_response.md"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo:warning=OUT_DIR is not set; cargo always sets it for build scripts");
        return;
    };
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let docs = manifest_dir.join("..").join("docs");
    // Watching the directory notices a runbook file that appears after the first build.
    println!("cargo:rerun-if-changed={}", docs.display());
    for name in RUNBOOK_FILES {
        let source = docs.join(name);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = match fs::read_to_string(&source) {
            Ok(text) => text,
            Err(error) => {
                println!(
                    "cargo:warning=runbook file {} not embedded ({error}); kneo-ops will show section numbers without their text",
                    source.display()
                );
                String::new()
            }
        };
        if let Err(error) = fs::write(out_dir.join(name), text) {
            println!(
                "cargo:warning=cannot write the embedded runbook copy {name} into OUT_DIR: {error}"
            );
        }
    }
}
