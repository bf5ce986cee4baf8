//! `kneo spec`: work with spec files offline. `validate` checks a file against this build's
//! registries (exit 0 valid, 1 invalid, 2 unreadable).

use std::path::PathBuf;

use clap::Subcommand;
use kneo_client::Exit;

#[derive(Subcommand)]
pub enum SpecCommand {
    /// Validate a spec file: exit 0 valid, 1 invalid, 2 unreadable.
    Validate {
        path: PathBuf,
        /// Print `{valid, diagnostics}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: SpecCommand) -> Exit {
    match command {
        SpecCommand::Validate { path, json } => validate_file(&path, json),
    }
}

/// `kneo spec validate`: validates a file against this build's registries, offline.
fn validate_file(path: &std::path::Path, json: bool) -> Exit {
    use kneo_server::spec::parse::{SpecLimits, parse_yaml};
    let limits = SpecLimits::default();
    let outcome = std::fs::read(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
        .and_then(|bytes| {
            parse_yaml(&bytes, &limits).map_err(|error| format!("{}: {error}", path.display()))
        });
    let value = match outcome {
        Ok(value) => value,
        Err(message) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "error": message, "diagnostics": []})
                );
            } else {
                eprintln!("kneo: {message}");
            }
            return Exit::Usage;
        }
    };
    let engine = kneo_server::engine::Engine::with_builtins();
    // Skill sources must lie in the spec root the service would use: KNEO_SERV_SPEC_ROOT, else
    // the working directory (as kneo-serv's CLI does).
    let root = std::env::var_os("KNEO_SERV_SPEC_ROOT")
        .filter(|root| !root.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let validation =
        kneo_server::platform::specs::validate_for_this_build(&value, &engine, Some(&root));
    let valid = validation.valid();
    if json {
        let report = serde_json::json!({
            "agent_name": validation.spec.as_ref().map(|s| s.agent.name.clone()),
            "workflow_name": validation.spec.as_ref().and_then(|s| s.workflow.as_ref()).and_then(|w| w.name.clone()),
        });
        println!(
            "{}",
            serde_json::json!({"valid": valid, "diagnostics": validation.diagnostics, "report": report})
        );
    } else {
        for diagnostic in &validation.diagnostics {
            let severity = format!("{:?}", diagnostic.severity).to_lowercase();
            println!(
                "{severity} {} at {}: {}",
                diagnostic.code,
                if diagnostic.path.is_empty() {
                    "(document)"
                } else {
                    &diagnostic.path
                },
                diagnostic.message
            );
            if let Some(suggestion) = &diagnostic.suggestion {
                println!("  fix: {suggestion}");
            }
        }
        println!(
            "{}: {}",
            path.display(),
            if valid {
                "valid"
            } else {
                "invalid (runbook § 6.1)"
            }
        );
    }
    Exit::success_if(valid)
}
