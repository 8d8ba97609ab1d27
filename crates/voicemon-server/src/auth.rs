//! Access: bearer API keys with a role and a tenant, checked against a key ring that
//! mirrors the store's active keys.
//!
//! With no active key the server runs open, and only ever on a loopback address:
//! a server bound elsewhere whose last key was revoked refuses everything instead.

use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use voicemon_core::access::{hash_key, Role};
use voicemon_store::{ApiKey, KeyStore, StoreError};

/// How often the ring reloads keys created or revoked by `voicemon keys`.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// An unknown key triggers a reload at most this often.
const RELOAD_ON_MISS_EVERY: Duration = Duration::from_secs(1);

/// Why a caller is refused: 401 (who are you?) or 403 (not allowed to do that).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// The machine-readable code, as the API's `{error: {code}}` gives it.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthorized(_) => "unauthorized",
            AuthError::Forbidden(_) => "forbidden",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No keys exist and the server listens on loopback only.
    Open,
    Key(ApiKey),
}

#[derive(Debug)]
struct Ring {
    by_hash: HashMap<String, ApiKey>,
    loaded_at: Instant,
}

/// The active keys, by hash.
#[derive(Debug, Clone)]
pub struct KeyRing {
    store: Arc<dyn KeyStore>,
    ring: Arc<RwLock<Ring>>,
    loopback_only: bool,
}

impl KeyRing {
    pub async fn load(store: Arc<dyn KeyStore>, loopback_only: bool) -> Result<KeyRing, StoreError> {
        let by_hash = fetch(&store).await?;
        let ring = Ring { by_hash, loaded_at: Instant::now() };
        Ok(KeyRing { store, ring: Arc::new(RwLock::new(ring)), loopback_only })
    }

    pub fn is_open(&self) -> bool {
        self.read_ring(|ring| ring.by_hash.is_empty())
    }

    /// Reloads from the store; on failure the old ring stays.
    pub async fn reload(&self) {
        match fetch(&self.store).await {
            Ok(by_hash) => {
                let mut ring = self.ring.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                *ring = Ring { by_hash, loaded_at: Instant::now() };
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not reload api keys; keeping the old ones")
            }
        }
    }

    fn read_ring<T>(&self, f: impl FnOnce(&Ring) -> T) -> T {
        f(&self.ring.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Identifies the caller from the `Authorization: Bearer …` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        self.authenticate_token(bearer(headers)?).await
    }

    /// Identifies the caller from a key given some other way (the first message of a
    /// WebSocket, which browsers cannot give headers), or from none.
    pub async fn authenticate_token(&self, token: Option<&str>) -> Result<Principal, AuthError> {
        if self.is_open() {
            if !self.loopback_only {
                return Err(AuthError::Unauthorized(
                    "no api key is active on this server; create one with `voicemon keys create`".into(),
                ));
            }
            return Ok(Principal::Open);
        }
        let Some(token) = token else {
            return Err(AuthError::Unauthorized("send an api key as `Authorization: Bearer <key>`".into()));
        };
        let hash = hash_key(token);
        if let Some(key) = self.read_ring(|ring| ring.by_hash.get(&hash).cloned()) {
            return Ok(Principal::Key(key));
        }
        if self.read_ring(|ring| ring.loaded_at.elapsed() > RELOAD_ON_MISS_EVERY) {
            self.reload().await;
            if let Some(key) = self.read_ring(|ring| ring.by_hash.get(&hash).cloned()) {
                return Ok(Principal::Key(key));
            }
        }
        Err(AuthError::Unauthorized("the api key is unknown or revoked".into()))
    }
}

async fn fetch(store: &Arc<dyn KeyStore>) -> Result<HashMap<String, ApiKey>, StoreError> {
    Ok(store.active_key_hashes().await?.into_iter().collect())
}

/// The key of an `Authorization: Bearer …` header, if one is sent.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value =
        value.to_str().map_err(|_| AuthError::Unauthorized("the authorization header is not text".into()))?;
    match value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        Some(token) => Ok(Some(token.trim())),
        None => Err(AuthError::Unauthorized("use `Authorization: Bearer <key>`".into())),
    }
}

impl Principal {
    fn key_role(&self) -> Option<Role> {
        match self {
            Principal::Open => None,
            Principal::Key(key) => Some(key.role),
        }
    }

    /// The tenant this caller is confined to, if any.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Principal::Open => None,
            Principal::Key(key) => key.tenant_id.as_deref(),
        }
    }

    /// Ingest keys and admin keys may write; checked before the body is read.
    pub fn check_may_write(&self) -> Result<(), AuthError> {
        if self.key_role() == Some(Role::Read) {
            return Err(AuthError::Forbidden("a read key cannot send events; use an ingest key".into()));
        }
        Ok(())
    }

    /// Whether this caller may write `tenant_id`: an ingest key only its own tenant.
    pub fn check_write(&self, tenant_id: &str) -> Result<(), AuthError> {
        self.check_may_write()?;
        match self.tenant() {
            Some(own) if own != tenant_id => {
                Err(AuthError::Forbidden(format!("this key writes tenant `{own}` only, not `{tenant_id}`")))
            }
            _ => Ok(()),
        }
    }

    /// Silences and other platform-wide changes need an admin key for every tenant.
    pub fn check_admin(&self, what: &str) -> Result<(), AuthError> {
        match self {
            Principal::Open => Ok(()),
            Principal::Key(key) if key.role == Role::Admin && key.tenant_id.is_none() => Ok(()),
            Principal::Key(_) => {
                Err(AuthError::Forbidden(format!("{what} need an admin key for every tenant")))
            }
        }
    }

    /// Read keys and admin keys may read. Returns the tenant filter to apply: the
    /// requested tenant, the key's own when none was requested, or `None` for all.
    pub fn read_scope(&self, requested: Option<&str>) -> Result<Option<String>, AuthError> {
        if self.key_role() == Some(Role::Ingest) {
            return Err(AuthError::Forbidden("an ingest key cannot read metrics; use a read key".into()));
        }
        match (self.tenant(), requested) {
            (Some(own), Some(asked)) if own != asked => {
                Err(AuthError::Forbidden(format!("this key reads tenant `{own}` only, not `{asked}`")))
            }
            (Some(own), _) => Ok(Some(own.to_owned())),
            (None, asked) => Ok(asked.map(str::to_owned)),
        }
    }
}
