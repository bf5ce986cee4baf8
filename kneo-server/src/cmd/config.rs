//! `kneo config profile set | use | list | show | delete`: the service profiles that `kneo`,
//! `kneo-ops --profile` and `kneo-tui --profile` read (`KNEO_SERV_PROFILES_PATH`, default
//! `~/.kneo_serv/profiles.json`, written 0600). Output never holds a key, only
//! `authenticated: true|false`.

use clap::{ArgGroup, Args, Subcommand};
use kneo_client::Exit;
use kneo_client::profile_edit::{KeySource, ProfileDocument, public_view};
use serde_json::{Value, json};

const PROFILE_EXAMPLES: &str = "\
Examples:
  kneo config profile set prod --url https://kneo.internal:8000 --api-key-env KNEO_PROD_KEY
  kneo config profile list --json
  kneo config profile use staging
  kneo-ops triage --profile prod        # kneo-ops and kneo-tui read the same file";

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Manage service connection profiles.
    #[command(subcommand, after_help = PROFILE_EXAMPLES)]
    Profile(ProfileCommand),
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create or update a named service profile (and make it active unless --no-activate).
    #[command(
        after_help = "Examples:\n  kneo config profile set prod --url https://kneo.internal:8000 --api-key-env KNEO_PROD_KEY\n  \
        kneo config profile set local --service-url http://127.0.0.1:8000 --no-activate"
    )]
    Set(SetArgs),
    /// Set the active service profile.
    #[command(after_help = "Example:\n  kneo config profile use prod")]
    Use {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the profiles without their API keys.
    #[command(after_help = "Example:\n  kneo config profile list --json")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one profile (default: the active one) without its API key.
    #[command(
        after_help = "Examples:\n  kneo config profile show\n  kneo config profile show --name prod --json"
    )]
    Show {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a profile.
    #[command(after_help = "Example:\n  kneo config profile delete staging")]
    Delete { name: String },
}

#[derive(Args)]
#[command(group(ArgGroup::new("key").args(["api_key", "api_key_env"])))]
pub struct SetArgs {
    name: String,
    /// The service's base URL.
    #[arg(long = "service-url", visible_alias = "url", value_name = "URL")]
    service_url: String,
    /// The API key, stored in the file (0600); --api-key-env keeps it out of the file and of `ps`.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// The environment variable that holds the API key, read whenever the profile is used.
    #[arg(long, value_name = "VARIABLE")]
    api_key_env: Option<String>,
    /// Do not make this the active profile.
    #[arg(long)]
    no_activate: bool,
    /// Make this the active profile (the default).
    #[arg(long, overrides_with = "no_activate")]
    activate: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(command: ConfigCommand) -> Exit {
    let ConfigCommand::Profile(command) = command;
    match profile(command) {
        Ok(exit) => exit,
        Err(message) => {
            eprintln!("kneo: {message}");
            Exit::Failed
        }
    }
}

fn profile(command: ProfileCommand) -> Result<Exit, String> {
    let mut document = ProfileDocument::open_default().map_err(|e| e.to_string())?;
    match command {
        ProfileCommand::Set(args) => {
            kneo_client::Client::new(kneo_client::ClientConfig::new(args.service_url.clone()))
                .map_err(|e| e.to_string())?;
            let key = match (args.api_key, args.api_key_env) {
                (Some(key), _) => KeySource::Key(key),
                (None, Some(variable)) => KeySource::Variable(variable),
                (None, None) => KeySource::None,
            };
            document.set(&args.name, &args.service_url, key);
            if !args.no_activate {
                document.active = Some(args.name.clone());
            }
            document.save().map_err(|e| e.to_string())?;
            let view = view_of(&document, &args.name)?;
            print(
                args.json,
                &format!("Saved service profile: {}", args.name),
                &view,
            );
        }
        ProfileCommand::Use { name, json } => {
            let view = view_of(&document, &name)?;
            document.active = Some(name.clone());
            document.save().map_err(|e| e.to_string())?;
            print(json, &format!("Active service profile: {name}"), &view);
        }
        ProfileCommand::List { json } => {
            let profiles: Vec<Value> = document
                .profiles
                .iter()
                .filter_map(|(name, entry)| entry.as_object().map(|e| public_view(name, e)))
                .collect();
            let listing = json!({
                "active": document.active,
                "profiles": profiles,
                "path": document.path.display().to_string(),
            });
            print(json, "Service profiles.", &listing);
        }
        ProfileCommand::Show { name, json } => {
            let Some(name) = name.or_else(|| document.active.clone()) else {
                return Err(format!(
                    "no service profile selected: {} has no active profile; pass --name or run `kneo config profile use NAME`",
                    document.path.display()
                ));
            };
            let view = view_of(&document, &name)?;
            print(json, &format!("Service profile: {name}"), &view);
        }
        ProfileCommand::Delete { name } => {
            if !document.delete(&name) {
                return Err(view_of(&document, &name).err().unwrap_or_default());
            }
            document.save().map_err(|e| e.to_string())?;
            println!("Deleted service profile: {name}");
        }
    }
    Ok(Exit::Success)
}

fn view_of(document: &ProfileDocument, name: &str) -> Result<Value, String> {
    document
        .entry(name)
        .map(|entry| public_view(name, entry))
        .map_err(|e| e.to_string())
}

fn print(json: bool, headline: &str, value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if !json {
        println!("{headline}");
    }
    println!("{text}");
}
