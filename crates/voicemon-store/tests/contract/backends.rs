//! Fresh stores for each case: SQLite in a temporary directory, PostgreSQL in a schema of
//! its own (created here, dropped when the case ends, even when it panics).

use crate::transcript::Transcript;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use tokio_postgres::{Client, NoTls};
use voicemon_store::postgres::{PostgresConfig, PostgresStore};
use voicemon_store::sqlite::{Durability, SqliteStore};
use voicemon_store::Store;

pub const DATABASE_URL_VAR: &str = "VOICEMON_TEST_DATABASE_URL";

/// The PostgreSQL server to test against, or `None` (saying so) when none is configured.
pub fn postgres_url() -> Option<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            say_postgres_is_skipped();
            None
        }
    }
}

/// Says once per run that the PostgreSQL half is skipped. Written to stderr itself rather
/// than with `eprintln!`, which the test harness captures (and hides) for passing tests.
fn say_postgres_is_skipped() {
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        let line = format!(
            "skipping PostgreSQL contract cases: set {DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:5432/test \
             to run them\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
}

/// Runs `script` on a fresh SQLite store, then on a fresh PostgreSQL store when one is
/// configured, and fails unless both transcripts are the same.
pub async fn on_both_backends<F, Fut>(script: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Transcript>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = SqliteStore::open(dir.path(), Durability::Normal).expect("the SQLite store opens");
    let on_sqlite = script(Arc::new(sqlite)).await;
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::create(&url).await;
    let on_postgres = script(Arc::new(schema.connect().await)).await;
    on_sqlite.assert_same_as(&on_postgres);
}

/// A schema of its own for one PostgreSQL case; dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct TestSchema {
    server_url: String,
    pub name: String,
}

impl TestSchema {
    /// Creates a schema with a fresh random name. Panics when the server cannot be
    /// reached: a configured database that is down fails the case, never skips it.
    pub async fn create(server_url: &str) -> TestSchema {
        let name = unique_schema_name();
        let client = connect_client(server_url).await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|err| panic!("cannot create test schema {name}: {err}"));
        TestSchema { server_url: server_url.to_owned(), name }
    }

    /// The database URL whose connections work in this schema.
    pub fn url(&self) -> String {
        let separator = if self.server_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-csearch_path%3D{}", self.server_url, self.name)
    }

    /// The store's configuration for this schema: plain PostgreSQL, a small pool.
    pub fn config(&self) -> PostgresConfig {
        let mut config = PostgresConfig::new(self.url());
        config.pool_size = 4;
        config
    }

    pub async fn connect(&self) -> PostgresStore {
        self.connect_with(self.config()).await
    }

    pub async fn connect_with(&self, config: PostgresConfig) -> PostgresStore {
        PostgresStore::connect(config)
            .await
            .unwrap_or_else(|err| panic!("the PostgreSQL store connects to schema {}: {err}", self.name))
    }

    /// A plain connection working in this schema, for the tests' own SQL.
    pub async fn client(&self) -> Client {
        connect_client(&self.url()).await
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.server_url.clone(), self.name.clone());
        // Drop cannot await: a thread with a runtime of its own drops the schema, also
        // while a failed case unwinds. A lock timeout keeps it from ever hanging a run.
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&url, NoTls).await.map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .map_err(|err| err.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop test schema {}: {err}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: the dropping thread panicked", self.name),
        }
    }
}

/// A connection of the tests' own, its driver running on the current runtime.
pub async fn connect_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|err| {
        panic!("{DATABASE_URL_VAR} is set but PostgreSQL cannot be reached at {url}: {err}")
    });
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("test connection failed: {err}");
        }
    });
    client
}

fn unique_schema_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process: names differ across test runs too.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("vm_t_{:016x}", hasher.finish())
}
