//! `kneo-ops restore`: loads an archive into an empty store, atomically, after refusing
//! everything dangerous.

use kneo_client::Exit;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kneo_server::backup::{self, RestoreOptions};

use super::TargetArgs;
use super::import::{ImportFlags, import};
use super::store::StoreArgs;
use super::store_progress::StoreProgress;

const AFTER_HELP: &str = "\
Examples:
  kneo-ops restore backups/nightly.tar.gz --state-dir .kneo
  kneo-ops restore nightly.tar.gz --database-url \"$KNEO_SERV_DATABASE_URL\"      # SQLite → Postgres works too
  kneo-ops restore nightly.tar.gz --state-dir .kneo --force    # replace data (a safety backup is written first)
  kneo-ops restore kneo-serv.tar.gz --state-dir /srv/app/.kneo  # a kneo-serv 1.2 archive back into kneo-serv
  kneo-ops restore kneo-serv.tar.gz --into kneo-server --state-dir .kneo   # = kneo-ops import

Refuses: a target that holds data (without --force), a service that answers on --url or holds the
embedded store, an archive whose schema is newer than this binary knows, an archive that fails
verification. The restore is atomic (SQLite: a new file renamed into place; Postgres: one
transaction) and its row counts are checked against the manifest.
Exit codes: 0 restored, 1 refused or failed (the reason names the flag or the cause), 2 bad usage,
or an escalation bundle given instead of a backup (it says so).";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct RestoreArgs {
    pub archive: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Replace a target that holds data (its current contents are backed up first)
    #[arg(long)]
    pub force: bool,
    /// Where the safety backup goes (default: beside the target)
    #[arg(long, value_name = "DIR")]
    pub safety_dir: Option<PathBuf>,
    /// What to restore into: a store of the archive's own kind, or kneo-server (a kneo-serv 1.2
    /// archive is then imported, as `kneo-ops import` does)
    #[arg(long, value_enum, default_value_t = RestoreInto::Same)]
    pub into: RestoreInto,
    #[command(flatten)]
    pub import: ImportFlags,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub json: bool,
}

/// The kind of store a restore writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RestoreInto {
    /// The archive's own: kneo-server's, or kneo-serv 1.2's
    Same,
    /// kneo-server, importing a kneo-serv 1.2 archive
    #[value(name = "kneo-server", alias = "kneo")]
    KneoServer,
}

/// Whether a kneo service answers at the target URL (then restoring under it would be wrong).
pub async fn service_answers(target: &TargetArgs) -> Option<String> {
    let connection = target.connect(Duration::from_secs(2)).ok()?;
    let reply = connection.client.healthz().await;
    reply.result.is_ok().then(|| connection.url.clone())
}

/// Whether the URL check applies: always for Postgres (nothing else shows a service on it), and
/// for the embedded store only when a URL was named (flag, variable, profile). A service merely
/// answering at the default URL may serve any directory; one serving the target directory
/// holds its lock, which the restore refuses on its own.
fn url_check_applies(args: &RestoreArgs) -> bool {
    args.store.database_url.is_some()
        || args
            .target
            .connect(Duration::from_secs(2))
            .is_ok_and(|connection| connection.url_source != kneo_client::profile::Source::Default)
}

pub async fn run(args: RestoreArgs) -> Exit {
    if args.into == RestoreInto::KneoServer
        && backup::archive_family(&args.archive) == Some(backup::Family::KneoServ)
    {
        return import(
            &args.archive,
            &args.store,
            &args.import,
            args.force,
            args.safety_dir.clone(),
            &args.target,
            args.json,
        )
        .await;
    }
    if args.import.dry_run || args.import.keep_converted.is_some() {
        eprintln!(
            "kneo-ops restore: --dry-run and --keep-converted belong to an import: pass --into kneo-server with a kneo-serv 1.2 archive, or use kneo-ops import"
        );
        return Exit::Usage;
    }
    if let Some(reason) =
        kneo_triage::archive::wrong_kind(&args.archive, &kneo_triage::archive::ArchiveKind::Backup)
    {
        eprintln!("kneo-ops restore: refused: {reason}");
        return Exit::Usage;
    }
    let checked = if url_check_applies(&args) {
        service_answers(&args.target).await
    } else {
        None
    };
    if let Some(url) = checked {
        eprintln!(
            "kneo-ops restore: refused: a kneo service answers at {} — stop it first (restoring under a running \
             service would mix its writes with the archive), or point --url elsewhere if that is another service",
            kneo_server::redact::redacted_text(&url)
        );
        return Exit::Failed;
    }
    let location = args.store.location();
    let options = RestoreOptions {
        force: args.force,
        safety_dir: args.safety_dir.clone(),
    };
    let progress = StoreProgress::new("restore");
    let result = backup::restore(&args.archive, &location, &options, &|step| {
        progress.show(&step)
    })
    .await;
    progress.finish();
    match result {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "target": report.target,
                        "archive": report.archive,
                        "archive_sha256": report.archive_sha256,
                        "safety_backup": report.safety_backup,
                        "replaced": report.replaced,
                        "restored": report.restored,
                        "continuations": report.continuations,
                        "duration_ms": report.duration.as_millis(),
                    })
                );
            } else {
                println!(
                    "restored {} into {}",
                    report.archive.display(),
                    report.target
                );
                for (table, rows) in &report.restored {
                    println!("  {table}: {rows} rows");
                }
                // kneo-serv also has a table named continuations (listed above).
                let files = if report.restored.contains_key("continuations") {
                    "continuation files"
                } else {
                    "continuations"
                };
                println!("  {files}: {}", report.continuations);
                if let Some(safety) = &report.safety_backup {
                    println!("the previous contents were saved to {}", safety.display());
                }
            }
            Exit::Success
        }
        Err(error) => {
            eprintln!("kneo-ops restore: refused or failed: {error}");
            Exit::Failed
        }
    }
}
