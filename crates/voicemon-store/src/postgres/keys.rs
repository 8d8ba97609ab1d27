//! API keys: only their SHA-256 hashes are stored.

use super::map_error;
use crate::{ApiKey, NewApiKey, StoreError};
use tokio_postgres::{Client, Error, Row};
use voicemon_core::access::Role;

const COLUMNS: &str = "id, name, role, tenant_id, prefix, created_ms, revoked_ms";

fn from_row(row: &Row) -> ApiKey {
    let role: String = row.get(2);
    ApiKey {
        id: row.get(0),
        name: row.get(1),
        role: Role::parse(&role).unwrap_or(Role::Read),
        tenant_id: row.get(3),
        prefix: row.get(4),
        created_ms: row.get(5),
        revoked_ms: row.get(6),
    }
}

pub async fn create(client: &Client, key: &NewApiKey) -> Result<ApiKey, StoreError> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO api_keys (name, role, tenant_id, prefix, key_hash, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
            ),
            &[&key.name, &key.role.as_str(), &key.tenant_id, &key.prefix, &key.key_hash, &key.created_ms],
        )
        .await
        .map_err(map_error)?;
    Ok(from_row(&row))
}

pub async fn list(client: &Client) -> Result<Vec<ApiKey>, Error> {
    let rows = client.query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"), &[]).await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn revoke(client: &Client, id_or_prefix: &str, now_ms: i64) -> Result<ApiKey, StoreError> {
    let found = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE id::text = $1 OR prefix = $1"),
            &[&id_or_prefix],
        )
        .await
        .map_err(map_error)?
        .map(|row| from_row(&row))
        .ok_or_else(|| StoreError::NotFound(format!("no key with id or prefix `{id_or_prefix}`")))?;
    client
        .execute(
            "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, $1) WHERE id = $2",
            &[&now_ms, &found.id],
        )
        .await
        .map_err(map_error)?;
    Ok(ApiKey { revoked_ms: found.revoked_ms.or(Some(now_ms)), ..found })
}

pub async fn active_hashes(client: &Client) -> Result<Vec<(String, ApiKey)>, Error> {
    let rows = client
        .query(&format!("SELECT {COLUMNS}, key_hash FROM api_keys WHERE revoked_ms IS NULL ORDER BY id"), &[])
        .await?;
    Ok(rows.iter().map(|row| (row.get::<_, String>(7), from_row(row))).collect())
}
