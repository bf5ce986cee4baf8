//! `kneo-ops import` (also `restore --into kneo-server`): moves a kneo-serv 1.2 archive into a
//! kneo-server store, with a dry run that prints the plan and its counts.

use std::path::PathBuf;

use clap::Args;
use kneo_client::Exit;
use kneo_server::backup::{self, ImportOptions, ImportReport};

use super::TargetArgs;
use super::restore::service_answers;
use super::store::StoreArgs;
use super::store_progress::StoreProgress;

const AFTER_HELP: &str = "\
Examples:
  kneo-ops backup --from kneo-serv --state-dir /srv/app/.kneo -o kneo-serv.tar.gz
  kneo-ops import kneo-serv.tar.gz --state-dir .kneo --dry-run       # the plan and its counts
  kneo-ops import kneo-serv.tar.gz --database-url \"$KNEO_SERV_DATABASE_URL\"

Every run (with its trace and checkpoints), queue record, audit event, idempotency record and
project metadata entry of the kneo-serv archive is converted through kneo-server's record types;
blocked runs keep their continuations (kneo-server resumes them), queued runs stay queued
(kneo-server's workers execute them). What kneo-server cannot hold is listed, never dropped
quietly. The converted archive is restored like any backup: refused into a store that holds data
(without --force) or under a running service, atomic, verified, counts checked.
Exit codes: 0 imported (or planned), 1 refused or failed (the reason is printed), 2 bad usage.";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct ImportArgs {
    /// The kneo-serv 1.2 archive (from `kneo-ops backup --from kneo-serv`)
    pub archive: PathBuf,
    /// The kneo-server store to import into
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub options: ImportFlags,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub json: bool,
}

/// The flags `import` shares with `restore --into kneo-server`.
#[derive(Args, Clone, Debug, Default)]
pub struct ImportFlags {
    /// Print the plan and its counts; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the converted kneo-server archive at FILE (it verifies and restores like a backup)
    #[arg(long, value_name = "FILE")]
    pub keep_converted: Option<PathBuf>,
}

pub async fn run(args: ImportArgs) -> Exit {
    import(
        &args.archive,
        &args.store,
        &args.options,
        false,
        None,
        &args.target,
        args.json,
    )
    .await
}

/// Runs an import and prints its report; the exit code.
pub async fn import(
    archive: &std::path::Path,
    store: &StoreArgs,
    flags: &ImportFlags,
    force: bool,
    safety_dir: Option<PathBuf>,
    target: &TargetArgs,
    json: bool,
) -> Exit {
    if !flags.dry_run
        && let Some(url) = service_answers(target).await
    {
        eprintln!(
            "kneo-ops import: refused: a kneo service answers at {} — stop it first, or point --url elsewhere if that is another service",
            kneo_server::redact::redacted_text(&url)
        );
        return Exit::Failed;
    }
    let location = store.location();
    let options = ImportOptions {
        dry_run: flags.dry_run,
        force,
        safety_dir,
        keep_converted: flags.keep_converted.clone(),
    };
    let progress = StoreProgress::new("import");
    let result = backup::import(archive, &location, &options, &|step| progress.show(&step)).await;
    progress.finish();
    match result {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", describe(&report, force));
            }
            Exit::Success
        }
        Err(error) => {
            eprintln!("kneo-ops import: refused or failed: {error}");
            Exit::Failed
        }
    }
}

/// The report as text: the plan, what is not carried, the notes, and what happened.
fn describe(report: &ImportReport, force: bool) -> String {
    let plan = &report.plan;
    let mut text = format!(
        "{} {} (kneo-serv 1.2, {}, backed up {}) into kneo-server store {}\n",
        if report.dry_run {
            "plan: import"
        } else {
            "imported"
        },
        report.archive.display(),
        plan.source,
        plan.backed_up_at,
        report.target
    );
    text.push_str("  kneo-serv archive:");
    for (table, rows) in &plan.found {
        text.push_str(&format!(" {table} {rows},"));
    }
    text.pop();
    text.push('\n');
    text.push_str("  carried into kneo-server:\n");
    for (table, rows) in &plan.carried {
        text.push_str(&format!("    {table}: {rows}\n"));
    }
    text.push_str(&format!(
        "    continuations (human tasks): {}\n",
        plan.continuations
    ));
    if plan.not_carried.is_empty() {
        text.push_str("  not carried: nothing\n");
    } else {
        text.push_str(&format!("  not carried: {}\n", plan.not_carried.len()));
        for item in &plan.not_carried {
            text.push_str(&format!("    {} {}: {}\n", item.kind, item.id, item.reason));
        }
    }
    for note in &plan.notes {
        text.push_str(&format!("  note: {note}\n"));
    }
    let holds: Vec<String> = report
        .replaced
        .iter()
        .filter(|(table, rows)| **rows > 0 && !matches!(table.as_str(), "schema_migrations"))
        .map(|(table, rows)| format!("{rows} {table}"))
        .collect();
    if report.dry_run {
        if holds.is_empty() {
            text.push_str("  target: empty\n");
        } else {
            text.push_str(&format!(
                "  target holds data ({}): the import is refused without --force{}\n",
                holds.join(", "),
                if force { " (given)" } else { "" }
            ));
        }
        text.push_str("dry run: nothing was written\n");
    } else {
        if let Some(safety) = &report.safety_backup {
            text.push_str(&format!(
                "the previous contents were saved to {}\n",
                safety.display()
            ));
        }
        text.push_str(
            "next: start kneo-server on it and check: kneo-ops triage; kneo-ops verify --deep on a fresh backup (runbook: Moving from kneo-serv 1.2 to kneo-server)\n",
        );
    }
    if let Some(kept) = &report.converted_archive {
        text.push_str(&format!("converted archive: {}\n", kept.display()));
    }
    text
}
