//! `kneo-ops`: scripted operations for the kneo run service.
//!
//! One module per subcommand under [`cmd`]; the work itself lives in the `kneo_ops` library so
//! kneo-tui can share it. Exit codes are part of the interface (see each subcommand's --help).

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, as in the server: verify and backup parse and build millions of small rows, and
/// glibc malloc and free took about a tenth of verify's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "Scripted operations for the kneo run service: triage, escalation bundles, backup, verify, restore, rollback, and the move from kneo-serv 1.2 (import).";

const EXAMPLES: &str = "\
Examples:
  kneo-ops triage                                   # probe http://127.0.0.1:8000, print the verdict tree
  KNEO_SERV_API_KEY=... kneo-ops triage --url http://kneo.internal:8000 --json
  kneo-ops capture --run-id 3f2a... -o incident-42.tar.gz
  kneo-ops bundle inspect incident-42.tar.gz

The target comes from --url, else $KNEO_SERV_URL, else the active profile of the kneo CLI
($KNEO_SERV_PROFILES_PATH, default ~/.kneo_serv/profiles.json), else http://127.0.0.1:8000.
The API key from --api-key, else $KNEO_SERV_API_KEY, else the profile. Prefer the variable:
a key on the command line is visible to other users in `ps`.";

#[derive(Parser)]
#[command(name = "kneo-ops", version, about = ABOUT, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand. backup, verify, restore and rollback are added here by their owners, each
/// as one variant and one module under `cmd/`.
#[derive(Subcommand)]
enum Command {
    Triage(cmd::triage::TriageArgs),
    Capture(cmd::capture::CaptureArgs),
    Bundle(cmd::bundle::BundleArgs),
    /// Back up all state into one archive; list and prune archives
    Backup(cmd::backup::BackupArgs),
    /// Check an archive (--deep: restore it into a scratch store)
    Verify(cmd::verify::VerifyArgs),
    /// Restore an archive into an empty store (atomic, refuses anything risky)
    Restore(cmd::restore::RestoreArgs),
    /// Move a kneo-serv 1.2 archive into a kneo-server store (--dry-run: the plan)
    Import(cmd::import::ImportArgs),
    /// Roll back after a failed upgrade: plan, then run
    Rollback(cmd::rollback::RollbackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kneo-ops: cannot start the async runtime: {error}");
            return kneo_client::Exit::Usage.into();
        }
    };
    let code = match cli.command {
        Command::Triage(args) => runtime.block_on(cmd::triage::run(args)),
        Command::Capture(args) => runtime.block_on(cmd::capture::run(args)),
        Command::Bundle(args) => cmd::bundle::run(args),
        Command::Backup(args) => runtime.block_on(cmd::backup::run(args)),
        Command::Verify(args) => runtime.block_on(cmd::verify::run(args)),
        Command::Restore(args) => runtime.block_on(cmd::restore::run(args)),
        Command::Import(args) => runtime.block_on(cmd::import::run(args)),
        // The rollback steps run their own runtimes (they block on commands in between).
        Command::Rollback(args) => runtime.block_on(cmd::rollback::run(args)),
    };
    code.into()
}
