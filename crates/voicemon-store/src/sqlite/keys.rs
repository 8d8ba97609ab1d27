//! API keys: only their SHA-256 hashes are stored.

use crate::{ApiKey, NewApiKey, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use voicemon_core::access::Role;

use super::map_error;

const COLUMNS: &str = "id, name, role, tenant_id, prefix, created_ms, revoked_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = row.get(2)?;
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Read),
        tenant_id: row.get(3)?,
        prefix: row.get(4)?,
        created_ms: row.get(5)?,
        revoked_ms: row.get(6)?,
    })
}

pub fn create(conn: &Connection, key: &NewApiKey) -> Result<ApiKey, StoreError> {
    conn.query_row(
        &format!(
            "INSERT INTO api_keys (name, role, tenant_id, prefix, key_hash, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {COLUMNS}"
        ),
        params![key.name, key.role.as_str(), key.tenant_id, key.prefix, key.key_hash, key.created_ms],
        from_row,
    )
    .map_err(map_error)
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<ApiKey>> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))?;
    let keys = statement.query_map([], from_row)?.collect();
    keys
}

pub fn revoke(conn: &Connection, id_or_prefix: &str, now_ms: i64) -> Result<ApiKey, StoreError> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE CAST(id AS TEXT) = ?1 OR prefix = ?1"),
            [id_or_prefix],
            from_row,
        )
        .optional()
        .map_err(map_error)?
        .ok_or_else(|| StoreError::NotFound(format!("no key with id or prefix `{id_or_prefix}`")))?;
    conn.execute(
        "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, ?1) WHERE id = ?2",
        params![now_ms, found.id],
    )
    .map_err(map_error)?;
    Ok(ApiKey { revoked_ms: found.revoked_ms.or(Some(now_ms)), ..found })
}

pub fn active_hashes(conn: &Connection) -> rusqlite::Result<Vec<(String, ApiKey)>> {
    let mut statement = conn
        .prepare(&format!("SELECT {COLUMNS}, key_hash FROM api_keys WHERE revoked_ms IS NULL ORDER BY id"))?;
    let keys = statement.query_map([], |row| Ok((row.get::<_, String>(7)?, from_row(row)?)))?.collect();
    keys
}
