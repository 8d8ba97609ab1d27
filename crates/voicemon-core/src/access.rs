//! Access: API key roles and the hash keys are stored under.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do. `Admin` may also read and write every tenant when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Ingest,
    Read,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Ingest, Role::Read, Role::Admin].into_iter().find(|r| r.as_str() == text)
    }
}

/// Keys are 256-bit random secrets, so a plain SHA-256 is a safe one-way hash for them
/// (no salt or slow hash is needed against guessing: there is nothing to guess).
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The prefix every voicemon key starts with, so scanners and people recognise one.
pub const KEY_PREFIX: &str = "vm_";

/// The idempotency key of an event within its timestamp: 64 bits of SHA-256 over tenant
/// and id, so two tenants may use the same ids. Stores pair it with the event's timestamp
/// (a retried event carries the same timestamp), which keeps the index append-mostly and
/// makes a collision need the same millisecond *and* the same 64-bit hash.
pub fn event_key(tenant_id: &str, id: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(tenant_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(id.as_bytes());
    let full = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&full[..8]);
    i64::from_le_bytes(first)
}
