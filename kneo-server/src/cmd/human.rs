//! `kneo human`: human tasks. `sweep` applies `on_timeout` to expired tasks and times out
//! overdue runs, once, against the configured store.

use clap::Subcommand;
use kneo_client::Exit;
use kneo_server::app;
use kneo_server::config::Config;

use super::{describe, with_runtime};

#[derive(Subcommand)]
pub enum HumanCommand {
    /// Apply on_timeout to expired human tasks and time out overdue runs, once.
    Sweep {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: HumanCommand) -> Exit {
    match command {
        HumanCommand::Sweep { json } => {
            with_runtime(|config| async move { sweep(config, json).await })
        }
    }
}

async fn sweep(config: Config, json: bool) -> Result<(), String> {
    let stores = app::open_stores(&config).await.map_err(describe)?;
    let state = app::build_state(config, stores);
    let now = kneo_server::clock::now_text();
    let overdue = state
        .stores
        .runs
        .overdue_runs(&now, 10_000)
        .await
        .map_err(|e| e.to_string())?;
    for run in &overdue {
        state.platform.time_out(&run.id, None).await;
    }
    let tasks = state
        .platform
        .sweep_human_tasks()
        .await
        .map_err(|e| format!("{e:?}"))?;
    state.service_events.flush().await;
    if json {
        println!(
            "{}",
            serde_json::json!({"timed_out_runs": overdue.len(), "human_tasks_processed": tasks})
        );
    } else {
        println!(
            "timed out {} overdue run(s); processed {tasks} expired human task(s)",
            overdue.len()
        );
    }
    Ok(())
}
