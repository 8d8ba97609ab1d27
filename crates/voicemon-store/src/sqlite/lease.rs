//! Leases of single-run duties and the check that fences a write under one. One process
//! serves a SQLite file, so its instance always gets them; the semantics are
//! PostgreSQL's all the same (the contract suite compares the two).

use crate::{LeaseClaim, LeaseRow};
use rusqlite::{params, Connection, OptionalExtension};

pub fn acquire(
    conn: &Connection,
    role: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> rusqlite::Result<bool> {
    let held = conn
        .prepare_cached(
            "INSERT INTO leases (role, holder, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
               WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?4
             RETURNING holder",
        )?
        .query_row(params![role, holder, now_ms.saturating_add(ttl_ms), now_ms], |row| {
            row.get::<_, String>(0)
        })
        .optional()?;
    Ok(held.is_some())
}

pub fn release(conn: &Connection, role: &str, holder: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM leases WHERE role = ?1 AND holder = ?2")?.execute([role, holder])?;
    Ok(())
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<LeaseRow>> {
    let mut statement = conn.prepare_cached("SELECT role, holder, expires_ms FROM leases ORDER BY role")?;
    let rows = statement.query_map([], |row| {
        Ok(LeaseRow { role: row.get(0)?, holder: row.get(1)?, expires_ms: row.get(2)? })
    })?;
    rows.collect()
}

/// Whether `claim.holder` holds `claim.role` at `now_ms`.
pub fn holds(conn: &Connection, claim: &LeaseClaim, now_ms: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM leases WHERE role = ?1 AND holder = ?2 AND expires_ms > ?3")?
        .exists(params![claim.role, claim.holder, now_ms])
}

/// Forgets every lease (the file's owner starts; no other process can hold one).
pub fn clear(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM leases", [])?;
    Ok(())
}
