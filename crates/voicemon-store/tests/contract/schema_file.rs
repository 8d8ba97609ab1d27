//! PostgreSQL only: `schema/metrics.sql`, the readable cumulative schema for DBAs, creates
//! exactly what the migrations create, and voicemon accepts a database made from it.
//!
//! Day partitions are left out of the comparison: voicemon creates them at run time.

use crate::backends::{postgres_url, TestSchema};
use crate::events::{at, turn};
use std::collections::BTreeSet;
use tokio_postgres::Client;
use voicemon_store::IngestStore;

const METRICS_SQL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/metrics.sql");

/// What the catalog says about a schema, one comparable line per object, by category.
const CATALOG: &[(&str, &str)] = &[
    (
        "tables",
        "SELECT c.relname::text || ' ' || c.relkind::text || ' '
                || coalesce(pg_get_partkeydef(c.oid), '')
         FROM pg_class c
         WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'p', 'v')
           AND NOT c.relispartition",
    ),
    (
        "columns (of tables, views and the composite type)",
        "SELECT c.relname::text || '.' || a.attname::text || ' #' || a.attnum
                || ' ' || format_type(a.atttypid, a.atttypmod)
                || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
                || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'p', 'v', 'c')
           AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped",
    ),
    (
        "primary keys, unique keys and other constraints",
        "SELECT c.relname::text || ' ' || k.conname::text || ' ' || pg_get_constraintdef(k.oid)
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
         WHERE c.relnamespace = $1::text::regnamespace AND NOT c.relispartition",
    ),
    (
        "indexes",
        "SELECT i.indexname::text || ': ' || i.indexdef
         FROM pg_indexes i
         JOIN pg_class c ON c.relname = i.tablename AND c.relnamespace = $1::text::regnamespace
         WHERE i.schemaname = $1 AND NOT c.relispartition",
    ),
    ("views", "SELECT viewname::text || ': ' || definition FROM pg_views WHERE schemaname = $1"),
    (
        "types",
        "SELECT t.typname::text || ' ' || t.typtype::text
         FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
         WHERE t.typnamespace = $1::text::regnamespace AND t.typcategory <> 'A'
           AND (t.typtype <> 'c' OR c.relkind = 'c')",
    ),
    (
        "functions and aggregates",
        "SELECT p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || p.prokind::text
                || ' returns ' || pg_get_function_result(p.oid)
                || ' ' || p.provolatile::text || p.proparallel::text
                || ' ' || regexp_replace(p.prosrc, '\\s+', ' ', 'g')
         FROM pg_proc p WHERE p.pronamespace = $1::text::regnamespace",
    ),
    (
        "aggregate parts",
        "SELECT p.proname::text || ': ' || a.aggtransfn::regproc::text
                || ' ' || a.aggfinalfn::regproc::text || ' '
                || a.aggcombinefn::regproc::text || ' ' || format_type(a.aggtranstype, NULL)
         FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
         WHERE p.pronamespace = $1::text::regnamespace",
    ),
    (
        "bookkeeping rows",
        "SELECT 'migration ' || version || ' ' || description FROM voicemon_migrations
         WHERE current_schema() = $1
         UNION ALL SELECT 'setting ' || name || ' = ' || value FROM voicemon_settings",
    ),
];

async fn catalog(client: &Client, schema: &str, query: &str) -> BTreeSet<String> {
    let rows = client.query(query, &[&schema]).await.unwrap_or_else(|err| panic!("{query}: {err}"));
    rows.iter().map(|row| row.get::<_, String>(0).replace(&format!("{schema}."), "")).collect()
}

#[tokio::test]
async fn metrics_sql_creates_exactly_what_the_migrations_create() {
    let Some(url) = postgres_url() else { return };
    let migrated = TestSchema::create(&url).await;
    let documented = TestSchema::create(&url).await;
    migrated.connect().await;
    let sql = std::fs::read_to_string(METRICS_SQL).expect("schema/metrics.sql is readable");
    let documented_client = documented.client().await;
    documented_client
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|err| panic!("schema/metrics.sql runs: {err}"));
    let migrated_client = migrated.client().await;

    for (category, query) in CATALOG {
        let from_migrations = catalog(&migrated_client, &migrated.name, query).await;
        let from_file = catalog(&documented_client, &documented.name, query).await;
        assert!(!from_migrations.is_empty(), "{category}: the migrations created none");
        let missing: Vec<_> = from_migrations.difference(&from_file).collect();
        let extra: Vec<_> = from_file.difference(&from_migrations).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{category} differ\n  only from the migrations: {missing:#?}\n  \
             only from schema/metrics.sql: {extra:#?}"
        );
    }

    let store = documented.connect().await;
    let stored = store.write_batch(vec![turn("t1", "acme", "c1", at(10, 0), 640.0)]).await;
    assert_eq!(stored.expect("a database made from schema/metrics.sql is usable").stored, vec![true]);
}
