//! API keys (created, listed, revoked by id or prefix, the active ring), the round trip
//! of `ping`, the pool's backend name, and the schema version a store reports.

use crate::backends::on_both_backends;
use crate::events::at;
use crate::transcript::Transcript;
use std::sync::Arc;
use voicemon_core::access::{hash_key, Role};
use voicemon_store::{ApiKey, NewApiKey, Store, StoreError};

fn new_key(name: &str, role: Role, tenant: Option<&str>, secret: &str) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        role,
        tenant_id: tenant.map(Into::into),
        prefix: secret[..7].into(),
        key_hash: hash_key(secret),
        created_ms: at(9, 0),
    }
}

fn listed(
    id: i64,
    name: &str,
    role: Role,
    tenant: Option<&str>,
    prefix: &str,
    revoked_ms: Option<i64>,
) -> ApiKey {
    ApiKey {
        id,
        name: name.into(),
        role,
        tenant_id: tenant.map(Into::into),
        prefix: prefix.into(),
        created_ms: at(9, 0),
        revoked_ms,
    }
}

#[tokio::test]
async fn keys_are_stored_hashed_and_revoked_by_id_or_prefix() {
    on_both_backends(keys).await;
}

async fn keys(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let admin = store.create_key(new_key("ops", Role::Admin, None, "vm_aaaa-admin-secret")).await.unwrap();
    t.check("a key is created with the next id", admin, listed(1, "ops", Role::Admin, None, "vm_aaaa", None));
    store.create_key(new_key("ingest", Role::Ingest, Some("acme"), "vm_bbbb-ingest-secret")).await.unwrap();
    store.create_key(new_key("grafana", Role::Read, Some("acme"), "vm_cccc-read-secret")).await.unwrap();
    let duplicate = store.create_key(new_key("again", Role::Read, None, "vm_cccc-read-secret")).await;
    t.check("the same secret twice is refused", matches!(duplicate, Err(StoreError::Internal(_))), true);

    t.check(
        "revoking by id",
        store.revoke_key("2", at(10, 0)).await.unwrap(),
        listed(2, "ingest", Role::Ingest, Some("acme"), "vm_bbbb", Some(at(10, 0))),
    );
    t.check(
        "revoking twice keeps the first time",
        store.revoke_key("vm_bbbb", at(11, 0)).await.unwrap().revoked_ms,
        Some(at(10, 0)),
    );
    t.check("revoking by prefix", store.revoke_key("vm_cccc", at(10, 30)).await.unwrap().id, 3);
    t.check(
        "an unknown key",
        matches!(store.revoke_key("vm_zzzz", at(10, 0)).await, Err(StoreError::NotFound(_))),
        true,
    );
    t.check(
        "every key, in id order",
        store.list_keys().await.unwrap(),
        vec![
            listed(1, "ops", Role::Admin, None, "vm_aaaa", None),
            listed(2, "ingest", Role::Ingest, Some("acme"), "vm_bbbb", Some(at(10, 0))),
            listed(3, "grafana", Role::Read, Some("acme"), "vm_cccc", Some(at(10, 30))),
        ],
    );
    t.check(
        "the active keys with their hashes",
        store.active_key_hashes().await.unwrap(),
        vec![(hash_key("vm_aaaa-admin-secret"), listed(1, "ops", Role::Admin, None, "vm_aaaa", None))],
    );
    t
}

#[tokio::test]
async fn ping_is_a_round_trip_and_the_pool_names_its_backend() {
    on_both_backends(ping_and_pool).await;
}

async fn ping_and_pool(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    t.check("ping", store.ping().await.map_err(|err| err.to_string()), Ok(()));
    let stats = store.pool_stats();
    assert_eq!(stats.backend, store.backend(), "the pool names its backend");
    assert!(["sqlite", "postgres"].contains(&stats.backend));
    t.check("in use never exceeds the pool", stats.in_use <= stats.size, true);
    t.check("no error yet", (stats.last_error, stats.last_error_ms), (None, None));
    t
}

#[tokio::test]
async fn a_fresh_store_reports_its_schema_at_this_builds_latest_version() {
    on_both_backends(schema_version).await;
}

async fn schema_version(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let latest = match store.backend() {
        "postgres" => i64::from(voicemon_store::postgres::latest_version()),
        _ => voicemon_store::sqlite::latest_version(),
    };
    let reported = store.schema_version().await.map_err(|err| err.to_string());
    t.check("the schema is at this build's latest version", reported == Ok(latest), true);
    t
}
