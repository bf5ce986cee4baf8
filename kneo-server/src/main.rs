//! `kneo`: the kneo run service and its local commands.
//!
//! One module per command group under `cmd/`; exit codes are [`kneo_client::Exit`] (0 done,
//! 1 the answer is no, 2 bad configuration or input), shared with kneo-ops and kneo-tui.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the request path allocates many small JSON values,
/// and glibc malloc showed up as a quarter of the CPU in profiles of the sync-run benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "\
Examples:
  kneo service serve --port 8000                 # the API with in-process workers, state in ./.kneo
  kneo spec validate specs/agent.yaml --json     # exit 0 valid, 1 invalid, 2 unreadable
  kneo config profile set prod --url https://kneo.internal:8000 --api-key-env KNEO_PROD_KEY
  kneo human sweep --json

Exit codes (kneo, kneo-ops, kneo-tui): 0 done; 1 the answer is no (invalid, failed, refused);
2 bad configuration, arguments or input. See docs/cli.md.";

#[derive(Parser)]
#[command(name = "kneo", version = kneo_server::VERSION, about = "The kneo run service: agent workflows over HTTP, with a durable queue",
    after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Service {
        #[command(subcommand)]
        command: cmd::service::ServiceCommand,
    },
    /// Work with spec files.
    Spec {
        #[command(subcommand)]
        command: cmd::spec::SpecCommand,
    },
    /// Service profiles (the connection settings kneo-ops and kneo-tui read too).
    Config {
        #[command(subcommand)]
        command: cmd::config::ConfigCommand,
    },
    /// Operate on human tasks.
    Human {
        #[command(subcommand)]
        command: cmd::human::HumanCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Service { command } => cmd::service::run(command),
        Command::Spec { command } => cmd::spec::run(command),
        Command::Config { command } => cmd::config::run(command),
        Command::Human { command } => cmd::human::run(command),
    };
    exit.into()
}
