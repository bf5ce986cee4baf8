//! The store options shared by backup, verify --deep, restore and rollback.

use std::path::PathBuf;

use clap::Args;
use kneo_server::backup::StoreLocation;

#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// Postgres store (a libpq URL); default: the embedded store of --state-dir
    #[arg(
        long,
        value_name = "DSN",
        env = "KNEO_SERV_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Embedded store directory
    #[arg(long, value_name = "DIR", default_value = ".kneo")]
    pub state_dir: PathBuf,
}

impl StoreArgs {
    pub fn location(&self) -> StoreLocation {
        match &self.database_url {
            Some(url) => StoreLocation::postgres(url.clone()),
            None => StoreLocation::sqlite(self.state_dir.clone()),
        }
    }

    /// The options that name this store again, for the steps of a plan.
    pub fn as_flags(&self) -> String {
        match &self.database_url {
            Some(_) => "--database-url \"$KNEO_SERV_DATABASE_URL\"".to_string(),
            None => format!("--state-dir {}", self.state_dir.display()),
        }
    }
}
