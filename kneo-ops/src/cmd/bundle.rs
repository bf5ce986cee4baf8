//! `kneo-ops bundle`: read capture bundles back.

use kneo_client::Exit;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use kneo_triage::bundle::{self, Inspection};
use kneo_triage::units::format_size;

const INSPECT_EXAMPLES: &str = "\
Exit codes: 0 intact, 1 damaged (each checksum mismatch, missing, extra or dangerous entry is
named), 2 unreadable (not a tar.gz, or no readable manifest.json) or a kneo backup archive
rather than a bundle (it says so, and that `kneo-ops verify` reads it). Nothing is extracted: dangerous
entries (absolute paths, `..`, links) are reported, never written.

Examples:
  kneo-ops bundle inspect incident-42.tar.gz
  kneo-ops bundle inspect incident-42.tar.gz --json | jq '.manifest.items[] | select(.status != \"ok\")'";

/// Inspect capture bundles
#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(subcommand)]
    pub command: BundleCommand,
}

#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// Print a bundle's manifest and verify every file against it
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect {
        /// The bundle (tar.gz) to check
        file: PathBuf,
        /// Print the manifest and the verification result as JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: BundleArgs) -> Exit {
    match args.command {
        BundleCommand::Inspect { file, json } => inspect(&file, json),
    }
}

fn inspect(file: &std::path::Path, as_json: bool) -> Exit {
    if let Some(reason) =
        kneo_triage::archive::wrong_kind(file, &kneo_triage::archive::ArchiveKind::Bundle)
    {
        if as_json {
            println!(
                "{}",
                serde_json::json!({"intact": false, "kind": "backup", "error": reason})
            );
        }
        eprintln!("kneo-ops bundle inspect: {reason}");
        return Exit::Usage;
    }
    let inspection = match bundle::inspect(file) {
        Ok(inspection) => inspection,
        Err(error) => {
            if as_json {
                println!(
                    "{}",
                    serde_json::json!({"intact": false, "error": error.to_string()})
                );
            }
            eprintln!("kneo-ops bundle inspect: {error}");
            return Exit::Usage;
        }
    };
    if as_json {
        let document = serde_json::json!({
            "intact": inspection.is_intact(),
            "files_verified": inspection.files_verified,
            "problems": inspection.problems,
            "manifest": inspection.manifest,
        });
        match serde_json::to_string_pretty(&document) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("kneo-ops bundle inspect: cannot print JSON: {error}");
                return Exit::Usage;
            }
        }
    } else {
        print_human(file, &inspection);
    }
    Exit::success_if(inspection.is_intact())
}

fn print_human(file: &std::path::Path, inspection: &Inspection) {
    let manifest = &inspection.manifest;
    println!("Bundle {}", file.display());
    println!(
        "  created {} by {} {}",
        manifest.created_at, manifest.tool.name, manifest.tool.version
    );
    let service = manifest
        .service
        .as_ref()
        .map(|s| {
            format!(
                "{} {} (commit {})",
                s.service.as_deref().unwrap_or("?"),
                s.version.as_deref().unwrap_or("?"),
                s.commit.as_deref().unwrap_or("unknown")
            )
        })
        .unwrap_or_else(|| "did not answer".into());
    println!(
        "  target  {} — {service}; triage: {}",
        manifest.target,
        manifest.health.as_deref().unwrap_or("?")
    );
    let summary = &manifest.summary;
    println!(
        "  items   {} ({} ok, {} error, {} timeout, {} skipped), {} stored",
        summary.items,
        summary.ok,
        summary.error,
        summary.timeout,
        summary.skipped,
        format_size(summary.bytes)
    );
    println!();
    for item in &manifest.items {
        let error = item
            .error
            .as_deref()
            .map(|e| format!("  — {e}"))
            .unwrap_or_default();
        println!(
            "  {:<8} {:>9}  {}{error}",
            item.status.as_str(),
            format_size(item.bytes),
            item.path
        );
    }
    if manifest.redaction.total > 0 {
        println!();
        println!("  redacted {} value(s):", manifest.redaction.total);
        for rule in &manifest.redaction.rules {
            println!(
                "    {:<20} {:>5}  in {}",
                rule.rule,
                rule.count,
                rule.files.join(", ")
            );
        }
    }
    println!();
    if inspection.is_intact() {
        println!(
            "Intact: {} file(s) match their checksums; nothing missing, nothing extra.",
            inspection.files_verified
        );
    } else {
        println!("DAMAGED: {} problem(s):", inspection.problems.len());
        for problem in &inspection.problems {
            println!("  ✗ {problem}");
        }
    }
}
