//! `voicemon keys create|list|revoke`: API keys, stored hashed in the store.

use crate::settings::Given;
use crate::storage::{self, StoreArgs};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use rand::RngCore;
use voicemon_core::access::{hash_key, Role, KEY_PREFIX};
use voicemon_core::window::format_time;
use voicemon_store::{KeyStore, NewApiKey};

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a key and print its secret (shown once; only its hash is stored).
    Create {
        /// ingest (send events), read (query metrics) or admin (both, key management).
        #[arg(long)]
        role: String,
        /// The tenant the key is confined to; required except for admin keys.
        #[arg(long)]
        tenant: Option<String>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id or prefix; a running server stops accepting it within 5 s.
    Revoke {
        /// The key's id or prefix as `keys list` shows them.
        key: String,
    },
}

pub async fn run(args: KeysArgs, given: &Given) -> Result<()> {
    let (store, _) = storage::open(&args.store.settings(given)?).await?;
    let now_ms = chrono_now_ms();
    match args.command {
        KeysCommand::Create { role, tenant, name } => {
            create(store.as_ref(), &role, tenant, name, now_ms).await
        }
        KeysCommand::List => list(store.as_ref()).await,
        KeysCommand::Revoke { key } => revoke(store.as_ref(), &key, now_ms).await,
    }
}

/// Creates a key and prints its secret, the only time it is shown.
async fn create(
    store: &dyn KeyStore,
    role: &str,
    tenant: Option<String>,
    name: String,
    now_ms: i64,
) -> Result<()> {
    let Some(role) = Role::parse(role) else {
        bail!("unknown role `{role}`; expected ingest, read or admin");
    };
    if tenant.is_none() && role != Role::Admin {
        bail!("a {} key needs --tenant; only admin keys may span every tenant", role.as_str());
    }
    let secret = new_secret();
    let prefix = secret[..KEY_PREFIX.len() + 8].to_owned();
    let key = store
        .create_key(NewApiKey {
            name,
            role,
            tenant_id: tenant,
            prefix,
            key_hash: hash_key(&secret),
            created_ms: now_ms,
        })
        .await?;
    eprintln!(
        "created {} key {} (id {}) for {}; store the secret now, it is not shown again:",
        key.role.as_str(),
        key.prefix,
        key.id,
        key.tenant_id.as_deref().unwrap_or("every tenant")
    );
    println!("{secret}");
    Ok(())
}

async fn list(store: &dyn KeyStore) -> Result<()> {
    let keys = store.list_keys().await?;
    if keys.is_empty() {
        println!("no keys: the server runs open on loopback only");
    }
    println!(
        "{:<5} {:<12} {:<7} {:<20} {:<20} {:<25} status",
        "id", "prefix", "role", "tenant", "name", "created"
    );
    for key in keys {
        let status = match key.revoked_ms {
            Some(at) => format!("revoked {}", format_time(at)),
            None => "active".into(),
        };
        println!(
            "{:<5} {:<12} {:<7} {:<20} {:<20} {:<25} {status}",
            key.id,
            key.prefix,
            key.role.as_str(),
            key.tenant_id.as_deref().unwrap_or("*"),
            key.name,
            format_time(key.created_ms),
        );
    }
    Ok(())
}

async fn revoke(store: &dyn KeyStore, key: &str, now_ms: i64) -> Result<()> {
    let revoked = store.revoke_key(key, now_ms).await?;
    println!("revoked key {} (id {})", revoked.prefix, revoked.id);
    Ok(())
}

/// `vm_` followed by 256 random bits in hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_PREFIX}{hex}")
}

fn chrono_now_ms() -> i64 {
    use voicemon_core::clock::{Clock, SystemClock};
    SystemClock.now_ms()
}
