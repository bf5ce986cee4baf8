//! `kneo-ops verify`: checks an archive without trusting it; `--deep` restores it into a scratch
//! store and runs the server's own queries there.

use kneo_client::Exit;
use std::path::PathBuf;

use clap::Args;
use kneo_server::backup::{self, ScratchTarget};
use kneo_triage::archive;

use super::store_progress::StoreProgress;

const AFTER_HELP: &str = "\
Examples:
  kneo-ops verify backups/nightly.tar.gz
  kneo-ops verify --deep backups/nightly.tar.gz                     # restore into a temporary SQLite
  kneo-ops verify --deep --database-url \"$SCRATCH_DSN\" nightly.tar.gz   # into a scratch Postgres schema

Checks: the manifest's own checksum, every file present and matching (sha256, size), no extra
files, row counts and a parse of every row, a schema version this binary knows. --deep also
writes <archive>.verified.json, which `kneo-ops rollback plan` looks for.
Exit codes: 0 ok; 1 failed, each failure named (any damage, down to a file that is not a kneo
archive at all: not_an_archive); 2 no verdict: the archive cannot be read (missing, permission
denied, a directory, an I/O error), or --deep cannot use its scratch store or write its record,
or the file is an escalation bundle rather than a backup (it says so, and that
`kneo-ops bundle inspect` reads it).";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct VerifyArgs {
    /// The archive to check
    pub archive: PathBuf,
    /// Also restore it into a scratch store and query it
    #[arg(long)]
    pub deep: bool,
    /// Scratch Postgres for --deep (a schema is created and dropped); default: a temporary SQLite
    #[arg(long, value_name = "DSN")]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: VerifyArgs) -> Exit {
    if let Some(reason) = archive::wrong_kind(&args.archive, &archive::ArchiveKind::Backup) {
        eprintln!("kneo-ops verify: {reason}");
        return Exit::Usage;
    }
    let progress = StoreProgress::new("verify");
    let show = |step: backup::Progress| progress.show(&step);
    let outcome = if args.deep {
        let scratch = match &args.database_url {
            Some(url) => ScratchTarget::Postgres { url: url.clone() },
            None => ScratchTarget::TemporarySqlite,
        };
        backup::verify_deep(&args.archive, scratch, &show)
            .await
            .map(|report| {
                let ok = report.ok;
                let failures = report.verify.failures.clone();
                let text = report
                    .checks
                    .iter()
                    .map(|check| {
                        format!(
                            "  {} {}: {}",
                            if check.ok { "ok  " } else { "FAIL" },
                            check.name,
                            check.detail
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                (
                    ok,
                    failures,
                    serde_json::to_value(&report).unwrap_or_default(),
                    format!("{text}\nrecord: {}", report.record.display()),
                )
            })
    } else {
        backup::verify(&args.archive, &show).await.map(|report| {
            (
                report.ok,
                report.failures.clone(),
                serde_json::to_value(&report).unwrap_or_default(),
                String::new(),
            )
        })
    };
    progress.finish();
    match outcome {
        Ok((ok, failures, json, extra)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
            } else {
                for failure in &failures {
                    println!(
                        "FAIL {}: {} ({})",
                        failure.kind.as_str(),
                        failure.detail,
                        failure.path.as_deref().unwrap_or("archive")
                    );
                }
                if !extra.is_empty() {
                    println!("{extra}");
                }
                let manifest = json
                    .get("manifest")
                    .or_else(|| json.get("verify").and_then(|verify| verify.get("manifest")))
                    .filter(|manifest| !manifest.is_null());
                if let Some(manifest) = manifest {
                    let family = manifest["family"]
                        .as_str()
                        .and_then(backup::Family::parse)
                        .unwrap_or(backup::Family::Kneo);
                    println!(
                        "archive of a {} {} store, schema version {}, taken {}",
                        family.schema().product,
                        manifest["source"]["kind"].as_str().unwrap_or("?"),
                        manifest["schema_version"],
                        manifest["created_at"].as_str().unwrap_or("?")
                    );
                }
                println!(
                    "{}: {}",
                    args.archive.display(),
                    if ok { "ok" } else { "FAILED" }
                );
            }
            Exit::success_if(ok)
        }
        // The library reports every problem of a file it could read, not being a kneo archive
        // included; an error means there is no verdict.
        Err(error) => {
            eprintln!("kneo-ops verify: no verdict: {error}");
            Exit::Usage
        }
    }
}
