//! `kneo-ops backup`: a consistent snapshot of all state into one archive; `backup list` and
//! `backup prune` for the local archive directory.

use kneo_client::Exit;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use kneo_ops::archives;
use kneo_server::backup::{self, BackupOptions, Family};

use super::store::StoreArgs;
use super::store_progress::StoreProgress;

const AFTER_HELP: &str = "\
Examples:
  kneo-ops backup -o backups/kneo-$(date +%F-%H%M).tar.gz           # the embedded store in .kneo/
  kneo-ops backup --database-url \"$KNEO_SERV_DATABASE_URL\" -o nightly.tar.gz --json
  kneo-ops backup list --backups backups/
  kneo-ops backup prune --backups backups/ --keep 14

The service may keep running: SQLite is copied with its online backup API, Postgres is read in one
REPEATABLE READ transaction, and continuation files are reconciled with the snapshot. The store
says whose it is (kneo-server's or kneo-serv 1.2's); --from only insists on one.
Exit codes: 0 written, 1 refused or failed (the reason is printed), 2 bad usage.";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, after_help = AFTER_HELP)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The archive to write (.tar.gz); refused if it exists
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Whose store it must be; `auto` takes what the store is
    #[arg(long, value_enum, default_value_t = SourceFamily::Auto)]
    pub from: SourceFamily,
    /// Print a JSON summary instead of text
    #[arg(long)]
    pub json: bool,
}

/// The store a backup expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceFamily {
    Auto,
    /// A kneo-server store
    #[value(name = "kneo-server", alias = "kneo")]
    KneoServer,
    /// A kneo-serv 1.2 deployment's store
    #[value(name = "kneo-serv")]
    KneoServ,
}

impl SourceFamily {
    fn family(self) -> Option<Family> {
        match self {
            SourceFamily::Auto => None,
            SourceFamily::KneoServer => Some(Family::Kneo),
            SourceFamily::KneoServ => Some(Family::KneoServ),
        }
    }
}

#[derive(Subcommand)]
pub enum BackupCommand {
    /// List the archives in a directory: when, which version, verified or not
    List {
        #[arg(long, value_name = "DIR")]
        backups: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Delete all but the newest N archives of a directory
    Prune {
        #[arg(long, value_name = "DIR")]
        backups: PathBuf,
        #[arg(long, value_name = "N")]
        keep: usize,
        /// Only show what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(args: BackupArgs) -> Exit {
    match args.command {
        Some(BackupCommand::List { backups, json }) => list(&backups, json),
        Some(BackupCommand::Prune {
            backups,
            keep,
            dry_run,
        }) => prune(&backups, keep, dry_run),
        None => create(args).await,
    }
}

async fn create(args: BackupArgs) -> Exit {
    let Some(output) = args.output else {
        eprintln!("kneo-ops backup: name the archive to write with -o FILE");
        return Exit::Usage;
    };
    let location = args.store.location();
    let progress = StoreProgress::new("backup");
    let options = BackupOptions {
        family: args.from.family(),
        ..BackupOptions::default()
    };
    let result = backup::backup(&location, &output, &options, &|step| progress.show(&step)).await;
    progress.finish();
    match result {
        Ok(summary) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "archive": summary.archive,
                        "sha256": summary.sha256,
                        "bytes": summary.bytes,
                        "source": location.describe(),
                        "manifest": archives::read_manifest(&summary.archive).ok(),
                    })
                );
            } else {
                println!(
                    "wrote {} ({} bytes, sha256 {})",
                    summary.archive.display(),
                    summary.bytes,
                    summary.sha256
                );
                println!(
                    "store: {} ({}, schema version {})",
                    location.describe(),
                    summary.manifest.family.schema().product,
                    summary.manifest.schema_version
                );
                println!("checksum file: {}", summary.sidecar.display());
                println!("next: kneo-ops verify --deep {}", summary.archive.display());
            }
            Exit::Success
        }
        Err(error) => {
            eprintln!("kneo-ops backup: {error}");
            Exit::Failed
        }
    }
}

fn list(directory: &std::path::Path, json: bool) -> Exit {
    let archives = match archives::list(directory) {
        Ok(archives) => archives,
        Err(message) => {
            eprintln!("kneo-ops backup list: {message}");
            return Exit::Failed;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&archives).unwrap_or_default()
        );
        return Exit::Success;
    }
    if archives.is_empty() {
        println!("no archives in {}", directory.display());
    }
    for archive in &archives {
        match &archive.problem {
            Some(problem) => println!("{}  UNREADABLE: {problem}", archive.path.display()),
            None => println!(
                "{}  {}  {}  version {}  schema {}  {} runs  {}  {}",
                archive.path.display(),
                archive.family.map_or("?", |family| family.as_str()),
                archive
                    .created_at
                    .map(|at| at.to_rfc3339())
                    .unwrap_or_default(),
                archive.server_version.as_deref().unwrap_or("?"),
                archive.schema_version.unwrap_or_default(),
                archive.runs.unwrap_or_default(),
                archive.source.as_deref().unwrap_or("?"),
                if archive.verified {
                    "verified"
                } else {
                    "not verified (kneo-ops verify --deep)"
                },
            ),
        }
    }
    Exit::Success
}

fn prune(directory: &std::path::Path, keep: usize, dry_run: bool) -> Exit {
    let archives = match archives::list(directory) {
        Ok(archives) => archives,
        Err(message) => {
            eprintln!("kneo-ops backup prune: {message}");
            return Exit::Failed;
        }
    };
    let archives::PrunePlan { doomed, spared } = archives::prune_plan(&archives, keep);
    if let Some(spared) = spared {
        let why = if keep == 0 {
            "--keep 0 keeps no other; delete it by hand if that is really meant".to_string()
        } else {
            format!(
                "none of the {keep} newest passed verify --deep; verify a newer one to let it go"
            )
        };
        println!(
            "keeping {} as well: it is the only verified archive ({why})",
            spared.path.display()
        );
    }
    if doomed.is_empty() {
        println!(
            "nothing to prune: {} archive(s), keeping {keep}",
            archives.len()
        );
        return Exit::Success;
    }
    let mut failed = false;
    for archive in doomed {
        if dry_run {
            println!("would delete {}", archive.path.display());
        } else if let Err(error) = archives::delete(archive) {
            eprintln!(
                "kneo-ops backup prune: cannot delete {}: {error}",
                archive.path.display()
            );
            failed = true;
        } else {
            println!("deleted {}", archive.path.display());
        }
    }
    Exit::success_if(!failed)
}
