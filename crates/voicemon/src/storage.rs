//! Where the commands that touch the store find it: the same configuration tree as
//! `serve` (the file's `[server] data_dir` and `[postgres]`, under `DATABASE_URL`,
//! `VOICEMON_DATA_DIR` and their flags): PostgreSQL when a database URL is given, the
//! embedded store in the data directory otherwise.

use crate::settings::{exposed, Given};
use anyhow::{Context, Result};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use voicemon_server::config::{describe_url, Layers, Settings};
use voicemon_server::startup::open_store;
use voicemon_store::Store;

#[derive(Args, Debug, Clone, Serialize)]
pub struct StoreArgs {
    /// The data directory of the embedded store [default: [server] data_dir of the
    /// configuration file, else ./voicemon-data].
    #[arg(long, env = "VOICEMON_DATA_DIR", global = true)]
    #[serde(rename = "server.data_dir")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the embedded store: postgres://user:password@host:port/database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true, value_parser = crate::secret)]
    #[serde(rename = "postgres.database_url", serialize_with = "exposed")]
    pub database_url: Option<SecretString>,
    /// Configuration file whose [server] data_dir, [postgres] settings and (for reprice)
    /// [[pricing.price]] entries apply [default: ./voicemon.toml if present]. A file named
    /// here must exist.
    #[arg(long, short, env = "VOICEMON_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl StoreArgs {
    /// The configuration these arguments select, with them over the file.
    pub fn settings(&self, given: &Given) -> Result<Settings> {
        given.over(Layers::new().config_file(self.config.as_deref())?, self)
    }
}

/// Opens (and migrates) the store the settings name: the whole [`Store`], which each
/// command hands on as the narrow trait it uses (`keys`: `KeyStore`, `reprice`: `RepriceStore`).
pub async fn open(settings: &Settings) -> Result<(Arc<dyn Store>, String)> {
    let serve = &settings.serve;
    let where_ = match &serve.postgres {
        Some(postgres) => describe_url(postgres.url.expose_secret()),
        None => serve.data_dir.display().to_string(),
    };
    open_store(&serve.data_dir, serve.durability, serve.postgres.as_ref())
        .await
        .with_context(|| format!("cannot open the store ({where_})"))
}
