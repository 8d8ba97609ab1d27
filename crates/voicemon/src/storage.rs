//! Where the commands that touch the store find it: PostgreSQL when `DATABASE_URL` (or
//! `--database-url`) is set, the embedded store in the data directory otherwise.

use anyhow::{Context, Result};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::Arc;
use voicemon_server::config::FileConfig;
use voicemon_server::startup::{describe_url, open_store};
use voicemon_store::postgres::PostgresConfig;
use voicemon_store::sqlite::Durability;
use voicemon_store::Store;

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The data directory of the embedded store.
    #[arg(long, env = "VOICEMON_DATA_DIR", default_value = "./voicemon-data", global = true)]
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded store: postgres://user:password@host:port/database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true, value_parser = crate::secret)]
    pub database_url: Option<SecretString>,
}

/// The PostgreSQL configuration for `url`, with the file's `[postgres]` settings.
pub fn postgres_config(url: &str, file: &FileConfig) -> Result<PostgresConfig> {
    anyhow::ensure!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "DATABASE_URL must start with postgres:// or postgresql:// (got {})",
        describe_url(url)
    );
    // The TLS options are checked now (a bad sslmode, an unreadable root certificate),
    // so that a mistake is reported before any connection is tried.
    let (_, tls) = voicemon_store::postgres::tls::split_url(url)?;
    tls.connector()?;
    Ok(file.postgres.postgres_config(url)?)
}

/// Opens (and migrates) the store these arguments name: the whole [`Store`], which each
/// command hands on as the narrow trait it uses (`keys`: `KeyStore`, `reprice`: `RepriceStore`).
pub async fn open(args: &StoreArgs, file: &FileConfig) -> Result<(Arc<dyn Store>, String)> {
    let postgres =
        args.database_url.as_ref().map(|url| postgres_config(url.expose_secret(), file)).transpose()?;
    let where_ = match &args.database_url {
        Some(url) => describe_url(url.expose_secret()),
        None => args.data_dir.display().to_string(),
    };
    open_store(&args.data_dir, Durability::Full, postgres.as_ref())
        .await
        .with_context(|| format!("cannot open the store ({where_})"))
}
