//! Leases of single-run duties among the instances sharing this database, and the check
//! that fences a write under one.

use crate::{LeaseClaim, LeaseRow};
use tokio_postgres::{Error, GenericClient};

pub async fn acquire(
    client: &impl GenericClient,
    role: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, Error> {
    let held = client
        .query_opt(
            "INSERT INTO leases (role, holder, expires_ms) VALUES ($1, $2, $3)
             ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
               WHERE leases.holder = excluded.holder OR leases.expires_ms <= $4
             RETURNING holder",
            &[&role, &holder, &now_ms.saturating_add(ttl_ms), &now_ms],
        )
        .await?;
    Ok(held.is_some())
}

pub async fn release(client: &impl GenericClient, role: &str, holder: &str) -> Result<(), Error> {
    client.execute("DELETE FROM leases WHERE role = $1 AND holder = $2", &[&role, &holder]).await?;
    Ok(())
}

pub async fn all(client: &impl GenericClient) -> Result<Vec<LeaseRow>, Error> {
    let rows = client.query("SELECT role, holder, expires_ms FROM leases ORDER BY role", &[]).await?;
    Ok(rows
        .iter()
        .map(|row| LeaseRow { role: row.get(0), holder: row.get(1), expires_ms: row.get(2) })
        .collect())
}

/// Whether `claim.holder` holds `claim.role` at `now_ms`, locking the lease row until the
/// transaction ends so it cannot pass to another instance meanwhile.
pub async fn holds(client: &impl GenericClient, claim: &LeaseClaim, now_ms: i64) -> Result<bool, Error> {
    let row = client
        .query_opt(
            "SELECT 1 FROM leases WHERE role = $1 AND holder = $2 AND expires_ms > $3 FOR SHARE",
            &[&claim.role, &claim.holder, &now_ms],
        )
        .await?;
    Ok(row.is_some())
}
