//! PostgreSQL only: the store's connections when the server ends one, and the partitioning
//! chosen from what the server reports about TimescaleDB.

use crate::backends::{postgres_url, TestSchema};
use voicemon_store::postgres::{Partitioning, TimescaleDecision, TimescaleReport};
use voicemon_store::{AdminStore, KeyStore};

/// Ends every connection of the store named `application` except the one holding its
/// owner lock, and waits until they are gone; returns how many there were.
async fn terminate_pooled_connections(admin: &tokio_postgres::Client, application: &str) -> usize {
    let rows = admin
        .query(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
             WHERE application_name = $1 AND query NOT LIKE '%pg_advisory_lock(%'",
            &[&application],
        )
        .await
        .expect("pg_terminate_backend runs");
    assert!(rows.iter().all(|row| row.get::<_, bool>(0)), "every connection ended");
    rows.len()
}

#[tokio::test]
async fn a_pooled_connection_the_server_terminated_is_replaced_and_the_next_operation_succeeds() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::create(&url).await;
    let application = format!("voicemon_{}", schema.name);
    let mut config = schema.config();
    config.url = format!("{}&application_name={application}", schema.url()).into();
    let store = schema.connect_with(config).await;
    store.ping().await.expect("the store answers");
    let admin = schema.client().await;

    let ended = terminate_pooled_connections(&admin, &application).await;

    assert!(ended >= 1, "the pool held a connection to end");
    store.ping().await.expect("the next operation gets a live connection");
    assert!(store.list_keys().await.expect("and the one after").is_empty());
}

#[tokio::test]
async fn the_partitioning_chosen_is_the_one_the_servers_timescaledb_report_decides() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::create(&url).await;
    let report = TimescaleReport::read(&schema.client().await).await.expect("the server reports");

    let store = schema.connect().await;

    let expected = match report.decide(true) {
        TimescaleDecision::Use | TimescaleDecision::Create => Partitioning::Timescale,
        TimescaleDecision::Native | TimescaleDecision::NotPreloaded => Partitioning::Native,
    };
    assert_eq!(store.partitioning(), expected, "{report:?}");
}
